//! CMAF fMP4 packaging and a Low-Latency HLS origin (draft-pantos-hls-rfc8216bis).
//!
//! Layers, bottom up; only the last two do IO:
//! - [`cmaf`]: pure box writers — init segments and CMAF chunk headers (ISO/IEC 14496-12,
//!   ISO/IEC 23000-19). Payloads are never copied: a chunk is a header plus the frames' `Bytes`.
//! - [`segmenter`]: sans-IO `push(frame, now)` / `pull()` state machine cutting parts and
//!   segments (RFC 8216bis §4.4.4.9, §4.4.3.7).
//! - [`playlist`]: the bounded per-rendition window of segments and parts, and pure rendering
//!   of media and multivariant playlists (§4.4.3–4.4.6), delta updates (§6.2.5.1).
//! - [`directive`]: parsing of the delivery directives `_HLS_msn`, `_HLS_part`, `_HLS_skip`
//!   (§6.2.5) from untrusted query strings.
//! - [`origin`]: the tokio layer — a registry of streams, a task per published bus feeding a
//!   segmenter, and blocking playlist reload / preload-hint waits (§6.2.5.2, §6.2.6) that cost
//!   no thread per waiting request.
//! - [`http`]: a hyper `Service` the application mounts on its own listener.
//! - [`conformance`]: a strict playlist reader for tests and monitoring tools.
//!
//! [`LatencyMode`] presets choose durations and windows; see `docs/llhls.md`.
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

pub mod cmaf;
pub mod conformance;
pub mod directive;
mod error;
#[cfg(test)]
mod fixture;
pub mod http;
mod mode;
pub mod origin;
pub mod playlist;
pub mod segmenter;

pub use error::Error;
pub use http::HttpService;
pub use mode::{LatencyMode, Timing};
pub use origin::{Origin, Publication, PublishOptions};
pub use segmenter::{Output, Segmenter, SegmenterConfig};
