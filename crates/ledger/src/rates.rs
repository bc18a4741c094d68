//! Rates per minute by number prefix, one table per currency and kind of leg (toll-free
//! inbound, dial-out): the longest prefix of the number that has a rate wins (`+1888`
//! over `+1`, `+1` over `+`). A lookup allocates nothing: at most 16 binary searches of
//! the table's sorted prefixes, one per length.

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

/// The rates of one currency and kind of leg, sorted by prefix.
#[derive(Debug, Clone)]
struct RateTable {
    currency: Currency,
    leg: LegKind,
    /// (prefix digits, rate per minute), sorted by prefix.
    rates: Vec<(Box<str>, Amount)>,
    /// The longest prefix's length: lookups start there.
    longest: usize,
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
                    rates: Vec::new(),
                    longest: 0,
                });
                self.tables.len() - 1
            }
        };
        let Some(table) = self.tables.get_mut(index) else {
            return false;
        };
        match table.rates.binary_search_by(|(p, _)| (**p).cmp(prefix)) {
            Ok(_) => false,
            Err(at) => {
                table.rates.insert(at, (prefix.into(), per_minute));
                table.longest = table.longest.max(prefix.len());
                true
            }
        }
    }

    /// The rate per minute of `number_digits` for `leg` in `currency`, and the prefix
    /// that gave it (its digits), by longest prefix.
    pub fn lookup(
        &self,
        currency: Currency,
        leg: LegKind,
        number_digits: &str,
    ) -> Option<(&str, Amount)> {
        let table = self
            .tables
            .iter()
            .find(|t| t.currency == currency && t.leg == leg)?;
        let longest = table.longest.min(number_digits.len()).min(MAX_DIGITS);
        (0..=longest).rev().find_map(|len| {
            let prefix = number_digits.get(..len)?;
            let at = table
                .rates
                .binary_search_by(|(p, _)| (**p).cmp(prefix))
                .ok()?;
            table.rates.get(at).map(|(p, rate)| (&**p, *rate))
        })
    }

    /// How many rates there are.
    pub fn len(&self) -> usize {
        self.tables.iter().map(|t| t.rates.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
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
        assert_eq!(dial("14255557000"), Some(("1", rate("0.02"))));
        assert_eq!(dial("33170000100"), Some(("33", rate("0.05"))));
        assert_eq!(dial("493070000100"), Some(("49", rate("0.05"))));
        assert_eq!(
            dial("442071234567"),
            Some(("", rate("0.25"))),
            "anywhere else"
        );
        assert_eq!(
            book.lookup(usd, LegKind::TollFreeInbound, "18885550100"),
            Some(("1888", rate("0.03")))
        );
        assert_eq!(
            book.lookup(usd, LegKind::TollFreeInbound, "18005550100"),
            None
        );
        assert_eq!(book.lookup(eur, LegKind::DialOut, "14255557000"), None);
        assert_eq!(book.len(), 5);
    }
}
