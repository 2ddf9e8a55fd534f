//! Ferrocorn's wire contract, shared by the nginx module and the worker.
//!
//! # Layout
//!
//! - `proto/ferrocorn.proto`: the messages, documented field by field; the
//!   source of truth. Compiled by `build.rs` into [`pb`].
//! - [`frame`]: the length prefix, frame size limit, whole-frame encode and
//!   incremental decode ("need more bytes" is `Ok(None)`, not an error).
//! - [`body`]: hand-written prefixes of body frames, so a sender can put a
//!   frame header in front of a buffer it does not copy.
//! - [`request_head`]: an allocation-free encoder of `request_head` from
//!   borrowed slices (the module's hot path), checked against prost.
//! - [`request_head_view`]: the worker's decoder of `request_head`, a view
//!   whose fields are slices of the received frame (no allocation per
//!   header), checked against prost.
//! - [`response_stream`]: the module's incremental parser of the response
//!   body stream (`response_body*` then `response_end` or `error`), fed
//!   whatever bytes nginx read, split anywhere.

pub mod body;
pub mod frame;
pub mod request_head;
pub mod request_head_view;
pub mod response_head_view;
pub mod response_stream;

/// Generated protobuf types of `proto/ferrocorn.proto`.
#[allow(clippy::large_enum_variant)] // generated; boxing would cost an allocation per request
pub mod pb {
    include!(concat!(env!("OUT_DIR"), "/ferrocorn.v1.rs"));
}

/// The version both sides put in their head frames.
pub const PROTOCOL_VERSION: u32 = 1;

pub use frame::{FrameError, FRAME_HEADER_LEN, MAX_FRAME_SIZE};
