//! RTMP ingest server and publish client for Sigma.
//!
//! Broadcasters (OBS, ffmpeg, GStreamer, Larix, hardware encoders) push RTMP; this crate turns
//! their bytes into [`sigma_core::Frame`]s, and can push frames to another RTMP server.
//!
//! # Layers
//! Each layer is usable alone and none performs IO or reads a clock (bytes and `now` in, events
//! and bytes out):
//! - [`handshake`]: C0/C1/C2 (RTMP 1.0 §5.2), plain and digest ("complex", Flash Player 9).
//! - [`chunk`]: the chunk stream decoder/encoder (§5.3) and protocol control messages (§5.4,
//!   §6.2), with [`chunk::ChunkLimits`].
//! - [`amf0`]: AMF0 values, and AMF3 where a client switches to it, with depth/count limits.
//! - [`flv`]: FLV audio/video tag bodies ↔ frames and [`sigma_core::StreamInfo`] (AVC, AAC;
//!   Enhanced RTMP FourCCs recognised; everything else refused with a clear error).
//! - [`session`]: the server session (connect, createStream, publish … `onStatus`), pull-based:
//!   `input_mut`/`received`, `poll_event`, `poll_transmit`, `poll_timeout`/`handle_timeout`.
//! - [`client`]: the publish client session, same shape.
//!
//! IO lives only in two thin tokio modules: [`server`] (listener, connection driver, async
//! publish admission through [`server::Application`], frames into a
//! [`sigma_core::bus::Producer`] the application hands back, graceful shutdown) and
//! [`publisher`] (the client driver).
//!
//! # Copies
//! Socket reads land in the session's input buffer. A message complete in one chunk is cut out
//! of that buffer with `split_to().freeze()`; any other message is assembled once into a buffer
//! of its announced size as its bytes arrive; frames are `Bytes` slices of the message; only an
//! incomplete chunk header is ever left behind in the input. So a payload byte is copied at most
//! once between the socket buffer and the frame. See docs/rtmp.md.
//!
//! # Errors
//! One [`Error`] enum; each variant ends only its own connection. Limits have their own
//! variants, parse errors say where; "need more bytes" is never an error.
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

pub mod amf0;
pub mod chunk;
pub mod client;
mod error;
pub mod flv;
pub mod handshake;
pub mod publisher;
pub mod server;
pub mod session;

pub use error::Error;
