//! The OPTIONS prober (RFC 3261 §11): the signaling task sends an OPTIONS to each
//! trunk's outbound target on the schedule of its [`TrunkHealth`], as a client
//! non-INVITE transaction of its own transaction layer (retransmitted over UDP by Timers
//! E and F, like its BYEs), from its own SIP socket, and feeds the answers and timeouts
//! back. What the machine finds is published on its [`HealthBoard`] once per event
//! batch that changed it. The targets follow the router's plan (reloads included),
//! read again at least once an interval.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use dialbridge_sip::dialog::{LocalAddress, new_tag};
use dialbridge_sip::message::uri::{Host, SipUri, Uri};
use dialbridge_sip::rsip::headers::UntypedHeader;
use dialbridge_sip::rsip::{self, Header, Headers, Method};
use dialbridge_sip::transaction::{ClientKey, PeerAddr, TransactionKey, TransportKind, new_branch};

use super::Signaling;
use crate::trunk_health::{HealthBoard, HealthConfig, Probe, TrunkHealth};

/// How often the targets are read again from the plan when probing is off or no trunk
/// has one (with probes going, at least once an interval).
const SYNC_AT_LEAST_EVERY: Duration = Duration::from_secs(15);

/// The trunks' health and the OPTIONS in flight.
#[derive(Debug)]
pub(super) struct Prober {
    /// What the dial-outs ask (`is_up`, `available`) and tell (`report_invite_failure`).
    pub(super) health: TrunkHealth,
    /// Our OPTIONS transactions alive, by key.
    by_key: HashMap<ClientKey, Probe>,
    board: HealthBoard,
    /// The machine's generation last published.
    published: Option<u64>,
    next_sync: Instant,
    sync_every: Duration,
}

impl Prober {
    pub(super) fn new(config: HealthConfig, now: Instant) -> Prober {
        let sync_every = if config.interval.is_zero() {
            SYNC_AT_LEAST_EVERY
        } else {
            config.interval.min(SYNC_AT_LEAST_EVERY)
        };
        Prober {
            health: TrunkHealth::new(config),
            by_key: HashMap::new(),
            board: HealthBoard::default(),
            published: None,
            next_sync: now,
            sync_every,
        }
    }

    /// Where the health is published (for the admin API and the metrics).
    pub(super) fn board(&self) -> HealthBoard {
        self.board.clone()
    }

    /// Our OPTIONS transactions alive.
    pub(super) fn transactions(&self) -> usize {
        self.by_key.len()
    }

    /// When the prober has work next.
    pub(super) fn poll_timeout(&self) -> Option<Instant> {
        Some(
            self.health
                .poll_timeout()
                .map_or(self.next_sync, |at| at.min(self.next_sync)),
        )
    }
}

impl Signaling {
    /// The trunks' health, for the admin API and the metrics.
    pub fn trunk_health(&self) -> HealthBoard {
        self.probes.board()
    }

    /// Reads the targets again when due, fails overdue probes, and sends those due.
    pub(super) fn handle_probe_timeout(&mut self, now: Instant) {
        if self.probes.next_sync <= now {
            self.probes.next_sync = now + self.probes.sync_every;
            let targets: Vec<(dialbridge_router::TrunkId, Arc<str>, SocketAddr)> = self
                .services
                .router
                .trunks()
                .into_iter()
                .filter_map(|(id, t)| Some((id, t.name, t.outbound?)))
                .collect();
            self.probes.health.set_targets(&targets, now);
        }
        // Probes the machine gave up on: their transactions would only retransmit on
        // (up to Timer F) for an answer no one reads.
        for overdue in self.probes.health.handle_timeout(now) {
            let key = self
                .probes
                .by_key
                .iter()
                .find(|(_, p)| **p == overdue)
                .map(|(k, _)| k.clone());
            if let Some(key) = key {
                self.probes.by_key.remove(&key);
                self.layer.abandon(&key);
            }
        }
        // Draining: no new transactions for a bridge about to stop.
        while !self.draining
            && let Some(probe) = self.probes.health.poll_probe(now)
        {
            let peer = PeerAddr {
                transport: TransportKind::Udp,
                addr: probe.target,
                connection: None,
            };
            let request = options_request(&self.local_address(peer), probe.target);
            match self.layer.send_request(request, peer, now) {
                Ok(key) => {
                    self.probes.by_key.insert(key, probe);
                }
                // A fresh branch cannot clash; a failure is a timeout to the machine.
                Err(e) => {
                    tracing::debug!(target = %probe.target, error = %e, "OPTIONS not sent");
                    self.probes.health.handle_options_timeout(&probe, now);
                }
            }
        }
    }

    /// A response to one of our OPTIONS; `false` when `key` is not one.
    pub(super) fn handle_probe_response(
        &mut self,
        key: &TransactionKey,
        response: &rsip::Response,
        now: Instant,
    ) -> bool {
        let Some(probe) = client(key).and_then(|k| self.probes.by_key.get(k)) else {
            return false;
        };
        let status = response.status_code.code();
        self.probes.health.handle_options_answer(probe, status, now);
        true
    }

    /// Timer F fired for one of our OPTIONS; `false` when `key` is not one.
    pub(super) fn handle_probe_timed_out(&mut self, key: &TransactionKey, now: Instant) -> bool {
        let Some(probe) = client(key).and_then(|k| self.probes.by_key.remove(k)) else {
            return false;
        };
        self.probes.health.handle_options_timeout(&probe, now);
        true
    }

    /// The transaction `key` is gone: if it was an OPTIONS, forget it.
    pub(super) fn forget_probe(&mut self, key: &TransactionKey) {
        if let Some(key) = client(key) {
            self.probes.by_key.remove(key);
        }
    }

    /// Publishes the health if it changed since last time.
    pub(super) fn publish_health(&mut self, now: Instant) {
        let generation = self.probes.health.generation();
        if self.probes.published != Some(generation) {
            self.probes.published = Some(generation);
            let report = self.probes.health.report(now, SystemTime::now());
            self.probes.board.publish(report);
        }
    }
}

fn client(key: &TransactionKey) -> Option<&ClientKey> {
    match key {
        TransactionKey::Client(k) => Some(k),
        TransactionKey::Server(_) => None,
    }
}

/// An OPTIONS out of any dialog to `target` (RFC 3261 §11.1): a fresh branch, Call-ID
/// and From tag, our Contact, `Accept: application/sdp`, no body.
fn options_request(local: &LocalAddress, target: SocketAddr) -> rsip::Request {
    let target_uri = Uri::Sip(SipUri::new(
        None,
        Host::Ip(target.ip()),
        Some(target.port()),
    ));
    let mut headers = Headers::default();
    headers.push(Header::Via(rsip::headers::Via::new(format!(
        "SIP/2.0/{} {};branch={};rport",
        local.transport,
        local.sent_by,
        new_branch().value()
    ))));
    headers.push(Header::MaxForwards(rsip::headers::MaxForwards::from(70u32)));
    headers.push(Header::From(rsip::headers::From::new(format!(
        "<sip:dialbridge@{}>;tag={}",
        local.sent_by,
        new_tag().value()
    ))));
    headers.push(Header::To(rsip::headers::To::new(format!(
        "<{target_uri}>"
    ))));
    headers.push(Header::CallId(rsip::headers::CallId::new(format!(
        "{:016x}@dialbridge",
        rand::random::<u64>()
    ))));
    headers.push(Header::CSeq(rsip::headers::CSeq::new("1 OPTIONS")));
    headers.push(local.contact_header());
    headers.push(Header::Accept(rsip::headers::Accept::new(
        "application/sdp",
    )));
    headers.push(Header::ContentLength(rsip::headers::ContentLength::from(
        0u32,
    )));
    rsip::Request {
        method: Method::Options,
        uri: target_uri.to_rsip(),
        version: rsip::Version::V2,
        headers,
        body: Vec::new(),
    }
}

#[cfg(test)]
mod tests;
