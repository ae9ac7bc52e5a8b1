//! RTMP ingest server and publish client.
pub mod amf0;
pub mod chunk;
mod error;
pub mod flv;
pub mod handshake;
pub use error::Error;
