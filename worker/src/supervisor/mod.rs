//! The pre-fork supervisor (Gunicorn's arbiter): the master loop, its
//! decisions, the listening sockets, the worker heartbeats and the fork.

mod arbiter;
pub mod heartbeat;
pub mod listener;
mod spawn;
pub mod workers;

pub use arbiter::run;
