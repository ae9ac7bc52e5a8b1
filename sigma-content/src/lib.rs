//! Content that outlives the live edge (issue 13): the media store, on local disk or
//! S3-compatible storage, with immutable objects and manifests written last ([`store`]).
//! The archive tee, DVR, recordings and catch-up assets build on it.

pub mod store;

pub use store::{Key, Listed, MediaStore, StoreError};
