//! The `[money]` part of the bridge's TOML file: each tenant's currency, opening
//! Communications Credits and monthly minute pools per country, the rates per number
//! prefix for toll-free inbound minutes and for dial-outs, and the billing increment.
//! Every other part of the file belongs to another crate and is ignored here. A fault
//! names its key and, where the file says, its line.
//!
//! ```toml
//! [money]
//! database = "ledger.sqlite"     # optional: the server says where by default
//! billing_increment_s = 60       # "a started minute is a minute"
//!
//! [[money.tenant]]
//! name = "contoso"
//! currency = "USD"
//! credits = "20.00"              # the opening balance, written to the ledger once
//! pools = [{ country = "+1", minutes = 3000 }]
//!
//! [[money.rate]]
//! leg = "toll-free"              # or "dial-out"
//! currency = "USD"
//! per_minute = "0.03"
//! prefixes = ["+1800", "+1888"]  # "+" alone: anywhere
//! ```

use std::collections::HashSet;
use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;

use crate::LedgerError;
use crate::money::{Amount, Currency};
use crate::number::{CountryCode, prefix_digits};
use crate::rates::{LegKind, RateBook};

/// The billing increment when the file names none: a started minute is a minute.
pub const DEFAULT_INCREMENT_S: u32 = 60;
/// The longest billing increment accepted (an hour).
const MAX_INCREMENT_S: u64 = 3600;
/// The largest pool accepted, in minutes (a billion: any deployment's licences).
const MAX_POOL_MINUTES: u64 = 1_000_000_000;

/// The `[money]` section, validated.
#[derive(Debug, Clone)]
pub struct MoneyConfig {
    /// `database`, as written (relative paths are the server's to resolve); `None`:
    /// the server's default.
    pub database: Option<String>,
    /// Seconds of each increment a call reserves, settles and pays for whole.
    pub increment_s: u32,
    pub tenants: Vec<TenantAccount>,
    pub rates: RateBook,
}

/// One tenant's money as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantAccount {
    pub name: String,
    pub currency: Currency,
    /// Written once to the ledger, the first time the bridge sees the tenant; later
    /// changes of the balance go through top-ups and adjustments.
    pub opening_credits: Amount,
    pub pools: Vec<Pool>,
}

/// A monthly minute pool: a calling plan's minutes to one country, reset at the start
/// of each month (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pool {
    pub country: CountryCode,
    pub minutes: u32,
}

impl MoneyConfig {
    /// The `[money]` section of the TOML `text`, or `None` when it has none (then
    /// nothing is billed and nothing refused for money).
    pub fn from_toml_str(text: &str) -> Result<Option<MoneyConfig>, LedgerError> {
        let file: File = toml::from_str(text).map_err(|e| LedgerError::Config {
            line: e.span().map(|s| line_of(text, &s)),
            key: "money".into(),
            message: e.message().trim().to_owned(),
        })?;
        let Some(raw) = file.money else {
            return Ok(None);
        };
        Checker { text }.money(raw.into_inner()).map(Some)
    }

    /// The tenant called `name`.
    pub fn tenant(&self, name: &str) -> Option<&TenantAccount> {
        self.tenants.iter().find(|t| t.name == name)
    }
}

#[derive(Deserialize)]
struct File {
    money: Option<Spanned<RawMoney>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMoney {
    database: Option<Spanned<String>>,
    billing_increment_s: Option<Spanned<u64>>,
    #[serde(default)]
    tenant: Vec<RawTenant>,
    #[serde(default)]
    rate: Vec<RawRate>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTenant {
    name: Spanned<String>,
    currency: Spanned<String>,
    credits: Spanned<String>,
    #[serde(default)]
    pools: Vec<RawPool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPool {
    country: Spanned<String>,
    minutes: Spanned<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRate {
    leg: Spanned<String>,
    currency: Spanned<String>,
    per_minute: Spanned<String>,
    prefixes: Spanned<Vec<Spanned<String>>>,
}

/// Turns the raw section into the validated one; every fault names key and line.
struct Checker<'t> {
    text: &'t str,
}

impl Checker<'_> {
    fn fault<T>(
        &self,
        span: &Range<usize>,
        key: String,
        message: String,
    ) -> Result<T, LedgerError> {
        Err(LedgerError::Config {
            line: Some(line_of(self.text, span)),
            key,
            message,
        })
    }

    fn money(&self, raw: RawMoney) -> Result<MoneyConfig, LedgerError> {
        let database = match raw.database {
            Some(d) if d.get_ref().trim().is_empty() => {
                return self.fault(&d.span(), "database".into(), "is empty".into());
            }
            d => d.map(Spanned::into_inner),
        };
        let increment_s = match &raw.billing_increment_s {
            None => DEFAULT_INCREMENT_S,
            Some(s) if (1..=MAX_INCREMENT_S).contains(s.get_ref()) => {
                u32::try_from(*s.get_ref()).unwrap_or(DEFAULT_INCREMENT_S)
            }
            Some(s) => {
                return self.fault(
                    &s.span(),
                    "billing_increment_s".into(),
                    format!("must be 1 to {MAX_INCREMENT_S} seconds"),
                );
            }
        };
        let mut names = HashSet::new();
        let mut tenants = Vec::with_capacity(raw.tenant.len());
        for t in raw.tenant {
            let tenant = self.tenant(t)?;
            tenants.push(tenant);
        }
        for t in &tenants {
            if !names.insert(t.name.as_str()) {
                // The duplicate's line is found by its name.
                let key = format!("tenant \"{}\"", t.name);
                return Err(LedgerError::Config {
                    line: None,
                    key,
                    message: "is listed twice".into(),
                });
            }
        }
        let mut rates = RateBook::default();
        for (i, r) in raw.rate.into_iter().enumerate() {
            self.rate(&mut rates, i + 1, r)?;
        }
        Ok(MoneyConfig {
            database,
            increment_s,
            tenants,
            rates,
        })
    }

    fn tenant(&self, raw: RawTenant) -> Result<TenantAccount, LedgerError> {
        let name = raw.name.get_ref().trim().to_owned();
        if name.is_empty() {
            return self.fault(&raw.name.span(), "tenant name".into(), "is empty".into());
        }
        let key = |k: &str| format!("tenant \"{name}\" {k}");
        let currency = match raw.currency.get_ref().parse::<Currency>() {
            Ok(c) => c,
            Err(e) => return self.fault(&raw.currency.span(), key("currency"), e.to_string()),
        };
        let opening_credits = match raw.credits.get_ref().parse::<Amount>() {
            Ok(a) if a.is_negative() => {
                return self.fault(&raw.credits.span(), key("credits"), "is below 0.00".into());
            }
            Ok(a) => a,
            Err(e) => return self.fault(&raw.credits.span(), key("credits"), e.to_string()),
        };
        let mut pools: Vec<Pool> = Vec::with_capacity(raw.pools.len());
        for p in raw.pools {
            let country = match p.country.get_ref().parse::<CountryCode>() {
                Ok(c) => c,
                Err(e) => {
                    return self.fault(&p.country.span(), key("pools country"), e.to_string());
                }
            };
            if pools.iter().any(|q| q.country == country) {
                return self.fault(
                    &p.country.span(),
                    key("pools country"),
                    format!("{country} has two pools"),
                );
            }
            let minutes = *p.minutes.get_ref();
            if !(1..=MAX_POOL_MINUTES).contains(&minutes) {
                return self.fault(
                    &p.minutes.span(),
                    key("pools minutes"),
                    format!("must be 1 to {MAX_POOL_MINUTES}"),
                );
            }
            let minutes = u32::try_from(minutes).unwrap_or(u32::MAX);
            pools.push(Pool { country, minutes });
        }
        Ok(TenantAccount {
            name,
            currency,
            opening_credits,
            pools,
        })
    }

    fn rate(&self, rates: &mut RateBook, n: usize, raw: RawRate) -> Result<(), LedgerError> {
        let key = |k: &str| format!("rate {n} {k}");
        let Some(leg) = LegKind::parse(raw.leg.get_ref()) else {
            return self.fault(
                &raw.leg.span(),
                key("leg"),
                format!(
                    "{:?} is not \"toll-free\" or \"dial-out\"",
                    raw.leg.get_ref()
                ),
            );
        };
        let currency = match raw.currency.get_ref().parse::<Currency>() {
            Ok(c) => c,
            Err(e) => return self.fault(&raw.currency.span(), key("currency"), e.to_string()),
        };
        let per_minute = match raw.per_minute.get_ref().parse::<Amount>() {
            Ok(a) if a.is_negative() => {
                return self.fault(
                    &raw.per_minute.span(),
                    key("per_minute"),
                    "is below 0.00".into(),
                );
            }
            Ok(a) => a,
            Err(e) => return self.fault(&raw.per_minute.span(), key("per_minute"), e.to_string()),
        };
        if raw.prefixes.get_ref().is_empty() {
            return self.fault(&raw.prefixes.span(), key("prefixes"), "is empty".into());
        }
        for prefix in raw.prefixes.get_ref() {
            let Some(digits) = prefix_digits(prefix.get_ref()) else {
                return self.fault(
                    &prefix.span(),
                    key("prefixes"),
                    format!(
                        "{:?} is not + and up to 15 digits (\"+\" alone: anywhere)",
                        prefix.get_ref()
                    ),
                );
            };
            if !rates.insert(currency, leg, digits, per_minute) {
                return self.fault(
                    &prefix.span(),
                    key("prefixes"),
                    format!(
                        "{} already has a {} rate in {currency}",
                        prefix.get_ref(),
                        leg.as_str()
                    ),
                );
            }
        }
        Ok(())
    }
}

/// The line (from 1) where `span` starts.
fn line_of(text: &str, span: &Range<usize>) -> usize {
    let before = text.get(..span.start).unwrap_or(text);
    before.bytes().filter(|b| *b == b'\n').count() + 1
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// The demo deployment's file: its `[money]` is shared/DEMO.md's, fact for fact.
    pub(crate) const DEMO: &str = include_str!("../../../fixtures/demo.toml");

    #[test]
    fn the_demo_reads() {
        let c = MoneyConfig::from_toml_str(DEMO).unwrap().unwrap();
        assert_eq!(c.increment_s, 60);
        assert_eq!(c.database, None, "beside the CDR database");
        let contoso = c.tenant("contoso").unwrap();
        assert_eq!(contoso.opening_credits.to_string(), "20.00");
        assert_eq!(contoso.pools[0].country.to_string(), "+1");
        assert_eq!(contoso.pools[0].minutes, 3000);
        assert!(c.tenant("fabrikam").unwrap().pools.is_empty());
        assert_eq!(c.rates.len(), 11);
    }

    #[test]
    fn no_money_section_is_none() {
        assert!(
            MoneyConfig::from_toml_str("[sip]\nudp = \"x\"\n")
                .unwrap()
                .is_none()
        );
    }

    /// The fault of the demo with `from` replaced by `to`: its line and message.
    fn fault(from: &str, to: &str) -> (Option<usize>, String) {
        assert!(DEMO.contains(from), "{from}");
        let text = DEMO.replacen(from, to, 1);
        match MoneyConfig::from_toml_str(&text) {
            Err(LedgerError::Config { line, key, message }) => {
                (line, format!("[money] {key}: {message}"))
            }
            other => panic!("{other:?}"),
        }
    }

    fn line(needle: &str) -> Option<usize> {
        DEMO.lines().position(|l| l.contains(needle)).map(|i| i + 1)
    }

    #[test]
    fn faults_name_the_key_and_the_line() {
        let (at, message) = fault("credits = \"20.00\"", "credits = \"20,00\"");
        assert_eq!(at, line("credits = \"20.00\""));
        assert!(message.contains("tenant \"contoso\" credits"), "{message}");
        let (_, message) = fault("credits = \"0.00\"", "credits = \"-1.00\"");
        assert!(
            message.contains("fabrikam\" credits: is below 0.00"),
            "{message}"
        );
        let (at, message) = fault("per_minute = \"0.05\"", "per_minute = \"five\"");
        assert_eq!(at, line("per_minute = \"0.05\""));
        assert!(message.contains("rate 3 per_minute"), "{message}");
        let (_, message) = fault(
            "prefixes = [\"+33\", \"+49\"]",
            "prefixes = [\"+33\", \"49\"]",
        );
        assert!(
            message.contains("rate 3 prefixes: \"49\" is not +"),
            "{message}"
        );
        let (_, message) = fault("prefixes = [\"+33\", \"+49\"]", "prefixes = [\"+1\"]");
        assert!(
            message.contains("+1 already has a dial-out rate in USD"),
            "{message}"
        );
        let (_, message) = fault("leg = \"dial-out\"", "leg = \"outbound\"");
        assert!(message.contains("rate 2 leg"), "{message}");
        let (_, message) = fault("currency = \"USD\"", "currency = \"usd\"");
        assert!(message.contains("tenant \"contoso\" currency"), "{message}");
        let (at, message) = fault("minutes = 3000", "minutes = 0");
        assert_eq!(at, line("minutes = 3000"));
        assert!(message.contains("pools minutes"), "{message}");
        let (_, message) = fault("country = \"+1\"", "country = \"+1234\"");
        assert!(message.contains("pools country"), "{message}");
        let (at, message) = fault("billing_increment_s = 60", "billing_increment_s = 0");
        assert_eq!(at, line("billing_increment_s = 60"));
        assert!(message.contains("billing_increment_s"), "{message}");
        let (_, message) = fault(
            "name = \"fabrikam\"\ncurrency",
            "name = \"contoso\"\ncurrency",
        );
        assert!(
            message.contains("tenant \"contoso\": is listed twice"),
            "{message}"
        );
        // An unknown key: serde's message, at its line.
        let (at, message) = fault("credits = \"0.00\"", "credits = \"0.00\"\nbalance = 3");
        assert_eq!(at, line("credits = \"0.00\"").map(|l| l + 1));
        assert!(message.contains("balance"), "{message}");
        // A float where text is wanted: refused, not rounded.
        let (at, _) = fault("credits = \"20.00\"", "credits = 20.00");
        assert_eq!(at, line("credits = \"20.00\""));
    }
}
