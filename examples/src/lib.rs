//! Shared pieces of Sigma's example daemons (`sigma-server`, `sigma-load`): configuration and
//! the player page. The daemons stay thin; media logic lives in the stage crates.

pub mod config;
pub mod load;
pub mod registry;
pub mod relay;
pub mod server;
