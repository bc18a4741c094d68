//! UTC instants at millisecond precision for call detail records, written and read as
//! RFC 3339 (`2026-11-21T02:45:17.123Z`) with the `time` crate; kept as milliseconds so
//! records sort and compare as integers.

use std::fmt;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;

/// Milliseconds since the Unix epoch, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, utoipa::ToSchema)]
#[schema(
    value_type = String,
    format = DateTime,
    description = "RFC 3339 in UTC, to the millisecond (2026-11-21T02:45:17.123Z)."
)]
pub struct Timestamp(i64);

/// A time that is neither RFC 3339 nor a count of milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not a time: expected RFC 3339 such as 2026-11-21T02:45:17.123Z, or milliseconds since 1970"
)]
pub struct BadTimestamp(pub String);

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
        let format = format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
        );
        let nanos = i128::from(self.0) * 1_000_000;
        match OffsetDateTime::from_unix_timestamp_nanos(nanos)
            .ok()
            .and_then(|t| t.format(format).ok())
        {
            Some(text) => f.write_str(&text),
            // Beyond year ±9999 no RFC 3339 form exists: say the number.
            None => write!(f, "{}", self.0),
        }
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
        // RFC 3339 requires a `T`; a lower-case one (and `z`) is allowed by its §5.6.
        let upper = s.to_ascii_uppercase();
        let t = OffsetDateTime::parse(&upper, &Rfc3339).map_err(|_| bad())?;
        let ms = t.unix_timestamp_nanos().div_euclid(1_000_000);
        i64::try_from(ms).map(Timestamp).map_err(|_| bad())
    }
}

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// As written: a meeting's view crosses between nodes as JSON.
impl<'de> serde::Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
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
