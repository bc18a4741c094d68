//! The non-INVITE client transaction (RFC 3261 §17.1.2), for the bridge's own BYE, OPTIONS,
//! UPDATE.

use super::ClientEvent;
use super::timer::{Backoff, Timers, due, earliest};
use rsip::{Request, Response};
use std::collections::VecDeque;
use std::time::Instant;

/// States of the non-INVITE client transaction.
///
/// RFC 3261 Figure 6:
///
/// ```text
///                                    |Request from TU
///                                    |send request
///                Timer E             V
///                send request  +-----------+
///                    +---------|           |-------------------+
///                    |         |  Trying   |  Timer F          |
///                    +-------->|           |  or Transport Err.|
///                              +-----------+  inform TU        |
///                 200-699         |  |                         |
///                 resp. to TU     |  |1xx                      |
///                 +---------------+  |resp. to TU              |
///                 |                  |                         |
///                 |   Timer E        V       Timer F           |
///                 |   send req +-----------+ or Transport Err. |
///                 |  +---------|           | inform TU         |
///                 |  |         | Proceeding|------------------>|
///                 |  +-------->|           |-----+             |
///                 |            +-----------+     |1xx          |
///                 |              |      ^        |resp to TU   |
///                 | 200-699      |      +--------+             |
///                 | resp. to TU  |                             |
///                 |              V                             |
///                 |            +-----------+                   |
///                 |            |           |                   |
///                 |            | Completed |                   |
///                 |            |           |                   |
///                 |            +-----------+                   |
///                 |              ^   |                         |
///                 |              |   | Timer K                 |
///                 +--------------+   | -                       |
///                                    |                         |
///                                    V                         |
///                              +-----------+                   |
///                              |           |                   |
///                              | Terminated|<------------------+
///                              |           |
///                              +-----------+
/// ```
///
/// Timer E (unreliable only) starts at T1 and doubles to T2 in `Trying`, then fires every
/// T2 in `Proceeding`; Timer F (64*T1) gives up; Timer K (T4, zero on reliable transports)
/// absorbs retransmitted final responses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonInviteClientState {
    /// Request sent, no response yet.
    Trying,
    /// A provisional response came.
    Proceeding,
    /// A final response came.
    Completed,
    /// Done.
    Terminated,
}

/// One non-INVITE client transaction. See [`NonInviteClientState`].
#[derive(Debug)]
pub struct NonInviteClient {
    state: NonInviteClientState,
    reliable: bool,
    timers: Timers,
    request: Request,
    timer_e: Option<Backoff>,
    timer_f: Option<Instant>,
    timer_k: Option<Instant>,
    transmits: VecDeque<Request>,
    events: VecDeque<ClientEvent>,
}

impl NonInviteClient {
    /// Start the transaction: the request is queued, Timers E and F start.
    pub fn new(request: Request, reliable: bool, timers: Timers, now: Instant) -> Self {
        let mut transmits = VecDeque::with_capacity(1);
        transmits.push_back(request.clone());
        Self {
            state: NonInviteClientState::Trying,
            reliable,
            timers,
            request,
            timer_e: (!reliable).then(|| Backoff::start(now, timers.t1, Some(timers.t2))),
            timer_f: Some(now + timers.t1_x64()),
            timer_k: None,
            transmits,
            events: VecDeque::new(),
        }
    }

    /// The current state.
    pub fn state(&self) -> NonInviteClientState {
        self.state
    }

    /// A response matched to this transaction arrived.
    pub fn handle_response(&mut self, response: Response, now: Instant) {
        let code = response.status_code.code();
        match (self.state, code) {
            (NonInviteClientState::Trying | NonInviteClientState::Proceeding, 100..=199) => {
                self.state = NonInviteClientState::Proceeding;
                self.events.push_back(ClientEvent::Response(response));
            }
            (NonInviteClientState::Trying | NonInviteClientState::Proceeding, 200..=699) => {
                self.state = NonInviteClientState::Completed;
                self.timer_e = None;
                self.timer_f = None;
                self.timer_k = Some(now + self.timers.t4_or_zero(self.reliable));
                self.events.push_back(ClientEvent::Response(response));
                self.handle_timeout(now);
            }
            // Retransmitted finals in Completed, and anything after, are absorbed.
            _ => {}
        }
    }

    /// Fire every timer that is due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.state {
            NonInviteClientState::Trying | NonInviteClientState::Proceeding => {
                if due(self.timer_f, now) {
                    self.events.push_back(ClientEvent::TimedOut);
                    self.terminate();
                    return;
                }
                let proceeding = self.state == NonInviteClientState::Proceeding;
                let t2 = self.timers.t2;
                if let Some(e) = self.timer_e.as_mut().filter(|e| e.at <= now) {
                    if proceeding {
                        e.reset_to(now, t2);
                    } else {
                        e.fire(now);
                    }
                    self.transmits.push_back(self.request.clone());
                }
            }
            NonInviteClientState::Completed => {
                if due(self.timer_k, now) {
                    self.terminate();
                }
            }
            NonInviteClientState::Terminated => {}
        }
    }

    /// When [`Self::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            NonInviteClientState::Trying | NonInviteClientState::Proceeding => {
                earliest(&[self.timer_e.map(|e| e.at), self.timer_f])
            }
            NonInviteClientState::Completed => self.timer_k,
            NonInviteClientState::Terminated => None,
        }
    }

    /// The next request to put on the wire.
    pub fn poll_transmit(&mut self) -> Option<Request> {
        self.transmits.pop_front()
    }

    /// The next event for the TU.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// True once in `Terminated`.
    pub fn is_terminated(&self) -> bool {
        self.state == NonInviteClientState::Terminated
    }

    fn terminate(&mut self) {
        self.state = NonInviteClientState::Terminated;
        self.timer_e = None;
        self.timer_f = None;
        self.timer_k = None;
        self.events.push_back(ClientEvent::Terminated);
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{request, response_to};
    use super::*;
    use std::time::Duration;

    fn count_sent(tx: &mut NonInviteClient) -> usize {
        std::iter::from_fn(|| tx.poll_transmit()).count()
    }

    fn events(tx: &mut NonInviteClient) -> Vec<ClientEvent> {
        std::iter::from_fn(|| tx.poll_event()).collect()
    }

    fn run_to_end(tx: &mut NonInviteClient, base: Instant) -> Vec<u128> {
        let mut fired = Vec::new();
        while !tx.is_terminated() {
            let at = tx.poll_timeout().unwrap();
            tx.handle_timeout(at);
            fired.push((at - base).as_millis());
        }
        fired
    }

    #[test]
    fn timer_e_doubles_to_t2_until_timer_f_over_udp() {
        let base = Instant::now();
        let mut tx = NonInviteClient::new(request("BYE"), false, Timers::default(), base);
        assert_eq!(count_sent(&mut tx), 1);
        let fired = run_to_end(&mut tx, base);
        assert_eq!(&fired[..5], &[500, 1500, 3500, 7500, 11500]);
        assert_eq!(*fired.last().unwrap(), 32_000);
        // E fired at 0.5, 1.5, 3.5, 7.5, 11.5 ... 31.5: 10 retransmissions.
        assert_eq!(count_sent(&mut tx), 10);
        assert_eq!(
            events(&mut tx),
            vec![ClientEvent::TimedOut, ClientEvent::Terminated]
        );
    }

    #[test]
    fn timer_e_fires_every_t2_in_proceeding() {
        let base = Instant::now();
        let req = request("BYE");
        let mut tx = NonInviteClient::new(req.clone(), false, Timers::default(), base);
        count_sent(&mut tx);
        tx.handle_response(response_to(&req, 100), base + Duration::from_millis(100));
        assert_eq!(tx.state(), NonInviteClientState::Proceeding);
        let fired = run_to_end(&mut tx, base);
        assert_eq!(&fired[..3], &[500, 4500, 8500]);
        assert_eq!(*fired.last().unwrap(), 32_000);
    }

    #[test]
    fn final_response_then_timer_k_over_udp() {
        let base = Instant::now();
        let req = request("OPTIONS");
        let mut tx = NonInviteClient::new(req.clone(), false, Timers::default(), base);
        count_sent(&mut tx);
        let ok_at = base + Duration::from_millis(200);
        tx.handle_response(response_to(&req, 200), ok_at);
        tx.handle_response(response_to(&req, 200), ok_at);
        assert_eq!(tx.poll_timeout(), Some(ok_at + Duration::from_secs(5)));
        let fired = run_to_end(&mut tx, base);
        assert_eq!(fired, vec![5200]);
        assert_eq!(count_sent(&mut tx), 0);
        let evs = events(&mut tx);
        assert_eq!(evs.len(), 2, "one response up, then Terminated: {evs:?}");
        assert_eq!(evs[1], ClientEvent::Terminated);
    }

    #[test]
    fn reliable_no_timer_e_and_zero_timer_k() {
        let base = Instant::now();
        let req = request("BYE");
        let mut tx = NonInviteClient::new(req.clone(), true, Timers::default(), base);
        assert_eq!(tx.poll_timeout(), Some(base + Duration::from_secs(32)));
        tx.handle_response(response_to(&req, 200), base);
        assert!(tx.is_terminated());
        assert_eq!(count_sent(&mut tx), 1);
    }

    #[test]
    fn reliable_timer_f_times_out() {
        let base = Instant::now();
        let mut tx = NonInviteClient::new(request("BYE"), true, Timers::default(), base);
        assert_eq!(run_to_end(&mut tx, base), vec![32_000]);
        assert_eq!(count_sent(&mut tx), 1);
        assert_eq!(
            events(&mut tx),
            vec![ClientEvent::TimedOut, ClientEvent::Terminated]
        );
    }
}
