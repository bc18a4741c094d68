//! dialbridge's live state shared between nodes, in Redis (`[shared] redis`): each
//! call's capacity claimed on every node at once ([`SharedCapacity`], a [`Lease`] per
//! call that its node keeps alive), and failure limits counted across nodes
//! ([`SharedLimiter`]: wrong PINs, IDs and passwords). Knows the router's limits,
//! nothing of SIP; the server decides when to claim and what a refusal answers. And where
//! each meeting lives ([`MeetingHomes`]) when its callers land on several nodes.

mod capacity;
mod connection;
mod error;
mod homes;
mod limiter;
mod scripts;

pub use capacity::{CapacitySettings, Claim, Lease, SharedCapacity, SharedRefusal, SharedRefusals};
pub use error::SharedError;
pub use homes::{Home, MeetingHomes};
pub use limiter::{LimitPolicy, SharedLimiter};
