//! The entry IVR: welcome, conference ID, leader PIN, join. A pure state machine in
//! the quinn style (`handle_*` in, `poll_action`/`poll_timeout` out, time passed in).
//!
//! ```text
//!  new ──▶ ExpectConferenceId ──#──▶ ExpectLookup ──found──▶ ExpectPin ──#──▶ Join(Participant)
//!            ▲   (welcome)     not found │                 (enter-pin)│
//!            └──── not-found ◀───────────┘                      PIN # ▼
//!                                         ExpectPin ◀─ wrong-pin ─ ExpectPinCheck ──valid──▶ Join(Leader)
//!  3 failed attempts (wrong, too short or timed out) ──▶ Goodbye ──finished──▶ Hangup
//! ```
//!
//! The directory lookup and the PIN check are actions the caller performs and
//! answers with [`Ivr::handle_lookup_result`] / [`Ivr::handle_pin_result`], rather than
//! a `Directory` trait called synchronously: checking a PIN means a deliberately
//! slow hash (and, in a cluster, maybe a remote store), which must not run on the
//! call's task, and tests then need no fake directory at all, only the answers.

mod invitation;
mod types;

#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::dtmf::Digit;
pub use invitation::Invitation;
use types::DigitBuffer;
pub use types::{
    CONFERENCE_ID_DIGITS, ConferenceId, ConferenceKey, MAX_DIGITS, PIN_DIGITS, Pin, TenantId,
};

/// The prompts, named after their WAV files in `fixtures/prompts/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum PromptId {
    /// Welcome, and "enter your conference ID, then #".
    Welcome,
    /// "If you are the organiser, enter your PIN then #, otherwise press #".
    EnterPin,
    /// "That conference ID was not found", asks again.
    NotFound,
    /// "That PIN is not right", asks again.
    WrongPin,
    /// "Goodbye", before a hangup.
    Goodbye,
    /// "You are now joining the meeting".
    Joined,
    /// "Please wait for the leader".
    WaitingForLeader,
    /// "This meeting is full".
    MeetingFull,
    /// "This meeting is locked".
    MeetingLocked,
    /// "You are muted".
    Muted,
    /// "You are unmuted".
    Unmuted,
    /// The in-call controls.
    Help,
    /// To the called party of a dial-out: "you have been invited to a meeting, press 1
    /// to join".
    Invited,
    /// To the leader who dialled out: the call is being placed.
    DialOutCalling,
    /// To the leader: the far end rings.
    DialOutRinging,
    /// To the leader: the far end answered (it joins when it keys 1).
    DialOutAnswered,
    /// To the leader: busy.
    DialOutBusy,
    /// To the leader: nobody answered in time.
    DialOutNoAnswer,
    /// To the leader: the far end or the network declined the call.
    DialOutDeclined,
    /// To the leader: no trunk could connect the call.
    DialOutFailed,
    /// To the leader: the number is not one the meeting may dial.
    DialOutNotAllowed,
    /// To the leader: no credits or minutes to pay for the call.
    DialOutNoFunding,
}

impl PromptId {
    /// Every prompt.
    pub const ALL: [PromptId; 22] = [
        PromptId::Welcome,
        PromptId::EnterPin,
        PromptId::NotFound,
        PromptId::WrongPin,
        PromptId::Goodbye,
        PromptId::Joined,
        PromptId::WaitingForLeader,
        PromptId::MeetingFull,
        PromptId::MeetingLocked,
        PromptId::Muted,
        PromptId::Unmuted,
        PromptId::Help,
        PromptId::Invited,
        PromptId::DialOutCalling,
        PromptId::DialOutRinging,
        PromptId::DialOutAnswered,
        PromptId::DialOutBusy,
        PromptId::DialOutNoAnswer,
        PromptId::DialOutDeclined,
        PromptId::DialOutFailed,
        PromptId::DialOutNotAllowed,
        PromptId::DialOutNoFunding,
    ];

    /// The file stem under `fixtures/prompts/` (`enter-pin` for `enter-pin.wav`).
    pub fn file_stem(self) -> &'static str {
        match self {
            PromptId::Welcome => "welcome",
            PromptId::EnterPin => "enter-pin",
            PromptId::NotFound => "not-found",
            PromptId::WrongPin => "wrong-pin",
            PromptId::Goodbye => "goodbye",
            PromptId::Joined => "joined",
            PromptId::WaitingForLeader => "waiting-for-leader",
            PromptId::MeetingFull => "meeting-full",
            PromptId::MeetingLocked => "meeting-locked",
            PromptId::Muted => "muted",
            PromptId::Unmuted => "unmuted",
            PromptId::Help => "help",
            PromptId::Invited => "invited",
            PromptId::DialOutCalling => "dial-out-calling",
            PromptId::DialOutRinging => "dial-out-ringing",
            PromptId::DialOutAnswered => "dial-out-answered",
            PromptId::DialOutBusy => "dial-out-busy",
            PromptId::DialOutNoAnswer => "dial-out-no-answer",
            PromptId::DialOutDeclined => "dial-out-declined",
            PromptId::DialOutFailed => "dial-out-failed",
            PromptId::DialOutNotAllowed => "dial-out-not-allowed",
            PromptId::DialOutNoFunding => "dial-out-no-funding",
        }
    }
}

/// How a caller takes part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Role {
    /// The organiser, who keyed the leader PIN.
    Leader,
    /// Everyone else.
    Participant,
}

/// Why the IVR hangs up: a typed end cause. The server maps it to the BYE's Reason
/// header (RFC 3326); the IVR itself speaks no SIP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HangupReason {
    /// The last of the attempts timed out with nothing keyed.
    NoInput,
    /// Three wrong (or timed-out) conference IDs.
    ConferenceIdAttemptsExhausted,
    /// Three wrong (or timed-out) PINs.
    PinAttemptsExhausted,
    /// Leader PIN entry refused for this caller or conference (guessing defence).
    PinEntryRefused,
    /// The directory did not answer, or answered with an error.
    DirectoryUnavailable,
    /// A dial-out's called party never keyed 1 to join.
    InvitationNotAccepted,
}

/// Work for the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Play a prompt; if `barge_in`, the IVR stops it at the first digit.
    PlayPrompt {
        /// Which.
        prompt: PromptId,
        /// Whether a digit interrupts it.
        barge_in: bool,
    },
    /// Stop the prompt playing (barge-in). No `handle_prompt_finished` is needed for it.
    StopPrompt,
    /// Look the conference ID up in the dialled bridge's tenant, then call
    /// [`Ivr::handle_lookup_result`].
    LookupConference {
        /// The tenant of the bridge that was dialled; never another.
        tenant: TenantId,
        /// What the caller keyed.
        conference_id: ConferenceId,
    },
    /// Check the leader PIN, then call [`Ivr::handle_pin_result`]. `Pin`'s `Debug`
    /// prints `***`, so logging this action leaks nothing.
    VerifyPin {
        /// The conference found.
        conference: ConferenceKey,
        /// What the caller keyed.
        pin: Pin,
    },
    /// Put the call into the conference; the IVR is done.
    Join {
        /// The conference.
        conference: ConferenceKey,
        /// Leader if the PIN was right, else participant.
        role: Role,
    },
    /// End the call with this reason; the IVR is done.
    Hangup {
        /// For the `Reason` header.
        reason: HangupReason,
    },
    /// An attempt at the conference ID or the PIN failed (for the caller's metrics and
    /// the guessing guard's view of it); what the caller hears next follows as its own
    /// action.
    EntryFailed(EntryFailure),
}

/// One failed attempt at an entry, as the IVR saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryFailure {
    /// Which entry.
    pub entry: Entry,
    /// How it failed.
    pub kind: FailureKind,
}

/// The two entries a caller keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    /// The conference ID.
    ConferenceId,
    /// The leader PIN.
    Pin,
}

/// How an entry failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// Complete, but the directory does not know the ID or the PIN is not the leader's.
    Wrong,
    /// Ended by `#` before it had enough digits to be checked at all.
    TooShort,
    /// The digit timer ran out, with or without digits keyed.
    TimedOut,
}

/// The answer to [`Action::LookupConference`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupResult {
    /// The conference exists in the tenant.
    Found(ConferenceKey),
    /// No such conference ID in this tenant.
    NotFound,
    /// The directory failed; the call cannot proceed.
    Failed,
}

/// The answer to [`Action::VerifyPin`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinResult {
    /// The leader PIN.
    Valid,
    /// Not the leader PIN.
    Invalid,
    /// PIN entry refused without checking (too many recent wrong guesses).
    Refused,
    /// The directory failed.
    Failed,
}

/// Timeouts and limits of the IVR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IvrConfig {
    /// The tenant of the dialled bridge: IDs are looked up there only.
    pub tenant: TenantId,
    /// From the end of a prompt to the first digit.
    pub first_digit_timeout: Duration,
    /// Between two digits.
    pub inter_digit_timeout: Duration,
    /// Conference ID attempts before goodbye.
    pub max_id_attempts: u8,
    /// PIN attempts before goodbye.
    pub max_pin_attempts: u8,
    /// How long a lookup or PIN check may take.
    pub lookup_timeout: Duration,
    /// How long the goodbye prompt may take before we hang up anyway.
    pub goodbye_timeout: Duration,
}

impl IvrConfig {
    /// The defaults (5 s digit timeouts, 3 attempts each) for a bridge of `tenant`.
    pub fn new(tenant: TenantId) -> Self {
        Self {
            tenant,
            first_digit_timeout: Duration::from_secs(5),
            inter_digit_timeout: Duration::from_secs(5),
            max_id_attempts: 3,
            max_pin_attempts: 3,
            lookup_timeout: Duration::from_secs(10),
            goodbye_timeout: Duration::from_secs(30),
        }
    }
}

/// States, named after what each waits for (rustls style).
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    ExpectConferenceId {
        failures: u8,
    },
    ExpectLookup {
        failures: u8,
    },
    ExpectPin {
        conference: ConferenceKey,
        failures: u8,
    },
    ExpectPinCheck {
        conference: ConferenceKey,
        failures: u8,
    },
    Goodbye {
        reason: HangupReason,
    },
    Done,
}

/// How an attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// Checked and refused: an unknown ID, a wrong PIN.
    Wrong,
    /// Ended by `#` too short to check.
    TooShort,
    /// Timed out with some digits keyed.
    Incomplete,
    /// Timed out with nothing keyed.
    NoInput,
}

impl Failure {
    fn kind(self) -> FailureKind {
        match self {
            Failure::Wrong => FailureKind::Wrong,
            Failure::TooShort => FailureKind::TooShort,
            Failure::Incomplete | Failure::NoInput => FailureKind::TimedOut,
        }
    }
}

/// One caller's way through the entry IVR.
#[derive(Debug)]
pub struct Ivr {
    config: IvrConfig,
    state: State,
    keyed: DigitBuffer,
    /// The prompt playing, if any; its finish starts the first-digit timer.
    playing: Option<(PromptId, bool)>,
    timer: Option<Instant>,
    actions: VecDeque<Action>,
}

impl Ivr {
    /// Starts the IVR: queues the welcome prompt.
    pub fn new(config: IvrConfig, now: Instant) -> Self {
        let _ = now; // The first timer starts when the welcome prompt finishes.
        let mut ivr = Self {
            config,
            state: State::ExpectConferenceId { failures: 0 },
            keyed: DigitBuffer::default(),
            playing: None,
            timer: None,
            actions: VecDeque::with_capacity(4),
        };
        ivr.play(PromptId::Welcome, true);
        ivr
    }

    /// The next action for the caller.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) is next due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timer
    }

    /// True once the IVR has queued `Join` or `Hangup`.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// A key press (already de-duplicated by the DTMF combiner).
    pub fn handle_digit(&mut self, digit: Digit, now: Instant) {
        if !matches!(
            self.state,
            State::ExpectConferenceId { .. } | State::ExpectPin { .. }
        ) || matches!(digit, Digit::A | Digit::B | Digit::C | Digit::D)
        {
            // Waiting for the directory, saying goodbye, or a key we do not use.
            return;
        }
        if let Some((_, true)) = self.playing {
            self.playing = None;
            self.push(Action::StopPrompt);
        }
        match digit {
            Digit::Star => {
                self.keyed.clear();
                self.timer = Some(now + self.config.first_digit_timeout);
            }
            Digit::Pound => self.submit(now),
            _ => {
                self.keyed.push(digit);
                self.timer = Some(now + self.config.inter_digit_timeout);
            }
        }
    }

    /// A prompt ended by itself. A finish for a prompt not playing (stopped, or
    /// replaced) is ignored.
    pub fn handle_prompt_finished(&mut self, prompt: PromptId, now: Instant) {
        if self.playing.map(|(p, _)| p) != Some(prompt) {
            return;
        }
        self.playing = None;
        match self.state {
            State::ExpectConferenceId { .. } | State::ExpectPin { .. } => {
                self.timer = Some(now + self.config.first_digit_timeout);
            }
            State::Goodbye { reason } => self.finish(Action::Hangup { reason }),
            _ => {}
        }
    }

    /// The answer to [`Action::LookupConference`]; ignored unless one is pending.
    pub fn handle_lookup_result(&mut self, result: LookupResult, now: Instant) {
        let State::ExpectLookup { failures } = self.state else {
            return;
        };
        match result {
            // The directory is asked for the dialled tenant only; a conference of
            // another tenant in the answer is a directory bug we do not let through.
            LookupResult::Found(conference) if conference.tenant == self.config.tenant => {
                tracing::debug!(tenant = %self.config.tenant, "conference found");
                self.state = State::ExpectPin {
                    conference,
                    failures: 0,
                };
                self.timer = None;
                self.play(PromptId::EnterPin, true);
            }
            LookupResult::Found(_) | LookupResult::NotFound => {
                self.state = State::ExpectConferenceId { failures };
                self.fail(now, Failure::Wrong);
            }
            LookupResult::Failed => self.goodbye(now, HangupReason::DirectoryUnavailable),
        }
    }

    /// The answer to [`Action::VerifyPin`]; ignored unless one is pending.
    pub fn handle_pin_result(&mut self, result: PinResult, now: Instant) {
        let State::ExpectPinCheck {
            conference,
            failures,
        } = &self.state
        else {
            return;
        };
        let (conference, failures) = (conference.clone(), *failures);
        match result {
            PinResult::Valid => self.finish(Action::Join {
                conference,
                role: Role::Leader,
            }),
            PinResult::Invalid => {
                self.state = State::ExpectPin {
                    conference,
                    failures,
                };
                self.fail(now, Failure::Wrong);
            }
            PinResult::Refused => {
                tracing::warn!(
                    target: "dialbridge::security",
                    tenant = %conference.tenant,
                    "leader PIN entry refused during cool-down"
                );
                self.goodbye(now, HangupReason::PinEntryRefused);
            }
            PinResult::Failed => self.goodbye(now, HangupReason::DirectoryUnavailable),
        }
    }

    /// Fires the timer if it is due.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.timer {
            Some(t) if now >= t => self.timer = None,
            _ => return,
        }
        match self.state {
            State::ExpectConferenceId { .. } | State::ExpectPin { .. } => {
                let failure = if self.keyed.len() == 0 {
                    Failure::NoInput
                } else {
                    Failure::Incomplete
                };
                self.fail(now, failure);
            }
            State::ExpectLookup { .. } | State::ExpectPinCheck { .. } => {
                self.goodbye(now, HangupReason::DirectoryUnavailable);
            }
            State::Goodbye { reason } => {
                // The goodbye prompt never reported its end; hang up anyway.
                self.playing = None;
                self.finish(Action::Hangup { reason });
            }
            State::Done => {}
        }
    }

    /// `#` in ID or PIN entry.
    fn submit(&mut self, now: Instant) {
        self.timer = None;
        match self.state.clone() {
            State::ExpectConferenceId { failures } => match self.keyed.take_conference_id() {
                Some(conference_id) => {
                    self.state = State::ExpectLookup { failures };
                    self.timer = Some(now + self.config.lookup_timeout);
                    self.push(Action::LookupConference {
                        tenant: self.config.tenant.clone(),
                        conference_id,
                    });
                }
                // Too short (or nothing): refused without asking the directory.
                None => self.fail(now, Failure::TooShort),
            },
            State::ExpectPin {
                conference,
                failures,
            } => {
                if self.keyed.len() == 0 {
                    self.finish(Action::Join {
                        conference,
                        role: Role::Participant,
                    });
                    return;
                }
                match self.keyed.take_pin() {
                    Some(pin) => {
                        self.state = State::ExpectPinCheck {
                            conference: conference.clone(),
                            failures,
                        };
                        self.timer = Some(now + self.config.lookup_timeout);
                        self.push(Action::VerifyPin { conference, pin });
                    }
                    None => self.fail(now, Failure::TooShort),
                }
            }
            _ => {}
        }
    }

    /// One failed attempt in ID or PIN entry: ask again, or say goodbye after the
    /// last one.
    fn fail(&mut self, now: Instant, failure: Failure) {
        let timed_out = matches!(failure, Failure::Incomplete | Failure::NoInput);
        let entry = match self.state {
            State::ExpectPin { .. } => Entry::Pin,
            _ => Entry::ConferenceId,
        };
        self.push(Action::EntryFailed(EntryFailure {
            entry,
            kind: failure.kind(),
        }));
        self.keyed.clear();
        self.timer = None;
        let (failures, max, reprompt, exhausted) = match &mut self.state {
            State::ExpectConferenceId { failures } => {
                *failures = failures.saturating_add(1);
                let again = if timed_out {
                    PromptId::Welcome
                } else {
                    PromptId::NotFound
                };
                let why = HangupReason::ConferenceIdAttemptsExhausted;
                (*failures, self.config.max_id_attempts, again, why)
            }
            State::ExpectPin { failures, .. } => {
                *failures = failures.saturating_add(1);
                let again = if timed_out {
                    PromptId::EnterPin
                } else {
                    PromptId::WrongPin
                };
                (
                    *failures,
                    self.config.max_pin_attempts,
                    again,
                    HangupReason::PinAttemptsExhausted,
                )
            }
            _ => return,
        };
        if failures < max {
            self.play(reprompt, true);
            return;
        }
        let reason = if failure == Failure::NoInput {
            HangupReason::NoInput
        } else {
            exhausted
        };
        // Logged without any digit: only the tenant and the count.
        tracing::warn!(
            target: "dialbridge::security",
            tenant = %self.config.tenant,
            attempts = failures,
            reason = ?reason,
            "entry IVR attempts exhausted"
        );
        self.goodbye(now, reason);
    }

    fn goodbye(&mut self, now: Instant, reason: HangupReason) {
        self.keyed.clear();
        self.state = State::Goodbye { reason };
        self.play(PromptId::Goodbye, false);
        // Started now, not at the prompt's end: this bounds the prompt itself.
        self.timer = Some(now + self.config.goodbye_timeout);
    }

    fn finish(&mut self, action: Action) {
        self.keyed.clear();
        self.timer = None;
        self.state = State::Done;
        self.push(action);
    }

    fn play(&mut self, prompt: PromptId, barge_in: bool) {
        self.playing = Some((prompt, barge_in));
        self.push(Action::PlayPrompt { prompt, barge_in });
    }

    fn push(&mut self, action: Action) {
        // Bounded without a check: every action follows a prompt, a submit or a
        // failure, and the attempt limits bound those over the IVR's life.
        self.actions.push_back(action);
    }
}
