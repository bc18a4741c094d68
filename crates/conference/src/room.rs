//! A conference room: who is in, who waits in the lobby for the leader, the size
//! limit, the lock, and the in-call keypad controls. A pure state machine: members
//! are the caller's ids, work comes out of [`Room::poll_action`].
//!
//! In-call controls are `*` followed by one key within [`COMMAND_TIMEOUT`]:
//!
//! | keys | who | does |
//! |---|---|---|
//! | `*1` | anyone | play the help menu |
//! | `*3` | anyone | hear how many people are in the meeting |
//! | `*5` | leader | lock or unlock the meeting (a locked meeting admits no new participants; leaders still get in) |
//! | `*6` | anyone | mute or unmute yourself (participants not while `*7` holds them muted) |
//! | `*7` | leader | mute everyone but the leaders and keep them muted, or release them |
//! | `*8` | leader | admit everyone waiting in the lobby (a safety net: the lobby empties by itself when a leader joins) |
//! | `*9` number `#` | leader | dial the number (international form without `+`: `*914255557000#`) and invite it into the meeting |
//!
//! After `*9` every key is part of the number until `#` ([`RoomAction::DialOut`]); `*`
//! abandons it, and so does a pause longer than [`DIAL_TIMEOUT`] or a number longer than
//! E.164's 15 digits (the leader hears [`PromptId::DialOutNotAllowed`]).
//!
//! A participant keying a leader control hears the help menu. Nobody waits in the
//! lobby longer than `max_lobby_wait` (30 minutes by default).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::dtmf::Digit;
use crate::ivr::{PromptId, Role};

/// How long after `*` the command key may come.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(3);

/// How long the leader may pause between the keys of a `*9` number.
pub const DIAL_TIMEOUT: Duration = Duration::from_secs(10);

/// The most digits of a number (E.164 §6.1: 15, country code included).
const MAX_DIAL_DIGITS: usize = 15;

/// The caller's handle for one call in the room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MemberId(pub u64);

/// How long a participant waits in the lobby for a leader by default.
pub const DEFAULT_MAX_LOBBY_WAIT: Duration = Duration::from_secs(30 * 60);

/// Settings of one conference, from the directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoomConfig {
    /// Participants wait in the lobby until a leader is in.
    pub wait_for_leader: bool,
    /// Most calls in the room, lobby included.
    pub max_members: usize,
    /// After this long in the lobby without a leader, the call is let go
    /// ([`RejectReason::LeaderDidNotJoin`]) rather than held (and billed) forever.
    pub max_lobby_wait: Duration,
}

impl RoomConfig {
    /// A room with the default lobby wait.
    pub fn new(wait_for_leader: bool, max_members: usize) -> Self {
        Self {
            wait_for_leader,
            max_members,
            max_lobby_wait: DEFAULT_MAX_LOBBY_WAIT,
        }
    }
}

/// Why a call was turned away: a typed end cause, which the server maps to the BYE's
/// Reason header; the room speaks no SIP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum RejectReason {
    /// The room has `max_members` calls.
    MeetingFull,
    /// A leader locked the meeting.
    MeetingLocked,
    /// Waited in the lobby for `max_lobby_wait` and no leader came.
    LeaderDidNotJoin,
}

impl RejectReason {
    /// The prompt to play before hanging up.
    pub fn prompt(self) -> PromptId {
        match self {
            RejectReason::MeetingFull => PromptId::MeetingFull,
            RejectReason::MeetingLocked => PromptId::MeetingLocked,
            RejectReason::LeaderDidNotJoin => PromptId::Goodbye,
        }
    }
}

/// Work for the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomAction {
    /// Play a prompt to one member only.
    PlayPrompt {
        /// To whom.
        member: MemberId,
        /// Which.
        prompt: PromptId,
    },
    /// Connect the member to the mix (out of the lobby, or straight in).
    Admit {
        /// Who.
        member: MemberId,
    },
    /// Play the reason's prompt, then hang up; the member is not (or no longer)
    /// in the room.
    Reject {
        /// Who.
        member: MemberId,
        /// Why.
        reason: RejectReason,
    },
    /// Mute or unmute the member's audio into the mix.
    SetMuted {
        /// Who.
        member: MemberId,
        /// Muted or not.
        muted: bool,
    },
    /// Tell the member how many calls are in the meeting (`*3`).
    AnnounceCount {
        /// To whom.
        member: MemberId,
        /// Calls admitted, the member included.
        count: usize,
    },
    /// The meeting was locked or unlocked (for the dashboard and the other nodes).
    LockChanged {
        /// Now locked.
        locked: bool,
    },
    /// A leader keyed `*9`, a number and `#`: call it and invite it in.
    DialOut {
        /// The leader, who hears how it goes.
        member: MemberId,
        /// The digits keyed (country code first, no `+`), 1 to 15 of them.
        digits: String,
    },
}

/// One member as seen from outside the room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemberState {
    pub id: MemberId,
    pub role: Role,
    pub in_lobby: bool,
    pub muted: bool,
}

#[derive(Debug, Clone, Copy)]
struct Member {
    id: MemberId,
    role: Role,
    in_lobby: bool,
    /// When the member joined (for the lobby wait).
    joined_at: Instant,
    muted: bool,
    /// When `*` was keyed, awaiting the command key.
    star_at: Option<Instant>,
    /// After `*9`: the number being keyed.
    dialing: Option<Dialing>,
}

/// A `*9` number being keyed: fixed-size, so a member stays `Copy`.
#[derive(Debug, Clone, Copy)]
struct Dialing {
    digits: [u8; MAX_DIAL_DIGITS],
    len: usize,
    /// The last key, for [`DIAL_TIMEOUT`].
    last: Instant,
}

/// One conference's room.
#[derive(Debug)]
pub struct Room {
    config: RoomConfig,
    members: Vec<Member>,
    locked: bool,
    /// `*7`: participants muted and held muted.
    participants_held_muted: bool,
    actions: VecDeque<RoomAction>,
}

impl Room {
    /// An empty room.
    pub fn new(config: RoomConfig) -> Self {
        Self {
            config,
            members: Vec::new(),
            locked: false,
            participants_held_muted: false,
            actions: VecDeque::new(),
        }
    }

    /// The next action for the caller.
    pub fn poll_action(&mut self) -> Option<RoomAction> {
        self.actions.pop_front()
    }

    /// Calls in the room, lobby included.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// True when no call is in the room.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Whether a leader locked the meeting.
    pub fn is_locked(&self) -> bool {
        self.locked
    }

    /// Members waiting for the leader.
    pub fn lobby(&self) -> impl Iterator<Item = MemberId> + '_ {
        self.members.iter().filter(|m| m.in_lobby).map(|m| m.id)
    }

    /// A call that passed the entry IVR. A member id already in the room is ignored.
    pub fn handle_join(&mut self, member: MemberId, role: Role, now: Instant) {
        if self.find(member).is_some() {
            return;
        }
        if self.members.len() >= self.config.max_members {
            self.push(RoomAction::Reject {
                member,
                reason: RejectReason::MeetingFull,
            });
            return;
        }
        if self.locked && role == Role::Participant {
            self.push(RoomAction::Reject {
                member,
                reason: RejectReason::MeetingLocked,
            });
            return;
        }
        let in_lobby =
            role == Role::Participant && self.config.wait_for_leader && !self.leader_present();
        let muted = role == Role::Participant && self.participants_held_muted;
        self.members.push(Member {
            id: member,
            role,
            in_lobby,
            joined_at: now,
            muted,
            star_at: None,
            dialing: None,
        });
        if in_lobby {
            self.push(RoomAction::PlayPrompt {
                member,
                prompt: PromptId::WaitingForLeader,
            });
            return;
        }
        self.admit(member, muted);
        if role == Role::Leader {
            self.admit_lobby();
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) is next due: the end of the
    /// longest lobby wait.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.members
            .iter()
            .filter(|m| m.in_lobby)
            .map(|m| m.joined_at + self.config.max_lobby_wait)
            .min()
    }

    /// Lets go of the lobby members who waited too long.
    pub fn handle_timeout(&mut self, now: Instant) {
        let wait = self.config.max_lobby_wait;
        let expired: Vec<MemberId> = self
            .members
            .iter()
            .filter(|m| m.in_lobby && now >= m.joined_at + wait)
            .map(|m| m.id)
            .collect();
        for member in expired {
            self.handle_leave(member);
            self.push(RoomAction::Reject {
                member,
                reason: RejectReason::LeaderDidNotJoin,
            });
        }
    }

    /// The call left (hung up, or was removed).
    pub fn handle_leave(&mut self, member: MemberId) {
        self.members.retain(|m| m.id != member);
    }

    /// Mutes or unmutes a member from outside the call (an administrator, the
    /// dashboard), as `*6` would. `false`: no such member.
    pub fn set_member_muted(&mut self, member: MemberId, muted: bool) -> bool {
        if self.find(member).is_none() {
            return false;
        }
        self.set_muted(member, muted);
        true
    }

    /// Locks or unlocks the meeting from outside (as a leader's `*5` would).
    pub fn set_locked(&mut self, locked: bool) {
        if self.locked != locked {
            self.locked = locked;
            self.push(RoomAction::LockChanged { locked });
        }
    }

    /// Who is in the room, lobby included.
    pub fn members(&self) -> impl Iterator<Item = MemberState> + '_ {
        self.members.iter().map(|m| MemberState {
            id: m.id,
            role: m.role,
            in_lobby: m.in_lobby,
            muted: m.muted,
        })
    }

    /// A key press from a member (de-duplicated by the DTMF combiner).
    pub fn handle_digit(&mut self, member: MemberId, digit: Digit, now: Instant) {
        let Some(m) = self.find_mut(member) else {
            return;
        };
        if m.in_lobby {
            return;
        }
        if let Some(dialing) = m.dialing.take()
            && now.saturating_duration_since(dialing.last) <= DIAL_TIMEOUT
        {
            self.keep_dialing(member, dialing, digit, now);
            return;
        }
        if digit == Digit::Star {
            m.star_at = Some(now);
            return;
        }
        let Some(star_at) = m.star_at.take() else {
            return;
        };
        if now.saturating_duration_since(star_at) > COMMAND_TIMEOUT {
            return;
        }
        let (role, muted) = (m.role, m.muted);
        let leader = role == Role::Leader;
        match digit {
            Digit::One => self.play(member, PromptId::Help),
            Digit::Three => {
                let count = self.members.iter().filter(|m| !m.in_lobby).count();
                self.push(RoomAction::AnnounceCount { member, count });
            }
            Digit::Six if leader || !self.participants_held_muted => {
                self.set_muted(member, !muted);
            }
            // Held muted by `*7`: stay muted, and say so.
            Digit::Six => self.play(member, PromptId::Muted),
            Digit::Eight if leader => self.admit_lobby(),
            Digit::Five if leader => {
                self.locked = !self.locked;
                self.push(RoomAction::LockChanged {
                    locked: self.locked,
                });
                if self.locked {
                    self.play(member, PromptId::MeetingLocked);
                }
            }
            Digit::Seven if leader => self.toggle_hold_muted(),
            Digit::Nine if leader => {
                if let Some(m) = self.find_mut(member) {
                    m.dialing = Some(Dialing {
                        digits: [0; MAX_DIAL_DIGITS],
                        len: 0,
                        last: now,
                    });
                }
            }
            _ => self.play(member, PromptId::Help),
        }
    }

    /// A key of a `*9` number: a digit adds to it, `#` dials it, `*` abandons it.
    fn keep_dialing(&mut self, member: MemberId, mut dialing: Dialing, digit: Digit, now: Instant) {
        match digit {
            Digit::Pound if dialing.len > 0 => {
                let digits = dialing.digits[..dialing.len]
                    .iter()
                    .map(|d| char::from(b'0' + d))
                    .collect();
                self.push(RoomAction::DialOut { member, digits });
            }
            Digit::Star => {}
            _ => match digit.value() {
                Some(d) if dialing.len < MAX_DIAL_DIGITS => {
                    dialing.digits[dialing.len] = d;
                    dialing.len += 1;
                    dialing.last = now;
                    if let Some(m) = self.find_mut(member) {
                        m.dialing = Some(dialing);
                    }
                }
                // Too long, `#` alone, or a key no number has (A-D).
                _ => self.play(member, PromptId::DialOutNotAllowed),
            },
        }
    }

    fn leader_present(&self) -> bool {
        self.members
            .iter()
            .any(|m| m.role == Role::Leader && !m.in_lobby)
    }

    fn admit(&mut self, member: MemberId, muted: bool) {
        self.push(RoomAction::Admit { member });
        if muted {
            self.push(RoomAction::SetMuted {
                member,
                muted: true,
            });
        }
        self.play(member, PromptId::Joined);
    }

    fn admit_lobby(&mut self) {
        let waiting: Vec<(MemberId, bool)> = self
            .members
            .iter_mut()
            .filter(|m| m.in_lobby)
            .map(|m| {
                m.in_lobby = false;
                (m.id, m.muted)
            })
            .collect();
        for (id, muted) in waiting {
            self.admit(id, muted);
        }
    }

    fn toggle_hold_muted(&mut self) {
        self.participants_held_muted = !self.participants_held_muted;
        let muted = self.participants_held_muted;
        let ids: Vec<MemberId> = self
            .members
            .iter()
            .filter(|m| m.role == Role::Participant && !m.in_lobby)
            .map(|m| m.id)
            .collect();
        for id in ids {
            self.set_muted(id, muted);
        }
    }

    fn set_muted(&mut self, member: MemberId, muted: bool) {
        if let Some(m) = self.find_mut(member) {
            m.muted = muted;
        }
        self.push(RoomAction::SetMuted { member, muted });
        let prompt = if muted {
            PromptId::Muted
        } else {
            PromptId::Unmuted
        };
        self.play(member, prompt);
    }

    fn play(&mut self, member: MemberId, prompt: PromptId) {
        self.push(RoomAction::PlayPrompt { member, prompt });
    }

    fn push(&mut self, action: RoomAction) {
        self.actions.push_back(action);
    }

    fn find(&self, member: MemberId) -> Option<&Member> {
        self.members.iter().find(|m| m.id == member)
    }

    fn find_mut(&mut self, member: MemberId) -> Option<&mut Member> {
        self.members.iter_mut().find(|m| m.id == member)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEADER: MemberId = MemberId(1);
    const P2: MemberId = MemberId(2);
    const P3: MemberId = MemberId(3);

    fn room(wait_for_leader: bool, max_members: usize) -> Room {
        Room::new(RoomConfig::new(wait_for_leader, max_members))
    }

    fn actions(r: &mut Room) -> Vec<RoomAction> {
        std::iter::from_fn(|| r.poll_action()).collect()
    }

    fn play(member: MemberId, prompt: PromptId) -> RoomAction {
        RoomAction::PlayPrompt { member, prompt }
    }

    fn admitted(member: MemberId) -> Vec<RoomAction> {
        vec![RoomAction::Admit { member }, play(member, PromptId::Joined)]
    }

    fn key(r: &mut Room, member: MemberId, keys: &str, now: Instant) {
        for c in keys.chars() {
            r.handle_digit(member, Digit::from_char(c).unwrap(), now);
        }
    }

    #[test]
    fn a_leader_dials_out_with_star_nine_the_number_and_pound() {
        let now = Instant::now();
        let mut r = room(false, 10);
        r.handle_join(LEADER, Role::Leader, now);
        r.handle_join(P2, Role::Participant, now);
        actions(&mut r);
        // The number's keys are not controls: `6` and `3` do not mute or count.
        key(&mut r, LEADER, "*914255557063#", now);
        assert_eq!(
            actions(&mut r),
            vec![RoomAction::DialOut {
                member: LEADER,
                digits: "14255557063".into()
            }]
        );
        // Controls work again afterwards.
        key(&mut r, LEADER, "*6", now);
        assert!(actions(&mut r).contains(&RoomAction::SetMuted {
            member: LEADER,
            muted: true
        }));
    }

    #[test]
    fn a_participant_cannot_dial_out() {
        let now = Instant::now();
        let mut r = room(false, 10);
        r.handle_join(LEADER, Role::Leader, now);
        r.handle_join(P2, Role::Participant, now);
        actions(&mut r);
        key(&mut r, P2, "*914255557000#", now);
        let got = actions(&mut r);
        assert!(got.iter().all(|a| !matches!(a, RoomAction::DialOut { .. })));
        assert_eq!(got.first(), Some(&play(P2, PromptId::Help)));
    }

    #[test]
    fn a_dial_out_is_abandoned_by_star_a_pause_or_too_many_digits() {
        let now = Instant::now();
        let mut r = room(false, 10);
        r.handle_join(LEADER, Role::Leader, now);
        actions(&mut r);
        key(&mut r, LEADER, "*9142*", now);
        key(&mut r, LEADER, "#", now);
        assert!(actions(&mut r).is_empty(), "abandoned by *");
        key(&mut r, LEADER, "*9142", now);
        let later = now + DIAL_TIMEOUT + Duration::from_secs(1);
        key(&mut r, LEADER, "5#", later);
        assert!(actions(&mut r).is_empty(), "abandoned by the pause");
        key(&mut r, LEADER, "*91234567890123456#", now);
        assert_eq!(
            actions(&mut r),
            vec![play(LEADER, PromptId::DialOutNotAllowed)],
            "sixteen digits are no number"
        );
        key(&mut r, LEADER, "*9#", now);
        assert_eq!(
            actions(&mut r),
            vec![play(LEADER, PromptId::DialOutNotAllowed)]
        );
    }

    #[test]
    fn an_administrator_mutes_a_member_and_locks_the_room() {
        let now = Instant::now();
        let mut r = room(false, 10);
        r.handle_join(LEADER, Role::Leader, now);
        r.handle_join(P2, Role::Participant, now);
        actions(&mut r);
        assert!(r.set_member_muted(P2, true));
        assert_eq!(
            actions(&mut r),
            vec![
                RoomAction::SetMuted {
                    member: P2,
                    muted: true
                },
                play(P2, PromptId::Muted)
            ]
        );
        assert!(!r.set_member_muted(P3, true), "not a member");
        r.set_locked(true);
        r.set_locked(true);
        assert_eq!(
            actions(&mut r),
            vec![RoomAction::LockChanged { locked: true }]
        );
        r.handle_join(P3, Role::Participant, now);
        assert_eq!(
            actions(&mut r),
            vec![RoomAction::Reject {
                member: P3,
                reason: RejectReason::MeetingLocked
            }]
        );
        let states: Vec<MemberState> = r.members().collect();
        assert_eq!(states.len(), 2);
        assert!(states.iter().any(|m| m.id == P2 && m.muted && !m.in_lobby));
    }

    fn keys(r: &mut Room, member: MemberId, ks: &str, now: Instant) {
        for c in ks.chars() {
            r.handle_digit(member, Digit::from_char(c).unwrap(), now);
        }
    }

    #[test]
    fn open_meeting_admits_everyone() {
        let now = Instant::now();
        let mut r = room(false, 10);
        r.handle_join(P2, Role::Participant, now);
        assert_eq!(actions(&mut r), admitted(P2));
        r.handle_join(LEADER, Role::Leader, now);
        assert_eq!(actions(&mut r), admitted(LEADER));
        // The same call joining twice changes nothing.
        r.handle_join(P2, Role::Participant, now);
        assert_eq!(actions(&mut r), vec![]);
        assert_eq!(r.len(), 2);
    }

    #[test]
    fn lobby_until_the_leader_joins() {
        let now = Instant::now();
        let mut r = room(true, 10);
        r.handle_join(P2, Role::Participant, now);
        r.handle_join(P3, Role::Participant, now);
        assert_eq!(
            actions(&mut r),
            vec![
                play(P2, PromptId::WaitingForLeader),
                play(P3, PromptId::WaitingForLeader)
            ]
        );
        assert_eq!(r.lobby().collect::<Vec<_>>(), vec![P2, P3]);
        // Controls do nothing in the lobby.
        keys(&mut r, P2, "*6", now);
        assert_eq!(actions(&mut r), vec![]);
        r.handle_join(LEADER, Role::Leader, now);
        let mut want = admitted(LEADER);
        want.extend(admitted(P2));
        want.extend(admitted(P3));
        assert_eq!(actions(&mut r), want);
        assert_eq!(r.lobby().count(), 0);
        // With the leader in, new participants go straight in.
        r.handle_join(MemberId(4), Role::Participant, now);
        assert_eq!(actions(&mut r), admitted(MemberId(4)));
    }

    #[test]
    fn lobby_wait_is_bounded() {
        let t0 = Instant::now();
        let mut r = room(true, 10);
        assert_eq!(r.poll_timeout(), None);
        r.handle_join(P2, Role::Participant, t0);
        let later = t0 + Duration::from_secs(60);
        r.handle_join(P3, Role::Participant, later);
        actions(&mut r);
        assert_eq!(r.poll_timeout(), Some(t0 + DEFAULT_MAX_LOBBY_WAIT));
        r.handle_timeout(t0 + DEFAULT_MAX_LOBBY_WAIT - Duration::from_millis(1));
        assert_eq!(actions(&mut r), vec![]);
        r.handle_timeout(t0 + DEFAULT_MAX_LOBBY_WAIT);
        assert_eq!(
            actions(&mut r),
            vec![RoomAction::Reject {
                member: P2,
                reason: RejectReason::LeaderDidNotJoin
            }]
        );
        assert_eq!(r.lobby().collect::<Vec<_>>(), vec![P3]);
        assert_eq!(r.poll_timeout(), Some(later + DEFAULT_MAX_LOBBY_WAIT));
        // A leader arrives in time for P3: no timer left.
        r.handle_join(LEADER, Role::Leader, later + Duration::from_secs(5));
        assert_eq!(r.poll_timeout(), None);
        assert_eq!(RejectReason::LeaderDidNotJoin.prompt(), PromptId::Goodbye);
    }

    #[test]
    fn lobby_member_leaving_is_forgotten() {
        let now = Instant::now();
        let mut r = room(true, 10);
        r.handle_join(P2, Role::Participant, now);
        r.handle_leave(P2);
        actions(&mut r);
        r.handle_join(LEADER, Role::Leader, now);
        assert_eq!(actions(&mut r), admitted(LEADER));
        assert!(!r.is_empty());
    }

    #[test]
    fn full_meeting_rejects() {
        let now = Instant::now();
        let mut r = room(false, 2);
        r.handle_join(LEADER, Role::Leader, now);
        r.handle_join(P2, Role::Participant, now);
        actions(&mut r);
        for (who, role) in [(P3, Role::Participant), (MemberId(9), Role::Leader)] {
            r.handle_join(who, role, now);
            assert_eq!(
                actions(&mut r),
                vec![RoomAction::Reject {
                    member: who,
                    reason: RejectReason::MeetingFull
                }]
            );
        }
        assert_eq!(RejectReason::MeetingFull.prompt(), PromptId::MeetingFull);
        // A place frees up.
        r.handle_leave(P2);
        r.handle_join(P3, Role::Participant, now);
        assert_eq!(actions(&mut r), admitted(P3));
    }

    #[test]
    fn lock_and_unlock() {
        let now = Instant::now();
        let mut r = room(false, 10);
        r.handle_join(LEADER, Role::Leader, now);
        actions(&mut r);
        keys(&mut r, LEADER, "*5", now);
        assert_eq!(
            actions(&mut r),
            vec![
                RoomAction::LockChanged { locked: true },
                play(LEADER, PromptId::MeetingLocked)
            ]
        );
        assert!(r.is_locked());
        r.handle_join(P2, Role::Participant, now);
        assert_eq!(
            actions(&mut r),
            vec![RoomAction::Reject {
                member: P2,
                reason: RejectReason::MeetingLocked
            }]
        );
        // Leaders still get in.
        r.handle_join(MemberId(7), Role::Leader, now);
        assert_eq!(actions(&mut r), admitted(MemberId(7)));
        keys(&mut r, LEADER, "*5", now);
        assert_eq!(
            actions(&mut r),
            vec![RoomAction::LockChanged { locked: false }]
        );
        r.handle_join(P2, Role::Participant, now);
        assert_eq!(actions(&mut r), admitted(P2));
    }

    #[test]
    fn self_mute_help_and_count() {
        let now = Instant::now();
        let mut r = room(false, 10);
        r.handle_join(LEADER, Role::Leader, now);
        r.handle_join(P2, Role::Participant, now);
        actions(&mut r);
        keys(&mut r, P2, "*6", now);
        assert_eq!(
            actions(&mut r),
            vec![
                RoomAction::SetMuted {
                    member: P2,
                    muted: true
                },
                play(P2, PromptId::Muted)
            ]
        );
        keys(&mut r, P2, "*6", now);
        assert_eq!(
            actions(&mut r),
            vec![
                RoomAction::SetMuted {
                    member: P2,
                    muted: false
                },
                play(P2, PromptId::Unmuted)
            ]
        );
        keys(&mut r, P2, "*1", now);
        assert_eq!(actions(&mut r), vec![play(P2, PromptId::Help)]);
        keys(&mut r, P2, "*3", now);
        assert_eq!(
            actions(&mut r),
            vec![RoomAction::AnnounceCount {
                member: P2,
                count: 2
            }]
        );
        // Without `*`, or too long after it, a key is not a command.
        keys(&mut r, P2, "6", now);
        r.handle_digit(P2, Digit::Star, now);
        r.handle_digit(
            P2,
            Digit::Six,
            now + COMMAND_TIMEOUT + Duration::from_millis(1),
        );
        assert_eq!(actions(&mut r), vec![]);
        // Unknown members are ignored.
        keys(&mut r, MemberId(99), "*6", now);
        assert_eq!(actions(&mut r), vec![]);
    }

    #[test]
    fn leader_controls_are_refused_to_participants() {
        let now = Instant::now();
        let mut r = room(true, 10);
        r.handle_join(LEADER, Role::Leader, now);
        r.handle_join(P2, Role::Participant, now);
        actions(&mut r);
        for k in ["*8", "*5", "*7", "*9"] {
            keys(&mut r, P2, k, now);
            assert_eq!(actions(&mut r), vec![play(P2, PromptId::Help)], "{k}");
        }
        assert!(!r.is_locked());
    }

    #[test]
    fn star_8_is_harmless_and_a_returning_leader_admits_the_lobby() {
        let now = Instant::now();
        let mut r = room(true, 10);
        r.handle_join(LEADER, Role::Leader, now);
        actions(&mut r);
        // Nobody waits: *8 is harmless.
        keys(&mut r, LEADER, "*8", now);
        assert_eq!(actions(&mut r), vec![]);
        // The lobby fills again once the leader has left, and empties when a
        // leader comes back.
        r.handle_leave(LEADER);
        r.handle_join(P2, Role::Participant, now);
        assert_eq!(actions(&mut r), vec![play(P2, PromptId::WaitingForLeader)]);
        let other_leader = MemberId(8);
        r.handle_join(other_leader, Role::Leader, now);
        let mut want = admitted(other_leader);
        want.extend(admitted(P2));
        assert_eq!(actions(&mut r), want);
    }

    #[test]
    fn star_7_holds_participants_muted() {
        let now = Instant::now();
        let mut r = room(false, 10);
        r.handle_join(LEADER, Role::Leader, now);
        r.handle_join(P2, Role::Participant, now);
        actions(&mut r);
        keys(&mut r, LEADER, "*7", now);
        assert_eq!(
            actions(&mut r),
            vec![
                RoomAction::SetMuted {
                    member: P2,
                    muted: true
                },
                play(P2, PromptId::Muted)
            ]
        );
        // The participant cannot unmute; a newcomer joins muted.
        keys(&mut r, P2, "*6", now);
        assert_eq!(actions(&mut r), vec![play(P2, PromptId::Muted)]);
        r.handle_join(P3, Role::Participant, now);
        assert_eq!(
            actions(&mut r),
            vec![
                RoomAction::Admit { member: P3 },
                RoomAction::SetMuted {
                    member: P3,
                    muted: true
                },
                play(P3, PromptId::Joined)
            ]
        );
        // The leader is not held.
        keys(&mut r, LEADER, "*6", now);
        assert_eq!(
            actions(&mut r),
            vec![
                RoomAction::SetMuted {
                    member: LEADER,
                    muted: true
                },
                play(LEADER, PromptId::Muted)
            ]
        );
        // Release.
        keys(&mut r, LEADER, "*7", now);
        let got = actions(&mut r);
        assert!(got.contains(&RoomAction::SetMuted {
            member: P2,
            muted: false
        }));
        assert!(got.contains(&RoomAction::SetMuted {
            member: P3,
            muted: false
        }));
        keys(&mut r, P2, "*6", now);
        assert_eq!(
            actions(&mut r)[0],
            RoomAction::SetMuted {
                member: P2,
                muted: true
            }
        );
    }
}
