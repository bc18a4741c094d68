//! UTC instants at millisecond precision for call detail records, written and read as
//! RFC 3339 (`2026-11-21T02:45:17.123Z`). Hand-written because the CDR store needs only
//! this one format; the calendar arithmetic is Howard Hinnant's `days_from_civil`.

use std::fmt;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

/// A time that is neither RFC 3339 nor a count of milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not a time: expected RFC 3339 such as 2026-11-21T02:45:17.123Z, or milliseconds since 1970"
)]
pub struct BadTimestamp(pub String);

const MS_PER_DAY: i64 = 86_400_000;

impl Timestamp {
    /// `ms` milliseconds after 1970-01-01T00:00:00Z.
    pub const fn from_unix_millis(ms: i64) -> Timestamp {
        Timestamp(ms)
    }

    /// Milliseconds after 1970-01-01T00:00:00Z.
    pub const fn unix_millis(self) -> i64 {
        self.0
    }

    /// The wall clock now.
    pub fn now() -> Timestamp {
        Timestamp::from_system_time(SystemTime::now())
    }

    /// `t`, truncated to the millisecond (saturating far outside ±292 million years).
    pub fn from_system_time(t: SystemTime) -> Timestamp {
        let ms = match t.duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
            Err(e) => i64::try_from(e.duration().as_millis()).map_or(i64::MIN, |ms| -ms),
        };
        Timestamp(ms)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let days = self.0.div_euclid(MS_PER_DAY);
        let ms_of_day = self.0.rem_euclid(MS_PER_DAY);
        let (y, m, d) = civil_from_days(days);
        let (hh, rest) = (ms_of_day / 3_600_000, ms_of_day % 3_600_000);
        let (mm, rest) = (rest / 60_000, rest % 60_000);
        let (ss, ms) = (rest / 1000, rest % 1000);
        write!(f, "{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}.{ms:03}Z")
    }
}

impl FromStr for Timestamp {
    type Err = BadTimestamp;

    /// RFC 3339 (`Z` or a `±hh:mm` offset, any number of fraction digits, kept to the
    /// millisecond), or a plain integer of milliseconds since 1970.
    fn from_str(s: &str) -> Result<Timestamp, BadTimestamp> {
        let bad = || BadTimestamp(s.chars().take(64).collect());
        if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
            return s.parse::<i64>().map(Timestamp).map_err(|_| bad());
        }
        parse_rfc3339(s.as_bytes()).ok_or_else(bad)
    }
}

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.f+](Z|±HH:MM)`.
fn parse_rfc3339(b: &[u8]) -> Option<Timestamp> {
    let num = |from: usize, len: usize| -> Option<i64> {
        let digits = b.get(from..from + len)?;
        digits.iter().try_fold(0i64, |v, d| {
            d.is_ascii_digit().then(|| v * 10 + i64::from(d - b'0'))
        })
    };
    let sep = |at: usize, any: &[u8]| b.get(at).is_some_and(|c| any.contains(c));
    if !(sep(4, b"-") && sep(7, b"-") && sep(10, b"Tt ") && sep(13, b":") && sep(16, b":")) {
        return None;
    }
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (hour, minute, second) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    // Leap seconds (60) are read as the last second of the minute.
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut at = 19;
    let mut ms = 0;
    if sep(at, b".") {
        at += 1;
        let start = at;
        while b.get(at).is_some_and(u8::is_ascii_digit) {
            if at - start < 3 {
                ms = ms * 10 + i64::from(b.get(at).copied().unwrap_or(b'0') - b'0');
            }
            at += 1;
        }
        let digits = at - start;
        if digits == 0 {
            return None;
        }
        for _ in digits..3 {
            ms *= 10;
        }
    }
    let offset_min = match b.get(at..)? {
        b"Z" | b"z" => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let (h, m) = (num(at + 1, 2)?, num(at + 4, 2)?);
            if h > 23 || m > 59 {
                return None;
            }
            let minutes = h * 60 + m;
            if *sign == b'-' { -minutes } else { minutes }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second.min(59) - offset_min * 60;
    Some(Timestamp(seconds * 1000 + ms))
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of `z` days since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_rfc3339_with_milliseconds() {
        assert_eq!(
            Timestamp::from_unix_millis(0).to_string(),
            "1970-01-01T00:00:00.000Z"
        );
        assert_eq!(
            Timestamp::from_unix_millis(1_795_229_117_123).to_string(),
            "2026-11-21T02:45:17.123Z"
        );
        assert_eq!(
            Timestamp::from_unix_millis(951_782_400_000).to_string(),
            "2000-02-29T00:00:00.000Z"
        );
        assert_eq!(
            Timestamp::from_unix_millis(-1).to_string(),
            "1969-12-31T23:59:59.999Z"
        );
    }

    #[test]
    fn parses_what_it_prints_and_offsets() {
        for ms in [0, 1, 999, 951_782_400_000, 1_795_229_117_123, -86_400_001] {
            let t = Timestamp::from_unix_millis(ms);
            assert_eq!(t.to_string().parse::<Timestamp>(), Ok(t));
        }
        let utc: Timestamp = "2026-11-21T02:45:17.123Z".parse().unwrap();
        assert_eq!(
            "2026-11-21T03:45:17.123456+01:00".parse::<Timestamp>(),
            Ok(utc)
        );
        assert_eq!(
            "2026-11-21T02:45:17.1Z"
                .parse::<Timestamp>()
                .unwrap()
                .unix_millis()
                % 1000,
            100
        );
        assert_eq!(
            "2026-11-21t02:45:17Z"
                .parse::<Timestamp>()
                .unwrap()
                .unix_millis()
                % 1000,
            0
        );
        assert_eq!("1795229117123".parse::<Timestamp>(), Ok(utc));
    }

    #[test]
    fn refuses_what_is_not_a_time() {
        for s in [
            "",
            "yesterday",
            "2026-11-21",
            "2026-11-21T02:45:17",
            "2026-13-01T00:00:00Z",
            "2026-02-29T00:00:00Z",
            "2026-11-21T24:00:00Z",
            "2026-11-21T02:45:17.Z",
            "2026-11-21T02:45:17+0100",
            "2026-11-21T02:45:17Zjunk",
            "-5",
            "99999999999999999999",
            "2026-11-21T02:4é:17Z",
        ] {
            assert!(s.parse::<Timestamp>().is_err(), "{s:?}");
        }
    }

    #[test]
    fn system_time_is_truncated_to_the_millisecond() {
        let t = UNIX_EPOCH + std::time::Duration::from_micros(1_500_999);
        assert_eq!(Timestamp::from_system_time(t).unix_millis(), 1500);
        let before = UNIX_EPOCH - std::time::Duration::from_millis(5);
        assert_eq!(Timestamp::from_system_time(before).unix_millis(), -5);
    }
}
