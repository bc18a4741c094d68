//! The crate's one error type, sorted by who is at fault.

/// Everything that can go wrong in `dialbridge-sip`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The peer sent bytes that are not a SIP message we can parse.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// A message larger than the limit (64 KiB).
    #[error("message too large: {0} bytes")]
    TooLarge(usize),
    // --- message parsing (RFC 3261 §7, §18.3) ---
    /// Peer fault: the message breaks the grammar or a framing rule. The text is a short
    /// phrase fit for the reason of a 400 status line ("missing Call-ID", "bad CSeq").
    #[error("bad message: {0}")]
    BadMessage(&'static str),
    /// Peer fault: a request whose method we (and rsip) do not know. Answer 501 (§8.2.1).
    #[error("method not implemented")]
    UnsupportedMethod,
    /// Peer fault: a Request-URI of a scheme other than sip, sips or tel. Answer 416
    /// (§8.2.2.1, §21.4.16).
    #[error("unsupported URI scheme")]
    UnsupportedUriScheme,
    /// Peer fault: a SIP version other than SIP/2.0. Answer 505 (§21.5.7).
    #[error("SIP version not supported")]
    UnsupportedVersion,
    // --- transactions and dialogs (RFC 3261 §12, §17; RFC 4028) ---
    /// Peer fault: a header the transaction or dialog layer needs is missing or unparsable
    /// (top Via, branch, CSeq, Call-ID, From/To tag, Contact). Answer 400 (never to an ACK).
    #[error("missing or invalid {0}")]
    BadHeader(&'static str),
    /// Peer fault: an in-dialog request whose CSeq is lower than the last one (§12.2.2).
    /// Answer 500.
    #[error("CSeq {got} out of order (last {last})")]
    CSeqOutOfOrder {
        /// The CSeq number in the request.
        got: u32,
        /// The highest CSeq number seen in the dialog.
        last: u32,
    },
    /// Peer fault: a request for a dialog we do not have (§12.2.2). Answer 481.
    #[error("no such dialog")]
    NoSuchDialog,
    /// Peer fault: Session-Expires below our Min-SE (RFC 4028 §8). Answer 422 with Min-SE.
    #[error("session interval {got}s below minimum {min_se}s")]
    SessionIntervalTooSmall {
        /// The Session-Expires the peer asked for, in seconds.
        got: u32,
        /// Our minimum, in seconds, to put in the 422's Min-SE.
        min_se: u32,
    },
    /// API misuse: no transaction with that key (it terminated or never existed).
    #[error("no such transaction")]
    NoSuchTransaction,
    /// API misuse: the transaction cannot send that response (or request) in its state.
    #[error("{what} not allowed in state {state}")]
    InvalidInState {
        /// What the TU tried to do.
        what: &'static str,
        /// The transaction state at that time.
        state: &'static str,
    },
    // --- SDP offer/answer and digest authentication ---
    /// An SDP fault; [`crate::sdp::SdpError::status_code`] gives the answer (400 or 488).
    #[error("SDP: {0}")]
    Sdp(#[from] crate::sdp::SdpError),
    /// A digest challenge we cannot answer (client side).
    #[error("digest: {0}")]
    Auth(#[from] crate::auth::AuthError),
    // --- transports (RFC 3261 §18) ---
    /// An I/O error from a transport.
    #[error("transport: {0}")]
    Io(#[from] std::io::Error),
    /// A message could not be handed to a transport (connection closed, queue full).
    #[error("transport: {0}")]
    Transport(String),
    /// The TLS certificate or key could not be loaded.
    #[error("TLS: {0}")]
    Tls(String),
}
