//! Calendar months in UTC, the period of the minute pools: a pool's use counts in the
//! month (of the wall clock, UTC) each increment was reserved in, and a new month starts
//! from nothing. Written `2026-12`.

use std::fmt;
use std::str::FromStr;
use std::time::SystemTime;

use time::{Date, OffsetDateTime};

use crate::LedgerError;

/// A month: `year * 12 + (month - 1)`, so months order and count as integers.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Month(i32);

impl Month {
    /// The month (UTC) that `wall` falls in.
    pub fn of(wall: SystemTime) -> Month {
        let utc = OffsetDateTime::from(wall);
        Month(utc.year() * 12 + i32::from(u8::from(utc.month())) - 1)
    }

    /// From its stored form.
    pub(crate) const fn from_index(index: i32) -> Month {
        Month(index)
    }

    /// Its stored form.
    pub(crate) const fn index(self) -> i32 {
        self.0
    }

    pub fn year(self) -> i32 {
        self.0.div_euclid(12)
    }

    /// 1 to 12.
    pub fn number(self) -> u8 {
        // rem_euclid(12) is 0..=11.
        u8::try_from(self.0.rem_euclid(12) + 1).unwrap_or(1)
    }

    /// The month after.
    pub fn next(self) -> Month {
        Month(self.0 + 1)
    }

    /// Its first instant, 00:00 UTC on the 1st, in milliseconds since 1970.
    pub fn start_unix_millis(self) -> i64 {
        let month = time::Month::try_from(self.number()).unwrap_or(time::Month::January);
        Date::from_calendar_date(self.year(), month, 1)
            .map(|d| (d.midnight().assume_utc().unix_timestamp_nanos() / 1_000_000) as i64)
            .unwrap_or(i64::MIN)
    }
}

impl fmt::Display for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year(), self.number())
    }
}

impl fmt::Debug for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Month({self})")
    }
}

impl FromStr for Month {
    type Err = LedgerError;

    /// `2026-12`: a four-digit year from 1970 to 9999, a dash, a two-digit month.
    fn from_str(text: &str) -> Result<Month, LedgerError> {
        let bad = || LedgerError::Month(text.chars().take(16).collect());
        let (year, month) = text.split_once('-').ok_or_else(bad)?;
        let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(year, 4) || !digits(month, 2) {
            return Err(bad());
        }
        let year: i32 = year.parse().map_err(|_| bad())?;
        let month: i32 = month.parse().map_err(|_| bad())?;
        if year < 1970 || !(1..=12).contains(&month) {
            return Err(bad());
        }
        Ok(Month(year * 12 + month - 1))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn at(unix: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(unix)
    }

    #[test]
    fn months_of_the_wall_clock_in_utc() {
        // 2026-12-31T23:59:59Z, then a second later.
        let last = at(1_798_761_599);
        assert_eq!(Month::of(last).to_string(), "2026-12");
        assert_eq!(
            Month::of(last + Duration::from_secs(1)).to_string(),
            "2027-01"
        );
        assert_eq!(
            Month::of(last).next(),
            Month::of(last + Duration::from_secs(1))
        );
        let december: Month = "2026-12".parse().unwrap();
        assert_eq!(december, Month::of(last));
        assert_eq!(december.start_unix_millis(), 1_796_083_200_000);
        assert_eq!(december.next().start_unix_millis(), 1_798_761_600_000);
        assert_eq!(Month::from_index(december.index()), december);
    }

    #[test]
    fn only_year_dash_month_reads() {
        for bad in [
            "2026-13",
            "2026-00",
            "2026-1",
            "26-12",
            "1969-12",
            "2026/12",
            "",
            "2026-12-01",
        ] {
            assert!(bad.parse::<Month>().is_err(), "{bad}");
        }
    }
}
