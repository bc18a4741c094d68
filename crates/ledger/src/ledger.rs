//! The ledger: decisions in memory under one lock, rows committed by one writer thread.
//!
//! Every operation (reserve, settle, refund, top-up, adjustment) decides against the
//! in-memory balances and queues its row to the writer *under the same lock*, so
//! concurrent calls against one balance are decided one after another and never
//! overspend it, and rows reach the file in the order their decisions were made: a
//! reservation that a refund made possible is never committed before that refund. The
//! writer commits what is queued in one transaction (a burst of calls at a minute
//! boundary costs one log sync, not one each) and then calls each operation's [`Done`]:
//! whoever waits for the row (the call, before it proceeds; the API, before it answers)
//! hears only once it is durable. A failed commit fails every queued operation and
//! rebuilds the balances from the rows, which are the truth.
//!
//! Nothing here blocks on the disk but the writer thread: the signaling task may call
//! any operation and gets its answer (a decision) at once.
//!
//! The rows go to a [`Storage`]: SQLite's file, which only this process writes, or
//! PostgreSQL, which other nodes write too. There the in-memory decision is only a
//! first answer: the database decides each row again in its transaction and may refuse
//! one (its `Done` hears `LedgerError::Refused`, and the book takes it back out), and
//! after each commit the touched tenants' balances are read back, so the book follows
//! what other nodes spent (see `pg.rs`).

use std::collections::HashSet;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{JoinHandle, ThreadId};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::LedgerError;
use crate::book::{Book, Reservation, ReservationId, TenantBook};
use crate::config::MoneyConfig;
use crate::funding::{self, Leg, Refusal, Source};
use crate::money::{Amount, Currency};
use crate::month::Month;
use crate::number::CountryCode;
use crate::pg::Postgres;
use crate::store::{self, Kind, Row, Sqlite, Storage};

/// Called by the writer thread once an operation's row is committed (`Ok`) or its
/// commit failed. Never called on the thread that made the operation, and never when
/// the operation itself returned an error.
pub type Done = Box<dyn FnOnce(Result<(), LedgerError>) + Send>;

/// A [`Done`] whose outcome a blocking caller waits for on the receiver (tests, the
/// admin API on the blocking pool).
pub fn done_channel() -> (Done, std::sync::mpsc::Receiver<Result<(), LedgerError>>) {
    let (tx, rx) = std::sync::mpsc::channel();
    let done: Done = Box::new(move |result| {
        let _ = tx.send(result);
    });
    (done, rx)
}

/// The ledger of one bridge. Cheap to clone; the writer thread stops (after writing
/// what is queued) when the last clone is dropped.
#[derive(Clone)]
pub struct Ledger {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    config: Arc<MoneyConfig>,
    /// Reservations a crash had left open, settled when the ledger opened.
    recovered: usize,
    writer: Mutex<Option<JoinHandle<()>>>,
    writer_id: ThreadId,
}

struct Shared {
    state: Mutex<State>,
    /// The writer waits here for rows.
    wake: Condvar,
    /// [`Ledger::flush`] waits here for the writer to be done.
    idle: Condvar,
}

struct State {
    book: Book,
    queue: Vec<(Row, Option<Done>)>,
    writing: bool,
    closed: bool,
}

/// A tenant's balances as shown (the admin API's `balance`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Balance {
    pub tenant: String,
    pub currency: Currency,
    /// Opening + top-ups + adjustments − what calls have spent.
    pub credits: Amount,
    /// Held by calls in progress (each holds its next increment).
    pub reserved: Amount,
    /// What a new call may take: `credits − reserved`.
    pub available: Amount,
    /// The month the pools are counted in (UTC).
    pub month: String,
    pub pools: Vec<PoolBalance>,
}

/// One pool's minutes this month.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PoolBalance {
    pub country: CountryCode,
    pub minutes: u64,
    /// Started minutes used or held this month.
    pub minutes_used: u64,
    /// Whole minutes left this month.
    pub minutes_left: u64,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger")
            .field("tenants", &self.inner.config.tenants.len())
            .finish_non_exhaustive()
    }
}

impl Ledger {
    /// Opens (creating) the ledger at `path` (`:memory:` lives as long as the process):
    /// settles the reservations a crash left open, writes the opening balance of every
    /// configured tenant that has none, derives the balances and starts the writer.
    pub fn open(path: &str, config: MoneyConfig, wall: SystemTime) -> Result<Ledger, LedgerError> {
        let mut conn = store::open(path)?;
        let at = unix_millis(wall);
        let recovered = store::settle_open(&mut conn, at)?;
        if recovered > 0 {
            tracing::warn!(
                reservations = recovered,
                "ledger: reservations left open by a crash settled (their minutes were in flight)"
            );
        }
        store::write_openings(&mut conn, &config, at)?;
        let book = store::load(&conn, &config)?;
        Ledger::start(Box::new(Sqlite(conn)), book, recovered, config)
    }

    /// Opens the ledger in the PostgreSQL database at `url` (`postgres://`, no TLS),
    /// shared with the other nodes that spend the same balances; `node` is this
    /// process's name among them (one running process per name: its start settles the
    /// reservations an earlier process of that name left open). Creates or migrates
    /// the schema, writes the opening balances no node wrote yet, and starts the
    /// writer, which reconnects by itself after an outage.
    pub fn open_postgres(
        url: &str,
        node: &str,
        config: MoneyConfig,
        wall: SystemTime,
    ) -> Result<Ledger, LedgerError> {
        let opened = Postgres::open(url, node, &config, unix_millis(wall))?;
        if opened.recovered > 0 {
            tracing::warn!(
                reservations = opened.recovered,
                "ledger: reservations left open by a node that stopped settled (their minutes were in flight)"
            );
        }
        Ledger::start(
            Box::new(opened.storage),
            opened.book,
            opened.recovered,
            config,
        )
    }

    fn start(
        storage: Box<dyn Storage>,
        book: Book,
        recovered: usize,
        config: MoneyConfig,
    ) -> Result<Ledger, LedgerError> {
        let config = Arc::new(config);
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                book,
                queue: Vec::new(),
                writing: false,
                closed: false,
            }),
            wake: Condvar::new(),
            idle: Condvar::new(),
        });
        let writer = {
            let (shared, config) = (shared.clone(), config.clone());
            std::thread::Builder::new()
                .name("ledger-writer".into())
                .spawn(move || write_loop(&shared, storage, &config))
                .map_err(|e| LedgerError::Write(format!("no writer thread: {e}")))?
        };
        let writer_id = writer.thread().id();
        Ok(Ledger {
            inner: Arc::new(Inner {
                shared,
                config,
                recovered,
                writer: Mutex::new(Some(writer)),
                writer_id,
            }),
        })
    }

    /// The configuration it runs on.
    pub fn config(&self) -> &MoneyConfig {
        &self.inner.config
    }

    /// How many reservations a crash had left open when this ledger opened (settled).
    pub fn recovered(&self) -> usize {
        self.inner.recovered
    }

    /// Where `leg`'s next increment would come from now, deciding nothing (a preview:
    /// [`Ledger::reserve`] decides again, atomically).
    pub fn decide(&self, tenant: &str, leg: Leg<'_>, wall: SystemTime) -> Result<Source, Refusal> {
        let state = self.state();
        let t = state
            .book
            .tenant(tenant)
            .and_then(|t| state.book.tenants.get(t))
            .ok_or(Refusal::UnknownTenant)?;
        let c = &self.inner.config;
        funding::decide(&c.rates, c.increment_s, t, leg, Month::of(wall))
    }

    /// Takes one increment of `leg` for `tenant` ahead, on behalf of call `call_id`: the
    /// decision and the hold are made now (a refusal changes nothing); `done` hears
    /// when the reserve row is committed. The leg must not proceed before.
    pub fn reserve(
        &self,
        tenant: &str,
        leg: Leg<'_>,
        call_id: &str,
        wall: SystemTime,
        done: Done,
    ) -> Result<Reservation, Refusal> {
        let increment = self.inner.config.increment_s;
        let month = Month::of(wall);
        let mut state = self.state();
        let index = state.book.tenant(tenant).ok_or(Refusal::UnknownTenant)?;
        let t = state
            .book
            .tenants
            .get(index)
            .ok_or(Refusal::UnknownTenant)?;
        let currency = t.currency;
        let source = funding::decide(&self.inner.config.rates, increment, t, leg, month)?;
        let reservation = state.book.hold(index, source, increment, month);
        let row = Row::of_reservation(
            Kind::Reserve,
            unix_millis(wall),
            tenant,
            currency,
            reservation,
            Some(call_id),
        );
        self.queue(&mut state, row, done);
        Ok(reservation)
    }

    /// The reservation was used ("a started minute is a minute"): what it held is spent.
    pub fn settle(
        &self,
        id: ReservationId,
        wall: SystemTime,
        done: Done,
    ) -> Result<(), LedgerError> {
        self.close(id, Kind::Settle, wall, done)
    }

    /// The reservation was never used (the call was not answered): what it held is free.
    pub fn refund(
        &self,
        id: ReservationId,
        wall: SystemTime,
        done: Done,
    ) -> Result<(), LedgerError> {
        self.close(id, Kind::Refund, wall, done)
    }

    /// Adds `amount` to `tenant`'s credits (a top-up), or takes it away when negative (an
    /// adjustment, which may bring what is available to 0.00, never below). Returns the
    /// balance as it will be once `done` hears the row is committed.
    pub fn top_up(
        &self,
        tenant: &str,
        amount: Amount,
        wall: SystemTime,
        done: Done,
    ) -> Result<Balance, LedgerError> {
        let mut state = self.state();
        let index = state
            .book
            .tenant(tenant)
            .ok_or_else(|| LedgerError::UnknownTenant(tenant.into()))?;
        let t = state
            .book
            .tenants
            .get(index)
            .ok_or_else(|| LedgerError::UnknownTenant(tenant.into()))?;
        if amount == Amount::ZERO {
            return Err(LedgerError::ZeroAmount);
        }
        let available = t.available();
        if t.credits.checked_add(amount).is_none() {
            return Err(LedgerError::Amount {
                text: amount.to_string(),
                why: "too large for the balance",
            });
        }
        if available
            .checked_add(amount)
            .is_none_or(Amount::is_negative)
        {
            return Err(LedgerError::BelowZero { available });
        }
        let currency = t.currency;
        state.book.credit(index, amount);
        let kind = if amount.is_negative() {
            Kind::Adjustment
        } else {
            Kind::TopUp
        };
        let row = Row {
            at_ms: unix_millis(wall),
            tenant: tenant.into(),
            currency,
            kind,
            amount,
            reservation: None,
            call_id: None,
        };
        self.queue(&mut state, row, done);
        let t = state
            .book
            .tenants
            .get(index)
            .ok_or_else(|| LedgerError::UnknownTenant(tenant.into()))?;
        Ok(balance_of(t, Month::of(wall)))
    }

    /// `tenant`'s balances now, pools counted in the month of `wall`.
    pub fn balance(&self, tenant: &str, wall: SystemTime) -> Option<Balance> {
        let state = self.state();
        let t = state.book.tenants.get(state.book.tenant(tenant)?)?;
        Some(balance_of(t, Month::of(wall)))
    }

    /// Reservations held now (calls in progress hold one or two each).
    pub fn open_reservations(&self) -> usize {
        self.state().book.open.len()
    }

    /// Waits until every row queued so far is written (or failed). For tests and a
    /// clean shutdown; never on an async task.
    pub fn flush(&self) {
        let mut state = self.state();
        while !state.queue.is_empty() || state.writing {
            state = self
                .inner
                .shared
                .idle
                .wait(state)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }

    fn close(
        &self,
        id: ReservationId,
        kind: Kind,
        wall: SystemTime,
        done: Done,
    ) -> Result<(), LedgerError> {
        let mut state = self.state();
        let held = match kind {
            Kind::Settle => state.book.settle(id),
            _ => state.book.refund(id),
        }
        .ok_or(LedgerError::NotOpen(id.get()))?;
        let t = state
            .book
            .tenants
            .get(held.tenant)
            .ok_or(LedgerError::NotOpen(id.get()))?;
        let row = Row::of_reservation(
            kind,
            unix_millis(wall),
            &t.name,
            t.currency,
            held.reservation,
            None,
        );
        self.queue(&mut state, row, done);
        Ok(())
    }

    fn queue(&self, state: &mut State, row: Row, done: Done) {
        state.queue.push((row, Some(done)));
        self.inner.shared.wake.notify_one();
    }

    /// The state. Every change to it is made whole under the lock (a decision and its
    /// queued row), so a panic elsewhere cannot leave it half-changed: a poisoned lock
    /// is taken as is.
    fn state(&self) -> MutexGuard<'_, State> {
        self.inner
            .shared
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Drop for Inner {
    /// Stops the writer once it has written what is queued, and waits for it (unless
    /// this is the writer itself dropping the last handle in a `Done`).
    fn drop(&mut self) {
        if let Ok(mut state) = self.shared.state.lock() {
            state.closed = true;
        }
        self.shared.wake.notify_all();
        if std::thread::current().id() == self.writer_id {
            return;
        }
        let handle = self.writer.lock().ok().and_then(|mut w| w.take());
        if let Some(handle) = handle {
            let _ = handle.join();
        }
    }
}

/// The writer thread: commits what is queued, batch after batch, until the ledger is
/// dropped and nothing is left.
fn write_loop(shared: &Shared, mut storage: Box<dyn Storage>, config: &MoneyConfig) {
    loop {
        let batch = {
            let mut state = lock(shared);
            while state.queue.is_empty() && !state.closed {
                state = shared
                    .wake
                    .wait(state)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
            }
            if state.queue.is_empty() {
                return; // closed, and nothing left to write
            }
            state.writing = true;
            std::mem::take(&mut state.queue)
        };
        let rows: Vec<Row> = batch.iter().map(|(row, _)| row.clone()).collect();
        let (outcomes, failed) = match storage.write(&rows) {
            Ok(written) => {
                let failed = after_write(shared, &rows, &written);
                (written.outcomes, failed)
            }
            Err(e) => {
                tracing::error!(error = %e, rows = rows.len(), "ledger rows NOT written: the calls they pay for end");
                let failed = after_failure(shared, storage.as_mut(), config, &rows);
                let error = LedgerError::Write(e.to_string());
                let failed = failed
                    .into_iter()
                    .map(|(row, done)| (row, done, error.clone()))
                    .collect();
                (vec![Err(error); rows.len()], failed)
            }
        };
        for ((_, done), result) in batch.into_iter().zip(outcomes) {
            if let Some(done) = done {
                done(result);
            }
        }
        for (_, done, error) in failed {
            if let Some(done) = done {
                done(Err(error));
            }
        }
        // Idle only once every waiter has heard: `flush` means written and told.
        let mut state = lock(shared);
        state.writing = false;
        shared.idle.notify_all();
    }
}

/// A queued row the writer fails without writing it, and why.
type Failed = (Row, Option<Done>, LedgerError);

/// After a commit: the rows the database refused (a shared one) come out of the book,
/// with the queued rows that close a reservation it refused (they can never be
/// written); then the touched tenants' balances are the database's, plus what is still
/// queued. Returns the queued rows so failed.
fn after_write(shared: &Shared, rows: &[Row], written: &store::Written) -> Vec<Failed> {
    let mut state = lock(shared);
    let mut refused = HashSet::new();
    for (row, result) in rows.iter().zip(&written.outcomes) {
        if result.is_err() {
            undo(&mut state.book, row);
            if row.kind == Kind::Reserve
                && let Some(r) = row.reservation
            {
                refused.insert(r.id);
            }
        }
    }
    let mut failed = Vec::new();
    if !refused.is_empty() {
        let queue = std::mem::take(&mut state.queue);
        for (row, done) in queue {
            match row.reservation.map(|r| r.id) {
                Some(id) if refused.contains(&id) => {
                    undo(&mut state.book, &row);
                    failed.push((row, done, LedgerError::NotOpen(id.get())));
                }
                _ => state.queue.push((row, done)),
            }
        }
    }
    let State { book, queue, .. } = &mut *state;
    let pending: Vec<&Row> = queue.iter().map(|(row, _)| row).collect();
    for fresh in &written.fresh {
        if let Some(t) = book
            .tenant(&fresh.tenant)
            .and_then(|i| book.tenants.get_mut(i))
        {
            fresh.apply(t, &pending);
        }
    }
    failed
}

/// After a failed commit: what was queued behind the batch was decided on balances
/// that counted it, so it fails too, and the balances go back to what was written.
/// Returns the queued rows so failed.
fn after_failure(
    shared: &Shared,
    storage: &mut dyn Storage,
    config: &MoneyConfig,
    rows: &[Row],
) -> Vec<(Row, Option<Done>)> {
    let mut state = lock(shared);
    let failed = std::mem::take(&mut state.queue);
    if storage.is_shared() {
        for row in rows.iter().chain(failed.iter().map(|(row, _)| row)) {
            undo(&mut state.book, row);
        }
        return failed;
    }
    match storage.load(config) {
        Ok(mut book) => {
            // Ids handed out for the failed rows are never given again.
            book.ids_after(&state.book);
            state.book = book;
        }
        Err(e) => tracing::error!(error = %e, "ledger balances not rebuilt"),
    }
    failed
}

/// Takes a row that was not written out of the book: its tenant's balances, and a
/// reservation it opened.
fn undo(book: &mut Book, row: &Row) {
    if row.kind == Kind::Reserve
        && let Some(r) = row.reservation
    {
        book.open.remove(&r.id);
    }
    if let Some(t) = book
        .tenant(&row.tenant)
        .and_then(|i| book.tenants.get_mut(i))
    {
        row.apply_to(t, true);
    }
}

fn lock(shared: &Shared) -> MutexGuard<'_, State> {
    shared
        .state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn balance_of(t: &TenantBook, month: Month) -> Balance {
    Balance {
        tenant: t.name.to_string(),
        currency: t.currency,
        credits: t.credits,
        reserved: t.held,
        available: t.available(),
        month: month.to_string(),
        pools: t
            .pools
            .iter()
            .map(|p| {
                let used = p.used_seconds(month);
                PoolBalance {
                    country: p.country,
                    minutes: p.seconds / 60,
                    minutes_used: used.div_ceil(60),
                    minutes_left: p.left_seconds(month) / 60,
                }
            })
            .collect(),
    }
}

/// Milliseconds since 1970 (UTC), negative before.
pub(crate) fn unix_millis(wall: SystemTime) -> i64 {
    match wall.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_millis()).map_or(i64::MIN, |ms| -ms),
    }
}
