//! DTMF carried in SIP INFO bodies (RFC 6086 INFO; the de-facto
//! `application/dtmf-relay` and `application/dtmf` packages that trunks and
//! softphones send).

use std::time::Duration;

use super::Digit;
use crate::Error;

/// The largest INFO body we read. A `dtmf-relay` body is about 25 bytes; anything
/// near this limit is not DTMF.
pub const MAX_INFO_BODY: usize = 256;

/// The longest duration we accept in a `Duration=` line (a minute of key press).
const MAX_DURATION_MS: u64 = 60_000;

/// A digit parsed from an INFO body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InfoDtmf {
    /// The key.
    pub digit: Digit,
    /// The `Duration=` of `dtmf-relay`, when given.
    pub duration: Option<Duration>,
}

/// Parses the body of an INFO request given its `Content-Type` (media type
/// parameters such as `;charset=` are ignored; matching is case-insensitive).
///
/// - `application/dtmf-relay`: lines `Signal=5` and optionally `Duration=160`
///   (milliseconds), CRLF or LF separated, spaces allowed around `=`; other keys are
///   ignored. `Signal` takes `0-9 * # A-D` or the event codes 10-15.
/// - `application/dtmf`: the body is the key (`5`, `#`) or its event code (`11`).
pub fn parse_info(content_type: &str, body: &[u8]) -> Result<InfoDtmf, Error> {
    if body.len() > MAX_INFO_BODY {
        return Err(Error::InfoBodyTooLarge(body.len()));
    }
    let media_type = content_type.split(';').next().unwrap_or_default().trim();
    let text = std::str::from_utf8(body).map_err(|_| Error::InfoNotText)?;
    if media_type.eq_ignore_ascii_case("application/dtmf-relay") {
        parse_relay(text)
    } else if media_type.eq_ignore_ascii_case("application/dtmf") {
        Ok(InfoDtmf {
            digit: parse_signal(text.trim())?,
            duration: None,
        })
    } else {
        Err(Error::InfoContentType)
    }
}

fn parse_relay(text: &str) -> Result<InfoDtmf, Error> {
    let mut digit = None;
    let mut duration = None;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let (key, value) = line.split_once('=').ok_or(Error::InfoMalformedLine)?;
        let (key, value) = (key.trim(), value.trim());
        if key.eq_ignore_ascii_case("Signal") {
            digit = Some(parse_signal(value)?);
        } else if key.eq_ignore_ascii_case("Duration") {
            let ms: u64 = value.parse().map_err(|_| Error::InfoBadDuration)?;
            if ms > MAX_DURATION_MS {
                return Err(Error::InfoBadDuration);
            }
            duration = Some(Duration::from_millis(ms));
        }
    }
    Ok(InfoDtmf {
        digit: digit.ok_or(Error::InfoNoSignal)?,
        duration,
    })
}

/// One key as a character or as its event code (`10` = `*`, `11` = `#`, ...).
fn parse_signal(value: &str) -> Result<Digit, Error> {
    let mut chars = value.chars();
    match (chars.next(), chars.next(), chars.next()) {
        (Some(c), None, _) => Digit::from_char(c).ok_or(Error::InfoBadSignal),
        (Some('1'), Some(c @ '0'..='5'), None) => {
            Digit::from_event(10 + (c as u8 - b'0')).ok_or(Error::InfoBadSignal)
        }
        _ => Err(Error::InfoBadSignal),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RELAY: &str = "application/dtmf-relay";

    #[test]
    fn dtmf_relay_bodies() {
        let got = parse_info(RELAY, b"Signal=5\r\nDuration=160\r\n").unwrap();
        assert_eq!(got.digit, Digit::Five);
        assert_eq!(got.duration, Some(Duration::from_millis(160)));
        for (body, digit) in [
            ("Signal=*\r\nDuration=100", Digit::Star),
            ("Signal=#", Digit::Pound),
            ("Signal=10\r\n", Digit::Star),
            ("Signal=11\nDuration=250\n", Digit::Pound),
            ("signal = d \r\n", Digit::D),
            ("Signal=15", Digit::D),
            ("Duration=160\r\nSignal=0\r\n", Digit::Zero),
            ("Signal=9\r\nVolume=10\r\n", Digit::Nine),
        ] {
            assert_eq!(
                parse_info(RELAY, body.as_bytes()).unwrap().digit,
                digit,
                "{body}"
            );
        }
        let ct = "Application/DTMF-Relay; charset=utf-8";
        assert_eq!(parse_info(ct, b"Signal=3").unwrap().digit, Digit::Three);
    }

    #[test]
    fn dtmf_bodies() {
        assert_eq!(
            parse_info("application/dtmf", b"7").unwrap().digit,
            Digit::Seven
        );
        assert_eq!(
            parse_info("application/dtmf", b"#\r\n").unwrap().digit,
            Digit::Pound
        );
        assert_eq!(
            parse_info("application/dtmf", b"11").unwrap().digit,
            Digit::Pound
        );
        assert_eq!(
            parse_info("application/dtmf", b"").unwrap_err(),
            Error::InfoBadSignal
        );
    }

    #[test]
    fn junk_is_an_error() {
        let cases: [(&str, &[u8], Error); 9] = [
            (RELAY, b"", Error::InfoNoSignal),
            (RELAY, b"Duration=160", Error::InfoNoSignal),
            (RELAY, b"Signal=E", Error::InfoBadSignal),
            (RELAY, b"Signal=16", Error::InfoBadSignal),
            (RELAY, b"Signal=55", Error::InfoBadSignal),
            (RELAY, b"Signal=5\r\nDuration=-1", Error::InfoBadDuration),
            (
                RELAY,
                b"Signal=5\r\nDuration=99999999999999999999",
                Error::InfoBadDuration,
            ),
            (RELAY, b"hello world", Error::InfoMalformedLine),
            (RELAY, b"Signal=\xff", Error::InfoNotText),
        ];
        for (ct, body, err) in cases {
            assert_eq!(parse_info(ct, body).unwrap_err(), err, "{body:?}");
        }
        assert_eq!(
            parse_info("application/sdp", b"Signal=5").unwrap_err(),
            Error::InfoContentType
        );
        let big = vec![b' '; MAX_INFO_BODY + 1];
        assert_eq!(
            parse_info(RELAY, &big).unwrap_err(),
            Error::InfoBodyTooLarge(MAX_INFO_BODY + 1)
        );
    }
}
