//! The ledger's rows in SQLite (through `dialbridge-store`: WAL, FULL durability,
//! versioned migrations): one append-only table, `entries`. Nothing is ever updated or
//! deleted. Unique indexes make the rules the database's own too: one opening per
//! tenant, one reserve row per reservation, and at most one settle *or* refund of it,
//! so no code path can spend a reservation twice.
//!
//! Balances are derived from the rows (see `book`): here by SQL sums when the ledger
//! opens, after reservations a crash left open are settled.
//!
//! [`Storage`] is what the ledger's writer thread needs of a backend, so that the
//! decisions, the queue and the writer are one code for both: this file's SQLite (one
//! process owns the file, so its rows only ever hold what this process decided) and
//! `pg`'s PostgreSQL (several processes write, so the database decides again).

use dialbridge_store::{Durability, Schema};
use rusqlite::{Connection, OptionalExtension, params};

use crate::LedgerError;
use crate::book::{Book, Reservation, ReservationId, TenantBook};
use crate::config::MoneyConfig;
use crate::funding::Source;
use crate::money::{Amount, Currency};
use crate::month::Month;
use crate::number::CountryCode;

/// The `entries` table and its unique indexes in either backend's SQL, so both hold
/// the same rules: `$seq` the key's type, `$int` a 64-bit integer's, `$strict` what
/// follows the table's definition.
macro_rules! entries_ddl {
    ($seq:literal, $int:literal, $strict:literal) => {
        concat!(
            "CREATE TABLE entries (
        seq          ",
            $seq,
            ",
        at_ms        ",
            $int,
            " NOT NULL,
        tenant       TEXT NOT NULL,
        currency     TEXT NOT NULL CHECK (length(currency) = 3),
        kind         TEXT NOT NULL CHECK (kind IN
                         ('opening', 'top-up', 'adjustment', 'reserve', 'settle', 'refund')),
        amount       ",
            $int,
            " NOT NULL,
        reservation  ",
            $int,
            ",
        call_id      TEXT,
        pool         TEXT,
        month        INTEGER,
        seconds      ",
            $int,
            " NOT NULL DEFAULT 0 CHECK (seconds >= 0),
        CHECK ((kind IN ('reserve', 'settle', 'refund')) = (reservation IS NOT NULL)),
        CHECK (kind NOT IN ('reserve', 'settle', 'refund') OR amount >= 0),
        CHECK (kind != 'top-up' OR amount > 0),
        CHECK (kind != 'adjustment' OR amount < 0)
    )",
            $strict,
            ";
    CREATE UNIQUE INDEX entries_opening ON entries (tenant) WHERE kind = 'opening';
    CREATE UNIQUE INDEX entries_reserved ON entries (reservation) WHERE kind = 'reserve';
    CREATE UNIQUE INDEX entries_closed ON entries (reservation)
        WHERE kind IN ('settle', 'refund');"
        )
    };
}
pub(crate) use entries_ddl;

const MIGRATIONS: &[&str] = &[
    // 0 -> 1: the ledger. `amount` is in ten-thousandths of `currency`: what an opening,
    // top-up or adjustment adds (an adjustment is negative), or what a reservation holds
    // and its settle row spends. A reservation from a pool holds `seconds` of the pool
    // of country `pool` in `month` (year * 12 + month - 1, UTC) and no credits. Settle
    // and refund rows repeat what they close, so each row reads alone.
    entries_ddl!("INTEGER PRIMARY KEY", "INTEGER", " STRICT"),
];

/// FULL durability: a committed row survives a power cut, not only a crash.
const SCHEMA: Schema<'static> = Schema {
    name: "ledger",
    migrations: MIGRATIONS,
    durability: Durability::Full,
};

/// Where the writer thread puts the rows.
pub(crate) trait Storage: Send {
    /// Appends `rows` in one transaction, in order. `Err`: none was written. `Ok`: one
    /// outcome per row, for a database other processes write too may refuse a row
    /// their rows made unfundable (that row alone is not written), and the balances of
    /// the tenants the rows touched as the database holds them after the commit.
    fn write(&mut self, rows: &[Row]) -> Result<Written, LedgerError>;

    /// The balances the rows add up to, rebuilt after a failed write.
    fn load(&mut self, config: &MoneyConfig) -> Result<Book, LedgerError>;

    /// Whether other processes write the same rows: a failed write then cannot be
    /// repaired by reading the rows back (the database may be unreachable), so the
    /// ledger takes the failed rows out of its balances instead.
    fn is_shared(&self) -> bool;
}

/// What a write did.
#[derive(Debug, Default)]
pub(crate) struct Written {
    /// One per row, in order.
    pub outcomes: Vec<Result<(), LedgerError>>,
    /// Tenants' balances as the database holds them after the commit (a shared
    /// database only: other processes' rows are in them).
    pub fresh: Vec<Fresh>,
}

/// One tenant's balances as a shared database holds them.
#[derive(Debug, Clone)]
pub(crate) struct Fresh {
    pub tenant: String,
    pub credits: Amount,
    pub held: Amount,
    /// Seconds used (settled or held) per pool and month.
    pub pools: Vec<(CountryCode, Month, u64)>,
}

impl Fresh {
    /// Puts these balances in `t`, then what `pending` (rows decided but not yet
    /// written) changes for it.
    pub fn apply(&self, t: &mut TenantBook, pending: &[&Row]) {
        t.credits = self.credits;
        t.held = self.held;
        for pool in &mut t.pools {
            let country = pool.country;
            pool.clear();
            for (_, month, seconds) in self.pools.iter().filter(|p| p.0 == country) {
                pool.add(*month, i64::try_from(*seconds).unwrap_or(i64::MAX));
            }
        }
        let name = t.name.clone();
        for row in pending.iter().filter(|r| r.tenant == name) {
            row.apply_to(t, false);
        }
    }
}

/// The ledger's SQLite file.
pub(crate) struct Sqlite(pub Connection);

impl Storage for Sqlite {
    fn write(&mut self, rows: &[Row]) -> Result<Written, LedgerError> {
        write(&mut self.0, rows)?;
        Ok(Written {
            outcomes: rows.iter().map(|_| Ok(())).collect(),
            fresh: Vec::new(),
        })
    }

    fn load(&mut self, config: &MoneyConfig) -> Result<Book, LedgerError> {
        load(&self.0, config)
    }

    fn is_shared(&self) -> bool {
        false
    }
}

/// What a row records (openings are written by `write_openings` alone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    TopUp,
    Adjustment,
    Reserve,
    Settle,
    Refund,
}

impl Kind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Kind::TopUp => "top-up",
            Kind::Adjustment => "adjustment",
            Kind::Reserve => "reserve",
            Kind::Settle => "settle",
            Kind::Refund => "refund",
        }
    }
}

/// One row, as written.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub at_ms: i64,
    pub tenant: Box<str>,
    pub currency: Currency,
    pub kind: Kind,
    pub amount: Amount,
    pub reservation: Option<Reservation>,
    pub call_id: Option<Box<str>>,
}

impl Row {
    /// A row that closes or opens `reservation` (reserve, settle, refund).
    pub fn of_reservation(
        kind: Kind,
        at_ms: i64,
        tenant: &str,
        currency: Currency,
        reservation: Reservation,
        call_id: Option<&str>,
    ) -> Row {
        Row {
            at_ms,
            tenant: tenant.into(),
            currency,
            kind,
            amount: reservation.source.price(),
            reservation: Some(reservation),
            call_id: call_id.map(Into::into),
        }
    }
}

impl Row {
    /// What the row changes in its tenant's balances (`undo`: takes it back): the same
    /// arithmetic as `Book`'s, from the row alone. A reserve row holds its amount (or
    /// its pool seconds), a settle row spends what it held, a refund frees it.
    pub fn apply_to(&self, t: &mut TenantBook, undo: bool) {
        let sign = if undo { -1 } else { 1 };
        let amount = Amount::from_units(self.amount.units().saturating_mul(sign));
        let add = |a: Amount, b: Amount| a.checked_add(b).unwrap_or(a);
        let sub = |a: Amount, b: Amount| a.checked_sub(b).unwrap_or(a);
        let pool_seconds = |r: &Reservation| match r.source {
            Source::Pool { country } => Some((country, r.month, i64::from(r.seconds) * sign)),
            _ => None,
        };
        let r = self.reservation.as_ref();
        let mut pool = None;
        match self.kind {
            Kind::TopUp | Kind::Adjustment => t.credits = add(t.credits, amount),
            Kind::Reserve => {
                t.held = add(t.held, amount);
                pool = r.and_then(pool_seconds);
            }
            Kind::Settle => {
                t.held = sub(t.held, amount);
                t.credits = sub(t.credits, amount);
            }
            Kind::Refund => {
                t.held = sub(t.held, amount);
                pool = r.and_then(pool_seconds).map(|(c, m, s)| (c, m, -s));
            }
        }
        if let Some((country, month, seconds)) = pool
            && let Some(p) = t.pools.iter_mut().find(|p| p.country == country)
        {
            p.add(month, seconds);
        }
    }
}

/// Opens `path` (or `:memory:`) and brings its schema up to date.
pub(crate) fn open(path: &str) -> Result<Connection, LedgerError> {
    Ok(dialbridge_store::open(path, &SCHEMA)?)
}

/// Appends `rows` in one transaction: all of them are committed, or none.
fn write(conn: &mut Connection, rows: &[Row]) -> Result<(), rusqlite::Error> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    {
        let mut insert = tx.prepare_cached(
            "INSERT INTO entries (at_ms, tenant, currency, kind, amount, reservation, call_id,
                                  pool, month, seconds)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )?;
        for row in rows {
            let r = row.reservation.as_ref();
            let pool = r.and_then(|r| match r.source {
                Source::Pool { country } => Some(country.to_string()),
                _ => None,
            });
            insert.execute(params![
                row.at_ms,
                &*row.tenant,
                row.currency.as_str(),
                row.kind.as_str(),
                row.amount.units(),
                r.map(|r| r.id.get()),
                row.call_id.as_deref(),
                pool,
                r.map(|r| r.month.index()),
                r.map_or(0, |r| i64::from(r.seconds)),
            ])?;
        }
    }
    tx.commit()
}

/// Writes the opening balance of every configured tenant that has none yet, and
/// refuses a tenant whose rows are in another currency than the configuration says.
pub(crate) fn write_openings(
    conn: &mut Connection,
    config: &MoneyConfig,
    at_ms: i64,
) -> Result<usize, LedgerError> {
    let mut written = 0;
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    for t in &config.tenants {
        let stored: Option<String> = tx
            .query_row(
                "SELECT currency FROM entries WHERE tenant = ?1 AND currency != ?2 LIMIT 1",
                params![t.name, t.currency.as_str()],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(stored) = stored {
            return Err(LedgerError::CurrencyChanged {
                tenant: t.name.clone(),
                stored,
                configured: t.currency.to_string(),
            });
        }
        written += tx.execute(
            "INSERT OR IGNORE INTO entries (at_ms, tenant, currency, kind, amount)
             VALUES (?1, ?2, ?3, 'opening', ?4)",
            params![
                at_ms,
                t.name,
                t.currency.as_str(),
                t.opening_credits.units()
            ],
        )?;
    }
    tx.commit()?;
    Ok(written)
}

/// Settles every reservation left open (a crash while its minute was in flight: it is
/// taken as used). Returns how many.
pub(crate) fn settle_open(conn: &mut Connection, at_ms: i64) -> Result<usize, LedgerError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let settled = tx.execute(
        "INSERT INTO entries (at_ms, tenant, currency, kind, amount, reservation, call_id,
                              pool, month, seconds)
         SELECT ?1, tenant, currency, 'settle', amount, reservation, call_id, pool, month,
                seconds
         FROM entries r
         WHERE r.kind = 'reserve' AND NOT EXISTS (
             SELECT 1 FROM entries c
             WHERE c.reservation = r.reservation AND c.kind IN ('settle', 'refund'))",
        [at_ms],
    )?;
    tx.commit()?;
    Ok(settled)
}

/// The balances the rows add up to, for the configured tenants (rows of tenants no
/// longer configured are kept, not shown).
pub(crate) fn load(conn: &Connection, config: &MoneyConfig) -> Result<Book, LedgerError> {
    let last_id: i64 = conn.query_row(
        "SELECT COALESCE(MAX(reservation), 0) FROM entries",
        [],
        |r| r.get(0),
    )?;
    let mut book = Book::new(config, last_id);
    let corrupt = |seq: i64, column: &'static str| LedgerError::Corrupt { seq, column };

    let mut credits = conn.prepare(
        "SELECT tenant, SUM(CASE kind WHEN 'settle' THEN -amount
                                      WHEN 'reserve' THEN 0
                                      WHEN 'refund' THEN 0
                                      ELSE amount END)
         FROM entries GROUP BY tenant",
    )?;
    let mut rows = credits.query([])?;
    while let Some(row) = rows.next()? {
        let tenant: String = row.get(0)?;
        let sum: i64 = row.get(1)?;
        if let Some(t) = book.tenant(&tenant) {
            book.credit(t, Amount::from_units(sum));
        }
    }

    // Settled pool use, per month (open reservations are counted below).
    let mut pools = conn.prepare(
        "SELECT tenant, pool, month, SUM(seconds), MIN(seq) FROM entries
         WHERE kind = 'settle' AND pool IS NOT NULL GROUP BY tenant, pool, month",
    )?;
    let mut rows = pools.query([])?;
    while let Some(row) = rows.next()? {
        let tenant: String = row.get(0)?;
        let seq: i64 = row.get(4)?;
        let pool: String = row.get(1)?;
        let country: CountryCode = pool.parse().map_err(|_| corrupt(seq, "pool"))?;
        let month: Option<i32> = row.get(2)?;
        let month = Month::from_index(month.ok_or_else(|| corrupt(seq, "month"))?);
        let seconds: i64 = row.get(3)?;
        if let Some(t) = book.tenant(&tenant) {
            book.pool_used(t, country, month, u64::try_from(seconds).unwrap_or(0));
        }
    }

    let mut open = conn.prepare(
        "SELECT seq, tenant, amount, reservation, pool, month, seconds FROM entries r
         WHERE r.kind = 'reserve' AND NOT EXISTS (
             SELECT 1 FROM entries c
             WHERE c.reservation = r.reservation AND c.kind IN ('settle', 'refund'))",
    )?;
    let mut rows = open.query([])?;
    while let Some(row) = rows.next()? {
        let seq: i64 = row.get(0)?;
        let tenant: String = row.get(1)?;
        let Some(t) = book.tenant(&tenant) else {
            continue;
        };
        let amount = Amount::from_units(row.get(2)?);
        let id: i64 = row.get(3)?;
        let pool: Option<String> = row.get(4)?;
        let month: Option<i32> = row.get(5)?;
        let seconds: i64 = row.get(6)?;
        let source = match pool {
            Some(p) => Source::Pool {
                country: p.parse().map_err(|_| corrupt(seq, "pool"))?,
            },
            // The rate is not needed to hold or settle: the price is what was taken.
            None => Source::Credits {
                per_minute: Amount::ZERO,
                price: amount,
            },
        };
        book.take(
            t,
            Reservation {
                id: ReservationId(id),
                source,
                seconds: u32::try_from(seconds).map_err(|_| corrupt(seq, "seconds"))?,
                month: Month::from_index(month.ok_or_else(|| corrupt(seq, "month"))?),
            },
        );
    }
    Ok(book)
}
