//! End to end through the public API: key presses from every DTMF source drive the
//! entry IVR, whose `Join` puts calls into a room, with the guessing defence in the
//! loop. Directory answers come from the demo organisers (fixtures/demo.toml).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use dialbridge_conference::Digit;
use dialbridge_conference::dtmf::{CallDtmf, encode_telephone_event, signal};
use dialbridge_conference::guard::{CallerKey, GuardConfig, GuessGuard, PinEntry};
use dialbridge_conference::ivr::{
    Action, ConferenceId, ConferenceKey, Ivr, IvrConfig, LookupResult, PinResult, PromptId, Role,
    TenantId,
};
use dialbridge_conference::room::{MemberId, Room, RoomAction, RoomConfig};

/// tenant, conference ID, leader PIN, participants wait for the leader.
const ORGANISERS: [(&str, &str, &str, bool); 3] = [
    ("contoso", "123456789", "13579", false),
    ("contoso", "987654321", "24680", true),
    ("fabrikam", "555000111", "9999", false),
];

enum Via {
    InBand,
    Rfc4733,
    Info,
}

/// One caller: DTMF in, IVR in the middle, a clock.
struct Caller {
    key: CallerKey,
    dtmf: CallDtmf,
    ivr: Ivr,
    now: Instant,
    seq: u16,
    ts: u32,
    joined: Option<(ConferenceKey, Role)>,
    hung_up: bool,
}

impl Caller {
    fn new(name: &str, tenant: &str, t0: Instant) -> Self {
        Self {
            key: CallerKey(name.to_owned()),
            dtmf: CallDtmf::default(),
            ivr: Ivr::new(IvrConfig::new(TenantId::new(tenant)), t0),
            now: t0,
            seq: 0,
            ts: 0,
            joined: None,
            hung_up: false,
        }
    }

    /// Sends `keys` over one DTMF source, 20 ms at a time, serving the IVR's
    /// actions (prompts end at once: every prompt is barge-in anyway).
    fn key(&mut self, keys: &str, via: Via, guard: &mut GuessGuard) {
        for c in keys.chars() {
            let d = Digit::from_char(c).unwrap();
            match via {
                Via::InBand => self.press_in_band(d),
                Via::Rfc4733 => self.press_rfc4733(d),
                Via::Info => {
                    let body = format!("Signal={c}\r\nDuration=160\r\n");
                    let got = self
                        .dtmf
                        .handle_info("application/dtmf-relay", body.as_bytes(), self.now)
                        .unwrap();
                    self.deliver(got);
                    self.silence(10);
                }
            }
            self.serve(guard);
        }
    }

    fn press_in_band(&mut self, d: Digit) {
        let (r, c) = signal::freqs(d);
        for i in 0..4 {
            let mut frame = vec![0.0f32; 160];
            signal::add_tones(&mut frame, i * 160, &[(r, 5000.0), (c, 5000.0)]);
            signal::add_noise(&mut frame, u64::from(self.seq) + i as u64, 300.0);
            let got = self.dtmf.handle_audio(&signal::to_pcm(&frame), self.now);
            self.deliver(got);
            self.tick();
        }
        self.silence(4);
    }

    fn press_rfc4733(&mut self, d: Digit) {
        for i in 0..6u16 {
            let end = i >= 3;
            let p = encode_telephone_event(d.event(), end, 10, i.min(3) * 160);
            self.seq = self.seq.wrapping_add(1);
            let got = self
                .dtmf
                .handle_telephone_event(&p, self.ts, self.seq, i == 0, self.now)
                .unwrap();
            self.deliver(got);
            self.silence(1);
        }
        self.ts = self.ts.wrapping_add(1600);
        self.silence(3);
    }

    fn silence(&mut self, frames: usize) {
        for _ in 0..frames {
            let got = self.dtmf.handle_audio(&[0; 160], self.now);
            self.deliver(got);
            self.tick();
        }
    }

    fn tick(&mut self) {
        self.now += Duration::from_millis(20);
        self.seq = self.seq.wrapping_add(1);
        self.dtmf.handle_timeout(self.now);
        self.ivr.handle_timeout(self.now);
    }

    fn deliver(&mut self, d: Option<Digit>) {
        if let Some(d) = d {
            self.ivr.handle_digit(d, self.now);
        }
    }

    /// Plays the part of the server: the directory, the guard, the prompts.
    fn serve(&mut self, guard: &mut GuessGuard) {
        while let Some(a) = self.ivr.poll_action() {
            match a {
                Action::PlayPrompt { prompt, .. } => {
                    if prompt == PromptId::Goodbye {
                        self.ivr.handle_prompt_finished(prompt, self.now);
                    }
                }
                // The server counts these for its metrics; nothing to play.
                Action::StopPrompt | Action::EntryFailed(_) => {}
                Action::LookupConference {
                    tenant,
                    conference_id,
                } => {
                    let found = ORGANISERS.iter().any(|(t, id, _, _)| {
                        *t == tenant.as_str() && *id == conference_id.as_str()
                    });
                    let r = if found {
                        LookupResult::Found(ConferenceKey {
                            tenant,
                            id: conference_id,
                        })
                    } else {
                        guard.handle_wrong_id(&self.key, self.now);
                        LookupResult::NotFound
                    };
                    self.ivr.handle_lookup_result(r, self.now);
                }
                Action::VerifyPin { conference, pin } => {
                    let entry = guard.pin_entry(&self.key, &conference, self.now);
                    let r = if entry == PinEntry::Refused {
                        PinResult::Refused
                    } else if ORGANISERS.iter().any(|(t, id, p, _)| {
                        *t == conference.tenant.as_str()
                            && *id == conference.id.as_str()
                            && *p == pin.expose()
                    }) {
                        guard.handle_pin_ok(&self.key);
                        PinResult::Valid
                    } else {
                        guard.handle_wrong_pin(&self.key, &conference, self.now);
                        PinResult::Invalid
                    };
                    self.ivr.handle_pin_result(r, self.now);
                }
                Action::Join { conference, role } => self.joined = Some((conference, role)),
                Action::Hangup { .. } => self.hung_up = true,
            }
        }
    }
}

fn room_for(key: &ConferenceKey) -> Room {
    let wait = ORGANISERS
        .iter()
        .find(|(t, id, _, _)| *t == key.tenant.as_str() && *id == key.id.as_str())
        .map(|o| o.3)
        .unwrap();
    Room::new(RoomConfig::new(wait, 100))
}

#[test]
fn participant_waits_in_the_lobby_until_the_leader_keys_the_pin() {
    let t0 = Instant::now();
    let mut guard = GuessGuard::new(GuardConfig::default());

    // A PSTN caller keys the ID with in-band tones and `#` as RFC 4733.
    let mut alice = Caller::new("sip:+33612345678@telco-a", "contoso", t0);
    alice.key("987654321#", Via::InBand, &mut guard);
    // The PIN prompt plays; she presses `#` a second later (a `#` from another
    // source within the combiner's window would be taken for the same press).
    alice.silence(50);
    alice.key("#", Via::Rfc4733, &mut guard);
    let (conference, role) = alice.joined.clone().unwrap();
    assert_eq!(conference.id, ConferenceId::parse("987654321").unwrap());
    assert_eq!(role, Role::Participant);

    let mut room = room_for(&conference);
    room.handle_join(MemberId(1), role, alice.now);
    assert_eq!(
        room.poll_action(),
        Some(RoomAction::PlayPrompt {
            member: MemberId(1),
            prompt: PromptId::WaitingForLeader
        })
    );

    // The organiser keys the ID by RFC 4733 and the PIN by SIP INFO.
    let mut megan = Caller::new("sip:megan@contoso.com", "contoso", t0);
    megan.key("987654321#", Via::Rfc4733, &mut guard);
    megan.key("24680#", Via::Info, &mut guard);
    let (conference, role) = megan.joined.clone().unwrap();
    assert_eq!(role, Role::Leader);
    room.handle_join(MemberId(2), role, megan.now);
    let actions: Vec<_> = std::iter::from_fn(|| room.poll_action()).collect();
    assert!(actions.contains(&RoomAction::Admit {
        member: MemberId(1)
    }));
    assert!(actions.contains(&RoomAction::Admit {
        member: MemberId(2)
    }));
    assert_eq!(room.lobby().count(), 0);
    assert_eq!(conference.tenant, TenantId::new("contoso"));
}

#[test]
fn another_tenants_id_and_a_pin_guesser_are_turned_away() {
    let t0 = Instant::now();
    let mut guard = GuessGuard::new(GuardConfig {
        max_failures_per_caller: 5,
        ..GuardConfig::default()
    });
    // fabrikam's conference on a contoso number: not found, three times.
    let mut eve = Caller::new("sip:eve@198.51.100.7", "contoso", t0);
    for _ in 0..3 {
        eve.key("555000111#", Via::Rfc4733, &mut guard);
    }
    assert!(eve.hung_up);
    assert!(eve.joined.is_none());

    // Eve calls again and guesses the leader PIN of a real conference: after two
    // more wrong PINs (five failures in all) her PIN entry is refused, even for
    // the right PIN.
    let mut eve = Caller::new("sip:eve@198.51.100.7", "contoso", eve.now);
    eve.key("123456789#", Via::Info, &mut guard);
    eve.key("0000#", Via::Info, &mut guard);
    eve.key("1111#", Via::Info, &mut guard);
    assert!(!guard.id_entry_allowed(&eve.key, eve.now));
    assert!(eve.joined.is_none());
    // She is still in PIN entry with one attempt left: the right PIN is refused.
    eve.key("13579#", Via::Info, &mut guard);
    assert!(eve.hung_up);
    assert!(eve.joined.is_none());
}
