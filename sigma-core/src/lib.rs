//! The media vocabulary shared by every Sigma stage.
//!
//! Sigma is a pipeline: RTMP ingest → (transcode) → CMAF chunker → LL-HLS origin. Every stage
//! speaks the types in this crate and nothing else:
//!
//! - [`Frame`]: one access unit of one track, with `Bytes` payload (cloning never copies it).
//! - [`TrackInfo`] and [`StreamInfo`]: codec configuration carried out of band, shared as
//!   `Arc<StreamInfo>` with a generation counter so downstream stages notice a codec change.
//! - [`time`]: timescale rescaling without drift and RTMP timestamp unwrapping.
//! - [`bus`]: the bounded fan-out from one producer to many consumers of a live stream.
//! - [`StreamEvent`]: typed lifecycle events (published, unpublished, codec changed, …).
//! - [`Error`]: the crate's one error type.
//!
//! Nothing here performs IO or reads a clock: callers pass time in.
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

pub mod bus;
mod error;
mod event;
mod frame;
pub mod time;
mod track;

pub use error::Error;
pub use event::{StreamEvent, StreamKey, UnpublishReason};
pub use frame::{Frame, TrackId};
pub use track::{AacConfig, CodecConfig, H264Config, MediaKind, StreamInfo, TrackInfo};

/// The version of this crate, for banners and diagnostics.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
