//! Money as exact integers: an [`Amount`] counts ten-thousandths of a currency unit
//! (a rate of 0.0325 per minute is exact), read from and shown as decimal text
//! ("5.00"), never a float; a [`Currency`] is an ISO 4217 code.

use std::fmt;
use std::str::FromStr;

use crate::LedgerError;

/// Ten-thousandths in one unit of a currency.
pub const UNITS_PER_MAJOR: i64 = 10_000;

/// The largest amount read from text, in units of the currency (a thousand billion):
/// sums of many such amounts stay far from `i64`'s end.
const MAX_MAJOR: i64 = 1_000_000_000_000;

/// A sum of money in ten-thousandths of its currency's unit, signed (an adjustment is
/// negative). Arithmetic is checked: an overflow is an error, never a wrap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Amount(i64);

impl Amount {
    pub const ZERO: Amount = Amount(0);

    /// `units` ten-thousandths.
    pub const fn from_units(units: i64) -> Amount {
        Amount(units)
    }

    /// In ten-thousandths.
    pub const fn units(self) -> i64 {
        self.0
    }

    pub fn is_negative(self) -> bool {
        self.0 < 0
    }

    pub fn checked_add(self, other: Amount) -> Option<Amount> {
        self.0.checked_add(other.0).map(Amount)
    }

    pub fn checked_sub(self, other: Amount) -> Option<Amount> {
        self.0.checked_sub(other.0).map(Amount)
    }

    /// What `seconds` cost at this rate per minute, rounded up to the next
    /// ten-thousandth (a rate never undercharges). `None` for a negative rate.
    pub fn per_minute_for(self, seconds: u32) -> Option<Amount> {
        if self.0 < 0 {
            return None;
        }
        let numerator = i128::from(self.0) * i128::from(seconds);
        let units = (numerator + 59) / 60;
        i64::try_from(units).ok().map(Amount)
    }
}

impl fmt::Display for Amount {
    /// Two decimals at least ("5.00"), four at most ("0.0325"): the amount exactly.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        let per = UNITS_PER_MAJOR.unsigned_abs();
        let (major, minor) = (abs / per, abs % per);
        if minor % 100 == 0 {
            write!(f, "{sign}{major}.{:02}", minor / 100)
        } else if minor % 10 == 0 {
            write!(f, "{sign}{major}.{:03}", minor / 10)
        } else {
            write!(f, "{sign}{major}.{minor:04}")
        }
    }
}

impl FromStr for Amount {
    type Err = LedgerError;

    /// `5`, `5.00`, `-1.5`, `+0.0325`: an optional sign, digits, and at most four
    /// decimals. No exponent, no separators, no float rounding.
    fn from_str(text: &str) -> Result<Amount, LedgerError> {
        let bad = |why: &'static str| LedgerError::Amount {
            text: text.chars().take(40).collect(),
            why,
        };
        let (negative, rest) = match text.as_bytes().first() {
            Some(b'-') => (true, &text[1..]),
            Some(b'+') => (false, &text[1..]),
            _ => (false, text),
        };
        let (whole, fraction) = match rest.split_once('.') {
            Some((w, f)) => (w, f),
            None => (rest, ""),
        };
        if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("expected digits, as in 5.00"));
        }
        if rest.contains('.') && fraction.is_empty() {
            return Err(bad("expected digits after the point, as in 5.00"));
        }
        if !fraction.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("expected digits after the point, as in 5.00"));
        }
        if fraction.len() > 4 {
            return Err(bad("at most four decimals"));
        }
        // At most 13 digits before the point (checked against MAX_MAJOR below).
        let whole = whole.trim_start_matches('0');
        if whole.len() > 13 {
            return Err(bad("too large"));
        }
        let major: i64 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| bad("too large"))?
        };
        if major > MAX_MAJOR {
            return Err(bad("too large"));
        }
        // The decimals, padded to four: "5" is 5000 ten-thousandths.
        let minor = fraction
            .bytes()
            .chain(std::iter::repeat(b'0'))
            .take(4)
            .fold(0i64, |m, digit| m * 10 + i64::from(digit - b'0'));
        let units = major * UNITS_PER_MAJOR + minor;
        Ok(Amount(if negative { -units } else { units }))
    }
}

impl serde::Serialize for Amount {
    /// As its decimal text, so JSON never carries a float.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// An ISO 4217 currency code: three capital letters (`USD`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency([u8; 3]);

impl Currency {
    /// The code as text.
    pub fn as_str(&self) -> &str {
        // Only capital ASCII letters are ever stored (see `from_str`).
        std::str::from_utf8(&self.0).unwrap_or("???")
    }
}

impl FromStr for Currency {
    type Err = LedgerError;

    fn from_str(text: &str) -> Result<Currency, LedgerError> {
        match text.as_bytes() {
            &[a, b, c] if [a, b, c].iter().all(u8::is_ascii_uppercase) => Ok(Currency([a, b, c])),
            _ => Err(LedgerError::Currency(text.chars().take(16).collect())),
        }
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Currency({})", self.as_str())
    }
}

impl serde::Serialize for Currency {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use proptest::prelude::*;

    fn amount(text: &str) -> Amount {
        text.parse().unwrap()
    }

    #[test]
    fn decimal_text_reads_exactly_and_prints_back() {
        for (text, units, shown) in [
            ("5", 50_000, "5.00"),
            ("5.00", 50_000, "5.00"),
            ("20.00", 200_000, "20.00"),
            ("0.03", 300, "0.03"),
            ("0.0325", 325, "0.0325"),
            ("0.125", 1250, "0.125"),
            ("-1.5", -15_000, "-1.50"),
            ("+2.25", 22_500, "2.25"),
            ("-0.0001", -1, "-0.0001"),
            ("007.1", 71_000, "7.10"),
        ] {
            let a = amount(text);
            assert_eq!(a.units(), units, "{text}");
            assert_eq!(a.to_string(), shown, "{text}");
        }
    }

    #[test]
    fn anything_else_is_refused_with_why() {
        for (text, why) in [
            ("", "expected digits"),
            ("-", "expected digits"),
            (".5", "expected digits"),
            ("5.", "after the point"),
            ("5.0.0", "after the point"),
            ("1e3", "expected digits"),
            ("5,00", "expected digits"),
            (" 5", "expected digits"),
            ("5.00001", "four decimals"),
            ("NaN", "expected digits"),
            ("99999999999999", "too large"),
            ("1000000000001", "too large"),
        ] {
            let err = text.parse::<Amount>().unwrap_err().to_string();
            assert!(err.contains(why), "{text:?}: {err}");
        }
    }

    #[test]
    fn a_rate_prices_an_increment_rounding_up() {
        let rate = amount("0.03");
        assert_eq!(rate.per_minute_for(60), Some(amount("0.03")));
        assert_eq!(rate.per_minute_for(6), Some(amount("0.003")));
        // 0.25 / 60 per second = 0.0041666...: rounded up, never down.
        assert_eq!(
            amount("0.25").per_minute_for(1),
            Some(Amount::from_units(42))
        );
        assert_eq!(Amount::ZERO.per_minute_for(60), Some(Amount::ZERO));
        assert_eq!(amount("-1").per_minute_for(60), None);
    }

    #[test]
    fn currencies_are_three_capitals() {
        assert_eq!("USD".parse::<Currency>().unwrap().as_str(), "USD");
        for bad in ["usd", "US", "USDT", "U$D", ""] {
            assert!(bad.parse::<Currency>().is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn every_amount_survives_its_text(units in -10_000_000_000_000_000i64..10_000_000_000_000_000) {
            let a = Amount::from_units(units);
            prop_assert_eq!(a.to_string().parse::<Amount>().unwrap(), a);
        }

        #[test]
        fn reading_never_panics(text in "\\PC{0,24}") {
            let _ = text.parse::<Amount>();
        }
    }
}
