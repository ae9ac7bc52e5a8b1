//! Sigma's server as a library: RTMP in, LL-HLS out, configured by a TOML file. The
//! `sigma-server` binary (package `sigma-examples`) is only its command line.
//!
//! ```
//! use sigma_server::config::Config;
//!
//! # tokio::runtime::Runtime::new()?.block_on(async {
//! // The embedded default configuration, on loopback ports the system picks, with its store
//! // (SQLite) in a scratch directory.
//! let mut config = Config::parse(sigma_server::config::EMBEDDED_DEFAULT, "embedded default")?;
//! config.server.rtmp_listen = "127.0.0.1:0".parse()?;
//! config.server.http_listen = "127.0.0.1:0".parse()?;
//! config.control.api_listen = "127.0.0.1:0".parse()?;
//! config.server.data_dir = std::env::temp_dir().join(format!("sigma-doc-{}", std::process::id()));
//! let running = sigma_server::server::start(config).await?;
//! println!("publish to rtmp://{}/live/STREAM", running.rtmp_addr);
//! println!("play http://{}/live/STREAM/index.m3u8", running.http_addr);
//! // The management API, with the admin token generated at first start.
//! println!("API http://{}/v1, token {:?}", running.api_addr, running.bootstrap_token);
//! let mut events = running.registry.events(); // published / unpublished, as they happen
//! # let _ = &mut events;
//! running.shutdown().await;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Modules:
//! - [`console`]: the web console under `/console` on the API listener (embedded page and
//!   scripts; it speaks the public API).
//! - [`config`]: the embedded default, an optional TOML file and command-line flags, merged and
//!   validated.
//! - [`registry`]: publish admission (application, stream name, stream key, one publisher per
//!   stream) whose refusals are [`sigma_rtmp::session::Rejection`]s, per-stream latency, and
//!   the stream lifecycle (grace period, ended retention); stream events.
//! - [`relay`]: publisher continuity, one long-lived bus per stream fed by successive
//!   publishers.
//! - [`ingest`]: RTMP admission by API stream key (through [`sigma_control::Control`]) or by
//!   configured application, and the reports and commands between control plane and media.
//! - [`meter`]: the ingest figures of a publisher (bitrate, fps, keyframe interval), pure.
//! - [`simulcast`]: restreaming an active live stream to its simulcast targets.
//! - [`playback`]: the viewers' routes of API live streams, by playback id, with signed
//!   playback and preview.
//! - [`server`]: the wiring — the RTMP listener into the registry, one HTTP listener for the
//!   applications' LL-HLS origins, playback ids, `/healthz` and the player pages, and the
//!   management API's own listener.
//!
//! IO happens only in [`server`] (listeners) and in the tasks [`registry`] starts; media logic
//! lives in `sigma-rtmp`, `sigma-llhls` and `sigma-transcode`.

pub mod config;
pub mod console;
pub mod ingest;
pub mod meter;
pub mod playback;
pub mod registry;
pub mod relay;
pub mod server;
pub mod simulcast;
