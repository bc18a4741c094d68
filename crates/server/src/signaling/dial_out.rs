//! Dial-outs in the signaling task: a meeting's request routed (the tenant's route,
//! licence-checked by the router, trunks that are down skipped), its capacity reserved,
//! its port bound, then placed on the call core's calling side ([`UacSession`]) through
//! the transaction layer. Each attempt's answer is read by [`Outcome::of`]: a trunk
//! failure (503, 408, no answer at all) tries the next trunk, a far end that says no
//! ends it, an answer makes it a call like any other (its own [`Call`] under its
//! dialog id, entering by the invitation instead of the IVR).
//!
//! The leader who keyed `*9` hears each step (calling, ringing, answered, or why not);
//! the registry the admin API reads shows the same.

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use dialbridge_conference::guard::CallerKey;
use dialbridge_conference::ivr::ConferenceKey;
use dialbridge_ledger::{Committed, LegSpec, Meter, MeterEvent};
use dialbridge_media::MediaPort;
use dialbridge_router::{Charge, DialOutGrant, E164, TrunkId};
use dialbridge_sip::dialog::{Caller, DialogId, LocalAddress, SessionTimerConfig};
use dialbridge_sip::message::uri::{NameAddr, Uri};
use dialbridge_sip::rsip::{self, Header};
use dialbridge_sip::sdp::{Codec, LocalMedia};
use dialbridge_sip::session::{Output, SessionEnd, SessionEvent, UacSession};
use dialbridge_sip::transaction::{ClientKey, PeerAddr, TransportKind};
use tokio::sync::mpsc;

use super::Signaling;
use super::billing::Billing;
use super::call::{Call, CallRecord, Capacity};
use super::in_dialog::AfterRecord;
use super::leg::Leg;
use crate::call_flow::{self, CallCore, CallReport};
use crate::cdr::{Billed, Cdr, Direction, EndedBy, Timestamp};
use crate::conferences::{DialOutRequest, ToMember};
use crate::dial_out::{Attempts, DialOutId, DialOutRefusal, DialOutState, Outcome};
use crate::shared::{Claim, Lease, SharedRefusal};

/// A dial-out not answered yet.
pub(super) struct Dialing {
    conference: ConferenceKey,
    number: E164,
    bridge: String,
    /// The caller ID we present: one of the bridge's service numbers.
    presented: String,
    leader: Option<mpsc::Sender<ToMember>>,
    attempts: Attempts<TrunkId>,
    /// The attempt in flight.
    current: Option<Placing>,
    /// The far end rang (told once).
    rang: bool,
    created: SystemTime,
    /// Who pays for it (`None` without `[money]`): opened before the first INVITE,
    /// which waits for its first increment's commit.
    meter: Option<Meter>,
    /// When to stop waiting for that commit.
    funding_deadline: Option<Instant>,
    /// The attempt whose trunk is being claimed on every node (`[shared] redis`).
    claiming: Option<DialOutGrant>,
    /// The last attempt's Call-ID, trunk and provider, for the record of a dial-out
    /// never answered.
    last: Option<(String, String, Option<String>)>,
}

/// How long a dial-out waits for its first increment's commit (milliseconds, normally)
/// before it is given up.
const FUNDING_WAIT: Duration = Duration::from_secs(10);

/// One attempt on one trunk.
struct Placing {
    session: UacSession,
    invite: ClientKey,
    peer: PeerAddr,
    grant: DialOutGrant,
    /// The same reservation on every node, when capacity is shared.
    lease: Option<Lease>,
    port: Option<MediaPort>,
    /// Our ring timeout sent the CANCEL: its 487 means nobody answered.
    cancelled_for_no_answer: bool,
}

/// What a dial-out's INVITE transaction belongs to.
#[derive(Debug, Clone)]
pub(super) enum DialInvite {
    /// A dial-out still ringing.
    Pending(DialOutId),
    /// Answered: a 2xx retransmission is ACKed again through the call's session.
    Answered(DialogId),
}

impl Signaling {
    /// A meeting asks to call a number: refused at once (the API hears why, the leader
    /// hears a prompt), or placed on the first trunk of its route.
    pub(super) fn handle_dial_out_request(&mut self, request: DialOutRequest, now: Instant) {
        let DialOutRequest {
            conference,
            organiser,
            number,
            leader,
            reply,
        } = request;
        let by_leader = leader.is_some();
        let id = self.services.dial_outs.next_id();
        let routed = self
            .route_dial_out(&conference, organiser.as_deref(), &number)
            .and_then(|routed| {
                let meter = self.open_dial_out_meter(id, &conference, &routed.0)?;
                Ok((routed, meter))
            });
        let ((number, bridge, presented, trunks), meter) = match routed {
            Ok(routed) => routed,
            Err(refusal) => {
                tracing::info!(
                    tenant = conference.tenant.as_str(),
                    conference = conference.id.as_str(),
                    %refusal,
                    "dial-out refused"
                );
                self.services.dial_outs.count_refused();
                if let Some(leader) = &leader {
                    let _ = leader.try_send(ToMember::Play(refusal.prompt()));
                }
                if let Some(reply) = reply {
                    let _ = reply.send(Err(refusal));
                }
                return;
            }
        };
        self.services
            .dial_outs
            .create(id, &conference, &number.to_string(), by_leader);
        if let Some(reply) = reply {
            let _ = reply.send(Ok(id));
        }
        let ring_timeout = self.config.dial_out.ring_timeout;
        self.dialing.insert(
            id,
            Dialing {
                conference,
                number,
                bridge,
                presented,
                leader,
                attempts: Attempts::new(trunks, ring_timeout),
                current: None,
                claiming: None,
                rang: false,
                created: SystemTime::now(),
                funding_deadline: meter
                    .as_ref()
                    .filter(|m| !m.is_funded())
                    .map(|_| now + FUNDING_WAIT),
                meter,
                last: None,
            },
        );
        self.tell_leader(id, DialOutState::Calling);
        if self
            .dialing
            .get(&id)
            .is_some_and(|d| d.funding_deadline.is_none())
        {
            self.next_attempt(id, now);
        }
        // Otherwise the first INVITE waits for the first increment's commit.
    }

    /// The dial-out's meter, its first increment reserved (`None` without `[money]`), or
    /// the refusal: no credits and no pool minutes for the destination.
    fn open_dial_out_meter(
        &self,
        id: DialOutId,
        conference: &ConferenceKey,
        number: &E164,
    ) -> Result<Option<Meter>, DialOutRefusal> {
        let leg = LegSpec::DialOut {
            destination: number.to_string(),
        };
        self.open_meter_reporting(
            &format!("dial-out-{id}"),
            conference.tenant.as_str(),
            leg,
            move |committed| CallReport::DialOutBilling {
                dial_out: id,
                committed,
            },
        )
        .map_err(|refusal| DialOutRefusal::NotFunded(refusal.as_str().to_string()))
    }

    /// A commit of a dial-out's meter: before the answer the first one lets its INVITE
    /// go; after it, the call's own billing takes it.
    pub(super) fn handle_dial_out_commit(
        &mut self,
        id: DialOutId,
        committed: Committed,
        now: Instant,
    ) {
        if let Some(dialog) = self.dial_out_calls.get(&id).cloned() {
            self.handle_billing_commit(&dialog, committed, now);
            return;
        }
        let Some(meter) = self.dialing.get_mut(&id).and_then(|d| d.meter.as_mut()) else {
            return;
        };
        meter.handle_committed(committed);
        while let Some(event) = meter.poll_event() {
            match event {
                MeterEvent::Funded => {
                    if let Some(dialing) = self.dialing.get_mut(&id)
                        && dialing.funding_deadline.take().is_some()
                    {
                        self.next_attempt(id, now);
                    }
                    return;
                }
                MeterEvent::Refused(refusal) => {
                    // The shared ledger's database refused the first minute the book had
                    // allowed: the leader hears "not funded", as for a refusal at once
                    // (the API, already answered with the id, sees the dial-out fail).
                    self.services.money_refusals.count(refusal);
                    tracing::info!(
                        dial_out = id,
                        reason = refusal.as_str(),
                        "dial-out refused: nothing pays for it"
                    );
                    let refusal = DialOutRefusal::NotFunded(refusal.as_str().to_string());
                    if let Some(leader) = self.dialing.get_mut(&id).and_then(|d| d.leader.take()) {
                        let _ = leader.try_send(ToMember::Play(refusal.prompt()));
                    }
                    self.finish_dialing(id, DialOutState::Failed, None);
                    return;
                }
                MeterEvent::Failed(e) => {
                    tracing::error!(dial_out = id, error = %e, "the ledger could not record what pays for a dial-out");
                    self.finish_dialing(id, DialOutState::Failed, None);
                    return;
                }
                // Before the answer nothing is used, so nothing else can come.
                MeterEvent::CannotFund(_) | MeterEvent::MustEnd => {}
            }
        }
    }

    /// The number, the bridge, the caller ID and the trunks to try, or why not.
    fn route_dial_out(
        &self,
        conference: &ConferenceKey,
        organiser: Option<&str>,
        number: &str,
    ) -> Result<(E164, String, String, Vec<TrunkId>), DialOutRefusal> {
        if self.draining {
            return Err(DialOutRefusal::ShuttingDown);
        }
        let router = &self.services.router;
        let tenant = conference.tenant.as_str();
        let e164 = router
            .normalise(number)
            .map_err(|_| DialOutRefusal::NotANumber(number.to_string()))?;
        let route = router
            .dial_out_trunks(tenant, organiser)
            .map_err(|_| DialOutRefusal::NoRoute(tenant.to_string()))?;
        let trunks = self.probes.health.available(&route);
        if trunks.is_empty() {
            return Err(DialOutRefusal::NoTrunkUp(tenant.to_string()));
        }
        let bridge = router
            .bridges()
            .into_iter()
            .find(|b| &*b.tenant == tenant && b.enabled)
            .ok_or_else(|| DialOutRefusal::NoRoute(tenant.to_string()))?;
        let presented = presented_number(router, &bridge.name);
        Ok((e164, bridge.name.to_string(), presented, trunks))
    }

    /// Places the dial-out on its next trunk, or ends it as failed when none is left.
    /// A trunk at its capacity, or no port, counts as that trunk failing.
    fn next_attempt(&mut self, id: DialOutId, now: Instant) {
        loop {
            let Some(dialing) = self.dialing.get_mut(&id) else {
                return;
            };
            let Some(trunk) = dialing.attempts.next_trunk(now) else {
                self.finish_dialing(id, DialOutState::Failed, None);
                return;
            };
            let grant = match self
                .services
                .router
                .reserve_dial_out(&dialing.bridge, trunk)
            {
                Ok(grant) => grant,
                Err(rejection) => {
                    tracing::info!(dial_out = id, reason = ?rejection.reason, "trunk refused the dial-out: next trunk");
                    continue;
                }
            };
            match self.services.shared_capacity.clone() {
                // Other nodes share the bridge and the trunk: placed once Redis agrees.
                Some(shared) => {
                    let claim = Claim::dial_out(grant.bridge(), grant.trunk_name(), grant.limits());
                    dialing.claiming = Some(grant);
                    self.spawn_claim(shared, claim, move |outcome| CallReport::DialOutCapacity {
                        dial_out: id,
                        outcome,
                    });
                    return;
                }
                None => {
                    if self.place_attempt(id, grant, None, now) {
                        return;
                    }
                }
            }
        }
    }

    /// Redis's answer to a dial-out attempt's claim: placed, the next trunk (that one
    /// is full on every node), or failed (Redis away: never placed without the check).
    pub(super) fn dial_out_claim_decided(
        &mut self,
        id: DialOutId,
        outcome: Result<Lease, SharedRefusal>,
        now: Instant,
    ) {
        let Some(grant) = self.dialing.get_mut(&id).and_then(|d| d.claiming.take()) else {
            return; // ended meanwhile: a lease drops here, given back
        };
        match outcome {
            Ok(lease) => {
                if !self.place_attempt(id, grant, Some(lease), now) {
                    self.next_attempt(id, now);
                }
            }
            Err(SharedRefusal::Unavailable) => {
                tracing::error!(
                    dial_out = id,
                    "dial-out failed: the shared capacity did not answer"
                );
                self.finish_dialing(id, DialOutState::Failed, None);
            }
            Err(refusal) => {
                tracing::info!(dial_out = id, reason = ?refusal, "trunk full on every node: next trunk");
                self.next_attempt(id, now);
            }
        }
    }

    /// Sends the attempt's INVITE over `grant`'s trunk; `false` when it could not leave
    /// (the next trunk is tried), `true` when placed or ended.
    fn place_attempt(
        &mut self,
        id: DialOutId,
        grant: DialOutGrant,
        lease: Option<Lease>,
        now: Instant,
    ) -> bool {
        let target = grant.target();
        let port = match self.services.media.reserve(target) {
            Ok(port) => port,
            Err(e) => {
                tracing::warn!(dial_out = id, error = %e, "no media port for a dial-out");
                self.finish_dialing(id, DialOutState::Failed, None);
                return true;
            }
        };
        let peer = PeerAddr {
            addr: target,
            transport: TransportKind::Udp,
            connection: None,
        };
        let local = self.local_address(peer);
        let Some(dialing) = self.dialing.get_mut(&id) else {
            return true;
        };
        let Some(mut session) = uac_session(dialing, local, &port, target) else {
            self.finish_dialing(id, DialOutState::Failed, None);
            return true;
        };
        let invite = session.invite(invite_headers());
        let trunk_name = grant.trunk_name().to_string();
        tracing::info!(
            dial_out = id,
            call_id = session.call_id(),
            trunk = %trunk_name,
            %target,
            "dial-out placed"
        );
        let key = match self.layer.send_request(invite, peer, now) {
            Ok(key) => key,
            Err(e) => {
                tracing::warn!(dial_out = id, error = %e, "dial-out INVITE not sent");
                return false;
            }
        };
        self.dial_invites
            .insert(key.clone(), DialInvite::Pending(id));
        let provider = grant.provider().map(ToString::to_string);
        if let Some(dialing) = self.dialing.get_mut(&id) {
            dialing.last = Some((session.call_id().to_string(), trunk_name.clone(), provider));
            dialing.current = Some(Placing {
                session,
                invite: key,
                peer,
                grant,
                lease,
                port: Some(port),
                cancelled_for_no_answer: false,
            });
        }
        self.services.dial_outs.update(id, |v| {
            v.state = DialOutState::Calling;
            v.trunk = Some(trunk_name.clone());
            v.tried.push(trunk_name);
        });
        true
    }

    /// A response to a dial-out's INVITE.
    pub(super) fn handle_dial_out_response(
        &mut self,
        key: &ClientKey,
        response: &rsip::Response,
        now: Instant,
    ) {
        match self.dial_invites.get(key).cloned() {
            Some(DialInvite::Pending(id)) => {
                let Some(placing) = self.dialing.get_mut(&id).and_then(|d| d.current.as_mut())
                else {
                    return;
                };
                placing.session.handle_invite_response(response, now);
                self.drive_dialing(id, now);
            }
            Some(DialInvite::Answered(dialog)) => {
                // A retransmitted 2xx: ACK it again.
                if let Some(call) = self.calls.get_mut(&dialog)
                    && let Leg::Out(session) = &mut call.session
                {
                    session.handle_invite_response(response, now);
                }
                self.settle(&dialog, now);
            }
            None => {}
        }
    }

    /// A dial-out's INVITE got no final answer (Timer B): the trunk failed.
    pub(super) fn handle_dial_out_timeout(&mut self, key: &ClientKey, now: Instant) {
        if let Some(DialInvite::Pending(id)) = self.dial_invites.remove(key) {
            if let Some(placing) = self.dialing.get_mut(&id).and_then(|d| d.current.as_mut()) {
                placing.session.handle_invite_timeout();
            }
            self.drive_dialing(id, now);
        }
    }

    /// Whether a transaction key is one of our dial-outs' INVITEs.
    pub(super) fn is_dial_invite(&self, key: &ClientKey) -> bool {
        self.dial_invites.contains_key(key)
    }

    /// The INVITE transaction is over: forget it.
    pub(super) fn forget_dial_invite(&mut self, key: &ClientKey) {
        self.dial_invites.remove(key);
    }

    /// Carries out what the attempt's session wants sent and what happened to it.
    fn drive_dialing(&mut self, id: DialOutId, now: Instant) {
        loop {
            let Some(placing) = self.dialing.get_mut(&id).and_then(|d| d.current.as_mut()) else {
                return;
            };
            let Some(output) = placing.session.poll_output() else {
                return;
            };
            let peer = placing.peer;
            match output {
                Output::Ack(ack) => self.layer.send_stateless(ack, peer),
                // A BYE for a 2xx that crossed our CANCEL or did not fit our offer.
                Output::Request(request) => {
                    let _ = self.layer.send_request(request, peer, now);
                }
                Output::RespondInvite(_) => {}
                Output::Event(SessionEvent::Progress(code)) if (180..=183).contains(&code) => {
                    if let Some(dialing) = self.dialing.get_mut(&id)
                        && !std::mem::replace(&mut dialing.rang, true)
                    {
                        self.services
                            .dial_outs
                            .update(id, |v| v.state = DialOutState::Ringing);
                        self.tell_leader(id, DialOutState::Ringing);
                    }
                }
                Output::Event(SessionEvent::Answered) => {
                    self.dial_out_answered(id, now);
                    return;
                }
                Output::Event(SessionEvent::Ended(end)) => {
                    self.attempt_ended(id, end, now);
                    return;
                }
                Output::Event(SessionEvent::Challenged(response)) => {
                    // The trunk wants credentials we do not have for it: no.
                    let code = response.status_code.code();
                    self.attempt_ended(id, SessionEnd::Refused(code), now);
                    return;
                }
                Output::Event(_) => {}
            }
        }
    }

    /// The attempt ended unanswered: the next trunk, or the end of the dial-out.
    fn attempt_ended(&mut self, id: DialOutId, end: SessionEnd, now: Instant) {
        let Some(dialing) = self.dialing.get_mut(&id) else {
            return;
        };
        let Some(placing) = dialing.current.take() else {
            return;
        };
        dialing.attempts.stop_ringing();
        self.dial_invites.remove(&placing.invite);
        let status = match end {
            SessionEnd::Refused(code) => code,
            SessionEnd::BadAnswer => 488,
            SessionEnd::Cancelled => 487,
            _ => 500,
        };
        let trunk = placing.grant.trunk();
        // The grant and the port go back now.
        drop(placing.grant);
        if self.draining {
            // Cancelled by the shutdown: no other trunk is tried.
            self.finish_dialing(id, DialOutState::Failed, Some(status));
            return;
        }
        match Outcome::of(status, placing.cancelled_for_no_answer) {
            Outcome::TrunkFailed => {
                tracing::info!(dial_out = id, status, "dial-out trunk failed: next trunk");
                self.trunk_failed(trunk, now);
                self.services
                    .dial_outs
                    .update(id, |v| v.sip_status = Some(status));
                self.next_attempt(id, now);
            }
            Outcome::Final(state) => self.finish_dialing(id, state, Some(status)),
            // A 2xx comes as `Answered`, never as an end.
            Outcome::Answered => self.finish_dialing(id, DialOutState::Failed, Some(status)),
        }
    }

    /// The far end answered: the attempt becomes a call entering by the invitation.
    fn dial_out_answered(&mut self, id: DialOutId, now: Instant) {
        let Some(mut dialing) = self.dialing.remove(&id) else {
            return;
        };
        let Some(mut placing) = dialing.current.take() else {
            return;
        };
        let Some(dialog) = placing.session.dialog().map(|d| d.id().clone()) else {
            return;
        };
        let opened = placing
            .session
            .negotiated()
            .cloned()
            .ok_or(())
            .and_then(|negotiated| {
                let codec =
                    super::media_codec(&negotiated.codec, negotiated.payload_type).ok_or(())?;
                let port = placing.port.take().ok_or(())?;
                self.services
                    .media
                    .open_reserved(
                        port,
                        negotiated.remote_rtp,
                        codec,
                        negotiated.telephone_event,
                    )
                    .map_err(
                        |e| tracing::warn!(dial_out = id, error = %e, "dial-out media not opened"),
                    )
                    .inspect(|rtp| rtp.set_remote_rtcp(negotiated.remote_rtcp))
            });
        self.dial_invites
            .insert(placing.invite.clone(), DialInvite::Answered(dialog.clone()));
        let trunk_name = placing.grant.trunk_name().to_string();
        let Ok(rtp) = opened else {
            // Answered but unusable: the call ends at once, told as a failure.
            if let Some(bye) = placing
                .session
                .hang_up("SIP;cause=488;text=\"no usable media\"", now)
            {
                let _ = self.layer.send_request(bye, placing.peer, now);
            }
            self.dialing.insert(id, dialing);
            self.finish_dialing(id, DialOutState::Failed, Some(200));
            return;
        };
        tracing::info!(
            dial_out = id,
            call_id = %dialog.call_id,
            trunk = %trunk_name,
            number = %dialing.number,
            "dial-out answered"
        );
        let media =
            call_flow::media::spawn(dialog.clone(), rtp, &self.services, self.reports_tx.clone());
        // Its first paid increment starts now; the call's billing drives the rest.
        let billing = dialing.meter.take().map(|mut meter| {
            meter.answered(now);
            Billing::new(meter)
        });
        if billing.is_some() {
            self.dial_out_calls.insert(id, dialog.clone());
        }
        let call = Call {
            session: Leg::Out(Box::new(placing.session)),
            peer: placing.peer,
            latching: None,
            core: CallCore::invited(dialing.conference.clone()),
            grant: Capacity::Out {
                grant: placing.grant,
                number: dialing.number,
                _lease: placing.lease,
            },
            media,
            caller: CallerKey(format!("{trunk_name}/dial-out")),
            membership: None,
            play_seq: 0,
            arrived: now,
            armed: None,
            record: CallRecord {
                calling: dialing.presented.clone(),
                arrived: dialing.created,
                answered: Some(SystemTime::now()),
                joined: None,
            },
            dial_out: Some(id),
            billing,
        };
        self.calls.insert(dialog.clone(), call);
        self.services
            .dial_outs
            .update(id, |v| v.state = DialOutState::Answered);
        if let (Some(leader), Some(prompt)) = (&dialing.leader, DialOutState::Answered.prompt()) {
            let _ = leader.try_send(ToMember::Play(prompt));
        }
        // The invitation starts.
        self.settle(&dialog, now);
    }

    /// A dial-out is over before any answer: its first increment is refunded, and its
    /// record (an outbound call never answered) is written like any call's.
    fn finish_dialing(&mut self, id: DialOutId, state: DialOutState, status: Option<u16>) {
        tracing::info!(dial_out = id, ?state, status, "dial-out ended unanswered");
        self.services.dial_outs.update(id, |v| {
            v.state = state;
            if status.is_some() {
                v.sip_status = status;
            }
        });
        self.tell_leader(id, state);
        let Some(mut dialing) = self.dialing.remove(&id) else {
            return;
        };
        if let Some(placing) = dialing.current.take() {
            self.dial_invites.remove(&placing.invite);
        }
        let usage = dialing
            .meter
            .as_mut()
            .map(|m| m.close(Instant::now(), SystemTime::now()));
        let ended_by = match state {
            DialOutState::NoAnswer => EndedBy::Timeout,
            // For a dial-out the "caller" is the called party: it said no.
            DialOutState::Busy | DialOutState::Declined => EndedBy::Caller,
            _ if self.draining => EndedBy::Shutdown,
            _ => EndedBy::Error,
        };
        let (call_id, trunk, provider) = dialing
            .last
            .take()
            .unwrap_or_else(|| (format!("dial-out-{id}"), String::new(), None));
        let record = Cdr {
            call_id,
            trunk,
            calling: dialing.presented.clone(),
            dialled: dialing.number,
            tenant: dialing.conference.tenant.as_str().to_string(),
            bridge: dialing.bridge.clone(),
            conference_id: Some(dialing.conference.id),
            role: None,
            arrived: Timestamp::from_system_time(dialing.created),
            answered: None,
            joined: None,
            ended: Timestamp::now(),
            ended_by,
            // No final answer at all (no trunk, no funding, Timer B): 503, as a proxy
            // with no route would answer.
            sip_status: status.filter(|s| (300..700).contains(s)).unwrap_or(503),
            charge: Charge::Toll,
            provider,
            direction: Direction::Outbound,
            billing: usage.map(Billed::from),
        };
        self.commit_record(record, AfterRecord::Nothing);
    }

    /// Tells the leader who keyed `*9` how it goes.
    fn tell_leader(&self, id: DialOutId, state: DialOutState) {
        if let Some(prompt) = state.prompt()
            && let Some(leader) = self.dialing.get(&id).and_then(|d| d.leader.as_ref())
        {
            let _ = leader.try_send(ToMember::Play(prompt));
        }
    }

    /// The earliest deadline of the dial-outs in flight, ringing or waiting for their
    /// funding (there are few: a scan).
    pub(super) fn dialing_timeout(&self) -> Option<Instant> {
        self.dialing
            .values()
            .filter_map(|d| {
                [d.attempts.ring_deadline(), d.funding_deadline]
                    .into_iter()
                    .flatten()
                    .min()
            })
            .min()
    }

    /// Dial-outs that rang too long are cancelled: their 487 ends them as no answer.
    /// One whose first increment was not committed in time is given up.
    pub(super) fn handle_dialing_timeout(&mut self, now: Instant) {
        let unfunded: Vec<DialOutId> = self
            .dialing
            .iter()
            .filter_map(|(id, d)| {
                d.funding_deadline
                    .is_some_and(|at| now >= at)
                    .then_some(*id)
            })
            .collect();
        for id in unfunded {
            tracing::error!(
                dial_out = id,
                "the ledger did not commit the dial-out's first minute in time"
            );
            self.finish_dialing(id, DialOutState::Failed, None);
        }
        let due: Vec<DialOutId> = self
            .dialing
            .iter_mut()
            .filter_map(|(id, d)| d.attempts.ring_timed_out(now).then_some(*id))
            .collect();
        for id in due {
            self.cancel_dialing(id, "SIP;cause=480;text=\"no answer\"", true, now);
        }
    }

    /// Cancels a dial-out's attempt in flight (its INVITE's 487 then ends it).
    fn cancel_dialing(&mut self, id: DialOutId, reason: &str, no_answer: bool, now: Instant) {
        let Some(placing) = self.dialing.get_mut(&id).and_then(|d| d.current.as_mut()) else {
            return;
        };
        placing.cancelled_for_no_answer = no_answer;
        if let Some(cancel) = placing.session.hang_up(reason, now) {
            let peer = placing.peer;
            let _ = self.layer.send_request(cancel, peer, now);
        }
    }

    /// Shutting down: every dial-out still ringing is cancelled. Each stays filed
    /// until its INVITE's final answer, so a 2xx that crosses the CANCEL is still
    /// ACKed and ended with BYE (§9.1) during the drain's grace.
    pub(super) fn cancel_all_dialing(&mut self, now: Instant) {
        let ids: Vec<DialOutId> = self.dialing.keys().copied().collect();
        for id in ids {
            self.cancel_dialing(id, "SIP;cause=503;text=\"shutting down\"", false, now);
        }
    }
}

/// The calling side of one attempt: our caller ID at our address, the number at the
/// trunk's target, G.711 and telephone-event offered on the reserved port.
fn uac_session(
    dialing: &Dialing,
    local: LocalAddress,
    port: &MediaPort,
    target: SocketAddr,
) -> Option<UacSession> {
    let host = match target {
        SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
        SocketAddr::V4(a) => a.to_string(),
    };
    let request_uri = format!("sip:{}@{host};user=phone", dialing.number);
    let uri = Uri::parse(&request_uri).ok()?;
    let to = NameAddr::parse(&format!("<{request_uri}>")).ok()?;
    // Via's sent-by is `host:port` (an IPv6 host in brackets): our host for From.
    let ours = local
        .sent_by
        .rsplit_once(':')
        .map_or(local.sent_by.as_str(), |(host, _)| host)
        .to_string();
    let from = NameAddr::parse(&format!("<sip:{}@{ours};user=phone>", dialing.presented)).ok()?;
    let caller = Caller::new(from, to, uri, local, "dialbridge");
    let media_addr = port.local_addr();
    let session_id = u64::from(rand::random::<u32>());
    let mut offer = LocalMedia::g711(media_addr.ip(), media_addr.port(), session_id);
    // Wideband where the trunk takes it; G.711 first, as every PSTN trunk has it.
    offer.codecs.push(Codec::G722);
    Some(UacSession::new(
        caller,
        offer,
        SessionTimerConfig::default(),
    ))
}

/// Trunk health, the OPTIONS prober's word: what a dial-out's failure on a trunk tells
/// it (it probes that trunk again at once).
impl Signaling {
    fn trunk_failed(&mut self, trunk: TrunkId, now: Instant) {
        self.probes.health.report_invite_failure(trunk, now);
    }
}

/// What every dial-out INVITE says of us.
fn invite_headers() -> Vec<Header> {
    vec![
        Header::Other("Allow".into(), UacSession::ALLOW.into()),
        Header::Other("Supported".into(), "timer".into()),
        Header::Other("User-Agent".into(), "dialbridge".into()),
    ]
}

/// The caller ID of a bridge's dial-outs: its lowest toll service number (what a
/// called party can call back), else its lowest number, else "anonymous".
fn presented_number(router: &dialbridge_router::Router, bridge: &str) -> String {
    let mut mine: Vec<(bool, E164)> = router
        .numbers()
        .into_iter()
        .filter_map(|n| router.number(n))
        .filter(|info| info.bridge.as_deref() == Some(bridge))
        .map(|info| {
            let preferred = info.kind == dialbridge_router::NumberKind::Service
                && info.charge == dialbridge_router::Charge::Toll;
            (!preferred, info.number)
        })
        .collect();
    mine.sort();
    mine.first()
        .map_or_else(|| "anonymous".to_string(), |(_, n)| n.to_string())
}
