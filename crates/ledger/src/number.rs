//! Numbers as the ledger reads them: an E.164 number is `+` and its digits (the router
//! has normalised it already), a rate's prefix is `+` and up to 15 digits (`+` alone is
//! "anywhere"), a pool's country is an ITU country calling code (1 to 3 digits; the
//! codes are prefix-free, so a number has at most one). All are matched on their
//! digits as text, without allocating.

use std::fmt;
use std::str::FromStr;

use crate::LedgerError;

/// The most digits of an E.164 number.
pub const MAX_DIGITS: usize = 15;

/// The digits of an E.164 number written `+` and 7 to 15 digits, the first not 0.
pub fn e164_digits(number: &str) -> Option<&str> {
    let digits = number.strip_prefix('+')?;
    let ok = (7..=MAX_DIGITS).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0');
    ok.then_some(digits)
}

/// The digits of a rate's prefix written `+` and 0 to 15 digits.
pub fn prefix_digits(prefix: &str) -> Option<&str> {
    let digits = prefix.strip_prefix('+')?;
    let ok = digits.len() <= MAX_DIGITS
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0');
    ok.then_some(digits)
}

/// A country calling code (ITU-T E.164): `1` for the US and Canada, `33`, `49`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CountryCode {
    digits: [u8; 3],
    len: u8,
}

impl CountryCode {
    /// The digits (`1`, `33`).
    pub fn digits(&self) -> &str {
        let len = usize::from(self.len).min(3);
        // Only ASCII digits are ever stored (see `from_str`).
        std::str::from_utf8(self.digits.get(..len).unwrap_or_default()).unwrap_or_default()
    }

    /// Whether `number_digits` (an E.164 number's digits) is in this country.
    pub fn covers(&self, number_digits: &str) -> bool {
        number_digits.starts_with(self.digits())
    }
}

impl FromStr for CountryCode {
    type Err = LedgerError;

    /// `+1`, `1`, `+33`: one to three digits, the first not 0.
    fn from_str(text: &str) -> Result<CountryCode, LedgerError> {
        let digits = text.strip_prefix('+').unwrap_or(text);
        let bytes = digits.as_bytes();
        let ok = (1..=3).contains(&bytes.len())
            && bytes.iter().all(u8::is_ascii_digit)
            && bytes.first() != Some(&b'0');
        if !ok {
            return Err(LedgerError::CountryCode(text.chars().take(16).collect()));
        }
        let mut code = CountryCode {
            digits: [b'0'; 3],
            len: 0,
        };
        for (slot, digit) in code.digits.iter_mut().zip(bytes) {
            *slot = *digit;
            code.len += 1;
        }
        Ok(code)
    }
}

impl fmt::Display for CountryCode {
    /// `+1`, as a pool is named.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "+{}", self.digits())
    }
}

impl fmt::Debug for CountryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CountryCode(+{})", self.digits())
    }
}

impl serde::Serialize for CountryCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn numbers_prefixes_and_country_codes() {
        assert_eq!(e164_digits("+18885550100"), Some("18885550100"));
        for bad in [
            "18885550100",
            "+1888",
            "+0123456789",
            "+1888555010x",
            "+1234567890123456",
        ] {
            assert_eq!(e164_digits(bad), None, "{bad}");
        }
        assert_eq!(prefix_digits("+"), Some(""));
        assert_eq!(prefix_digits("+1888"), Some("1888"));
        assert_eq!(prefix_digits("1888"), None);
        assert_eq!(prefix_digits("+0"), None);
        let us: CountryCode = "+1".parse().unwrap();
        assert_eq!((us.digits(), us.to_string()), ("1", "+1".to_string()));
        assert!(us.covers("14255557000"));
        assert!(!us.covers("33170000100"));
        let germany: CountryCode = "49".parse().unwrap();
        assert_eq!(germany.to_string(), "+49");
        for bad in ["", "+", "0", "+1234", "1a"] {
            assert!(bad.parse::<CountryCode>().is_err(), "{bad}");
        }
    }
}
