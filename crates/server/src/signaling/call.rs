//! One call, whole, as its one owner — the signaling task — holds it from INVITE to its
//! record: its invite session, its entry and meeting core, the router's grant, its place
//! in the meeting, its media task and what its detail record needs.
//!
//! Dropping a [`Call`] (BYE either way, CANCEL, a failed answer, a timeout, a transport
//! error) releases the grant's capacity exactly once, leaves the meeting and stops its
//! media task.

use std::net::IpAddr;
use std::time::{Instant, SystemTime};

use dialbridge_conference::guard::CallerKey;
use dialbridge_conference::ivr::{ConferenceId, Role};
use dialbridge_router::{Charge, DialOutGrant, E164, Grant, Provider};

use crate::cdr::Direction;

use crate::dial_out::DialOutId;
use dialbridge_sip::transaction::PeerAddr;

use crate::call_flow::CallCore;
use crate::call_flow::media::MediaLink;
use crate::conferences::Membership;

use super::leg::Leg;

/// What the signaling task knows of one call.
pub(super) struct Call {
    /// The invite session, answered or placed: dialog, offer/answer, session timer,
    /// answer time.
    pub session: Leg,
    /// Where the INVITE came from: in-dialog requests we send go there too.
    pub peer: PeerAddr,
    /// The signalling peer's IP when the call's media latches (symmetric RTP): a
    /// re-offer's address is turned into a send target the same way as the first.
    pub latching: Option<IpAddr>,
    /// The entry IVR, what plays, the meeting's word.
    pub core: CallCore,
    /// The router's reservation: released when this record is dropped.
    pub grant: Capacity,
    /// The call's media task: stopped when this record is dropped.
    pub media: MediaLink,
    /// Whose wrong IDs and PINs the guessing guard counts.
    pub caller: CallerKey,
    /// In the meeting (or its lobby): left when this record is dropped.
    pub membership: Option<Membership>,
    /// The number of the last thing commanded to play: an end reported for an older one
    /// is stale.
    pub play_seq: u64,
    pub arrived: Instant,
    /// The session deadline this call is filed under in the signaling task's timers.
    pub armed: Option<Instant>,
    /// Who pays for the call, when it is billed: closed when the call ends (and, if
    /// forgotten, when this record is dropped).
    pub billing: Option<super::billing::Billing>,
    /// For the call detail record: wall-clock times, the calling party, the meeting.
    pub record: CallRecord,
    /// The dial-out this call is, for its registry entry.
    pub dial_out: Option<DialOutId>,
}

/// A call's capacity reservation, whichever way it goes: a call in holds its number's,
/// bridge's and trunk's; a dial-out its bridge's and trunk's. Both release on drop.
pub(super) enum Capacity {
    In {
        grant: Grant,
        /// The same reservation on every node, when capacity is shared: held for its
        /// release on drop.
        _lease: Option<crate::shared::Lease>,
    },
    Out {
        grant: DialOutGrant,
        /// The number called.
        number: E164,
        /// The same reservation on every node, when capacity is shared.
        _lease: Option<crate::shared::Lease>,
    },
}

impl Capacity {
    /// The number dialled: by the caller, or by the meeting.
    pub fn number(&self) -> E164 {
        match self {
            Capacity::In { grant, .. } => grant.number(),
            Capacity::Out { number, .. } => *number,
        }
    }

    pub fn trunk_name(&self) -> &str {
        match self {
            Capacity::In { grant, .. } => grant.trunk_name(),
            Capacity::Out { grant, .. } => grant.trunk_name(),
        }
    }

    pub fn tenant(&self) -> &str {
        match self {
            Capacity::In { grant, .. } => grant.tenant(),
            Capacity::Out { grant, .. } => grant.tenant(),
        }
    }

    pub fn bridge(&self) -> &str {
        match self {
            Capacity::In { grant, .. } => grant.bridge(),
            Capacity::Out { grant, .. } => grant.bridge(),
        }
    }

    /// Who provides the number called in, or runs the trunk a dial-out left through.
    pub fn provider(&self) -> Option<&Provider> {
        match self {
            Capacity::In { grant, .. } => grant.provider(),
            Capacity::Out { grant, .. } => grant.provider(),
        }
    }

    /// Which way the call went.
    pub fn direction(&self) -> Direction {
        match self {
            Capacity::In { .. } => Direction::Inbound,
            Capacity::Out { .. } => Direction::Outbound,
        }
    }

    /// Toll or toll-free, of the number dialled; a dial-out is a toll call.
    pub fn charge(&self) -> Charge {
        match self {
            Capacity::In { grant, .. } => grant.charge(),
            Capacity::Out { .. } => Charge::Toll,
        }
    }
}

/// What the call detail record needs beyond the grant.
#[derive(Debug, Clone)]
pub(super) struct CallRecord {
    pub calling: String,
    pub arrived: SystemTime,
    pub answered: Option<SystemTime>,
    pub joined: Option<(ConferenceId, Role, SystemTime)>,
}

impl std::fmt::Debug for Call {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Call")
            .field("terminated", &self.session.is_terminated())
            .field("peer", &self.peer.addr)
            .field("number", &self.grant.number())
            .finish_non_exhaustive()
    }
}
