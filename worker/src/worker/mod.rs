//! The worker's side of the protocol, with no Python in it: the framed
//! connection, the request body stream, the response writer and the
//! serving loop.

pub mod connection;
pub mod recycle;
pub mod request_body;
pub mod response;
pub mod response_head;
mod serve;
pub mod timeout_reply;

pub use connection::{Blocker, ConnError, Connection, Direct};
pub use recycle::Recycle;
pub use response::{PendingHead, ResponseWriter, WriteError};
pub use response_head::HeadFields;
pub use serve::{serve, Handler, ServeConfig};
