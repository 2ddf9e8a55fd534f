//! `ferrocorn ctl` (Gunicorn's `gunicornc`): commands to a running master
//! over its control socket.
//!
//! - `protocol`: the JSON lines both sides speak, and the commands.
//! - `client`: the `ferrocorn ctl` command line.
//! - `render`: replies as tables and lines for people (`--json`: as sent).
//!
//! The master's side is [`crate::supervisor::control`].

pub mod client;
pub mod protocol;
pub mod render;
