//! The `ferrocorn` binary; everything is in the library (`lib.rs`).

use std::process::ExitCode;

fn main() -> ExitCode {
    ferrocorn::cli()
}
