//! Merges the digits of the three DTMF sources of one call so that a key press
//! seen by two of them (RFC 4733 and in-band, INFO and RFC 4733...) counts once.
//!
//! Each source already reports a press once (the RFC 4733 decoder per event, the
//! Goertzel detector per tone, INFO per request). So a repeat from the *same*
//! source is always a new press, and a report from *another* source of the same
//! digit shortly after is the same press seen twice. That is the usual case with
//! clients such as baresip, which keep sending audio (carrying the tone, if the
//! phone generated it in-band too) while the RFC 4733 event is in progress.
//!
//! Known limit: two quick presses of one key, the first seen only by one source
//! and the second only by another, within the window, count once. Sources that
//! miss presses at random are rare; double counting is the common failure.

use std::time::{Duration, Instant};

use super::{Digit, Source};

/// How long after a press another source's report of the same digit is taken as
/// the same press: covers the in-band detector's 40 ms and network reordering of
/// an INFO against the RTP stream.
pub const DEFAULT_DUPLICATE_WINDOW: Duration = Duration::from_millis(500);

/// One call's DTMF combiner.
#[derive(Debug)]
pub struct Combiner {
    window: Duration,
    last: Option<Press>,
}

#[derive(Debug, Clone, Copy)]
struct Press {
    digit: Digit,
    /// Last report of this press by any source; each duplicate extends the window,
    /// so a long press reported late by a slow source is still one.
    at: Instant,
    rfc4733: bool,
    info: bool,
    in_band: bool,
}

impl Press {
    fn seen(&mut self, source: Source) -> &mut bool {
        match source {
            Source::Rfc4733 => &mut self.rfc4733,
            Source::Info => &mut self.info,
            Source::InBand => &mut self.in_band,
        }
    }
}

impl Default for Combiner {
    fn default() -> Self {
        Self::new(DEFAULT_DUPLICATE_WINDOW)
    }
}

impl Combiner {
    /// A combiner that merges reports within `window`.
    pub fn new(window: Duration) -> Self {
        Self { window, last: None }
    }

    /// A digit reported by `source`; returns it when it is a new key press, `None`
    /// when it is another source's report of the press just counted.
    pub fn handle_digit(&mut self, source: Source, digit: Digit, now: Instant) -> Option<Digit> {
        if let Some(p) = self.last.as_mut() {
            let recent = now.saturating_duration_since(p.at) <= self.window;
            if p.digit == digit && recent && !*p.seen(source) {
                *p.seen(source) = true;
                p.at = now;
                return None;
            }
        }
        let mut press = Press {
            digit,
            at: now,
            rfc4733: false,
            info: false,
            in_band: false,
        };
        *press.seen(source) = true;
        self.last = Some(press);
        Some(digit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(t0: Instant, n: u64) -> Instant {
        t0 + Duration::from_millis(n)
    }

    #[test]
    fn same_press_from_two_sources_counts_once() {
        let t0 = Instant::now();
        let mut c = Combiner::default();
        assert_eq!(
            c.handle_digit(Source::Rfc4733, Digit::Five, t0),
            Some(Digit::Five)
        );
        assert_eq!(
            c.handle_digit(Source::InBand, Digit::Five, ms(t0, 40)),
            None
        );
        assert_eq!(c.handle_digit(Source::Info, Digit::Five, ms(t0, 300)), None);
        // The in-band detector first, RFC 4733 second.
        assert_eq!(
            c.handle_digit(Source::InBand, Digit::Six, ms(t0, 1000)),
            Some(Digit::Six)
        );
        assert_eq!(
            c.handle_digit(Source::Rfc4733, Digit::Six, ms(t0, 1020)),
            None
        );
    }

    #[test]
    fn same_source_twice_is_two_presses() {
        let t0 = Instant::now();
        let mut c = Combiner::default();
        assert_eq!(
            c.handle_digit(Source::Rfc4733, Digit::One, t0),
            Some(Digit::One)
        );
        assert_eq!(
            c.handle_digit(Source::Rfc4733, Digit::One, ms(t0, 150)),
            Some(Digit::One)
        );
        // Both presses also heard in-band: each duplicate swallowed once.
        let mut c = Combiner::default();
        assert_eq!(
            c.handle_digit(Source::Rfc4733, Digit::One, t0),
            Some(Digit::One)
        );
        assert_eq!(c.handle_digit(Source::InBand, Digit::One, ms(t0, 40)), None);
        assert_eq!(
            c.handle_digit(Source::Rfc4733, Digit::One, ms(t0, 200)),
            Some(Digit::One)
        );
        assert_eq!(
            c.handle_digit(Source::InBand, Digit::One, ms(t0, 240)),
            None
        );
    }

    #[test]
    fn other_digit_or_outside_the_window_is_new() {
        let t0 = Instant::now();
        let mut c = Combiner::default();
        assert_eq!(
            c.handle_digit(Source::Info, Digit::Two, t0),
            Some(Digit::Two)
        );
        assert_eq!(
            c.handle_digit(Source::Rfc4733, Digit::Three, ms(t0, 10)),
            Some(Digit::Three)
        );
        assert_eq!(
            c.handle_digit(Source::InBand, Digit::Three, ms(t0, 600)),
            Some(Digit::Three)
        );
    }

    #[test]
    fn baresip_audio_during_an_event_is_not_a_second_digit() {
        use crate::dtmf::goertzel::signal::{add_tones, freqs, to_pcm};
        use crate::dtmf::rfc4733::encode;
        use crate::dtmf::{GoertzelDetector, TelephoneEventDecoder};

        // A 300 ms press of `8` sent as RFC 4733 events while the audio stream
        // keeps flowing and carries the tone too.
        let t0 = Instant::now();
        let mut rtp = TelephoneEventDecoder::default();
        let mut det = GoertzelDetector::default();
        let mut comb = Combiner::default();
        let (r, c) = freqs(Digit::Eight);
        let mut out = Vec::new();
        for i in 0..25u16 {
            let now = ms(t0, u64::from(i) * 20);
            let mut frame = vec![0.0f32; 160];
            if (2..17).contains(&i) {
                add_tones(
                    &mut frame,
                    usize::from(i) * 160,
                    &[(r, 5000.0), (c, 5000.0)],
                );
                let ev = encode(8, false, 10, (i - 2) * 160);
                if let Some(d) = rtp.handle_packet(&ev, 8000, 100 + i, i == 2, now).unwrap() {
                    out.extend(comb.handle_digit(Source::Rfc4733, d, now));
                }
            }
            if (17..20).contains(&i) {
                let ev = encode(8, true, 10, 15 * 160);
                rtp.handle_packet(&ev, 8000, 100 + i, false, now).unwrap();
            }
            det.handle_samples(&to_pcm(&frame));
            while let Some(d) = det.poll_digit() {
                out.extend(comb.handle_digit(Source::InBand, d, now));
            }
        }
        assert_eq!(out, vec![Digit::Eight]);
    }
}
