//! The dialbridge call router: which dialled number may reach which bridge, from which
//! trunk, under which licence, and the capacity each admitted call holds until it ends.
//!
//! - [`Plan`]: the number plan, loaded from the config file with faults naming file and
//!   line ([`Plan::from_toml_str`]) or built programmatically.
//! - [`Numbering::normalise`]: the dialled number of a Request-URI as an [`E164`].
//! - [`Router::decide`]: admit or refuse. A refusal ([`Rejection`]) names the check that
//!   failed ([`RejectReason`]), in domain terms: the router speaks no SIP, the server maps
//!   a refusal to its answer. An admission is a [`Grant`] that releases its capacity on drop.
//! - Live changes ([`Router::replace_plan`], `assign_number`, `set_*_capacity`...) while
//!   calls are up, and counters for the metrics endpoint ([`Router::snapshot`]).

mod config;
mod decision;
mod dial_out;
mod e164;
mod error;
mod grant;
mod live;
mod metrics;
mod model;
mod numbering;
mod plan;
mod router;

pub use decision::{RejectReason, Rejection};
pub use e164::E164;
pub use error::{ConfigError, Error, Fault};
pub use grant::{DialOutGrant, Grant, Limits};
pub use metrics::{NumberStats, ReasonCounts, ResourceStats, Snapshot};
pub use model::{
    BridgeId, Charge, Licence, NumberKind, Provider, ProviderId, TenantId, TrunkId, TrunkPolicy,
};
pub use numbering::Numbering;
pub use plan::{
    BridgeSpec, DEFAULT_SERVICE_CAPACITY, DEFAULT_USER_CAPACITY, NumberSpec, Plan, TrunkSecurity,
    TrunkSpec,
};
pub use router::{BridgeInfo, NumberInfo, Router, TrunkInfo};
