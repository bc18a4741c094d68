//! The INVITE server transaction (RFC 3261 §17.2.1 as corrected by RFC 6026 §7.1), plus the
//! UAS core's 2xx retransmission (§13.3.1.4), which lives exactly as long as `Accepted`.

use super::ServerEvent;
use super::timer::{Backoff, Timers, due, earliest};
use crate::Error;
use crate::message::fields::response_for;
use rsip::{Request, Response};
use std::collections::VecDeque;
use std::time::Instant;

/// States of the INVITE server transaction.
///
/// RFC 3261 Figure 7 with RFC 6026's `Accepted` state (Figure 5 of RFC 6026):
///
/// ```text
///                                |INVITE
///                                |pass INV to TU
///             INVITE             V send 100 Trying
///             send response+-----------+
///                 +--------|           |--------+ 101-199 from TU
///                 |        |Proceeding |        | send response
///                 +------->|           |<-------+
///                          +-----------+
///             300-699 from TU |     | 2xx from TU
///             send response   |     | send response
///                             |     +------------------+
///                             |                        |
///             INVITE          V        Timer G fires   |  INVITE       -
///             send response+-----------+ send response V +---------+
///                 +--------|           |--------+  +-----------+    |
///                 |        | Completed |        |  |           |<---+  2xx from TU
///                 +------->|           |<-------+  | Accepted  |------+ send response
///                          +-----------+           |           |<-----+
///                             |     |              +-----------+ ACK
///                         ACK |     | Timer H fires      |       to TU
///                         -   |     | inform TU          | Timer L fires
///                             V     |                    | (no ACK: inform TU)
///                          +-----------+                 |
///                          | Confirmed |                 |
///                          +-----------+                 |
///                             |     |                    |
///               Timer I fires |     |                    |
///                          -  V     V                    V
///                          +-----------------------------------+
///                          |             Terminated            |
///                          +-----------------------------------+
/// ```
///
/// Timer G (T1 doubling to T2, unreliable transports only) retransmits the non-2xx final
/// response; Timer H (64*T1) gives up waiting for its ACK; Timer I (T4, zero on reliable
/// transports) absorbs ACK retransmissions; Timer L (64*T1) absorbs INVITE retransmissions
/// after a 2xx.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InviteServerState {
    /// The INVITE was handed to the TU; 100 Trying (or a later provisional) was sent.
    Proceeding,
    /// A 300-699 final response was sent; waiting for the ACK.
    Completed,
    /// The ACK for the non-2xx final response came; absorbing ACK retransmissions.
    Confirmed,
    /// A 2xx was sent (RFC 6026); INVITE retransmissions are absorbed, the ACK goes to the TU.
    Accepted,
    /// Done; the layer drops the transaction.
    Terminated,
}

/// One INVITE server transaction. See [`InviteServerState`] for the machine.
#[derive(Debug)]
pub struct InviteServer {
    state: InviteServerState,
    reliable: bool,
    timers: Timers,
    /// The last provisional or final response sent: what a retransmitted INVITE gets.
    last_response: Option<Response>,
    timer_g: Option<Backoff>,
    timer_h: Option<Instant>,
    timer_i: Option<Instant>,
    timer_l: Option<Instant>,
    /// §13.3.1.4: the 2xx is resent on T1 doubling to T2 until the ACK comes. Only over
    /// unreliable transports: a reliable hop already delivers it (pjsip and sofia agree).
    retransmit_2xx: Option<Backoff>,
    acked: bool,
    transmits: VecDeque<Response>,
    events: VecDeque<ServerEvent>,
}

impl InviteServer {
    /// A new transaction for `invite`, in `Proceeding`, with 100 Trying queued at once
    /// (§17.2.1 lets us wait 200 ms; a bridge that always answers has no reason to).
    pub fn new(invite: &Request, reliable: bool, timers: Timers) -> Self {
        let trying = response_for(invite, 100, None, None);
        let mut transmits = VecDeque::with_capacity(2);
        transmits.push_back(trying.clone());
        Self {
            state: InviteServerState::Proceeding,
            reliable,
            timers,
            last_response: Some(trying),
            timer_g: None,
            timer_h: None,
            timer_i: None,
            timer_l: None,
            retransmit_2xx: None,
            acked: false,
            transmits,
            events: VecDeque::new(),
        }
    }

    /// The current state.
    pub fn state(&self) -> InviteServerState {
        self.state
    }

    /// The last response sent (100 Trying until the TU responds).
    pub fn last_response(&self) -> Option<&Response> {
        self.last_response.as_ref()
    }

    /// A retransmission of the INVITE arrived. It is never handed to the TU again; in
    /// `Proceeding` and `Completed` the last response is resent, elsewhere it is absorbed.
    pub fn handle_request(&mut self, _now: Instant) {
        match self.state {
            InviteServerState::Proceeding | InviteServerState::Completed => {
                if let Some(resp) = &self.last_response {
                    self.transmits.push_back(resp.clone());
                }
            }
            InviteServerState::Accepted
            | InviteServerState::Confirmed
            | InviteServerState::Terminated => {}
        }
    }

    /// An ACK for this INVITE: either matched by branch (non-2xx ACK, or an RFC 6026 ACK in
    /// `Accepted`) or routed here by the layer as the ACK for our 2xx.
    /// Returns true when the ACK was handed to the TU (as [`ServerEvent::Ack`]).
    pub fn handle_ack(&mut self, ack: Request, now: Instant) -> bool {
        match self.state {
            InviteServerState::Completed => {
                self.state = InviteServerState::Confirmed;
                self.timer_g = None;
                self.timer_h = None;
                self.timer_i = Some(now + self.timers.t4_or_zero(self.reliable));
                self.handle_timeout(now);
                false
            }
            InviteServerState::Accepted if !self.acked => {
                self.acked = true;
                self.retransmit_2xx = None;
                self.events.push_back(ServerEvent::Ack(Box::new(ack)));
                true
            }
            _ => false,
        }
    }

    /// The TU sends a response. 1xx only in `Proceeding`; 2xx in `Proceeding` and again in
    /// `Accepted` (a TU retransmission); 300-699 only in `Proceeding`.
    pub fn respond(&mut self, response: Response, now: Instant) -> Result<(), Error> {
        let code = response.status_code.code();
        match (self.state, code) {
            (InviteServerState::Proceeding, 101..=199) => {
                self.send(response);
            }
            (InviteServerState::Proceeding, 200..=299) => {
                self.state = InviteServerState::Accepted;
                self.timer_l = Some(now + self.timers.t1_x64());
                if !self.reliable {
                    self.retransmit_2xx =
                        Some(Backoff::start(now, self.timers.t1, Some(self.timers.t2)));
                }
                self.send(response);
            }
            (InviteServerState::Accepted, 200..=299) => {
                self.send(response);
            }
            (InviteServerState::Proceeding, 300..=699) => {
                self.state = InviteServerState::Completed;
                if !self.reliable {
                    self.timer_g = Some(Backoff::start(now, self.timers.t1, Some(self.timers.t2)));
                }
                self.timer_h = Some(now + self.timers.t1_x64());
                self.send(response);
            }
            (state, _) => {
                return Err(Error::InvalidInState {
                    what: "response",
                    state: state.name(),
                });
            }
        }
        Ok(())
    }

    /// Fire every timer that is due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.state {
            InviteServerState::Completed => {
                if due(self.timer_h, now) {
                    self.events.push_back(ServerEvent::TimedOut);
                    self.terminate();
                    return;
                }
                if let Some(g) = self.timer_g.as_mut().filter(|g| g.at <= now) {
                    g.fire(now);
                    if let Some(resp) = &self.last_response {
                        self.transmits.push_back(resp.clone());
                    }
                }
            }
            InviteServerState::Confirmed => {
                if due(self.timer_i, now) {
                    self.terminate();
                }
            }
            InviteServerState::Accepted => {
                if due(self.timer_l, now) {
                    if !self.acked {
                        self.events.push_back(ServerEvent::NoAckFor2xx);
                    }
                    self.terminate();
                    return;
                }
                if let Some(r) = self.retransmit_2xx.as_mut().filter(|r| r.at <= now) {
                    r.fire(now);
                    if let Some(resp) = &self.last_response {
                        self.transmits.push_back(resp.clone());
                    }
                }
            }
            InviteServerState::Proceeding | InviteServerState::Terminated => {}
        }
    }

    /// When [`Self::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            InviteServerState::Completed => earliest(&[self.timer_g.map(|g| g.at), self.timer_h]),
            InviteServerState::Confirmed => self.timer_i,
            InviteServerState::Accepted => {
                earliest(&[self.retransmit_2xx.map(|r| r.at), self.timer_l])
            }
            InviteServerState::Proceeding | InviteServerState::Terminated => None,
        }
    }

    /// The next response to put on the wire.
    pub fn poll_transmit(&mut self) -> Option<Response> {
        self.transmits.pop_front()
    }

    /// The next event for the TU.
    pub fn poll_event(&mut self) -> Option<ServerEvent> {
        self.events.pop_front()
    }

    /// True once in `Terminated`.
    pub fn is_terminated(&self) -> bool {
        self.state == InviteServerState::Terminated
    }

    fn send(&mut self, response: Response) {
        self.transmits.push_back(response.clone());
        self.last_response = Some(response);
    }

    fn terminate(&mut self) {
        self.state = InviteServerState::Terminated;
        self.timer_g = None;
        self.timer_h = None;
        self.timer_i = None;
        self.timer_l = None;
        self.retransmit_2xx = None;
        self.events.push_back(ServerEvent::Terminated);
    }
}

impl InviteServerState {
    /// The RFC name of the state.
    pub fn name(self) -> &'static str {
        match self {
            Self::Proceeding => "Proceeding",
            Self::Completed => "Completed",
            Self::Confirmed => "Confirmed",
            Self::Accepted => "Accepted",
            Self::Terminated => "Terminated",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{invite, response_to};
    use super::*;
    use std::time::Duration;

    fn drain(tx: &mut InviteServer) -> Vec<u16> {
        std::iter::from_fn(|| tx.poll_transmit())
            .map(|r| r.status_code.code())
            .collect()
    }

    fn events(tx: &mut InviteServer) -> Vec<ServerEvent> {
        std::iter::from_fn(|| tx.poll_event()).collect()
    }

    /// Runs the machine to its next deadline; returns the offset from `base` in ms.
    fn step(tx: &mut InviteServer, base: Instant) -> u128 {
        let at = tx.poll_timeout().unwrap();
        tx.handle_timeout(at);
        (at - base).as_millis()
    }

    #[test]
    fn sends_100_trying_at_once_and_answers_retransmissions_from_the_transaction() {
        let base = Instant::now();
        let req = invite();
        let mut tx = InviteServer::new(&req, false, Timers::default());
        assert_eq!(drain(&mut tx), vec![100]);
        tx.handle_request(base);
        assert_eq!(drain(&mut tx), vec![100]);
        tx.respond(response_to(&req, 180), base).unwrap();
        assert_eq!(drain(&mut tx), vec![180]);
        tx.handle_request(base);
        assert_eq!(drain(&mut tx), vec![180]);
        assert_eq!(tx.poll_timeout(), None);
        assert!(events(&mut tx).is_empty());
    }

    #[test]
    fn timer_g_doubles_to_t2_until_timer_h_over_udp() {
        let base = Instant::now();
        let req = invite();
        let mut tx = InviteServer::new(&req, false, Timers::default());
        drain(&mut tx);
        tx.respond(response_to(&req, 486), base).unwrap();
        assert_eq!(drain(&mut tx), vec![486]);
        let mut fired = Vec::new();
        while !tx.is_terminated() {
            let at = step(&mut tx, base);
            let sent = drain(&mut tx);
            if !tx.is_terminated() {
                assert_eq!(sent, vec![486]);
            }
            fired.push(at);
        }
        // G at 0.5, 1.5, 3.5, 7.5 then every 4 s; H at 32 s.
        assert_eq!(&fired[..5], &[500, 1500, 3500, 7500, 11500]);
        assert_eq!(*fired.last().unwrap(), 32_000);
        assert_eq!(
            events(&mut tx),
            vec![ServerEvent::TimedOut, ServerEvent::Terminated]
        );
    }

    #[test]
    fn ack_confirms_then_timer_i_terminates_over_udp() {
        let base = Instant::now();
        let req = invite();
        let mut tx = InviteServer::new(&req, false, Timers::default());
        tx.respond(response_to(&req, 603), base).unwrap();
        drain(&mut tx);
        let ack_at = base + Duration::from_millis(700);
        tx.handle_timeout(base + Duration::from_millis(500));
        assert!(!tx.handle_ack(invite(), ack_at));
        assert_eq!(tx.state(), InviteServerState::Confirmed);
        // ACK retransmissions and INVITE retransmissions are absorbed.
        tx.handle_ack(invite(), ack_at);
        tx.handle_request(ack_at);
        assert_eq!(drain(&mut tx), vec![603]);
        assert_eq!(tx.poll_timeout(), Some(ack_at + Duration::from_secs(5)));
        tx.handle_timeout(ack_at + Duration::from_secs(5));
        assert_eq!(events(&mut tx), vec![ServerEvent::Terminated]);
    }

    #[test]
    fn reliable_transport_has_no_timer_g_and_zero_timer_i() {
        let base = Instant::now();
        let req = invite();
        let mut tx = InviteServer::new(&req, true, Timers::default());
        tx.respond(response_to(&req, 404), base).unwrap();
        drain(&mut tx);
        assert_eq!(tx.poll_timeout(), Some(base + Duration::from_secs(32)));
        tx.handle_ack(invite(), base + Duration::from_secs(1));
        assert!(tx.is_terminated());
        assert_eq!(events(&mut tx), vec![ServerEvent::Terminated]);
    }

    #[test]
    fn reliable_timer_h_times_out() {
        let base = Instant::now();
        let req = invite();
        let mut tx = InviteServer::new(&req, true, Timers::default());
        tx.respond(response_to(&req, 404), base).unwrap();
        drain(&mut tx);
        assert_eq!(step(&mut tx, base), 32_000);
        assert!(drain(&mut tx).is_empty());
        assert_eq!(
            events(&mut tx),
            vec![ServerEvent::TimedOut, ServerEvent::Terminated]
        );
    }

    #[test]
    fn accepted_retransmits_2xx_until_ack_and_timer_l_ends_it() {
        let base = Instant::now();
        let req = invite();
        let mut tx = InviteServer::new(&req, false, Timers::default());
        drain(&mut tx);
        tx.respond(response_to(&req, 200), base).unwrap();
        assert_eq!(tx.state(), InviteServerState::Accepted);
        assert_eq!(drain(&mut tx), vec![200]);
        assert_eq!(step(&mut tx, base), 500);
        assert_eq!(drain(&mut tx), vec![200]);
        assert_eq!(step(&mut tx, base), 1500);
        assert_eq!(drain(&mut tx), vec![200]);
        // A retransmitted INVITE is absorbed, not answered and not handed up.
        tx.handle_request(base + Duration::from_millis(1600));
        assert!(drain(&mut tx).is_empty());
        assert!(tx.handle_ack(invite(), base + Duration::from_secs(2)));
        assert!(matches!(events(&mut tx).as_slice(), [ServerEvent::Ack(_)]));
        // Duplicate ACK absorbed; only Timer L is left.
        assert!(!tx.handle_ack(invite(), base + Duration::from_secs(2)));
        assert_eq!(step(&mut tx, base), 32_000);
        assert!(drain(&mut tx).is_empty());
        assert_eq!(events(&mut tx), vec![ServerEvent::Terminated]);
    }

    #[test]
    fn no_ack_for_2xx_within_64_t1_is_reported() {
        let base = Instant::now();
        let req = invite();
        let mut tx = InviteServer::new(&req, false, Timers::default());
        tx.respond(response_to(&req, 200), base).unwrap();
        drain(&mut tx);
        let mut fired = Vec::new();
        while !tx.is_terminated() {
            fired.push(step(&mut tx, base));
        }
        assert_eq!(&fired[..4], &[500, 1500, 3500, 7500]);
        assert_eq!(*fired.last().unwrap(), 32_000);
        let sent = drain(&mut tx);
        assert!(sent.iter().all(|c| *c == 200));
        assert_eq!(
            events(&mut tx),
            vec![ServerEvent::NoAckFor2xx, ServerEvent::Terminated]
        );
    }

    #[test]
    fn reliable_2xx_is_not_retransmitted_but_ack_is_still_awaited() {
        let base = Instant::now();
        let req = invite();
        let mut tx = InviteServer::new(&req, true, Timers::default());
        tx.respond(response_to(&req, 200), base).unwrap();
        drain(&mut tx);
        assert_eq!(step(&mut tx, base), 32_000);
        assert!(drain(&mut tx).is_empty());
        assert_eq!(
            events(&mut tx),
            vec![ServerEvent::NoAckFor2xx, ServerEvent::Terminated]
        );
    }

    #[test]
    fn responses_out_of_state_are_errors() {
        let base = Instant::now();
        let req = invite();
        let mut tx = InviteServer::new(&req, false, Timers::default());
        tx.respond(response_to(&req, 486), base).unwrap();
        assert!(matches!(
            tx.respond(response_to(&req, 200), base),
            Err(Error::InvalidInState { .. })
        ));
        assert!(tx.respond(response_to(&req, 180), base).is_err());
    }
}
