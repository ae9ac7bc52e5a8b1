//! RTMP ingest server and publish client.
//!
//! This crate will hold, in layers that are each usable alone:
//! - `handshake`: the C0/C1/C2 exchange (plain and digest), sans-IO;
//! - `chunk`: the chunk stream decoder/encoder (RTMP 1.0 §5.3) and protocol control messages;
//! - `amf0`: AMF0 (and AMF3-in-data) encoding and decoding with depth and size limits;
//! - `flv`: FLV/AVC/AAC tag demux into `sigma_core::Frame`s;
//! - `session`: the server and client session state machines (bytes and `now` in, events out);
//! - a thin tokio driver that owns the sockets.
//!
//! Nothing here is implemented yet; see issue 3.
