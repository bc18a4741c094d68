//! The one mapping from why a call is refused or ended to what SIP says about it: the
//! status and reason phrase of a final response (RFC 3261 §21), the Reason header
//! (RFC 3326: a Q.850 cause where one fits, `SIP;cause=` otherwise) and Retry-After
//! (RFC 3261 §20.33). The router, the entry IVR, the meeting and the ledger speak domain
//! refusals and end causes; only this table turns them into wire text, so nothing else in the
//! bridge writes a Reason header's value.

use dialbridge_conference::ivr::HangupReason;
use dialbridge_conference::room::RejectReason as MeetingRefusal;
use dialbridge_ledger::Refusal as MoneyRefusal;
use dialbridge_router::RejectReason as RouteRefusal;
use rsip::headers::UntypedHeader;
use rsip::{Header, Request, Response};

use crate::answers;

/// Seconds a caller is told to wait when a bridge or a trunk is overloaded: long enough
/// for a top-of-the-hour burst to pass.
pub const OVERLOAD_RETRY_AFTER_SECS: u32 = 10;

/// Seconds a caller is told to wait while the bridge drains for a shutdown: about a
/// restart's time, so the retry reaches the next instance.
pub const DRAIN_RETRY_AFTER_SECS: u32 = 30;

/// Why a call is refused or ended, from whichever part decided it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// The router refused the INVITE.
    Route(RouteRefusal),
    /// The entry IVR hung up.
    Ivr(HangupReason),
    /// The meeting turned the caller away (after its prompt).
    Meeting(MeetingRefusal),
    /// The ledger would not fund the call (before its answer).
    Money(MoneyRefusal),
    /// The bridge itself ended or refused the call.
    Bridge(EndCause),
}

/// The bridge's own reasons to end (or refuse) a call, outside the router, the IVR and
/// the meeting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndCause {
    /// The bridge is shutting down: new calls are refused while it drains, calls still
    /// up when the drain ends are hung up.
    ShuttingDown,
    /// The session timer ran out without a refresh (RFC 4028 §10).
    SessionExpired,
    /// No RTP or RTCP came from the caller for the media timeout.
    MediaTimeout,
    /// No ACK came for our 200 OK (RFC 3261 §13.3.1.4).
    NoAck,
    /// The call could not join the meeting's mix.
    ConferenceUnavailable,
    /// An administrator removed the caller from the meeting.
    Kicked,
    /// The offer has no codec the bridge can mix (RFC 3264 §6).
    NoCommonCodec,
    /// An RTP/SAVP offer whose SDES key we cannot use (an MKI, or a bad key).
    UnusableSdesKey,
    /// No RTP port (or socket) left for the call's media.
    NoMediaCapacity,
    /// A trunk that must use TLS (`require_tls`, or `tls_names`) sent over UDP or TCP.
    TlsRequired,
    /// A request from the address of a trunk that lists `tls_names` came without a
    /// client certificate: the address alone may be spoofed.
    ClientCertificateRequired,
    /// ... or with a verified certificate that names none of that trunk's `tls_names`.
    CertificateNotForTrunk,
    /// A verified client certificate names more than one trunk: none is picked.
    AmbiguousCertificate,
    /// A trunk that must use SRTP (`require_srtp`) offered plain RTP.
    SrtpRequired,
    /// An RTP/SAVP offer over UDP or TCP: our SDES key would cross the network in the
    /// clear (RFC 4568 §8.3), and the answer may not switch to RTP/AVP (RFC 3264 §6).
    SdesNeedsTls,
    /// A softphone proved who it is, but the plan has no softphone trunk.
    SoftphonesNotAccepted,
    /// The transaction layer holds as many transactions as it may.
    SipOverloaded,
    /// New calls arrive faster than the bridge takes them (the call rate, or the
    /// signaling task is behind): shed before any work.
    Overloaded,
    /// A SIP INFO whose DTMF body does not parse.
    MalformedDtmfInfo,
    /// The answer to an offer of ours (in the ACK of an offerless re-INVITE) does not
    /// fit it.
    UnusableAnswer,
    /// The call's next increment could not be paid for: it heard the notice and ends.
    CreditsExhausted,
    /// The ledger could not commit what pays for the call (its database failed, or took
    /// too long before the answer).
    BillingUnavailable,
    /// A shared backend (`[shared]`: Redis, PostgreSQL) did not answer a new call's check
    /// in time: the call is never admitted without it.
    SharedStateUnavailable,
}

/// What SIP says about a [`Cause`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SipAnswer {
    /// Status of the final response when the cause refuses a request. A cause that only
    /// ever ends a call in progress goes out in a BYE, where only `reason` is sent.
    pub status: u16,
    /// Reason phrase of that status line.
    pub phrase: &'static str,
    /// Value of the Reason header (RFC 3326), in the response or the BYE.
    pub reason: &'static str,
    /// Retry-After seconds, for causes that pass (overload, shutdown).
    pub retry_after: Option<u32>,
}

/// The mapping: every cause to its status, phrase, Reason header and Retry-After.
pub fn sip_answer(cause: Cause) -> SipAnswer {
    use self::EndCause as E;
    use HangupReason as H;
    use MeetingRefusal as M;
    use MoneyRefusal as P;
    use RouteRefusal as R;
    let (status, phrase, reason, retry_after) = match cause {
        Cause::Route(r) => match r {
            R::NotANumber => (
                404,
                NOT_FOUND,
                "SIP;cause=404;text=\"not a phone number\"",
                None,
            ),
            // Q.850 cause 1: unallocated (unassigned) number.
            R::UnknownNumber => (
                404,
                NOT_FOUND,
                "Q.850;cause=1;text=\"number not assigned\"",
                None,
            ),
            R::Unassigned => (
                404,
                NOT_FOUND,
                "Q.850;cause=1;text=\"number assigned to no bridge\"",
                None,
            ),
            R::UnknownTrunk => (
                403,
                FORBIDDEN,
                "SIP;cause=403;text=\"trunk not in the plan\"",
                None,
            ),
            R::WrongProvider => (
                403,
                FORBIDDEN,
                "SIP;cause=403;text=\"number not provided by this trunk's provider\"",
                None,
            ),
            R::LicenceForbidsProvider => (
                403,
                FORBIDDEN,
                "SIP;cause=403;text=\"tenant licence does not allow this number's provider\"",
                None,
            ),
            R::BridgeDisabled => (
                480,
                "Temporarily Unavailable",
                "SIP;cause=480;text=\"bridge disabled\"",
                None,
            ),
            // Q.850 cause 17: user busy. The number's own limit: busy, not overloaded,
            // so no Retry-After.
            R::NumberBusy => (
                486,
                BUSY_HERE,
                "Q.850;cause=17;text=\"number at its concurrent-call capacity\"",
                None,
            ),
            // Q.850 cause 34: no circuit/channel available.
            R::BridgeOverloaded => (
                503,
                UNAVAILABLE,
                "Q.850;cause=34;text=\"bridge at capacity\"",
                Some(OVERLOAD_RETRY_AFTER_SECS),
            ),
            R::TrunkOverloaded => (
                503,
                UNAVAILABLE,
                "Q.850;cause=34;text=\"trunk at its session limit\"",
                Some(OVERLOAD_RETRY_AFTER_SECS),
            ),
            // A dial-out's own refusals: `decide` never gives them, so no INVITE of a
            // caller is answered with them; a dial-out refused is told to its leader.
            // Q.850 cause 21: call rejected (no route the licence allows).
            R::NoDialOutRoute => (
                403,
                FORBIDDEN,
                "Q.850;cause=21;text=\"no trunk allowed for dial-out\"",
                None,
            ),
            R::UnknownBridge => (
                404,
                NOT_FOUND,
                "SIP;cause=404;text=\"bridge not in the plan\"",
                None,
            ),
        },
        Cause::Ivr(h) => match h {
            H::NoInput => (408, TIMEOUT, "SIP;cause=408;text=\"No DTMF input\"", None),
            H::ConferenceIdAttemptsExhausted => (
                403,
                FORBIDDEN,
                "SIP;cause=403;text=\"Too many wrong conference IDs\"",
                None,
            ),
            H::PinAttemptsExhausted => (
                403,
                FORBIDDEN,
                "SIP;cause=403;text=\"Too many wrong PINs\"",
                None,
            ),
            H::PinEntryRefused => (
                403,
                FORBIDDEN,
                "SIP;cause=403;text=\"PIN entry refused\"",
                None,
            ),
            H::DirectoryUnavailable => (
                503,
                UNAVAILABLE,
                "SIP;cause=503;text=\"Conference directory unavailable\"",
                None,
            ),
            // Only ever in a BYE: the called party of a dial-out answered (or a machine
            // did) and never keyed 1.
            H::InvitationNotAccepted => (
                408,
                TIMEOUT,
                "SIP;cause=408;text=\"invitation not accepted\"",
                None,
            ),
        },
        Cause::Meeting(m) => match m {
            M::MeetingFull => (486, BUSY_HERE, "SIP;cause=486;text=\"meeting full\"", None),
            M::MeetingLocked => (
                403,
                FORBIDDEN,
                "SIP;cause=403;text=\"meeting locked\"",
                None,
            ),
            M::LeaderDidNotJoin => (
                408,
                TIMEOUT,
                "SIP;cause=408;text=\"the organiser did not join\"",
                None,
            ),
        },
        // 403, not 402: 402 Payment Required is "reserved for future use" (RFC 3261
        // §21.4.3) and trunks treat it unevenly, and 480 would invite retries that fail the
        // same until someone tops up. 403 says "understood, and refused: do not retry",
        // and the Reason says why and what lifts it.
        Cause::Money(p) => match p {
            P::NoCredits => (
                403,
                FORBIDDEN,
                "SIP;cause=403;text=\"no communications credits\"",
                None,
            ),
            P::NoFunding => (
                403,
                FORBIDDEN,
                "SIP;cause=403;text=\"no minute pool or rate covers this number\"",
                None,
            ),
            P::UnknownTenant => (
                403,
                FORBIDDEN,
                "SIP;cause=403;text=\"tenant has no money account\"",
                None,
            ),
            P::BadNumber => (
                404,
                NOT_FOUND,
                "SIP;cause=404;text=\"not an E.164 number\"",
                None,
            ),
        },
        Cause::Bridge(e) => match e {
            E::ShuttingDown => (
                503,
                "Bridge Shutting Down",
                "SIP;cause=503;text=\"bridge shutting down\"",
                Some(DRAIN_RETRY_AFTER_SECS),
            ),
            E::SessionExpired => (408, TIMEOUT, "SIP;cause=408;text=\"session expired\"", None),
            E::MediaTimeout => (408, TIMEOUT, "SIP;cause=408;text=\"no media\"", None),
            E::NoAck => (
                408,
                TIMEOUT,
                "SIP;cause=408;text=\"no ACK for 200 OK\"",
                None,
            ),
            E::ConferenceUnavailable => (
                500,
                "Server Internal Error",
                "SIP;cause=500;text=\"conference unavailable\"",
                None,
            ),
            // Q.850 cause 16: normal call clearing, which RFC 3398 §7.2.4.1 carries as a
            // BYE, not a status. A kick only ever ends an answered call; 480 is what an
            // unanswered call's end gets anyway (see `Signaling::hang_up`).
            E::Kicked => (
                480,
                "Temporarily Unavailable",
                "Q.850;cause=16;text=\"removed from the meeting\"",
                None,
            ),
            // Q.850 cause 65: bearer capability not implemented.
            E::NoCommonCodec => (
                488,
                NOT_ACCEPTABLE,
                "Q.850;cause=65;text=\"no common codec\"",
                None,
            ),
            E::UnusableSdesKey => (
                488,
                NOT_ACCEPTABLE,
                "SIP;cause=488;text=\"unusable SDES key (MKI or bad key)\"",
                None,
            ),
            // Q.850 cause 47: resource unavailable.
            E::NoMediaCapacity => (
                503,
                UNAVAILABLE,
                "Q.850;cause=47;text=\"no media capacity\"",
                Some(5),
            ),
            // Refused for who the peer is (or is not proven to be), not what it asked:
            // 403, as credentials would not help and a retry over the same transport
            // gets the same. The Reason says what to fix.
            E::TlsRequired => (
                403,
                FORBIDDEN,
                "SIP;cause=403;text=\"trunk requires TLS\"",
                None,
            ),
            E::ClientCertificateRequired => (
                403,
                FORBIDDEN,
                "SIP;cause=403;text=\"trunk requires a TLS client certificate\"",
                None,
            ),
            E::CertificateNotForTrunk => (
                403,
                FORBIDDEN,
                "SIP;cause=403;text=\"TLS client certificate does not name this trunk\"",
                None,
            ),
            E::AmbiguousCertificate => (
                403,
                FORBIDDEN,
                "SIP;cause=403;text=\"TLS client certificate names more than one trunk\"",
                None,
            ),
            // The offer, not the caller, is refused (RFC 3261 §21.4.26): the same call
            // with another session description may pass.
            E::SrtpRequired => (
                488,
                NOT_ACCEPTABLE,
                "SIP;cause=488;text=\"trunk requires SRTP (RTP/SAVP with SDES)\"",
                None,
            ),
            E::SdesNeedsTls => (
                488,
                NOT_ACCEPTABLE,
                "SIP;cause=488;text=\"SDES needs TLS\"",
                None,
            ),
            E::SoftphonesNotAccepted => (
                403,
                FORBIDDEN,
                "SIP;cause=403;text=\"softphones not accepted\"",
                None,
            ),
            E::SipOverloaded => (
                503,
                UNAVAILABLE,
                "SIP;cause=503;text=\"too many transactions\"",
                Some(5),
            ),
            E::Overloaded => (
                503,
                UNAVAILABLE,
                "SIP;cause=503;text=\"bridge overloaded\"",
                Some(2),
            ),
            E::MalformedDtmfInfo => (
                400,
                "Bad Request",
                "SIP;cause=400;text=\"malformed DTMF INFO body\"",
                None,
            ),
            E::UnusableAnswer => (
                488,
                NOT_ACCEPTABLE,
                "SIP;cause=488;text=\"answer does not fit the offer\"",
                None,
            ),
            // Only ever ends an answered call (in its BYE); the status is the refusal's.
            E::CreditsExhausted => (
                403,
                FORBIDDEN,
                "SIP;cause=403;text=\"communications credits exhausted\"",
                None,
            ),
            E::BillingUnavailable => (
                503,
                UNAVAILABLE,
                "SIP;cause=503;text=\"billing unavailable\"",
                None,
            ),
            // Passes once the backend is back: another node (or a retry) may take it.
            E::SharedStateUnavailable => (
                503,
                UNAVAILABLE,
                "SIP;cause=503;text=\"shared state unavailable\"",
                Some(5),
            ),
        },
    };
    SipAnswer {
        status,
        phrase,
        reason,
        retry_after,
    }
}

/// The final response refusing `request` for `cause`: status, phrase, Reason and, if the
/// cause passes, Retry-After.
pub fn refuse(request: &Request, cause: impl Into<Cause>) -> Response {
    let answer = sip_answer(cause.into());
    let mut response = answers::BRIDGE.reply(request, answer.status, Some(answer.phrase));
    response
        .headers
        .push(Header::Other("Reason".into(), answer.reason.into()));
    if let Some(secs) = answer.retry_after {
        response
            .headers
            .push(Header::RetryAfter(rsip::headers::RetryAfter::new(
                secs.to_string(),
            )));
    }
    response
}

impl From<RouteRefusal> for Cause {
    fn from(r: RouteRefusal) -> Self {
        Cause::Route(r)
    }
}

impl From<HangupReason> for Cause {
    fn from(h: HangupReason) -> Self {
        Cause::Ivr(h)
    }
}

impl From<MeetingRefusal> for Cause {
    fn from(m: MeetingRefusal) -> Self {
        Cause::Meeting(m)
    }
}

impl From<MoneyRefusal> for Cause {
    fn from(p: MoneyRefusal) -> Self {
        Cause::Money(p)
    }
}

impl From<EndCause> for Cause {
    fn from(e: EndCause) -> Self {
        Cause::Bridge(e)
    }
}

// The RFC 3261 §21 phrases used more than once above.
const NOT_FOUND: &str = "Not Found";
const FORBIDDEN: &str = "Forbidden";
const BUSY_HERE: &str = "Busy Here";
const TIMEOUT: &str = "Request Timeout";
const UNAVAILABLE: &str = "Service Unavailable";
const NOT_ACCEPTABLE: &str = "Not Acceptable Here";

#[cfg(test)]
mod tests {
    use super::*;

    /// The wire contract, one row per cause: what the sipp scenarios (404, 403, 486, 503)
    /// and the callers' SBCs see.
    #[test]
    fn the_table() {
        let rows: [(Cause, u16, &str, Option<u32>); 48] = [
            (
                RouteRefusal::NotANumber.into(),
                404,
                "SIP;cause=404;text=\"not a phone number\"",
                None,
            ),
            (
                RouteRefusal::UnknownTrunk.into(),
                403,
                "SIP;cause=403;text=\"trunk not in the plan\"",
                None,
            ),
            (
                RouteRefusal::UnknownNumber.into(),
                404,
                "Q.850;cause=1;text=\"number not assigned\"",
                None,
            ),
            (
                RouteRefusal::Unassigned.into(),
                404,
                "Q.850;cause=1;text=\"number assigned to no bridge\"",
                None,
            ),
            (
                RouteRefusal::WrongProvider.into(),
                403,
                "SIP;cause=403;text=\"number not provided by this trunk's provider\"",
                None,
            ),
            (
                RouteRefusal::LicenceForbidsProvider.into(),
                403,
                "SIP;cause=403;text=\"tenant licence does not allow this number's provider\"",
                None,
            ),
            (
                RouteRefusal::BridgeDisabled.into(),
                480,
                "SIP;cause=480;text=\"bridge disabled\"",
                None,
            ),
            (
                RouteRefusal::NumberBusy.into(),
                486,
                "Q.850;cause=17;text=\"number at its concurrent-call capacity\"",
                None,
            ),
            (
                RouteRefusal::BridgeOverloaded.into(),
                503,
                "Q.850;cause=34;text=\"bridge at capacity\"",
                Some(10),
            ),
            (
                RouteRefusal::TrunkOverloaded.into(),
                503,
                "Q.850;cause=34;text=\"trunk at its session limit\"",
                Some(10),
            ),
            (
                RouteRefusal::NoDialOutRoute.into(),
                403,
                "Q.850;cause=21;text=\"no trunk allowed for dial-out\"",
                None,
            ),
            (
                RouteRefusal::UnknownBridge.into(),
                404,
                "SIP;cause=404;text=\"bridge not in the plan\"",
                None,
            ),
            (
                HangupReason::NoInput.into(),
                408,
                "SIP;cause=408;text=\"No DTMF input\"",
                None,
            ),
            (
                HangupReason::ConferenceIdAttemptsExhausted.into(),
                403,
                "SIP;cause=403;text=\"Too many wrong conference IDs\"",
                None,
            ),
            (
                HangupReason::PinAttemptsExhausted.into(),
                403,
                "SIP;cause=403;text=\"Too many wrong PINs\"",
                None,
            ),
            (
                HangupReason::PinEntryRefused.into(),
                403,
                "SIP;cause=403;text=\"PIN entry refused\"",
                None,
            ),
            (
                HangupReason::InvitationNotAccepted.into(),
                408,
                "SIP;cause=408;text=\"invitation not accepted\"",
                None,
            ),
            (
                HangupReason::DirectoryUnavailable.into(),
                503,
                "SIP;cause=503;text=\"Conference directory unavailable\"",
                None,
            ),
            (
                MeetingRefusal::MeetingFull.into(),
                486,
                "SIP;cause=486;text=\"meeting full\"",
                None,
            ),
            (
                MeetingRefusal::MeetingLocked.into(),
                403,
                "SIP;cause=403;text=\"meeting locked\"",
                None,
            ),
            (
                MeetingRefusal::LeaderDidNotJoin.into(),
                408,
                "SIP;cause=408;text=\"the organiser did not join\"",
                None,
            ),
            (
                EndCause::ShuttingDown.into(),
                503,
                "SIP;cause=503;text=\"bridge shutting down\"",
                Some(30),
            ),
            (
                EndCause::SessionExpired.into(),
                408,
                "SIP;cause=408;text=\"session expired\"",
                None,
            ),
            (
                EndCause::MediaTimeout.into(),
                408,
                "SIP;cause=408;text=\"no media\"",
                None,
            ),
            (
                EndCause::NoAck.into(),
                408,
                "SIP;cause=408;text=\"no ACK for 200 OK\"",
                None,
            ),
            (
                EndCause::ConferenceUnavailable.into(),
                500,
                "SIP;cause=500;text=\"conference unavailable\"",
                None,
            ),
            (
                EndCause::NoCommonCodec.into(),
                488,
                "Q.850;cause=65;text=\"no common codec\"",
                None,
            ),
            (
                EndCause::UnusableSdesKey.into(),
                488,
                "SIP;cause=488;text=\"unusable SDES key (MKI or bad key)\"",
                None,
            ),
            (
                EndCause::NoMediaCapacity.into(),
                503,
                "Q.850;cause=47;text=\"no media capacity\"",
                Some(5),
            ),
            (
                EndCause::TlsRequired.into(),
                403,
                "SIP;cause=403;text=\"trunk requires TLS\"",
                None,
            ),
            (
                EndCause::ClientCertificateRequired.into(),
                403,
                "SIP;cause=403;text=\"trunk requires a TLS client certificate\"",
                None,
            ),
            (
                EndCause::CertificateNotForTrunk.into(),
                403,
                "SIP;cause=403;text=\"TLS client certificate does not name this trunk\"",
                None,
            ),
            (
                EndCause::AmbiguousCertificate.into(),
                403,
                "SIP;cause=403;text=\"TLS client certificate names more than one trunk\"",
                None,
            ),
            (
                EndCause::SrtpRequired.into(),
                488,
                "SIP;cause=488;text=\"trunk requires SRTP (RTP/SAVP with SDES)\"",
                None,
            ),
            (
                EndCause::SdesNeedsTls.into(),
                488,
                "SIP;cause=488;text=\"SDES needs TLS\"",
                None,
            ),
            (
                EndCause::SoftphonesNotAccepted.into(),
                403,
                "SIP;cause=403;text=\"softphones not accepted\"",
                None,
            ),
            (
                EndCause::SipOverloaded.into(),
                503,
                "SIP;cause=503;text=\"too many transactions\"",
                Some(5),
            ),
            (
                EndCause::Overloaded.into(),
                503,
                "SIP;cause=503;text=\"bridge overloaded\"",
                Some(2),
            ),
            (
                EndCause::MalformedDtmfInfo.into(),
                400,
                "SIP;cause=400;text=\"malformed DTMF INFO body\"",
                None,
            ),
            (
                EndCause::UnusableAnswer.into(),
                488,
                "SIP;cause=488;text=\"answer does not fit the offer\"",
                None,
            ),
            (
                EndCause::Kicked.into(),
                480,
                "Q.850;cause=16;text=\"removed from the meeting\"",
                None,
            ),
            (
                MoneyRefusal::NoCredits.into(),
                403,
                "SIP;cause=403;text=\"no communications credits\"",
                None,
            ),
            (
                MoneyRefusal::NoFunding.into(),
                403,
                "SIP;cause=403;text=\"no minute pool or rate covers this number\"",
                None,
            ),
            (
                MoneyRefusal::UnknownTenant.into(),
                403,
                "SIP;cause=403;text=\"tenant has no money account\"",
                None,
            ),
            (
                MoneyRefusal::BadNumber.into(),
                404,
                "SIP;cause=404;text=\"not an E.164 number\"",
                None,
            ),
            (
                EndCause::CreditsExhausted.into(),
                403,
                "SIP;cause=403;text=\"communications credits exhausted\"",
                None,
            ),
            (
                EndCause::BillingUnavailable.into(),
                503,
                "SIP;cause=503;text=\"billing unavailable\"",
                None,
            ),
            (
                EndCause::SharedStateUnavailable.into(),
                503,
                "SIP;cause=503;text=\"shared state unavailable\"",
                Some(5),
            ),
        ];
        for (cause, status, reason, retry_after) in rows {
            let answer = sip_answer(cause);
            assert_eq!(
                (answer.status, answer.reason, answer.retry_after),
                (status, reason, retry_after),
                "{cause:?}"
            );
            // A `SIP;cause=` names the status it stands for.
            if let Some(rest) = reason.strip_prefix("SIP;cause=") {
                assert!(rest.starts_with(&status.to_string()), "{cause:?}");
            }
            // The RFC's phrase, except where the bridge says more.
            if cause != Cause::Bridge(EndCause::ShuttingDown) {
                assert_eq!(
                    answer.phrase,
                    dialbridge_sip::message::reason_phrase(status),
                    "{cause:?}"
                );
            }
        }
        // Every router refusal has a row (the router adds a reason: this test fails).
        for r in RouteRefusal::ALL {
            assert!(rows.iter().any(|row| row.0 == Cause::Route(r)), "{r}");
        }
        // ...and every money refusal.
        for p in MoneyRefusal::ALL {
            assert!(rows.iter().any(|row| row.0 == Cause::Money(p)), "{p}");
        }
    }

    #[test]
    fn refuse_builds_the_response() {
        let raw = concat!(
            "INVITE sip:+14255550100@bridge SIP/2.0\r\n",
            "Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1\r\n",
            "From: <sip:a@10.0.0.1>;tag=1\r\n",
            "To: <sip:+14255550100@bridge>\r\n",
            "Call-ID: c1\r\n",
            "CSeq: 1 INVITE\r\n",
            "Content-Length: 0\r\n\r\n"
        );
        let invite = Request::try_from(raw).expect("a valid INVITE");
        // As the transport writes it (rsip's own Display spells phrases without spaces).
        let wire = |r: Response| {
            let bytes = dialbridge_sip::message::encode(&rsip::SipMessage::Response(r));
            String::from_utf8_lossy(&bytes).into_owned()
        };
        let text = wire(refuse(&invite, RouteRefusal::TrunkOverloaded));
        assert!(
            text.starts_with("SIP/2.0 503 Service Unavailable\r\n"),
            "{text}"
        );
        assert!(
            text.contains("\r\nReason: Q.850;cause=34;text=\"trunk at its session limit\"\r\n"),
            "{text}"
        );
        assert!(text.contains("\r\nRetry-After: 10\r\n"), "{text}");
        let text = wire(refuse(&invite, EndCause::ShuttingDown));
        assert!(
            text.starts_with("SIP/2.0 503 Bridge Shutting Down\r\n"),
            "{text}"
        );
        assert!(text.contains("\r\nRetry-After: 30\r\n"), "{text}");
        let text = wire(refuse(&invite, RouteRefusal::NumberBusy));
        assert!(text.starts_with("SIP/2.0 486 Busy Here\r\n"), "{text}");
        assert!(!text.contains("Retry-After"), "{text}");
    }
}
