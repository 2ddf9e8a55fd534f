//! The worker's side of the protocol, with no Python in it: the framed
//! connection, the request body stream, the response writer and the
//! serving loops (single-threaded, and with a pool of threads).

pub mod connection;
pub mod file_watch;
mod idle_trim;
pub mod in_flight;
pub mod recycle;
pub mod request_body;
pub mod response;
pub mod response_head;
mod serve;
mod serve_threaded;
pub mod timeout_reply;

pub use connection::{Blocker, ConnError, Connection, Direct};
pub use recycle::Recycle;
pub use response::{PendingHead, ResponseWriter, WriteError};
pub use response_head::HeadFields;
pub use serve::{reloading, serve, Handler, ServeConfig};
pub use serve_threaded::{serve_threaded, ThreadHandlers};
