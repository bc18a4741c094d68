//! dialbridge's money (shared/DOMAIN.md, "Money"): each tenant's Communications Credits
//! (a prepaid balance in a currency) and monthly minute pools per country, the rates per
//! number prefix, and the ledger that records every movement of them.
//!
//! - [`MoneyConfig`]: the `[money]` part of the configuration file, validated.
//! - [`decide`]: the funding decision, pure — free, a pool, credits at a rate, or a
//!   typed [`Refusal`].
//! - [`Ledger`]: every reservation, settlement, refund, top-up, adjustment and opening
//!   balance is an append-only row in SQLite (the default) or PostgreSQL (nodes that
//!   share balances: [`Ledger::open_postgres`]), committed by one writer thread before
//!   whoever waits for it is told; balances are derived from the rows (and cached in
//!   memory); a reservation left open by a crash is settled when the ledger opens.
//! - [`Meter`]: one call's increments, driven by the call's owner.
//!
//! It knows nothing of SIP, the router or the meetings: tenants are names, numbers are
//! E.164 strings (`+18885550100`), and time is passed in.

mod book;
mod config;
mod funding;
mod ledger;
mod meter;
mod money;
mod month;
mod number;
mod pg;
mod rates;
mod store;

pub use book::{PoolBook, Reservation, ReservationId, TenantBook};
pub use config::{DEFAULT_INCREMENT_S, MoneyConfig, Pool, TenantAccount};
pub use funding::{Leg, Refusal, Source, decide};
pub use ledger::{Balance, Done, Ledger, PoolBalance, done_channel};
pub use meter::{Account, Committed, LegSpec, Meter, MeterEvent, Notify, RESERVE_AHEAD, Usage};
pub use money::{Amount, Currency, UNITS_PER_MAJOR};
pub use month::Month;
pub use number::{CountryCode, e164_digits};
pub use pg::{ABANDONED_AFTER, RECONNECT_BACKOFF};
pub use rates::{LegKind, RateBook};

use std::sync::Arc;

use dialbridge_store::StoreError;

/// What can go wrong with money: the configuration, text that is not money, the file,
/// and operations the balances refuse. (A call that cannot be funded is a [`Refusal`],
/// not an error.)
#[derive(Debug, Clone, thiserror::Error)]
pub enum LedgerError {
    /// A fault in `[money]`: its key, and its line when the file says.
    #[error("[money] {key}: {message}")]
    Config {
        line: Option<usize>,
        key: String,
        message: String,
    },
    /// Text that is not an amount.
    #[error("{text:?} is not an amount: {why}")]
    Amount { text: String, why: &'static str },
    /// Text that is not a currency code.
    #[error("{0:?} is not a currency: expected three capital letters, as in USD")]
    Currency(String),
    /// Text that is not a country calling code.
    #[error("{0:?} is not a country calling code: expected 1 to 3 digits, as in +1")]
    CountryCode(String),
    /// Text that is not a month.
    #[error("{0:?} is not a month: expected YYYY-MM, as in 2026-12")]
    Month(String),
    /// No such tenant in `[money]`.
    #[error("tenant {0:?} has no money account")]
    UnknownTenant(String),
    /// A top-up or adjustment of nothing.
    #[error("the amount is 0.00: it would change nothing")]
    ZeroAmount,
    /// An adjustment larger than what is available.
    #[error("a balance never goes below 0.00: at most {available} can be taken now")]
    BelowZero { available: Amount },
    /// Settling or refunding a reservation that is not open (already closed, or never
    /// committed).
    #[error("reservation {0} is not open")]
    NotOpen(i64),
    /// The rows hold a tenant in another currency than the configuration.
    #[error(
        "tenant {tenant:?}'s ledger rows are in {stored}, but [money] says {configured}: a \
         currency cannot change under a balance"
    )]
    CurrencyChanged {
        tenant: String,
        stored: String,
        configured: String,
    },
    /// The database failed.
    #[error("ledger database: {0}")]
    Sqlite(Arc<rusqlite::Error>),
    /// The PostgreSQL database failed (or could not be reached).
    #[error("ledger database (PostgreSQL): {}", pg_error(.0))]
    Postgres(Arc<postgres::Error>),
    /// A shared database refused a reservation the in-memory balances had allowed:
    /// other nodes spent the balance first. The reservation holds nothing.
    #[error("refused: {0}")]
    Refused(Refusal),
    /// The file was written by a newer dialbridge.
    #[error("ledger schema version {found} is newer than this build knows ({known})")]
    SchemaTooNew { found: i64, known: i64 },
    /// A stored row that does not read (edited by hand?).
    #[error("corrupt ledger row {seq}: column {column}")]
    Corrupt { seq: i64, column: &'static str },
    /// A commit failed: the rows it carried (and those queued behind it) are not written.
    #[error("ledger write failed: {0}")]
    Write(String),
}

impl From<rusqlite::Error> for LedgerError {
    fn from(e: rusqlite::Error) -> Self {
        LedgerError::Sqlite(Arc::new(e))
    }
}

impl From<StoreError> for LedgerError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Sqlite(e) => LedgerError::Sqlite(Arc::new(e)),
            StoreError::SchemaTooNew { found, known } => LedgerError::SchemaTooNew { found, known },
            StoreError::Postgres(e) => LedgerError::Postgres(Arc::new(e)),
            other => LedgerError::Write(other.to_string()),
        }
    }
}

/// A PostgreSQL error with its cause (the server's message, or the I/O error), which
/// `postgres::Error`'s own `Display` leaves out.
fn pg_error(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => match std::error::Error::source(e) {
            Some(cause) => format!("{e}: {cause}"),
            None => e.to_string(),
        },
    }
}
