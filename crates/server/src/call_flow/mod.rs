//! A call's own task, from "answered" to "hung up". Its decisions are [`CallCore`]'s
//! (the entry IVR, key presses, what plays, the meeting's word); this task only moves
//! events into the core and carries out its steps: the RTP session plays and joins the
//! mix, the directory is asked off the task, the meeting is joined, and the signaling
//! task is told when the call must end.

mod core;
#[cfg(test)]
mod tests;

pub use self::core::{Audio, CallCore, Step};

use std::sync::Arc;
use std::time::Instant;

use dialbridge_conference::Digit;
use dialbridge_conference::directory::ConferenceInfo;
use dialbridge_conference::dtmf::parse_info;
use dialbridge_conference::guard::CallerKey;
use dialbridge_conference::ivr::{
    ConferenceKey, IvrConfig, LookupResult, PinResult, Role, TenantId,
};
use dialbridge_media::{PlayDone, RtpSession};
use dialbridge_sip::dialog::DialogId;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::conferences::{MemberInfo, Membership, ToMember};
use crate::metrics::{DtmfFailure, QUALITY_INTERVAL, QualityReporter};
use crate::refusal::Cause;
use crate::services::Services;

/// What the signaling task tells a call's task.
#[derive(Debug, Clone)]
pub enum CallInput {
    /// A digit from SIP INFO.
    Digit(Digit),
    /// A re-INVITE or UPDATE settled the media: on hold or not, and the address to send
    /// to when it moved.
    Media {
        held: bool,
        remote: Option<std::net::SocketAddr>,
    },
}

/// What a call's task tells the signaling task.
#[derive(Debug)]
pub(crate) enum CallReport {
    /// End the call (BYE, or a final response while unanswered) for this cause.
    HangUp { id: DialogId, cause: Cause },
    /// The caller is in a meeting's mix (for the call detail record).
    Joined {
        id: DialogId,
        conference: dialbridge_conference::ivr::ConferenceId,
        role: Role,
    },
}

/// Starts the media side of a call: its RTP session plays the welcome prompt and the
/// entry IVR runs on what the caller keys. The task reports to `reports` when the call
/// must end; it is aborted when the call ends for any other reason.
pub(crate) fn spawn(
    start: CallStart,
    reports: mpsc::Sender<CallReport>,
) -> (mpsc::Sender<CallInput>, tokio::task::AbortHandle) {
    let (tx, rx) = mpsc::channel(32);
    let handle = tokio::spawn(run(start, rx, reports));
    (tx, handle.abort_handle())
}

/// What an asynchronous directory question came back with.
enum Answer {
    Lookup(LookupResult, Option<ConferenceInfo>),
    Pin(PinResult, ConferenceKey),
}

/// Who called which number, for the meeting's roster.
#[derive(Debug, Clone)]
pub(crate) struct CallParty {
    pub calling: String,
    pub dialled: String,
}

/// Everything a call's task starts with.
pub(crate) struct CallStart {
    pub id: DialogId,
    pub session: RtpSession,
    pub services: Arc<Services>,
    /// The tenant of the dialled bridge: conference IDs are looked up there only.
    pub tenant: String,
    /// Who to count wrong IDs and PINs against.
    pub caller: CallerKey,
    pub party: CallParty,
}

/// The task's hands: everything the core's steps act on.
struct Hands {
    id: DialogId,
    party: CallParty,
    session: RtpSession,
    services: Arc<Services>,
    caller: CallerKey,
    playing: Option<PlayDone>,
    questions: JoinSet<Answer>,
    meeting: Option<Membership>,
    meeting_tx: mpsc::Sender<ToMember>,
    reports: mpsc::Sender<CallReport>,
    /// Publishes the session's loss and jitter; taken for the last publish on drop.
    quality: Option<QualityReporter>,
}

pub(crate) async fn run(
    start: CallStart,
    mut inputs: mpsc::Receiver<CallInput>,
    reports: mpsc::Sender<CallReport>,
) {
    let CallStart {
        id,
        mut session,
        services,
        tenant,
        caller,
        party,
    } = start;
    let mut config = IvrConfig::new(TenantId::new(tenant));
    config.first_digit_timeout = services.ivr.first_digit_timeout;
    config.inter_digit_timeout = services.ivr.inter_digit_timeout;
    let attempts = u8::try_from(services.ivr.max_attempts).unwrap_or(u8::MAX);
    config.max_id_attempts = attempts;
    config.max_pin_attempts = attempts;
    let Some(mut inbound) = session.take_inbound() else {
        return;
    };
    let (meeting_tx, mut meeting_rx) = mpsc::channel(16);
    let quality = services.conferences.quality.reporter();
    let mut core = CallCore::new(config, Instant::now());
    let mut hands = Hands {
        id,
        party,
        session,
        services,
        caller,
        playing: None,
        questions: JoinSet::new(),
        meeting: None,
        meeting_tx,
        reports,
        quality: Some(quality),
    };
    let mut quality_tick = tokio::time::interval(QUALITY_INTERVAL);
    let telephone_event = hands.session.telephone_event_pt();
    let codec = hands.session.codec();
    // In-band DTMF (no telephone-event negotiated): the Goertzel detector works on
    // 8 kHz PCM, so G.722 and Opus audio is decoded and decimated to it; G.711 is
    // decoded as it is.
    let mut in_band = match telephone_event {
        Some(_) => None,
        None => dialbridge_media::Transcoder::new(codec, dialbridge_media::SampleRate::Hz8000).ok(),
    };
    let mut pcm = [0i16; dialbridge_media::FRAME_SAMPLES];

    loop {
        if !hands.carry_out(&mut core).await {
            return;
        }
        let sleep = async {
            match core.poll_timeout() {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        let play_done = async {
            match hands.playing.as_mut() {
                Some(done) => {
                    let _ = done.await;
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            packet = inbound.recv() => {
                let Some(packet) = packet else { return };
                let now = Instant::now();
                if Some(packet.payload_type) == telephone_event {
                    core.handle_telephone_event(
                        &packet.payload, packet.timestamp, packet.sequence, packet.marker, now,
                    );
                } else if let Some(decoder) = in_band
                    .as_mut()
                    .filter(|_| packet.payload_type == codec.payload_type())
                {
                    let n = decoder.decode_to_mix(&packet.payload, &mut pcm);
                    core.handle_audio(pcm.get(..n).unwrap_or_default(), now);
                }
            }
            input = inputs.recv() => match input {
                Some(CallInput::Digit(digit)) => core.handle_info_digit(digit, Instant::now()),
                Some(CallInput::Media { held, remote }) => core.handle_media_change(held, remote),
                None => return,
            },
            _ = play_done => {
                hands.playing = None;
                core.handle_play_done(Instant::now());
            }
            Some(message) = meeting_rx.recv() => core.handle_meeting(message),
            Some(answer) = hands.questions.join_next(), if !hands.questions.is_empty() => {
                let now = Instant::now();
                match answer {
                    Ok(Answer::Lookup(result, info)) => {
                        if result == LookupResult::NotFound {
                            hands.services.guard_wrong_id(&hands.caller);
                        }
                        core.handle_lookup(result, info, false, now);
                    }
                    Ok(Answer::Pin(result, conference)) => {
                        hands.services.guard_pin_result(&hands.caller, &conference, result);
                        core.handle_pin(result, now);
                    }
                    Err(_) => core.handle_lookup(LookupResult::Failed, None, false, now),
                }
            }
            _ = sleep => core.handle_timeout(Instant::now()),
            _ = quality_tick.tick() => hands.publish_quality(),
        }
    }
}

impl Hands {
    /// Carries out the core's steps. `false`: the call is over.
    async fn carry_out(&mut self, core: &mut CallCore) -> bool {
        while let Some(step) = core.poll_step() {
            match step {
                Step::Play(audio) => self.play(core, audio),
                Step::StopPlaying => {
                    self.session.stop();
                    self.playing = None;
                }
                Step::Lookup {
                    tenant,
                    conference_id,
                } => {
                    if !self.services.guard_allows_id(&self.caller) {
                        // A caller past the guessing threshold learns nothing more: the
                        // IVR takes it for a wrong ID, counted once, as a lock-out.
                        core.handle_lookup(LookupResult::NotFound, None, true, Instant::now());
                        continue;
                    }
                    let directory = self.services.directory.clone();
                    self.questions.spawn_blocking(move || {
                        match directory.lookup(&tenant, &conference_id) {
                            Ok(Some(info)) => {
                                Answer::Lookup(LookupResult::Found(info.key()), Some(info))
                            }
                            Ok(None) => Answer::Lookup(LookupResult::NotFound, None),
                            Err(e) => {
                                tracing::warn!(error = %e, "directory lookup failed");
                                Answer::Lookup(LookupResult::Failed, None)
                            }
                        }
                    });
                }
                Step::VerifyPin { conference, pin } => {
                    if !self.services.guard_allows_pin(&self.caller, &conference) {
                        self.count(DtmfFailure::LockedOut);
                        core.handle_pin(PinResult::Refused, Instant::now());
                        continue;
                    }
                    let directory = self.services.directory.clone();
                    self.questions.spawn_blocking(move || {
                        let result =
                            match directory.verify_pin(&conference.tenant, &conference.id, &pin) {
                                Ok(true) => PinResult::Valid,
                                Ok(false) => PinResult::Invalid,
                                Err(e) => {
                                    tracing::warn!(error = %e, "PIN check failed");
                                    PinResult::Failed
                                }
                            };
                        Answer::Pin(result, conference)
                    });
                }
                Step::Join {
                    conference,
                    role,
                    found,
                } => {
                    tracing::info!(
                        call_id = %self.id.call_id,
                        tenant = conference.tenant.as_str(),
                        conference = conference.id.as_str(),
                        ?role,
                        "caller joins the meeting"
                    );
                    let wait_for_leader = found.as_ref().is_some_and(|info| info.wait_for_leader);
                    let info = MemberInfo {
                        calling: self.party.calling.clone(),
                        dialled: self.party.dialled.clone(),
                        organiser: found.as_ref().map(|info| info.display_name.clone()),
                        activity: Some(self.session.activity()),
                        quality: self.quality.as_ref().map(QualityReporter::view),
                        join_leave_tones: found.and_then(|info| info.join_leave_tones),
                    };
                    self.meeting = Some(self.services.conferences.join(
                        conference,
                        role,
                        wait_for_leader,
                        info,
                        self.meeting_tx.clone(),
                    ));
                }
                Step::LeaveMeeting => self.meeting = None,
                Step::JoinRoom(room) => {
                    if let Err(e) = self.session.join_room(room) {
                        tracing::warn!(call_id = %self.id.call_id, error = %e, "cannot join the mix");
                        core.handle_join_failed();
                    }
                }
                Step::SetSending(sending) => {
                    tracing::debug!(call_id = %self.id.call_id, held = !sending, "hold state changed");
                    self.session.set_sending(sending);
                }
                Step::SetRemote(remote) => self.session.set_remote(remote),
                Step::SetMuted(muted) => self.session.set_muted(muted),
                Step::MeetingDigit(digit) => {
                    if let Some(meeting) = &self.meeting {
                        meeting.digit(digit);
                    }
                }
                Step::Joined { conference, role } => {
                    let report = CallReport::Joined {
                        id: self.id.clone(),
                        conference,
                        role,
                    };
                    let _ = self.reports.send(report).await;
                }
                Step::Failed(failure) => self.count(failure),
                Step::HangUp(cause) => {
                    self.meeting = None;
                    let report = CallReport::HangUp {
                        id: self.id.clone(),
                        cause,
                    };
                    let _ = self.reports.send(report).await;
                    return false;
                }
            }
        }
        true
    }

    /// Plays `audio`; a prompt the bridge does not have ends at once.
    fn play(&mut self, core: &mut CallCore, audio: Audio) {
        let prompt = match audio {
            Audio::Prompt(id) => self.services.prompts.get(id),
            Audio::Count(count) => Some(Arc::new(self.services.counts.announce(count))),
            Audio::MusicOnHold => {
                drop(self.session.play(self.services.music_on_hold.clone(), true));
                self.playing = None;
                return;
            }
        };
        match prompt {
            Some(prompt) => self.playing = Some(self.session.play(prompt, false)),
            None => {
                self.playing = None;
                core.handle_play_done(Instant::now());
            }
        }
    }

    /// Counts a failed DTMF entry.
    fn count(&self, failure: DtmfFailure) {
        self.services.conferences.dtmf_failures.count(failure);
    }

    /// Publishes the session's counters and reception quality (once a second).
    fn publish_quality(&mut self) {
        if let Some(q) = &mut self.quality {
            q.publish(self.session.stats(), self.session.quality());
        }
    }
}

impl Drop for Hands {
    /// However the call ended, its session's last counts go into the totals.
    fn drop(&mut self) {
        if let Some(q) = self.quality.take() {
            q.finish(self.session.stats(), self.session.quality());
        }
    }
}

/// The digit a SIP INFO carries: `Ok(None)` for an INFO that is not DTMF at all,
/// `Err` for a DTMF body that does not parse.
pub(crate) fn info_digit(content_type: &str, body: &[u8]) -> Result<Option<Digit>, &'static str> {
    let media_type = content_type.split(';').next().unwrap_or_default().trim();
    if !media_type.eq_ignore_ascii_case("application/dtmf-relay")
        && !media_type.eq_ignore_ascii_case("application/dtmf")
    {
        return Ok(None);
    }
    parse_info(content_type, body)
        .map(|info| Some(info.digit))
        .map_err(|_| "malformed DTMF INFO body")
}
