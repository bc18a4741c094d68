//! dialbridge's live state shared between nodes, in Redis (`[shared] redis`): each
//! call's capacity claimed on every node at once ([`SharedCapacity`], a [`Lease`] per
//! call that its node keeps alive). Knows the router's limits, nothing of SIP; the
//! server decides when to claim and what a refusal answers.

mod capacity;
mod error;
mod scripts;

pub use capacity::{CapacitySettings, Claim, Lease, SharedCapacity, SharedRefusal, SharedRefusals};
pub use error::SharedError;
