//! Live conferences. Each meeting is one task that owns its [`Room`] (roles, lobby,
//! size limit, lock, keypad controls) and its mixing room in the media engine; the
//! tasks of the calls in it talk to it by messages. A meeting exists while someone is
//! in it: idle meetings cost nothing, not even a timer.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use dialbridge_conference::Digit;
use dialbridge_conference::ivr::{ConferenceKey, PromptId, Role};
use dialbridge_conference::room::{MemberId, RejectReason, Room, RoomAction, RoomConfig};
use dialbridge_media::{MediaEngine, Prompt, RoomId, Tone};
use tokio::sync::mpsc;

use crate::Gauges;

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
}

enum ToMeeting {
    Join {
        member: MemberId,
        role: Role,
        tx: mpsc::Sender<ToMember>,
    },
    Leave {
        member: MemberId,
    },
    Digit {
        member: MemberId,
        digit: Digit,
    },
}

/// Settings every meeting shares.
#[derive(Debug, Clone, Copy)]
pub struct MeetingSettings {
    pub max_members: usize,
    /// A beep to everyone when someone is admitted or leaves.
    pub join_leave_tones: bool,
}

/// Every live meeting, by conference.
pub struct Conferences {
    meetings: Arc<Mutex<HashMap<ConferenceKey, mpsc::UnboundedSender<ToMeeting>>>>,
    gauges: Arc<Gauges>,
    media: MediaEngine,
    settings: MeetingSettings,
    next_member: AtomicU64,
    join_beep: Arc<Prompt>,
    leave_beep: Arc<Prompt>,
}

impl std::fmt::Debug for Conferences {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conferences")
            .field("meetings", &self.meetings.lock().map(|m| m.len()).ok())
            .finish_non_exhaustive()
    }
}

/// One call's place in a meeting. Dropping it (the call ended, however it ended)
/// leaves the meeting.
#[derive(Debug)]
pub struct Membership {
    member: MemberId,
    meeting: mpsc::UnboundedSender<ToMeeting>,
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
        let _ = self.meeting.send(ToMeeting::Leave {
            member: self.member,
        });
    }
}

impl Conferences {
    pub fn new(media: MediaEngine, settings: MeetingSettings, gauges: Arc<Gauges>) -> Conferences {
        Conferences {
            meetings: Arc::default(),
            gauges,
            media,
            settings,
            next_member: AtomicU64::new(1),
            join_beep: Arc::new(Tone::join_beep()),
            leave_beep: Arc::new(Tone::leave_beep()),
        }
    }

    /// Asks to join `conference` as `role`; the answer (admitted, lobby prompt, or
    /// rejected) comes on `tx`. `wait_for_leader` is the conference's setting from the
    /// directory, used when this join starts the meeting.
    pub fn join(
        &self,
        conference: ConferenceKey,
        role: Role,
        wait_for_leader: bool,
        tx: mpsc::Sender<ToMember>,
    ) -> Membership {
        let member = MemberId(self.next_member.fetch_add(1, Ordering::Relaxed));
        let mut meetings = match self.meetings.lock() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        let mut message = ToMeeting::Join { member, role, tx };
        // A meeting that just ended has closed its inbox: start a new one then.
        if let Some(inbox) = meetings.get(&conference) {
            match inbox.send(message) {
                Ok(()) => {
                    return Membership {
                        member,
                        meeting: inbox.clone(),
                    };
                }
                Err(mpsc::error::SendError(m)) => message = m,
            }
        }
        let (inbox, rx) = mpsc::unbounded_channel();
        let _ = inbox.send(message);
        meetings.insert(conference.clone(), inbox.clone());
        self.gauges
            .meetings
            .store(meetings.len(), Ordering::Relaxed);
        let meeting = Meeting {
            key: conference,
            room: Room::new(RoomConfig::new(wait_for_leader, self.settings.max_members)),
            media: self.media.clone(),
            media_room: None,
            members: HashMap::new(),
            settings: self.settings,
            registry: self.meetings.clone(),
            gauges: self.gauges.clone(),
            join_beep: self.join_beep.clone(),
            leave_beep: self.leave_beep.clone(),
        };
        tokio::spawn(meeting.run(rx));
        Membership {
            member,
            meeting: inbox,
        }
    }
}

/// One meeting's task state.
struct Meeting {
    key: ConferenceKey,
    room: Room,
    media: MediaEngine,
    /// The mixing room, made when the first member is admitted.
    media_room: Option<RoomId>,
    /// Each member's channel, and whether it is in the mix (not the lobby).
    members: HashMap<MemberId, (mpsc::Sender<ToMember>, bool)>,
    settings: MeetingSettings,
    registry: Arc<Mutex<HashMap<ConferenceKey, mpsc::UnboundedSender<ToMeeting>>>>,
    gauges: Arc<Gauges>,
    join_beep: Arc<Prompt>,
    leave_beep: Arc<Prompt>,
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
            self.media.close_room(room);
        }
    }

    fn handle(&mut self, message: ToMeeting, now: Instant) {
        match message {
            ToMeeting::Join { member, role, tx } => {
                self.members.insert(member, (tx, false));
                self.room.handle_join(member, role, now);
            }
            ToMeeting::Leave { member } => {
                let was_admitted = self.remove(member);
                self.room.handle_leave(member);
                if was_admitted && self.settings.join_leave_tones {
                    if let Some(room) = self.media_room {
                        self.media.play_to_room(room, self.leave_beep.clone());
                    }
                }
            }
            ToMeeting::Digit { member, digit } => self.room.handle_digit(member, digit, now),
        }
    }

    fn carry_out(&mut self) {
        while let Some(action) = self.room.poll_action() {
            match action {
                RoomAction::Admit { member } => {
                    let room = *self
                        .media_room
                        .get_or_insert_with(|| self.media.create_room(self.settings.max_members));
                    if self.settings.join_leave_tones {
                        self.media.play_to_room(room, self.join_beep.clone());
                    }
                    tracing::info!(
                        tenant = self.key.tenant.as_str(),
                        conference = self.key.id.as_str(),
                        member = member.0,
                        "admitted to the meeting"
                    );
                    if let Some((_, admitted)) = self.members.get_mut(&member) {
                        if !*admitted {
                            *admitted = true;
                            self.gauges.participants.fetch_add(1, Ordering::Relaxed);
                        }
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
                RoomAction::LockChanged { locked } => tracing::info!(
                    tenant = self.key.tenant.as_str(),
                    conference = self.key.id.as_str(),
                    locked,
                    "meeting lock changed"
                ),
            }
        }
    }

    /// Forgets a member; whether it was in the mix.
    fn remove(&mut self, member: MemberId) -> bool {
        match self.members.remove(&member) {
            Some((_, true)) => {
                self.gauges.participants.fetch_sub(1, Ordering::Relaxed);
                true
            }
            _ => false,
        }
    }

    fn tell(&self, member: MemberId, message: ToMember) {
        if let Some((tx, _)) = self.members.get(&member) {
            // A call too busy to hear its meeting is a call in trouble; it will be
            // ended by its own timers, not wait on us.
            let _ = tx.try_send(message);
        }
    }

    /// With nobody left, the meeting ends, unless a join raced in: the registry lock
    /// orders this against [`Conferences::join`].
    fn end_if_idle(&mut self, inbox: &mut mpsc::UnboundedReceiver<ToMeeting>) -> bool {
        let mut registry = match self.registry.lock() {
            Ok(r) => r,
            Err(poisoned) => poisoned.into_inner(),
        };
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
