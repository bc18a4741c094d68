//! The non-INVITE server transaction (RFC 3261 §17.2.2).

use super::ServerEvent;
use super::timer::{Timers, due};
use crate::Error;
use rsip::Response;
use std::collections::VecDeque;
use std::time::Instant;

/// States of the non-INVITE server transaction.
///
/// RFC 3261 Figure 8:
///
/// ```text
///                                   |Request received
///                                   |pass to TU
///                                   V
///                             +-----------+
///                             |           |
///                             | Trying    |-------------+
///                             |           |             |
///                             +-----------+             |200-699 from TU
///                                   |                   |send response
///                                   |1xx from TU        |
///                                   |send response      |
///                                   |                   |
///                Request            V      1xx from TU  |
///                send response+-----------+send response|
///                    +--------|           |--------+    |
///                    |        | Proceeding|        |    |
///                    +------->|           |<-------+    |
///                             +-----------+             |
///                                   |                   |
///                                   |200-699 from TU    |
///                                   |send response      |
///                Request            V                   |
///                send response+-----------+             |
///                    +--------|           |             |
///                    |        | Completed |<------------+
///                    +------->|           |
///                             +-----------+
///                                   |
///                                   |Timer J fires
///                                   |-
///                                   V
///                             +-----------+
///                             | Terminated|
///                             +-----------+
/// ```
///
/// Timer J is 64*T1 over unreliable transports and zero over reliable ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonInviteServerState {
    /// The request went to the TU; nothing sent yet, retransmissions are absorbed.
    Trying,
    /// A provisional response was sent; retransmissions get it again.
    Proceeding,
    /// A final response was sent; retransmissions get it again until Timer J.
    Completed,
    /// Done.
    Terminated,
}

/// One non-INVITE server transaction. See [`NonInviteServerState`].
#[derive(Debug)]
pub struct NonInviteServer {
    state: NonInviteServerState,
    reliable: bool,
    timers: Timers,
    last_response: Option<Response>,
    timer_j: Option<Instant>,
    transmits: VecDeque<Response>,
    events: VecDeque<ServerEvent>,
}

impl NonInviteServer {
    /// A new transaction in `Trying` (the layer hands the request to the TU).
    pub fn new(reliable: bool, timers: Timers) -> Self {
        Self {
            state: NonInviteServerState::Trying,
            reliable,
            timers,
            last_response: None,
            timer_j: None,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// The current state.
    pub fn state(&self) -> NonInviteServerState {
        self.state
    }

    /// The last response sent, if any.
    pub fn last_response(&self) -> Option<&Response> {
        self.last_response.as_ref()
    }

    /// A retransmission of the request: answered from the stored response, never handed up.
    pub fn handle_request(&mut self, _now: Instant) {
        if matches!(
            self.state,
            NonInviteServerState::Proceeding | NonInviteServerState::Completed
        ) && let Some(resp) = &self.last_response
        {
            self.transmits.push_back(resp.clone());
        }
    }

    /// The TU sends a response: 1xx in `Trying`/`Proceeding`, a final one likewise.
    pub fn respond(&mut self, response: Response, now: Instant) -> Result<(), Error> {
        let code = response.status_code.code();
        match (self.state, code) {
            (NonInviteServerState::Trying | NonInviteServerState::Proceeding, 100..=199) => {
                self.state = NonInviteServerState::Proceeding;
            }
            (NonInviteServerState::Trying | NonInviteServerState::Proceeding, 200..=699) => {
                self.state = NonInviteServerState::Completed;
                self.timer_j = Some(now + self.timers.timer_j(self.reliable));
            }
            (state, _) => {
                return Err(Error::InvalidInState {
                    what: "response",
                    state: state.name(),
                });
            }
        }
        self.transmits.push_back(response.clone());
        self.last_response = Some(response);
        // Timer J is zero on reliable transports: terminate right away.
        self.handle_timeout(now);
        Ok(())
    }

    /// Fire Timer J if due.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.state == NonInviteServerState::Completed && due(self.timer_j, now) {
            self.state = NonInviteServerState::Terminated;
            self.timer_j = None;
            self.events.push_back(ServerEvent::Terminated);
        }
    }

    /// When [`Self::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timer_j
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
        self.state == NonInviteServerState::Terminated
    }
}

impl NonInviteServerState {
    /// The RFC name of the state.
    pub fn name(self) -> &'static str {
        match self {
            Self::Trying => "Trying",
            Self::Proceeding => "Proceeding",
            Self::Completed => "Completed",
            Self::Terminated => "Terminated",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{request, response_to};
    use super::*;
    use std::time::Duration;

    fn drain(tx: &mut NonInviteServer) -> Vec<u16> {
        std::iter::from_fn(|| tx.poll_transmit())
            .map(|r| r.status_code.code())
            .collect()
    }

    #[test]
    fn trying_absorbs_then_completed_answers_from_the_stored_response() {
        let base = Instant::now();
        let bye = request("BYE");
        let mut tx = NonInviteServer::new(false, Timers::default());
        tx.handle_request(base);
        assert!(drain(&mut tx).is_empty());
        tx.respond(response_to(&bye, 200), base).unwrap();
        assert_eq!(drain(&mut tx), vec![200]);
        tx.handle_request(base + Duration::from_secs(1));
        assert_eq!(drain(&mut tx), vec![200]);
        assert!(tx.respond(response_to(&bye, 200), base).is_err());
    }

    #[test]
    fn timer_j_is_64_t1_over_udp() {
        let base = Instant::now();
        let bye = request("BYE");
        let mut tx = NonInviteServer::new(false, Timers::default());
        tx.respond(response_to(&bye, 100), base).unwrap();
        assert_eq!(tx.state(), NonInviteServerState::Proceeding);
        tx.handle_request(base);
        assert_eq!(drain(&mut tx), vec![100, 100]);
        tx.respond(response_to(&bye, 200), base).unwrap();
        let at = tx.poll_timeout().unwrap();
        assert_eq!(at - base, Duration::from_secs(32));
        tx.handle_timeout(at - Duration::from_millis(1));
        assert!(!tx.is_terminated());
        tx.handle_timeout(at);
        assert!(tx.is_terminated());
        assert_eq!(tx.poll_event(), Some(ServerEvent::Terminated));
        assert_eq!(tx.poll_event(), None);
    }

    #[test]
    fn timer_j_is_zero_over_reliable_transport() {
        let base = Instant::now();
        let bye = request("BYE");
        let mut tx = NonInviteServer::new(true, Timers::default());
        tx.respond(response_to(&bye, 200), base).unwrap();
        assert!(tx.is_terminated());
        assert_eq!(drain(&mut tx), vec![200]);
        assert_eq!(tx.poll_event(), Some(ServerEvent::Terminated));
    }
}
