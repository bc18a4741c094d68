//! State shared between bridge nodes: `[shared]`, and the backends it names (the live
//! one is the `dialbridge-shared` crate's).

pub mod config;
pub mod health;
pub mod limits;

pub use dialbridge_shared::{Claim, Lease, SharedCapacity, SharedRefusal, SharedRefusals};
