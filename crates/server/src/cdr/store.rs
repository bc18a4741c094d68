//! The SQLite store of call detail records, with group commit: records handed in
//! while a commit is under way are written together in the next transaction, so a burst
//! of calls ending at once costs one log sync, not one each.

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex, MutexGuard};

use dialbridge_conference::ivr::{ConferenceId, Role};
use dialbridge_router::Charge;
use rusqlite::{Connection, Row};

use super::schema;
use super::{
    Billed, CSV_COLUMNS, Cdr, CdrError, CdrFilter, DEFAULT_LIST, Direction, EXPORT_PAGE, EndedBy,
    MAX_CALL_ID, MAX_CALLING, MAX_LIST, MAX_NAME, Timestamp, charge_str, role_str,
};

/// The record store: one SQLite connection behind a mutex, and the queue of records
/// waiting for the next commit. Cheap to clone.
///
/// `record` is synchronous and waits for the commit (a sync of the WAL on a file):
/// async callers use [`CdrStore::record_async`] or `spawn_blocking`, never the
/// signaling task's own thread.
#[derive(Clone)]
pub struct CdrStore {
    shared: Arc<Shared>,
}

struct Shared {
    conn: Mutex<Connection>,
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
        Ok(CdrStore {
            shared: Arc::new(Shared {
                conn: Mutex::new(schema::open(path)?),
                queue: Mutex::new(Queue::default()),
            }),
        })
    }

    /// The secret called `name`, created (32 random bytes) and committed on the first
    /// ask. Two processes sharing the file agree: the insert keeps the first one.
    pub fn secret(&self, name: &str) -> Result<Vec<u8>, CdrError> {
        let conn = self.lock()?;
        let fresh = rand::random::<[u8; 32]>();
        conn.execute(
            "INSERT OR IGNORE INTO node_secrets (name, value) VALUES (?1, ?2)",
            rusqlite::params![name, fresh.as_slice()],
        )?;
        Ok(conn.query_row(
            "SELECT value FROM node_secrets WHERE name = ?1",
            [name],
            |r| r.get(0),
        )?)
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
        let result = write_batch(&mut conn, &batch);
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
        let n: i64 = self
            .lock()?
            .query_row("SELECT count(*) FROM cdrs", [], |r| r.get(0))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Up to `limit` records after the `(ended_ms, seq)` key `after`, with their keys.
    fn page(
        &self,
        filter: &CdrFilter,
        after: Option<Position>,
        limit: usize,
    ) -> Result<Vec<(Position, Cdr)>, CdrError> {
        let conn = self.lock()?;
        let mut stmt = conn.prepare_cached(
            "SELECT seq, call_id, trunk, calling, dialled, tenant, bridge, conference_id,
                    role, arrived_ms, answered_ms, joined_ms, ended_ms, ended_by,
                    sip_status, charge, provider, direction, funding, billed_s, cost, currency
             FROM cdrs
             WHERE ended_ms >= ?1 AND ended_ms < ?2 AND (ended_ms, seq) > (?3, ?4)
               AND (?6 IS NULL OR tenant = ?6)
             ORDER BY ended_ms, seq
             LIMIT ?5",
        )?;
        let (after_ms, after_seq) = after.unwrap_or((i64::MIN, i64::MIN));
        let mut rows = stmt.query(rusqlite::params![
            filter.since.map_or(i64::MIN, Timestamp::unix_millis),
            filter.until.map_or(i64::MAX, Timestamp::unix_millis),
            after_ms,
            after_seq,
            i64::try_from(limit).unwrap_or(i64::MAX),
            filter.tenant.as_deref(),
        ])?;
        let mut out = Vec::with_capacity(limit.min(EXPORT_PAGE));
        while let Some(row) = rows.next()? {
            let seq: i64 = row.get(0)?;
            let cdr = cdr_from_row(seq, row)?;
            out.push(((cdr.ended.unix_millis(), seq), cdr));
        }
        Ok(out)
    }

    pub(super) fn lock(&self) -> Result<MutexGuard<'_, Connection>, CdrError> {
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

/// Inserts `batch` in one transaction: all of it is committed, or none.
fn write_batch(conn: &mut Connection, batch: &[(u64, Cdr)]) -> Result<(), CdrError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    {
        let mut insert = tx.prepare_cached(INSERT)?;
        for (_, cdr) in batch {
            let billing = cdr.billing.as_ref();
            insert.execute(rusqlite::params![
                bounded(&cdr.call_id, MAX_CALL_ID),
                bounded(&cdr.trunk, MAX_NAME),
                bounded(&cdr.calling, MAX_CALLING),
                cdr.dialled.to_string(),
                bounded(&cdr.tenant, MAX_NAME),
                bounded(&cdr.bridge, MAX_NAME),
                cdr.conference_id.as_ref().map(ConferenceId::as_str),
                cdr.role.map(role_str),
                cdr.arrived.unix_millis(),
                cdr.answered.map(Timestamp::unix_millis),
                cdr.joined.map(Timestamp::unix_millis),
                cdr.ended.unix_millis(),
                cdr.ended_by.as_str(),
                cdr.sip_status,
                charge_str(cdr.charge),
                cdr.provider.as_deref().map(|p| bounded(p, MAX_NAME)),
                cdr.direction.as_str(),
                billing.map(|b| bounded(&b.funding, MAX_NAME)),
                billing.map(|b| i64::try_from(b.seconds).unwrap_or(i64::MAX)),
                billing.map(|b| b.cost.units()),
                billing.map(|b| b.currency.as_str()),
            ])?;
        }
    }
    tx.commit()?;
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
fn cdr_from_row(seq: i64, row: &Row<'_>) -> Result<Cdr, CdrError> {
    let corrupt = |column| CdrError::Corrupt { row: seq, column };
    let dialled: String = row.get(4)?;
    let conference_id: Option<String> = row.get(7)?;
    let role: Option<String> = row.get(8)?;
    let ended_by: String = row.get(13)?;
    let charge: String = row.get(15)?;
    let direction: String = row.get(17)?;
    let funding: Option<String> = row.get(18)?;
    let billing = match funding {
        None => None,
        Some(funding) => {
            let seconds: Option<i64> = row.get(19)?;
            let cost: Option<i64> = row.get(20)?;
            let currency: Option<String> = row.get(21)?;
            Some(Billed {
                funding,
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
        call_id: row.get(1)?,
        trunk: row.get(2)?,
        calling: row.get(3)?,
        dialled: dialled.parse().map_err(|_| corrupt("dialled"))?,
        tenant: row.get(5)?,
        bridge: row.get(6)?,
        conference_id: conference_id
            .as_deref()
            .map(ConferenceId::parse)
            .transpose()
            .map_err(|_| corrupt("conference_id"))?,
        role: match role.as_deref() {
            None => None,
            Some("leader") => Some(Role::Leader),
            Some("participant") => Some(Role::Participant),
            Some(_) => return Err(corrupt("role")),
        },
        arrived: Timestamp::from_unix_millis(row.get(9)?),
        answered: row
            .get::<_, Option<i64>>(10)?
            .map(Timestamp::from_unix_millis),
        joined: row
            .get::<_, Option<i64>>(11)?
            .map(Timestamp::from_unix_millis),
        ended: Timestamp::from_unix_millis(row.get(12)?),
        ended_by: EndedBy::parse(&ended_by).ok_or_else(|| corrupt("ended_by"))?,
        sip_status: row.get(14)?,
        charge: match charge.as_str() {
            "toll" => Charge::Toll,
            "toll-free" => Charge::TollFree,
            _ => return Err(corrupt("charge")),
        },
        provider: row.get(16)?,
        direction: Direction::parse(&direction).ok_or_else(|| corrupt("direction"))?,
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
