//! CMAF fMP4 packaging and the Low-Latency HLS origin.
//!
//! This crate will hold: the CMAF muxer (init segments, `moof`/`mdat` chunks), the segmenter that
//! cuts parts and segments, LL-HLS playlist rendering (RFC 8216bis), blocking playlist reload and
//! preload hints, and a hyper `Service` the application mounts on its own listener.
//!
//! Nothing here is implemented yet; see issue 4.
