//! Content that outlives the live edge (issue 13): the media store, on local disk or
//! S3-compatible storage, with immutable objects and manifests written last ([`store`]).
//! The archive tee's writer ([`archive`]) stores every finished init and segment of a broadcast
//! under one prefix, with a [`manifest`] written last; [`vod`] renders catch-up VOD playlists
//! from it.

pub mod archive;
pub mod manifest;
pub mod store;
pub mod vod;

pub use store::{Key, Listed, MediaStore, StoreError};
