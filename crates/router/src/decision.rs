//! Why a call is refused: each reason with its SIP status (RFC 3261 §21) and the text of
//! the Reason header (RFC 3326) that tells the caller's side why.

use std::fmt;

use crate::e164::E164;

/// Seconds a caller is told to wait (Retry-After, RFC 3261 §20.33) when a bridge or a
/// trunk is overloaded: long enough for a top-of-the-hour burst to pass.
pub const OVERLOAD_RETRY_AFTER_SECS: u32 = 10;

/// Why a call was refused, in the order the router checks.
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
    /// The number carries as many calls as its capacity.
    NumberBusy,
    /// The bridge carries as many calls as its capacity.
    BridgeOverloaded,
    /// The trunk carries as many sessions as its maximum.
    TrunkOverloaded,
}

impl RejectReason {
    /// Number of reasons (the length of a per-reason counter array).
    pub const COUNT: usize = 10;

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
    ];

    /// Position in [`Self::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// SIP status code of the final response.
    pub fn status(self) -> u16 {
        match self {
            Self::NotANumber | Self::UnknownNumber | Self::Unassigned => 404,
            Self::UnknownTrunk | Self::WrongProvider | Self::LicenceForbidsProvider => 403,
            Self::BridgeDisabled => 480,
            Self::NumberBusy => 486,
            Self::BridgeOverloaded | Self::TrunkOverloaded => 503,
        }
    }

    /// Reason phrase of the status line.
    pub fn phrase(self) -> &'static str {
        match self.status() {
            404 => "Not Found",
            403 => "Forbidden",
            480 => "Temporarily Unavailable",
            486 => "Busy Here",
            _ => "Service Unavailable",
        }
    }

    /// Value of the Reason header (RFC 3326): Q.850 cause where one fits, SIP otherwise.
    pub fn reason_header(self) -> &'static str {
        match self {
            Self::NotANumber => "SIP;cause=404;text=\"not a phone number\"",
            // Q.850 cause 1: unallocated (unassigned) number.
            Self::UnknownNumber => "Q.850;cause=1;text=\"number not assigned\"",
            Self::Unassigned => "Q.850;cause=1;text=\"number assigned to no bridge\"",
            Self::UnknownTrunk => "SIP;cause=403;text=\"trunk not in the plan\"",
            Self::WrongProvider => {
                "SIP;cause=403;text=\"number not provided by this trunk's provider\""
            }
            Self::LicenceForbidsProvider => {
                "SIP;cause=403;text=\"tenant licence does not allow this number's provider\""
            }
            Self::BridgeDisabled => "SIP;cause=480;text=\"bridge disabled\"",
            // Q.850 cause 17: user busy.
            Self::NumberBusy => "Q.850;cause=17;text=\"number at its concurrent-call capacity\"",
            // Q.850 cause 34: no circuit/channel available.
            Self::BridgeOverloaded => "Q.850;cause=34;text=\"bridge at capacity\"",
            Self::TrunkOverloaded => "Q.850;cause=34;text=\"trunk at its session limit\"",
        }
    }

    /// Retry-After seconds, for overloads only.
    pub fn retry_after(self) -> Option<u32> {
        matches!(self, Self::BridgeOverloaded | Self::TrunkOverloaded)
            .then_some(OVERLOAD_RETRY_AFTER_SECS)
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

impl Rejection {
    /// SIP status code.
    pub fn status(&self) -> u16 {
        self.reason.status()
    }

    /// Reason header value (RFC 3326).
    pub fn reason_header(&self) -> &'static str {
        self.reason.reason_header()
    }

    /// Retry-After seconds, if any.
    pub fn retry_after(&self) -> Option<u32> {
        self.reason.retry_after()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_headers() {
        let expect = [
            (RejectReason::NotANumber, 404, "SIP;cause=404"),
            (RejectReason::UnknownTrunk, 403, "SIP;cause=403"),
            (RejectReason::UnknownNumber, 404, "Q.850;cause=1;"),
            (RejectReason::Unassigned, 404, "Q.850;cause=1;"),
            (RejectReason::WrongProvider, 403, "SIP;cause=403"),
            (RejectReason::LicenceForbidsProvider, 403, "SIP;cause=403"),
            (RejectReason::BridgeDisabled, 480, "SIP;cause=480"),
            (RejectReason::NumberBusy, 486, "Q.850;cause=17;"),
            (RejectReason::BridgeOverloaded, 503, "Q.850;cause=34;"),
            (RejectReason::TrunkOverloaded, 503, "Q.850;cause=34;"),
        ];
        for (i, (reason, status, header)) in expect.into_iter().enumerate() {
            assert_eq!(RejectReason::ALL[i], reason);
            assert_eq!(reason.index(), i);
            assert_eq!(reason.status(), status);
            assert!(reason.reason_header().starts_with(header), "{reason}");
            assert!(reason.reason_header().contains(";text=\""), "{reason}");
            assert_eq!(reason.retry_after().is_some(), status == 503);
            assert!(!reason.phrase().is_empty());
        }
        assert_eq!(RejectReason::NumberBusy.phrase(), "Busy Here");
    }
}
