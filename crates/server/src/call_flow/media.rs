//! A call's media task: its hands, not its head. It owns the RTP session and does what
//! the call's owner (the signaling task) commands: play, stop, join the mix, mute, hold.
//! It turns what the caller keys (RFC 4733 events, in-band tones, and SIP INFO digits
//! relayed to it) into one digit per press, and reports digits, the end of what plays
//! and the meeting's word back. It decides nothing.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dialbridge_conference::Digit;
use dialbridge_conference::dtmf::{
    CallDtmf, Combiner, DEFAULT_EVENT_TIMEOUT, GoertzelConfig, GoertzelDetector,
    TelephoneEventDecoder, ToneListener,
};
use dialbridge_media::{Activity, PlayDone, RoomId, RtpSession};
use dialbridge_sip::dialog::DialogId;
use tokio::sync::mpsc;

use super::{Audio, CallReport, Liveness};
use crate::conferences::ToMember;
use crate::metrics::{DtmfFailure, QUALITY_INTERVAL, QualityReporter, QualityView};
use crate::services::Services;

/// What the call's owner tells its media task.
#[derive(Debug, Clone)]
pub(crate) enum MediaCommand {
    /// Play `audio` (replacing what plays); its end is reported with `seq`.
    Play { audio: Audio, seq: u64 },
    /// Stop what plays; its end is not reported.
    Stop,
    /// Join this room's mix.
    JoinRoom(RoomId),
    /// Stop or start sending (hold).
    SetSending(bool),
    /// Send to this address from now on.
    SetRemote(SocketAddr),
    /// Mute or unmute the caller in the mix.
    SetMuted(bool),
    /// A digit that came by SIP INFO, to be combined with the other sources.
    InfoDigit(Digit),
}

/// What a call's media task reports.
#[derive(Debug)]
pub(crate) enum MediaEvent {
    /// A key press, once however many ways it came.
    Digit(Digit),
    /// What was commanded with this `seq` ended.
    PlayDone { seq: u64 },
    /// The meeting's word.
    Meeting(ToMember),
    /// The mix would not take the caller.
    JoinFailed,
    /// A telephone-event payload that does not parse (counted, nothing else).
    Malformed,
    /// No RTP or RTCP came for this long: the caller is gone.
    Silent(Duration),
}

/// The call's line to its media task.
#[derive(Debug)]
pub(crate) struct MediaLink {
    pub commands: mpsc::UnboundedSender<MediaCommand>,
    /// Where the meeting writes to the member.
    pub meeting_tx: mpsc::Sender<ToMember>,
    /// Whether the caller is talking, for the meeting's roster.
    pub activity: Activity,
    /// The call's reception quality, for the meeting's roster.
    pub quality: QualityView,
    task: tokio::task::AbortHandle,
}

impl MediaLink {
    /// Sends a command; a task already gone has nothing left to do.
    pub fn send(&self, command: MediaCommand) {
        let _ = self.commands.send(command);
    }
}

impl Drop for MediaLink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts the media task of call `id` on its RTP session. It reports to `reports`.
pub(crate) fn spawn(
    id: DialogId,
    mut session: RtpSession,
    services: &Arc<Services>,
    reports: mpsc::Sender<CallReport>,
) -> MediaLink {
    let (commands, rx) = mpsc::unbounded_channel();
    let (meeting_tx, meeting_rx) = mpsc::channel(16);
    // Digits the room's clock finds in the caller's audio while it is in the mix.
    let (tones_tx, tones_rx) = mpsc::channel(16);
    let quality = services.conferences.quality.reporter();
    let view = quality.view();
    let activity = session.activity();
    let inbound = session.take_inbound();
    let task = Task {
        id,
        session,
        services: services.clone(),
        playing: None,
        dtmf: CallDtmf::new(
            TelephoneEventDecoder::new(DEFAULT_EVENT_TIMEOUT),
            GoertzelDetector::new(GoertzelConfig::default()),
            Combiner::default(),
        ),
        reports,
        quality: Some(quality),
        liveness: Liveness::new(services.media_timeouts, Instant::now()),
        tones: tones_tx,
    };
    let handle = tokio::spawn(task.run(rx, meeting_rx, tones_rx, inbound));
    MediaLink {
        commands,
        meeting_tx,
        activity,
        quality: view,
        task: handle.abort_handle(),
    }
}

struct Task {
    id: DialogId,
    session: RtpSession,
    services: Arc<Services>,
    /// What plays, and the `seq` its end is reported with.
    playing: Option<(PlayDone, u64)>,
    dtmf: CallDtmf,
    reports: mpsc::Sender<CallReport>,
    /// Publishes the session's loss and jitter; taken for the last publish on drop.
    quality: Option<QualityReporter>,
    /// Whether the caller still sends anything.
    liveness: Liveness,
    /// Where the in-band detector the room runs for this call sends its digits.
    tones: mpsc::Sender<(Digit, Instant)>,
}

impl Task {
    async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<MediaCommand>,
        mut meeting: mpsc::Receiver<ToMember>,
        mut tones: mpsc::Receiver<(Digit, Instant)>,
        inbound: Option<mpsc::Receiver<dialbridge_media::InboundRtp>>,
    ) {
        let Some(mut inbound) = inbound else {
            return;
        };
        let mut quality_tick = tokio::time::interval(QUALITY_INTERVAL);
        let telephone_event = self.session.telephone_event_pt();
        let codec = self.session.codec();
        // In-band DTMF, whether or not telephone-event was negotiated: a PSTN gateway
        // may negotiate it and still pass the keys as tones, and `CallDtmf` counts a
        // press heard both ways once. The engine queues the audio for us (it is never
        // told `set_deliver_audio(false)`), before its squelch, which only keeps tones
        // out of the mix. The Goertzel detector works on 8 kHz PCM, so G.722 and Opus
        // audio is decoded and decimated to it; G.711 is decoded as it is. In the mix,
        // the room's clock, which decodes the audio anyway, runs the detector for us
        // (`ToneListener`) and only its digits come here: no packet is queued.
        let mut in_band =
            dialbridge_media::Transcoder::new(codec, dialbridge_media::SampleRate::Hz8000).ok();
        let mut pcm = [0i16; dialbridge_media::FRAME_SAMPLES];
        loop {
            let sleep = async {
                match self.dtmf.poll_timeout() {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            let play_done = async {
                match self.playing.as_mut() {
                    Some((done, _)) => {
                        let _ = done.await;
                    }
                    None => std::future::pending().await,
                }
            };
            let event = tokio::select! {
                packet = inbound.recv() => {
                    let Some(packet) = packet else { return };
                    let now = Instant::now();
                    if Some(packet.payload_type) == telephone_event {
                        match self.dtmf.handle_telephone_event(
                            &packet.payload, packet.timestamp, packet.sequence, packet.marker, now,
                        ) {
                            Ok(digit) => digit.map(MediaEvent::Digit),
                            Err(_) => Some(MediaEvent::Malformed),
                        }
                    } else if let Some(decoder) = in_band
                        .as_mut()
                        .filter(|_| packet.payload_type == codec.payload_type())
                    {
                        let n = decoder.decode_to_mix(&packet.payload, &mut pcm);
                        self.dtmf
                            .handle_audio(pcm.get(..n).unwrap_or_default(), now)
                            .map(MediaEvent::Digit)
                    } else {
                        None
                    }
                }
                command = commands.recv() => match command {
                    Some(command) => self.carry_out(command),
                    None => return,
                },
                _ = play_done => self.playing.take().map(|(_, seq)| MediaEvent::PlayDone { seq }),
                Some(message) = meeting.recv() => Some(MediaEvent::Meeting(message)),
                Some((digit, at)) = tones.recv() => {
                    self.dtmf.handle_in_band_digit(digit, at).map(MediaEvent::Digit)
                }
                _ = sleep => {
                    self.dtmf.handle_timeout(Instant::now());
                    None
                }
                _ = quality_tick.tick() => {
                    let stats = self.session.stats();
                    self.publish_quality(stats);
                    self.liveness
                        .observe(stats.received + stats.rtcp_received, Instant::now())
                        .map(MediaEvent::Silent)
                }
            };
            if let Some(event) = event {
                let report = CallReport::Media {
                    id: self.id.clone(),
                    event,
                };
                if self.reports.send(report).await.is_err() {
                    return;
                }
            }
        }
    }

    /// Does what the owner commanded; what it has to report comes back.
    fn carry_out(&mut self, command: MediaCommand) -> Option<MediaEvent> {
        match command {
            MediaCommand::Play { audio, seq } => return self.play(audio, seq),
            MediaCommand::Stop => {
                self.session.stop();
                self.playing = None;
            }
            MediaCommand::JoinRoom(room) => {
                self.session.stop();
                self.playing = None;
                if let Err(e) = self.session.join_room(room) {
                    tracing::warn!(call_id = %self.id.call_id, error = %e, "cannot join the mix");
                    return Some(MediaEvent::JoinFailed);
                }
                let tones = self.tones.clone();
                let listener = ToneListener::new(
                    GoertzelDetector::new(GoertzelConfig::default()),
                    move |digit, at| {
                        // A full queue (16 unread presses) drops the press: the
                        // clock never waits on a call.
                        let _ = tones.try_send((digit, at));
                    },
                );
                self.session.set_in_band_listener(Some(Box::new(listener)));
            }
            MediaCommand::SetSending(sending) => {
                tracing::debug!(call_id = %self.id.call_id, held = !sending, "hold state changed");
                self.session.set_sending(sending);
                self.liveness.set_held(!sending, Instant::now());
            }
            MediaCommand::SetRemote(remote) => self.session.set_remote(remote),
            MediaCommand::SetMuted(muted) => self.session.set_muted(muted),
            MediaCommand::InfoDigit(digit) => {
                return self
                    .dtmf
                    .handle_info_digit(digit, Instant::now())
                    .map(MediaEvent::Digit);
            }
        }
        None
    }

    /// Plays `audio`; a prompt the bridge does not have ends at once.
    fn play(&mut self, audio: Audio, seq: u64) -> Option<MediaEvent> {
        let prompt = match audio {
            Audio::Prompt(id) => self.services.prompts.get(id),
            Audio::Notice(notice) => self.services.prompts.notice(notice),
            Audio::Count(count) => Some(Arc::new(self.services.counts.announce(count))),
            Audio::MusicOnHold => {
                drop(self.session.play(self.services.music_on_hold.clone(), true));
                self.playing = None;
                return None;
            }
        };
        match prompt {
            Some(prompt) => {
                self.playing = Some((self.session.play(prompt, false), seq));
                None
            }
            None => {
                self.playing = None;
                Some(MediaEvent::PlayDone { seq })
            }
        }
    }

    /// Publishes the session's counters (read once a tick) and reception quality.
    fn publish_quality(&mut self, stats: dialbridge_media::SessionStats) {
        if let Some(q) = &mut self.quality {
            q.publish(stats, self.session.quality());
        }
    }
}

impl Drop for Task {
    /// However the call ended, its session's last counts go into the totals.
    fn drop(&mut self) {
        if let Some(q) = self.quality.take() {
            q.finish(self.session.stats(), self.session.quality());
        }
    }
}

/// Counts a malformed telephone-event (what [`MediaEvent::Malformed`] reports).
pub(crate) fn count_malformed(services: &Services) {
    services
        .conferences
        .dtmf_failures
        .count(DtmfFailure::Malformed);
}
