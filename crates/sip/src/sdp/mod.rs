//! SDP (RFC 4566) parsing and offer/answer (RFC 3264) for one audio stream:
//! G.711 today, G.722 and Opus by adding a [`Codec`], RFC 4733 telephone-event,
//! hold/resume (§8.4, including the RFC 2543 `c=0.0.0.0` form) and RFC 4568 SDES
//! `a=crypto` lines kept for SRTP.
//!
//! The parser is hand-written rather than taken from a crate: the SDP crates on
//! crates.io are either WebRTC-shaped (ICE, DTLS, BUNDLE, a large dependency tree)
//! or unmaintained, while what a trunk or a softphone sends is a dozen line types.
//! Hand-written, it is strict where a mistake would misroute media (`v=`, `o=`,
//! `c=`, `m=`, payload types, ports), tolerant of every line it has no use for,
//! and bounded ([`MAX_SDP_LEN`], [`MAX_MEDIA`], ...), so peer bytes cannot make it
//! allocate without limit or panic.
//!
//! Pure: no I/O and no clock. A re-INVITE is handled by [`MediaSession`], which
//! keeps the `o=` version rules of RFC 3264 §8.

mod negotiate;
mod parse;
mod write;

pub use negotiate::{Answer, MediaSession, Negotiated, answer, handle_answer, offer};
pub use parse::{
    Connection, Crypto, KeyParam, Media, Origin, Proto, Rtcp, RtpMap, SessionDescription,
};
pub use write::redact_sdes_keys;

use std::net::IpAddr;

/// Largest SDP body we parse (bytes). A SIP message is at most 64 KiB; no real
/// audio offer comes near this.
pub const MAX_SDP_LEN: usize = 16 * 1024;
/// Most lines in one SDP body.
pub const MAX_LINES: usize = 512;
/// Most `m=` sections in one SDP body.
pub const MAX_MEDIA: usize = 16;
/// Most formats (payload types) on one `m=` line.
pub const MAX_FORMATS: usize = 64;
/// Most `a=crypto` lines in one media section.
pub const MAX_CRYPTO: usize = 16;

/// What can go wrong with SDP, sorted by who is at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    /// The peer's SDP does not parse (answer 400, or 488 inside an INVITE).
    #[error("malformed SDP at line {line}: {reason}")]
    Malformed {
        /// 1-based line number, 0 when the fault is not one line's.
        line: usize,
        /// What is wrong, for logs and the reason phrase.
        reason: &'static str,
    },
    /// The body is larger than [`MAX_SDP_LEN`] or has too many lines, media or formats.
    #[error("SDP too large: {0}")]
    TooLarge(&'static str),
    /// Nothing in the offer is acceptable: no common codec, no supported transport
    /// (answer 488 Not Acceptable Here, RFC 3261 §21.4.26).
    #[error("no acceptable media: {0}")]
    NotAcceptable(&'static str),
    /// The peer's answer does not fit our offer (RFC 3264 §6: wrong m-line count,
    /// a payload type we did not offer): end the call or re-offer.
    #[error("answer does not match our offer: {0}")]
    AnswerMismatch(&'static str),
}

impl SdpError {
    /// The SIP status to send when this error came from an offer in a request.
    pub fn status_code(&self) -> u16 {
        match self {
            SdpError::Malformed { .. } | SdpError::TooLarge(_) => 400,
            SdpError::NotAcceptable(_) | SdpError::AnswerMismatch(_) => 488,
        }
    }
}

/// Media direction attribute (RFC 4566 §6, RFC 3264 §5.1 and §6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// `a=sendrecv`, the default when no attribute is present.
    SendRecv,
    /// `a=sendonly`: the sender puts the other side on hold.
    SendOnly,
    /// `a=recvonly`.
    RecvOnly,
    /// `a=inactive`.
    Inactive,
}

impl Direction {
    /// From the two capabilities of one side.
    pub fn from_flags(send: bool, recv: bool) -> Self {
        match (send, recv) {
            (true, true) => Direction::SendRecv,
            (true, false) => Direction::SendOnly,
            (false, true) => Direction::RecvOnly,
            (false, false) => Direction::Inactive,
        }
    }

    /// Whether this side sends media.
    pub fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }

    /// Whether this side receives media.
    pub fn receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }

    /// The direction seen from the other side (RFC 3264 §6.1: sendonly is answered
    /// recvonly and the reverse; sendrecv and inactive stay).
    pub fn reversed(self) -> Self {
        Direction::from_flags(self.receives(), self.sends())
    }

    /// The attribute name, as written after `a=`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    fn from_attribute(name: &str) -> Option<Self> {
        match name {
            "sendrecv" => Some(Direction::SendRecv),
            "sendonly" => Some(Direction::SendOnly),
            "recvonly" => Some(Direction::RecvOnly),
            "inactive" => Some(Direction::Inactive),
            _ => None,
        }
    }
}

/// An audio codec we can send and receive, identified on the wire by its static
/// payload type (RFC 3551 table 4) or by its `a=rtpmap` encoding name and clock rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Codec {
    /// Encoding name as in `a=rtpmap` (compared case-insensitively).
    pub name: &'static str,
    /// RTP clock rate (8000 for G.722 too, RFC 3551 §4.5.2).
    pub clock_rate: u32,
    /// Channels in `a=rtpmap` (1 unless stated).
    pub channels: u8,
    /// The static payload type, `None` for dynamic-only codecs.
    pub static_pt: Option<u8>,
    /// Payload type we use in our own offers (the static one when there is one).
    pub offer_pt: u8,
    /// `a=fmtp` we put in our offers and answers, if any.
    pub fmtp: Option<&'static str>,
}

impl Codec {
    /// G.711 µ-law, PT 0.
    pub const PCMU: Codec = Codec {
        name: "PCMU",
        clock_rate: 8000,
        channels: 1,
        static_pt: Some(0),
        offer_pt: 0,
        fmtp: None,
    };
    /// G.711 A-law, PT 8.
    pub const PCMA: Codec = Codec {
        name: "PCMA",
        clock_rate: 8000,
        channels: 1,
        static_pt: Some(8),
        offer_pt: 8,
        fmtp: None,
    };
    /// G.722, PT 9 (its RTP clock is 8000 although it samples at 16 kHz).
    pub const G722: Codec = Codec {
        name: "G722",
        clock_rate: 8000,
        channels: 1,
        static_pt: Some(9),
        offer_pt: 9,
        fmtp: None,
    };
    /// Opus (RFC 7587): always `opus/48000/2`, dynamic payload type.
    pub const OPUS: Codec = Codec {
        name: "opus",
        clock_rate: 48000,
        channels: 2,
        static_pt: None,
        offer_pt: 111,
        fmtp: Some("minptime=10;useinbandfec=1"),
    };
}

/// RFC 4733 `telephone-event/8000`, the payload type we use in our own offers.
/// In answers the offer's payload type is always used instead.
pub const TELEPHONE_EVENT_OFFER_PT: u8 = 101;
/// Events we accept (DTMF 0-9 * # A-D and flash), as `a=fmtp` writes them.
pub const TELEPHONE_EVENT_FMTP: &str = "0-16";

/// The SRTP suites we can key from SDES (RFC 4568 §6.2).
pub const SRTP_SUITES: [&str; 2] = ["AES_CM_128_HMAC_SHA1_80", "AES_CM_128_HMAC_SHA1_32"];

/// Our side of the media: where we receive, what we accept, in preference order.
#[derive(Clone, PartialEq, Eq)]
pub struct LocalMedia {
    /// Address we receive RTP on (written in `c=` and `o=`).
    pub address: IpAddr,
    /// Our RTP port (even; RTCP on the next one).
    pub rtp_port: u16,
    /// Codecs we accept, most preferred first. Our offers list them in this order;
    /// answers pick the offer's first one found here (RFC 3264 §6.1).
    pub codecs: Vec<Codec>,
    /// Whether we accept RFC 4733 telephone-event.
    pub telephone_event: bool,
    /// Packetisation time we send, in ms (`a=ptime`).
    pub ptime: u32,
    /// `o=` sess-id, fixed for the dialog.
    pub session_id: u64,
    /// `o=` sess-version of the first SDP we send; [`MediaSession`] increments it.
    pub session_version: u64,
    /// The direction we want: `SendRecv`, or `SendOnly`/`Inactive` when we hold.
    pub direction: Direction,
    /// Base64 SDES key||salt (30 bytes for the AES_CM_128 suites) to offer or answer
    /// RTP/SAVP with; `None` refuses RTP/SAVP m-lines. Generating it is the caller's
    /// job (this module has no randomness).
    pub sdes_inline_key: Option<String>,
}

impl LocalMedia {
    /// G.711 (PCMU then PCMA), telephone-event, 20 ms, sendrecv, no SRTP; the
    /// first sess-version equals the sess-id (RFC 4566 §5.2 suggests an NTP
    /// timestamp for both).
    pub fn g711(address: IpAddr, rtp_port: u16, session_id: u64) -> Self {
        LocalMedia {
            address,
            rtp_port,
            codecs: vec![Codec::PCMU, Codec::PCMA],
            telephone_event: true,
            ptime: 20,
            session_id,
            session_version: session_id,
            direction: Direction::SendRecv,
            sdes_inline_key: None,
        }
    }
}

impl std::fmt::Debug for LocalMedia {
    // The SDES key is a secret: never print it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalMedia")
            .field("address", &self.address)
            .field("rtp_port", &self.rtp_port)
            .field("codecs", &self.codecs)
            .field("telephone_event", &self.telephone_event)
            .field("ptime", &self.ptime)
            .field("session_id", &self.session_id)
            .field("session_version", &self.session_version)
            .field("direction", &self.direction)
            .field(
                "sdes_inline_key",
                &self.sdes_inline_key.as_ref().map(|_| "***"),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests;
