//! The transaction layer (the "endpoint"): owns every transaction, matches messages to them
//! (RFC 3261 §17.1.3, §17.2.3), answers CANCEL (§9.2) and routes the ACK for a 2xx
//! (§13.3.1.4) — with no I/O. The transport task feeds it with `handle_*` and drains
//! `poll_transmit`, `poll_event` and `poll_timeout`.

use super::event::{Event, LayerStats, Refusal, Transmit};
use super::key::{ClientKey, ServerKey, TransactionKey};
use super::{
    ClientEvent, InviteClient, InviteServer, InviteServerState, NonInviteClient, NonInviteServer,
    Peer, ServerEvent, Timers,
};
use crate::Error;
use crate::message::fields::{self, response_for};
use rsip::prelude::*;
use rsip::{Method, Request, Response, SipMessage};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::time::Instant;

/// Limits and timer values of a [`TransactionLayer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerConfig {
    /// T1, T2, T4.
    pub timers: Timers,
    /// Most server transactions alive at once; past it new requests are refused
    /// ([`Refusal::Overloaded`]: the TU answers 503 statelessly). Our own client
    /// transactions (BYE, re-INVITE) are not limited: they end calls, not start them.
    pub max_transactions: usize,
}

impl Default for LayerConfig {
    fn default() -> Self {
        Self {
            timers: Timers::default(),
            max_transactions: 65_536,
        }
    }
}

/// Owns all transactions; see the module doc.
#[derive(Debug)]
pub struct TransactionLayer<P> {
    config: LayerConfig,
    slots: Vec<Option<Slot<P>>>,
    free: Vec<usize>,
    servers_by_key: HashMap<ServerKey, usize>,
    clients_by_key: HashMap<ClientKey, usize>,
    /// INVITE server transactions that sent a 2xx, by Call-ID and CSeq number: how the
    /// ACK for a 2xx (which has its own branch) finds them.
    awaiting_ack: HashMap<(String, u32), usize>,
    /// Deadlines by slot; an entry is live only if it equals the slot's `armed` deadline
    /// and generation (stale entries are skipped, not searched for).
    deadlines: BinaryHeap<Reverse<(Instant, usize, u64)>>,
    transmits: VecDeque<Transmit<P>>,
    events: VecDeque<Event<P>>,
    stats: LayerStats,
    generation: u64,
}

#[derive(Debug)]
struct Slot<P> {
    key: TransactionKey,
    peer: P,
    machine: Machine,
    generation: u64,
    armed: Option<Instant>,
    ack_key: Option<(String, u32)>,
}

#[derive(Debug)]
// Boxed: the slab holds every live transaction, and the machines differ a lot in size.
enum Machine {
    InviteServer(Box<InviteServer>),
    NonInviteServer(Box<NonInviteServer>),
    InviteClient(Box<InviteClient>),
    NonInviteClient(Box<NonInviteClient>),
}

impl<P: Peer> TransactionLayer<P> {
    /// An empty layer.
    pub fn new(config: LayerConfig) -> Self {
        Self {
            config,
            slots: Vec::new(),
            free: Vec::new(),
            servers_by_key: HashMap::new(),
            clients_by_key: HashMap::new(),
            awaiting_ack: HashMap::new(),
            deadlines: BinaryHeap::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stats: LayerStats::default(),
            generation: 0,
        }
    }

    /// A request from the network.
    pub fn handle_request(&mut self, request: Request, peer: P, now: Instant) {
        let key = match ServerKey::from_request(&request) {
            Ok(key) => key,
            Err(error) => {
                self.stats.malformed += 1;
                // An ACK never gets a response (§17.2.1): drop it.
                if request.method != Method::Ack {
                    self.events.push_back(Event::Refused {
                        request,
                        peer,
                        reason: Refusal::Malformed(error),
                    });
                }
                return;
            }
        };
        if request.method == Method::Ack {
            self.handle_ack(key, request, peer, now);
            return;
        }
        if let Some(&idx) = self.servers_by_key.get(&key) {
            self.stats.retransmissions_absorbed += 1;
            if let Some(slot) = self.slot_mut(idx) {
                match &mut slot.machine {
                    Machine::InviteServer(m) => m.handle_request(now),
                    Machine::NonInviteServer(m) => m.handle_request(now),
                    Machine::InviteClient(_) | Machine::NonInviteClient(_) => {}
                }
            }
            self.after(idx, None);
            return;
        }
        if self.servers_by_key.len() >= self.config.max_transactions {
            self.stats.overloaded += 1;
            self.events.push_back(Event::Refused {
                request,
                peer,
                reason: Refusal::Overloaded,
            });
            return;
        }
        let reliable = peer.is_reliable();
        let timers = self.config.timers;
        match request.method {
            Method::Invite => {
                let machine =
                    Machine::InviteServer(Box::new(InviteServer::new(&request, reliable, timers)));
                let idx = self.insert(TransactionKey::Server(key.clone()), peer.clone(), machine);
                self.events
                    .push_back(Event::NewRequest { key, request, peer });
                self.after(idx, None);
            }
            Method::Cancel => {
                let machine =
                    Machine::NonInviteServer(Box::new(NonInviteServer::new(reliable, timers)));
                let idx = self.insert(TransactionKey::Server(key.clone()), peer.clone(), machine);
                self.handle_cancel(idx, key, request, peer, now);
            }
            _ => {
                let machine =
                    Machine::NonInviteServer(Box::new(NonInviteServer::new(reliable, timers)));
                let idx = self.insert(TransactionKey::Server(key.clone()), peer.clone(), machine);
                self.events
                    .push_back(Event::NewRequest { key, request, peer });
                self.after(idx, None);
            }
        }
    }

    /// A response from the network.
    pub fn handle_response(&mut self, response: Response, now: Instant) {
        let key = match ClientKey::from_response(&response) {
            Ok(key) => key,
            Err(_) => {
                self.stats.malformed += 1;
                return;
            }
        };
        let Some(&idx) = self.clients_by_key.get(&key) else {
            self.stats.stray_responses += 1;
            return;
        };
        if let Some(slot) = self.slot_mut(idx) {
            match &mut slot.machine {
                Machine::InviteClient(m) => m.handle_response(response, now),
                Machine::NonInviteClient(m) => m.handle_response(response, now),
                Machine::InviteServer(_) | Machine::NonInviteServer(_) => {}
            }
        }
        self.after(idx, None);
    }

    /// The TU answers a request it got as [`Event::NewRequest`] (or the INVITE of an
    /// [`Event::Cancel`], with 487).
    pub fn respond(
        &mut self,
        key: &ServerKey,
        response: Response,
        now: Instant,
    ) -> Result<(), Error> {
        let idx = *self
            .servers_by_key
            .get(key)
            .ok_or(Error::NoSuchTransaction)?;
        let slot = self.slot_mut(idx).ok_or(Error::NoSuchTransaction)?;
        let is_2xx = (200..300).contains(&response.status_code.code());
        let ack_key = if is_2xx { ack_key(&response) } else { None };
        match &mut slot.machine {
            Machine::InviteServer(m) => {
                m.respond(response, now)?;
                if let Some(ack_key) = ack_key.filter(|_| slot.ack_key.is_none()) {
                    slot.ack_key = Some(ack_key.clone());
                    self.awaiting_ack.insert(ack_key, idx);
                }
            }
            Machine::NonInviteServer(m) => m.respond(response, now)?,
            Machine::InviteClient(_) | Machine::NonInviteClient(_) => {
                return Err(Error::NoSuchTransaction);
            }
        }
        self.after(idx, None);
        Ok(())
    }

    /// Start a client transaction for `request` (its top Via must carry a fresh branch,
    /// see [`super::new_branch`]). ACKs are not transactions: use [`Self::send_stateless`].
    pub fn send_request(
        &mut self,
        request: Request,
        peer: P,
        now: Instant,
    ) -> Result<ClientKey, Error> {
        if request.method == Method::Ack {
            return Err(Error::InvalidInState {
                what: "ACK as a transaction",
                state: "none",
            });
        }
        let key = ClientKey::from_request(&request)?;
        if self.clients_by_key.contains_key(&key) {
            return Err(Error::BadHeader("Via branch (already in use)"));
        }
        let reliable = peer.is_reliable();
        let timers = self.config.timers;
        let machine = if request.method == Method::Invite {
            Machine::InviteClient(Box::new(InviteClient::new(request, reliable, timers, now)))
        } else {
            Machine::NonInviteClient(Box::new(NonInviteClient::new(
                request, reliable, timers, now,
            )))
        };
        let idx = self.insert(TransactionKey::Client(key.clone()), peer, machine);
        self.after(idx, None);
        Ok(key)
    }

    /// Forgets our client transaction `key` at once: no more retransmissions, no event
    /// (not even `Terminated`), and a late response to it counts as stray. For a request
    /// whose answer no longer matters to the TU, such as a health probe it already
    /// counted as failed. `false` when `key` is not alive.
    pub fn abandon(&mut self, key: &ClientKey) -> bool {
        let Some(&idx) = self.clients_by_key.get(key) else {
            return false;
        };
        // Its deadlines in the heap go stale: the slot is gone (or reused with another
        // generation).
        self.remove(idx);
        true
    }

    /// Send a message outside any transaction: the ACK for a 2xx, or a stateless 400/503.
    pub fn send_stateless(&mut self, message: impl Into<SipMessage>, peer: P) {
        self.transmits.push_back(Transmit {
            peer,
            message: message.into(),
        });
    }

    /// Fire every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(Reverse((at, idx, generation))) = self.deadlines.peek().copied() {
            if at > now {
                break;
            }
            self.deadlines.pop();
            let live = self
                .slot_mut(idx)
                .is_some_and(|s| s.generation == generation && s.armed == Some(at));
            if !live {
                continue;
            }
            if let Some(slot) = self.slot_mut(idx) {
                slot.armed = None;
                match &mut slot.machine {
                    Machine::InviteServer(m) => m.handle_timeout(now),
                    Machine::NonInviteServer(m) => m.handle_timeout(now),
                    Machine::InviteClient(m) => m.handle_timeout(now),
                    Machine::NonInviteClient(m) => m.handle_timeout(now),
                }
            }
            self.after(idx, None);
        }
    }

    /// When [`Self::handle_timeout`] should next be called.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        while let Some(Reverse((at, idx, generation))) = self.deadlines.peek().copied() {
            let live = self
                .slots
                .get(idx)
                .and_then(Option::as_ref)
                .is_some_and(|s| s.generation == generation && s.armed == Some(at));
            if live {
                return Some(at);
            }
            self.deadlines.pop();
        }
        None
    }

    /// The next message to put on the wire.
    pub fn poll_transmit(&mut self) -> Option<Transmit<P>> {
        self.transmits.pop_front()
    }

    /// The next event for the TU.
    pub fn poll_event(&mut self) -> Option<Event<P>> {
        self.events.pop_front()
    }

    /// Counters of dropped and absorbed messages.
    pub fn stats(&self) -> LayerStats {
        self.stats
    }

    /// Transactions alive (server and client).
    pub fn len(&self) -> usize {
        self.servers_by_key.len() + self.clients_by_key.len()
    }

    /// True when no transaction is alive.
    pub fn is_empty(&self) -> bool {
        self.servers_by_key.is_empty() && self.clients_by_key.is_empty()
    }

    fn handle_ack(&mut self, key: ServerKey, ack: Request, peer: P, now: Instant) {
        let by_branch = self.servers_by_key.get(&key).copied();
        let idx = by_branch.or_else(|| {
            let call_id = fields::call_id(&ack.headers)?.to_owned();
            let seq = fields::cseq(&ack.headers).ok()?.seq;
            self.awaiting_ack.get(&(call_id, seq)).copied()
        });
        let Some(idx) = idx else {
            self.stats.stray_acks += 1;
            return;
        };
        if let Some(Machine::InviteServer(m)) = self.slot_mut(idx).map(|s| &mut s.machine) {
            m.handle_ack(ack, now);
        }
        self.after(idx, Some(peer));
    }

    fn handle_cancel(
        &mut self,
        idx: usize,
        key: ServerKey,
        cancel: Request,
        peer: P,
        now: Instant,
    ) {
        let invite_key = key.with_method(Method::Invite);
        let invite = self
            .servers_by_key
            .get(&invite_key)
            .and_then(|&i| self.slots.get(i).and_then(Option::as_ref))
            .and_then(|slot| match &slot.machine {
                Machine::InviteServer(m) => Some(m),
                _ => None,
            });
        let (status, proceeding, to) = match invite {
            // §9.2: the CANCEL matched, so it gets 200 whatever state the INVITE is in.
            Some(m) => (
                200,
                m.state() == InviteServerState::Proceeding,
                m.last_response().and_then(|r| r.to_header().ok()).cloned(),
            ),
            None => (481, false, None),
        };
        let mut response = response_for(&cancel, status, None, None);
        // §9.2: the To tag of the CANCEL's response should be the INVITE response's;
        // a 100 Trying carries none, and then the one response_for made stays.
        let tagged = to.filter(|to| fields::header_param(to.value(), "tag").is_some());
        if let (Some(to), Ok(slot)) = (tagged, response.to_header_mut()) {
            *slot = to;
        }
        if let Some(Machine::NonInviteServer(m)) = self.slot_mut(idx).map(|s| &mut s.machine) {
            // The CANCEL transaction is fresh in Trying: a final response is always allowed.
            let _ = m.respond(response, now);
        }
        self.after(idx, None);
        if proceeding {
            self.events.push_back(Event::Cancel {
                invite_key,
                cancel,
                peer,
            });
        }
    }

    fn insert(&mut self, key: TransactionKey, peer: P, machine: Machine) -> usize {
        self.generation = self.generation.wrapping_add(1);
        let slot = Slot {
            key: key.clone(),
            peer,
            machine,
            generation: self.generation,
            armed: None,
            ack_key: None,
        };
        let idx = match self.free.pop() {
            Some(idx) => {
                if let Some(entry) = self.slots.get_mut(idx) {
                    *entry = Some(slot);
                }
                idx
            }
            None => {
                self.slots.push(Some(slot));
                self.slots.len() - 1
            }
        };
        match &key {
            TransactionKey::Server(k) => self.servers_by_key.insert(k.clone(), idx),
            TransactionKey::Client(k) => self.clients_by_key.insert(k.clone(), idx),
        };
        idx
    }

    fn slot_mut(&mut self, idx: usize) -> Option<&mut Slot<P>> {
        self.slots.get_mut(idx).and_then(Option::as_mut)
    }

    /// Move what the machine at `idx` produced into the layer's queues, re-arm its timer,
    /// and drop it if it terminated. `ack_peer` is where an ACK handed up came from.
    fn after(&mut self, idx: usize, ack_peer: Option<P>) {
        let Some(slot) = self.slots.get_mut(idx).and_then(Option::as_mut) else {
            return;
        };
        let (terminated, deadline) = match &mut slot.machine {
            Machine::InviteServer(m) => {
                while let Some(resp) = m.poll_transmit() {
                    self.transmits.push_back(Transmit {
                        peer: slot.peer.clone(),
                        message: resp.into(),
                    });
                }
                let TransactionKey::Server(key) = &slot.key else {
                    return;
                };
                while let Some(ev) = m.poll_event() {
                    self.events.push_back(match ev {
                        ServerEvent::Ack(request) => Event::AckFor2xx {
                            invite_key: key.clone(),
                            request: *request,
                            peer: ack_peer.clone().unwrap_or_else(|| slot.peer.clone()),
                        },
                        ServerEvent::TimedOut => Event::TimedOut {
                            key: slot.key.clone(),
                        },
                        ServerEvent::NoAckFor2xx => Event::NoAckFor2xx {
                            invite_key: key.clone(),
                        },
                        ServerEvent::Terminated => Event::Terminated {
                            key: slot.key.clone(),
                        },
                    });
                }
                (m.is_terminated(), m.poll_timeout())
            }
            Machine::NonInviteServer(m) => {
                while let Some(resp) = m.poll_transmit() {
                    self.transmits.push_back(Transmit {
                        peer: slot.peer.clone(),
                        message: resp.into(),
                    });
                }
                while let Some(ev) = m.poll_event() {
                    if let Some(ev) = server_event(ev, &slot.key) {
                        self.events.push_back(ev);
                    }
                }
                (m.is_terminated(), m.poll_timeout())
            }
            Machine::InviteClient(m) => {
                while let Some(req) = m.poll_transmit() {
                    self.transmits.push_back(Transmit {
                        peer: slot.peer.clone(),
                        message: req.into(),
                    });
                }
                while let Some(ev) = m.poll_event() {
                    if let Some(ev) = client_event(ev, &slot.key) {
                        self.events.push_back(ev);
                    }
                }
                (m.is_terminated(), m.poll_timeout())
            }
            Machine::NonInviteClient(m) => {
                while let Some(req) = m.poll_transmit() {
                    self.transmits.push_back(Transmit {
                        peer: slot.peer.clone(),
                        message: req.into(),
                    });
                }
                while let Some(ev) = m.poll_event() {
                    if let Some(ev) = client_event(ev, &slot.key) {
                        self.events.push_back(ev);
                    }
                }
                (m.is_terminated(), m.poll_timeout())
            }
        };
        if terminated {
            self.remove(idx);
            return;
        }
        if deadline != slot.armed {
            slot.armed = deadline;
            if let Some(at) = deadline {
                self.deadlines.push(Reverse((at, idx, slot.generation)));
            }
        }
        self.compact_deadlines();
    }

    fn remove(&mut self, idx: usize) {
        let Some(slot) = self.slots.get_mut(idx).and_then(Option::take) else {
            return;
        };
        match &slot.key {
            TransactionKey::Server(k) => self.servers_by_key.remove(k),
            TransactionKey::Client(k) => self.clients_by_key.remove(k),
        };
        if let Some(ack_key) = slot.ack_key {
            self.awaiting_ack.remove(&ack_key);
        }
        self.free.push(idx);
    }

    /// Stale heap entries are normally popped as time passes; if re-arming outpaces that
    /// (a flood of retransmissions), rebuild the heap from the live deadlines.
    fn compact_deadlines(&mut self) {
        if self.deadlines.len() <= 4 * self.len() + 64 {
            return;
        }
        let live = self.slots.iter().enumerate().filter_map(|(idx, slot)| {
            let slot = slot.as_ref()?;
            Some(Reverse((slot.armed?, idx, slot.generation)))
        });
        self.deadlines = live.collect();
    }
}

fn server_event<P>(ev: ServerEvent, key: &TransactionKey) -> Option<Event<P>> {
    match ev {
        ServerEvent::TimedOut => Some(Event::TimedOut { key: key.clone() }),
        ServerEvent::Terminated => Some(Event::Terminated { key: key.clone() }),
        // Only INVITE server transactions produce these.
        ServerEvent::Ack(_) | ServerEvent::NoAckFor2xx => None,
    }
}

fn client_event<P>(ev: ClientEvent, key: &TransactionKey) -> Option<Event<P>> {
    match (ev, key) {
        (ClientEvent::Response(response), TransactionKey::Client(key)) => Some(Event::Response {
            key: key.clone(),
            response,
        }),
        (ClientEvent::Response(_), TransactionKey::Server(_)) => None,
        (ClientEvent::TimedOut, key) => Some(Event::TimedOut { key: key.clone() }),
        (ClientEvent::Terminated, key) => Some(Event::Terminated { key: key.clone() }),
    }
}

/// Call-ID and CSeq number of a 2xx: what its ACK will carry.
fn ack_key(response: &Response) -> Option<(String, u32)> {
    let call_id = fields::call_id(&response.headers)?.to_owned();
    let seq = fields::cseq(&response.headers).ok()?.seq;
    Some((call_id, seq))
}
