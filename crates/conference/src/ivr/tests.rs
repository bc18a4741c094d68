//! The entry IVR driven through every path with a fake clock and a fake directory
//! holding the demo organisers (fixtures/demo.toml).

use std::time::{Duration, Instant};

use super::*;

const T5: Duration = Duration::from_secs(5);

/// The demo directory: tenant, conference ID, leader PIN.
const ORGANISERS: [(&str, &str, &str); 3] = [
    ("contoso", "123456789", "13579"),
    ("contoso", "987654321", "24680"),
    ("fabrikam", "555000111", "9999"),
];

fn lookup(tenant: &TenantId, id: &ConferenceId) -> LookupResult {
    ORGANISERS
        .iter()
        .find(|(t, i, _)| *t == tenant.as_str() && *i == id.as_str())
        .map_or(LookupResult::NotFound, |_| {
            LookupResult::Found(ConferenceKey {
                tenant: tenant.clone(),
                id: *id,
            })
        })
}

fn verify(conference: &ConferenceKey, pin: &Pin) -> PinResult {
    let ok = ORGANISERS.iter().any(|(t, i, p)| {
        *t == conference.tenant.as_str() && *i == conference.id.as_str() && *p == pin.expose()
    });
    if ok {
        PinResult::Valid
    } else {
        PinResult::Invalid
    }
}

/// A call on a contoso number, with a clock.
struct Call {
    ivr: Ivr,
    now: Instant,
    /// The failed entries the IVR reported, in order (kept apart from what the caller
    /// hears, which the tests compare as sequences).
    failures: Vec<EntryFailure>,
}

impl Call {
    fn new() -> Self {
        Self::on(TenantId::new("contoso"))
    }

    fn on(tenant: TenantId) -> Self {
        let now = Instant::now();
        Self {
            ivr: Ivr::new(IvrConfig::new(tenant), now),
            now,
            failures: Vec::new(),
        }
    }

    fn actions(&mut self) -> Vec<Action> {
        let mut out = Vec::new();
        while let Some(action) = self.ivr.poll_action() {
            match action {
                Action::EntryFailed(failure) => self.failures.push(failure),
                action => out.push(action),
            }
        }
        out
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
    }

    /// Keys `digits` 300 ms apart.
    fn key(&mut self, digits: &str) {
        for c in digits.chars() {
            self.advance(Duration::from_millis(300));
            self.ivr
                .handle_digit(Digit::from_char(c).unwrap(), self.now);
        }
    }

    fn finished(&mut self, prompt: PromptId) {
        self.advance(Duration::from_millis(100));
        self.ivr.handle_prompt_finished(prompt, self.now);
    }

    /// Jumps to the next deadline and fires it.
    fn time_out(&mut self) {
        self.now = self.ivr.poll_timeout().expect("a timer is armed");
        self.ivr.handle_timeout(self.now);
    }

    /// Answers every pending lookup and PIN check from the demo directory, and
    /// returns the other actions.
    fn serve(&mut self) -> Vec<Action> {
        let mut rest = Vec::new();
        for a in self.actions() {
            match &a {
                Action::LookupConference {
                    tenant,
                    conference_id,
                } => {
                    let r = lookup(tenant, conference_id);
                    self.ivr.handle_lookup_result(r, self.now);
                }
                Action::VerifyPin { conference, pin } => {
                    let r = verify(conference, pin);
                    self.ivr.handle_pin_result(r, self.now);
                }
                _ => {}
            }
            rest.push(a);
        }
        rest.extend(self.actions());
        rest
    }

    /// Through the welcome and a valid conference ID, to the PIN prompt.
    fn reach_pin_prompt(&mut self, id: &str) {
        assert_eq!(self.actions(), vec![play(PromptId::Welcome, true)]);
        self.finished(PromptId::Welcome);
        self.key(id);
        let got = self.serve();
        assert_eq!(got.last(), Some(&play(PromptId::EnterPin, true)), "{got:?}");
        self.finished(PromptId::EnterPin);
    }
}

fn play(prompt: PromptId, barge_in: bool) -> Action {
    Action::PlayPrompt { prompt, barge_in }
}

fn contoso(id: &str) -> ConferenceKey {
    ConferenceKey {
        tenant: TenantId::new("contoso"),
        id: ConferenceId::parse(id).unwrap(),
    }
}

fn hangup(reason: HangupReason) -> Action {
    Action::Hangup { reason }
}

#[test]
fn leader_joins_with_the_pin() {
    let mut c = Call::new();
    assert_eq!(c.actions(), vec![play(PromptId::Welcome, true)]);
    assert_eq!(
        c.ivr.poll_timeout(),
        None,
        "no timer while the prompt plays"
    );
    c.finished(PromptId::Welcome);
    assert_eq!(c.ivr.poll_timeout(), Some(c.now + T5));
    c.key("123456789#");
    assert_eq!(
        c.actions(),
        vec![Action::LookupConference {
            tenant: TenantId::new("contoso"),
            conference_id: ConferenceId::parse("123456789").unwrap(),
        }]
    );
    c.ivr
        .handle_lookup_result(LookupResult::Found(contoso("123456789")), c.now);
    assert_eq!(c.actions(), vec![play(PromptId::EnterPin, true)]);
    c.finished(PromptId::EnterPin);
    c.key("13579#");
    let actions = c.actions();
    let [Action::VerifyPin { conference, pin }] = actions.as_slice() else {
        panic!("{actions:?}");
    };
    assert_eq!(conference, &contoso("123456789"));
    assert_eq!(pin.expose(), "13579");
    c.ivr.handle_pin_result(PinResult::Valid, c.now);
    assert_eq!(
        c.actions(),
        vec![Action::Join {
            conference: contoso("123456789"),
            role: Role::Leader
        }]
    );
    assert!(c.ivr.is_done());
    assert_eq!(c.ivr.poll_timeout(), None);
}

#[test]
fn participant_joins_with_pound() {
    let mut c = Call::new();
    c.reach_pin_prompt("987654321#");
    c.key("#");
    assert_eq!(
        c.actions(),
        vec![Action::Join {
            conference: contoso("987654321"),
            role: Role::Participant
        }]
    );
    assert!(c.ivr.is_done());
}

#[test]
fn wrong_id_three_times_says_goodbye_and_hangs_up() {
    let mut c = Call::new();
    c.actions();
    c.finished(PromptId::Welcome);
    for attempt in 1..=3 {
        c.key("111111#");
        let got = c.serve();
        if attempt < 3 {
            assert_eq!(got.last(), Some(&play(PromptId::NotFound, true)));
            c.finished(PromptId::NotFound);
        } else {
            assert_eq!(got.last(), Some(&play(PromptId::Goodbye, false)));
        }
    }
    // Digits during goodbye do nothing.
    c.key("123456789#");
    assert_eq!(c.actions(), vec![]);
    c.finished(PromptId::Goodbye);
    assert_eq!(
        c.actions(),
        vec![hangup(HangupReason::ConferenceIdAttemptsExhausted)]
    );
    assert!(c.ivr.is_done());
}

#[test]
fn too_short_id_is_a_wrong_attempt_without_a_lookup() {
    let mut c = Call::new();
    c.actions();
    c.finished(PromptId::Welcome);
    c.key("12345#");
    assert_eq!(c.actions(), vec![play(PromptId::NotFound, true)]);
    c.key("#");
    // `#` alone, barging in on the not-found prompt: another wrong attempt.
    assert_eq!(
        c.actions(),
        vec![Action::StopPrompt, play(PromptId::NotFound, true)]
    );
}

#[test]
fn wrong_pin_three_times_says_goodbye_and_hangs_up() {
    let mut c = Call::new();
    c.reach_pin_prompt("123456789#");
    for attempt in 1..=3 {
        c.key("11111#");
        let got = c.serve();
        assert!(
            got.iter().any(|a| matches!(a, Action::VerifyPin { .. })),
            "{got:?}"
        );
        if attempt < 3 {
            assert_eq!(got.last(), Some(&play(PromptId::WrongPin, true)));
            c.finished(PromptId::WrongPin);
        } else {
            assert_eq!(got.last(), Some(&play(PromptId::Goodbye, false)));
        }
    }
    c.finished(PromptId::Goodbye);
    assert_eq!(
        c.actions(),
        vec![hangup(HangupReason::PinAttemptsExhausted)]
    );
}

#[test]
fn wrong_pin_then_right_pin_joins_as_leader() {
    let mut c = Call::new();
    c.reach_pin_prompt("123456789#");
    c.key("1357#");
    assert_eq!(c.serve().last(), Some(&play(PromptId::WrongPin, true)));
    c.key("13579#");
    let got = c.serve();
    assert_eq!(
        got.last(),
        Some(&Action::Join {
            conference: contoso("123456789"),
            role: Role::Leader
        })
    );
    // Barge-in stopped the wrong-pin prompt at the first digit.
    assert_eq!(got.first(), Some(&Action::StopPrompt));
}

#[test]
fn too_short_pin_is_wrong_without_a_check() {
    let mut c = Call::new();
    c.reach_pin_prompt("123456789#");
    c.key("135#");
    assert_eq!(c.actions(), vec![play(PromptId::WrongPin, true)]);
}

#[test]
fn first_digit_timeout_three_times_hangs_up_for_no_input() {
    let mut c = Call::new();
    c.actions();
    c.finished(PromptId::Welcome);
    let finished_at = c.now;
    c.time_out();
    assert_eq!(c.now, finished_at + T5);
    assert_eq!(c.actions(), vec![play(PromptId::Welcome, true)]);
    assert_eq!(c.ivr.poll_timeout(), None);
    c.finished(PromptId::Welcome);
    c.time_out();
    assert_eq!(c.actions(), vec![play(PromptId::Welcome, true)]);
    c.finished(PromptId::Welcome);
    c.time_out();
    assert_eq!(c.actions(), vec![play(PromptId::Goodbye, false)]);
    c.finished(PromptId::Goodbye);
    assert_eq!(c.actions(), vec![hangup(HangupReason::NoInput)]);
}

#[test]
fn timer_does_not_fire_early() {
    let mut c = Call::new();
    c.actions();
    c.finished(PromptId::Welcome);
    let due = c.ivr.poll_timeout().unwrap();
    c.ivr.handle_timeout(due - Duration::from_millis(1));
    assert_eq!(c.actions(), vec![]);
    assert_eq!(c.ivr.poll_timeout(), Some(due));
}

#[test]
fn inter_digit_timeout_counts_as_an_attempt() {
    let mut c = Call::new();
    c.actions();
    c.finished(PromptId::Welcome);
    c.key("1234");
    let last_digit = c.now;
    assert_eq!(c.ivr.poll_timeout(), Some(last_digit + T5));
    c.time_out();
    assert_eq!(c.actions(), vec![play(PromptId::Welcome, true)]);
    // The half-keyed digits are gone: a full ID now works.
    c.finished(PromptId::Welcome);
    c.key("123456789#");
    let got = c.serve();
    assert_eq!(got.last(), Some(&play(PromptId::EnterPin, true)));
    // PIN entry: inter-digit timeout twice, then once more with nothing keyed.
    c.finished(PromptId::EnterPin);
    c.key("13");
    c.time_out();
    assert_eq!(c.actions(), vec![play(PromptId::EnterPin, true)]);
    c.finished(PromptId::EnterPin);
    c.key("135");
    c.time_out();
    assert_eq!(c.actions(), vec![play(PromptId::EnterPin, true)]);
    c.finished(PromptId::EnterPin);
    c.key("1");
    c.time_out();
    assert_eq!(c.actions(), vec![play(PromptId::Goodbye, false)]);
    c.finished(PromptId::Goodbye);
    assert_eq!(
        c.actions(),
        vec![hangup(HangupReason::PinAttemptsExhausted)]
    );
}

#[test]
fn custom_timeouts_are_used() {
    let now = Instant::now();
    let mut config = IvrConfig::new(TenantId::new("contoso"));
    config.first_digit_timeout = Duration::from_secs(8);
    config.inter_digit_timeout = Duration::from_secs(2);
    let mut ivr = Ivr::new(config, now);
    ivr.handle_prompt_finished(PromptId::Welcome, now);
    assert_eq!(ivr.poll_timeout(), Some(now + Duration::from_secs(8)));
    ivr.handle_digit(Digit::One, now);
    assert_eq!(ivr.poll_timeout(), Some(now + Duration::from_secs(2)));
}

#[test]
fn star_clears_what_was_keyed() {
    let mut c = Call::new();
    c.actions();
    c.finished(PromptId::Welcome);
    c.key("555*123456789#");
    let got = c.actions();
    assert_eq!(
        got,
        vec![Action::LookupConference {
            tenant: TenantId::new("contoso"),
            conference_id: ConferenceId::parse("123456789").unwrap(),
        }]
    );
    c.ivr
        .handle_lookup_result(LookupResult::Found(contoso("123456789")), c.now);
    c.actions();
    // In PIN entry too: a mistyped PIN cleared, then the right one.
    c.key("999*13579#");
    let actions = c.actions();
    let Some(Action::VerifyPin { pin, .. }) = actions.last() else {
        panic!("{actions:?}");
    };
    assert_eq!(pin.expose(), "13579");
    // `*` then `#` with nothing keyed: a participant.
    let mut c = Call::new();
    c.reach_pin_prompt("123456789#");
    c.key("12*#");
    assert_eq!(
        c.actions().last(),
        Some(&Action::Join {
            conference: contoso("123456789"),
            role: Role::Participant
        })
    );
}

#[test]
fn barge_in_stops_the_prompt_once() {
    let mut c = Call::new();
    c.actions();
    // Digits while the welcome plays.
    c.key("12");
    assert_eq!(c.actions(), vec![Action::StopPrompt]);
    let due = c.ivr.poll_timeout();
    assert_eq!(due, Some(c.now + T5));
    // A late finish of the stopped prompt changes nothing.
    c.ivr.handle_prompt_finished(PromptId::Welcome, c.now);
    assert_eq!(c.ivr.poll_timeout(), due);
    c.key("3456789#");
    assert!(matches!(
        c.actions().as_slice(),
        [Action::LookupConference { .. }]
    ));
    // The goodbye prompt is not barge-in.
    let mut c = Call::new();
    c.actions();
    for _ in 0..3 {
        c.key("#");
    }
    assert_eq!(c.actions().last(), Some(&play(PromptId::Goodbye, false)));
    c.key("1");
    assert_eq!(c.actions(), vec![]);
}

#[test]
fn id_of_another_tenant_is_not_found() {
    let mut c = Call::new();
    c.actions();
    c.finished(PromptId::Welcome);
    // fabrikam's conference keyed on a contoso number.
    c.key("555000111#");
    let got = c.serve();
    assert_eq!(
        got.first(),
        Some(&Action::LookupConference {
            tenant: TenantId::new("contoso"),
            conference_id: ConferenceId::parse("555000111").unwrap(),
        })
    );
    assert_eq!(got.last(), Some(&play(PromptId::NotFound, true)));
    // A directory that wrongly answers with another tenant's conference is refused.
    c.key("555000111#");
    c.actions();
    let other = ConferenceKey {
        tenant: TenantId::new("fabrikam"),
        id: ConferenceId::parse("555000111").unwrap(),
    };
    c.ivr
        .handle_lookup_result(LookupResult::Found(other), c.now);
    assert_eq!(c.actions(), vec![play(PromptId::NotFound, true)]);
    // On a fabrikam number the same ID is found.
    let mut c = Call::on(TenantId::new("fabrikam"));
    c.reach_pin_prompt("555000111#");
    c.key("9999#");
    assert!(matches!(
        c.serve().last(),
        Some(Action::Join {
            role: Role::Leader,
            ..
        })
    ));
}

#[test]
fn long_input_is_cut_off() {
    let mut c = Call::new();
    c.actions();
    c.key("12345678901234567890#");
    let got = c.actions();
    assert_eq!(
        got.last(),
        Some(&Action::LookupConference {
            tenant: TenantId::new("contoso"),
            conference_id: ConferenceId::parse("123456789012").unwrap(),
        })
    );
}

#[test]
fn pin_never_appears_in_debug_output() {
    let mut c = Call::new();
    c.reach_pin_prompt("987654321#");
    c.key("24680");
    let state = format!("{:?}", c.ivr);
    assert!(!state.contains("24680"), "{state}");
    c.key("#");
    let actions = c.actions();
    let shown = format!("{actions:?}");
    assert!(!shown.contains("24680"), "{shown}");
    assert!(shown.contains("***"), "{shown}");
}

#[test]
fn directory_failures_and_refusal_hang_up_with_a_reason() {
    // Lookup times out.
    let mut c = Call::new();
    c.actions();
    c.key("123456789#");
    c.actions();
    assert_eq!(c.ivr.poll_timeout(), Some(c.now + Duration::from_secs(10)));
    c.time_out();
    assert_eq!(c.actions(), vec![play(PromptId::Goodbye, false)]);
    // The late answer is ignored.
    c.ivr
        .handle_lookup_result(LookupResult::Found(contoso("123456789")), c.now);
    assert_eq!(c.actions(), vec![]);
    c.finished(PromptId::Goodbye);
    assert_eq!(
        c.actions(),
        vec![hangup(HangupReason::DirectoryUnavailable)]
    );

    // Lookup fails.
    let mut c = Call::new();
    c.actions();
    c.key("123456789#");
    c.actions();
    c.ivr.handle_lookup_result(LookupResult::Failed, c.now);
    assert_eq!(c.actions(), vec![play(PromptId::Goodbye, false)]);

    // PIN entry refused (guessing defence), and the goodbye prompt never reports
    // its end: the goodbye timeout hangs up anyway.
    let mut c = Call::new();
    c.reach_pin_prompt("123456789#");
    c.key("13579#");
    c.actions();
    c.ivr.handle_pin_result(PinResult::Refused, c.now);
    assert_eq!(c.actions(), vec![play(PromptId::Goodbye, false)]);
    c.time_out();
    assert_eq!(c.actions(), vec![hangup(HangupReason::PinEntryRefused)]);
    assert!(c.ivr.is_done());
}

#[test]
fn results_out_of_turn_and_unused_keys_are_ignored() {
    let mut c = Call::new();
    c.actions();
    c.ivr.handle_pin_result(PinResult::Valid, c.now);
    c.ivr
        .handle_lookup_result(LookupResult::Found(contoso("123456789")), c.now);
    c.ivr.handle_digit(Digit::A, c.now);
    c.ivr.handle_prompt_finished(PromptId::EnterPin, c.now);
    assert_eq!(c.actions(), vec![]);
    assert_eq!(c.ivr.poll_timeout(), None);
    // Digits while the lookup runs are dropped.
    c.key("123456789#");
    c.actions();
    c.key("99");
    c.ivr
        .handle_lookup_result(LookupResult::Found(contoso("123456789")), c.now);
    c.actions();
    c.key("13579#");
    let actions = c.actions();
    let Some(Action::VerifyPin { pin, .. }) = actions.last() else {
        panic!("{actions:?}");
    };
    assert_eq!(pin.expose(), "13579");
}

#[test]
fn prompt_file_stems() {
    assert_eq!(PromptId::WaitingForLeader.file_stem(), "waiting-for-leader");
    assert_eq!(PromptId::EnterPin.file_stem(), "enter-pin");
}

/// The IVR reports each failed attempt itself, sorted: a wrong ID (the directory said
/// no), a too-short one (refused unchecked), then a wrong and a too-short PIN, and an
/// entry left to time out — the caller's metrics count these, not guesses from outside.
#[test]
fn every_failed_entry_is_reported_with_its_kind() {
    let f = |entry, kind| EntryFailure { entry, kind };
    let mut call = Call::new();
    call.actions();
    call.finished(PromptId::Welcome);
    call.key("111111111#");
    call.serve();
    call.key("12#");
    call.serve();
    assert_eq!(
        call.failures,
        [
            f(Entry::ConferenceId, FailureKind::Wrong),
            f(Entry::ConferenceId, FailureKind::TooShort)
        ]
    );
    call.failures.clear();
    // A third failed attempt would end the call: go in instead.
    call.key("123456789#");
    call.serve();
    call.key("11111#");
    call.serve();
    call.key("1#");
    call.serve();
    assert_eq!(
        call.failures,
        [
            f(Entry::Pin, FailureKind::Wrong),
            f(Entry::Pin, FailureKind::TooShort)
        ]
    );

    let mut idle = Call::new();
    idle.actions();
    idle.finished(PromptId::Welcome);
    idle.time_out();
    idle.actions();
    assert_eq!(
        idle.failures,
        [f(Entry::ConferenceId, FailureKind::TimedOut)]
    );
}
