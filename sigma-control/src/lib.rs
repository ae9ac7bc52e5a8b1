//! Sigma's control plane: live streams as API resources.
//!
//! - [`lifecycle`]: the pure state machine behind a live stream's `status`.
//! - [`id`]: ids and secrets from an injected random source; digests and constant-time
//!   comparison.
//! - [`playback`]: JWT verification for signed playback ids and the media tokens that carry
//!   it into playlists (pure: `now` comes in).
//! - [`model`]: resources and request validation (pure).
//! - [`auth`]: bearer parsing and the failed-attempt limiter (pure).
//! - [`store`]: SQLite or PostgreSQL through sqlx, one set of migrations. IO.
//! - [`control`]: the shell tying store, lifecycles, caches and commands together.
//! - [`api`]: the REST service (hyper), with its generated OpenAPI document.
//! - [`simulcast`]: restreaming targets, their status and reconnect backoff (pure).
//!
//! ```
//! use sigma_control::lifecycle::{Input, Lifecycle, Status};
//! let mut l = Lifecycle::new(Status::Idle, true);
//! l.apply(Input::PublisherConnected).unwrap();
//! l.apply(Input::FirstSegment).unwrap();
//! assert_eq!(l.status(), Status::Active);
//! ```

pub mod admission;
pub mod api;
pub mod auth;
pub mod control;
pub mod delivery;
pub mod events;
pub mod id;
pub mod lifecycle;
pub mod model;
mod openapi;
pub mod playback;
pub mod simulcast;
pub mod store;
pub mod webhooks;

pub use api::Api;
pub use control::{Command, Control, ControlConfig};
pub use store::Store;
