//! Running as a system service: the umask, the pidfile, the environment
//! from `raw_env`, and the user and group workers switch to after fork.

use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::sys::stat::{umask, Mode};
use nix::unistd::{setgid, setgroups, setuid, Gid, Group, Uid, User};

use super::listener::SocketFileOwner;
use crate::settings::Settings;

/// Who workers run as, resolved once by the master.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    pub uid: Option<Uid>,
    pub gid: Option<Gid>,
}

/// Applies what the master itself needs before binding: the umask (when
/// one is given) and `raw_env`. Resolves `--user`/`--group`.
pub fn prepare(settings: &Settings) -> Result<Identity, String> {
    if settings.umask != 0 {
        umask(Mode::from_bits_truncate(settings.umask as _));
    }
    for (key, value) in &settings.raw_env {
        // The master is single-threaded: nothing reads the environment
        // concurrently.
        std::env::set_var(key, value);
    }
    let uid = settings.user.as_deref().map(resolve_user).transpose()?;
    let gid = match settings.group.as_deref() {
        Some(g) => Some(resolve_group(g)?),
        // Gunicorn: the user's primary group when only --user is given.
        None => match settings.user.as_deref() {
            Some(u) if !u.chars().all(|c| c.is_ascii_digit()) => {
                User::from_name(u).ok().flatten().map(|user| user.gid)
            }
            _ => None,
        },
    };
    Ok(Identity { uid, gid })
}

fn resolve_user(user: &str) -> Result<Uid, String> {
    if let Ok(n) = user.parse::<u32>() {
        return Ok(Uid::from_raw(n));
    }
    match User::from_name(user) {
        Ok(Some(u)) => Ok(u.uid),
        Ok(None) => Err(format!("invalid value '{user}' for --user: no such user")),
        Err(e) => Err(format!("cannot look up user '{user}': {e}")),
    }
}

fn resolve_group(group: &str) -> Result<Gid, String> {
    if let Ok(n) = group.parse::<u32>() {
        return Ok(Gid::from_raw(n));
    }
    match Group::from_name(group) {
        Ok(Some(g)) => Ok(g.gid),
        Ok(None) => Err(format!(
            "invalid value '{group}' for --group: no such group"
        )),
        Err(e) => Err(format!("cannot look up group '{group}': {e}")),
    }
}

/// Owner and mode of the unix socket files: `--bind-mode`, the workers'
/// user, and `--bind-group` (else the workers' group), as Gunicorn gives
/// them to its workers.
pub fn socket_owner(who: Identity, settings: &Settings) -> Result<SocketFileOwner, String> {
    let gid = match settings.bind_group.as_deref() {
        Some(g) => Some(resolve_group(g).map_err(|e| e.replace("--group", "--bind-group"))?),
        None => who.gid,
    };
    Ok(SocketFileOwner {
        uid: who.uid,
        gid,
        mode: socket_mode(settings),
    })
}

/// `--bind-mode`, or its default: 0660 when `--bind-group` names nginx's
/// group, else 0666 (nobody but the operator knows nginx's user), less the
/// bits `--umask` masks, as Gunicorn's socket files are.
pub fn socket_mode(settings: &Settings) -> u32 {
    settings.bind_mode.unwrap_or_else(|| {
        let base = if settings.bind_group.is_some() {
            0o660
        } else {
            0o666
        };
        base & !settings.umask
    })
}

/// In a new worker, before Python starts: group first, then user.
pub fn switch_to(who: Identity) -> Result<(), String> {
    if let Some(gid) = who.gid {
        if Uid::effective().is_root() {
            setgroups(&[gid]).map_err(|e| format!("cannot set groups: {e}"))?;
        }
        setgid(gid).map_err(|e| format!("cannot switch to group {gid}: {e}"))?;
    }
    if let Some(uid) = who.uid {
        setuid(uid).map_err(|e| format!("cannot switch to user {uid}: {e}"))?;
    }
    Ok(())
}

/// The pidfile, removed when dropped (at the master's exit).
pub struct PidFile(PathBuf);

impl PidFile {
    pub fn create(path: &Path) -> Result<PidFile, String> {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .open(path)
            .map_err(|e| format!("cannot write the pidfile {}: {e}", path.display()))?;
        use std::io::Write;
        writeln!(file, "{}", std::process::id())
            .map_err(|e| format!("cannot write the pidfile {}: {e}", path.display()))?;
        Ok(PidFile(path.to_owned()))
    }
}

impl PidFile {
    /// Moves the pidfile (USR2: `<pidfile>.oldbin` while a new master
    /// runs; back when that one fails).
    pub fn rename(&mut self, to: PathBuf) -> Result<(), String> {
        std::fs::rename(&self.0, &to).map_err(|e| {
            format!(
                "cannot rename the pidfile {} to {}: {e}",
                self.0.display(),
                to.display()
            )
        })?;
        self.0 = to;
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        // Only ours: a new master (binary upgrade) may have rewritten it.
        let ours = std::fs::read_to_string(&self.0)
            .is_ok_and(|s| s.trim() == std::process::id().to_string());
        if ours {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}
