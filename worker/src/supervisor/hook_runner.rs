//! Gunicorn's master-side server hooks (`on_starting`, `when_ready`,
//! `pre_fork`, `child_exit`, `nworkers_changed`, `on_reload`, `pre_exec`,
//! `on_exit`), called by the arbiter at the points Gunicorn's arbiter calls
//! them.
//!
//! The master runs no Python of its own (and forks workers, so it must not
//! hold threads or an interpreter started for hooks). The hooks therefore
//! run in the **hook runner**: a `python` process started with a plain
//! fork+exec the first time a hook the config file defines is due. It
//! `exec`s the config file once (module-level state lives as long as the
//! runner) and answers one JSON line per call (`hook_runner.py` is its
//! source). A call is synchronous with `--hook-timeout`: a hook that does
//! not return in time is logged, its runner killed, and the master goes on;
//! the next call starts a fresh runner. The runner writes `server.log`
//! lines straight to the error log (its stderr).

use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use serde_json::{json, Value};

use crate::settings::{LogTarget, Settings};

/// The runner: the stand-ins shared with the worker's hooks, then its own code.
const SOURCE: &str = concat!(
    include_str!("../python/hook_stand_ins.py"),
    include_str!("hook_runner.py")
);
/// The runner's marker argument (it shows in `ps`).
pub const MARKER: &str = "ferrocorn-hook-runner";

/// A worker as a hook sees it (Gunicorn's `worker` argument).
#[derive(Debug, Clone, Copy)]
pub struct WorkerView {
    /// `None` before the fork (`pre_fork`): Gunicorn's `"[booting]"`.
    pub pid: Option<Pid>,
    /// Spawn number.
    pub age: u64,
    /// How it ended (`child_exit`): the exit code, or minus the signal
    /// number that killed it (`multiprocessing`'s convention).
    pub exitcode: Option<i32>,
}

/// How a call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The config file does not define the hook.
    Undefined,
    Returned,
    /// The hook raised; the traceback is logged.
    Raised,
    /// It ran past `--hook-timeout` or its runner failed; logged, and the
    /// runner is gone.
    Failed,
}

/// The master's hooks and the process that runs them.
pub struct MasterHooks {
    /// Master hooks the config file defines.
    names: Vec<String>,
    python: PathBuf,
    file: Option<PathBuf>,
    /// What the runner learns at start: master pid, log level, settings.
    setup: String,
    timeout: Duration,
    error_log: LogTarget,
    runner: Option<Runner>,
}

/// A running hook runner.
struct Runner {
    child: Child,
    calls: ChildStdin,
    replies: ChildStdout,
    /// Bytes read past the last reply line.
    pending: Vec<u8>,
}

impl MasterHooks {
    /// The hooks `settings` name; nothing starts until one is called.
    pub fn new(settings: &Settings, master: Pid) -> MasterHooks {
        let values = settings.for_hooks();
        let loglevel = settings
            .effective
            .iter()
            .find(|(n, _)| *n == "loglevel")
            .and_then(|(_, v)| v.first().cloned())
            .unwrap_or_else(|| "info".into())
            .to_ascii_lowercase();
        let setup = json!({"pid": master.as_raw(), "loglevel": loglevel, "settings": values});
        MasterHooks {
            names: settings.master_hooks.clone(),
            python: crate::config_file::python_for(settings.virtualenv.as_deref()),
            file: settings.config.clone(),
            setup: setup.to_string(),
            timeout: Duration::from_secs(settings.hook_timeout.max(1)),
            error_log: settings.error_logfile.clone(),
            runner: None,
        }
    }

    /// Whether the config file defines `hook`.
    pub fn defines(&self, hook: &str) -> bool {
        self.names.iter().any(|n| n == hook)
    }

    /// Calls `hook(server, [worker], *args)` and waits for it (up to
    /// `--hook-timeout`). `num_workers`: `server.num_workers`.
    pub fn call(
        &mut self,
        hook: &str,
        num_workers: usize,
        worker: Option<WorkerView>,
        args: &[Value],
    ) -> Outcome {
        if !self.defines(hook) {
            return Outcome::Undefined;
        }
        let mut call = json!({"hook": hook, "server": {"num_workers": num_workers}, "args": args});
        if let Some(w) = worker {
            call["worker"] = json!({
                "pid": w.pid.map_or(json!("[booting]"), |p| json!(p.as_raw())),
                "age": w.age,
                "exitcode": w.exitcode,
            });
        }
        match self.exchange(&call) {
            Ok(reply) => match reply.get("error").and_then(Value::as_str) {
                Some(tb) => {
                    error!("Exception in {hook} hook\n{}", tb.trim_end());
                    Outcome::Raised
                }
                None => Outcome::Returned,
            },
            Err(why) => {
                error!("{hook} hook: {why}");
                self.kill();
                Outcome::Failed
            }
        }
    }

    /// SIGUSR1: a running runner reopens the error log file too.
    pub fn reopen_log(&mut self) {
        if let (LogTarget::File(path), Some(_)) = (&self.error_log, &self.runner) {
            let call = json!({"reopen": path});
            if let Err(why) = self.exchange(&call) {
                error!("hook runner: cannot reopen the error log: {why}");
                self.kill();
            }
        }
    }

    /// The runner's pid, while it runs.
    pub fn runner_pid(&self) -> Option<Pid> {
        self.runner
            .as_ref()
            .map(|r| Pid::from_raw(r.child.id() as i32))
    }

    /// The arbiter reaped `pid`: if it was the runner (it died), forget it;
    /// the next call starts another. True when it was.
    pub fn reaped(&mut self, pid: Pid) -> bool {
        if self.runner_pid() != Some(pid) {
            return false;
        }
        warning!("the hook runner (pid {pid}) exited; the next hook call starts another");
        self.runner = None;
        true
    }

    /// In a freshly forked worker: close the runner's pipes without
    /// touching the process (it is the master's).
    pub fn leave_in_child(&mut self) {
        self.runner = None;
    }

    /// Sends `call`, starting the runner if needed, and reads the reply.
    fn exchange(&mut self, call: &Value) -> Result<Value, String> {
        if self.runner.is_none() {
            self.runner = Some(self.spawn_runner()?);
        }
        let deadline = Instant::now() + self.timeout;
        let runner = self.runner.as_mut().expect("started above");
        let mut line = call.to_string();
        line.push('\n');
        runner
            .calls
            .write_all(line.as_bytes())
            .map_err(|e| format!("the hook runner is gone ({e})"))?;
        match runner.read_reply(deadline)? {
            Some(reply) => Ok(reply),
            None => Err(format!(
                "did not return within {} s (--hook-timeout); killing the hook runner (pid {})",
                self.timeout.as_secs(),
                runner.child.id()
            )),
        }
    }

    /// Starts the runner now when the config file defines a master hook
    /// (it then runs the file before the first call is due).
    pub fn start(&mut self) -> Result<(), String> {
        if !self.names.is_empty() && self.runner.is_none() {
            self.runner = Some(self.spawn_runner()?);
        }
        Ok(())
    }

    /// Starts the runner and waits for it to have run the config file.
    fn spawn_runner(&mut self) -> Result<Runner, String> {
        let file = self.file.as_ref().ok_or("no config file")?;
        let stderr = match self.error_log {
            LogTarget::Stderr => Stdio::inherit(),
            _ => {
                // SAFETY: the descriptor is the error log's, owned by the
                // logging module and open for the life of the process; it
                // is only borrowed to be duplicated.
                let log = unsafe { BorrowedFd::borrow_raw(crate::logging::raw_fd()) };
                let dup = log
                    .try_clone_to_owned()
                    .map_err(|e| format!("cannot share the error log with the hook runner: {e}"))?;
                Stdio::from(dup)
            }
        };
        let mut command = Command::new(&self.python);
        command
            .arg("-c")
            .arg(SOURCE)
            .arg(MARKER)
            .arg(file)
            .arg(&self.setup)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr);
        // SAFETY: runs in the child between fork and exec; prctl(2) is
        // async-signal-safe and touches nothing of the parent's state.
        unsafe {
            command.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)
            });
        }
        let mut child = command.spawn().map_err(|e| {
            format!(
                "cannot start the hook runner {}: {e}",
                self.python.display()
            )
        })?;
        let (Some(calls), Some(replies)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            return Err("the hook runner has no pipes".into());
        };
        let mut runner = Runner {
            child,
            calls,
            replies,
            pending: Vec::new(),
        };
        debug!("hook runner started (pid {})", runner.child.id());
        let loaded = runner.read_reply(Instant::now() + self.timeout);
        let failure = match loaded {
            Ok(Some(reply)) => match reply.get("error").and_then(Value::as_str) {
                None => return Ok(runner),
                Some(tb) => format!(
                    "the hook runner cannot run {}\n{}",
                    file.display(),
                    tb.trim_end()
                ),
            },
            Ok(None) => format!(
                "the hook runner did not load {} within {} s (--hook-timeout)",
                file.display(),
                self.timeout.as_secs()
            ),
            Err(e) => e,
        };
        runner.kill();
        Err(failure)
    }

    /// Kills the runner (after a timeout or a broken pipe).
    fn kill(&mut self) {
        if let Some(mut r) = self.runner.take() {
            r.kill();
        }
    }
}

impl Drop for MasterHooks {
    /// The master is done: closing its stdin ends the runner; one that
    /// does not end within a second is killed.
    fn drop(&mut self) {
        let Some(Runner {
            mut child, calls, ..
        }) = self.runner.take()
        else {
            return;
        };
        drop(calls);
        let deadline = Instant::now() + Duration::from_secs(1);
        while Instant::now() < deadline {
            match child.try_wait() {
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                _ => return,
            }
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Runner {
    /// Reads one reply line; `None` when `deadline` passes first.
    fn read_reply(&mut self, deadline: Instant) -> Result<Option<Value>, String> {
        loop {
            if let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.pending.drain(..=end).collect();
                return serde_json::from_slice(&line)
                    .map(Some)
                    .map_err(|e| format!("the hook runner sent a bad reply ({e})"));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            let mut fds = [PollFd::new(self.replies.as_fd(), PollFlags::POLLIN)];
            let timeout = PollTimeout::try_from(left).unwrap_or(PollTimeout::MAX);
            match poll(&mut fds, timeout) {
                Ok(0) | Err(Errno::EINTR) => continue,
                Ok(_) => {}
                Err(e) => return Err(format!("cannot wait for the hook runner: {e}")),
            }
            let mut chunk = [0u8; 4096];
            match self.replies.read(&mut chunk) {
                Ok(0) => return Err("the hook runner exited".into()),
                Ok(n) => self.pending.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("cannot read from the hook runner: {e}")),
            }
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::{parse, Command as Parsed};
    use std::ffi::OsString;

    /// Hooks from `source`, written to a config file in a fresh directory.
    fn hooks(source: &str, extra: &[&str]) -> (MasterHooks, PathBuf) {
        let dir = std::env::temp_dir().join(format!(
            "ferrocorn-hook-runner-{}-{}",
            std::process::id(),
            source.len()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("hooks.conf.py");
        std::fs::write(&file, source.replace("DIR", &dir.to_string_lossy())).unwrap();
        let mut args: Vec<OsString> = vec!["-c".into(), file.clone().into()];
        args.extend(extra.iter().map(OsString::from));
        args.push("app:application".into());
        let Parsed::Run(settings) = parse(&args, None).unwrap() else {
            panic!("not a run");
        };
        (MasterHooks::new(&settings, Pid::from_raw(4242)), dir)
    }

    #[test]
    fn hooks_get_gunicorns_arguments_and_keep_their_state() {
        let (mut hooks, dir) = hooks(
            "_calls = []\n\
             def pre_fork(server, worker):\n\
             \x20   _calls.append(worker.age)\n\
             \x20   open('DIR/seen', 'w').write('%s %s %s %s %s' % (server.pid, server.num_workers, \
                     server.cfg.workers, worker.pid, _calls))\n\
             def child_exit(server, worker):\n\
             \x20   open('DIR/seen', 'w').write('%s %s %s' % (worker.pid, worker.age, worker.exitcode))\n\
             def nworkers_changed(server, new, old):\n\
             \x20   open('DIR/seen', 'w').write('%s %s' % (new, old))\n",
            &["--workers", "3"],
        );
        assert!(hooks.defines("pre_fork") && !hooks.defines("on_exit"));
        assert_eq!(hooks.call("on_exit", 3, None, &[]), Outcome::Undefined);
        hooks.start().unwrap();
        let booting = WorkerView {
            pid: None,
            age: 7,
            exitcode: None,
        };
        let seen = || std::fs::read_to_string(dir.join("seen")).unwrap();
        assert_eq!(
            hooks.call("pre_fork", 4, Some(booting), &[]),
            Outcome::Returned
        );
        assert_eq!(seen(), "4242 4 3 [booting] [7]");
        assert_eq!(
            hooks.call("pre_fork", 4, Some(booting), &[]),
            Outcome::Returned
        );
        assert_eq!(seen(), "4242 4 3 [booting] [7, 7]");
        let gone = WorkerView {
            pid: Some(Pid::from_raw(99)),
            age: 7,
            exitcode: Some(-9),
        };
        assert_eq!(
            hooks.call("child_exit", 4, Some(gone), &[]),
            Outcome::Returned
        );
        assert_eq!(seen(), "99 7 -9");
        let args = [json!(4), json!(null)];
        assert_eq!(
            hooks.call("nworkers_changed", 4, None, &args),
            Outcome::Returned
        );
        assert_eq!(seen(), "4 None");
        drop(hooks);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_raising_hook_is_reported_and_a_hanging_one_cut_off() {
        let (mut hooks, dir) = hooks(
            "import time\n\
             def on_reload(server):\n    raise ValueError('nope')\n\
             def on_exit(server):\n    time.sleep(3600)\n\
             def when_ready(server):\n    pass\n",
            &["--hook-timeout", "1"],
        );
        hooks.start().unwrap();
        assert_eq!(hooks.call("on_reload", 1, None, &[]), Outcome::Raised);
        let first = hooks.runner_pid().unwrap();
        assert_eq!(hooks.call("on_exit", 1, None, &[]), Outcome::Failed);
        assert_eq!(hooks.runner_pid(), None);
        // The next call runs in a fresh runner.
        assert_eq!(hooks.call("when_ready", 1, None, &[]), Outcome::Returned);
        assert_ne!(hooks.runner_pid(), Some(first));
        drop(hooks);
        let _ = std::fs::remove_dir_all(dir);
    }
}
