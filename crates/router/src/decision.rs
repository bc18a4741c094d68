//! Why a call is refused, in the router's own terms: a domain refusal that names the
//! check that failed (and, for capacity, which limit), never a SIP status or a Reason
//! header. The server's `refusal.rs` is the one place that turns a refusal into a SIP
//! answer.

use std::fmt;

use crate::e164::E164;

/// Why a call was refused, in the order the router checks (a dial-out's own reasons
/// last).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RejectReason {
    /// The Request-URI carries no E.164 number.
    NotANumber,
    /// The trunk the call came from is no longer in the plan.
    UnknownTrunk,
    /// The number is not in the plan.
    UnknownNumber,
    /// The number is known but assigned to no bridge.
    Unassigned,
    /// The trunk's provider is not the number's provider.
    WrongProvider,
    /// The tenant's licence does not allow the number's provider.
    LicenceForbidsProvider,
    /// The bridge is disabled.
    BridgeDisabled,
    /// Capacity: the number carries as many calls as its own capacity (the one callee
    /// is busy; other numbers of the bridge may still answer).
    NumberBusy,
    /// Capacity: the bridge carries as many calls as its capacity (an overload, which
    /// passes: the caller may try again shortly).
    BridgeOverloaded,
    /// Capacity: the trunk carries as many sessions as its maximum (an overload too).
    TrunkOverloaded,
    /// Dial-out: no trunk the tenant's licence (and its admin's route) allows has an
    /// outbound target, or the tenant is not in the plan; or the trunk asked for has no
    /// outbound target.
    NoDialOutRoute,
    /// Dial-out: the meeting's bridge is no longer in the plan.
    UnknownBridge,
}

impl RejectReason {
    /// Number of reasons (the length of a per-reason counter array).
    pub const COUNT: usize = 12;

    /// All reasons, in check order.
    pub const ALL: [RejectReason; Self::COUNT] = [
        Self::NotANumber,
        Self::UnknownTrunk,
        Self::UnknownNumber,
        Self::Unassigned,
        Self::WrongProvider,
        Self::LicenceForbidsProvider,
        Self::BridgeDisabled,
        Self::NumberBusy,
        Self::BridgeOverloaded,
        Self::TrunkOverloaded,
        Self::NoDialOutRoute,
        Self::UnknownBridge,
    ];

    /// Position in [`Self::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// Short name for logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotANumber => "not_a_number",
            Self::UnknownTrunk => "unknown_trunk",
            Self::UnknownNumber => "unknown_number",
            Self::Unassigned => "unassigned",
            Self::WrongProvider => "wrong_provider",
            Self::LicenceForbidsProvider => "licence_forbids_provider",
            Self::BridgeDisabled => "bridge_disabled",
            Self::NumberBusy => "number_busy",
            Self::BridgeOverloaded => "bridge_overloaded",
            Self::TrunkOverloaded => "trunk_overloaded",
            Self::NoDialOutRoute => "no_dial_out_route",
            Self::UnknownBridge => "unknown_bridge",
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused call: the reason and the number (when there was one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejection {
    /// Why.
    pub reason: RejectReason,
    /// The dialled number, if the Request-URI held one.
    pub number: Option<E164>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_in_check_order_with_distinct_labels() {
        let mut labels = std::collections::HashSet::new();
        for (i, reason) in RejectReason::ALL.into_iter().enumerate() {
            assert_eq!(reason.index(), i);
            assert!(labels.insert(reason.as_str()), "{reason}");
        }
        assert_eq!(RejectReason::NumberBusy.to_string(), "number_busy");
    }
}
