//! Which CPython serves the app, and whether a virtualenv fits it.
//!
//! Ferrocorn runs in one of two ways:
//!
//! - **The standalone binary** (`scripts/build.sh`, the .deb): libpython is
//!   linked in, and each worker starts it after the fork (the master too,
//!   with `--preload`). The version is fixed at build time.
//! - **The Python package** (`pip install` into a virtualenv): the process
//!   is that venv's own `python` running `ferrocorn._native.run`, so the
//!   interpreter is already up before any of our code runs, and it is
//!   the app's: its version, `sys.prefix` and site-packages.
//!
//! A virtualenv (`--virtualenv`, `$VIRTUAL_ENV`, or one that `--chdir`
//! holds) made by another Python than the one serving would load the
//! wrong site-packages, or none: [`check_virtualenv`] refuses it with one
//! line that says what to do instead.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// `major.minor` of a CPython.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PythonVersion {
    pub major: u32,
    pub minor: u32,
}

impl fmt::Display for PythonVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

impl PythonVersion {
    /// Reads `3.12`, `3.12.1` or `3.12.1.final.0`.
    fn parse(text: &str) -> Option<PythonVersion> {
        let mut parts = text.trim().split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        Some(PythonVersion { major, minor })
    }
}

/// The interpreter a pip-installed Ferrocorn runs in.
#[derive(Debug, Clone)]
pub struct RunningPython {
    /// `sys.executable`: what runs config files and master-side hooks,
    /// and what a USR2 upgrade executes again.
    pub executable: PathBuf,
    /// `sys.prefix`: the virtualenv (or installation) in use.
    pub prefix: PathBuf,
    pub version: PythonVersion,
}

static RUNNING: OnceLock<RunningPython> = OnceLock::new();

/// Records that this process is a running Python (the package's entry
/// point); before anything else of ours runs.
pub fn set_running(python: RunningPython) {
    let _ = RUNNING.set(python);
}

/// The running Python, when Ferrocorn was started as the Python package.
pub fn running() -> Option<&'static RunningPython> {
    RUNNING.get()
}

/// The version of the CPython that serves the app in this process.
pub fn version() -> PythonVersion {
    match running() {
        Some(r) => r.version,
        None => embedded_version(),
    }
}

/// Which Python serves the app, for `--version`: `CPython 3.12 at
/// /venv/bin/python` (the package) or `embeds CPython 3.11` (the binary).
pub fn describe() -> String {
    match running() {
        Some(r) => format!("CPython {} at {}", r.version, r.executable.display()),
        None => format!("embeds CPython {}", embedded_version()),
    }
}

/// The version the binary was built against (`worker/build.rs`).
fn embedded_version() -> PythonVersion {
    PythonVersion::parse(env!("FERROCORN_EMBEDDED_PYTHON"))
        .expect("build.rs records the embedded Python as MAJOR.MINOR")
}

/// The interpreter that evaluates config files and runs master-side hooks:
/// the virtualenv's `python` when one is given, else the running Python,
/// else the one the binary was built against (or `python3` from PATH).
pub fn python_executable(virtualenv: Option<&Path>) -> PathBuf {
    if let Some(venv) = virtualenv {
        return python_of(venv);
    }
    if let Some(r) = running() {
        return r.executable.clone();
    }
    PathBuf::from(option_env!("FERROCORN_BUILD_PYTHON").unwrap_or("python3"))
}

/// The interpreter a virtualenv's scripts run with.
pub fn python_of(virtualenv: &Path) -> PathBuf {
    virtualenv.join("bin").join("python")
}

/// Where a project keeps its virtualenv inside the directory `--chdir`
/// names, in the order looked for.
const PROJECT_VENVS: [&str; 2] = [".venv", "venv"];

/// The virtualenv a `--chdir` directory holds (`DIR/.venv` or `DIR/venv`,
/// with a `pyvenv.cfg`), if any.
pub fn venv_in(dir: &Path) -> Option<PathBuf> {
    PROJECT_VENVS
        .iter()
        .map(|name| dir.join(name))
        .find(|venv| venv.join("pyvenv.cfg").is_file() && python_of(venv).exists())
}

/// The Python version a virtualenv was made by: `version` (venv) or
/// `version_info` (virtualenv) in its `pyvenv.cfg`, else its
/// `lib/pythonX.Y` directory.
pub fn venv_version(venv: &Path) -> Result<PythonVersion, String> {
    let cfg = venv.join("pyvenv.cfg");
    match std::fs::read_to_string(&cfg) {
        Ok(text) => {
            let value = |key: &str| {
                text.lines().find_map(|line| {
                    let (k, v) = line.split_once('=')?;
                    (k.trim() == key).then(|| v.trim().to_owned())
                })
            };
            let found = value("version").or_else(|| value("version_info"));
            return found
                .as_deref()
                .and_then(PythonVersion::parse)
                .ok_or_else(|| {
                    format!(
                        "cannot tell which Python made the virtualenv {}: its pyvenv.cfg has no \
                         readable `version`",
                        venv.display()
                    )
                });
        }
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(format!(
                "cannot read {} (to tell which Python made that virtualenv): {e}",
                cfg.display()
            ))
        }
        Err(_) => {}
    }
    let from_lib = std::fs::read_dir(venv.join("lib")).ok().and_then(|dir| {
        dir.flatten().find_map(|entry| {
            let name = entry.file_name();
            PythonVersion::parse(name.to_str()?.strip_prefix("python")?)
        })
    });
    from_lib.ok_or_else(|| {
        format!(
            "cannot tell which Python made the virtualenv {}: it has no pyvenv.cfg and no \
             lib/pythonX.Y",
            venv.display()
        )
    })
}

/// Whether `venv` is the running Python's own prefix (the Python
/// package, run from the venv it is installed in): nothing to add.
pub fn is_running_prefix(venv: &Path) -> bool {
    running().is_some_and(|r| same_dir(venv, &r.prefix))
}

/// Refuses a virtualenv made by another Python than the one serving the
/// app, with the fix.
pub fn check_virtualenv(venv: &Path) -> Result<(), String> {
    let made_by = venv_version(venv)?;
    let serving = version();
    if made_by == serving {
        return Ok(());
    }
    let what = match running() {
        Some(r) => format!(
            "this ferrocorn runs on Python {serving} ({})",
            r.executable.display()
        ),
        None => format!("this ferrocorn binary embeds Python {serving}"),
    };
    let venv_shown = venv.display();
    Err(format!(
        "the virtualenv {venv_shown} was made by Python {made_by}, but {what}: \
         install Ferrocorn into that virtualenv ({venv_shown}/bin/pip install \
         <ferrocorn checkout or wheel>) and run {venv_shown}/bin/ferrocorn"
    ))
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// The site-packages directory of a virtualenv for `version`.
pub fn site_packages(venv: &Path, version: PythonVersion) -> PathBuf {
    venv.join("lib")
        .join(format!("python{version}"))
        .join("site-packages")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn venv_with(cfg: Option<&str>, lib: Option<&str>) -> tempdir::Dir {
        let dir = tempdir::Dir::new();
        std::fs::create_dir_all(dir.path().join("bin")).unwrap();
        std::fs::write(dir.path().join("bin/python"), "").unwrap();
        if let Some(cfg) = cfg {
            std::fs::write(dir.path().join("pyvenv.cfg"), cfg).unwrap();
        }
        if let Some(lib) = lib {
            std::fs::create_dir_all(dir.path().join("lib").join(lib)).unwrap();
        }
        dir
    }

    /// A directory removed on drop (std only).
    mod tempdir {
        use std::path::{Path, PathBuf};
        use std::sync::atomic::{AtomicU32, Ordering};

        pub struct Dir(PathBuf);
        impl Dir {
            pub fn new() -> Dir {
                static N: AtomicU32 = AtomicU32::new(0);
                let path = std::env::temp_dir().join(format!(
                    "ferrocorn-host-test-{}-{}",
                    std::process::id(),
                    N.fetch_add(1, Ordering::SeqCst)
                ));
                std::fs::create_dir_all(&path).unwrap();
                Dir(path)
            }
            pub fn path(&self) -> &Path {
                &self.0
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    #[test]
    fn reads_the_version_venv_and_virtualenv_write() {
        let venv = venv_with(Some("home = /usr/bin\nversion = 3.12.1\n"), None);
        assert_eq!(
            venv_version(venv.path()),
            Ok(PythonVersion {
                major: 3,
                minor: 12
            })
        );
        let virtualenv = venv_with(Some("home = /x\nversion_info = 3.9.18.final.0\n"), None);
        assert_eq!(
            venv_version(virtualenv.path()),
            Ok(PythonVersion { major: 3, minor: 9 })
        );
        let old = venv_with(None, Some("python3.10"));
        assert_eq!(
            venv_version(old.path()),
            Ok(PythonVersion {
                major: 3,
                minor: 10
            })
        );
    }

    #[test]
    fn a_venv_it_cannot_read_is_one_clear_line() {
        let venv = venv_with(Some("home = /usr/bin\n"), None);
        let err = venv_version(venv.path()).unwrap_err();
        assert!(err.contains("no readable `version`"), "{err}");
        let nothing = venv_with(None, None);
        let err = venv_version(nothing.path()).unwrap_err();
        assert!(err.contains("no pyvenv.cfg"), "{err}");
        assert!(!err.contains('\n'));
    }

    #[test]
    fn refuses_a_venv_of_another_python_naming_both_and_the_fix() {
        let serving = embedded_version();
        let other = format!("{}.{}.0", serving.major, serving.minor + 1);
        let venv = venv_with(Some(&format!("version = {other}\n")), None);
        let err = check_virtualenv(venv.path()).unwrap_err();
        let shown = venv.path().display().to_string();
        assert!(
            err.contains(&format!(
                "the virtualenv {shown} was made by Python {}.{}",
                serving.major,
                serving.minor + 1
            )),
            "{err}"
        );
        assert!(err.contains(&format!("embeds Python {serving}")), "{err}");
        assert!(err.contains(&format!("{shown}/bin/pip install")), "{err}");
        let same = venv_with(Some(&format!("version = {serving}.4\n")), None);
        assert_eq!(check_virtualenv(same.path()), Ok(()));
    }

    #[test]
    fn finds_the_project_venv_in_the_chdir_directory() {
        let project = tempdir::Dir::new();
        assert_eq!(venv_in(project.path()), None);
        let venv = project.path().join(".venv");
        std::fs::create_dir_all(venv.join("bin")).unwrap();
        std::fs::write(venv.join("bin/python"), "").unwrap();
        assert_eq!(venv_in(project.path()), None, "no pyvenv.cfg: not a venv");
        std::fs::write(venv.join("pyvenv.cfg"), "version = 3.11.2\n").unwrap();
        assert_eq!(venv_in(project.path()), Some(venv));
    }
}
