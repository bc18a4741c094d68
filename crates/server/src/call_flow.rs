//! A call's own task, from "answered" to "in the meeting" and on. It plays the prompts,
//! turns what the caller keys (RFC 4733 events, SIP INFO relayed by the signaling task,
//! in-band tones when no telephone-event was negotiated) into digits for the entry IVR,
//! asks the organiser directory what the IVR wants to know, joins the meeting the IVR
//! chooses, and carries the meeting's word back to the caller (admitted, muted, lobby,
//! rejected). Decisions live in the IVR and the room; this task only moves events.

use std::sync::Arc;
use std::time::Instant;

use dialbridge_conference::Digit;
use dialbridge_conference::directory::ConferenceInfo;
use dialbridge_conference::dtmf::{
    CallDtmf, Combiner, DEFAULT_EVENT_TIMEOUT, GoertzelConfig, GoertzelDetector,
    TelephoneEventDecoder, parse_info,
};
use dialbridge_conference::guard::CallerKey;
use dialbridge_conference::ivr::{
    Action, ConferenceKey, Ivr, IvrConfig, LookupResult, PinResult, PromptId, Role, TenantId,
};
use dialbridge_conference::room::RejectReason;
use dialbridge_media::{PlayDone, Prompt, RtpSession};
use dialbridge_sip::dialog::DialogId;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::conferences::{MemberInfo, Membership, ToMember};
use crate::metrics::{DtmfFailure, QUALITY_INTERVAL, QualityReporter};
use crate::refusal::{Cause, EndCause};
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

/// What is playing to the caller, and what its end means.
enum Playing {
    /// An IVR prompt: its end goes to the IVR.
    Ivr(PromptId),
    /// The lobby announcement: music on hold follows.
    Lobby,
    /// The reason a meeting turned the caller away: hang up when it ends.
    Rejection(RejectReason),
    /// Anything else (joined, muted, the count...): nothing follows.
    Other,
}

/// Who called which number, for the meeting's roster.
#[derive(Debug, Clone)]
pub(crate) struct CallParty {
    pub calling: String,
    pub dialled: String,
}

struct CallTask {
    id: DialogId,
    party: CallParty,
    session: RtpSession,
    services: Arc<Services>,
    caller: CallerKey,
    ivr: Ivr,
    dtmf: CallDtmf,
    playing: Option<(Playing, PlayDone)>,
    questions: JoinSet<Answer>,
    /// What the last successful lookup found (the meeting's lobby setting).
    found: Option<ConferenceInfo>,
    /// The guard refused the ID just keyed: the IVR's failed entry that follows is a
    /// lock-out (already counted), not a wrong ID.
    locked_out_entry: bool,
    meeting: Option<Membership>,
    /// The meeting and role the IVR chose (for the call detail record).
    joining: Option<(ConferenceKey, Role)>,
    meeting_tx: mpsc::Sender<ToMember>,
    reports: mpsc::Sender<CallReport>,
    held: bool,
    /// Publishes the session's loss and jitter; taken for the last publish on drop.
    quality: Option<QualityReporter>,
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
    let now = Instant::now();
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
    let mut task = CallTask {
        id,
        party,
        session,
        services,
        caller,
        ivr: Ivr::new(config, now),
        // Digits from RFC 4733 events, SIP INFO and, for trunks that offer no
        // telephone-event, tones detected in the audio; one press counts once.
        dtmf: CallDtmf::new(
            TelephoneEventDecoder::new(DEFAULT_EVENT_TIMEOUT),
            GoertzelDetector::new(GoertzelConfig::default()),
            Combiner::default(),
        ),
        playing: None,
        questions: JoinSet::new(),
        found: None,
        locked_out_entry: false,
        meeting: None,
        joining: None,
        meeting_tx,
        reports,
        held: false,
        quality: Some(quality),
    };
    let mut quality_tick = tokio::time::interval(QUALITY_INTERVAL);
    let telephone_event = task.session.telephone_event_pt();
    let codec = task.session.codec();
    // In-band DTMF (no telephone-event negotiated): the Goertzel detector works on
    // 8 kHz PCM, so G.722 and Opus audio is decoded and decimated to it; G.711 is
    // decoded as it is.
    let mut in_band = match telephone_event {
        Some(_) => None,
        None => dialbridge_media::Transcoder::new(codec, dialbridge_media::SampleRate::Hz8000).ok(),
    };
    let mut pcm = [0i16; dialbridge_media::FRAME_SAMPLES];

    loop {
        if !task.carry_out_ivr().await {
            return;
        }
        let deadline = [task.ivr.poll_timeout(), task.dtmf.poll_timeout()]
            .into_iter()
            .flatten()
            .min();
        let sleep = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        let prompt_done = async {
            match task.playing.as_mut() {
                Some((_, done)) => {
                    let _ = done.await;
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            packet = inbound.recv() => {
                let Some(packet) = packet else { return };
                let now = Instant::now();
                let digit = if Some(packet.payload_type) == telephone_event {
                    task.dtmf
                        .handle_telephone_event(
                            &packet.payload, packet.timestamp, packet.sequence, packet.marker, now,
                        )
                        .unwrap_or_else(|_| {
                            task.count(DtmfFailure::Malformed);
                            None
                        })
                } else if let Some(decoder) = in_band
                    .as_mut()
                    .filter(|_| packet.payload_type == codec.payload_type())
                {
                    let n = decoder.decode_to_mix(&packet.payload, &mut pcm);
                    task.dtmf.handle_audio(pcm.get(..n).unwrap_or_default(), now)
                } else {
                    None
                };
                if let Some(digit) = digit {
                    task.handle_digit(digit, now);
                }
            }
            input = inputs.recv() => match input {
                Some(CallInput::Digit(digit)) => {
                    let now = Instant::now();
                    if let Some(digit) = task.dtmf.handle_info_digit(digit, now) {
                        task.handle_digit(digit, now);
                    }
                }
                Some(CallInput::Media { held, remote }) => task.handle_media_change(held, remote),
                None => return,
            },
            _ = prompt_done => {
                if !task.handle_prompt_done().await {
                    return;
                }
            }
            Some(message) = meeting_rx.recv() => {
                if !task.handle_meeting(message).await {
                    return;
                }
            }
            Some(answer) = task.questions.join_next(), if !task.questions.is_empty() => {
                task.handle_answer(answer);
            }
            _ = sleep => {
                let now = Instant::now();
                task.dtmf.handle_timeout(now);
                // An entry that timed out comes back as Action::EntryFailed.
                task.ivr.handle_timeout(now);
            }
            _ = quality_tick.tick() => task.publish_quality(),
        }
    }
}

impl CallTask {
    /// Carries out everything the IVR asked for. `false`: the call is over.
    async fn carry_out_ivr(&mut self) -> bool {
        while let Some(action) = self.ivr.poll_action() {
            match action {
                Action::EntryFailed(failure) => {
                    if !std::mem::take(&mut self.locked_out_entry) {
                        self.count(DtmfFailure::of(failure));
                    }
                }
                Action::PlayPrompt { prompt, .. } => {
                    if let Some(audio) = self.services.prompts.get(prompt) {
                        self.play(Playing::Ivr(prompt), audio);
                    }
                }
                Action::StopPrompt => {
                    self.session.stop();
                    self.playing = None;
                }
                Action::LookupConference {
                    tenant,
                    conference_id,
                } => {
                    if !self.services.guard_allows_id(&self.caller) {
                        self.count(DtmfFailure::LockedOut);
                        // A caller past the guessing threshold learns nothing more. The
                        // IVR takes it for a wrong ID; counted once, as a lock-out.
                        self.locked_out_entry = true;
                        self.ivr
                            .handle_lookup_result(LookupResult::NotFound, Instant::now());
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
                Action::VerifyPin { conference, pin } => {
                    if !self.services.guard_allows_pin(&self.caller, &conference) {
                        self.count(DtmfFailure::LockedOut);
                        self.ivr
                            .handle_pin_result(PinResult::Refused, Instant::now());
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
                Action::Join { conference, role } => {
                    tracing::info!(
                        call_id = %self.id.call_id,
                        tenant = conference.tenant.as_str(),
                        conference = conference.id.as_str(),
                        ?role,
                        "caller joins the meeting"
                    );
                    let found = self.found.as_ref().filter(|info| info.key() == conference);
                    let wait_for_leader = found.is_some_and(|info| info.wait_for_leader);
                    let info = MemberInfo {
                        calling: self.party.calling.clone(),
                        dialled: self.party.dialled.clone(),
                        organiser: found.map(|info| info.display_name.clone()),
                        activity: Some(self.session.activity()),
                        quality: self.quality.as_ref().map(QualityReporter::view),
                        join_leave_tones: found.and_then(|info| info.join_leave_tones),
                    };
                    self.joining = Some((conference.clone(), role));
                    self.meeting = Some(self.services.conferences.join(
                        conference,
                        role,
                        wait_for_leader,
                        info,
                        self.meeting_tx.clone(),
                    ));
                }
                Action::Hangup { reason } => {
                    self.hang_up(reason.into()).await;
                    return false;
                }
            }
        }
        true
    }

    fn handle_digit(&mut self, digit: Digit, now: Instant) {
        match &self.meeting {
            Some(meeting) => meeting.digit(digit),
            None => self.ivr.handle_digit(digit, now),
        }
    }

    fn handle_answer(&mut self, answer: Result<Answer, tokio::task::JoinError>) {
        let now = Instant::now();
        match answer {
            Ok(Answer::Lookup(result, info)) => {
                if result == LookupResult::NotFound {
                    self.services.guard_wrong_id(&self.caller);
                }
                self.found = info;
                self.ivr.handle_lookup_result(result, now);
            }
            Ok(Answer::Pin(result, conference)) => {
                self.services
                    .guard_pin_result(&self.caller, &conference, result);
                self.ivr.handle_pin_result(result, now);
            }
            Err(_) => self.ivr.handle_lookup_result(LookupResult::Failed, now),
        }
    }

    /// A prompt ended. `false`: the call is over.
    async fn handle_prompt_done(&mut self) -> bool {
        let Some((what, _)) = self.playing.take() else {
            return true;
        };
        match what {
            Playing::Ivr(prompt) => self.ivr.handle_prompt_finished(prompt, Instant::now()),
            Playing::Lobby => {
                // Music until the leader comes; the meeting's Admitted stops it.
                drop(self.session.play(self.services.music_on_hold.clone(), true));
            }
            Playing::Rejection(reason) => {
                self.hang_up(reason.into()).await;
                return false;
            }
            Playing::Other => {}
        }
        true
    }

    /// The meeting's word. `false`: the call is over.
    async fn handle_meeting(&mut self, message: ToMember) -> bool {
        match message {
            ToMember::Admitted { room } => {
                self.session.stop();
                self.playing = None;
                if let Err(e) = self.session.join_room(room) {
                    tracing::warn!(call_id = %self.id.call_id, error = %e, "cannot join the mix");
                    self.hang_up(EndCause::ConferenceUnavailable.into()).await;
                    return false;
                }
                // The room's own "joined" prompt follows as a Play.
                if let Some((conference, role)) = self.joining.clone() {
                    let _ = self
                        .reports
                        .send(CallReport::Joined {
                            id: self.id.clone(),
                            conference: conference.id,
                            role,
                        })
                        .await;
                }
            }
            ToMember::Rejected { reason } => {
                self.meeting = None;
                match self.services.prompts.get(reason.prompt()) {
                    Some(audio) => self.play(Playing::Rejection(reason), audio),
                    None => {
                        self.hang_up(reason.into()).await;
                        return false;
                    }
                }
            }
            ToMember::Muted(muted) => self.session.set_muted(muted),
            ToMember::Play(prompt) => {
                if let Some(audio) = self.services.prompts.get(prompt) {
                    let what = if prompt == PromptId::WaitingForLeader {
                        Playing::Lobby
                    } else {
                        Playing::Other
                    };
                    self.play(what, audio);
                }
            }
            ToMember::Count(count) => {
                let audio = Arc::new(self.services.counts.announce(count));
                self.play(Playing::Other, audio);
            }
            ToMember::Kicked => {
                self.hang_up(EndCause::Kicked.into()).await;
                return false;
            }
        }
        true
    }

    /// A re-INVITE or UPDATE changed the media: hold (RFC 3264 §8.4: the far end wants
    /// none of our media) or a new address.
    fn handle_media_change(&mut self, held: bool, remote: Option<std::net::SocketAddr>) {
        if let Some(remote) = remote {
            self.session.set_remote(remote);
        }
        if held != self.held {
            tracing::debug!(call_id = %self.id.call_id, held, "hold state changed");
            self.held = held;
            self.session.set_sending(!held);
        }
    }

    fn play(&mut self, what: Playing, audio: Arc<Prompt>) {
        self.playing = Some((what, self.session.play(audio, false)));
    }

    async fn hang_up(&mut self, cause: Cause) {
        self.meeting = None;
        let _ = self
            .reports
            .send(CallReport::HangUp {
                id: self.id.clone(),
                cause,
            })
            .await;
    }
}

/// What the call measures, for `/metrics` and the meeting's roster.
impl CallTask {
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

impl Drop for CallTask {
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
