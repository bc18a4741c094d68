//! The call's core at work: the signaling task carries out what a call's [`CallCore`]
//! asks (play and join through the call's media task, directory questions off the task,
//! the meeting, the record, the hang-up), and feeds it what comes back.

use std::time::{Instant, SystemTime};

use dialbridge_conference::guard::PinEntry;
use dialbridge_conference::ivr::{LookupResult, PinResult};
use dialbridge_sip::dialog::DialogId;

use super::Signaling;
use crate::call_flow::media::{MediaCommand, MediaEvent, count_malformed};
use crate::call_flow::{CallReport, Step};
use crate::cdr::EndedBy;
use crate::conferences::MemberInfo;
use crate::dial_out::DialOutState;
use crate::metrics::DtmfFailure;
use crate::refusal::EndCause;

impl Signaling {
    /// What the tasks working for a call reported.
    pub(super) fn handle_call_report(&mut self, report: CallReport, now: Instant) {
        // Reports about no call yet (or about money) go where they belong, by value.
        let report = match report {
            CallReport::Billing { id, committed } => {
                return self.handle_billing_commit(&id, committed, now);
            }
            CallReport::DialOutBilling {
                dial_out,
                committed,
            } => return self.handle_dial_out_commit(dial_out, committed, now),
            CallReport::SharedCapacity { key, outcome } => {
                return self.shared_claim_decided(key, outcome, now);
            }
            CallReport::DialOutCapacity { dial_out, outcome } => {
                return self.dial_out_claim_decided(dial_out, outcome, now);
            }
            report => report,
        };
        let id = match &report {
            CallReport::Media { id, .. }
            | CallReport::Lookup { id, .. }
            | CallReport::Pin { id, .. } => id.clone(),
            _ => return, // handled above
        };
        let services = self.services.clone();
        let Some(call) = self.calls.get_mut(&id) else {
            return; // the call ended meanwhile
        };
        match report {
            CallReport::Media { event, .. } => match event {
                MediaEvent::Digit(digit) => call.core.handle_digit(digit, now),
                MediaEvent::PlayDone { seq } if seq == call.play_seq => {
                    call.core.handle_play_done(now);
                }
                MediaEvent::PlayDone { .. } => {} // an earlier prompt's: replaced since
                MediaEvent::Meeting(message) => call.core.handle_meeting(message),
                MediaEvent::JoinFailed => call.core.handle_join_failed(),
                MediaEvent::Malformed => count_malformed(&services),
                MediaEvent::Silent(silence) => {
                    tracing::info!(call_id = %id.call_id, ?silence, "no media from the caller: ending the call");
                    self.hang_up(&id, EndCause::MediaTimeout.into(), EndedBy::Timeout, now);
                    return;
                }
            },
            CallReport::Lookup { result, found, .. } => {
                if result == LookupResult::NotFound {
                    services.guard_wrong_id(&call.caller);
                }
                call.core.handle_lookup(result, found, false, now);
            }
            CallReport::Pin {
                result, conference, ..
            } => {
                services.guard_pin_result(&call.caller, &conference, result);
                call.core.handle_pin(result, now);
            }
            CallReport::Billing { .. }
            | CallReport::DialOutBilling { .. }
            | CallReport::SharedCapacity { .. }
            | CallReport::DialOutCapacity { .. } => {} // above
        }
        self.run_steps(&id, now);
    }

    /// Carries out a call's core steps, then files its next deadline.
    pub(super) fn run_steps(&mut self, id: &DialogId, now: Instant) {
        let services = self.services.clone();
        loop {
            let Some(call) = self.calls.get_mut(id) else {
                return;
            };
            let Some(step) = call.core.poll_step() else {
                break;
            };
            match step {
                Step::Play(audio) => {
                    call.play_seq += 1;
                    let seq = call.play_seq;
                    call.media.send(MediaCommand::Play { audio, seq });
                }
                Step::StopPlaying => call.media.send(MediaCommand::Stop),
                Step::JoinRoom(room) => call.media.send(MediaCommand::JoinRoom(room)),
                Step::SetSending(sending) => call.media.send(MediaCommand::SetSending(sending)),
                Step::SetRemote(remote) => call.media.send(MediaCommand::SetRemote(remote)),
                Step::SetMuted(muted) => call.media.send(MediaCommand::SetMuted(muted)),
                Step::Lookup {
                    tenant,
                    conference_id,
                } => {
                    if !services.guard_allows_id(&call.caller) {
                        // A caller past the guessing threshold learns nothing more: the
                        // IVR takes it for a wrong ID, counted once, as a lock-out.
                        call.core
                            .handle_lookup(LookupResult::NotFound, None, true, now);
                        continue;
                    }
                    let directory = services.directory.clone();
                    let reports = self.reports_tx.clone();
                    let id = id.clone();
                    tokio::spawn(async move {
                        let answer = tokio::task::spawn_blocking(move || {
                            directory.lookup(&tenant, &conference_id)
                        })
                        .await;
                        let (result, found) = match answer {
                            Ok(Ok(Some(info))) => (LookupResult::Found(info.key()), Some(info)),
                            Ok(Ok(None)) => (LookupResult::NotFound, None),
                            Ok(Err(e)) => {
                                tracing::warn!(error = %e, "directory lookup failed");
                                (LookupResult::Failed, None)
                            }
                            Err(_) => (LookupResult::Failed, None),
                        };
                        let _ = reports.send(CallReport::Lookup { id, result, found }).await;
                    });
                }
                Step::VerifyPin { conference, pin } => {
                    let delay = match services.guard_pin_entry(&call.caller, &conference) {
                        PinEntry::Refused => {
                            services
                                .conferences
                                .dtmf_failures
                                .count(DtmfFailure::LockedOut);
                            call.core.handle_pin(PinResult::Refused, now);
                            continue;
                        }
                        PinEntry::Check { delay } => delay,
                    };
                    let directory = services.directory.clone();
                    let reports = self.reports_tx.clone();
                    let id = id.clone();
                    tokio::spawn(async move {
                        // A conference under attack: every check waits, none is refused.
                        if !delay.is_zero() {
                            tokio::time::sleep(delay).await;
                        }
                        let key = conference.clone();
                        let answer = tokio::task::spawn_blocking(move || {
                            directory.verify_pin(&key.tenant, &key.id, &pin)
                        })
                        .await;
                        let result = match answer {
                            Ok(Ok(true)) => PinResult::Valid,
                            Ok(Ok(false)) => PinResult::Invalid,
                            Ok(Err(e)) => {
                                tracing::warn!(error = %e, "PIN check failed");
                                PinResult::Failed
                            }
                            Err(_) => PinResult::Failed,
                        };
                        let report = CallReport::Pin {
                            id,
                            result,
                            conference,
                        };
                        let _ = reports.send(report).await;
                    });
                }
                Step::Join {
                    conference,
                    role,
                    found,
                } => {
                    tracing::info!(
                        call_id = %id.call_id,
                        tenant = conference.tenant.as_str(),
                        conference = conference.id.as_str(),
                        ?role,
                        "caller joins the meeting"
                    );
                    let wait_for_leader = found.as_ref().is_some_and(|info| info.wait_for_leader);
                    let info = MemberInfo {
                        calling: call.record.calling.clone(),
                        dialled: call.grant.number().to_string(),
                        organiser: found.as_ref().map(|info| info.display_name.clone()),
                        organiser_id: found.as_ref().map(|info| info.organiser.to_string()),
                        activity: Some(call.media.activity.clone()),
                        quality: Some(call.media.quality.clone()),
                        join_leave_tones: found.and_then(|info| info.join_leave_tones),
                    };
                    call.membership = Some(services.conferences.join(
                        conference,
                        role,
                        wait_for_leader,
                        info,
                        call.media.meeting_tx.clone(),
                    ));
                }
                Step::LeaveMeeting => call.membership = None,
                Step::MeetingDigit(digit) => {
                    if let Some(membership) = &call.membership {
                        membership.digit(digit);
                    }
                }
                Step::Joined { conference, role } => {
                    call.record.joined = Some((conference, role, SystemTime::now()));
                    if let Some(dial_out) = call.dial_out {
                        services
                            .dial_outs
                            .update(dial_out, |v| v.state = DialOutState::Joined);
                    }
                }
                Step::Failed(failure) => services.conferences.dtmf_failures.count(failure),
                Step::HangUp(cause) => {
                    call.membership = None;
                    self.hang_up(id, cause, EndedBy::Bridge, now);
                    return;
                }
            }
        }
        self.rearm(id);
    }
}
