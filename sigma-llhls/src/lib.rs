//! CMAF fMP4 packaging and a Low-Latency HLS origin (draft-pantos-hls-rfc8216bis).
//!
//! ```
//! use bytes::Bytes;
//! use http_body_util::BodyExt;
//! use sigma_core::bus::{self, Window};
//! use sigma_core::{CodecConfig, Frame, H264Config, StreamInfo, TrackId, TrackInfo};
//! use sigma_llhls::{HttpService, LatencyMode, Origin, PublishOptions};
//!
//! # tokio::runtime::Runtime::new()?.block_on(async {
//! // A stream's bus, as RTMP ingest or a transcoder produce it: H.264 at 90 kHz.
//! let avcc = concat!(env!("CARGO_MANIFEST_DIR"), "/../sigma-core/testdata/x264_baseline_360p25.avcc");
//! let h264 = H264Config::from_avcc(std::fs::read(avcc)?.into())?;
//! let info = StreamInfo::new(1, vec![TrackInfo::new(TrackId(1), 90_000, CodecConfig::H264(h264))?])?;
//! let (mut producer, subscriber) = bus::channel(Window::default());
//! producer.set_info(info);
//!
//! // The origin packages it; the HTTP service answers players (mount it on your listener).
//! let origin = Origin::new();
//! let publication = origin.publish("cam", &subscriber, PublishOptions::new(LatencyMode::Low))?;
//! for i in 0..100 {
//!     // 4 s at 25 fps with a keyframe every second (payloads are AVCC NAL units).
//!     let frame = Frame::new(TrackId(1), i * 3600, i * 3600, i % 25 == 0, Bytes::from_static(b"\0\0\0\x01\x65"));
//!     producer.push(frame)?;
//! }
//! producer.finish();
//! publication.finished().await;
//!
//! let http = HttpService::new(origin); // under /live
//! let request = http::Request::get("/live/cam/video.m3u8").body(())?;
//! let body = http.handle(request).await.into_body().collect().await?.to_bytes();
//! let playlist = String::from_utf8(body.to_vec())?;
//! assert!(playlist.contains("#EXTINF:1.00000,") && playlist.ends_with("#EXT-X-ENDLIST\n"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
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

pub mod archive;
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

pub use archive::{ArchiveSink, ArchiveTee, Archived, ArchivedInit, ArchivedSegment};
pub use error::Error;
pub use http::HttpService;
pub use mode::{LatencyMode, Timing};
pub use origin::{Origin, Publication, PublishOptions};
pub use segmenter::{Output, Segmenter, SegmenterConfig};
