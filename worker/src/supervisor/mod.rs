//! The pre-fork supervisor (Gunicorn's arbiter): the master loop, its
//! decisions, the listening sockets, the worker heartbeats, the control
//! socket and the fork.

mod arbiter;
mod check;
pub mod control;
mod daemon;
pub mod heartbeat;
pub mod hook_runner;
pub mod listener;
pub mod service;
mod spawn;
pub mod systemd;
mod upgrade;
pub mod workers;

pub use arbiter::run;
