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
        let digit = self
            .events
            .handle_packet(payload, timestamp, seq, marker, now)?;
        Ok(digit.and_then(|d| self.combiner.handle_digit(Source::Rfc4733, d, now)))
    }

    /// A decoded 8 kHz audio frame; returns a new key press found in it. If a frame
    /// ever holds two (frames of several hundred ms), the second comes out with
    /// the next frame.
    pub fn handle_audio(&mut self, samples: &[i16], now: Instant) -> Option<Digit> {
        self.tones.handle_samples(samples);
        while let Some(d) = self.tones.poll_digit() {
            // The tone of an RFC 4733 event still in progress (clients that keep
            // sending audio during the event) is that event, however late the
            // detector found it.
            if self.events.active() == Some(d) {
                continue;
            }
            if let Some(d) = self.combiner.handle_digit(Source::InBand, d, now) {
                return Some(d);
            }
        }
        None
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
