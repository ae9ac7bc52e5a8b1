//! RTMP ingest server and publish client.
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
