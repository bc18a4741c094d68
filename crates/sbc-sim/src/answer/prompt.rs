//! When the called phone has heard the invitation prompt: audio above the silence floor
//! for a while, then silence long enough not to be a pause between the prompt's words.
//! Pure: it counts audio time from the frames it is given, never a clock.

use std::time::Duration;

use crate::audio_check::{SILENCE_RMS, rms};

/// Audible audio that makes a prompt (the bridge's shortest prompts last about 2 s; a
/// click or the first frames of a codec settling do not).
pub const MIN_PROMPT: Duration = Duration::from_millis(500);
/// The silence that ends a prompt by default: above the longest pause inside the
/// demo's prompts (about 420 ms between two sentences of welcome.wav).
pub const PROMPT_SILENCE: Duration = Duration::from_millis(700);

/// Listens for a prompt followed by silence; says so once.
#[derive(Debug, Clone)]
pub struct PromptListener {
    silence_needed: Duration,
    audible: Duration,
    silent_run: Duration,
    heard: bool,
}

impl PromptListener {
    /// A listener that wants [`MIN_PROMPT`] of audio, then `silence` of quiet.
    pub fn new(silence: Duration) -> Self {
        PromptListener {
            silence_needed: silence,
            audible: Duration::ZERO,
            silent_run: Duration::ZERO,
            heard: false,
        }
    }

    /// One received frame of `samples` at `rate` Hz. True once, on the frame that
    /// completes the silence after the prompt.
    pub fn on_frame(&mut self, samples: &[i16], rate: u32) -> bool {
        let length = Duration::from_secs_f64(samples.len() as f64 / f64::from(rate.max(1)));
        if rms(samples) < SILENCE_RMS {
            self.on_quiet(length)
        } else {
            self.audible = self.audible.saturating_add(length);
            self.silent_run = Duration::ZERO;
            false
        }
    }

    /// `length` of time in which nothing audible came (silence, or no packet at all: a
    /// sender may stop sending when it has nothing to say). True like
    /// [`Self::on_frame`].
    pub fn on_quiet(&mut self, length: Duration) -> bool {
        if self.heard || self.audible < MIN_PROMPT {
            return false;
        }
        self.silent_run = self.silent_run.saturating_add(length);
        if self.silent_run >= self.silence_needed {
            self.heard = true;
            return true;
        }
        false
    }

    /// Whether the prompt and its silence have been heard.
    pub fn heard(&self) -> bool {
        self.heard
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOUD: [i16; 160] = {
        let mut f = [0i16; 160];
        let mut i = 0;
        while i < 160 {
            f[i] = if i % 2 == 0 { 3000 } else { -3000 };
            i += 1;
        }
        f
    };
    const QUIET: [i16; 160] = [8; 160];

    /// Feeds `ms` of 20 ms frames; the frame numbers (from 1) on which it fired.
    fn feed(l: &mut PromptListener, frame: &[i16; 160], ms: u32) -> Vec<u32> {
        (1..=ms / 20).filter(|_| l.on_frame(frame, 8000)).collect()
    }

    #[test]
    fn a_prompt_then_silence_is_heard_once() {
        let mut l = PromptListener::new(PROMPT_SILENCE);
        assert!(
            feed(&mut l, &QUIET, 2000).is_empty(),
            "silence first is no prompt"
        );
        assert!(feed(&mut l, &LOUD, 1000).is_empty());
        // A pause between the prompt's sentences does not end it.
        assert!(feed(&mut l, &QUIET, 400).is_empty());
        assert!(feed(&mut l, &LOUD, 600).is_empty());
        assert_eq!(feed(&mut l, &QUIET, 1000), vec![35], "700 ms of quiet");
        assert!(l.heard());
        assert!(feed(&mut l, &LOUD, 1000).is_empty());
        assert!(feed(&mut l, &QUIET, 1000).is_empty(), "only once");
    }

    /// The demo's own prompts, with their pauses between sentences, end only at the
    /// silence after them.
    #[test]
    fn the_demo_prompts_end_at_their_silence_not_their_pauses() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/prompts");
        for name in ["welcome.wav", "enter-pin.wav", "joined.wav"] {
            let prompt = dialbridge_media::Prompt::load(dir.join(name)).unwrap();
            let mut l = PromptListener::new(PROMPT_SILENCE);
            let during: Vec<usize> = prompt
                .frames()
                .enumerate()
                .filter(|(_, f)| l.on_frame(f, 8000))
                .map(|(i, _)| i)
                .collect();
            assert!(during.is_empty(), "{name}: heard at frames {during:?}");
            // Its own trailing quiet, then the silence after it.
            let after = (1..=50).find(|_| l.on_frame(&QUIET, 8000));
            assert!(after.is_some_and(|n| n <= 35), "{name}: {after:?}");
        }
    }

    #[test]
    fn a_click_is_no_prompt_and_missing_packets_count_as_quiet() {
        let mut l = PromptListener::new(Duration::from_millis(300));
        assert!(feed(&mut l, &LOUD, 400).is_empty());
        assert!(feed(&mut l, &QUIET, 1000).is_empty(), "400 ms is too short");
        assert!(feed(&mut l, &LOUD, 200).is_empty());
        // 600 ms of audio in all: now quiet time counts, frames or not.
        assert!(!l.on_quiet(Duration::from_millis(200)));
        assert!(l.on_quiet(Duration::from_millis(100)));
    }
}
