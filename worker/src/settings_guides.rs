//! The guides in `docs/` checked against the settings, as the README's
//! table is (`settings::markdown`): their tables and text map other
//! servers' options to ferrocorn's, and must not drift from what ships.
//!
//! Two rules, over every guide's table rows and prose (fenced blocks are
//! left to `tests/test_docs.py`, which runs them):
//!
//! - a flag named in backquotes (`` `--max-requests N` ``) is one the real
//!   parsers know (a setting, `--help`/`--version`/`--help-markdown`, a
//!   Gunicorn flag ferrocorn refuses by name, or a `ferrocorn ctl`
//!   option), unless its table row or sentence says "planned" or "yet";
//! - such a row or sentence names no flag that exists: what ships is
//!   described as shipped.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::ctl::client;
use crate::settings;

/// Whether `flag` is one ferrocorn or `ferrocorn ctl` knows: their own
/// parsers are asked, and say "unknown option" only for the others.
fn is_known_flag(flag: &str) -> bool {
    let args = [OsString::from(flag)];
    let unknown = |message: &str| message.starts_with("unknown option");
    let main = !matches!(settings::parse(&args, None), Err(e) if unknown(&e.0));
    let ctl = !matches!(client::parse_args(&args), Err(e) if unknown(&e));
    main || ctl
}

/// The flag a backquoted span starts with: `--max-requests` for
/// `` `--max-requests N` `` or `` `--env=K=V` ``; `None` for other spans.
fn flag_of(span: &str) -> Option<&str> {
    if !span.starts_with("--") || span.len() < 3 {
        return None;
    }
    let end = span.find([' ', '=']).unwrap_or(span.len());
    Some(&span[..end])
}

/// The backquoted spans of `text`.
fn spans(text: &str) -> impl Iterator<Item = &str> {
    text.split('`').skip(1).step_by(2)
}

/// What a reader takes as one claim: a table row, or a sentence of prose.
/// Fenced code blocks are left out.
fn statements(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut paragraph = String::new();
    let mut in_fence = false;
    for line in text.lines() {
        if line.starts_with("```") {
            in_fence = !in_fence;
        } else if !in_fence && line.starts_with('|') {
            out.push(line.to_owned());
        } else if !in_fence && !line.trim().is_empty() {
            paragraph.push(' ');
            paragraph.push_str(line);
            continue;
        }
        sentences_into(&mut out, &mut paragraph);
    }
    sentences_into(&mut out, &mut paragraph);
    out
}

/// Moves the sentences of `paragraph` to `out`.
fn sentences_into(out: &mut Vec<String>, paragraph: &mut String) {
    out.extend(
        paragraph
            .split(". ")
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from),
    );
    paragraph.clear();
}

/// Whether a statement says something is not there yet.
fn says_not_yet(statement: &str) -> bool {
    statement
        .split(|c: char| !c.is_ascii_alphabetic())
        .any(|word| word.eq_ignore_ascii_case("planned") || word.eq_ignore_ascii_case("yet"))
}

/// What is wrong in the guide `text`, one line each.
fn problems(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for statement in statements(text) {
        let not_yet = says_not_yet(&statement);
        for flag in spans(&statement).filter_map(flag_of) {
            let known = is_known_flag(flag);
            if !known && !not_yet {
                out.push(format!("`{flag}` is no ferrocorn option: {statement}"));
            } else if known && not_yet {
                out.push(format!(
                    "`{flag}` ships, but this calls it planned or not there yet: {statement}"
                ));
            }
        }
    }
    out
}

fn guides() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs");
    let mut guides: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "md"))
        .collect();
    guides.sort();
    guides
}

#[test]
fn guides_name_only_real_flags_and_call_none_that_ships_planned() {
    let guides = guides();
    assert!(
        guides.iter().any(|g| g.ends_with("from-uwsgi.md"))
            && guides.iter().any(|g| g.ends_with("from-unit.md")),
        "the guides are found: {guides:?}"
    );
    let mut all = Vec::new();
    for guide in guides {
        let text = std::fs::read_to_string(&guide).unwrap();
        all.extend(
            problems(&text)
                .into_iter()
                .map(|p| format!("{}: {p}", guide.file_name().unwrap().to_string_lossy())),
        );
    }
    assert!(all.is_empty(), "stale guides:\n{}", all.join("\n"));
}

#[test]
fn flags_are_asked_of_the_real_parsers() {
    for known in [
        "--max-requests",
        "--umask",
        "--help-markdown",
        "--worker-class",
        "--json",
    ] {
        assert!(is_known_flag(known), "{known}");
    }
    assert!(!is_known_flag("--max-requets"));
    assert!(!is_known_flag("--harakiri"));
}

/// The check can fail: rows and sentences the guides held before the
/// settings they call planned shipped.
#[test]
fn stale_text_is_caught() {
    let stale = [
        "| `max-requests = N` | none yet (planned: `--max-requests N`, `--max-requests-jitter N`) | workers are not recycled after N requests |",
        "| `uid`, `gid` | systemd `User=`/`Group=` | Ferrocorn does not switch users itself yet (planned: `--user`, `--group`) |",
        "| `environment` | the environment ferrocorn starts with | `KEY=VALUE ferrocorn ...` or systemd `Environment=`; planned: `--env KEY=VALUE` |",
        "The master is the oldest process with the socket on its command line\n(under systemd it is `$MAINPID`; `--pid FILE` is planned):",
        "| `harakiri = S` | `--harakiri S` | a worker busy for longer is killed |",
    ];
    for text in stale {
        assert!(!problems(text).is_empty(), "not caught: {text}");
    }
    assert_eq!(problems(stale[0]).len(), 2, "each flag is named");
    assert!(problems(
        "| `max-requests = N` | `--max-requests N` | the worker is replaced |\n\
         A real option is shipped. Another (`--frobnicate`) is planned."
    )
    .is_empty());
}
