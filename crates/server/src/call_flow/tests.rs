//! A call's entry and meeting life through [`CallCore`] on a virtual clock: no RTP, no
//! directory, no meeting task; each test takes microseconds.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use dialbridge_conference::Digit;
use dialbridge_conference::ivr::{
    ConferenceId, ConferenceKey, HangupReason, IvrConfig, LookupResult, PinResult, PromptId, Role,
    TenantId,
};
use dialbridge_conference::room::RejectReason;
use dialbridge_media::RoomId;

use super::{Audio, CallCore, Step};
use crate::conferences::ToMember;
use crate::metrics::DtmfFailure;
use crate::refusal::{Cause, EndCause};

struct Call {
    core: CallCore,
    now: Instant,
}

impl Call {
    fn new() -> Call {
        let now = Instant::now();
        let config = IvrConfig::new(TenantId::new("contoso"));
        Call {
            core: CallCore::new(config, now),
            now,
        }
    }

    fn steps(&mut self) -> Vec<Step> {
        std::iter::from_fn(|| self.core.poll_step()).collect()
    }

    /// What plays ends now.
    fn played(&mut self) -> Vec<Step> {
        self.core.handle_play_done(self.now);
        self.steps()
    }

    /// The clock jumps to the next deadline and it fires.
    fn wait(&mut self) -> Vec<Step> {
        let due = self.core.poll_timeout().expect("a deadline");
        self.now = due;
        self.core.handle_timeout(due);
        self.steps()
    }

    fn key(&mut self, keys: &str) -> Vec<Step> {
        for c in keys.chars() {
            self.now += Duration::from_millis(300);
            let digit = Digit::from_char(c).unwrap();
            self.core.handle_digit(digit, self.now);
        }
        self.steps()
    }
}

fn contoso(id: &str) -> ConferenceKey {
    ConferenceKey {
        tenant: TenantId::new("contoso"),
        id: ConferenceId::parse(id).unwrap(),
    }
}

fn prompt(id: PromptId) -> Step {
    Step::Play(Audio::Prompt(id))
}

#[test]
fn a_caller_idle_in_the_ivr_is_asked_again_then_let_go() {
    let mut call = Call::new();
    assert_eq!(call.steps(), [prompt(PromptId::Welcome)]);
    let start = call.now;
    assert_eq!(
        call.core.poll_timeout(),
        None,
        "no timer while the welcome plays"
    );
    assert_eq!(call.played(), []);
    for _ in 0..2 {
        let steps = call.wait();
        assert_eq!(
            steps,
            [
                Step::Failed(DtmfFailure::Timeout),
                prompt(PromptId::Welcome)
            ]
        );
        assert_eq!(call.played(), []);
    }
    let steps = call.wait();
    assert_eq!(
        steps,
        [
            Step::Failed(DtmfFailure::Timeout),
            prompt(PromptId::Goodbye)
        ]
    );
    assert_eq!(
        call.played(),
        [Step::HangUp(Cause::Ivr(HangupReason::NoInput))]
    );
    assert_eq!(call.core.poll_timeout(), None);
    // Three first-digit timers of 5 s, nothing more.
    assert_eq!(call.now - start, Duration::from_secs(15));
}

#[test]
fn the_right_id_and_pin_join_as_leader_and_keys_then_go_to_the_meeting() {
    let mut call = Call::new();
    call.steps();
    call.played();
    let steps = call.key("123456789#");
    assert!(
        steps.contains(&Step::Lookup {
            tenant: TenantId::new("contoso"),
            conference_id: ConferenceId::parse("123456789").unwrap(),
        }),
        "{steps:?}"
    );
    call.core.handle_lookup(
        LookupResult::Found(contoso("123456789")),
        None,
        false,
        call.now,
    );
    let steps = call.steps();
    assert_eq!(steps, [prompt(PromptId::EnterPin)], "asks for the PIN");
    call.played();
    let steps = call.key("13579#");
    let Some(Step::VerifyPin { conference, pin }) = steps.last() else {
        panic!("{steps:?}");
    };
    assert_eq!(conference, &contoso("123456789"));
    assert_eq!(pin.expose(), "13579");
    call.core.handle_pin(PinResult::Valid, call.now);
    let steps = call.steps();
    assert!(
        steps.contains(&Step::Join {
            conference: contoso("123456789"),
            role: Role::Leader,
            found: None,
        }),
        "{steps:?}"
    );
    // Keys now belong to the meeting's controls, even before the mix takes the caller.
    assert_eq!(
        call.key("5"),
        [Step::MeetingDigit(Digit::from_char('5').unwrap())]
    );
    call.core.handle_meeting(ToMember::Admitted {
        room: RoomId::from_raw(7),
    });
    assert_eq!(
        call.steps(),
        [
            Step::StopPlaying,
            Step::JoinRoom(RoomId::from_raw(7)),
            Step::Joined {
                conference: ConferenceId::parse("123456789").unwrap(),
                role: Role::Leader,
            },
        ]
    );
    call.core.handle_meeting(ToMember::Kicked);
    assert_eq!(call.steps(), [Step::HangUp(EndCause::Kicked.into())]);
}

#[test]
fn a_wrong_id_counts_and_a_locked_out_one_counts_as_a_lock_out() {
    let mut call = Call::new();
    call.steps();
    call.played();
    call.key("111111111#");
    call.core
        .handle_lookup(LookupResult::NotFound, None, false, call.now);
    let steps = call.steps();
    assert_eq!(
        steps.first(),
        Some(&Step::Failed(DtmfFailure::WrongConferenceId))
    );
    call.played();
    call.key("222222222#");
    call.core
        .handle_lookup(LookupResult::NotFound, None, true, call.now);
    let steps = call.steps();
    assert_eq!(steps.first(), Some(&Step::Failed(DtmfFailure::LockedOut)));
}

#[test]
fn the_lobby_plays_music_and_a_rejection_is_heard_before_the_hang_up() {
    let mut call = Call::new();
    call.steps();
    call.core
        .handle_meeting(ToMember::Play(PromptId::WaitingForLeader));
    assert_eq!(call.steps(), [prompt(PromptId::WaitingForLeader)]);
    assert_eq!(call.played(), [Step::Play(Audio::MusicOnHold)]);

    call.core.handle_meeting(ToMember::Rejected {
        reason: RejectReason::MeetingFull,
    });
    let steps = call.steps();
    assert_eq!(
        steps,
        [
            Step::LeaveMeeting,
            prompt(RejectReason::MeetingFull.prompt())
        ]
    );
    assert_eq!(
        call.played(),
        [Step::HangUp(RejectReason::MeetingFull.into())]
    );
}

#[test]
fn hold_stops_sending_and_a_new_address_moves_the_media() {
    let mut call = Call::new();
    call.steps();
    let remote = "127.0.0.20:40002".parse().unwrap();
    call.core.handle_media_change(true, Some(remote));
    assert_eq!(
        call.steps(),
        [Step::SetRemote(remote), Step::SetSending(false)]
    );
    call.core.handle_media_change(true, None);
    assert_eq!(call.steps(), [], "still on hold: nothing to change");
    call.core.handle_media_change(false, None);
    assert_eq!(call.steps(), [Step::SetSending(true)]);
}

#[test]
fn a_call_that_cannot_be_paid_for_leaves_hears_the_notice_and_ends() {
    let mut call = Call::new();
    call.steps();
    call.played();
    call.key("987654321#");
    call.core.handle_lookup(
        LookupResult::Found(contoso("987654321")),
        None,
        false,
        call.now,
    );
    call.steps();
    call.played();
    call.key("#");
    call.core.handle_pin(PinResult::Valid, call.now);
    call.steps();
    call.core
        .handle_meeting(ToMember::Play(PromptId::WaitingForLeader));
    call.steps();

    call.core.handle_cannot_fund();
    assert_eq!(
        call.steps(),
        [
            Step::LeaveMeeting,
            Step::Play(Audio::Notice(super::Notice::CreditsExhausted)),
        ]
    );
    // Keys, timers and the meeting change nothing while it plays; once more is nothing.
    assert!(call.key("*6").is_empty());
    assert_eq!(call.core.poll_timeout(), None);
    call.core.handle_meeting(ToMember::Play(PromptId::Joined));
    call.core.handle_cannot_fund();
    assert!(call.steps().is_empty());
    assert_eq!(
        call.played(),
        [Step::HangUp(EndCause::CreditsExhausted.into())]
    );
}
