//! Live transcoding for Sigma: decode once, process, and encode an ABR ladder whose keyframes
//! line up across renditions.
//!
//! ```
//! use sigma_core::bus::{Event, Window};
//! use sigma_core::media::Media;
//! use sigma_transcode::scheduler::Overload;
//! use sigma_transcode::{Ladder, Options, Transcoder};
//!
//! // A one-rung ladder, as a `[[ladder]]` table of sigma-server's configuration says it.
//! let ladder: Ladder = toml::from_str(r#"
//!     name = "small"
//!     [[renditions]]
//!     name = "144p"
//!     height = 144
//!     video = { bitrate_kbps = 200 }
//! "#)?;
//! ladder.validate()?;
//! // 6 s of 320x180 H.264 High with B-frames, and AAC.
//! let clip = concat!(env!("CARGO_MANIFEST_DIR"), "/../sigma-llhls/testdata/testsrc2_bf3_aac.mp4");
//! let (info, frames) = Media::open(std::path::Path::new(clip))?.into_parts();
//! // Block instead of dropping (this pushes faster than real time), and keep every frame.
//! let window = Window { max_groups: 100, max_frames: 10_000, max_bytes: 64 << 20 };
//! let options = Options { overload: Overload::Block, window, ..Options::default() };
//! let (mut transcoder, outputs) = Transcoder::new(&ladder, &info, options)?;
//! let mut rung = outputs.renditions[0].subscriber.subscribe();
//! for frame in frames {
//!     transcoder.push(frame);
//! }
//! transcoder.finish()?;
//! let mut video = 0;
//! while let Some(event) = rung.pull() {
//!     if let Event::Frame(f) = event {
//!         video += usize::from(f.track() == sigma_core::TrackId(1));
//!     }
//! }
//! assert_eq!(video, 180);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Live, [`attach`] does the same from a stream's bus (see `examples/examples/transcode_ladder.rs`).
//!
//! # Stages
//!
//! 1. [`decode`]: H.264 (any profile real encoders send: High with B-frames, CABAC, 8x8) and
//!    AAC through libavcodec (`ffmpeg-next` against the system FFmpeg), frame-threaded.
//!    Codec configuration comes out of band from sigma-core's avcC / AudioSpecificConfig.
//! 2. [`filter`]: video processing as a libavfilter graph built from typed options
//!    ([`filter::VideoProcessing`]: deinterlace, crop, rotate, flip, mirror, denoise, deblock,
//!    sharpen, auto-levels, pad to aspect, resize ≤ 3840x2160, frame rate). Applied once to
//!    the source, then each rendition scales (libswscale inside the graph).
//! 3. [`audio`]: gain, loudness normalisation, equaliser, fades, karaoke, channel layout and
//!    sample rate ([`audio::AudioProcessing`]), also a libavfilter graph.
//! 4. [`encode`]: H.264 with libx264 (cargo feature `x264`) and AAC with fdk-aac (cargo feature
//!    `fdk-aac`), emitting sigma-core [`Frame`](sigma_core::Frame)s and the exact
//!    [`TrackInfo`](sigma_core::TrackInfo) (avcC and AudioSpecificConfig from the encoders).
//! 5. [`ladder`]: the serde-deserialisable [`Ladder`] (renditions, conditions
//!    such as "never upscale", passthrough, keyframe policy, audio plan) and its planning
//!    against a source.
//! 6. [`scheduler`]: the threads. One decode thread shares `Arc<Picture>`s with one thread per
//!    rendition encoder through bounded queues; overload drops at the source side and is
//!    reported; each rendition is a sigma-core [`bus`](sigma_core::bus) stream, so the LL-HLS
//!    stage packages it like any other. [`scheduler::attach`] takes a source
//!    [`bus::Subscriber`](sigma_core::bus::Subscriber) and returns the rendition subscribers and
//!    an event receiver.
//!
//! Every decoder, filter graph and encoder is a push/pull pair with no threads of its own
//! (besides the codec libraries' internal ones); only [`scheduler`] spawns threads, and nothing
//! in this crate reads a clock or does network IO.
//!
//! # Safety
//!
//! `unsafe` is allowed only in [`decode`] (codec extradata), [`filter`] (feeding shared frames
//! to a graph, frame references) and the x264 wrapper inside [`encode`]; each call states the
//! invariant it relies on, and the public API is safe.
//!
//! # Licences
//!
//! x264 is GPL-2.0+, fdk-aac has the Fraunhofer FDK AAC licence: both sit behind default cargo
//! features so a build with `default-features = false` carries neither (it can still decode,
//! filter and pass the source through; asking it to encode is
//! [`Error::FeatureDisabled`]). Debian's libavcodec/libavfilter are themselves built with
//! `--enable-gpl`.
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

pub mod audio;
pub mod decode;
pub mod encode;
mod error;
pub mod filter;
#[cfg(test)]
mod fixture;
pub mod ladder;
pub mod scheduler;

pub use error::Error;
pub use ladder::Ladder;
pub use scheduler::{Attached, Options, Outputs, TranscodeEvent, Transcoder, attach};
