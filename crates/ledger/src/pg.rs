//! The ledger's rows in PostgreSQL (`[shared] postgres`), for several bridge processes
//! (nodes) that spend the same balances. Each process keeps its in-memory book and
//! decides at once as with SQLite, but a book cannot know what the other nodes spent
//! since it last looked: here the database decides again, and its decision stands.
//!
//! - **The same rows.** `entries` is SQLite's table column for column (BIGINT amounts,
//!   the same CHECKs, the same partial unique indexes: one opening per tenant, one
//!   reserve row per reservation, at most one settle *or* refund of it). Beside it,
//!   `balances` (a tenant's credits and what its open reservations hold) and `pool_use`
//!   (seconds used per pool and month) are what the rows add up to, kept exact by the
//!   transactions that write the rows, so a decision reads one row instead of summing a
//!   tenant's history. `CHECK (credits >= held)` makes "never below 0.00" the
//!   database's own rule too.
//! - **Decided per tenant, in a transaction.** A batch locks its tenants' `balances`
//!   rows (`FOR UPDATE`, in name order so two nodes' batches cannot deadlock), then for
//!   each row in the order it was decided: a reservation is inserted only if what the
//!   locked balance has left covers it (else the row alone is refused:
//!   `LedgerError::Refused`), an adjustment only if it leaves 0.00 or more, a settle or
//!   refund only if its reserve row exists and nothing closed it yet. So concurrent
//!   calls on different nodes never overspend a balance: each node's book may be behind,
//!   and the worst it does is let a call ask for one increment the database refuses.
//!   After each commit the touched tenants' balances are read back into the book.
//! - **Reservation ids** are unique across nodes without asking the database for each:
//!   every open of a ledger registers an *instance* (`instances`, a sequence), and its
//!   ids are `instance << 40` plus a counter (a trillion reservations per run).
//! - **Crash recovery** (the rule). When a node opens its ledger it settles ("a started
//!   minute is a minute", as SQLite's start does) the open reservations of (a) earlier
//!   instances of the *same node name*: that process is gone, since a node name is one
//!   running process (the `[shared] node` every node must keep to itself); and (b) any
//!   node's that are older than [`ABANDONED_AFTER`]: a live call settles each increment
//!   within one increment of reserving it and rings far less than that, so such a
//!   reservation belongs to a node that died and never came back. Another live node's
//!   calls are never touched.
//! - **Outages.** The writer owns one connection. A failed transaction fails its batch
//!   (the calls it paid for end, as with SQLite); the next batch reconnects, at most
//!   once per [`RECONNECT_BACKOFF`], so the ledger comes back by itself with the server.
//!   A commit whose answer was lost may have committed: its reservations then stay open
//!   in the rows (held, never spent twice) until rule (a) or (b) settles them.
//!
//! No TLS (`NoTls`): the database is expected on the nodes' own network, as the CDR
//! files are on their disks; a deployment across untrusted networks puts a TLS tunnel
//! in front.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dialbridge_store::pg::{self, PgSchema};
use postgres::{Client, Transaction};

use crate::LedgerError;
use crate::book::Book;
use crate::config::MoneyConfig;
use crate::funding::{Refusal, Source};
use crate::money::Amount;
use crate::month::Month;
use crate::number::CountryCode;
use crate::store::{Fresh, Kind, Row, Storage, Written, entries_ddl};

/// Reservations open longer than this belong to a node that died and never came back:
/// any node's start settles them (rule (b) of the module doc).
pub const ABANDONED_AFTER: Duration = Duration::from_secs(3600);

/// The writer tries to reconnect at most this often while the database is down.
pub const RECONNECT_BACKOFF: Duration = Duration::from_millis(200);

/// A reservation id is its instance shifted by this, plus a counter.
const INSTANCE_SHIFT: u32 = 40;

/// The ledger's schema; `dialbridge_store::pg` migrates it (and sets the statement
/// timeout, so a batch waiting for another node's lock fails rather than holding the
/// writer).
const SCHEMA: PgSchema<'static> = PgSchema {
    name: "ledger",
    migrations: MIGRATIONS,
};

const MIGRATIONS: &[&str] = &[
    // 0 -> 1: the ledger (see store.rs for what the columns mean) and what it adds up to.
    concat!(
        entries_ddl!("BIGSERIAL PRIMARY KEY", "BIGINT", ""),
        "
    CREATE TABLE balances (
        tenant   TEXT   PRIMARY KEY,
        currency TEXT   NOT NULL,
        credits  BIGINT NOT NULL,
        held     BIGINT NOT NULL CHECK (held >= 0),
        CHECK (credits >= held)
    );
    CREATE TABLE pool_use (
        tenant  TEXT    NOT NULL,
        pool    TEXT    NOT NULL,
        month   INTEGER NOT NULL,
        seconds BIGINT  NOT NULL CHECK (seconds >= 0),
        PRIMARY KEY (tenant, pool, month)
    );
    CREATE TABLE instances (
        id         BIGSERIAL PRIMARY KEY,
        node       TEXT   NOT NULL,
        started_ms BIGINT NOT NULL
    );"
    ),
];

/// The ledger's PostgreSQL database, as the writer thread holds it.
pub(crate) struct Postgres {
    config: postgres::Config,
    client: Option<Client>,
    last_attempt: Option<Instant>,
    /// Each configured pool's size in seconds, by tenant and country.
    pools: HashMap<(String, CountryCode), u64>,
}

/// What opening found.
pub(crate) struct Opened {
    pub storage: Postgres,
    pub book: Book,
    pub recovered: usize,
}

impl Postgres {
    /// Connects, migrates, registers this instance of `node`, settles what rule (a) or
    /// (b) says, writes the openings that are missing and reads the balances.
    pub fn open(
        url: &str,
        node: &str,
        config: &MoneyConfig,
        at_ms: i64,
    ) -> Result<Opened, LedgerError> {
        let pg_config = pg::config(url)?;
        let pools = config
            .tenants
            .iter()
            .flat_map(|t| {
                t.pools
                    .iter()
                    .map(|p| ((t.name.clone(), p.country), u64::from(p.minutes) * 60))
            })
            .collect();
        let mut storage = Postgres {
            config: pg_config,
            client: None,
            last_attempt: None,
            pools,
        };
        let client = storage.client()?;
        pg::migrate(client, &SCHEMA)?;
        let instance: i64 = client
            .query_one(
                "INSERT INTO instances (node, started_ms) VALUES ($1, $2) RETURNING id",
                &[&node, &at_ms],
            )
            .map_err(pg)?
            .get(0);
        let recovered = settle_abandoned(client, node, instance, at_ms)?;
        write_openings(client, config, at_ms)?;
        let mut book = Book::new(config, instance << INSTANCE_SHIFT);
        let names: Vec<String> = config.tenants.iter().map(|t| t.name.clone()).collect();
        let mut tx = client.transaction().map_err(pg)?;
        let fresh = read_fresh(&mut tx, &names)?;
        tx.commit().map_err(pg)?;
        for f in &fresh {
            if let Some(t) = book.tenant(&f.tenant).and_then(|i| book.tenants.get_mut(i)) {
                f.apply(t, &[]);
            }
        }
        Ok(Opened {
            storage,
            book,
            recovered,
        })
    }

    /// The connection, connecting again if it was lost (at most once per back-off).
    fn client(&mut self) -> Result<&mut Client, LedgerError> {
        if self.client.as_ref().is_some_and(Client::is_closed) {
            self.client = None;
        }
        if self.client.is_none() {
            if self
                .last_attempt
                .is_some_and(|at| at.elapsed() < RECONNECT_BACKOFF)
            {
                return Err(LedgerError::Write(
                    "the ledger database is unreachable (reconnecting)".into(),
                ));
            }
            let reconnect = self.last_attempt.is_some();
            self.last_attempt = Some(Instant::now());
            let client = pg::connect(&self.config)?;
            if reconnect {
                tracing::info!("ledger database reconnected");
            }
            self.client = Some(client);
        }
        self.client
            .as_mut()
            .ok_or_else(|| LedgerError::Write("no ledger database connection".into()))
    }

    fn write_batch(&mut self, rows: &[Row]) -> Result<Written, LedgerError> {
        let pools = &self.pools;
        let client = match self.client.as_mut() {
            Some(c) => c,
            None => return Err(LedgerError::Write("no ledger database connection".into())),
        };
        let mut tx = client.transaction().map_err(pg)?;
        let mut tenants: Vec<String> = rows.iter().map(|r| r.tenant.to_string()).collect();
        tenants.sort();
        tenants.dedup();
        let mut balances = lock_balances(&mut tx, &tenants)?;
        let mut outcomes = Vec::with_capacity(rows.len());
        for row in rows {
            outcomes.push(write_row(&mut tx, row, &mut balances, pools)?);
        }
        for (tenant, (credits, held)) in &balances {
            tx.execute(
                "UPDATE balances SET credits = $2, held = $3 WHERE tenant = $1",
                &[tenant, credits, held],
            )
            .map_err(pg)?;
        }
        let fresh = read_fresh(&mut tx, &tenants)?;
        tx.commit().map_err(pg)?;
        Ok(Written { outcomes, fresh })
    }
}

impl Storage for Postgres {
    fn write(&mut self, rows: &[Row]) -> Result<Written, LedgerError> {
        self.client()?;
        let written = self.write_batch(rows);
        if written.is_err() && self.client.as_ref().is_some_and(Client::is_closed) {
            self.client = None;
        }
        written
    }

    fn load(&mut self, _config: &MoneyConfig) -> Result<Book, LedgerError> {
        // Never asked: a shared backend takes failed rows out of the book instead.
        Err(LedgerError::Write(
            "a shared ledger is not rebuilt from its rows".into(),
        ))
    }

    fn is_shared(&self) -> bool {
        true
    }
}

/// A tenant's locked `(credits, held)`, in units.
type Balances = HashMap<String, (i64, i64)>;

fn lock_balances(tx: &mut Transaction<'_>, tenants: &[String]) -> Result<Balances, LedgerError> {
    let rows = tx
        .query(
            "SELECT tenant, credits, held FROM balances WHERE tenant = ANY($1)
             ORDER BY tenant FOR UPDATE",
            &[&tenants],
        )
        .map_err(pg)?;
    Ok(rows
        .iter()
        .map(|r| (r.get::<_, String>(0), (r.get(1), r.get(2))))
        .collect())
}

/// Decides and writes one row under its tenant's lock. `Ok(Err(_))`: the row alone is
/// refused; `Err(_)`: the transaction failed.
fn write_row(
    tx: &mut Transaction<'_>,
    row: &Row,
    balances: &mut Balances,
    pools: &HashMap<(String, CountryCode), u64>,
) -> Result<Result<(), LedgerError>, LedgerError> {
    let tenant = row.tenant.to_string();
    let Some((credits, held)) = balances.get_mut(&tenant) else {
        return Ok(Err(match row.kind {
            Kind::Reserve => LedgerError::Refused(Refusal::UnknownTenant),
            _ => LedgerError::UnknownTenant(tenant),
        }));
    };
    let amount = row.amount.units();
    match row.kind {
        Kind::Reserve => {
            let Some(r) = row.reservation else {
                return Ok(Err(LedgerError::Refused(Refusal::NoFunding)));
            };
            match r.source {
                Source::Credits { .. } => {
                    if *credits - *held < amount {
                        return Ok(Err(LedgerError::Refused(Refusal::NoCredits)));
                    }
                    *held += amount;
                }
                Source::Pool { country } => {
                    let size = pools.get(&(tenant.clone(), country)).copied().unwrap_or(0);
                    let pool = country.to_string();
                    let used: i64 = tx
                        .query_opt(
                            "SELECT seconds FROM pool_use
                             WHERE tenant = $1 AND pool = $2 AND month = $3",
                            &[&tenant, &pool, &r.month.index()],
                        )
                        .map_err(pg)?
                        .map_or(0, |row| row.get(0));
                    let used = u64::try_from(used).unwrap_or(0);
                    // The pool ran out on other nodes: the source is already decided,
                    // so the increment is refused rather than moved to credits.
                    if used + u64::from(r.seconds) > size {
                        return Ok(Err(LedgerError::Refused(Refusal::NoFunding)));
                    }
                    add_pool_use(tx, &tenant, &pool, r.month, i64::from(r.seconds))?;
                }
                Source::Free => {}
            }
            insert(tx, row)?;
        }
        Kind::TopUp => {
            let Some(sum) = credits.checked_add(amount) else {
                return Ok(Err(LedgerError::Amount {
                    text: row.amount.to_string(),
                    why: "too large for the balance",
                }));
            };
            *credits = sum;
            insert(tx, row)?;
        }
        Kind::Adjustment => {
            let available = *credits - *held;
            if available + amount < 0 {
                return Ok(Err(LedgerError::BelowZero {
                    available: Amount::from_units(available.max(0)),
                }));
            }
            *credits += amount;
            insert(tx, row)?;
        }
        Kind::Settle | Kind::Refund => {
            let id = row.reservation.map_or(0, |r| r.id.get());
            let closed = tx
                .query_opt(
                    "INSERT INTO entries (at_ms, tenant, currency, kind, amount, reservation,
                                          pool, month, seconds)
                     SELECT $1, tenant, currency, $2, amount, reservation, pool, month, seconds
                     FROM entries WHERE reservation = $3 AND kind = 'reserve'
                     ON CONFLICT DO NOTHING
                     RETURNING tenant, amount, pool, month, seconds",
                    &[&row.at_ms, &row.kind.as_str(), &id],
                )
                .map_err(pg)?;
            let Some(closed) = closed else {
                return Ok(Err(LedgerError::NotOpen(id)));
            };
            let owner: String = closed.get(0);
            let amount: i64 = closed.get(1);
            // The reservation is the row's tenant's (its id came from this tenant's
            // hold), whose balance is locked.
            if owner != tenant {
                return Err(LedgerError::Corrupt {
                    seq: id,
                    column: "tenant",
                });
            }
            *held -= amount;
            if row.kind == Kind::Settle {
                *credits -= amount;
            } else if let Some(pool) = closed.get::<_, Option<String>>(2) {
                let month: Option<i32> = closed.get(3);
                let seconds: i64 = closed.get(4);
                let month = Month::from_index(month.unwrap_or(0));
                add_pool_use(tx, &tenant, &pool, month, -seconds)?;
            }
        }
    }
    Ok(Ok(()))
}

fn insert(tx: &mut Transaction<'_>, row: &Row) -> Result<(), LedgerError> {
    let r = row.reservation.as_ref();
    let pool = r.and_then(|r| match r.source {
        Source::Pool { country } => Some(country.to_string()),
        _ => None,
    });
    tx.execute(
        "INSERT INTO entries (at_ms, tenant, currency, kind, amount, reservation, call_id,
                              pool, month, seconds)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        &[
            &row.at_ms,
            &&*row.tenant,
            &row.currency.as_str(),
            &row.kind.as_str(),
            &row.amount.units(),
            &r.map(|r| r.id.get()),
            &row.call_id.as_deref(),
            &pool,
            &r.map(|r| r.month.index()),
            &r.map_or(0, |r| i64::from(r.seconds)),
        ],
    )
    .map_err(pg)?;
    Ok(())
}

fn add_pool_use(
    tx: &mut Transaction<'_>,
    tenant: &str,
    pool: &str,
    month: Month,
    seconds: i64,
) -> Result<(), LedgerError> {
    tx.execute(
        "INSERT INTO pool_use (tenant, pool, month, seconds) VALUES ($1, $2, $3, GREATEST($4::BIGINT, 0))
         ON CONFLICT (tenant, pool, month)
         DO UPDATE SET seconds = GREATEST(pool_use.seconds + $4::BIGINT, 0)",
        &[&tenant, &pool, &month.index(), &seconds],
    )
    .map_err(pg)?;
    Ok(())
}

/// The balances of `tenants` as the database holds them now.
fn read_fresh(tx: &mut Transaction<'_>, tenants: &[String]) -> Result<Vec<Fresh>, LedgerError> {
    let mut fresh: Vec<Fresh> = tx
        .query(
            "SELECT tenant, credits, held FROM balances WHERE tenant = ANY($1)",
            &[&tenants],
        )
        .map_err(pg)?
        .iter()
        .map(|r| Fresh {
            tenant: r.get(0),
            credits: Amount::from_units(r.get(1)),
            held: Amount::from_units(r.get(2)),
            pools: Vec::new(),
        })
        .collect();
    let used = tx
        .query(
            "SELECT tenant, pool, month, seconds FROM pool_use WHERE tenant = ANY($1)",
            &[&tenants],
        )
        .map_err(pg)?;
    for row in used {
        let tenant: String = row.get(0);
        let pool: String = row.get(1);
        let country: CountryCode = pool.parse().map_err(|_| LedgerError::Corrupt {
            seq: 0,
            column: "pool",
        })?;
        let month = Month::from_index(row.get(2));
        let seconds = u64::try_from(row.get::<_, i64>(3)).unwrap_or(0);
        if let Some(f) = fresh.iter_mut().find(|f| f.tenant == tenant) {
            f.pools.push((country, month, seconds));
        }
    }
    Ok(fresh)
}

/// Settles the open reservations rule (a) or (b) of the module doc gives up for lost.
fn settle_abandoned(
    client: &mut Client,
    node: &str,
    instance: i64,
    at_ms: i64,
) -> Result<usize, LedgerError> {
    let cutoff = at_ms.saturating_sub(i64::try_from(ABANDONED_AFTER.as_millis()).unwrap_or(0));
    let mut tx = client.transaction().map_err(pg)?;
    tx.query("SELECT 1 FROM balances ORDER BY tenant FOR UPDATE", &[])
        .map_err(pg)?;
    let settled = tx
        .query(
            "INSERT INTO entries (at_ms, tenant, currency, kind, amount, reservation, call_id,
                                  pool, month, seconds)
             SELECT $1, tenant, currency, 'settle', amount, reservation, call_id, pool, month,
                    seconds
             FROM entries r
             WHERE r.kind = 'reserve' AND NOT EXISTS (
                 SELECT 1 FROM entries c
                 WHERE c.reservation = r.reservation AND c.kind IN ('settle', 'refund'))
               AND ((r.reservation >> 40) IN (  -- INSTANCE_SHIFT
                        SELECT id FROM instances WHERE node = $2 AND id < $3)
                    OR r.at_ms < $4)
             ON CONFLICT DO NOTHING
             RETURNING tenant, amount",
            &[&at_ms, &node, &instance, &cutoff],
        )
        .map_err(pg)?;
    let mut spent: HashMap<String, i64> = HashMap::new();
    for row in &settled {
        *spent.entry(row.get(0)).or_default() += row.get::<_, i64>(1);
    }
    for (tenant, amount) in &spent {
        tx.execute(
            "UPDATE balances SET credits = credits - $2, held = held - $2 WHERE tenant = $1",
            &[tenant, amount],
        )
        .map_err(pg)?;
    }
    tx.commit().map_err(pg)?;
    Ok(settled.len())
}

/// Writes the opening balance of every configured tenant that has none yet (two nodes
/// opening at once write one: the unique index decides), refusing a tenant whose rows
/// are in another currency than the configuration says.
fn write_openings(
    client: &mut Client,
    config: &MoneyConfig,
    at_ms: i64,
) -> Result<usize, LedgerError> {
    let mut written = 0;
    let mut tx = client.transaction().map_err(pg)?;
    for t in &config.tenants {
        let currency = t.currency.as_str();
        let stored = tx
            .query_opt(
                "SELECT currency FROM entries WHERE tenant = $1 AND currency != $2 LIMIT 1",
                &[&t.name, &currency],
            )
            .map_err(pg)?;
        if let Some(stored) = stored {
            return Err(LedgerError::CurrencyChanged {
                tenant: t.name.clone(),
                stored: stored.get(0),
                configured: t.currency.to_string(),
            });
        }
        let opening = t.opening_credits.units();
        let inserted = tx
            .execute(
                "INSERT INTO entries (at_ms, tenant, currency, kind, amount)
                 VALUES ($1, $2, $3, 'opening', $4) ON CONFLICT DO NOTHING",
                &[&at_ms, &t.name, &currency, &opening],
            )
            .map_err(pg)?;
        if inserted > 0 {
            tx.execute(
                "INSERT INTO balances (tenant, currency, credits, held) VALUES ($1, $2, $3, 0)
                 ON CONFLICT (tenant) DO UPDATE SET credits = balances.credits + $3",
                &[&t.name, &currency, &opening],
            )
            .map_err(pg)?;
            written += 1;
        }
    }
    tx.commit().map_err(pg)?;
    Ok(written)
}

fn pg(e: postgres::Error) -> LedgerError {
    LedgerError::Postgres(Arc::new(e))
}
