//! What a call decides between "answered" and "hung up", without I/O: the entry IVR, what
//! plays and what its end means, and the meeting's word. The signaling task, which owns
//! the call, feeds it events and `now` and carries out its [`Step`]s (play, look up,
//! join, hang up...); tests drive it on a virtual clock.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;

use dialbridge_conference::Digit;
use dialbridge_conference::directory::ConferenceInfo;
use dialbridge_conference::ivr::{
    Action, ConferenceId, ConferenceKey, Invitation, Ivr, IvrConfig, LookupResult, Pin, PinResult,
    PromptId, Role, TenantId,
};
use dialbridge_conference::room::RejectReason;
use dialbridge_media::RoomId;

use super::Notice;
use crate::conferences::ToMember;
use crate::metrics::DtmfFailure;
use crate::refusal::{Cause, EndCause};

/// What the caller hears.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audio {
    /// A recorded prompt.
    Prompt(PromptId),
    /// A notice of the bridge's own.
    Notice(Notice),
    /// "There are N people in the meeting".
    Count(usize),
    /// Music on hold, looped, until something else plays.
    MusicOnHold,
}

/// What the call's task does for the core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Play to the caller (replacing what plays); [`CallCore::handle_play_done`] when it
    /// ends (never for music on hold).
    Play(Audio),
    /// Stop what plays, without its end being reported.
    StopPlaying,
    /// Look the conference up in the tenant's directory (after the guessing guard), then
    /// [`CallCore::handle_lookup`].
    Lookup {
        tenant: TenantId,
        conference_id: ConferenceId,
    },
    /// Check the leader PIN (after the guard), then [`CallCore::handle_pin`].
    VerifyPin { conference: ConferenceKey, pin: Pin },
    /// Leave the meeting (it turned the caller away).
    LeaveMeeting,
    /// Join the meeting; its word comes back through [`CallCore::handle_meeting`].
    Join {
        conference: ConferenceKey,
        role: Role,
        /// The directory's entry, when the lookup found this conference.
        found: Option<ConferenceInfo>,
    },
    /// Send the caller's media into the mix of this room, and the mix to the caller.
    /// On failure: [`CallCore::handle_join_failed`].
    JoinRoom(RoomId),
    /// Stop or start sending to the caller (hold, RFC 3264 §8.4).
    SetSending(bool),
    /// Send the caller's media here from now on.
    SetRemote(SocketAddr),
    /// Mute or unmute the caller in the mix.
    SetMuted(bool),
    /// A key pressed in the meeting (its in-call controls).
    MeetingDigit(Digit),
    /// The caller is in the mix (for the call detail record).
    Joined {
        conference: ConferenceId,
        role: Role,
    },
    /// Count a failed entry.
    Failed(DtmfFailure),
    /// End the call for this cause; nothing follows.
    HangUp(Cause),
}

/// What is playing, and what its end means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Playing {
    /// An IVR prompt: its end goes to the IVR.
    Ivr(PromptId),
    /// The lobby announcement: music on hold follows.
    Lobby,
    /// Why the meeting turned the caller away: hang up when it ends.
    Rejection(RejectReason),
    /// Why the bridge lets the caller go (credits ran out): hang up with the cause when
    /// it ends.
    Farewell(Cause),
    /// Anything else (joined, muted, the count...): nothing follows.
    Other,
}

/// How a call reaches its meeting: a caller keys the conference ID (and PIN) to the
/// entry IVR; a dial-out's called party is invited to one meeting and keys 1.
#[derive(Debug)]
enum Entry {
    Ivr(Box<Ivr>),
    Invitation(Invitation),
}

impl Entry {
    fn handle_digit(&mut self, digit: Digit, now: Instant) {
        match self {
            Entry::Ivr(ivr) => ivr.handle_digit(digit, now),
            Entry::Invitation(inv) => inv.handle_digit(digit, now),
        }
    }

    fn handle_prompt_finished(&mut self, prompt: PromptId, now: Instant) {
        match self {
            Entry::Ivr(ivr) => ivr.handle_prompt_finished(prompt, now),
            Entry::Invitation(inv) => inv.handle_prompt_finished(prompt, now),
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        match self {
            Entry::Ivr(ivr) => ivr.poll_timeout(),
            Entry::Invitation(inv) => inv.poll_timeout(),
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        match self {
            Entry::Ivr(ivr) => ivr.handle_timeout(now),
            Entry::Invitation(inv) => inv.handle_timeout(now),
        }
    }

    fn poll_action(&mut self) -> Option<Action> {
        match self {
            Entry::Ivr(ivr) => ivr.poll_action(),
            Entry::Invitation(inv) => inv.poll_action(),
        }
    }
}

/// A call from its answer to its end, as far as the caller's keys and ears go.
#[derive(Debug)]
pub struct CallCore {
    entry: Entry,
    playing: Option<Playing>,
    /// What the last lookup found (the meeting's lobby setting, its display name).
    found: Option<ConferenceInfo>,
    /// The meeting and role the IVR chose, once it chose.
    joining: Option<(ConferenceKey, Role)>,
    /// Joined (or joining) the meeting: keys go there, not to the IVR.
    in_meeting: bool,
    held: bool,
    /// A farewell plays: keys, timers and the meeting change nothing any more.
    leaving: bool,
    ended: bool,
    steps: VecDeque<Step>,
}

impl CallCore {
    /// A call answered at `now`: the IVR starts (its welcome prompt is the first step).
    pub fn new(config: IvrConfig, now: Instant) -> Self {
        Self::with_entry(Entry::Ivr(Box::new(Ivr::new(config, now))))
    }

    /// A dial-out's called party, answered: the invitation to `conference` plays; 1
    /// joins it as a participant.
    pub fn invited(conference: ConferenceKey) -> Self {
        Self::with_entry(Entry::Invitation(Invitation::new(conference)))
    }

    fn with_entry(entry: Entry) -> Self {
        let mut core = Self {
            entry,
            playing: None,
            found: None,
            joining: None,
            in_meeting: false,
            held: false,
            leaving: false,
            ended: false,
            steps: VecDeque::new(),
        };
        core.carry_out_ivr();
        core
    }

    /// A key press (RFC 4733, SIP INFO or in-band, combined by the call's media task so
    /// that one press counts once): the IVR's, or the meeting's once joined.
    pub fn handle_digit(&mut self, digit: Digit, now: Instant) {
        if self.leaving {
            return;
        }
        if self.in_meeting {
            self.steps.push_back(Step::MeetingDigit(digit));
        } else {
            self.entry.handle_digit(digit, now);
            self.carry_out_ivr();
        }
    }

    /// What plays ended.
    pub fn handle_play_done(&mut self, now: Instant) {
        match self.playing.take() {
            Some(Playing::Ivr(prompt)) => {
                self.entry.handle_prompt_finished(prompt, now);
                self.carry_out_ivr();
            }
            // Music until the leader comes; the meeting's Admitted stops it.
            Some(Playing::Lobby) => self.steps.push_back(Step::Play(Audio::MusicOnHold)),
            Some(Playing::Rejection(reason)) => self.hang_up(reason.into()),
            Some(Playing::Farewell(cause)) => self.hang_up(cause),
            Some(Playing::Other) | None => {}
        }
    }

    /// The directory's answer. `locked_out`: the guessing guard refused to ask, which
    /// counts as a lock-out, not as a wrong ID.
    pub fn handle_lookup(
        &mut self,
        result: LookupResult,
        found: Option<ConferenceInfo>,
        locked_out: bool,
        now: Instant,
    ) {
        if self.leaving {
            return;
        }
        self.found = found;
        if let Entry::Ivr(ivr) = &mut self.entry {
            ivr.handle_lookup_result(result, now);
        }
        self.carry_out_ivr_counting(!locked_out);
    }

    /// The PIN check's answer (`Refused` when the guard would not ask).
    pub fn handle_pin(&mut self, result: PinResult, now: Instant) {
        if self.leaving {
            return;
        }
        if let Entry::Ivr(ivr) = &mut self.entry {
            ivr.handle_pin_result(result, now);
        }
        self.carry_out_ivr();
    }

    /// The call's next minute cannot be paid for: it leaves the meeting (or the IVR),
    /// hears the notice, and ends with `EndCause::CreditsExhausted` once it has played.
    pub fn handle_cannot_fund(&mut self) {
        if self.leaving || self.ended {
            return;
        }
        self.leaving = true;
        if self.in_meeting || self.joining.is_some() {
            self.in_meeting = false;
            self.steps.push_back(Step::LeaveMeeting);
        }
        let cause = EndCause::CreditsExhausted.into();
        self.play(
            Playing::Farewell(cause),
            Audio::Notice(Notice::CreditsExhausted),
        );
    }

    /// The meeting's word.
    pub fn handle_meeting(&mut self, message: ToMember) {
        if self.leaving && !matches!(message, ToMember::Kicked) {
            return;
        }
        match message {
            ToMember::Admitted { room } => {
                self.playing = None;
                self.steps.push_back(Step::StopPlaying);
                self.steps.push_back(Step::JoinRoom(room));
                if let Some((conference, role)) = self.joining.clone() {
                    self.steps.push_back(Step::Joined {
                        conference: conference.id,
                        role,
                    });
                }
            }
            ToMember::Rejected { reason } => {
                self.in_meeting = false;
                self.steps.push_back(Step::LeaveMeeting);
                self.play(Playing::Rejection(reason), Audio::Prompt(reason.prompt()));
            }
            ToMember::Muted(muted) => self.steps.push_back(Step::SetMuted(muted)),
            ToMember::Play(prompt) => {
                let what = if prompt == PromptId::WaitingForLeader {
                    Playing::Lobby
                } else {
                    Playing::Other
                };
                self.play(what, Audio::Prompt(prompt));
            }
            ToMember::Count(count) => self.play(Playing::Other, Audio::Count(count)),
            ToMember::Kicked => self.hang_up(EndCause::Kicked.into()),
        }
    }

    /// The mix would not take the caller.
    pub fn handle_join_failed(&mut self) {
        self.hang_up(EndCause::ConferenceUnavailable.into());
    }

    /// A re-INVITE or UPDATE settled the media: on hold or not, and where to send.
    pub fn handle_media_change(&mut self, held: bool, remote: Option<SocketAddr>) {
        if let Some(remote) = remote {
            self.steps.push_back(Step::SetRemote(remote));
        }
        if held != self.held {
            self.held = held;
            self.steps.push_back(Step::SetSending(!held));
        }
    }

    /// The next deadline: the IVR's digit timers.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.ended || self.leaving {
            return None;
        }
        self.entry.poll_timeout()
    }

    /// Fires what is due at `now`; an entry that timed out counts as a failed one.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.leaving {
            return;
        }
        self.entry.handle_timeout(now);
        self.carry_out_ivr();
    }

    /// The next step, in order. After [`Step::HangUp`] nothing follows.
    pub fn poll_step(&mut self) -> Option<Step> {
        self.steps.pop_front()
    }

    fn carry_out_ivr(&mut self) {
        self.carry_out_ivr_counting(true);
    }

    fn carry_out_ivr_counting(&mut self, count_failures: bool) {
        while let Some(action) = self.entry.poll_action() {
            match action {
                Action::EntryFailed(failure) => {
                    if count_failures {
                        self.steps.push_back(Step::Failed(DtmfFailure::of(failure)));
                    } else {
                        self.steps.push_back(Step::Failed(DtmfFailure::LockedOut));
                    }
                }
                Action::PlayPrompt { prompt, .. } => {
                    self.play(Playing::Ivr(prompt), Audio::Prompt(prompt));
                }
                Action::StopPrompt => {
                    self.playing = None;
                    self.steps.push_back(Step::StopPlaying);
                }
                Action::LookupConference {
                    tenant,
                    conference_id,
                } => self.steps.push_back(Step::Lookup {
                    tenant,
                    conference_id,
                }),
                Action::VerifyPin { conference, pin } => {
                    self.steps.push_back(Step::VerifyPin { conference, pin });
                }
                Action::Join { conference, role } => {
                    let found = self.found.clone().filter(|info| info.key() == conference);
                    self.joining = Some((conference.clone(), role));
                    // From here on keys are the meeting's (its lobby and in-call
                    // controls): the IVR is done.
                    self.in_meeting = true;
                    self.steps.push_back(Step::Join {
                        conference,
                        role,
                        found,
                    });
                }
                Action::Hangup { reason } => self.hang_up(reason.into()),
            }
        }
    }

    fn play(&mut self, what: Playing, audio: Audio) {
        self.playing = Some(what);
        self.steps.push_back(Step::Play(audio));
    }

    fn hang_up(&mut self, cause: Cause) {
        if !self.ended {
            self.ended = true;
            self.in_meeting = false;
            self.steps.push_back(Step::HangUp(cause));
        }
    }
}
