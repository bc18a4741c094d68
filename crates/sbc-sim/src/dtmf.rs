//! DTMF the way a caller sends it: RFC 4733 telephone-events in the RTP stream, or
//! SIP INFO with an `application/dtmf-relay` body (the de-facto format of Cisco and
//! most SBCs; RFC 6086 carries it but does not define it).
//!
//! [`Rfc4733Sender`] is pure: the media task asks it, once per 20 ms tick, whether
//! that tick carries audio or an event packet. One key becomes the RFC 4733 §2.5
//! sequence: a first packet with the marker bit, continuation packets whose duration
//! grows by one packet time, then three end packets (§2.5.1.4) with the final
//! duration — all with the timestamp of the event's start — then a pause of audio.

use std::collections::VecDeque;

/// How the caller keys DTMF.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DtmfMode {
    /// RFC 4733 events on the negotiated telephone-event payload type.
    #[default]
    Rfc4733,
    /// SIP INFO, `application/dtmf-relay`.
    Info,
    /// The keys' tones in the audio itself (ITU-T Q.23), for trunks without
    /// telephone-event.
    InBand,
    /// The keys' tones in the audio, on a call that offers telephone-event all the
    /// same: a PSTN gateway that negotiates RFC 4733 but passes DTMF through as audio.
    InBandWithTelephoneEvent,
}

/// Event volume we send: 10 means -10 dBm0 (RFC 4733 §2.3.4; DTMF is sent at
/// -8 to -10 dBm0 by most gateways).
pub const VOLUME: u8 = 10;
/// How long each key is held, ms.
pub const KEY_MS: u32 = 100;
/// Audio between two keys, ms (ITU-T Q.24 asks for at least 40 ms).
pub const GAP_MS: u32 = 60;
/// How many times the end packet is sent (RFC 4733 §2.5.1.4 recommends three).
pub const END_PACKETS: u8 = 3;
/// Most keys queued in one sender.
pub const MAX_QUEUED: usize = 256;

/// The RFC 4733 §3.2 event code of a key: `0`-`9` are 0-9, `*` 10, `#` 11, `A`-`D`
/// 12-15.
pub fn event_code(key: char) -> Option<u8> {
    match key {
        '0'..='9' => Some(key as u8 - b'0'),
        '*' => Some(10),
        '#' => Some(11),
        'A'..='D' => Some(key as u8 - b'A' + 12),
        'a'..='d' => Some(key as u8 - b'a' + 12),
        _ => None,
    }
}

/// The body of a SIP INFO for one key (`application/dtmf-relay`).
pub fn info_body(key: char, duration_ms: u32) -> String {
    format!("Signal={key}\r\nDuration={duration_ms}\r\n")
}

/// One telephone-event payload (RFC 4733 §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventPayload {
    /// The event code.
    pub event: u8,
    /// E bit: the event has ended.
    pub end: bool,
    /// Volume, 0-63 (-dBm0).
    pub volume: u8,
    /// Duration so far, in timestamp units.
    pub duration: u16,
}

impl EventPayload {
    /// The four payload bytes.
    pub fn to_bytes(self) -> [u8; 4] {
        let d = self.duration.to_be_bytes();
        [
            self.event,
            (u8::from(self.end) << 7) | (self.volume & 0x3F),
            d[0],
            d[1],
        ]
    }
}

/// What one 20 ms tick carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TickPacket {
    /// An audio frame (no key being sent); `marker` after an event (a new talkspurt).
    Audio {
        /// Set on the first audio packet after an event.
        marker: bool,
    },
    /// A telephone-event packet.
    Event {
        /// The payload.
        payload: EventPayload,
        /// M bit: only on the first packet of an event (§2.5.1.3).
        marker: bool,
        /// RTP timestamp: the event's start, the same in every packet of it.
        timestamp: u32,
    },
}

/// Sends queued keys as RFC 4733 packets, one decision per tick.
#[derive(Debug)]
pub struct Rfc4733Sender {
    queue: VecDeque<u8>,
    current: Option<Active>,
    /// Ticks of audio still owed before the next key.
    gap_ticks: u32,
    /// Samples per tick (160 for 20 ms at 8 kHz).
    tick_samples: u32,
    /// Samples per key.
    key_samples: u32,
    gap_after: u32,
    resume_marker: bool,
}

#[derive(Debug, Clone, Copy)]
struct Active {
    event: u8,
    start: u32,
    elapsed: u32,
    ends_sent: u8,
}

impl Rfc4733Sender {
    /// A sender with ticks of `tick_ms` (the packet time), keys held `key_ms`,
    /// `gap_ms` of audio between keys.
    pub fn new(tick_ms: u32, key_ms: u32, gap_ms: u32) -> Self {
        let tick_ms = tick_ms.max(1);
        Rfc4733Sender {
            queue: VecDeque::new(),
            current: None,
            gap_ticks: 0,
            tick_samples: tick_ms * 8,
            // At least two packets per key so a receiver sees start and end apart.
            key_samples: key_ms.max(2 * tick_ms) * 8,
            gap_after: gap_ms.div_ceil(tick_ms),
            resume_marker: false,
        }
    }

    /// Queues keys; returns false (queuing nothing) when one is not a DTMF key or the
    /// queue would exceed [`MAX_QUEUED`].
    pub fn queue(&mut self, keys: &str) -> bool {
        let Some(codes) = keys.chars().map(event_code).collect::<Option<Vec<u8>>>() else {
            return false;
        };
        if self.queue.len() + codes.len() > MAX_QUEUED {
            return false;
        }
        self.queue.extend(codes);
        true
    }

    /// True when nothing is queued or being sent (the gap after the last key included).
    pub fn is_idle(&self) -> bool {
        self.queue.is_empty() && self.current.is_none() && self.gap_ticks == 0
    }

    /// What the tick whose audio would carry RTP timestamp `timestamp` sends.
    pub fn on_tick(&mut self, timestamp: u32) -> TickPacket {
        if let Some(active) = self.current.as_mut() {
            if active.elapsed < self.key_samples {
                active.elapsed = (active.elapsed + self.tick_samples).min(self.key_samples);
            }
            let end = active.elapsed >= self.key_samples;
            if end {
                active.ends_sent += 1;
            }
            let packet = event_packet(*active, end, false);
            if active.ends_sent >= END_PACKETS {
                self.current = None;
                self.gap_ticks = self.gap_after;
                self.resume_marker = true;
            }
            return packet;
        }
        if self.gap_ticks > 0 {
            self.gap_ticks -= 1;
            return self.audio();
        }
        if let Some(event) = self.queue.pop_front() {
            let active = Active {
                event,
                start: timestamp,
                elapsed: self.tick_samples,
                ends_sent: 0,
            };
            self.current = Some(active);
            return event_packet(active, false, true);
        }
        self.audio()
    }

    fn audio(&mut self) -> TickPacket {
        TickPacket::Audio {
            marker: std::mem::take(&mut self.resume_marker),
        }
    }
}

/// The row and column frequencies of an RFC 4733 event code (ITU-T Q.23).
fn key_frequencies(event: u8) -> Option<(f64, f64)> {
    const ROWS: [f64; 4] = [697.0, 770.0, 852.0, 941.0];
    const COLS: [f64; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
    // Keypad position (row, column) of events 0–9, * (10), # (11), A–D (12–15).
    let (r, c) = match event {
        0 => (3, 1),
        1..=9 => ((usize::from(event) - 1) / 3, (usize::from(event) - 1) % 3),
        10 => (3, 0),
        11 => (3, 2),
        12..=15 => (usize::from(event) - 12, 3),
        _ => return None,
    };
    Some((ROWS[r], COLS[c]))
}

/// Writes 20 ms of the key's two tones into `frame` (8 kHz), `start` samples into the
/// key so the phase runs on across frames; each tone at about -9 dBm0.
pub fn tone_into(event: u8, start: u32, frame: &mut [i16]) {
    tone_into_at(event, start, frame, 8000);
}

/// [`tone_into`] for a frame sampled at `rate` Hz (`start` counted at that rate).
pub fn tone_into_at(event: u8, start: u32, frame: &mut [i16], rate: u32) {
    let Some((low, high)) = key_frequencies(event) else {
        return;
    };
    let rate = f64::from(rate.max(1));
    for (i, sample) in frame.iter_mut().enumerate() {
        let t = f64::from(start.wrapping_add(i as u32)) / rate;
        let v = 5000.0 * (std::f64::consts::TAU * low * t).sin()
            + 5000.0 * (std::f64::consts::TAU * high * t).sin();
        *sample = v as i16;
    }
}

fn event_packet(active: Active, end: bool, marker: bool) -> TickPacket {
    TickPacket::Event {
        payload: EventPayload {
            event: active.event,
            end,
            volume: VOLUME,
            // Durations above 65535 would need segments (§2.5.1.3); keys are short.
            duration: u16::try_from(active.elapsed).unwrap_or(u16::MAX),
        },
        marker,
        timestamp: active.start,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_band_tones_are_the_keypad_pairs() {
        assert_eq!(key_frequencies(1), Some((697.0, 1209.0)));
        assert_eq!(key_frequencies(5), Some((770.0, 1336.0)));
        assert_eq!(key_frequencies(9), Some((852.0, 1477.0)));
        assert_eq!(key_frequencies(0), Some((941.0, 1336.0)));
        assert_eq!(key_frequencies(10), Some((941.0, 1209.0)));
        assert_eq!(key_frequencies(11), Some((941.0, 1477.0)));
        assert_eq!(key_frequencies(15), Some((941.0, 1633.0)));
        let mut frame = [0i16; 160];
        tone_into(11, 0, &mut frame);
        let power = |hz: f64| crate::audio_check::goertzel_power(&frame, hz, 8000.0);
        assert!(power(941.0) > 50.0 * power(1209.0));
        assert!(power(1477.0) > 50.0 * power(1336.0));
        let mut wide = [0i16; 960];
        tone_into_at(11, 0, &mut wide, 48_000);
        let power = |hz: f64| crate::audio_check::goertzel_power(&wide, hz, 48_000.0);
        assert!(power(941.0) > 50.0 * power(1209.0));
        assert!(power(1477.0) > 50.0 * power(1336.0));
    }

    fn event(payload: EventPayload) -> (u8, bool, u16) {
        (payload.event, payload.end, payload.duration)
    }

    #[test]
    fn one_key_is_start_continuations_and_three_ends_on_one_timestamp() {
        let mut s = Rfc4733Sender::new(20, 100, 60);
        assert!(s.queue("5"));
        let mut ts = 1000u32;
        let mut got = Vec::new();
        for _ in 0..12 {
            got.push(s.on_tick(ts));
            ts += 160;
        }
        let events: Vec<_> = got
            .iter()
            .filter_map(|p| match p {
                TickPacket::Event {
                    payload,
                    marker,
                    timestamp,
                } => Some((event(*payload), *marker, *timestamp)),
                TickPacket::Audio { .. } => None,
            })
            .collect();
        assert_eq!(
            events,
            vec![
                ((5, false, 160), true, 1000),
                ((5, false, 320), false, 1000),
                ((5, false, 480), false, 1000),
                ((5, false, 640), false, 1000),
                ((5, true, 800), false, 1000),
                ((5, true, 800), false, 1000),
                ((5, true, 800), false, 1000),
            ]
        );
        // Then the 60 ms gap (3 ticks) of audio, the first with the marker.
        assert_eq!(got[7], TickPacket::Audio { marker: true });
        assert_eq!(got[8], TickPacket::Audio { marker: false });
        assert!(s.is_idle());
    }

    #[test]
    fn keys_follow_each_other_after_the_gap_with_new_timestamps() {
        let mut s = Rfc4733Sender::new(20, 40, 40);
        assert!(s.queue("1#"));
        let mut ts = 0u32;
        let mut starts = Vec::new();
        let mut ticks = 0;
        while !s.is_idle() && ticks < 100 {
            if let TickPacket::Event {
                payload,
                marker: true,
                timestamp,
            } = s.on_tick(ts)
            {
                starts.push((payload.event, timestamp));
            }
            ts += 160;
            ticks += 1;
        }
        // Each key: a start tick and three end ticks, then two ticks of gap.
        assert_eq!(starts, vec![(1, 0), (11, 6 * 160)]);
        assert_eq!(ticks, 12);
    }

    #[test]
    fn payload_bytes_follow_rfc4733_figure_1() {
        let p = EventPayload {
            event: 11,
            end: true,
            volume: 10,
            duration: 800,
        };
        assert_eq!(p.to_bytes(), [11, 0x80 | 10, 0x03, 0x20]);
    }

    #[test]
    fn codes_and_refusals() {
        let codes: Vec<_> = "0123456789*#ABCDd".chars().map(event_code).collect();
        let want: Vec<_> = (0..16).chain([15]).map(Some).collect();
        assert_eq!(codes, want);
        let mut s = Rfc4733Sender::new(20, 100, 60);
        assert!(!s.queue("12x"));
        assert!(s.is_idle(), "nothing queued from a refused run");
        assert!(!s.queue(&"1".repeat(MAX_QUEUED + 1)));
        assert_eq!(info_body('#', 160), "Signal=#\r\nDuration=160\r\n");
    }
}
