//! Rates per minute by number prefix, one table per currency and kind of leg (toll-free
//! inbound, dial-out): the longest prefix of the number that has a rate wins (`+1888`
//! over `+1`, `+1` over `+`). Prefixes are kept as integers in one sorted list per
//! length, so a lookup allocates nothing and makes one binary search of integers per
//! length that has rates, longest first.

use crate::money::{Amount, Currency};
use crate::number::MAX_DIGITS;

/// What a leg is, as rates and funding see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LegKind {
    /// A call to a toll-free number: the tenant pays per minute, from credits.
    TollFreeInbound,
    /// A call the bridge places: from a pool of the destination's country, else credits.
    DialOut,
}

impl LegKind {
    /// The name the configuration and the records use.
    pub fn as_str(self) -> &'static str {
        match self {
            LegKind::TollFreeInbound => "toll-free",
            LegKind::DialOut => "dial-out",
        }
    }

    pub(crate) fn parse(text: &str) -> Option<LegKind> {
        [LegKind::TollFreeInbound, LegKind::DialOut]
            .into_iter()
            .find(|k| k.as_str() == text)
    }
}

/// Every rate of the configuration.
#[derive(Debug, Clone, Default)]
pub struct RateBook {
    tables: Vec<RateTable>,
}

/// The rates of one currency and kind of leg.
#[derive(Debug, Clone)]
struct RateTable {
    currency: Currency,
    leg: LegKind,
    /// By prefix length (0 to 15 digits): (the prefix's digits as an integer, rate per
    /// minute), sorted. A prefix has no leading 0, so its length and value name it.
    by_len: [Vec<(u64, Amount)>; MAX_DIGITS + 1],
}

impl RateBook {
    /// Adds a rate; `false` if the prefix already has one for this currency and leg.
    pub(crate) fn insert(
        &mut self,
        currency: Currency,
        leg: LegKind,
        prefix: &str,
        per_minute: Amount,
    ) -> bool {
        let index = match self
            .tables
            .iter()
            .position(|t| t.currency == currency && t.leg == leg)
        {
            Some(i) => i,
            None => {
                self.tables.push(RateTable {
                    currency,
                    leg,
                    by_len: Default::default(),
                });
                self.tables.len() - 1
            }
        };
        let (Some(table), Some(value)) = (self.tables.get_mut(index), digits_value(prefix)) else {
            return false;
        };
        let Some(list) = table.by_len.get_mut(prefix.len()) else {
            return false;
        };
        match list.binary_search_by_key(&value, |(v, _)| *v) {
            Ok(_) => false,
            Err(at) => {
                list.insert(at, (value, per_minute));
                true
            }
        }
    }

    /// The rate per minute of `number_digits` (an E.164 number's digits) for `leg` in
    /// `currency`, and the length of the prefix that gave it, by longest prefix.
    pub fn lookup(
        &self,
        currency: Currency,
        leg: LegKind,
        number_digits: &str,
    ) -> Option<(usize, Amount)> {
        let table = self
            .tables
            .iter()
            .find(|t| t.currency == currency && t.leg == leg)?;
        // The value of each prefix of the number: values[n] is its first n digits.
        // (Callers pass digits only; anything else still cannot overflow 15 places.)
        let mut values = [0u64; MAX_DIGITS + 1];
        let mut value = 0u64;
        let digits = number_digits.as_bytes();
        for (slot, digit) in values.iter_mut().skip(1).zip(digits) {
            value = value * 10 + u64::from(digit.wrapping_sub(b'0'));
            *slot = value;
        }
        let longest = digits.len().min(MAX_DIGITS);
        (0..=longest).rev().find_map(|len| {
            let list = table.by_len.get(len).filter(|l| !l.is_empty())?;
            let value = values.get(len)?;
            let at = list.binary_search_by_key(value, |(v, _)| *v).ok()?;
            list.get(at).map(|(_, rate)| (len, *rate))
        })
    }

    /// How many rates there are.
    pub fn len(&self) -> usize {
        self.tables
            .iter()
            .flat_map(|t| t.by_len.iter())
            .map(Vec::len)
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// `digits` (up to 15 ASCII digits, none when empty) as an integer.
fn digits_value(digits: &str) -> Option<u64> {
    if digits.len() > MAX_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(
        digits
            .bytes()
            .fold(0u64, |v, d| v * 10 + u64::from(d - b'0')),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_longest_prefix_wins() {
        let usd: Currency = "USD".parse().unwrap();
        let eur: Currency = "EUR".parse().unwrap();
        let mut book = RateBook::default();
        let rate = |t: &str| t.parse::<Amount>().unwrap();
        for (prefix, r) in [("1", "0.02"), ("33", "0.05"), ("49", "0.05"), ("", "0.25")] {
            assert!(book.insert(usd, LegKind::DialOut, prefix, rate(r)));
        }
        assert!(book.insert(usd, LegKind::TollFreeInbound, "1888", rate("0.03")));
        assert!(
            !book.insert(usd, LegKind::DialOut, "33", rate("0.07")),
            "twice"
        );
        let dial = |n: &str| book.lookup(usd, LegKind::DialOut, n);
        assert_eq!(dial("14255557000"), Some((1, rate("0.02"))));
        assert_eq!(dial("33170000100"), Some((2, rate("0.05"))));
        assert_eq!(dial("493070000100"), Some((2, rate("0.05"))));
        assert_eq!(
            dial("442071234567"),
            Some((0, rate("0.25"))),
            "anywhere else"
        );
        assert_eq!(
            book.lookup(usd, LegKind::TollFreeInbound, "18885550100"),
            Some((4, rate("0.03")))
        );
        assert_eq!(
            book.lookup(usd, LegKind::TollFreeInbound, "18005550100"),
            None
        );
        assert_eq!(book.lookup(eur, LegKind::DialOut, "14255557000"), None);
        assert_eq!(book.len(), 5);
    }
}
