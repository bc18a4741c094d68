//! The call script: what the caller does once the call is answered, written as
//! `wait 2s, keys 123456789#, wait 1s, keys #, wait 5s, hangup`.
//!
//! Steps are separated by `,` or `;`. `wait D` pauses (D as in [`parse_duration`]),
//! `keys K` keys DTMF digits (`0-9 * # A-D`), `hangup` ends the call at once (the
//! rest of the script is ignored). The script is bounded in steps, keys and time.

use std::time::Duration;

use crate::Error;

/// Most steps in one script.
pub const MAX_STEPS: usize = 256;
/// Most digits in one `keys` step.
pub const MAX_KEYS: usize = 64;
/// Longest single `wait` (and longest duration [`parse_duration`] takes).
pub const MAX_WAIT: Duration = Duration::from_secs(24 * 3600);

/// One thing the caller does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Do nothing for this long (media keeps flowing).
    Wait(Duration),
    /// Key these digits, in order.
    Keys(String),
    /// Send BYE now.
    Hangup,
}

/// A parsed script: the steps in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Script {
    /// The steps.
    pub steps: Vec<Step>,
}

impl Script {
    /// Parses the text form (see the module doc). An empty text is an empty script.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let mut steps = Vec::new();
        for raw in text.split([',', ';']) {
            let item = raw.trim();
            if item.is_empty() {
                continue;
            }
            if steps.len() >= MAX_STEPS {
                return Err(Error::invalid(
                    "script",
                    format!("more than {MAX_STEPS} steps"),
                ));
            }
            let (verb, arg) = match item.split_once(char::is_whitespace) {
                Some((v, a)) => (v, a.trim()),
                None => (item, ""),
            };
            let step = match verb.to_ascii_lowercase().as_str() {
                "wait" | "sleep" => Step::Wait(parse_duration(arg)?),
                "keys" | "key" | "dtmf" => Step::Keys(parse_keys(arg)?),
                "hangup" | "bye" if arg.is_empty() => Step::Hangup,
                _ => return Err(Error::invalid("script", format!("unknown step {item:?}"))),
            };
            steps.push(step);
        }
        Ok(Script { steps })
    }

    /// The time the script takes at least: its waits (keys take a little more).
    pub fn waits(&self) -> Duration {
        self.steps
            .iter()
            .map(|s| match s {
                Step::Wait(d) => *d,
                _ => Duration::ZERO,
            })
            .fold(Duration::ZERO, Duration::saturating_add)
    }

    /// Every digit the script keys, in order.
    pub fn keys(&self) -> impl Iterator<Item = char> + '_ {
        self.steps.iter().flat_map(|s| match s {
            Step::Keys(k) => k.chars(),
            _ => "".chars(),
        })
    }

    /// Index of the last `keys` step, if any (where DTMF-to-join latency is measured
    /// from).
    pub fn last_keys_step(&self) -> Option<usize> {
        self.steps.iter().rposition(|s| matches!(s, Step::Keys(_)))
    }
}

/// Reads `250ms`, `2s`, `1.5s`, `3m`, `1h` (a bare number is seconds), up to
/// [`MAX_WAIT`].
pub fn parse_duration(text: &str) -> Result<Duration, Error> {
    let text = text.trim();
    let bad = || Error::invalid("duration", format!("{text:?} (write 500ms, 2s, 1.5s, 3m)"));
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().map_err(|_| bad())?;
    let scale = match unit.trim() {
        "ms" => 0.001,
        "" | "s" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        _ => return Err(bad()),
    };
    let secs = value * scale;
    if !secs.is_finite() || secs < 0.0 || secs > MAX_WAIT.as_secs_f64() {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Checks a run of DTMF keys (RFC 4733 §3.2 events 0-15), upper-casing A-D.
pub fn parse_keys(text: &str) -> Result<String, Error> {
    let keys: String = text
        .chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| c.to_ascii_uppercase())
        .collect();
    if keys.is_empty() {
        return Err(Error::invalid("script", "`keys` without digits"));
    }
    if keys.chars().count() > MAX_KEYS {
        return Err(Error::invalid(
            "script",
            format!("more than {MAX_KEYS} keys in one step"),
        ));
    }
    if let Some(bad) = keys.chars().find(|c| crate::dtmf::event_code(*c).is_none()) {
        return Err(Error::invalid(
            "script",
            format!("{bad:?} is not a DTMF key"),
        ));
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_example() {
        let s = Script::parse("wait 2s, keys 123456789#, wait 1s, keys #, wait 5s").unwrap();
        assert_eq!(
            s.steps,
            vec![
                Step::Wait(Duration::from_secs(2)),
                Step::Keys("123456789#".into()),
                Step::Wait(Duration::from_secs(1)),
                Step::Keys("#".into()),
                Step::Wait(Duration::from_secs(5)),
            ]
        );
        assert_eq!(s.waits(), Duration::from_secs(8));
        assert_eq!(s.keys().collect::<String>(), "123456789##");
        assert_eq!(s.last_keys_step(), Some(3));
    }

    #[test]
    fn accepts_semicolons_units_case_and_hangup() {
        let s = Script::parse(" WAIT 250ms;keys 1 2 3 a ; wait 1.5s; hangup ;").unwrap();
        assert_eq!(
            s.steps,
            vec![
                Step::Wait(Duration::from_millis(250)),
                Step::Keys("123A".into()),
                Step::Wait(Duration::from_millis(1500)),
                Step::Hangup,
            ]
        );
        assert_eq!(Script::parse("").unwrap().steps, vec![]);
    }

    #[test]
    fn refuses_what_it_cannot_do() {
        for bad in [
            "wait",
            "wait 2 weeks",
            "wait -1s",
            "wait 100000h",
            "keys",
            "keys 12x",
            "dance 3s",
            "hangup now",
        ] {
            assert!(Script::parse(bad).is_err(), "{bad}");
        }
        let too_many = vec!["wait 1ms"; MAX_STEPS + 1].join(",");
        assert!(Script::parse(&too_many).is_err());
        let long_keys = format!("keys {}", "1".repeat(MAX_KEYS + 1));
        assert!(Script::parse(&long_keys).is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("10").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("3m").unwrap(), Duration::from_secs(180));
        assert_eq!(parse_duration("20ms").unwrap(), Duration::from_millis(20));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("1.2.3s").is_err());
    }
}
