//! A call between "answered" and "hung up": the pure [`CallCore`] (the entry IVR, what
//! plays and what its end means, the meeting's word), which the call's owner — the
//! signaling task — drives, and the call's media task ([`media`]), its hands on the
//! RTP session.

mod core;
mod liveness;
pub(crate) mod media;
mod notice;
#[cfg(test)]
mod tests;

pub use self::core::{Audio, CallCore, Step};
pub use self::liveness::{Liveness, MediaTimeouts};
pub use self::notice::Notice;

use dialbridge_conference::Digit;
use dialbridge_conference::directory::ConferenceInfo;
use dialbridge_conference::dtmf::parse_info;
use dialbridge_conference::ivr::{ConferenceKey, LookupResult, PinResult};
use dialbridge_sip::dialog::DialogId;

/// What comes back to the call's owner from the tasks working for the call.
#[derive(Debug)]
pub(crate) enum CallReport {
    /// The media task's report.
    Media {
        id: DialogId,
        event: media::MediaEvent,
    },
    /// The directory's answer to a conference ID.
    Lookup {
        id: DialogId,
        result: LookupResult,
        found: Option<ConferenceInfo>,
    },
    /// The directory's answer to a leader PIN.
    Pin {
        id: DialogId,
        result: PinResult,
        conference: ConferenceKey,
    },
    /// The ledger committed (or failed to commit) a reservation of the call's meter.
    Billing {
        id: DialogId,
        committed: dialbridge_ledger::Committed,
    },
    /// ... of a dial-out's meter (opened before the dial-out had a dialog).
    DialOutBilling {
        dial_out: crate::dial_out::DialOutId,
        committed: dialbridge_ledger::Committed,
    },
    /// Redis's answer to a dial-out attempt's capacity claim (`[shared] redis`).
    DialOutCapacity {
        dial_out: crate::dial_out::DialOutId,
        outcome: Result<crate::shared::Lease, crate::shared::SharedRefusal>,
    },
    /// Redis's answer to a new call's capacity claim (`[shared] redis`).
    SharedCapacity {
        key: dialbridge_sip::transaction::ServerKey,
        outcome: Result<crate::shared::Lease, crate::shared::SharedRefusal>,
    },
}

/// The digit a SIP INFO carries: `Ok(None)` for an INFO that is not DTMF at all,
/// `Err` for a DTMF body that does not parse.
pub(crate) fn info_digit(content_type: &str, body: &[u8]) -> Result<Option<Digit>, &'static str> {
    let media_type = content_type.split(';').next().unwrap_or_default().trim();
    if !media_type.eq_ignore_ascii_case("application/dtmf-relay")
        && !media_type.eq_ignore_ascii_case("application/dtmf")
    {
        return Ok(None);
    }
    parse_info(content_type, body)
        .map(|info| Some(info.digit))
        .map_err(|_| "malformed DTMF INFO body")
}
