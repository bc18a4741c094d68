//! The balances, in memory: a cache of what the ledger's rows add up to, rebuilt from
//! them when the ledger opens (`store::load`) and kept in step with every row handed to
//! the writer. Credits are what the opening balance, top-ups and adjustments bring less
//! what settled reservations took; what open reservations hold is set aside, so the
//! credits *available* to a new reservation are credits − held, and never below 0.00.
//! A pool's use is counted per month, reservations included (a refund gives it back).

use std::collections::HashMap;

use crate::config::{MoneyConfig, TenantAccount};
use crate::funding::Source;
use crate::money::{Amount, Currency};
use crate::month::Month;
use crate::number::CountryCode;

/// A reservation's number, unique in its ledger for ever (ids are never reused).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReservationId(pub(crate) i64);

impl ReservationId {
    /// The id as the rows store it.
    pub fn get(self) -> i64 {
        self.0
    }
}

/// One increment taken ahead: what it holds until it is settled or refunded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reservation {
    pub id: ReservationId,
    pub source: Source,
    /// The increment's length.
    pub seconds: u32,
    /// The month (UTC) it was taken in: a pool's use counts there.
    pub month: Month,
}

/// An open reservation as the book keeps it.
#[derive(Debug, Clone)]
pub(crate) struct Held {
    pub tenant: usize,
    pub reservation: Reservation,
}

/// Every configured tenant's balances, and the open reservations.
#[derive(Debug, Default)]
pub(crate) struct Book {
    pub tenants: Vec<TenantBook>,
    by_name: HashMap<Box<str>, usize>,
    pub open: HashMap<ReservationId, Held>,
    next_id: i64,
}

/// One tenant's balances.
#[derive(Debug, Clone)]
pub struct TenantBook {
    pub name: Box<str>,
    pub currency: Currency,
    /// Opening + top-ups + adjustments − settled.
    pub credits: Amount,
    /// What open reservations from credits hold.
    pub held: Amount,
    pub pools: Vec<PoolBook>,
}

/// One pool's size and use.
#[derive(Debug, Clone)]
pub struct PoolBook {
    pub country: CountryCode,
    /// Its size each month, in seconds.
    pub seconds: u64,
    /// Seconds used (settled or held) per month; only months with use are listed.
    used: Vec<(Month, u64)>,
}

impl TenantBook {
    /// What a new reservation may take: credits less what is held.
    pub fn available(&self) -> Amount {
        self.credits.checked_sub(self.held).unwrap_or(Amount::ZERO)
    }

    /// A tenant's balances with nothing written yet (`credits`: its opening balance).
    pub fn from_account(account: &TenantAccount) -> TenantBook {
        TenantBook {
            name: account.name.as_str().into(),
            currency: account.currency,
            credits: Amount::ZERO,
            held: Amount::ZERO,
            pools: account
                .pools
                .iter()
                .map(|p| PoolBook {
                    country: p.country,
                    seconds: u64::from(p.minutes) * 60,
                    used: Vec::new(),
                })
                .collect(),
        }
    }
}

impl PoolBook {
    /// Seconds used in `month`.
    pub fn used_seconds(&self, month: Month) -> u64 {
        self.used
            .iter()
            .find(|(m, _)| *m == month)
            .map_or(0, |(_, s)| *s)
    }

    /// Seconds left in `month`.
    pub fn left_seconds(&self, month: Month) -> u64 {
        self.seconds.saturating_sub(self.used_seconds(month))
    }

    /// Forgets every month's use (before the database's counts replace it).
    pub(crate) fn clear(&mut self) {
        self.used.clear();
    }

    /// Counts `seconds` more (or, negative, fewer) in `month`.
    pub(crate) fn add(&mut self, month: Month, seconds: i64) {
        match self.used.iter_mut().find(|(m, _)| *m == month) {
            Some((_, used)) => *used = used.saturating_add_signed(seconds),
            None => self.used.push((month, u64::try_from(seconds).unwrap_or(0))),
        }
    }
}

impl Book {
    /// The configured tenants with empty balances; ids start after `last_id`.
    pub fn new(config: &MoneyConfig, last_id: i64) -> Book {
        let tenants: Vec<TenantBook> = config
            .tenants
            .iter()
            .map(TenantBook::from_account)
            .collect();
        let by_name = tenants
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.clone(), i))
            .collect();
        Book {
            tenants,
            by_name,
            open: HashMap::new(),
            next_id: last_id,
        }
    }

    /// Gives ids after every id `other` gave (a book rebuilt after a failed write).
    pub fn ids_after(&mut self, other: &Book) {
        self.next_id = self.next_id.max(other.next_id);
    }

    /// The index of tenant `name`.
    pub fn tenant(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    /// Credits in (positive) or out (negative) of a tenant: opening, top-up, adjustment.
    pub fn credit(&mut self, tenant: usize, amount: Amount) {
        if let Some(t) = self.tenants.get_mut(tenant) {
            t.credits = t.credits.checked_add(amount).unwrap_or(t.credits);
        }
    }

    /// Sets aside what `source` takes for one increment of `seconds`, and gives the
    /// reservation its id.
    pub fn hold(
        &mut self,
        tenant: usize,
        source: Source,
        seconds: u32,
        month: Month,
    ) -> Reservation {
        self.next_id += 1;
        let reservation = Reservation {
            id: ReservationId(self.next_id),
            source,
            seconds,
            month,
        };
        self.take(tenant, reservation);
        reservation
    }

    /// Counts an open reservation (a new one, or one found open in the rows).
    pub fn take(&mut self, tenant: usize, reservation: Reservation) {
        if let Some(t) = self.tenants.get_mut(tenant) {
            match reservation.source {
                Source::Credits { price, .. } => {
                    t.held = t.held.checked_add(price).unwrap_or(t.held);
                }
                Source::Pool { country } => {
                    if let Some(p) = t.pools.iter_mut().find(|p| p.country == country) {
                        p.add(reservation.month, i64::from(reservation.seconds));
                    }
                }
                Source::Free => {}
            }
        }
        self.next_id = self.next_id.max(reservation.id.0);
        self.open.insert(
            reservation.id,
            Held {
                tenant,
                reservation,
            },
        );
    }

    /// The reservation was used: what it held is spent. `None` if it is not open.
    pub fn settle(&mut self, id: ReservationId) -> Option<Held> {
        let held = self.open.remove(&id)?;
        if let (Some(t), Source::Credits { price, .. }) =
            (self.tenants.get_mut(held.tenant), held.reservation.source)
        {
            t.held = t.held.checked_sub(price).unwrap_or(Amount::ZERO);
            t.credits = t.credits.checked_sub(price).unwrap_or(t.credits);
        }
        Some(held)
    }

    /// The reservation was never used: what it held is free again. `None` if it is not
    /// open.
    pub fn refund(&mut self, id: ReservationId) -> Option<Held> {
        let held = self.open.remove(&id)?;
        if let Some(t) = self.tenants.get_mut(held.tenant) {
            let r = held.reservation;
            match r.source {
                Source::Credits { price, .. } => {
                    t.held = t.held.checked_sub(price).unwrap_or(Amount::ZERO);
                }
                Source::Pool { country } => {
                    if let Some(p) = t.pools.iter_mut().find(|p| p.country == country) {
                        p.add(r.month, -i64::from(r.seconds));
                    }
                }
                Source::Free => {}
            }
        }
        Some(held)
    }

    /// Counts `seconds` of settled pool use in `month` (rebuilding from the rows).
    pub fn pool_used(&mut self, tenant: usize, country: CountryCode, month: Month, seconds: u64) {
        if let Some(p) = self
            .tenants
            .get_mut(tenant)
            .and_then(|t| t.pools.iter_mut().find(|p| p.country == country))
        {
            p.add(month, i64::try_from(seconds).unwrap_or(i64::MAX));
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::funding::{Leg, Refusal, decide};

    fn config() -> MoneyConfig {
        MoneyConfig::from_toml_str(crate::config::tests::DEMO)
            .unwrap()
            .unwrap()
    }

    fn december() -> Month {
        "2026-12".parse().unwrap()
    }

    fn amount(t: &str) -> Amount {
        t.parse().unwrap()
    }

    /// The demo's book with contoso's opening 20.00 and fabrikam's 0.00 in.
    fn demo_book(config: &MoneyConfig) -> Book {
        let mut book = Book::new(config, 0);
        for (i, t) in config.tenants.iter().enumerate() {
            book.credit(i, t.opening_credits);
        }
        book
    }

    fn source(book: &Book, c: &MoneyConfig, tenant: &str, leg: Leg<'_>) -> Result<Source, Refusal> {
        let t = &book.tenants[book.tenant(tenant).unwrap()];
        decide(&c.rates, c.increment_s, t, leg, december())
    }

    #[test]
    fn toll_free_minutes_are_paid_from_credits_at_the_numbers_rate() {
        let c = config();
        let book = demo_book(&c);
        let toll_free = Leg::TollFreeInbound {
            number: "+18885550100",
        };
        assert_eq!(
            source(&book, &c, "contoso", toll_free),
            Ok(Source::Credits {
                per_minute: amount("0.03"),
                price: amount("0.03")
            })
        );
        assert_eq!(
            source(&book, &c, "fabrikam", toll_free),
            Err(Refusal::NoCredits)
        );
        assert_eq!(
            source(&book, &c, "contoso", Leg::TollInbound),
            Ok(Source::Free)
        );
        // A toll-free number no rate covers: nothing pays for it.
        let other = Leg::TollFreeInbound {
            number: "+442071234567",
        };
        assert_eq!(source(&book, &c, "contoso", other), Err(Refusal::NoFunding));
        let bad = Leg::TollFreeInbound {
            number: "18885550100",
        };
        assert_eq!(source(&book, &c, "contoso", bad), Err(Refusal::BadNumber));
    }

    #[test]
    fn dial_outs_take_the_pool_first_then_credits_at_the_destinations_rate() {
        let c = config();
        let mut book = demo_book(&c);
        let us = Leg::DialOut {
            destination: "+14255557000",
        };
        let pool = Source::Pool {
            country: "+1".parse().unwrap(),
        };
        assert_eq!(source(&book, &c, "contoso", us), Ok(pool));
        let contoso = book.tenant("contoso").unwrap();
        // Use up the 3,000 minutes of December.
        book.pool_used(contoso, "+1".parse().unwrap(), december(), 3000 * 60);
        assert_eq!(
            source(&book, &c, "contoso", us),
            Ok(Source::Credits {
                per_minute: amount("0.02"),
                price: amount("0.02")
            })
        );
        // January's pool is whole again.
        let t = &book.tenants[contoso];
        assert_eq!(decide(&c.rates, 60, t, us, december().next()), Ok(pool));
        for (destination, rate) in [
            ("+33612345678", "0.05"),
            ("+4915112345678", "0.05"),
            ("+442071234567", "0.25"),
        ] {
            assert_eq!(
                source(&book, &c, "contoso", Leg::DialOut { destination }),
                Ok(Source::Credits {
                    per_minute: amount(rate),
                    price: amount(rate)
                }),
                "{destination}"
            );
        }
        // fabrikam: no pool, no credits.
        assert_eq!(source(&book, &c, "fabrikam", us), Err(Refusal::NoCredits));
    }

    #[test]
    fn held_credits_are_not_available_and_settle_or_refund_once() {
        let c = config();
        let mut book = demo_book(&c);
        let fabrikam = book.tenant("fabrikam").unwrap();
        book.credit(fabrikam, amount("0.05"));
        let price = amount("0.03");
        let s = Source::Credits {
            per_minute: price,
            price,
        };
        let a = book.hold(fabrikam, s, 60, december());
        assert_eq!(book.tenants[fabrikam].available(), amount("0.02"));
        let toll_free = Leg::TollFreeInbound {
            number: "+18885550100",
        };
        assert_eq!(
            source(&book, &c, "fabrikam", toll_free),
            Err(Refusal::NoCredits)
        );
        assert!(book.settle(a.id).is_some());
        assert!(book.settle(a.id).is_none(), "never twice");
        assert!(book.refund(a.id).is_none(), "nor refunded after");
        assert_eq!(book.tenants[fabrikam].credits, amount("0.02"));
        assert_eq!(book.tenants[fabrikam].held, Amount::ZERO);
        // A refunded hold gives everything back, a pool's minutes too.
        let contoso = book.tenant("contoso").unwrap();
        let country = "+1".parse().unwrap();
        let r = book.hold(contoso, Source::Pool { country }, 60, december());
        assert_eq!(book.tenants[contoso].pools[0].used_seconds(december()), 60);
        book.refund(r.id).unwrap();
        assert_eq!(book.tenants[contoso].pools[0].used_seconds(december()), 0);
        assert!(r.id > a.id, "ids only grow");
    }
}
