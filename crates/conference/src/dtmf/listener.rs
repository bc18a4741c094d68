//! In-band DTMF found where the media engine already decodes a caller's audio: in a
//! meeting, the room's clock hands each received frame to the call's [`ToneListener`]
//! (a [`dialbridge_media::InBandListener`]) instead of queueing every packet to the
//! call's task to be decoded a second time. Only the digits found travel on, through
//! the closure the call gives; the call's [`super::CallDtmf`] combines them with the
//! other sources ([`super::CallDtmf::handle_in_band_digit`]).

use std::time::Instant;

use dialbridge_media::{Frame, InBandListener};

use super::{Digit, GoertzelDetector};

/// A Goertzel detector fed by the room's clock; each digit found goes to `on_digit`
/// with the time its frame was played out. Runs on the clock thread: `on_digit` must
/// not block (a `try_send` into the call's queue).
pub struct ToneListener<F> {
    detector: GoertzelDetector,
    on_digit: F,
}

impl<F> ToneListener<F>
where
    F: FnMut(Digit, Instant) + Send,
{
    /// A listener running `detector`, telling `on_digit` what it finds.
    pub fn new(detector: GoertzelDetector, on_digit: F) -> Self {
        Self { detector, on_digit }
    }
}

impl<F> std::fmt::Debug for ToneListener<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToneListener")
            .field("detector", &self.detector)
            .finish_non_exhaustive()
    }
}

impl<F> InBandListener for ToneListener<F>
where
    F: FnMut(Digit, Instant) + Send,
{
    fn frame(&mut self, pcm: &Frame, at: Instant) {
        self.detector.handle_samples(pcm);
        while let Some(digit) = self.detector.poll_digit() {
            (self.on_digit)(digit, at);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::goertzel::signal;
    use super::*;
    use dialbridge_media::FRAME_SAMPLES;

    #[test]
    fn tones_in_frames_come_out_as_digits_once_each() {
        let mut found = Vec::new();
        let mut listener = ToneListener::new(GoertzelDetector::default(), |d, _| found.push(d));
        // "5", 100 ms of tone then 100 ms of silence, then "9" likewise.
        let mut audio = Vec::new();
        for digit in [Digit::Five, Digit::Nine] {
            let (low, high) = signal::freqs(digit);
            let mut tone = vec![0.0f32; 800];
            signal::add_tones(&mut tone, 0, &[(low, 8000.0), (high, 8000.0)]);
            audio.extend(signal::to_pcm(&tone));
            audio.extend(std::iter::repeat_n(0i16, 800));
        }
        let now = Instant::now();
        for chunk in audio.chunks_exact(FRAME_SAMPLES) {
            let mut frame = [0i16; FRAME_SAMPLES];
            frame.copy_from_slice(chunk);
            listener.frame(&frame, now);
        }
        let _ = listener;
        assert_eq!(found, vec![Digit::Five, Digit::Nine]);
    }
}
