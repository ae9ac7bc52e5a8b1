//! Live transcoding: decode once, filter, and encode an ABR ladder with aligned keyframes.
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

pub mod audio;
pub mod decode;
mod error;
pub mod filter;

pub use error::Error;
pub mod encode;
#[cfg(test)]
mod fixture;
pub mod ladder;
pub mod scheduler;
