//! State shared between bridge nodes: `[shared]` and the backends it names.

pub mod capacity;
pub mod config;
mod scripts;

pub use capacity::{Claim, Lease, SharedCapacity, SharedRefusal, SharedRefusals};
