//! dialbridge's live state shared between nodes, in Redis (`[shared] redis`): each
//! call's capacity claimed on every node at once ([`SharedCapacity`], a [`Lease`] per
//! call that its node keeps alive), and failure limits counted across nodes
//! ([`SharedLimiter`]: wrong PINs, IDs and passwords). Knows the router's limits,
//! nothing of SIP; the server decides when to claim and what a refusal answers.

mod capacity;
mod error;
mod limiter;
mod scripts;

pub use capacity::{CapacitySettings, Claim, Lease, SharedCapacity, SharedRefusal, SharedRefusals};
pub use error::SharedError;
pub use limiter::{LimitPolicy, SharedLimiter};
