//! The funding decision, pure: for a tenant's balances, a leg and the month, where the
//! next increment's money comes from — free (a toll call), a minute pool, or credits
//! at a rate — or a typed refusal. It reads only what it is given and allocates
//! nothing (the `funding` bench holds it to that).
//!
//! The rules (shared/DOMAIN.md, "Money"): a toll-free inbound minute is paid from
//! credits at the toll-free rate of the number dialled; a dial-out to a country the
//! tenant has a pool for takes the pool's minutes first (this month's, UTC), then
//! credits at the destination's rate; a dial-out elsewhere, credits at its rate. An
//! increment is taken whole or not at all: credits never go below 0.00.

use std::fmt;

use crate::book::TenantBook;
use crate::money::Amount;
use crate::month::Month;
use crate::number::{CountryCode, e164_digits};
use crate::rates::{LegKind, RateBook};

/// A leg as the ledger sees it. Numbers are E.164 as the router normalised them
/// (`+18885550100`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leg<'a> {
    /// A call to a toll number: the caller pays, the tenant nothing.
    TollInbound,
    /// A call to a toll-free number: credits, at that number's toll-free rate.
    TollFreeInbound { number: &'a str },
    /// A call the bridge places to `destination`: a pool, else credits at its rate.
    DialOut { destination: &'a str },
}

impl Leg<'_> {
    /// What kind of leg it is, for rates (`None`: free).
    pub fn kind(&self) -> Option<LegKind> {
        match self {
            Leg::TollInbound => None,
            Leg::TollFreeInbound { .. } => Some(LegKind::TollFreeInbound),
            Leg::DialOut { .. } => Some(LegKind::DialOut),
        }
    }

    /// The number the leg is rated by.
    pub fn number(&self) -> Option<&str> {
        match self {
            Leg::TollInbound => None,
            Leg::TollFreeInbound { number } => Some(number),
            Leg::DialOut { destination } => Some(destination),
        }
    }
}

/// Where an increment's money comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Nobody pays the tenant's money (a toll call).
    Free,
    /// This month's minutes of the pool for `country`.
    Pool { country: CountryCode },
    /// Communications Credits: `per_minute` is the rate, `price` what one increment
    /// costs at it.
    Credits { per_minute: Amount, price: Amount },
}

impl Source {
    /// What one increment takes from the credits.
    pub fn price(&self) -> Amount {
        match self {
            Source::Credits { price, .. } => *price,
            Source::Free | Source::Pool { .. } => Amount::ZERO,
        }
    }
}

/// Why a leg cannot be funded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// The tenant has no account in `[money]`.
    UnknownTenant,
    /// Credits would pay, but they cannot cover the next increment.
    NoCredits,
    /// Nothing would pay: no pool covers the number (or it is used up for the month)
    /// and no rate is configured for it.
    NoFunding,
    /// The number is not E.164 (`+` and 7 to 15 digits).
    BadNumber,
}

impl Refusal {
    /// Every refusal, for tables and metrics.
    pub const ALL: [Refusal; 4] = [
        Refusal::UnknownTenant,
        Refusal::NoCredits,
        Refusal::NoFunding,
        Refusal::BadNumber,
    ];

    /// A stable name (metrics labels, logs, API errors).
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::UnknownTenant => "unknown_tenant",
            Refusal::NoCredits => "no_credits",
            Refusal::NoFunding => "no_funding",
            Refusal::BadNumber => "bad_number",
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Refusal::UnknownTenant => "the tenant has no money account",
            Refusal::NoCredits => "no communications credits left",
            Refusal::NoFunding => "no minute pool or rate covers this number",
            Refusal::BadNumber => "not an E.164 number",
        })
    }
}

/// The source of the next `increment_s` seconds of `leg` for `tenant` in `month`.
pub fn decide(
    rates: &RateBook,
    increment_s: u32,
    tenant: &TenantBook,
    leg: Leg<'_>,
    month: Month,
) -> Result<Source, Refusal> {
    let (Some(kind), Some(number)) = (leg.kind(), leg.number()) else {
        return Ok(Source::Free);
    };
    let digits = e164_digits(number).ok_or(Refusal::BadNumber)?;
    if kind == LegKind::DialOut
        && let Some(pool) = tenant.pools.iter().find(|p| p.country.covers(digits))
        && pool.left_seconds(month) >= u64::from(increment_s)
    {
        return Ok(Source::Pool {
            country: pool.country,
        });
    }
    let (_, per_minute) = rates
        .lookup(tenant.currency, kind, digits)
        .ok_or(Refusal::NoFunding)?;
    let price = per_minute
        .per_minute_for(increment_s)
        .ok_or(Refusal::NoFunding)?;
    if tenant.available() >= price {
        Ok(Source::Credits { per_minute, price })
    } else {
        Err(Refusal::NoCredits)
    }
}
