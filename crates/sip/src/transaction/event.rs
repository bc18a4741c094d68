//! What the transaction layer gives the transport task and the TU: transmits, events,
//! counters.

use super::key::{ClientKey, ServerKey, TransactionKey};
use crate::Error;
use rsip::{Request, Response, SipMessage};

/// A message to put on the wire, to `peer`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit<P> {
    /// Where to (the peer handle given with the request, or to `send_request`).
    pub peer: P,
    /// What.
    pub message: SipMessage,
}

/// Why a request got no transaction.
#[derive(Debug)]
pub enum Refusal {
    /// [`LayerConfig::max_transactions`] reached: answer 503.
    Overloaded,
    /// The request cannot be matched to a transaction (no Via, no branch, bad CSeq):
    /// answer 400 statelessly.
    Malformed(Error),
}

/// What the layer tells the TU.
#[derive(Debug)]
pub enum Event<P> {
    /// A new request (never a retransmission, never an ACK or a CANCEL); answer it with
    /// [`TransactionLayer::respond`].
    NewRequest {
        /// Its server transaction.
        key: ServerKey,
        /// The request.
        request: Request,
        /// Where it came from.
        peer: P,
    },
    /// The ACK for a 2xx we sent (new branch, §13.3.1.4; or same branch, RFC 6026).
    /// 2xx retransmission has stopped.
    AckFor2xx {
        /// The INVITE server transaction it acknowledges.
        invite_key: ServerKey,
        /// The ACK (it may carry the SDP answer).
        request: Request,
        /// Where it came from.
        peer: P,
    },
    /// A CANCEL for an INVITE still in `Proceeding`. The layer already answered the CANCEL
    /// 200; the TU answers the INVITE 487.
    Cancel {
        /// The INVITE's server transaction.
        invite_key: ServerKey,
        /// The CANCEL.
        cancel: Request,
        /// Where it came from.
        peer: P,
    },
    /// A response to one of our requests (1xx, final, and 2xx retransmissions of a
    /// re-INVITE so the TU can resend its ACK).
    Response {
        /// Our client transaction.
        key: ClientKey,
        /// The response.
        response: Response,
    },
    /// Timer B, F (no final response) or H (no ACK for our non-2xx) fired.
    TimedOut {
        /// The transaction.
        key: TransactionKey,
    },
    /// 64*T1 after our 2xx to an INVITE and no ACK: the TU should send BYE (§13.3.1.4).
    NoAckFor2xx {
        /// The INVITE server transaction.
        invite_key: ServerKey,
    },
    /// The transaction is gone; its key is free.
    Terminated {
        /// The transaction.
        key: TransactionKey,
    },
    /// A request that got no transaction; answer it statelessly (503 or 400).
    Refused {
        /// The request.
        request: Request,
        /// Where it came from.
        peer: P,
        /// Why.
        reason: Refusal,
    },
}

/// Counters for what the layer dropped or absorbed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LayerStats {
    /// ACKs matching no transaction and no 2xx awaiting its ACK.
    pub stray_acks: u64,
    /// Responses matching no client transaction.
    pub stray_responses: u64,
    /// Messages with no usable Via, branch or CSeq.
    pub malformed: u64,
    /// Requests refused because of `max_transactions`.
    pub overloaded: u64,
    /// Request retransmissions absorbed by a server transaction.
    pub retransmissions_absorbed: u64,
}
