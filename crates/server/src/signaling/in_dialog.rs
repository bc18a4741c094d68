//! Everything after a call is admitted: the answer, ACK, CANCEL, BYE either way,
//! re-INVITE and UPDATE (hold, resume, session refresh), INFO digits, and the end of the
//! call, which drops its record and with it the router's grant and the media session.

use std::time::Instant;

use dialbridge_sip::dialog::DialogId;
use dialbridge_sip::rsip::headers::UntypedHeader;
use dialbridge_sip::rsip::{self, Header, Method};
use dialbridge_sip::session::{Hangup, Output, SessionEnd, SessionEvent};
use dialbridge_sip::transaction::{PeerAddr, ServerKey, TransactionKey};

use super::Signaling;
use crate::answers;
use crate::call_flow;
use crate::call_flow::media::MediaCommand;
use crate::cdr::{Billed, Cdr, EndedBy, Timestamp};
use crate::dial_out::DialOutState;
use crate::refusal::{self, Cause, EndCause};

impl Signaling {
    /// The ACK for our 200: the call is up.
    pub(super) fn handle_ack(&mut self, invite_key: &ServerKey, ack: &rsip::Request, now: Instant) {
        let Some(id) = self.call_for(ack) else {
            tracing::debug!("ACK for no call ignored");
            return;
        };
        if let Some(session) = self.calls.get_mut(&id).and_then(|c| c.session.uas_mut()) {
            session.handle_ack(ack, now);
        }
        self.by_invite.remove(invite_key);
        self.settle(&id, now);
    }

    /// A CANCEL: the caller hears 487 for its INVITE once the record is committed; an
    /// answered call is not affected (§9.2).
    pub(super) fn handle_cancel(&mut self, invite_key: &ServerKey, now: Instant) {
        if self.cancel_claim(invite_key, now) {
            return;
        }
        let Some(id) = self.by_invite.get(invite_key).cloned() else {
            return;
        };
        let Some(session) = self.calls.get_mut(&id).and_then(|c| c.session.uas_mut()) else {
            return;
        };
        if let Some(response) = session.handle_cancel(now) {
            let key = invite_key.clone();
            let status = response.status_code.code();
            self.end_call(
                &id,
                EndedBy::Cancel,
                status,
                AfterRecord::Respond { key, response },
            );
        }
    }

    /// The 2xx was never ACKed: the session asks for the call to end.
    pub(super) fn handle_no_ack(&mut self, invite_key: &ServerKey, now: Instant) {
        if let Some(id) = self.by_invite.remove(invite_key) {
            if let Some(session) = self.calls.get_mut(&id).and_then(|c| c.session.uas_mut()) {
                session.handle_no_ack();
            }
            self.settle(&id, now);
        }
    }

    pub(super) fn handle_in_dialog(
        &mut self,
        key: ServerKey,
        request: rsip::Request,
        now: Instant,
    ) {
        let Some(id) = self.call_for(&request) else {
            let response = answers::BRIDGE.no_such_dialog(&request);
            self.respond(&key, response, now);
            return;
        };
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        // An INFO's body is read before the session counts the request: a DTMF body
        // that does not parse is refused and changes nothing.
        let mut digit = None;
        if request.method == Method::Info {
            match call_flow::info_digit(&content_type(&request), &request.body) {
                Ok(d) => digit = d,
                Err(_) => {
                    let response = refusal::refuse(&request, EndCause::MalformedDtmfInfo);
                    self.respond(&key, response, now);
                    return;
                }
            }
        }
        let Some(response) = call.session.handle_request(&request, now) else {
            self.settle(&id, now); // an ACK: nothing to answer
            return;
        };
        if call.session.is_terminated() {
            // The caller's BYE: its 200 goes once the record is committed.
            tracing::debug!(call_id = %id.call_id, reason = call.session.remote_reason(), "caller hung up");
            self.end_call(
                &id,
                EndedBy::Caller,
                200,
                AfterRecord::Respond { key, response },
            );
            return;
        }
        if let Some(digit) = digit.filter(|_| response.status_code.code() == 200) {
            call.media.send(MediaCommand::InfoDigit(digit));
        }
        self.respond(&key, response, now);
        self.settle(&id, now);
    }

    /// The call a request belongs to (its dialog id), if it is ours.
    fn call_for(&self, request: &rsip::Request) -> Option<DialogId> {
        DialogId::for_incoming(request)
            .ok()
            .filter(|id| self.calls.contains_key(id))
    }

    /// A final response to one of our requests (a refresh, or a BYE whose call is gone).
    pub(super) fn handle_response(
        &mut self,
        key: &TransactionKey,
        response: &rsip::Response,
        now: Instant,
    ) {
        if response.status_code.code() < 200 {
            return;
        }
        let Some(id) = self.by_client.remove(key) else {
            return;
        };
        if let Some(call) = self.calls.get_mut(&id) {
            call.session.handle_response(response, now);
            self.settle(&id, now);
        }
    }

    pub(super) fn handle_transaction_timeout(&mut self, key: &TransactionKey, _now: Instant) {
        if let Some(id) = self.by_client.remove(key) {
            // Our BYE or refresh got no answer: the peer is gone either way.
            if let Some(call) = self.calls.get_mut(&id) {
                call.session.handle_request_timeout();
            }
            self.end_call(&id, EndedBy::Timeout, 200, AfterRecord::Nothing);
        }
    }

    /// Carries out what a call's session wants, then what its core wants, and files its
    /// next deadline.
    pub(super) fn settle(&mut self, id: &DialogId, now: Instant) {
        loop {
            let Some(call) = self.calls.get_mut(id) else {
                return;
            };
            let Some(output) = call.session.poll_output() else {
                break;
            };
            match output {
                Output::RespondInvite(response) => {
                    if let Some(key) = call.session.invite_key().cloned() {
                        self.respond(&key, response, now);
                    }
                }
                Output::Request(request) => {
                    let peer = call.peer;
                    if let Ok(key) = self.layer.send_request(request, peer, now) {
                        self.by_client
                            .insert(TransactionKey::Client(key), id.clone());
                    }
                }
                Output::Ack(ack) => {
                    let peer = call.peer;
                    self.layer.send_stateless(ack, peer);
                }
                Output::Event(event) => self.handle_session_event(id, event, now),
            }
        }
        // What the session told the core (hold, a new address) is carried out with
        // whatever else the core has pending; that also files the next deadline.
        self.run_steps(id, now);
    }

    fn handle_session_event(&mut self, id: &DialogId, event: SessionEvent, now: Instant) {
        let Some(call) = self.calls.get_mut(id) else {
            return;
        };
        match event {
            SessionEvent::Answered => {
                call.record.answered = Some(std::time::SystemTime::now());
                self.observers
                    .setup_latency
                    .observe(now.saturating_duration_since(call.arrived).as_secs_f64());
                self.billing_answered(id, now);
            }
            SessionEvent::Confirmed => {
                tracing::debug!(call_id = %id.call_id, "call confirmed");
            }
            SessionEvent::MediaChanged {
                hold, remote_rtp, ..
            } => {
                // Computed as at admission, so that a re-offer repeating the address
                // (hold, resume) keeps what the media latched to.
                let remote =
                    remote_rtp.map(|a| dialbridge_media::latch::first_target(a, call.latching));
                call.core.handle_media_change(hold, remote);
                tracing::debug!(call_id = %id.call_id, hold, "re-offer answered");
            }
            SessionEvent::MustEnd(SessionEnd::NoAck) => {
                self.hang_up(id, EndCause::NoAck.into(), EndedBy::Timeout, now);
            }
            SessionEvent::MustEnd(SessionEnd::BadAnswer) => {
                self.hang_up(id, EndCause::UnusableAnswer.into(), EndedBy::Error, now);
            }
            SessionEvent::MustEnd(_) => {
                self.hang_up(id, EndCause::SessionExpired.into(), EndedBy::Timeout, now);
            }
            SessionEvent::Ended(SessionEnd::PeerGone) => {
                self.end_call(id, EndedBy::Error, 200, AfterRecord::Nothing);
            }
            // BYE and CANCEL are ended where they are handled (their answer waits
            // for the record); the rest is the calling side's.
            SessionEvent::Ended(_) | SessionEvent::Progress(_) | SessionEvent::Challenged(_) => {}
        }
    }

    /// Files the call under its next deadline, its session's or its core's (the old
    /// entry is skipped when it comes up).
    pub(super) fn rearm(&mut self, id: &DialogId) {
        let Some(call) = self.calls.get_mut(id) else {
            return;
        };
        let billing = call.billing.as_ref().and_then(|b| b.poll_timeout());
        let next = [
            call.session.poll_timeout(),
            call.core.poll_timeout(),
            billing,
        ]
        .into_iter()
        .flatten()
        .min();
        if next != call.armed {
            call.armed = next;
            if let Some(at) = next {
                self.timers.insert((at, id.clone()));
            }
        }
    }

    /// Ends a call from our side for `cause`: a final response while it is unanswered,
    /// BYE once answered, both with the cause's Reason. The record is committed first, so
    /// a crash after the caller learns of the end loses nothing.
    pub(super) fn hang_up(&mut self, id: &DialogId, cause: Cause, ended_by: EndedBy, now: Instant) {
        let Some(call) = self.calls.get_mut(id) else {
            return;
        };
        // Unanswered, the INVITE's final answer is the cause's own status (a refusal
        // decided while it rang: no credits, shutting down...); answered, a BYE.
        let answer = refusal::sip_answer(cause);
        let reason = answer.reason;
        tracing::info!(call_id = %id.call_id, reason, "bridge ends the call");
        let hangup = call.session.hang_up(answer.status, reason, now);
        let (status, after) = match (hangup, call.session.invite_key()) {
            (Some(Hangup::Respond(response)), Some(key)) => (
                response.status_code.code(),
                AfterRecord::Respond {
                    key: key.clone(),
                    response,
                },
            ),
            (Some(Hangup::Bye(request)), _) => (
                200,
                AfterRecord::Request {
                    id: id.clone(),
                    request,
                    peer: call.peer,
                },
            ),
            _ => (200, AfterRecord::Nothing),
        };
        self.end_call(id, ended_by, status, after);
    }

    /// Forgets a call after committing its detail record: its grant goes back to the
    /// router, its media stops, its task ends. `status` is the call's SIP outcome (the
    /// final answer to its INVITE).
    pub(super) fn end_call(
        &mut self,
        id: &DialogId,
        ended_by: EndedBy,
        status: u16,
        after: AfterRecord,
    ) {
        let Some(mut call) = self.calls.remove(id) else {
            self.after_record(after, Instant::now());
            return;
        };
        let usage = super::billing::close(&mut call);
        tracing::info!(
            call_id = %id.call_id,
            number = %call.grant.number(),
            trunk = call.grant.trunk_name(),
            seconds = call.arrived.elapsed().as_secs(),
            ended_by = ended_by.as_str(),
            "call ended"
        );
        if let Some(key) = call.session.invite_key() {
            self.by_invite.remove(key);
        }
        let record = call_detail_record(id, &call, ended_by, status, usage);
        if let Some(dial_out) = call.dial_out {
            // A callee that never keyed 1 (or hung up before) declined the invitation.
            let accepted = call.membership.is_some() || call.record.joined.is_some();
            self.services.dial_outs.update(dial_out, |v| {
                if !v.state.is_final() {
                    v.state = if accepted {
                        DialOutState::Ended
                    } else {
                        DialOutState::Declined
                    };
                }
            });
            self.dial_out_calls.remove(&dial_out);
        }
        // The grant, the media and the call's task go now; the record commits on the
        // blocking pool (a durable commit costs milliseconds, never the signaling
        // task's), and only then does the far end learn that the call is over.
        drop(call);
        self.commit_record(record, after);
    }

    /// Commits a call's record off the task, then sends what waited for it.
    pub(super) fn commit_record(&mut self, record: Cdr, after: AfterRecord) {
        let store = self.services.cdrs.clone();
        let records = self.records_tx.clone();
        self.records_pending += 1;
        tokio::spawn(async move {
            if let Err(e) = store.record_async(record).await {
                // Billing data: loud. The call still ends: its capacity is back already.
                tracing::error!(error = %e, "call detail record NOT written");
            }
            let _ = records.send(after).await;
        });
    }

    /// Sends what waited for a call's record to commit.
    pub(super) fn after_record(&mut self, after: AfterRecord, now: Instant) {
        match after {
            AfterRecord::Respond { key, response } => self.respond(&key, response, now),
            AfterRecord::Request { id, request, peer } => {
                match self.layer.send_request(request, peer, now) {
                    Ok(key) => {
                        self.by_client.insert(TransactionKey::Client(key), id);
                    }
                    Err(e) => tracing::debug!(error = %e, "BYE not sent"),
                }
            }
            AfterRecord::Nothing => {}
        }
    }
}

/// The Content-Type of a request, as written.
fn content_type(request: &rsip::Request) -> String {
    request
        .headers
        .iter()
        .find_map(|h| match h {
            Header::ContentType(c) => Some(c.value().to_string()),
            _ => None,
        })
        .unwrap_or_default()
}

/// What goes on the wire once a call's record is committed.
#[derive(Debug)]
pub(crate) enum AfterRecord {
    /// Our final answer (200 to BYE, 487 to a CANCELled INVITE, 480).
    Respond {
        key: ServerKey,
        response: rsip::Response,
    },
    /// Our BYE.
    Request {
        id: DialogId,
        request: rsip::Request,
        peer: PeerAddr,
    },
    Nothing,
}

/// The billing record of a call that ends now.
fn call_detail_record(
    id: &DialogId,
    call: &super::call::Call,
    ended_by: EndedBy,
    status: u16,
    usage: Option<dialbridge_ledger::Usage>,
) -> Cdr {
    let (conference_id, role, joined) = match &call.record.joined {
        Some((conference, role, at)) => (
            Some(*conference),
            Some(*role),
            Some(Timestamp::from_system_time(*at)),
        ),
        None => (None, None, None),
    };
    Cdr {
        call_id: id.call_id.clone(),
        trunk: call.grant.trunk_name().to_string(),
        calling: call.record.calling.clone(),
        dialled: call.grant.number(),
        tenant: call.grant.tenant().to_string(),
        bridge: call.grant.bridge().to_string(),
        conference_id,
        role,
        arrived: Timestamp::from_system_time(call.record.arrived),
        answered: call.record.answered.map(Timestamp::from_system_time),
        joined,
        ended: Timestamp::now(),
        ended_by,
        sip_status: status,
        charge: call.grant.charge(),
        provider: call.grant.provider().map(ToString::to_string),
        direction: call.grant.direction(),
        billing: usage.map(Billed::from),
    }
}
