//! Merges the digits of the three DTMF sources of one call so that a key press
//! seen by two of them (RFC 4733 and in-band, INFO and RFC 4733...) counts once.
//!
//! The sources are not equally trustworthy. RFC 4733 and INFO are *signalled*: each
//! event or request is one press, so a repeat from the same signalled source is
//! always a new press, even of the same key. In-band tones are inferred from the
//! audio, and on a line that also signals (a PSTN gateway sends the RFC 4733 event
//! and leaves a squelched or partial tone in the audio) one press can be heard as
//! two tones: the onset before the gateway's squelch cuts in, and what leaks after.
//! So the rules, applied in order to a report of `digit` by `source`:
//!
//! 1. Another source's report: the older of the last two presses, if it is of
//!    `digit`, recent and not yet reported by `source`, else the latest, is the same
//!    press seen twice. Two, because a source may lag by less than one key (in-band
//!    behind the events, an INFO behind the RTP stream: its report of a press comes
//!    after the next key has begun), not by two: a source reporting a key that was
//!    pressed two keys ago is reporting a new press (a caller keying the ID by RFC
//!    4733 and the PIN by INFO).
//! 2. An in-band tone of the digit of one of the last two presses, recent and
//!    *signalled*: that press, leaking through the squelch in pieces.
//! 3. Anything else is a new press: a signalled source's repeat, or a tone on a line
//!    whose last press of that key was heard only in-band.
//!
//! "Recent" is within the window of the press's last report; RFC 4733 updates and
//! end packets count as reports ([`Combiner::handle_held`]), so a long event keeps
//! its press open and its tone is never a second digit however late it is found.
//!
//! Known limit: on a line that signals, a press heard only in-band within the window
//! after a signalled press of the same key is taken for a leak (its RFC 4733 event
//! entirely lost, every update and all three end packets). Double counting through
//! leaks is the common failure; losing a whole event is not.

use std::time::{Duration, Instant};

use super::{Digit, Source};

/// How long after a press another source's report of the same digit is taken as
/// the same press: covers the in-band detector's 40 ms and network reordering of
/// an INFO against the RTP stream.
pub const DEFAULT_DUPLICATE_WINDOW: Duration = Duration::from_millis(500);

/// Presses remembered: the latest and the one before (see the module's rule 1).
const RECENT: usize = 2;

/// One call's DTMF combiner. Fixed-size state, no allocation.
#[derive(Debug)]
pub struct Combiner {
    window: Duration,
    /// A ring of the latest presses; `next` is the oldest slot (overwritten next).
    recent: [Option<Press>; RECENT],
    next: usize,
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
    fn has(&self, source: Source) -> bool {
        match source {
            Source::Rfc4733 => self.rfc4733,
            Source::Info => self.info,
            Source::InBand => self.in_band,
        }
    }

    fn mark(&mut self, source: Source, now: Instant) {
        match source {
            Source::Rfc4733 => self.rfc4733 = true,
            Source::Info => self.info = true,
            Source::InBand => self.in_band = true,
        }
        self.at = now;
    }

    fn signalled(&self) -> bool {
        self.rfc4733 || self.info
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
        Self {
            window,
            recent: [None; RECENT],
            next: 0,
        }
    }

    /// A digit reported by `source`; returns it when it is a new key press, `None`
    /// when it is a report of a press already counted (see the module's rules).
    pub fn handle_digit(&mut self, source: Source, digit: Digit, now: Instant) -> Option<Digit> {
        let window = self.window;
        let recent = |p: &Press| p.digit == digit && now.saturating_duration_since(p.at) <= window;
        // Rule 1, oldest first.
        if let Some(p) = self.oldest_first().find(|p| recent(p) && !p.has(source)) {
            p.mark(source, now);
            return None;
        }
        // Rule 2, newest first: the leak belongs to the latest press of the key.
        if source == Source::InBand
            && let Some(p) = self.newest_first().find(|p| recent(p) && p.signalled())
        {
            p.at = now;
            return None;
        }
        let mut press = Press {
            digit,
            at: now,
            rfc4733: false,
            info: false,
            in_band: false,
        };
        press.mark(source, now);
        if let Some(slot) = self.recent.get_mut(self.next) {
            *slot = Some(press);
        }
        self.next = (self.next + 1) % RECENT;
        Some(digit)
    }

    /// `source` still reports its latest press of `digit` (an RFC 4733 update or end
    /// packet): the press stays recent from `now`.
    pub fn handle_held(&mut self, source: Source, digit: Digit, now: Instant) {
        if let Some(p) = self
            .newest_first()
            .find(|p| p.digit == digit && p.has(source))
        {
            p.at = now;
        }
    }

    /// The remembered presses, oldest first.
    fn oldest_first(&mut self) -> impl Iterator<Item = &mut Press> {
        let (newer, older) = self.recent.split_at_mut(self.next);
        older.iter_mut().chain(newer).filter_map(Option::as_mut)
    }

    /// The remembered presses, newest first.
    fn newest_first(&mut self) -> impl Iterator<Item = &mut Press> {
        let (newer, older) = self.recent.split_at_mut(self.next);
        newer
            .iter_mut()
            .rev()
            .chain(older.iter_mut().rev())
            .filter_map(Option::as_mut)
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

    /// Runs `reports` (source, digit, ms) through a default combiner.
    fn combine(reports: &[(Source, char, u64)]) -> String {
        let t0 = Instant::now();
        let mut c = Combiner::default();
        reports
            .iter()
            .filter_map(|&(s, d, at)| c.handle_digit(s, Digit::from_char(d)?, ms(t0, at)))
            .map(Digit::as_char)
            .collect()
    }

    #[test]
    fn a_tone_in_pieces_beside_an_event_is_one_press() {
        use Source::{InBand, Rfc4733};
        // The onset before the squelch, the event, a leak at the end.
        assert_eq!(
            combine(&[(InBand, '5', 0), (Rfc4733, '5', 20), (InBand, '5', 90)]),
            "5"
        );
        // The event first, two pieces of tone after it.
        assert_eq!(
            combine(&[(Rfc4733, '5', 0), (InBand, '5', 30), (InBand, '5', 150)]),
            "5"
        );
        // The next press of the key: a new event, and its pieces of tone.
        assert_eq!(
            combine(&[
                (Rfc4733, '5', 0),
                (InBand, '5', 30),
                (InBand, '5', 150),
                (InBand, '5', 190),
                (Rfc4733, '5', 200),
                (InBand, '5', 260),
            ]),
            "55"
        );
    }

    #[test]
    fn a_lagging_source_pairs_up_press_by_press() {
        use Source::{InBand, Info, Rfc4733};
        // The tones come after the next key's event.
        assert_eq!(
            combine(&[
                (Rfc4733, '1', 0),
                (Rfc4733, '2', 160),
                (InBand, '1', 200),
                (Rfc4733, '1', 320),
                (InBand, '2', 360),
                (InBand, '1', 520),
            ]),
            "121"
        );
        // INFO requests behind the RTP stream, two presses of one key.
        assert_eq!(
            combine(&[
                (Rfc4733, '3', 0),
                (Rfc4733, '3', 160),
                (Info, '3', 250),
                (Info, '3', 410),
            ]),
            "33"
        );
        // A key pressed two keys ago, by another source: a new press (the ID keyed
        // by RFC 4733, the PIN by INFO).
        assert_eq!(
            combine(&[
                (Rfc4733, '2', 0),
                (Rfc4733, '1', 180),
                (Rfc4733, '#', 360),
                (Info, '2', 440),
            ]),
            "21#2"
        );
    }

    #[test]
    fn a_held_event_keeps_its_press_open() {
        let t0 = Instant::now();
        let mut c = Combiner::default();
        assert_eq!(
            c.handle_digit(Source::Rfc4733, Digit::Zero, t0),
            Some(Digit::Zero)
        );
        for n in 1..40 {
            c.handle_held(Source::Rfc4733, Digit::Zero, ms(t0, 50 * n));
        }
        // Its tone found 2 s in, twice.
        assert_eq!(
            c.handle_digit(Source::InBand, Digit::Zero, ms(t0, 2000)),
            None
        );
        assert_eq!(
            c.handle_digit(Source::InBand, Digit::Zero, ms(t0, 2300)),
            None
        );
        // Tones alone, long after: new presses, each of them.
        assert_eq!(
            c.handle_digit(Source::InBand, Digit::Zero, ms(t0, 3000)),
            Some(Digit::Zero)
        );
        assert_eq!(
            c.handle_digit(Source::InBand, Digit::Zero, ms(t0, 3200)),
            Some(Digit::Zero)
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
