//! The media vocabulary shared by every Sigma stage.
//!
//! ```
//! use bytes::Bytes;
//! use sigma_core::bus::{self, Event, Window};
//! use sigma_core::{AacConfig, CodecConfig, Frame, StreamInfo, TrackId, TrackInfo};
//!
//! // One AAC-LC 48 kHz stereo track; its configuration travels out of band.
//! let aac = AacConfig::from_audio_specific_config(Bytes::from_static(&[0x11, 0x90]))?;
//! let track = TrackInfo::new(TrackId(2), 48_000, CodecConfig::Aac(aac))?;
//! let (mut producer, subscriber) = bus::channel(Window::default());
//! let mut consumer = subscriber.subscribe();
//! producer.set_info(StreamInfo::new(1, vec![track])?);
//! for n in 0..3 {
//!     let payload = Bytes::from_static(b"one AAC frame");
//!     producer.push(Frame::new(TrackId(2), n * 1024, n * 1024, true, payload))?;
//! }
//! producer.finish();
//! // Every consumer gets the stream info, the frames (sharing their payloads), then the end.
//! assert!(matches!(consumer.pull(), Some(Event::Info(_))));
//! let mut frames = 0;
//! while let Some(Event::Frame(f)) = consumer.pull() {
//!     assert_eq!(f.dts(), frames * 1024);
//!     frames += 1;
//! }
//! assert_eq!(frames, 3);
//! # Ok::<(), sigma_core::Error>(())
//! ```
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
//! - [`StreamKey`]: names a stream; [`StreamKey::valid_name`] is the one naming rule.
//! - [`Error`]: the crate's one error type.
//! - `media` (cargo feature `media`): the MP4 test-media reader shared by tests, benches and
//!   `sigma-load`.
//!
//! Nothing here performs IO or reads a clock (callers pass time in), except `media`, which
//! reads files.
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

pub mod bus;
mod error;
mod event;
mod frame;
#[cfg(feature = "media")]
pub mod media;
pub mod time;
mod track;

pub use error::Error;
pub use event::{StreamEvent, StreamKey, UnpublishReason};
pub use frame::{Frame, TrackId};
pub use track::{AacConfig, CodecConfig, H264Config, MediaKind, StreamInfo, TrackInfo};

/// The version of this crate, for banners and diagnostics.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
