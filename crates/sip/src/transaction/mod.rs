//! SIP transactions (RFC 3261 §17, with the RFC 6026 corrections) as state machines with no I/O.
//!
//! Each machine takes input through `handle_*(.., now)` / `respond(.., now)` and gives output
//! through `poll_transmit()`, `poll_event()` and `poll_timeout()`, like quinn-proto: no
//! sockets, no clock, no tokio. [`TransactionLayer`] (§17.2.3 matching, the "endpoint") owns
//! them all and is what the transport task drives.
//!
//! - [`InviteServer`]: §17.2.1 + RFC 6026 `Accepted` (Timers G, H, I, L) and the UAS core's
//!   2xx retransmission of §13.3.1.4.
//! - [`NonInviteServer`]: §17.2.2 (Timer J).
//! - [`InviteClient`]: §17.1.1 + RFC 6026 `Accepted` (Timers A, B, D, M).
//! - [`NonInviteClient`]: §17.1.2 (Timers E, F, K).

mod event;
mod invite_client;
mod invite_server;
mod key;
mod layer;
mod non_invite_client;
mod non_invite_server;
mod peer;
mod timer;

pub use event::{Event, LayerStats, Refusal, Transmit};
pub use invite_client::{InviteClient, InviteClientState};
pub use invite_server::{InviteServer, InviteServerState};
pub use key::{ClientKey, ServerKey, TransactionKey};
pub use layer::{LayerConfig, TransactionLayer};
pub use non_invite_client::{NonInviteClient, NonInviteClientState};
pub use non_invite_server::{NonInviteServer, NonInviteServerState};
pub use peer::{Peer, PeerAddr, TransportKind};
pub use timer::Timers;

/// The magic cookie every RFC 3261 branch starts with (§8.1.1.7).
pub const MAGIC_COOKIE: &str = "z9hG4bK";

/// A fresh, globally unique branch: the magic cookie then 64 random bits in hex.
pub fn new_branch() -> rsip::param::Branch {
    rsip::param::Branch::new(format!("{MAGIC_COOKIE}{:016x}", rand::random::<u64>()))
}

/// What a client transaction reports to its TU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    /// A response to hand to the TU (provisional, final, or a 2xx retransmission in
    /// `Accepted` so the TU can resend its ACK).
    Response(rsip::Response),
    /// Timer B or Timer F fired: no final response came.
    TimedOut,
    /// The transaction reached `Terminated`.
    Terminated,
}

/// What a server transaction reports to its TU (the request itself is handed up by the
/// [`TransactionLayer`] when the transaction is created, exactly once).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerEvent {
    /// An ACK the TU must see: one that matched an INVITE server transaction in `Accepted`.
    Ack(Box<rsip::Request>),
    /// Timer H fired: no ACK came for our non-2xx final response.
    TimedOut,
    /// 64*T1 passed since our 2xx with no ACK (§13.3.1.4): the TU should send BYE.
    NoAckFor2xx,
    /// The transaction reached `Terminated`.
    Terminated,
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Requests and responses for the unit tests.
    use rsip::{Request, Response};

    /// A request with a fixed branch, From tag and Call-ID.
    pub fn request(method: &str) -> Request {
        request_with(method, "z9hG4bKtest1", 1)
    }

    /// A request with the given branch and CSeq number.
    pub fn request_with(method: &str, branch: &str, cseq: u32) -> Request {
        let raw = format!(
            "{method} sip:bridge@example.com SIP/2.0\r\n\
             Via: SIP/2.0/UDP 192.0.2.1:5060;branch={branch}\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:+14155550100@sbc.example.com>;tag=from1\r\n\
             To: <sip:bridge@example.com>\r\n\
             Call-ID: call-1@sbc.example.com\r\n\
             CSeq: {cseq} {method}\r\n\
             Contact: <sip:+14155550100@192.0.2.1:5060>\r\n\
             Content-Length: 0\r\n\r\n"
        );
        // The literal above is a valid request: a parse failure is a bug in the test.
        Request::try_from(raw.as_str()).unwrap_or_else(|e| unreachable!("{e}"))
    }

    /// An INVITE.
    pub fn invite() -> Request {
        request("INVITE")
    }

    /// A response to `request`, with a To tag unless it is a 100.
    pub fn response_to(request: &Request, code: u16) -> Response {
        let tag = (code > 100).then_some("to1");
        crate::message::fields::response_for(request, code, None, tag)
    }
}
