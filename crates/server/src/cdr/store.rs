//! The store of call detail records, with group commit: records handed in while a
//! commit is under way are written together in the next transaction, so a burst of
//! calls ending at once costs one log sync (one round trip to PostgreSQL), not one each.

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex, MutexGuard};

use super::backend::{Backend, Exec, Row, Value};
use super::schema;
use super::{
    Billed, CSV_COLUMNS, Cdr, CdrError, CdrFilter, DEFAULT_LIST, Direction, EXPORT_PAGE, EndedBy,
    MAX_CALL_ID, MAX_CALLING, MAX_LIST, MAX_NAME, Timestamp, charge_str, role_str,
};
use dialbridge_conference::ivr::{ConferenceId, Role};
use dialbridge_router::Charge;

/// The record store: one connection (SQLite, or PostgreSQL shared with other nodes)
/// behind a mutex, and the queue of records waiting for the next commit. Cheap to clone.
///
/// `record` is synchronous and waits for the commit (a sync of the WAL on a file):
/// async callers use [`CdrStore::record_async`] or `spawn_blocking`, never the
/// signaling task's own thread. The PostgreSQL client must not even be called there:
/// it blocks on a runtime of its own, which cannot start on a thread that drives tasks.
#[derive(Clone)]
pub struct CdrStore {
    shared: Arc<Shared>,
}

struct Shared {
    /// `sqlite` or `postgres`.
    backend: &'static str,
    conn: Mutex<Backend>,
    queue: Mutex<Queue>,
}

/// Records handed in and not yet written, and the outcome of those written by another
/// caller's commit, until their caller collects it.
#[derive(Default)]
struct Queue {
    next_ticket: u64,
    pending: Vec<(u64, Cdr)>,
    done: HashMap<u64, Result<(), String>>,
}

impl std::fmt::Debug for CdrStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CdrStore").finish_non_exhaustive()
    }
}

const INSERT: &str = "INSERT INTO cdrs (call_id, trunk, calling, dialled, tenant, bridge,
        conference_id, role, arrived_ms, answered_ms, joined_ms, ended_ms,
        ended_by, sip_status, charge, provider, direction, funding, billed_s, cost, currency)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18,
        ?19, ?20, ?21)";

impl CdrStore {
    /// Opens (creating if need be) the store at `path`, or an in-memory one for
    /// `":memory:"` (records then live as long as the process).
    pub fn open(path: &str) -> Result<CdrStore, CdrError> {
        Ok(CdrStore::with(Backend::Sqlite(schema::open(path)?)))
    }

    /// Opens the store in the PostgreSQL database at `url` (`[shared] postgres`),
    /// bringing its schema up to date: every node that opens the same database writes
    /// its records, tokens and edits there and reads everyone's. Blocks on the client's
    /// own runtime: call it from a thread that drives no tasks.
    pub fn open_postgres(url: &str) -> Result<CdrStore, CdrError> {
        let connection = schema::open_postgres(url)?;
        Ok(CdrStore::with(Backend::Postgres(Box::new(connection))))
    }

    fn with(backend: Backend) -> CdrStore {
        CdrStore {
            shared: Arc::new(Shared {
                backend: match backend {
                    Backend::Sqlite(_) => "sqlite",
                    Backend::Postgres(_) => "postgres",
                },
                conn: Mutex::new(backend),
                queue: Mutex::new(Queue::default()),
            }),
        }
    }

    /// `sqlite` or `postgres`, for log lines.
    pub fn backend(&self) -> &'static str {
        self.shared.backend
    }

    /// Whether other nodes may share it (PostgreSQL): what they write appears here.
    pub fn is_shared(&self) -> bool {
        self.backend() == "postgres"
    }

    /// The secret called `name`, created (32 random bytes) and committed on the first
    /// ask. Two processes sharing the database agree: the insert keeps the first one.
    pub fn secret(&self, name: &str) -> Result<Vec<u8>, CdrError> {
        let fresh = rand::random::<[u8; 32]>();
        self.lock()?.run(|db| {
            db.execute(
                "INSERT INTO node_secrets (name, value) VALUES (?1, ?2)
                 ON CONFLICT (name) DO NOTHING",
                &[name.into(), fresh.as_slice().into()],
            )?;
            let rows = db.query(
                "SELECT value FROM node_secrets WHERE name = ?1",
                &[name.into()],
            )?;
            match rows.first() {
                Some(row) => Ok(row.bytes(0)?.to_vec()),
                None => Err(CdrError::Database(format!("secret {name:?} not kept"))),
            }
        })
    }

    /// Writes `cdr` and commits. When this returns `Ok`, the record survives a crash of
    /// the process (and, on a file, a power cut: the WAL is synced on commit).
    ///
    /// Callers on several threads share commits: whoever gets the connection writes
    /// every record queued so far in one transaction, and the others find theirs done.
    pub fn record(&self, cdr: &Cdr) -> Result<(), CdrError> {
        // The one value the schema could refuse: check it here, so that a bad record
        // can never fail a batch holding other callers' records.
        if !(100..=699).contains(&cdr.sip_status) {
            return Err(CdrError::InvalidStatus(cdr.sip_status));
        }
        let ticket = {
            let mut queue = self.queue();
            let ticket = queue.next_ticket;
            queue.next_ticket += 1;
            queue.pending.push((ticket, cdr.clone()));
            ticket
        };
        let mut conn = self.lock()?;
        // Whoever held the connection before us may have written our record already:
        // outcomes are filed before the connection is released.
        let batch = {
            let mut queue = self.queue();
            if let Some(outcome) = queue.done.remove(&ticket) {
                return outcome.map_err(CdrError::Write);
            }
            std::mem::take(&mut queue.pending)
        };
        if !batch.iter().any(|(t, _)| *t == ticket) {
            // Cannot happen: a ticket is pending until a commit files its outcome.
            return Err(CdrError::Write("record lost from the commit queue".into()));
        }
        let result = conn.transaction(|db| write_batch(db, &batch));
        let shared = result.as_ref().map(|_| ()).map_err(ToString::to_string);
        let mut queue = self.queue();
        for (t, _) in batch.iter().filter(|(t, _)| *t != ticket) {
            queue.done.insert(*t, shared.clone());
        }
        result
    }

    /// [`CdrStore::record`] on tokio's blocking pool, for async callers: resolves once
    /// the record is committed.
    pub async fn record_async(&self, cdr: Cdr) -> Result<(), CdrError> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.record(&cdr))
            .await
            .map_err(|_| CdrError::Poisoned)?
    }

    /// The records `filter` selects, oldest end first, at most [`MAX_LIST`].
    pub fn list(&self, filter: &CdrFilter) -> Result<Vec<Cdr>, CdrError> {
        let limit = filter.limit.unwrap_or(DEFAULT_LIST).min(MAX_LIST);
        Ok(self
            .page(filter, None, limit)?
            .into_iter()
            .map(|(_, c)| c)
            .collect())
    }

    /// Writes the records `filter` selects as CSV with the [`CSV_COLUMNS`] header,
    /// oldest end first, and returns how many. Reads page by page, so `record` is
    /// never held up for long by a big export.
    pub fn export_csv<W: Write>(&self, filter: &CdrFilter, out: W) -> Result<usize, CdrError> {
        let mut w = csv::Writer::from_writer(out);
        w.write_record(CSV_COLUMNS)?;
        let mut written = 0usize;
        let mut after = None;
        loop {
            let want = match filter.limit {
                Some(limit) => EXPORT_PAGE.min(limit - written),
                None => EXPORT_PAGE,
            };
            if want == 0 {
                break;
            }
            let page = self.page(filter, after, want)?;
            let got = page.len();
            for (_, c) in &page {
                w.write_record(csv_row(c))?;
            }
            written += got;
            after = page.last().map(|(key, _)| *key);
            if got < want {
                break;
            }
        }
        w.flush().map_err(csv::Error::from)?;
        Ok(written)
    }

    /// How many records the store holds.
    pub fn count(&self) -> Result<u64, CdrError> {
        let rows = self
            .lock()?
            .run(|db| db.query("SELECT count(*) FROM cdrs", &[]))?;
        let n = rows.first().map_or(Ok(0), |r| r.int(0))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Up to `limit` records after the `(ended_ms, seq)` key `after`, with their keys.
    fn page(
        &self,
        filter: &CdrFilter,
        after: Option<Position>,
        limit: usize,
    ) -> Result<Vec<(Position, Cdr)>, CdrError> {
        let (after_ms, after_seq) = after.unwrap_or((i64::MIN, i64::MIN));
        let rows = self.lock()?.run(|db| {
            db.query(
                "SELECT seq, call_id, trunk, calling, dialled, tenant, bridge, conference_id,
                    role, arrived_ms, answered_ms, joined_ms, ended_ms, ended_by,
                    sip_status, charge, provider, direction, funding, billed_s, cost, currency
             FROM cdrs
             WHERE ended_ms >= ?1 AND ended_ms < ?2 AND (ended_ms, seq) > (?3, ?4)
               AND (CAST(?6 AS TEXT) IS NULL OR tenant = ?6)
             ORDER BY ended_ms, seq
             LIMIT ?5",
                &[
                    filter.since.map_or(i64::MIN, Timestamp::unix_millis).into(),
                    filter.until.map_or(i64::MAX, Timestamp::unix_millis).into(),
                    after_ms.into(),
                    after_seq.into(),
                    i64::try_from(limit).unwrap_or(i64::MAX).into(),
                    filter.tenant.as_deref().into(),
                ],
            )
        })?;
        rows.iter()
            .map(|row| {
                let seq = row.int(0)?;
                let cdr = cdr_from_row(seq, row)?;
                Ok(((cdr.ended.unix_millis(), seq), cdr))
            })
            .collect()
    }

    pub(super) fn lock(&self) -> Result<MutexGuard<'_, Backend>, CdrError> {
        self.shared.conn.lock().map_err(|_| CdrError::Poisoned)
    }

    /// The queue. Every change to it is a single push, take or insert, so a panic
    /// elsewhere cannot leave it half-changed: a poisoned lock is taken as is.
    fn queue(&self) -> MutexGuard<'_, Queue> {
        self.shared
            .queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Inserts `batch` (in the caller's transaction: all of it is committed, or none).
fn write_batch(db: &mut dyn Exec, batch: &[(u64, Cdr)]) -> Result<(), CdrError> {
    for (_, cdr) in batch {
        let billing = cdr.billing.as_ref();
        let dialled = cdr.dialled.to_string();
        db.execute(
            INSERT,
            &[
                bounded(&cdr.call_id, MAX_CALL_ID).into(),
                bounded(&cdr.trunk, MAX_NAME).into(),
                bounded(&cdr.calling, MAX_CALLING).into(),
                dialled.as_str().into(),
                bounded(&cdr.tenant, MAX_NAME).into(),
                bounded(&cdr.bridge, MAX_NAME).into(),
                cdr.conference_id.as_ref().map(ConferenceId::as_str).into(),
                cdr.role.map(role_str).into(),
                cdr.arrived.unix_millis().into(),
                cdr.answered.map(Timestamp::unix_millis).into(),
                cdr.joined.map(Timestamp::unix_millis).into(),
                cdr.ended.unix_millis().into(),
                cdr.ended_by.as_str().into(),
                i64::from(cdr.sip_status).into(),
                charge_str(cdr.charge).into(),
                cdr.provider.as_deref().map(|p| bounded(p, MAX_NAME)).into(),
                cdr.direction.as_str().into(),
                billing.map(|b| bounded(&b.funding, MAX_NAME)).into(),
                billing
                    .map(|b| i64::try_from(b.seconds).unwrap_or(i64::MAX))
                    .into(),
                billing.map(|b| b.cost.units()).into(),
                Value::Text(billing.map(|b| b.currency.as_str())),
            ],
        )?;
    }
    Ok(())
}

/// Where a record sits in the store's order: its end time (ms) and sequence number.
type Position = (i64, i64);
/// `s` cut to at most `max` bytes, on a character boundary.
fn bounded(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or_default()
}

/// Parses a row of the SELECT in [`CdrStore::page`].
fn cdr_from_row(seq: i64, row: &Row) -> Result<Cdr, CdrError> {
    let corrupt = |column| CdrError::Corrupt { row: seq, column };
    let dialled = row.text(4)?;
    let conference_id = row.opt_text(7)?;
    let role = row.opt_text(8)?;
    let ended_by = row.text(13)?;
    let charge = row.text(15)?;
    let direction = row.text(17)?;
    let billing = match row.opt_text(18)? {
        None => None,
        Some(funding) => {
            let seconds = row.opt_int(19)?;
            let cost = row.opt_int(20)?;
            let currency = row.opt_text(21)?;
            Some(Billed {
                funding: funding.to_owned(),
                seconds: seconds
                    .and_then(|s| u64::try_from(s).ok())
                    .ok_or_else(|| corrupt("billed_s"))?,
                cost: cost
                    .map(dialbridge_ledger::Amount::from_units)
                    .ok_or_else(|| corrupt("cost"))?,
                currency: currency
                    .and_then(|c| c.parse().ok())
                    .ok_or_else(|| corrupt("currency"))?,
            })
        }
    };
    Ok(Cdr {
        call_id: row.text(1)?.to_owned(),
        trunk: row.text(2)?.to_owned(),
        calling: row.text(3)?.to_owned(),
        dialled: dialled.parse().map_err(|_| corrupt("dialled"))?,
        tenant: row.text(5)?.to_owned(),
        bridge: row.text(6)?.to_owned(),
        conference_id: conference_id
            .map(ConferenceId::parse)
            .transpose()
            .map_err(|_| corrupt("conference_id"))?,
        role: match role {
            None => None,
            Some("leader") => Some(Role::Leader),
            Some("participant") => Some(Role::Participant),
            Some(_) => return Err(corrupt("role")),
        },
        arrived: Timestamp::from_unix_millis(row.int(9)?),
        answered: row.opt_int(10)?.map(Timestamp::from_unix_millis),
        joined: row.opt_int(11)?.map(Timestamp::from_unix_millis),
        ended: Timestamp::from_unix_millis(row.int(12)?),
        ended_by: EndedBy::parse(ended_by).ok_or_else(|| corrupt("ended_by"))?,
        sip_status: u16::try_from(row.int(14)?).map_err(|_| corrupt("sip_status"))?,
        charge: match charge {
            "toll" => Charge::Toll,
            "toll-free" => Charge::TollFree,
            _ => return Err(corrupt("charge")),
        },
        provider: row.opt_text(16)?.map(str::to_owned),
        direction: Direction::parse(direction).ok_or_else(|| corrupt("direction"))?,
        billing,
    })
}

/// A record as the [`CSV_COLUMNS`]; absent values are empty fields.
fn csv_row(c: &Cdr) -> [String; 21] {
    let opt = |t: Option<Timestamp>| t.map(|t| t.to_string()).unwrap_or_default();
    let billing = |f: fn(&Billed) -> String| c.billing.as_ref().map(f).unwrap_or_default();
    [
        c.call_id.clone(),
        c.trunk.clone(),
        c.calling.clone(),
        c.dialled.to_string(),
        c.tenant.clone(),
        c.bridge.clone(),
        c.conference_id
            .as_ref()
            .map(|id| id.as_str().to_owned())
            .unwrap_or_default(),
        c.role.map(role_str).unwrap_or_default().to_owned(),
        c.arrived.to_string(),
        opt(c.answered),
        opt(c.joined),
        c.ended.to_string(),
        c.ended_by.as_str().to_owned(),
        c.sip_status.to_string(),
        charge_str(c.charge).to_owned(),
        c.provider.clone().unwrap_or_default(),
        c.direction.as_str().to_owned(),
        billing(|b| b.funding.clone()),
        billing(|b| b.seconds.to_string()),
        billing(|b| b.cost.to_string()),
        billing(|b| b.currency.to_string()),
    ]
}
