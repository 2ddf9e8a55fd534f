//! `ferrocorn ctl [--control-socket PATH] [--json] [COMMAND...]`: sends one
//! command to a running master and prints its reply; with no command, reads
//! commands from standard input, one per line, with a prompt when that is a
//! terminal (`gunicornc`'s interactive mode). Exit codes: 0 done, 1 the
//! server refused (any command, in interactive mode) or could not be
//! reached, 2 a usage mistake.

use std::ffi::OsString;
use std::io::{self, BufRead, BufReader, IsTerminal, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use super::protocol::{self, COMMANDS};
use super::render;
use crate::settings::DEFAULT_CONTROL_SOCKET;

/// Longest wait for the reply (the master answers from its loop at once).
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Invocation {
    socket: PathBuf,
    json: bool,
    /// None: commands come from standard input.
    command: Option<String>,
}

/// Runs `ferrocorn ctl` with the arguments after `ctl`.
pub fn main(args: &[OsString]) -> u8 {
    let invocation = match parse_args(args) {
        Ok(Some(i)) => i,
        Ok(None) => {
            let _ = io::stdout().write_all(usage().as_bytes());
            return 0;
        }
        Err(e) => {
            eprintln!("Error: {e}\n\n{}", usage());
            return 2;
        }
    };
    let Some(command) = invocation.command.as_deref() else {
        return interactive(&invocation);
    };
    match ask(&invocation.socket, command) {
        Ok(reply) => print_reply(&invocation, &reply),
        Err(e) => {
            eprintln!("Error: {e}");
            1
        }
    }
}

/// Commands from standard input, each on its own connection (the master
/// drops a client silent for 10 s; a person at a prompt is slower). A
/// mistyped command is explained and the next one read; `quit`, `exit` or
/// the end of input stops.
fn interactive(invocation: &Invocation) -> u8 {
    let terminal = io::stdin().is_terminal();
    // Reached once first, so a wrong path is said before anything is typed.
    if let Err(e) = connect(&invocation.socket) {
        eprintln!("Error: {e}");
        return 1;
    }
    if terminal {
        println!(
            "Connected to {}\nType 'help' for available commands, 'quit' to exit.\n",
            invocation.socket.display()
        );
    }
    let mut failed = false;
    let mut lines = io::stdin().lock().lines();
    loop {
        if terminal {
            print!("ferrocorn> ");
            let _ = io::stdout().flush();
        }
        let line = match lines.next() {
            Some(Ok(line)) => line,
            Some(Err(e)) => {
                eprintln!("Error: reading standard input: {e}");
                return 1;
            }
            None => {
                if terminal {
                    println!();
                }
                break;
            }
        };
        let command = one_spaced(&line);
        match command.as_str() {
            "" => continue,
            "quit" | "exit" => break,
            _ => {}
        }
        if let Err(e) = protocol::Command::parse(&command) {
            eprintln!("Error: {e}");
            failed = true;
            continue;
        }
        let done = match ask(&invocation.socket, &command) {
            Ok(reply) => print_reply(invocation, &reply) == 0,
            Err(e) => {
                eprintln!("Error: {e}");
                false
            }
        };
        failed |= !done;
    }
    if failed {
        1
    } else {
        0
    }
}

fn usage() -> String {
    let mut out = format!(
        "usage: ferrocorn ctl [--control-socket PATH] [--json] [COMMAND...]\n\n\
         Sends COMMAND to a running ferrocorn over its control socket \
         (default: ./{DEFAULT_CONTROL_SOCKET}). With no COMMAND, reads commands \
         from standard input, one per line, until 'quit' or its end.\n\n\
         options:\n  -s, --control-socket PATH   the server's --control-socket\n  \
         -c, --command COMMAND       the command, as one argument (gunicornc's -c)\n  \
         -j, --json                  print the reply as the server sent it (JSON)\n  \
         -h, --help                  this text\n\ncommands:\n"
    );
    for (command, doc) in COMMANDS {
        out.push_str(&format!("  {command:<28}{doc}\n"));
    }
    out
}

/// `Ok(None)`: `--help`.
pub(crate) fn parse_args(args: &[OsString]) -> Result<Option<Invocation>, String> {
    let mut socket = PathBuf::from(DEFAULT_CONTROL_SOCKET);
    let mut json = false;
    let mut words: Vec<&str> = Vec::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let arg = arg
            .to_str()
            .ok_or_else(|| format!("argument {arg:?} is not valid UTF-8"))?;
        match arg {
            "-h" | "--help" => return Ok(None),
            "-j" | "--json" => json = true,
            "-s" | "--control-socket" => {
                socket = args
                    .next()
                    .ok_or_else(|| format!("{arg} needs a value (PATH)"))?
                    .into();
            }
            "-c" | "--command" => words.push(
                args.next()
                    .ok_or_else(|| format!("{arg} needs a value (COMMAND)"))?
                    .to_str()
                    .ok_or_else(|| format!("the {arg} value is not valid UTF-8"))?,
            ),
            _ if arg.starts_with("--control-socket=") => {
                socket = arg["--control-socket=".len()..].into();
            }
            _ if arg.starts_with('-') => return Err(format!("unknown option '{arg}'")),
            _ => words.push(arg),
        }
    }
    let command = if words.is_empty() {
        None
    } else {
        let command = one_spaced(&words.join(" "));
        // Checked here too, so a typo needs no server to be explained.
        protocol::Command::parse(&command)?;
        Some(command)
    };
    Ok(Some(Invocation {
        socket,
        json,
        command,
    }))
}

/// The command's words, one space apart (as the master compares them).
fn one_spaced(command: &str) -> String {
    command.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Connects to the control socket, saying in words why it cannot.
fn connect(socket: &Path) -> Result<UnixStream, String> {
    let path = socket.display();
    UnixStream::connect(socket).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => format!(
            "no control socket at {path}: is ferrocorn running with this one? \
             (it is made in the server's --chdir directory unless --control-socket \
             says otherwise; --no-control-socket makes none)"
        ),
        io::ErrorKind::ConnectionRefused => {
            format!("nothing answers on {path}: the server that made it is gone")
        }
        io::ErrorKind::PermissionDenied => {
            format!("permission denied on {path}: only the server's user and root may use it")
        }
        _ => format!("cannot connect to {path}: {e}"),
    })
}

/// Sends the command and returns the reply.
fn ask(socket: &Path, command: &str) -> Result<Value, String> {
    let path = socket.display();
    let mut stream = connect(socket)?;
    let io_error = |e: io::Error| format!("talking to {path}: {e}");
    stream
        .set_read_timeout(Some(REPLY_TIMEOUT))
        .map_err(io_error)?;
    // A server that refuses the connection answers and closes at once: the
    // write may then fail, but its error reply is still there to read.
    let sent = stream.write_all(&protocol::request_line(1, command));
    let mut line = String::new();
    let read = BufReader::new(&stream).read_line(&mut line);
    if !line.ends_with('\n') {
        sent.map_err(io_error)?;
        read.map_err(io_error)?;
    }
    if line.is_empty() {
        return Err(format!("{path} closed the connection without a reply"));
    }
    serde_json::from_str(&line).map_err(|e| format!("{path} sent a reply that is not JSON: {e}"))
}

fn print_reply(invocation: &Invocation, reply: &Value) -> u8 {
    let ok = reply["status"] == "ok";
    // Written, not print!ed: a closed pipe (`| head`) is not a crash.
    let mut out = io::stdout().lock();
    if invocation.json {
        let _ = writeln!(out, "{reply}");
    } else if ok {
        let _ = out.write_all(render::render(&reply["data"]).as_bytes());
    } else {
        eprintln!(
            "Error: {}",
            reply["error"]
                .as_str()
                .unwrap_or("the server refused the command")
        );
    }
    if ok {
        0
    } else {
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Option<Invocation>, String> {
        let args: Vec<OsString> = args.iter().map(OsString::from).collect();
        parse_args(&args)
    }

    #[test]
    fn options_go_anywhere_and_the_rest_is_the_command() {
        assert_eq!(
            parse(&["-s", "/run/x.ctl", "show", "workers", "--json"]),
            Ok(Some(Invocation {
                socket: "/run/x.ctl".into(),
                json: true,
                command: Some("show workers".into())
            }))
        );
        assert_eq!(
            parse(&["--control-socket=/a", "reload"])
                .unwrap()
                .unwrap()
                .socket,
            PathBuf::from("/a")
        );
        assert_eq!(
            parse(&["worker", "add", "2"]).unwrap().unwrap().socket,
            PathBuf::from("ferrocorn.ctl")
        );
        assert_eq!(parse(&["--help"]), Ok(None));
        // gunicornc's -c: the command as one argument.
        assert_eq!(
            parse(&["-c", "worker  kill 12", "-j"])
                .unwrap()
                .unwrap()
                .command,
            Some("worker kill 12".into())
        );
        // No command: read from standard input.
        assert_eq!(parse(&["-s", "/a"]).unwrap().unwrap().command, None);
    }

    #[test]
    fn mistakes_are_explained_before_connecting() {
        assert!(parse(&["-c"]).unwrap_err().contains("needs a value"));
        assert!(parse(&["show"]).unwrap_err().contains("unknown command"));
        assert!(parse(&["--bogus", "help"])
            .unwrap_err()
            .contains("unknown option"));
        assert!(parse(&["-s"]).unwrap_err().contains("needs a value"));
    }
}
