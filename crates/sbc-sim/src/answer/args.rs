//! The command line of `sbc-sim answer`, and the run it describes.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser};

use super::{Answer, AnswerConfig, KeyAt, OptionsReply, Plan};
use crate::Error;
use crate::script::{parse_duration, parse_keys};

/// Lowest and highest tone we talk or listen for, Hz (G.711's band, 100 Hz inside it).
const TONE_RANGE: std::ops::RangeInclusive<f64> = 20.0..=3900.0;

/// `sbc-sim answer`'s options.
#[derive(Debug, Clone, Args)]
pub struct AnswerArgs {
    /// Where to take SIP over UDP: a trunk's outbound target (127.0.0.10:5080 is the
    /// Microsoft PSTN's in the demo, .20 Telco A's, .30 Telco B's).
    #[arg(long)]
    pub listen: SocketAddr,
    /// Calls to take, then exit. 0: none is expected (answer OPTIONS until --timeout;
    /// any INVITE fails the run).
    #[arg(long, default_value_t = 1)]
    pub calls: usize,
    /// The longest the run lasts (500ms, 30s, 2m); calls still going then fail.
    #[arg(long, value_parser = parse_duration, default_value = "60s")]
    pub timeout: Duration,
    /// The answer to OPTIONS: 200 (with Allow, Accept, Supported), another status
    /// (503: the trunk is out of service) or none (never answered).
    #[arg(long, value_parser = OptionsReply::parse, default_value = "200")]
    pub options: OptionsReply,
    /// How long to ring (180) before the final answer; 0 sends no 180.
    #[arg(long, default_value_t = 1000)]
    pub ring_ms: u64,
    /// The final answer: 200, a refusal (486 busy, 480 unavailable, 503, 603 declined,
    /// any status from 300 to 699) or none (ring until the caller's CANCEL, then 487).
    #[arg(long, value_parser = Answer::parse, default_value = "200")]
    pub answer: Answer,
    /// The tone we talk once answered, Hz (0: silence).
    #[arg(long, default_value_t = 1000.0)]
    pub tone_hz: f64,
    /// Key these digits as RFC 4733 telephone-events once answered.
    #[arg(long, value_parser = keys)]
    pub key: Option<String>,
    /// Key this long after the answer; without it, once the invitation prompt is heard
    /// (audio, then --prompt-silence-ms of quiet).
    #[arg(long, requires = "key")]
    pub key_after_ms: Option<u64>,
    /// The quiet that ends the invitation prompt, ms.
    #[arg(long, default_value_t = 700)]
    pub prompt_silence_ms: u64,
    /// Expect to hear a steady tone at this frequency, Hz, after keying (after the
    /// answer without --key): the meeting's other participant.
    #[arg(long)]
    pub expect_tone: Option<f64>,
    /// How long to stay after keying (after the answer without --key) before BYE,
    /// unless the caller hangs up first.
    #[arg(long, default_value_t = 5000)]
    pub hold_ms: u64,
}

/// `sbc-sim answer` on its own, for runs parsed from a list of words.
#[derive(Debug, Parser)]
#[command(name = "sbc-sim answer")]
struct AnswerCommand {
    #[command(flatten)]
    args: AnswerArgs,
}

impl AnswerArgs {
    /// Reads `sbc-sim answer`'s options from `words` (without `sbc-sim answer`):
    /// what a test passes to run the answerer in its own process.
    pub fn parse_words<I, S>(words: I) -> Result<AnswerArgs, Error>
    where
        I: IntoIterator<Item = S>,
        S: Into<std::ffi::OsString> + Clone,
    {
        let all = std::iter::once(std::ffi::OsString::from("answer"))
            .chain(words.into_iter().map(Into::into));
        AnswerCommand::try_parse_from(all)
            .map(|c| c.args)
            .map_err(|e| Error::invalid("arguments", e.to_string()))
    }

    /// The run these options describe.
    pub fn config(&self) -> Result<AnswerConfig, Error> {
        let tone_hz = if self.tone_hz == 0.0 {
            None
        } else if TONE_RANGE.contains(&self.tone_hz) {
            Some(self.tone_hz)
        } else {
            return Err(Error::invalid("--tone-hz", "0, or between 20 and 3900"));
        };
        if let Some(hz) = self.expect_tone
            && !TONE_RANGE.contains(&hz)
        {
            return Err(Error::invalid("--expect-tone", "between 20 and 3900"));
        }
        let ms = Duration::from_millis;
        Ok(AnswerConfig {
            listen: self.listen,
            calls: self.calls,
            timeout: self.timeout,
            options: self.options,
            plan: Plan {
                ring: ms(self.ring_ms),
                answer: self.answer,
                keys: self.key.clone(),
                key_at: self
                    .key_after_ms
                    .map_or(KeyAt::AfterPrompt, |after| KeyAt::After(ms(after))),
                hold: ms(self.hold_ms),
            },
            tone_hz,
            prompt_silence: ms(self.prompt_silence_ms),
            expect_tone: self.expect_tone,
        })
    }
}

fn keys(text: &str) -> Result<String, Error> {
    parse_keys(text)
        .map_err(|_| Error::invalid("--key", format!("{text:?}: DTMF keys 0-9 * # A-D")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(words: &[&str]) -> Result<AnswerConfig, Error> {
        AnswerArgs::parse_words(words)?.config()
    }

    #[test]
    fn defaults_answer_one_call_talking_1000_hz() {
        let c = config(&["--listen", "127.0.0.10:5080"]).unwrap();
        assert_eq!(c.listen, "127.0.0.10:5080".parse().unwrap());
        assert_eq!((c.calls, c.timeout), (1, Duration::from_secs(60)));
        assert_eq!(c.options, OptionsReply::Status(200));
        assert_eq!(
            c.plan,
            Plan {
                ring: Duration::from_secs(1),
                answer: Answer::Accept,
                keys: None,
                key_at: KeyAt::AfterPrompt,
                hold: Duration::from_secs(5),
            }
        );
        assert_eq!((c.tone_hz, c.expect_tone), (Some(1000.0), None));
    }

    #[test]
    fn every_option_is_read() {
        let c = config(&[
            "--listen",
            "127.0.0.30:5080",
            "--calls",
            "3",
            "--timeout",
            "90s",
            "--options",
            "503",
            "--ring-ms",
            "0",
            "--answer",
            "486",
            "--tone-hz",
            "0",
            "--key",
            "1",
            "--key-after-ms",
            "2500",
            "--prompt-silence-ms",
            "400",
            "--expect-tone",
            "440",
            "--hold-ms",
            "100",
        ])
        .unwrap();
        assert_eq!((c.calls, c.timeout), (3, Duration::from_secs(90)));
        assert_eq!(c.options, OptionsReply::Status(503));
        assert_eq!(c.plan.ring, Duration::ZERO);
        assert_eq!(c.plan.answer, Answer::Refuse(486));
        assert_eq!(c.plan.keys.as_deref(), Some("1"));
        assert_eq!(c.plan.key_at, KeyAt::After(Duration::from_millis(2500)));
        assert_eq!(c.plan.hold, Duration::from_millis(100));
        assert_eq!(c.prompt_silence, Duration::from_millis(400));
        assert_eq!((c.tone_hz, c.expect_tone), (None, Some(440.0)));
        let c = config(&[
            "--listen",
            "[::1]:5080",
            "--options",
            "none",
            "--answer",
            "none",
        ]);
        let c = c.unwrap();
        assert_eq!(
            (c.options, c.plan.answer),
            (OptionsReply::Silent, Answer::Never)
        );
    }

    #[test]
    fn nonsense_is_refused() {
        for words in [
            &["--calls", "1"][..],
            &["--listen", "127.0.0.10:5080", "--answer", "100"],
            &["--listen", "127.0.0.10:5080", "--answer", "busy"],
            &["--listen", "127.0.0.10:5080", "--options", "180"],
            &["--listen", "127.0.0.10:5080", "--key", "1x"],
            &["--listen", "127.0.0.10:5080", "--key-after-ms", "100"],
            &["--listen", "127.0.0.10:5080", "--tone-hz", "5000"],
            &["--listen", "127.0.0.10:5080", "--expect-tone", "10"],
            &["--listen", "127.0.0.10:5080", "--timeout", "soon"],
        ] {
            assert!(config(words).is_err(), "{words:?}");
        }
    }
}
