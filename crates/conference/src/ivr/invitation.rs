//! The entry of a dial-out's called party: "you have been invited to a meeting, press 1
//! to join", then the meeting as a participant. A pure state machine in the style of
//! [`super::Ivr`]: key presses, prompt ends and `now` in, [`Action`]s out.
//!
//! The invitation plays up to [`Invitation::PLAYS`] times, each followed by a wait for
//! the key; `1` joins at any moment (it stops the prompt), other keys are ignored (a
//! person fumbling for the key must not be hung up on). Nothing keyed after the last
//! wait ends the call: the meeting never hears a voicemail greeting or an answering
//! machine.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::{Action, ConferenceKey, HangupReason, PromptId, Role};
use crate::dtmf::Digit;

/// Where the invitation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// The prompt plays (`played` times started so far).
    Playing { played: u8 },
    /// The prompt ended: waiting for `1` until the deadline.
    Waiting { played: u8, until: Instant },
    /// Joined or hung up: nothing more.
    Done,
}

/// A dial-out's called party between the answer and the meeting.
#[derive(Debug)]
pub struct Invitation {
    conference: ConferenceKey,
    state: State,
    key_wait: Duration,
    actions: VecDeque<Action>,
}

impl Invitation {
    /// How many times the invitation is played before the call is given up.
    pub const PLAYS: u8 = 3;
    /// How long the called party has to key `1` after each play.
    pub const KEY_WAIT: Duration = Duration::from_secs(6);

    /// The called party answered: the invitation plays.
    pub fn new(conference: ConferenceKey) -> Self {
        let mut invitation = Self {
            conference,
            state: State::Playing { played: 1 },
            key_wait: Self::KEY_WAIT,
            actions: VecDeque::new(),
        };
        invitation.play();
        invitation
    }

    /// The meeting this invitation leads to.
    pub fn conference(&self) -> &ConferenceKey {
        &self.conference
    }

    /// A key press: `1` joins; anything else is ignored.
    pub fn handle_digit(&mut self, digit: Digit, _now: Instant) {
        if digit != Digit::One {
            return;
        }
        match self.state {
            State::Playing { .. } => {
                self.actions.push_back(Action::StopPrompt);
                self.join();
            }
            State::Waiting { .. } => self.join(),
            State::Done => {}
        }
    }

    /// The invitation prompt ended: wait for the key.
    pub fn handle_prompt_finished(&mut self, prompt: PromptId, now: Instant) {
        if let State::Playing { played } = self.state
            && prompt == PromptId::Invited
        {
            self.state = State::Waiting {
                played,
                until: now + self.key_wait,
            };
        }
    }

    /// The next deadline: the end of a wait for the key.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Waiting { until, .. } => Some(until),
            _ => None,
        }
    }

    /// A wait ran out: play again, or give up after the last play.
    pub fn handle_timeout(&mut self, now: Instant) {
        let State::Waiting { played, until } = self.state else {
            return;
        };
        if now < until {
            return;
        }
        if played >= Self::PLAYS {
            self.state = State::Done;
            self.actions.push_back(Action::Hangup {
                reason: HangupReason::InvitationNotAccepted,
            });
        } else {
            self.state = State::Playing { played: played + 1 };
            self.play();
        }
    }

    /// The next action, in order.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    fn play(&mut self) {
        self.actions.push_back(Action::PlayPrompt {
            prompt: PromptId::Invited,
            barge_in: true,
        });
    }

    fn join(&mut self) {
        self.state = State::Done;
        self.actions.push_back(Action::Join {
            conference: self.conference.clone(),
            role: Role::Participant,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ivr::{ConferenceId, TenantId};

    fn key() -> ConferenceKey {
        ConferenceKey {
            tenant: TenantId::new("contoso"),
            id: ConferenceId::parse("123456789").unwrap(),
        }
    }

    fn drain(i: &mut Invitation) -> Vec<Action> {
        std::iter::from_fn(|| i.poll_action()).collect()
    }

    fn play() -> Action {
        Action::PlayPrompt {
            prompt: PromptId::Invited,
            barge_in: true,
        }
    }

    fn join() -> Action {
        Action::Join {
            conference: key(),
            role: Role::Participant,
        }
    }

    #[test]
    fn one_while_the_invitation_plays_stops_it_and_joins_as_a_participant() {
        let t0 = Instant::now();
        let mut i = Invitation::new(key());
        assert_eq!(drain(&mut i), vec![play()]);
        i.handle_digit(Digit::Five, t0);
        assert!(drain(&mut i).is_empty(), "other keys are ignored");
        i.handle_digit(Digit::One, t0);
        assert_eq!(drain(&mut i), vec![Action::StopPrompt, join()]);
        assert_eq!(i.poll_timeout(), None);
        i.handle_digit(Digit::One, t0);
        assert!(drain(&mut i).is_empty(), "joined once");
    }

    #[test]
    fn one_after_the_prompt_joins() {
        let t0 = Instant::now();
        let mut i = Invitation::new(key());
        drain(&mut i);
        i.handle_prompt_finished(PromptId::Invited, t0);
        assert_eq!(i.poll_timeout(), Some(t0 + Invitation::KEY_WAIT));
        i.handle_digit(Digit::One, t0 + Duration::from_secs(2));
        assert_eq!(drain(&mut i), vec![join()]);
    }

    #[test]
    fn nothing_keyed_replays_then_hangs_up_after_the_last_play() {
        let mut now = Instant::now();
        let mut i = Invitation::new(key());
        let mut plays = drain(&mut i).len();
        loop {
            i.handle_prompt_finished(PromptId::Invited, now);
            let deadline = i.poll_timeout().unwrap();
            // Early wake-ups change nothing.
            i.handle_timeout(deadline - Duration::from_millis(1));
            assert!(drain(&mut i).is_empty());
            now = deadline;
            i.handle_timeout(now);
            let actions = drain(&mut i);
            if actions == vec![play()] {
                plays += 1;
                continue;
            }
            assert_eq!(
                actions,
                vec![Action::Hangup {
                    reason: HangupReason::InvitationNotAccepted
                }]
            );
            break;
        }
        assert_eq!(plays, usize::from(Invitation::PLAYS));
        assert_eq!(i.poll_timeout(), None);
    }
}
