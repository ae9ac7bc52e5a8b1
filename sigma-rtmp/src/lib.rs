//! RTMP ingest server and publish client for Sigma.
//!
//! Broadcasters (OBS, ffmpeg, GStreamer, Larix, hardware encoders) push RTMP; this crate turns
//! their bytes into [`sigma_core::Frame`]s, and can push frames to another RTMP server.
//!
//! ```
//! use bytes::Bytes;
//! use sigma_core::bus::{Event, Window};
//! use sigma_core::{AacConfig, CodecConfig, Frame, StreamInfo, StreamKey, TrackId, TrackInfo};
//! use sigma_rtmp::publisher::Publisher;
//! use sigma_rtmp::server::{Server, ServerConfig, StreamRegistry};
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! # tokio::runtime::Runtime::new()?.block_on(async {
//! // An ingest server on a loopback port; the application is the simple in-memory registry
//! // (a real one implements `server::Application`: admission, then a bus for the frames).
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let addr = listener.local_addr()?;
//! let registry = Arc::new(StreamRegistry::new(Window::default()));
//! let server = Server::new(registry.clone(), ServerConfig::default());
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! let serving = tokio::spawn(async move {
//!     server.serve(listener, async { let _ = stopped.await; }).await
//! });
//!
//! // Publish a second of AAC with the crate's publish client.
//! let url = format!("rtmp://{addr}/live/cam");
//! let mut publisher = Publisher::connect(&url, Duration::from_secs(5)).await?;
//! let mut consumer = registry.subscribe(&StreamKey::new("live", "cam")).expect("published");
//! let aac = AacConfig::from_audio_specific_config(Bytes::from_static(&[0x11, 0x90]))?;
//! let track = TrackInfo::new(TrackId(2), 48_000, CodecConfig::Aac(aac))?;
//! publisher.send_info(StreamInfo::new(1, vec![track])?).await?;
//! for n in 0..47 {
//!     let frame = Frame::new(TrackId(2), n * 1024, n * 1024, true, Bytes::from_static(b"aac"));
//!     publisher.send(&frame).await?;
//! }
//! publisher.finish().await?;
//!
//! // The server's side: stream info, the frames, then the end.
//! let mut frames = 0;
//! while let Some(event) = consumer.recv().await {
//!     match event {
//!         Event::Frame(_) => frames += 1,
//!         Event::End => break,
//!         _ => {}
//!     }
//! }
//! assert_eq!(frames, 47);
//! let _ = stop.send(());
//! serving.await??;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
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
pub use session::Rejection;
