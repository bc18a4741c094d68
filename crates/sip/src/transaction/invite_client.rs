//! The INVITE client transaction (RFC 3261 §17.1.1 as corrected by RFC 6026 §7.2), for the
//! bridge's own re-INVITEs.

use super::ClientEvent;
use super::timer::{Backoff, Timers, due, earliest};
use rsip::prelude::*;
use rsip::{Header, Headers, Method, Request, Response};
use std::collections::VecDeque;
use std::time::Instant;

/// States of the INVITE client transaction.
///
/// RFC 3261 Figure 5 with RFC 6026's `Accepted` state (Figure 4 of RFC 6026):
///
/// ```text
///                                |INVITE from TU
///              Timer A fires     |INVITE sent      Timer B fires
///              Reset A,          V                 or Transport Err.
///              INVITE sent +-----------+           inform TU
///                +---------|           |--------------------------+
///                |         |  Calling  |                          |
///                +-------->|           |-----------+              |
///   300-699                +-----------+ 2xx       |              |
///   ACK sent                  |  |       2xx to TU |              |
///   resp. to TU               |  |1xx              |              |
///   +-------------------------+  |1xx to TU        |              |
///   |                            V                 |              |
///   |            1xx to TU +-----------+           |              |
///   |           +----------|           |           |              |
///   |           |          |Proceeding |---------->|              |
///   |           +--------->|           | 2xx       |              |
///   |                      +-----------+ 2xx to TU |              |
///   |         300-699         |                    V              |
///   |         ACK sent,       |              +-----------+        |
///   |         resp. to TU     |              |           |---+    |
///   |                         |              | Accepted  |   | 2xx to TU
///   |  300-699                V              |           |<--+    |
///   |  ACK sent        +-----------+         +-----------+        |
///   |  +---------------|           |               |              |
///   |  |               | Completed |               | Timer M      |
///   |  +-------------->|           |               | fires        |
///   |                  +-----------+               | -            |
///   +----------------->   |  Timer D fires         |              |
///                         |  -                     |              |
///                         V                        V              |
///                   +---------------------------------+           |
///                   |           Terminated            |<----------+
///                   +---------------------------------+
/// ```
///
/// Timer A (T1, doubling, unreliable transports only) retransmits the INVITE; Timer B
/// (64*T1) gives up in `Calling`; Timer D (32 s, zero on reliable transports) absorbs
/// retransmitted final responses; Timer M (64*T1) passes 2xx retransmissions to the TU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InviteClientState {
    /// INVITE sent, no response yet.
    Calling,
    /// A provisional response came.
    Proceeding,
    /// A 300-699 came and was ACKed.
    Completed,
    /// A 2xx came (RFC 6026); the TU sends the ACK, 2xx retransmissions go to it too.
    Accepted,
    /// Done.
    Terminated,
}

/// One INVITE client transaction. See [`InviteClientState`].
#[derive(Debug)]
pub struct InviteClient {
    state: InviteClientState,
    reliable: bool,
    timers: Timers,
    invite: Request,
    ack: Option<Request>,
    timer_a: Option<Backoff>,
    timer_b: Option<Instant>,
    timer_d: Option<Instant>,
    timer_m: Option<Instant>,
    transmits: VecDeque<Request>,
    events: VecDeque<ClientEvent>,
}

impl InviteClient {
    /// Start the transaction: the INVITE is queued for sending, Timers A and B start.
    pub fn new(invite: Request, reliable: bool, timers: Timers, now: Instant) -> Self {
        let mut transmits = VecDeque::with_capacity(2);
        transmits.push_back(invite.clone());
        Self {
            state: InviteClientState::Calling,
            reliable,
            timers,
            invite,
            ack: None,
            // Timer A doubles without the T2 cap (§17.1.1.2).
            timer_a: (!reliable).then(|| Backoff::start(now, timers.t1, None)),
            timer_b: Some(now + timers.t1_x64()),
            timer_d: None,
            timer_m: None,
            transmits,
            events: VecDeque::new(),
        }
    }

    /// The current state.
    pub fn state(&self) -> InviteClientState {
        self.state
    }

    /// A response matched to this transaction arrived.
    pub fn handle_response(&mut self, response: Response, now: Instant) {
        let code = response.status_code.code();
        match (self.state, code) {
            (InviteClientState::Calling | InviteClientState::Proceeding, 100..=199) => {
                self.state = InviteClientState::Proceeding;
                self.timer_a = None;
                self.timer_b = None;
                self.events.push_back(ClientEvent::Response(response));
            }
            (InviteClientState::Calling | InviteClientState::Proceeding, 200..=299) => {
                self.state = InviteClientState::Accepted;
                self.timer_a = None;
                self.timer_b = None;
                self.timer_m = Some(now + self.timers.t1_x64());
                self.events.push_back(ClientEvent::Response(response));
            }
            (InviteClientState::Calling | InviteClientState::Proceeding, 300..=699) => {
                self.state = InviteClientState::Completed;
                self.timer_a = None;
                self.timer_b = None;
                self.timer_d = Some(now + self.timers.timer_d(self.reliable));
                let ack = ack_for(&self.invite, &response);
                self.transmits.push_back(ack.clone());
                self.ack = Some(ack);
                self.events.push_back(ClientEvent::Response(response));
                self.handle_timeout(now);
            }
            (InviteClientState::Completed, 300..=699) => {
                if let Some(ack) = &self.ack {
                    self.transmits.push_back(ack.clone());
                }
            }
            (InviteClientState::Accepted, 200..=299) => {
                self.events.push_back(ClientEvent::Response(response));
            }
            // Anything else (a 1xx after a final, a 2xx after a 486...) is absorbed.
            _ => {}
        }
    }

    /// Fire every timer that is due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.state {
            InviteClientState::Calling => {
                if due(self.timer_b, now) {
                    self.events.push_back(ClientEvent::TimedOut);
                    self.terminate();
                    return;
                }
                if let Some(a) = self.timer_a.as_mut().filter(|a| a.at <= now) {
                    a.fire(now);
                    self.transmits.push_back(self.invite.clone());
                }
            }
            InviteClientState::Completed => {
                if due(self.timer_d, now) {
                    self.terminate();
                }
            }
            InviteClientState::Accepted => {
                if due(self.timer_m, now) {
                    self.terminate();
                }
            }
            InviteClientState::Proceeding | InviteClientState::Terminated => {}
        }
    }

    /// When [`Self::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            InviteClientState::Calling => earliest(&[self.timer_a.map(|a| a.at), self.timer_b]),
            InviteClientState::Completed => self.timer_d,
            InviteClientState::Accepted => self.timer_m,
            InviteClientState::Proceeding | InviteClientState::Terminated => None,
        }
    }

    /// The next request (INVITE or ACK) to put on the wire.
    pub fn poll_transmit(&mut self) -> Option<Request> {
        self.transmits.pop_front()
    }

    /// The next event for the TU.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// True once in `Terminated`.
    pub fn is_terminated(&self) -> bool {
        self.state == InviteClientState::Terminated
    }

    fn terminate(&mut self) {
        self.state = InviteClientState::Terminated;
        self.timer_a = None;
        self.timer_b = None;
        self.timer_d = None;
        self.timer_m = None;
        self.events.push_back(ClientEvent::Terminated);
    }
}

/// The ACK for a non-2xx final response (§17.1.1.3): same Request-URI, Call-ID, From,
/// CSeq number and top Via as the INVITE, the To of the response, and the INVITE's Routes.
fn ack_for(invite: &Request, response: &Response) -> Request {
    let mut headers = Headers::default();
    let mut via_done = false;
    for header in invite.headers.iter() {
        match header {
            Header::Via(_) if !via_done => {
                via_done = true;
                headers.push(header.clone());
            }
            Header::From(_) | Header::CallId(_) | Header::Route(_) | Header::MaxForwards(_) => {
                headers.push(header.clone())
            }
            Header::CSeq(cseq) => {
                let seq = cseq.seq().unwrap_or_default();
                headers.push(rsip::typed::CSeq::from((seq, Method::Ack)).into());
            }
            _ => {}
        }
    }
    if let Ok(to) = response.to_header() {
        headers.push(Header::To(to.clone()));
    }
    headers.push(Header::ContentLength(rsip::headers::ContentLength::from(
        0u32,
    )));
    Request {
        method: Method::Ack,
        uri: invite.uri.clone(),
        version: rsip::Version::V2,
        headers,
        body: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{invite, response_to};
    use super::*;
    use std::time::Duration;

    fn sent(tx: &mut InviteClient) -> Vec<Method> {
        std::iter::from_fn(|| tx.poll_transmit())
            .map(|r| r.method)
            .collect()
    }

    fn events(tx: &mut InviteClient) -> Vec<ClientEvent> {
        std::iter::from_fn(|| tx.poll_event()).collect()
    }

    #[test]
    fn timer_a_doubles_without_cap_until_timer_b_over_udp() {
        let base = Instant::now();
        let mut tx = InviteClient::new(invite(), false, Timers::default(), base);
        assert_eq!(sent(&mut tx), vec![Method::Invite]);
        let mut fired = Vec::new();
        while !tx.is_terminated() {
            let at = tx.poll_timeout().unwrap();
            tx.handle_timeout(at);
            fired.push((at - base).as_millis());
        }
        // A: 0.5, 1.5, 3.5, 7.5, 15.5, 31.5 s; B: 32 s.
        assert_eq!(fired, vec![500, 1500, 3500, 7500, 15500, 31500, 32000]);
        assert_eq!(sent(&mut tx).len(), 6);
        assert_eq!(
            events(&mut tx),
            vec![ClientEvent::TimedOut, ClientEvent::Terminated]
        );
    }

    #[test]
    fn reliable_has_no_timer_a_only_timer_b() {
        let base = Instant::now();
        let mut tx = InviteClient::new(invite(), true, Timers::default(), base);
        sent(&mut tx);
        assert_eq!(tx.poll_timeout(), Some(base + Duration::from_secs(32)));
        tx.handle_timeout(base + Duration::from_secs(32));
        assert!(sent(&mut tx).is_empty());
        assert_eq!(
            events(&mut tx),
            vec![ClientEvent::TimedOut, ClientEvent::Terminated]
        );
    }

    #[test]
    fn provisional_stops_retransmission_and_timer_b() {
        let base = Instant::now();
        let req = invite();
        let mut tx = InviteClient::new(req.clone(), false, Timers::default(), base);
        sent(&mut tx);
        tx.handle_response(response_to(&req, 100), base + Duration::from_millis(100));
        assert_eq!(tx.state(), InviteClientState::Proceeding);
        assert_eq!(tx.poll_timeout(), None);
        assert_eq!(events(&mut tx).len(), 1);
    }

    #[test]
    fn non_2xx_is_acked_and_timer_d_absorbs_retransmissions_over_udp() {
        let base = Instant::now();
        let req = invite();
        let mut tx = InviteClient::new(req.clone(), false, Timers::default(), base);
        sent(&mut tx);
        let busy = response_to(&req, 486);
        tx.handle_response(busy.clone(), base);
        let acks: Vec<_> = std::iter::from_fn(|| tx.poll_transmit()).collect();
        assert_eq!(acks.len(), 1);
        let ack = &acks[0];
        assert_eq!(ack.method, Method::Ack);
        assert_eq!(ack.uri, req.uri);
        assert_eq!(
            ack.cseq_header().unwrap().typed().unwrap().method,
            Method::Ack
        );
        assert_eq!(ack.to_header().unwrap(), busy.to_header().unwrap());
        assert_eq!(ack.via_header().unwrap(), req.via_header().unwrap());
        // The retransmitted 486 gets the ACK again and is not passed up.
        tx.handle_response(busy, base + Duration::from_secs(1));
        assert_eq!(sent(&mut tx), vec![Method::Ack]);
        assert_eq!(events(&mut tx).len(), 1);
        assert_eq!(tx.poll_timeout(), Some(base + Duration::from_secs(32)));
        tx.handle_timeout(base + Duration::from_secs(32));
        assert_eq!(events(&mut tx), vec![ClientEvent::Terminated]);
    }

    #[test]
    fn reliable_timer_d_is_zero() {
        let base = Instant::now();
        let req = invite();
        let mut tx = InviteClient::new(req.clone(), true, Timers::default(), base);
        tx.handle_response(response_to(&req, 488), base);
        assert!(tx.is_terminated());
        assert_eq!(sent(&mut tx), vec![Method::Invite, Method::Ack]);
    }

    #[test]
    fn accepted_passes_2xx_retransmissions_up_until_timer_m() {
        let base = Instant::now();
        let req = invite();
        let mut tx = InviteClient::new(req.clone(), false, Timers::default(), base);
        sent(&mut tx);
        tx.handle_response(response_to(&req, 200), base);
        tx.handle_response(response_to(&req, 200), base + Duration::from_secs(1));
        assert!(sent(&mut tx).is_empty(), "the TU ACKs a 2xx, not us");
        assert_eq!(events(&mut tx).len(), 2);
        assert_eq!(tx.poll_timeout(), Some(base + Duration::from_secs(32)));
        tx.handle_timeout(base + Duration::from_secs(32));
        assert_eq!(events(&mut tx), vec![ClientEvent::Terminated]);
    }
}
