//! Everything after a call is admitted: the answer, ACK, CANCEL, BYE either way,
//! re-INVITE and UPDATE (hold, resume, session refresh), INFO digits, and the end of the
//! call, which drops its record and with it the router's grant and the media session.

use std::time::Instant;

use dialbridge_sip::dialog::session_timer::interval_too_small;
use dialbridge_sip::dialog::{DialogId, DialogSet, InDialogRequest};
use dialbridge_sip::rsip::headers::UntypedHeader;
use dialbridge_sip::rsip::{self, Header, Method};
use dialbridge_sip::sdp::SessionDescription;
use dialbridge_sip::transaction::{PeerAddr, ServerKey, TransactionKey};

use super::Signaling;
use super::call::{CallInput, CallPhase, CallReport};
use crate::answers;
use crate::cdr::{Cdr, EndedBy, Timestamp};

impl Signaling {
    /// The ring delay is over: answer unless the call went away meanwhile.
    pub(super) fn answer(&mut self, id: &DialogId, now: Instant) {
        if self
            .calls
            .get(id)
            .is_some_and(|c| matches!(c.phase, CallPhase::Ringing))
        {
            self.send_200(id, now);
        }
    }

    /// 200 OK with our SDP answer; the layer retransmits it until the ACK.
    pub(super) fn send_200(&mut self, id: &DialogId, now: Instant) {
        let (Some(call), Some(dialog)) = (self.calls.get_mut(id), self.dialogs.get_mut(id)) else {
            return;
        };
        let mut response = dialog.make_response(&call.invite, 200, now);
        response
            .headers
            .push(Header::Other("Server".into(), answers::SERVER.into()));
        response
            .headers
            .push(Header::Allow(rsip::headers::Allow::new(answers::ALLOW)));
        response
            .headers
            .push(Header::Supported(rsip::headers::Supported::new(
                answers::SUPPORTED,
            )));
        let body = call.answer_sdp.clone().into_bytes();
        answers::set_body(
            &mut response.headers,
            &mut response.body,
            "application/sdp",
            body,
        );
        call.phase = CallPhase::Answered;
        call.record.answered = Some(std::time::SystemTime::now());
        self.observers
            .setup_latency
            .observe(now.saturating_duration_since(call.arrived).as_secs_f64());
        let key = call.invite_key.clone();
        self.respond(&key, response, now);
    }

    pub(super) fn handle_ack(&mut self, invite_key: &ServerKey, ack: &rsip::Request, now: Instant) {
        let Ok(dialog) = self.dialogs.find_for_request(ack) else {
            tracing::debug!("ACK for no dialog ignored");
            return;
        };
        let id = dialog.id().clone();
        let _ = dialog.handle_request(ack, now);
        if let Some(call) = self.calls.get_mut(&id) {
            if matches!(call.phase, CallPhase::Answered) {
                call.phase = CallPhase::Confirmed;
                tracing::debug!(call_id = %id.call_id, "call confirmed");
            }
        }
        self.by_invite.remove(invite_key);
    }

    pub(super) fn handle_cancel(&mut self, invite_key: &ServerKey, now: Instant) {
        let Some(id) = self.by_invite.get(invite_key).cloned() else {
            return;
        };
        let ringing = self
            .calls
            .get(&id)
            .is_some_and(|c| matches!(c.phase, CallPhase::Ringing));
        if !ringing {
            return; // already answered: the CANCEL changes nothing (§9.2)
        }
        let answer = match (self.calls.get(&id), self.dialogs.get_mut(&id)) {
            (Some(call), Some(dialog)) => Some((
                dialog.make_response(&call.invite, 487, now),
                call.invite_key.clone(),
            )),
            _ => None,
        };
        // The caller hears that the call is over once its record is committed.
        let after = match answer {
            Some((response, key)) => AfterRecord::Respond { key, response },
            None => AfterRecord::Nothing,
        };
        self.end_call(&id, EndedBy::Cancel, 487, after);
    }

    pub(super) fn handle_in_dialog(
        &mut self,
        key: ServerKey,
        request: rsip::Request,
        _peer: PeerAddr,
        now: Instant,
    ) {
        let dialog = match self.dialogs.find_for_request(&request) {
            Ok(d) => d,
            Err(dialbridge_sip::Error::NoSuchDialog) => {
                let response = DialogSet::no_such_dialog(&request);
                self.respond(&key, response, now);
                return;
            }
            Err(e) => {
                let response = answers::reply(&request, 400, Some(&e.to_string()));
                self.respond(&key, response, now);
                return;
            }
        };
        let id = dialog.id().clone();
        let what = match dialog.handle_request(&request, now) {
            Ok(what) => what,
            Err(dialbridge_sip::Error::CSeqOutOfOrder { .. }) => {
                let response = answers::reply(&request, 500, Some("CSeq out of order"));
                self.respond(&key, response, now);
                return;
            }
            Err(dialbridge_sip::Error::SessionIntervalTooSmall { .. }) => {
                let response = interval_too_small(&request, self.session_timers.min_se);
                self.respond(&key, response, now);
                return;
            }
            Err(e) => {
                let response = answers::reply(&request, 400, Some(&e.to_string()));
                self.respond(&key, response, now);
                return;
            }
        };
        match what {
            InDialogRequest::Bye => {
                let response = self.dialog_response(&id, &request, 200, now);
                self.end_call(
                    &id,
                    EndedBy::Caller,
                    200,
                    AfterRecord::Respond { key, response },
                );
            }
            InDialogRequest::ReInvite { offer } | InDialogRequest::Update { offer } => {
                self.handle_reoffer(&key, &id, &request, offer, now)
            }
            InDialogRequest::Other(Method::Info) => self.handle_info(&key, &id, &request, now),
            InDialogRequest::Other(Method::Options) => {
                let response =
                    answers::with_capabilities(self.dialog_response(&id, &request, 200, now));
                self.respond(&key, response, now);
            }
            InDialogRequest::Ack { .. } | InDialogRequest::Other(_) => {
                let response = answers::with_capabilities(answers::reply(&request, 405, None));
                self.respond(&key, response, now);
            }
        }
    }

    /// re-INVITE or UPDATE: a new offer (hold, resume, new address) or a bare session
    /// refresh. A re-INVITE before the first ACK gets 491 (§14.2).
    fn handle_reoffer(
        &mut self,
        key: &ServerKey,
        id: &DialogId,
        request: &rsip::Request,
        offer: Option<Vec<u8>>,
        now: Instant,
    ) {
        let confirmed = self
            .calls
            .get(id)
            .is_some_and(|c| matches!(c.phase, CallPhase::Confirmed));
        if !confirmed && request.method == Method::Invite {
            let response = answers::reply(request, 491, None);
            self.respond(key, response, now);
            return;
        }
        let Some(call) = self.calls.get_mut(id) else {
            let response = answers::reply(request, 481, None);
            self.respond(key, response, now);
            return;
        };
        let body = match offer {
            Some(offer) => {
                let answer = SessionDescription::parse_bytes(&offer)
                    .and_then(|offer| call.sdp.handle_offer(&offer));
                match answer {
                    Ok(answer) => {
                        let hold = answer.media.hold;
                        // Computed as at admission, so that a re-offer repeating the
                        // address (hold, resume) keeps what the media latched to.
                        let remote = (!answer.media.remote_rtp.ip().is_unspecified())
                            .then(|| super::media_target(answer.media.remote_rtp, call.latching));
                        let _ = call
                            .to_task
                            .try_send(CallInput::Media { held: hold, remote });
                        tracing::debug!(call_id = %id.call_id, hold, "re-offer answered");
                        answer.sdp
                    }
                    Err(e) => {
                        let response =
                            answers::reply(request, e.status_code(), Some(&e.to_string()));
                        self.respond(key, response, now);
                        return;
                    }
                }
            }
            // No offer: ours goes in the 200 and the answer comes in the ACK (§14.2).
            None => call.sdp.offer(),
        };
        let mut response = self.dialog_response(id, request, 200, now);
        answers::set_body(
            &mut response.headers,
            &mut response.body,
            "application/sdp",
            body.into_bytes(),
        );
        self.respond(key, response, now);
    }

    /// INFO with a DTMF digit (application/dtmf-relay or application/dtmf).
    fn handle_info(
        &mut self,
        key: &ServerKey,
        id: &DialogId,
        request: &rsip::Request,
        now: Instant,
    ) {
        let content_type = request
            .headers
            .iter()
            .find_map(|h| match h {
                Header::ContentType(c) => Some(c.value().to_string()),
                _ => None,
            })
            .unwrap_or_default();
        match crate::call_flow::info_digit(&content_type, &request.body) {
            Ok(Some(digit)) => {
                if let Some(call) = self.calls.get(id) {
                    let _ = call.to_task.try_send(CallInput::Digit(digit));
                }
                let response = self.dialog_response(id, request, 200, now);
                self.respond(key, response, now);
            }
            // An INFO of another package (or none): accepted and ignored (RFC 6086 §4.2.2
            // would have us 469 it; legacy INFO without Info-Package is what trunks send).
            Ok(None) => {
                let response = self.dialog_response(id, request, 200, now);
                self.respond(key, response, now);
            }
            Err(reason) => {
                let response = answers::reply(request, 400, Some(reason));
                self.respond(key, response, now);
            }
        }
    }

    fn dialog_response(
        &mut self,
        id: &DialogId,
        request: &rsip::Request,
        status: u16,
        now: Instant,
    ) -> rsip::Response {
        let mut response = match self.dialogs.get_mut(id) {
            Some(dialog) => dialog.make_response(request, status, now),
            None => answers::reply(request, status, None),
        };
        response
            .headers
            .push(Header::Other("Server".into(), answers::SERVER.into()));
        response
    }

    pub(super) fn handle_response(
        &mut self,
        key: &TransactionKey,
        response: &rsip::Response,
        now: Instant,
    ) {
        let Some(id) = self.by_client.get(key).cloned() else {
            return;
        };
        let code = response.status_code.code();
        if code < 200 {
            return;
        }
        if let Some(dialog) = self.dialogs.get_mut(&id) {
            dialog.handle_response(response, now);
            // A 2xx to our refresh re-INVITE needs our ACK (sent outside the transaction).
            let is_invite =
                matches!(key, TransactionKey::Client(k) if k.method() == Method::Invite);
            if is_invite && (200..300).contains(&code) {
                if let (Ok(ack), Some(call)) = (dialog.make_ack(response), self.calls.get(&id)) {
                    self.layer.send_stateless(ack, call.peer);
                }
            }
            if code == 481 || code == 408 {
                self.end_call(&id, EndedBy::Error, 200, AfterRecord::Nothing);
            }
        }
        self.by_client.remove(key);
    }

    pub(super) fn handle_transaction_timeout(&mut self, key: &TransactionKey, _now: Instant) {
        if let Some(id) = self.by_client.remove(key) {
            // Our BYE or refresh got no answer: the peer is gone either way.
            self.end_call(&id, EndedBy::Timeout, 200, AfterRecord::Nothing);
        }
    }

    /// Ends a call from our side: 480 while it rings, BYE once answered. The record is
    /// committed first, so a crash after the caller learns of the end loses nothing.
    pub(super) fn hang_up(&mut self, id: &DialogId, reason: &str, ended_by: EndedBy, now: Instant) {
        let Some(call) = self.calls.get(id) else {
            return;
        };
        tracing::info!(call_id = %id.call_id, reason, "bridge ends the call");
        match call.phase {
            CallPhase::Ringing => {
                let key = call.invite_key.clone();
                let invite = call.invite.clone();
                let mut response = self.dialog_response(id, &invite, 480, now);
                response
                    .headers
                    .push(Header::Other("Reason".into(), reason.into()));
                self.end_call(id, ended_by, 480, AfterRecord::Respond { key, response });
            }
            CallPhase::Answered | CallPhase::Confirmed => {
                let peer = call.peer;
                let bye = self.dialogs.get_mut(id).map(|dialog| {
                    let mut bye = dialog.make_request(Method::Bye, now);
                    bye.headers
                        .push(Header::Other("Reason".into(), reason.into()));
                    bye
                });
                let after = match bye {
                    Some(request) => AfterRecord::Request {
                        id: id.clone(),
                        request,
                        peer,
                    },
                    None => AfterRecord::Nothing,
                };
                self.end_call(id, ended_by, 200, after);
            }
        }
    }

    /// Sends a session refresh (we are the refresher): a re-INVITE with our current SDP.
    pub(super) fn refresh_session(&mut self, id: &DialogId, now: Instant) {
        let (Some(call), Some(dialog)) = (self.calls.get_mut(id), self.dialogs.get_mut(id)) else {
            return;
        };
        let mut invite = dialog.make_request(Method::Invite, now);
        let offer = call.sdp.offer().into_bytes();
        answers::set_body(
            &mut invite.headers,
            &mut invite.body,
            "application/sdp",
            offer,
        );
        let peer = call.peer;
        if let Ok(key) = self.layer.send_request(invite, peer, now) {
            self.by_client
                .insert(TransactionKey::Client(key), id.clone());
        }
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
        self.dialogs.remove(id);
        let Some(call) = self.calls.remove(id) else {
            self.after_record(after, Instant::now());
            return;
        };
        tracing::info!(
            call_id = %id.call_id,
            number = %call.grant.number(),
            trunk = call.grant.trunk_name(),
            seconds = call.arrived.elapsed().as_secs(),
            ended_by = ended_by.as_str(),
            "call ended"
        );
        self.by_invite.remove(&call.invite_key);
        let record = call_detail_record(id, &call, ended_by, status);
        // The grant, the media and the call's task go now; the record commits on the
        // blocking pool (a durable commit costs milliseconds, never the signaling
        // task's), and only then does the far end learn that the call is over.
        drop(call);
        let store = self.services.cdrs.clone();
        let reports = self.reports_tx.clone();
        self.records_pending += 1;
        tokio::spawn(async move {
            if let Err(e) = store.record_async(record).await {
                // Billing data: loud. The call still ends: its capacity is back already.
                tracing::error!(error = %e, "call detail record NOT written");
            }
            let _ = reports.send(CallReport::Recorded(Box::new(after))).await;
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
    }
}
