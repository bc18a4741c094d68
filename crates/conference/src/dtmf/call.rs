//! All of one call's DTMF in one place: the RFC 4733 decoder, the in-band detector
//! and INFO bodies, merged by the [`Combiner`] so each key press comes out once.

use std::time::Instant;

use super::{Combiner, Digit, GoertzelDetector, Source, TelephoneEventDecoder, parse_info};
use crate::Error;

/// One call's DTMF sources and their combiner.
#[derive(Debug, Default)]
pub struct CallDtmf {
    events: TelephoneEventDecoder,
    tones: GoertzelDetector,
    combiner: Combiner,
}

impl CallDtmf {
    /// Built from its parts, for non-default timeouts and thresholds.
    pub fn new(events: TelephoneEventDecoder, tones: GoertzelDetector, combiner: Combiner) -> Self {
        Self {
            events,
            tones,
            combiner,
        }
    }

    /// A telephone-event RTP payload (see [`TelephoneEventDecoder::handle_packet`]);
    /// returns the digit if it is a new key press.
    pub fn handle_telephone_event(
        &mut self,
        payload: &[u8],
        timestamp: u32,
        seq: u16,
        marker: bool,
        now: Instant,
    ) -> Result<Option<Digit>, Error> {
        let held = self.events.active();
        let digit = self
            .events
            .handle_packet(payload, timestamp, seq, marker, now)?;
        match (digit, held) {
            (Some(d), _) => Ok(self.combiner.handle_digit(Source::Rfc4733, d, now)),
            // An update or end packet of the press in progress: its tone, found
            // however late in the audio, is still this press.
            (None, Some(d)) => {
                self.combiner.handle_held(Source::Rfc4733, d, now);
                Ok(None)
            }
            (None, None) => Ok(None),
        }
    }

    /// A decoded 8 kHz audio frame; returns a new key press found in it. Run it on
    /// every call, whether or not telephone-event was negotiated: gateways that
    /// negotiate it may still pass keys as tones, and the combiner counts a press
    /// heard both ways once. If a frame ever holds two (frames of several hundred
    /// ms), the second comes out with the next frame.
    pub fn handle_audio(&mut self, samples: &[i16], now: Instant) -> Option<Digit> {
        self.tones.handle_samples(samples);
        while let Some(d) = self.tones.poll_digit() {
            if let Some(d) = self.combiner.handle_digit(Source::InBand, d, now) {
                return Some(d);
            }
        }
        None
    }

    /// A digit an in-band detector elsewhere found (the room's clock, through a
    /// [`super::ToneListener`]) at `now`; returns it if it is a new key press, combined
    /// as [`Self::handle_audio`]'s.
    pub fn handle_in_band_digit(&mut self, digit: Digit, now: Instant) -> Option<Digit> {
        self.combiner.handle_digit(Source::InBand, digit, now)
    }

    /// The body of a SIP INFO (see [`parse_info`]); returns the digit if it is a new
    /// key press.
    pub fn handle_info(
        &mut self,
        content_type: &str,
        body: &[u8],
        now: Instant,
    ) -> Result<Option<Digit>, Error> {
        let info = parse_info(content_type, body)?;
        Ok(self.combiner.handle_digit(Source::Info, info.digit, now))
    }

    /// A digit from a SIP INFO already parsed elsewhere (the signaling side answers the
    /// INFO and relays the digit): the same combining as [`Self::handle_info`].
    pub fn handle_info_digit(&mut self, digit: Digit, now: Instant) -> Option<Digit> {
        self.combiner.handle_digit(Source::Info, digit, now)
    }

    /// When [`handle_timeout`](Self::handle_timeout) is next due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.events.poll_timeout()
    }

    /// Ends an RFC 4733 event whose end packets were lost.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.events.handle_timeout(now);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::dtmf::rfc4733::encode;
    use crate::dtmf::signal::{add_tones, freqs, to_pcm};

    #[test]
    fn long_event_with_late_in_band_detection_is_one_digit() {
        // A 2 s press of `0` by RFC 4733 with the tone in the audio too, but the
        // tone only starts 1 s in (far outside the combiner's window): the event
        // in progress still claims it.
        let t0 = Instant::now();
        let mut call = CallDtmf::default();
        let (r, c) = freqs(Digit::Zero);
        let mut out = Vec::new();
        for i in 0..110u16 {
            let now = t0 + Duration::from_millis(u64::from(i) * 20);
            if i < 100 {
                let ev = encode(0, false, 10, i * 160);
                out.extend(
                    call.handle_telephone_event(&ev, 1600, i, i == 0, now)
                        .unwrap(),
                );
            } else if i < 103 {
                let ev = encode(0, true, 10, 100 * 160);
                out.extend(
                    call.handle_telephone_event(&ev, 1600, i, false, now)
                        .unwrap(),
                );
            }
            let mut frame = vec![0.0f32; 160];
            if (50..100).contains(&i) {
                add_tones(
                    &mut frame,
                    usize::from(i) * 160,
                    &[(r, 5000.0), (c, 5000.0)],
                );
            }
            out.extend(call.handle_audio(&to_pcm(&frame), now));
        }
        assert_eq!(out, vec![Digit::Zero]);
    }

    /// Which part of a key's tone a gateway leaves in the audio.
    #[derive(Clone, Copy)]
    enum Leak {
        /// All of it (no squelch).
        Whole,
        /// Its first `ms`, before the squelch cuts in.
        Onset(u64),
        /// Its first `onset` ms and its last `tail` ms: the squelch let go early.
        OnsetAndTail(u64, u64),
        /// None: a perfect squelch.
        Nothing,
    }

    /// One key as a line sends it: the tone from `at` for `ms`, and (if `event`) the
    /// RFC 4733 event a gateway sends once its detector has heard 40 ms of it.
    #[derive(Clone, Copy)]
    struct Key {
        digit: Digit,
        at: u64,
        ms: u64,
        event: bool,
        leak: Leak,
    }

    const TICK_MS: u64 = 20;
    const GATEWAY_DETECT_MS: u64 = 40;

    /// Feeds a call what the line sends for `keys`, 20 ms a tick on a virtual clock,
    /// the audio `audio_lag` ms behind the events; returns the digits it reports.
    fn run_line(keys: &[Key], audio_lag: u64) -> Vec<Digit> {
        let t0 = Instant::now();
        let end = keys.iter().map(|k| k.at + k.ms).max().unwrap_or(0) + 1000;
        let samples = (end * 8) as usize;
        let mut audio = vec![0.0f32; samples];
        for k in keys {
            let (r, c) = freqs(k.digit);
            let mut tone = vec![0.0f32; (k.ms * 8) as usize];
            add_tones(&mut tone, 0, &[(r, 5000.0), (c, 5000.0)]);
            for (i, s) in tone.iter().enumerate() {
                let ms = i as u64 / 8;
                let audible = match k.leak {
                    Leak::Whole => true,
                    Leak::Onset(o) => ms < o,
                    Leak::OnsetAndTail(o, t) => ms < o || ms + t >= k.ms,
                    Leak::Nothing => false,
                };
                let at = ((k.at + audio_lag) * 8) as usize + i;
                if let Some(a) = audio.get_mut(at).filter(|_| audible) {
                    *a += s;
                }
            }
        }
        let pcm = to_pcm(&audio);
        let mut call = CallDtmf::default();
        let mut out = Vec::new();
        let mut seq = 0u16;
        for tick in 0..end / TICK_MS {
            let ms = tick * TICK_MS;
            let now = t0 + Duration::from_millis(ms);
            for k in keys.iter().filter(|k| k.event) {
                let start = k.at + GATEWAY_DETECT_MS;
                let stop = k.at + k.ms;
                // Updates each tick while the key is down, then three end packets.
                if ms < start || ms >= stop + 3 * TICK_MS {
                    continue;
                }
                let ended = ms >= stop;
                let duration = ((ms.min(stop) - start) * 8) as u16;
                let ev = encode(k.digit.event(), ended, 10, duration);
                seq = seq.wrapping_add(1);
                let marker = ms < start + TICK_MS;
                let ts = (start * 8) as u32;
                out.extend(
                    call.handle_telephone_event(&ev, ts, seq, marker, now)
                        .unwrap(),
                );
            }
            let frame = pcm.get((ms * 8) as usize..((ms + TICK_MS) * 8) as usize);
            out.extend(call.handle_audio(frame.unwrap_or_default(), now));
        }
        out
    }

    fn key(c: char, at: u64, event: bool, leak: Leak) -> Key {
        Key {
            digit: Digit::from_char(c).unwrap(),
            at,
            ms: 100,
            event,
            leak,
        }
    }

    fn digits(s: &str) -> Vec<Digit> {
        s.chars().filter_map(Digit::from_char).collect()
    }

    #[test]
    fn a_press_sent_as_event_and_tone_counts_once() {
        // However the gateway's squelch leaves the tone, and whichever comes first.
        for leak in [
            Leak::Whole,
            Leak::Onset(40),
            Leak::Onset(60),
            Leak::OnsetAndTail(40, 40),
            Leak::OnsetAndTail(30, 60),
            Leak::Nothing,
        ] {
            for lag in [0, 30, 80] {
                let keys = [key('5', 200, true, leak), key('8', 500, true, leak)];
                assert_eq!(run_line(&keys, lag), digits("58"), "lag {lag} ms");
            }
        }
        // A long press whose onset and tail leak, the tail found after the event's
        // end packets when the audio lags.
        let long = Key {
            ms: 1500,
            ..key('0', 200, true, Leak::OnsetAndTail(40, 80))
        };
        for lag in [0, 40, 120] {
            assert_eq!(run_line(&[long], lag), digits("0"), "lag {lag} ms");
        }
    }

    #[test]
    fn a_tone_alone_on_a_line_with_telephone_event_is_a_digit() {
        // Tones only, as a gateway that negotiated telephone-event but passes DTMF
        // as audio sends them.
        let keys = [
            key('1', 200, false, Leak::Whole),
            key('2', 360, false, Leak::Whole),
            key('#', 520, false, Leak::Whole),
        ];
        assert_eq!(run_line(&keys, 0), digits("12#"));
        // Events first, then tones alone for other keys and for the same key after
        // the window.
        let keys = [
            key('4', 200, true, Leak::Onset(40)),
            key('7', 360, false, Leak::Whole),
            key('4', 1200, false, Leak::Whole),
        ];
        assert_eq!(run_line(&keys, 0), digits("474"));
    }

    #[test]
    fn two_presses_of_one_key_count_twice() {
        // sbc-sim's timing (100 ms down, 60 ms up), events and tones both, the audio
        // on time or lagging the events by more than the pause.
        for leak in [
            Leak::Whole,
            Leak::Onset(40),
            Leak::OnsetAndTail(40, 40),
            Leak::Nothing,
        ] {
            for lag in [0, 30, 120] {
                let keys = [
                    key('5', 200, true, leak),
                    key('5', 360, true, leak),
                    key('6', 520, true, leak),
                    key('5', 680, true, leak),
                ];
                assert_eq!(run_line(&keys, lag), digits("5565"), "lag {lag} ms");
            }
        }
        // Tones only.
        let keys = [
            key('9', 200, false, Leak::Whole),
            key('9', 360, false, Leak::Whole),
        ];
        assert_eq!(run_line(&keys, 0), digits("99"));
    }

    #[test]
    fn info_and_rfc4733_for_the_same_press_count_once() {
        let t0 = Instant::now();
        let mut call = CallDtmf::default();
        let ev = encode(11, false, 10, 0);
        assert_eq!(
            call.handle_telephone_event(&ev, 800, 1, true, t0).unwrap(),
            Some(Digit::Pound)
        );
        let later = t0 + Duration::from_millis(80);
        let body = b"Signal=#\r\nDuration=160\r\n";
        assert_eq!(
            call.handle_info("application/dtmf-relay", body, later)
                .unwrap(),
            None
        );
        // The next press, by INFO only, is a digit.
        let next = t0 + Duration::from_secs(2);
        assert_eq!(
            call.handle_info("application/dtmf", b"4", next).unwrap(),
            Some(Digit::Four)
        );
        assert!(call.handle_info("application/dtmf", b"x", next).is_err());
        // Timeouts reach the decoder.
        assert_eq!(
            call.poll_timeout(),
            Some(t0 + super::super::DEFAULT_EVENT_TIMEOUT)
        );
        call.handle_timeout(t0 + Duration::from_secs(1));
        assert_eq!(call.poll_timeout(), None);
    }
}
