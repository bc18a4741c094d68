//! Live conferences. Each meeting is one task that owns its [`Room`] (roles, lobby,
//! size limit, lock, keypad controls) and its mixing room in the media engine; the
//! tasks of the calls in it talk to it by messages. A meeting exists while someone is
//! in it: idle meetings cost nothing, not even a timer. A meeting can be recorded
//! (its full mix, to a WAV file the engine writes on its own thread) while it lasts.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use dialbridge_conference::Digit;
use dialbridge_conference::ivr::{ConferenceKey, PromptId, Role};
use dialbridge_conference::room::{MemberId, RejectReason, Room, RoomAction, RoomConfig};
use dialbridge_media::{MediaEngine, Prompt, RoomId, Tone};
use tokio::sync::{mpsc, oneshot};

mod front;

use crate::cdr::Timestamp;
use crate::dial_out::{DialOutId, DialOutRefusal};
use crate::meeting_view::{ConferenceView, LiveError, ParticipantView, RecordingView};
use crate::metrics::{CallQuality, DtmfFailures, Gauges, QualityView};

/// What a meeting tells one of its calls.
#[derive(Debug, Clone)]
pub enum ToMember {
    /// Connected to the mix of `room`.
    Admitted { room: RoomId },
    /// Not (or no longer) let in: play the reason's prompt, then hang up.
    Rejected { reason: RejectReason },
    /// Muted or unmuted into the mix.
    Muted(bool),
    /// Play this prompt to the member only.
    Play(PromptId),
    /// Tell the member how many are in the meeting.
    Count(usize),
    /// An administrator removed the member: hang up.
    Kicked,
}

/// A meeting's request to call a number.
#[derive(Debug)]
pub struct DialOutRequest {
    pub conference: ConferenceKey,
    /// The meeting's organiser (the directory's id), for a per-organiser route.
    pub organiser: Option<String>,
    /// As keyed or posted: `+14255557000`, or the digits of `*9` (country code first).
    pub number: String,
    /// The leader who keyed it, who hears how it goes; `None` from the API.
    pub leader: Option<mpsc::Sender<ToMember>>,
    /// The API's answer: the dial-out's id once it is placed, or why not.
    pub reply: Option<oneshot::Sender<Result<DialOutId, DialOutRefusal>>>,
}

/// Who a member is, for the admin API and the dashboard.
#[derive(Debug, Clone)]
pub struct MemberInfo {
    /// The calling party (From user part).
    pub calling: String,
    /// The number dialled.
    pub dialled: String,
    /// The meeting's organiser's name, from the directory.
    pub organiser: Option<String>,
    /// ... and id (for a per-organiser dial-out route).
    pub organiser_id: Option<String>,
    /// Whether the member is talking, as the mixer last saw it.
    pub activity: Option<dialbridge_media::Activity>,
    /// The call's reception quality, as it last published it.
    pub quality: Option<QualityView>,
    /// The conference's join and leave tones as the directory had them when this call
    /// looked it up; `None`: the bridge's default.
    pub join_leave_tones: Option<bool>,
}

pub(crate) enum ToMeeting {
    Join {
        member: MemberId,
        role: Role,
        tx: mpsc::Sender<ToMember>,
        info: MemberInfo,
    },
    Describe {
        reply: oneshot::Sender<ConferenceView>,
    },
    Mute {
        member: MemberId,
        muted: bool,
        reply: oneshot::Sender<bool>,
    },
    Kick {
        member: MemberId,
        reply: oneshot::Sender<bool>,
    },
    Lock {
        locked: bool,
        reply: oneshot::Sender<()>,
    },
    Record {
        on: bool,
        reply: oneshot::Sender<Result<RecordingView, LiveError>>,
    },
    Leave {
        member: MemberId,
    },
    Digit {
        member: MemberId,
        digit: Digit,
    },
    DialOut {
        number: String,
        reply: oneshot::Sender<Result<DialOutId, DialOutRefusal>>,
    },
}

/// Settings every meeting shares.
#[derive(Debug, Clone)]
pub struct MeetingSettings {
    pub max_members: usize,
    /// A beep to everyone when someone is admitted or leaves.
    pub join_leave_tones: bool,
    /// Where recordings go.
    pub recordings_dir: Arc<Path>,
}

/// Every live meeting, by conference.
pub struct Conferences {
    hub: Arc<Hub>,
    /// What the calls publish about their RTP, for the roster and `/metrics`.
    pub quality: Arc<CallQuality>,
    /// Failed DTMF entries of the calls' entry IVRs, for `/metrics`.
    pub dtmf_failures: Arc<DtmfFailures>,
    dial_out_rx: Mutex<Option<mpsc::UnboundedReceiver<DialOutRequest>>>,
}

/// What starting a meeting takes, shared with the tasks that start them (the calls'
/// joins, and in a cluster the fronts and the legs from other nodes).
pub(crate) struct Hub {
    meetings: Registry,
    /// Which meeting each member is in, for the admin API's mute and kick.
    members: Arc<Mutex<HashMap<MemberId, ConferenceKey>>>,
    /// In a cluster: each meeting this node has callers of but is not (yet) the home
    /// of, by conference ([`front`]).
    fronts: Registry,
    gauges: Arc<Gauges>,
    media: MediaEngine,
    settings: MeetingSettings,
    next_member: AtomicU64,
    join_beep: Arc<Prompt>,
    leave_beep: Arc<Prompt>,
    /// Where meetings send their dial-outs: the signaling task places them.
    dial_out_tx: mpsc::UnboundedSender<DialOutRequest>,
    /// The other nodes, when there are (`[shared] redis`); set once at start.
    cluster: std::sync::OnceLock<crate::cluster::Cluster>,
}

/// Inboxes by conference.
type Registry = Arc<Mutex<HashMap<ConferenceKey, mpsc::UnboundedSender<ToMeeting>>>>;

impl std::fmt::Debug for Conferences {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conferences")
            .field("meetings", &self.hub.meetings.lock().map(|m| m.len()).ok())
            .finish_non_exhaustive()
    }
}

/// One call's place in a meeting. Dropping it (the call ended, however it ended)
/// leaves the meeting.
#[derive(Debug)]
pub struct Membership {
    member: MemberId,
    meeting: mpsc::UnboundedSender<ToMeeting>,
    index: Arc<Mutex<HashMap<MemberId, ConferenceKey>>>,
}

impl Membership {
    /// A digit the member keyed in the meeting (the in-call controls).
    pub fn digit(&self, digit: Digit) {
        let _ = self.meeting.send(ToMeeting::Digit {
            member: self.member,
            digit,
        });
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        lock(&self.index).remove(&self.member);
        let _ = self.meeting.send(ToMeeting::Leave {
            member: self.member,
        });
    }
}

/// How long the admin API waits for a meeting's answer: a meeting here answers at once;
/// one homed on another node answers over a leg, which may be re-forming.
const LIVE_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// A meeting's answer to the admin API, or why none came.
async fn live_answer<T>(answer: oneshot::Receiver<T>) -> Result<T, LiveError> {
    match tokio::time::timeout(LIVE_WAIT, answer).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(_)) => Err(LiveError::Unavailable("the meeting ended".into())),
        Err(_) => Err(LiveError::Unavailable(
            "the meeting did not answer in time".into(),
        )),
    }
}

/// A map's lock, also after a panic elsewhere (the maps stay consistent: every update
/// is one insert or remove).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

impl Conferences {
    pub fn new(media: MediaEngine, settings: MeetingSettings, gauges: Arc<Gauges>) -> Conferences {
        let (dial_out_tx, dial_out_rx) = mpsc::unbounded_channel();
        Conferences {
            hub: Arc::new(Hub {
                dial_out_tx,
                meetings: Arc::default(),
                members: Arc::default(),
                fronts: Arc::default(),
                gauges,
                media,
                settings,
                next_member: AtomicU64::new(1),
                join_beep: Arc::new(Tone::join_beep()),
                leave_beep: Arc::new(Tone::leave_beep()),
                cluster: std::sync::OnceLock::new(),
            }),
            dial_out_rx: Mutex::new(Some(dial_out_rx)),
            quality: Arc::default(),
            dtmf_failures: Arc::default(),
        }
    }

    /// Joins this node to the others: meetings get homes, callers of a meeting homed
    /// elsewhere join it through a leg, and member ids start at `first_member` (unique
    /// to this node). Once, at start, before any call.
    pub fn join_cluster(&self, cluster: crate::cluster::Cluster, first_member: u64) {
        self.hub.next_member.store(first_member, Ordering::Relaxed);
        let _ = self.hub.cluster.set(cluster);
    }

    /// Serves a leg another node placed to this one: its members join the meeting
    /// here, which this node is the home of.
    pub fn serve_leg(&self, incoming: crate::cluster::IncomingLeg) {
        tokio::spawn(front::serve_leg(self.hub.clone(), incoming));
    }

    /// Asks to join `conference` as `role`; the answer (admitted, lobby prompt, or
    /// rejected) comes on `tx`. `wait_for_leader` is the conference's setting from the
    /// directory, used when this join starts the meeting.
    pub fn join(
        &self,
        conference: ConferenceKey,
        role: Role,
        wait_for_leader: bool,
        info: MemberInfo,
        tx: mpsc::Sender<ToMember>,
    ) -> Membership {
        let member = MemberId(self.hub.next_member.fetch_add(1, Ordering::Relaxed));
        lock(&self.hub.members).insert(member, conference.clone());
        let join = Join {
            member,
            role,
            wait_for_leader,
            tx,
            info,
        };
        let meeting = match self.hub.cluster.get() {
            // A meeting here means this node is its home; else its front finds the home.
            Some(_) => match self.hub.try_join_local(&conference, join) {
                Ok(inbox) => inbox,
                Err(join) => front::join(&self.hub, conference, *join),
            },
            None => self.hub.join_local(conference, join),
        };
        Membership {
            member,
            meeting,
            index: self.hub.members.clone(),
        }
    }

    /// The meetings' dial-out requests, for the one task that places them (taken once).
    pub fn take_dial_out_requests(&self) -> Option<mpsc::UnboundedReceiver<DialOutRequest>> {
        lock(&self.dial_out_rx).take()
    }

    /// Asks a meeting in progress to call `number` and invite it in (the admin API's
    /// dial-out): its id once placed, or why not.
    pub async fn dial_out(
        &self,
        conference: ConferenceKey,
        number: String,
    ) -> Result<DialOutId, DialOutRefusal> {
        let name = format!("{}/{}", conference.tenant.as_str(), conference.id.as_str());
        let inbox = self
            .meeting(&conference)
            .map_err(|_| DialOutRefusal::NoMeeting(name.clone()))?;
        let (reply, answer) = oneshot::channel();
        inbox
            .send(ToMeeting::DialOut { number, reply })
            .map_err(|_| DialOutRefusal::NoMeeting(name.clone()))?;
        live_answer(answer)
            .await
            .map_err(|_| DialOutRefusal::NoMeeting(name))?
    }

    /// Every meeting in progress, as the admin API shows it.
    pub async fn describe(&self) -> Vec<ConferenceView> {
        // Meetings homed here, and (through their fronts) those this node has callers
        // of that are homed elsewhere.
        let mut inboxes: Vec<_> = lock(&self.hub.meetings).values().cloned().collect();
        inboxes.extend(lock(&self.hub.fronts).values().cloned());
        let mut views = Vec::with_capacity(inboxes.len());
        for inbox in inboxes {
            let (reply, answer) = oneshot::channel();
            if inbox.send(ToMeeting::Describe { reply }).is_ok()
                && let Ok(view) = live_answer(answer).await
            {
                views.push(view);
            }
        }
        views.sort_by(|a, b| (&a.tenant, &a.conference_id).cmp(&(&b.tenant, &b.conference_id)));
        views
    }

    /// The inbox of the meeting `member` is in.
    fn meeting_of(&self, member: MemberId) -> Result<mpsc::UnboundedSender<ToMeeting>, LiveError> {
        let key = lock(&self.hub.members)
            .get(&member)
            .cloned()
            .ok_or(LiveError::NoSuchParticipant(member.0))?;
        // A member of a meeting homed elsewhere is reached through its front.
        let meeting = lock(&self.hub.meetings).get(&key).cloned();
        meeting
            .or_else(|| lock(&self.hub.fronts).get(&key).cloned())
            .ok_or(LiveError::NoSuchParticipant(member.0))
    }

    /// Mutes or unmutes a member, as its meeting's `*6` would.
    pub async fn mute(&self, member: MemberId, muted: bool) -> Result<(), LiveError> {
        self.on_member(member, |reply| ToMeeting::Mute {
            member,
            muted,
            reply,
        })
        .await
    }

    /// Ends a member's call.
    pub async fn kick(&self, member: MemberId) -> Result<(), LiveError> {
        self.on_member(member, |reply| ToMeeting::Kick { member, reply })
            .await
    }

    /// Asks `member`'s meeting to act on it: the meeting of a call of this node, or of
    /// one a leg brought here; else (a caller on another node of a meeting homed
    /// elsewhere) each meeting this node is a front of, until one knows the member.
    async fn on_member(
        &self,
        member: MemberId,
        message: impl Fn(oneshot::Sender<bool>) -> ToMeeting,
    ) -> Result<(), LiveError> {
        if let Ok(inbox) = self.meeting_of(member) {
            let (reply, answer) = oneshot::channel();
            let _ = inbox.send(message(reply));
            return match live_answer(answer).await? {
                true => Ok(()),
                false => Err(LiveError::NoSuchParticipant(member.0)),
            };
        }
        let fronts: Vec<_> = lock(&self.hub.fronts).values().cloned().collect();
        for inbox in fronts {
            let (reply, answer) = oneshot::channel();
            if inbox.send(message(reply)).is_ok() && live_answer(answer).await == Ok(true) {
                return Ok(());
            }
        }
        Err(LiveError::NoSuchParticipant(member.0))
    }

    /// Locks or unlocks a meeting in progress.
    pub async fn lock(&self, conference: ConferenceKey, locked: bool) -> Result<(), LiveError> {
        let inbox = self.meeting(&conference)?;
        let (reply, answer) = oneshot::channel();
        let _ = inbox.send(ToMeeting::Lock { locked, reply });
        live_answer(answer).await
    }

    /// Starts or stops recording a meeting in progress.
    pub async fn record(
        &self,
        conference: ConferenceKey,
        on: bool,
    ) -> Result<RecordingView, LiveError> {
        let inbox = self.meeting(&conference)?;
        let (reply, answer) = oneshot::channel();
        let _ = inbox.send(ToMeeting::Record { on, reply });
        live_answer(answer).await?
    }

    /// The inbox of a meeting in progress: its task here, or the front that reaches its
    /// home on another node.
    fn meeting(
        &self,
        conference: &ConferenceKey,
    ) -> Result<mpsc::UnboundedSender<ToMeeting>, LiveError> {
        let here = lock(&self.hub.meetings).get(conference).cloned();
        here.or_else(|| lock(&self.hub.fronts).get(conference).cloned())
            .ok_or_else(|| LiveError::NoSuchConference {
                tenant: conference.tenant.as_str().to_string(),
                id: conference.id.as_str().to_string(),
            })
    }
}

/// One join, as a call (or a leg, for a member of another node) asks it.
pub(crate) struct Join {
    pub member: MemberId,
    pub role: Role,
    pub wait_for_leader: bool,
    pub tx: mpsc::Sender<ToMember>,
    pub info: MemberInfo,
}

impl Join {
    /// The same join, to ask again elsewhere.
    fn again(&self) -> Join {
        Join {
            member: self.member,
            role: self.role,
            wait_for_leader: self.wait_for_leader,
            tx: self.tx.clone(),
            info: self.info.clone(),
        }
    }

    fn message(self) -> ToMeeting {
        ToMeeting::Join {
            member: self.member,
            role: self.role,
            tx: self.tx,
            info: self.info,
        }
    }
}

impl Hub {
    /// Joins the meeting in progress here, if there is one; the join back if not.
    fn try_join_local(
        &self,
        conference: &ConferenceKey,
        join: Join,
    ) -> Result<mpsc::UnboundedSender<ToMeeting>, Box<Join>> {
        // A meeting closes its inbox under this lock as it ends: open now, it takes the
        // join.
        let meetings = lock(&self.meetings);
        match meetings.get(conference) {
            Some(inbox) if !inbox.is_closed() => {
                let _ = inbox.send(join.message());
                Ok(inbox.clone())
            }
            _ => Err(Box::new(join)),
        }
    }

    /// Joins the meeting here, starting it when there is none (or it just ended).
    fn join_local(
        &self,
        conference: ConferenceKey,
        join: Join,
    ) -> mpsc::UnboundedSender<ToMeeting> {
        let wait_for_leader = join.wait_for_leader;
        send_or_start(&self.meetings, &conference, join.message(), |rx, count| {
            self.gauges.meetings.store(count, Ordering::Relaxed);
            self.start_meeting(conference.clone(), wait_for_leader, rx);
        })
    }

    fn start_meeting(
        &self,
        conference: ConferenceKey,
        wait_for_leader: bool,
        rx: mpsc::UnboundedReceiver<ToMeeting>,
    ) {
        let meeting = Meeting {
            key: conference,
            room: Room::new(RoomConfig::new(wait_for_leader, self.settings.max_members)),
            media: self.media.clone(),
            media_room: None,
            members: HashMap::new(),
            organiser: None,
            organiser_id: None,
            dial_out: self.dial_out_tx.clone(),
            settings: self.settings.clone(),
            join_leave_tones: self.settings.join_leave_tones,
            recording: None,
            registry: self.meetings.clone(),
            gauges: self.gauges.clone(),
            join_beep: self.join_beep.clone(),
            leave_beep: self.leave_beep.clone(),
            homes: self.cluster.get().map(|c| c.homes.clone()),
        };
        tokio::spawn(meeting.run(rx));
    }
}

/// Sends `message` to `conference`'s task in `registry`, or, when there is none or it
/// just ended (its inbox closed), registers a new inbox, puts `message` in it and calls
/// `start` with its receiver and how many the registry now holds.
fn send_or_start(
    registry: &Registry,
    conference: &ConferenceKey,
    message: ToMeeting,
    start: impl FnOnce(mpsc::UnboundedReceiver<ToMeeting>, usize),
) -> mpsc::UnboundedSender<ToMeeting> {
    let mut inboxes = lock(registry);
    let mut message = message;
    if let Some(inbox) = inboxes.get(conference) {
        match inbox.send(message) {
            Ok(()) => return inbox.clone(),
            Err(mpsc::error::SendError(m)) => message = m,
        }
    }
    let (inbox, rx) = mpsc::unbounded_channel();
    let _ = inbox.send(message);
    inboxes.insert(conference.clone(), inbox.clone());
    let count = inboxes.len();
    // The task starts under the registry's lock, which orders it against its own end.
    start(rx, count);
    inbox
}

/// One member as the meeting keeps it.
struct Entry {
    tx: mpsc::Sender<ToMember>,
    admitted: bool,
    info: MemberInfo,
    since: Timestamp,
}

/// One meeting's task state.
struct Meeting {
    key: ConferenceKey,
    room: Room,
    media: MediaEngine,
    /// The mixing room, made when the first member is admitted.
    media_room: Option<RoomId>,
    /// Each member's channel, whether it is in the mix (not the lobby), who it is and
    /// since when.
    members: HashMap<MemberId, Entry>,
    organiser: Option<String>,
    organiser_id: Option<String>,
    /// Where this meeting's dial-outs go (the signaling task).
    dial_out: mpsc::UnboundedSender<DialOutRequest>,
    settings: MeetingSettings,
    /// The conference's own setting as the latest joiner's lookup found it, or
    /// `settings.join_leave_tones`.
    join_leave_tones: bool,
    /// The file the meeting is being recorded to.
    recording: Option<PathBuf>,
    registry: Arc<Mutex<HashMap<ConferenceKey, mpsc::UnboundedSender<ToMeeting>>>>,
    gauges: Arc<Gauges>,
    join_beep: Arc<Prompt>,
    leave_beep: Arc<Prompt>,
    /// In a cluster: this node is the meeting's home, to be given up when it ends.
    homes: Option<dialbridge_shared::MeetingHomes>,
}

impl Meeting {
    async fn run(mut self, mut inbox: mpsc::UnboundedReceiver<ToMeeting>) {
        loop {
            let deadline = self.room.poll_timeout();
            let sleep = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                message = inbox.recv() => match message {
                    Some(message) => self.handle(message, Instant::now()),
                    None => break,
                },
                _ = sleep => self.room.handle_timeout(Instant::now()),
            }
            self.carry_out();
            if self.members.is_empty() && self.end_if_idle(&mut inbox) {
                break;
            }
        }
        if let Some(room) = self.media_room.take() {
            // Closing the room finishes its recording, if any.
            self.media.close_room(room);
        }
        if let Some(file) = self.recording.take() {
            tracing::info!(
                tenant = self.key.tenant.as_str(),
                conference = self.key.id.as_str(),
                file = %file.display(),
                "recording ended with the meeting"
            );
        }
        if let Some(homes) = self.homes.take() {
            homes.release(&crate::cluster::home_name(&self.key)).await;
        }
    }

    fn handle(&mut self, message: ToMeeting, now: Instant) {
        match message {
            ToMeeting::Join {
                member,
                role,
                tx,
                info,
            } => {
                if self.organiser.is_none() {
                    self.organiser = info.organiser.clone();
                }
                if self.organiser_id.is_none() {
                    self.organiser_id = info.organiser_id.clone();
                }
                // An admin's change reaches a meeting in progress with the next joiner
                // that looked the conference up (a dial-out's callee did not: it leaves
                // the meeting's setting as it is).
                if info.organiser_id.is_some() {
                    self.join_leave_tones = info
                        .join_leave_tones
                        .unwrap_or(self.settings.join_leave_tones);
                }
                self.members.insert(
                    member,
                    Entry {
                        tx,
                        admitted: false,
                        info,
                        since: Timestamp::now(),
                    },
                );
                self.room.handle_join(member, role, now);
            }
            ToMeeting::Describe { reply } => {
                let _ = reply.send(self.view());
            }
            ToMeeting::Mute {
                member,
                muted,
                reply,
            } => {
                let _ = reply.send(self.room.set_member_muted(member, muted));
            }
            ToMeeting::Kick { member, reply } => {
                let known = self.members.contains_key(&member);
                if known {
                    self.tell(member, ToMember::Kicked);
                }
                let _ = reply.send(known);
            }
            ToMeeting::Lock { locked, reply } => {
                self.room.set_locked(locked);
                let _ = reply.send(());
            }
            ToMeeting::Record { on, reply } => {
                let result = if on {
                    self.start_recording()
                } else {
                    self.stop_recording()
                };
                let _ = reply.send(result);
            }
            ToMeeting::Leave { member } => {
                let was_admitted = self.remove(member);
                self.room.handle_leave(member);
                if was_admitted
                    && self.join_leave_tones
                    && let Some(room) = self.media_room
                {
                    self.media.play_to_room(room, self.leave_beep.clone());
                }
            }
            ToMeeting::Digit { member, digit } => self.room.handle_digit(member, digit, now),
            ToMeeting::DialOut { number, reply } => self.dial_out(number, None, Some(reply)),
        }
    }

    fn carry_out(&mut self) {
        while let Some(action) = self.room.poll_action() {
            match action {
                RoomAction::Admit { member } => {
                    let room = *self
                        .media_room
                        .get_or_insert_with(|| self.media.create_room(self.settings.max_members));
                    if self.join_leave_tones {
                        self.media.play_to_room(room, self.join_beep.clone());
                    }
                    tracing::info!(
                        tenant = self.key.tenant.as_str(),
                        conference = self.key.id.as_str(),
                        member = member.0,
                        "admitted to the meeting"
                    );
                    if let Some(entry) = self.members.get_mut(&member)
                        && !entry.admitted
                    {
                        entry.admitted = true;
                        self.gauges.participants.fetch_add(1, Ordering::Relaxed);
                    }
                    self.tell(member, ToMember::Admitted { room });
                }
                RoomAction::Reject { member, reason } => {
                    self.tell(member, ToMember::Rejected { reason });
                    self.remove(member);
                }
                RoomAction::SetMuted { member, muted } => self.tell(member, ToMember::Muted(muted)),
                RoomAction::PlayPrompt { member, prompt } => {
                    self.tell(member, ToMember::Play(prompt))
                }
                RoomAction::AnnounceCount { member, count } => {
                    self.tell(member, ToMember::Count(count))
                }
                RoomAction::DialOut { member, digits } => {
                    let leader = self.members.get(&member).map(|e| e.tx.clone());
                    self.dial_out(format!("+{digits}"), leader, None);
                }
                RoomAction::LockChanged { locked } => tracing::info!(
                    tenant = self.key.tenant.as_str(),
                    conference = self.key.id.as_str(),
                    locked,
                    "meeting lock changed"
                ),
            }
        }
    }

    /// Hands a dial-out to the signaling task, with what only the meeting knows.
    fn dial_out(
        &self,
        number: String,
        leader: Option<mpsc::Sender<ToMember>>,
        reply: Option<oneshot::Sender<Result<DialOutId, DialOutRefusal>>>,
    ) {
        tracing::info!(
            tenant = self.key.tenant.as_str(),
            conference = self.key.id.as_str(),
            by_leader = leader.is_some(),
            "dial-out requested"
        );
        let request = DialOutRequest {
            conference: self.key.clone(),
            organiser: self.organiser_id.clone(),
            number,
            leader,
            reply,
        };
        if let Err(mpsc::error::SendError(request)) = self.dial_out.send(request)
            && let Some(reply) = request.reply
        {
            let _ = reply.send(Err(DialOutRefusal::ShuttingDown));
        }
    }

    /// Starts recording the mix (creating the mixing room if nobody is in it yet, so
    /// a recording started while everyone waits in the lobby has them from the start).
    /// The file is created here, on this meeting's task: a create, not a write loop.
    fn start_recording(&mut self) -> Result<RecordingView, LiveError> {
        if let Some(file) = &self.recording {
            return Err(LiveError::Conflict(format!(
                "the conference is already being recorded to {}",
                file.display()
            )));
        }
        let dir = &self.settings.recordings_dir;
        std::fs::create_dir_all(dir)
            .map_err(|e| LiveError::Storage(format!("cannot create {}: {e}", dir.display())))?;
        let file = dir.join(recording_file_name(&self.key, Timestamp::now()));
        let room = *self
            .media_room
            .get_or_insert_with(|| self.media.create_room(self.settings.max_members));
        self.media
            .start_recording(room, &file)
            .map_err(|e| LiveError::Storage(format!("cannot record to {}: {e}", file.display())))?;
        tracing::info!(
            tenant = self.key.tenant.as_str(),
            conference = self.key.id.as_str(),
            file = %file.display(),
            "recording started"
        );
        let view = self.recording_view(true, &file, None);
        self.recording = Some(file);
        Ok(view)
    }

    /// Stops the recording and waits for its last frames to reach the file.
    fn stop_recording(&mut self) -> Result<RecordingView, LiveError> {
        let Some(file) = self.recording.take() else {
            return Err(LiveError::Conflict(
                "the conference is not being recorded".into(),
            ));
        };
        let summary = self
            .media_room
            .and_then(|room| self.media.stop_recording(room))
            .transpose()
            .map_err(|e| LiveError::Storage(format!("recording {}: {e}", file.display())))?;
        let seconds = summary.as_ref().map(|s| s.duration.as_secs_f64());
        tracing::info!(
            tenant = self.key.tenant.as_str(),
            conference = self.key.id.as_str(),
            file = %file.display(),
            seconds,
            dropped_frames = summary.as_ref().map(|s| s.dropped_frames),
            "recording stopped"
        );
        Ok(self.recording_view(false, &file, seconds))
    }

    fn recording_view(&self, recording: bool, file: &Path, seconds: Option<f64>) -> RecordingView {
        RecordingView {
            tenant: self.key.tenant.as_str().to_string(),
            conference_id: self.key.id.as_str().to_string(),
            recording,
            file: file.display().to_string(),
            seconds,
        }
    }

    /// Forgets a member; whether it was in the mix.
    fn remove(&mut self, member: MemberId) -> bool {
        match self.members.remove(&member) {
            Some(Entry { admitted: true, .. }) => {
                self.gauges.participants.fetch_sub(1, Ordering::Relaxed);
                true
            }
            _ => false,
        }
    }

    fn tell(&self, member: MemberId, message: ToMember) {
        if let Some(Entry { tx, .. }) = self.members.get(&member) {
            // A call too busy to hear its meeting is a call in trouble; it will be
            // ended by its own timers, not wait on us.
            let _ = tx.try_send(message);
        }
    }

    /// The meeting as the admin API shows it.
    fn view(&self) -> ConferenceView {
        let participants = self
            .room
            .members()
            .filter_map(|m| {
                let entry = self.members.get(&m.id)?;
                Some(ParticipantView {
                    id: m.id.0,
                    role: m.role,
                    calling: entry.info.calling.clone(),
                    dialled: entry.info.dialled.clone(),
                    joined: entry.since,
                    muted: m.muted,
                    talking: entry.info.activity.as_ref().is_some_and(|a| a.is_talking()),
                    in_lobby: m.in_lobby,
                    quality: entry
                        .info
                        .quality
                        .as_ref()
                        .and_then(QualityView::current)
                        .map(Into::into),
                })
            })
            .collect();
        ConferenceView {
            tenant: self.key.tenant.as_str().to_string(),
            conference_id: self.key.id.as_str().to_string(),
            organiser: self.organiser.clone(),
            locked: self.room.is_locked(),
            recording: self.recording.is_some(),
            participants,
        }
    }

    /// With nobody left, the meeting ends, unless a join raced in: the registry lock
    /// orders this against [`Conferences::join`].
    fn end_if_idle(&mut self, inbox: &mut mpsc::UnboundedReceiver<ToMeeting>) -> bool {
        let mut registry = lock(&self.registry);
        if !inbox.is_empty() {
            return false;
        }
        registry.remove(&self.key);
        self.gauges
            .meetings
            .store(registry.len(), Ordering::Relaxed);
        inbox.close();
        true
    }
}

/// `<tenant>-<conference ID>-<UTC time>.wav`, the tenant name kept to characters that
/// are safe in a file name on any system.
fn recording_file_name(key: &ConferenceKey, at: Timestamp) -> String {
    let tenant: String = key
        .tenant
        .as_str()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let time: String = at
        .to_string()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    format!("{tenant}-{}-{time}.wav", key.id.as_str())
}
