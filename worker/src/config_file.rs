//! `-c FILE`: a Gunicorn-style Python config file, evaluated without
//! Python in the master.
//!
//! The binary's master never starts CPython (workers fork from a
//! Python-free process, so nothing of an interpreter is shared or
//! half-initialized at fork), and the Python package's master runs no
//! Python code of the user's before it forks. The file is therefore run by
//! a short-lived `python` subprocess: the virtualenv's `bin/python` when
//! one is given (so the file can import what the app imports), else the
//! running Python (the package) or the interpreter the binary was built
//! against. That process `exec`s the file as Gunicorn does and prints every
//! top-level name as NUL-separated records, which [`evaluate`] returns for
//! the settings table to validate like command-line values. A file that
//! raises stops the start with its traceback.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// One top-level name of the config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A value, converted to its command-line spelling (lists of a
    /// repeatable setting give one entry per element).
    Value { name: String, value: String },
    /// A callable: a server hook if its name is one.
    Callable { name: String },
    /// A value of a type no setting takes.
    Unsupported { name: String, type_name: String },
}

/// Runs in the subprocess: argv[1] is the file, argv[2] the names whose
/// lists are repeated settings.
const EVALUATOR: &str = r#"
import sys, types
path, repeatable = sys.argv[1], set(sys.argv[2].split(","))
ns = {"__file__": path, "__name__": "__config__", "__builtins__": __builtins__}
try:
    with open(path, "rb") as f:
        code = compile(f.read(), path, "exec")
    exec(code, ns)
except SystemExit:
    raise
except BaseException:
    import traceback
    traceback.print_exc()
    sys.exit(1)
out = []
def emit(kind, name, value=""):
    out.append("%s\0%s\0%s\0" % (kind, name, value))
def spell(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float, str)):
        return str(v)
    raise TypeError(type(v).__name__)
for name, value in ns.items():
    if name.startswith("_") or isinstance(value, (types.ModuleType, type)):
        continue
    if callable(value):
        emit("callable", name)
        continue
    if value is None:
        continue
    try:
        if isinstance(value, (list, tuple)):
            if name in repeatable:
                for v in value:
                    emit("value", name, spell(v))
            else:
                emit("value", name, ",".join(spell(v) for v in value))
        elif isinstance(value, dict):
            emit("value", name, ",".join("%s=%s" % (spell(k), spell(v)) for k, v in value.items()))
        else:
            emit("value", name, spell(value))
    except TypeError as e:
        emit("unsupported", name, str(e))
sys.stdout.buffer.write("".join(out).encode("utf-8", "surrogateescape"))
"#;

/// The interpreter that evaluates config files.
pub fn python_for(virtualenv: Option<&Path>) -> PathBuf {
    crate::python::host::python_executable(virtualenv)
}

/// Evaluates `file` with `python`. `repeatable`: names of settings that
/// may be given several times.
pub fn evaluate(file: &Path, python: &Path, repeatable: &[&str]) -> Result<Vec<Entry>, String> {
    if !file.is_file() {
        return Err(format!("config file {} does not exist", file.display()));
    }
    let output = Command::new(python)
        .arg("-c")
        .arg(EVALUATOR)
        .arg(file)
        .arg(repeatable.join(","))
        .stdin(Stdio::null())
        .output()
        .map_err(|e| {
            format!(
                "cannot run {} to read the config file: {e}",
                python.display()
            )
        })?;
    if !output.status.success() {
        return Err(format!(
            "config file {} failed:\n{}",
            file.display(),
            String::from_utf8_lossy(&output.stderr).trim_end()
        ));
    }
    parse_records(&output.stdout)
}

fn parse_records(bytes: &[u8]) -> Result<Vec<Entry>, String> {
    let text = String::from_utf8_lossy(bytes);
    let fields: Vec<&str> = text.split('\0').collect();
    let mut entries = Vec::new();
    for record in fields.chunks_exact(3) {
        let (kind, name, value) = (record[0], record[1].to_owned(), record[2].to_owned());
        entries.push(match kind {
            "value" => Entry::Value { name, value },
            "callable" => Entry::Callable { name },
            "unsupported" => Entry::Unsupported {
                name,
                type_name: value,
            },
            other => return Err(format!("config evaluator sent an unknown record {other:?}")),
        });
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(source: &str) -> Result<Vec<Entry>, String> {
        let dir = std::env::temp_dir().join(format!("ferrocorn-conf-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join(format!("c{}.py", source.len()));
        std::fs::write(&file, source).unwrap();
        evaluate(&file, &python_for(None), &["bind", "raw_env"])
    }

    fn value(name: &str, value: &str) -> Entry {
        Entry::Value {
            name: name.into(),
            value: value.into(),
        }
    }

    #[test]
    fn values_hooks_and_helpers() {
        let entries = eval(
            "import multiprocessing\n\
             _cores = 2\n\
             bind = ['unix:/run/a.sock', '127.0.0.1:9000']\n\
             workers = _cores * 2 + 1\n\
             preload_app = True\n\
             timeout = 10.0\n\
             pythonpath = ['/a', '/b']\n\
             accesslog = None\n\
             def post_fork(server, worker):\n    pass\n\
             obj = object()\n",
        )
        .unwrap();
        assert_eq!(
            entries,
            vec![
                value("bind", "unix:/run/a.sock"),
                value("bind", "127.0.0.1:9000"),
                value("workers", "5"),
                value("preload_app", "true"),
                value("timeout", "10.0"),
                value("pythonpath", "/a,/b"),
                Entry::Callable {
                    name: "post_fork".into()
                },
                Entry::Unsupported {
                    name: "obj".into(),
                    type_name: "object".into()
                },
            ]
        );
    }

    #[test]
    fn a_failing_file_shows_its_traceback() {
        let err = eval("workers = 1 / 0\n").unwrap_err();
        assert!(err.contains("ZeroDivisionError"), "{err}");
        let missing = evaluate(Path::new("/nonexistent.py"), &python_for(None), &[]);
        assert!(missing.unwrap_err().contains("does not exist"));
    }
}
