//! The ledger through its public API, on both backends — real SQLite files and a real
//! PostgreSQL server per test (`testkit::servers::Postgres`): restarts settle what was
//! reserved, concurrent calls never overspend a balance, top-ups and adjustments keep
//! it at or above 0.00, a failed commit changes nothing, and the per-call meter on a
//! virtual clock (no sleeps: time is passed in). Then what only a shared database
//! has: several nodes (ledgers on their own connections, and real child processes)
//! racing for one balance, an outage the ledger lives through, a settle delivered twice.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex, mpsc};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dialbridge_ledger::{
    Account, Amount, Committed, Ledger, LedgerError, Leg, LegSpec, Meter, MeterEvent, MoneyConfig,
    Refusal, Source, done_channel,
};
use dialbridge_testkit::on_both_backends;
use dialbridge_testkit::servers::Postgres;

const DEMO: &str = include_str!("../../../fixtures/demo.toml");
const TOLL_FREE: &str = "+18885550100";

/// 2026-12-15T12:00:00Z.
fn december() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_797_336_000)
}

fn amount(text: &str) -> Amount {
    text.parse().unwrap()
}

/// The demo's money with fabrikam's opening balance `fabrikam` and contoso's pool of
/// `pool` minutes.
fn config(fabrikam: &str, pool: u32) -> MoneyConfig {
    let text = DEMO
        .replace(
            "name = \"fabrikam\"\ncurrency = \"USD\"\ncredits = \"0.00\"",
            &format!("name = \"fabrikam\"\ncurrency = \"USD\"\ncredits = \"{fabrikam}\""),
        )
        .replace("minutes = 3000", &format!("minutes = {pool}"));
    MoneyConfig::from_toml_str(&text).unwrap().unwrap()
}

/// A fresh file under the system temp dir, removed (with its WAL) on drop.
struct TempDb(PathBuf);

impl TempDb {
    fn new(tag: &str) -> TempDb {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let db = TempDb(std::env::temp_dir().join(format!(
            "dialbridge-ledger-{tag}-{}-{n}.sqlite",
            std::process::id()
        )));
        db.remove();
        db
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }

    fn remove(&self) {
        for suffix in ["", "-wal", "-shm"] {
            let mut p = self.0.clone().into_os_string();
            p.push(suffix);
            let _ = std::fs::remove_file(p);
        }
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        self.remove();
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

/// Where one test's ledger lives: a fresh SQLite file, or a PostgreSQL server of the
/// test's own (its data survives the ledgers opened on it, as the file does).
enum Db {
    Sqlite(TempDb),
    Postgres(Postgres),
}

impl Db {
    fn new(backend: Backend, tag: &str) -> Db {
        match backend {
            Backend::Sqlite => Db::Sqlite(TempDb::new(tag)),
            Backend::Postgres => {
                let server = Postgres::start();
                accepting_logins(&server);
                Db::Postgres(server)
            }
        }
    }

    /// A ledger on it; with PostgreSQL, the node `node-a` (a restart is the same node).
    fn open(&self, config: MoneyConfig, wall: SystemTime) -> Result<Ledger, LedgerError> {
        self.open_as("node-a", config, wall)
    }

    fn open_as(
        &self,
        node: &str,
        config: MoneyConfig,
        wall: SystemTime,
    ) -> Result<Ledger, LedgerError> {
        match self {
            Db::Sqlite(file) => Ledger::open(file.path(), config, wall),
            Db::Postgres(server) => Ledger::open_postgres(&server.url(), node, config, wall),
        }
    }

    fn server(&mut self) -> &mut Postgres {
        match self {
            Db::Postgres(server) => server,
            Db::Sqlite(_) => panic!("not a PostgreSQL test"),
        }
    }
}

/// Waits (bounded) until the server takes logins: it accepts TCP connections a moment
/// before it has finished starting up.
fn accepting_logins(server: &Postgres) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Err(e) = ::postgres::Client::connect(&server.url(), ::postgres::NoTls) {
        assert!(
            Instant::now() < deadline,
            "postgres never took a login: {e}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

on_both_backends!(
    opening_balances_are_written_once_and_a_restart_settles_what_was_reserved,
    concurrent_calls_never_overspend_one_balance,
    top_ups_and_adjustments_keep_the_balance_at_or_above_zero,
    a_pool_resets_at_the_start_of_each_month_utc,
    a_meter_pays_minute_by_minute_and_ends_a_call_it_cannot_fund,
    a_call_never_answered_is_refunded_and_a_started_minute_is_paid_whole,
    a_dial_out_meter_uses_the_pool_then_credits,
);

/// Runs `op` with a [`done_channel`] and waits for its commit.
fn committed<T>(op: impl FnOnce(dialbridge_ledger::Done) -> T) -> T {
    let (done, rx) = done_channel();
    let out = op(done);
    rx.recv_timeout(Duration::from_secs(30))
        .expect("the writer answers")
        .expect("committed");
    out
}

fn available(ledger: &Ledger, tenant: &str) -> Amount {
    ledger.balance(tenant, december()).unwrap().available
}

fn opening_balances_are_written_once_and_a_restart_settles_what_was_reserved(backend: Backend) {
    let db = Db::new(backend, "restart");
    let ledger = db.open(config("0.00", 3000), december()).unwrap();
    assert_eq!(ledger.recovered(), 0);
    let balance = ledger.balance("contoso", december()).unwrap();
    assert_eq!(balance.credits, amount("20.00"));
    assert_eq!(balance.pools[0].minutes_left, 3000);
    // Two toll-free minutes in flight and one pool minute: a crash comes.
    for call in ["a", "b"] {
        let leg = Leg::TollFreeInbound { number: TOLL_FREE };
        committed(|d| ledger.reserve("contoso", leg, call, december(), d)).unwrap();
    }
    let us = Leg::DialOut {
        destination: "+14255557000",
    };
    let r = committed(|d| ledger.reserve("contoso", us, "c", december(), d)).unwrap();
    assert!(matches!(r.source, Source::Pool { .. }));
    let balance = ledger.balance("contoso", december()).unwrap();
    assert_eq!(
        (balance.credits, balance.reserved, balance.available),
        (amount("20.00"), amount("0.06"), amount("19.94"))
    );
    assert_eq!(balance.pools[0].minutes_left, 2999);
    drop(ledger);

    // The configured opening balance changed meanwhile: it was written once, it stays.
    let mut richer = config("0.00", 3000);
    richer.tenants[0].opening_credits = amount("500.00");
    let ledger = db.open(richer, december()).unwrap();
    assert_eq!(ledger.recovered(), 3, "every open reservation is settled");
    assert_eq!(ledger.open_reservations(), 0);
    let balance = ledger.balance("contoso", december()).unwrap();
    assert_eq!(
        (balance.credits, balance.reserved, balance.available),
        (amount("19.94"), Amount::ZERO, amount("19.94"))
    );
    assert_eq!(balance.pools[0].minutes_used, 1);
    assert_eq!(balance.pools[0].minutes_left, 2999);
    drop(ledger);
    // Nothing more to settle on the next start.
    let ledger = db.open(config("0.00", 3000), december()).unwrap();
    assert_eq!(ledger.recovered(), 0);
    assert_eq!(available(&ledger, "contoso"), amount("19.94"));
}

fn concurrent_calls_never_overspend_one_balance(backend: Backend) {
    const THREADS: usize = 16;
    let db = Db::new(backend, "concurrent");
    // 1.00 pays 33 toll-free minutes at 0.03, and leaves 0.01.
    let ledger = db.open(config("1.00", 3000), december()).unwrap();
    let settled = Arc::new(AtomicUsize::new(0));
    let in_flight = Arc::new(AtomicUsize::new(0));
    let most_in_flight = Arc::new(AtomicUsize::new(0));
    let start = Arc::new(Barrier::new(THREADS));
    let threads: Vec<_> = (0..THREADS)
        .map(|n| {
            let (ledger, settled, start) = (ledger.clone(), settled.clone(), start.clone());
            let (in_flight, most) = (in_flight.clone(), most_in_flight.clone());
            std::thread::spawn(move || {
                start.wait();
                // Each call takes one minute at a time until the credits refuse it; a
                // bounded loop (the balance allows 33 in all).
                for minute in 0..100 {
                    let leg = Leg::TollFreeInbound { number: TOLL_FREE };
                    let call = format!("call-{n}-{minute}");
                    let (done, rx) = done_channel();
                    match ledger.reserve("fabrikam", leg, &call, december(), done) {
                        Ok(r) => {
                            let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                            most.fetch_max(now, Ordering::SeqCst);
                            rx.recv().unwrap().unwrap();
                            assert!(!available(&ledger, "fabrikam").is_negative());
                            in_flight.fetch_sub(1, Ordering::SeqCst);
                            committed(|d| ledger.settle(r.id, december(), d)).unwrap();
                            settled.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(refusal) => {
                            assert_eq!(refusal, Refusal::NoCredits);
                            return minute;
                        }
                    }
                }
                panic!("the balance never ran out");
            })
        })
        .collect();
    let minutes: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(minutes, 33);
    assert_eq!(settled.load(Ordering::SeqCst), 33);
    assert!(most_in_flight.load(Ordering::SeqCst) <= THREADS);
    let balance = ledger.balance("fabrikam", december()).unwrap();
    assert_eq!(
        (balance.credits, balance.reserved, balance.available),
        (amount("0.01"), Amount::ZERO, amount("0.01"))
    );
    drop(ledger);
    // The rows say the same.
    let ledger = db.open(config("1.00", 3000), december()).unwrap();
    assert_eq!(available(&ledger, "fabrikam"), amount("0.01"));
}

fn top_ups_and_adjustments_keep_the_balance_at_or_above_zero(backend: Backend) {
    let db = Db::new(backend, "top-up");
    let ledger = db.open(config("0.00", 3000), december()).unwrap();
    let leg = Leg::TollFreeInbound { number: TOLL_FREE };
    assert_eq!(
        ledger.decide("fabrikam", leg, december()),
        Err(Refusal::NoCredits)
    );
    let balance = committed(|d| ledger.top_up("fabrikam", amount("5.00"), december(), d)).unwrap();
    assert_eq!(balance.credits, amount("5.00"));
    assert!(matches!(
        ledger.decide("fabrikam", leg, december()),
        Ok(Source::Credits { .. })
    ));
    // A call holds a minute: an adjustment may take what is available, no more.
    let r = committed(|d| ledger.reserve("fabrikam", leg, "x", december(), d)).unwrap();
    let (done, _) = done_channel();
    let refused = ledger.top_up("fabrikam", amount("-5.00"), december(), done);
    assert!(
        matches!(refused, Err(LedgerError::BelowZero { available }) if available == amount("4.97")),
        "{refused:?}"
    );
    let (done, _) = done_channel();
    assert!(matches!(
        ledger.top_up("fabrikam", Amount::ZERO, december(), done),
        Err(LedgerError::ZeroAmount)
    ));
    let (done, _) = done_channel();
    assert!(matches!(
        ledger.top_up("northwind", amount("1.00"), december(), done),
        Err(LedgerError::UnknownTenant(_))
    ));
    let balance = committed(|d| ledger.top_up("fabrikam", amount("-4.97"), december(), d)).unwrap();
    assert_eq!(balance.available, Amount::ZERO);
    assert_eq!(
        ledger.decide("fabrikam", leg, december()),
        Err(Refusal::NoCredits)
    );
    committed(|d| ledger.settle(r.id, december(), d)).unwrap();
    // Settled or refunded once only.
    let (done, _) = done_channel();
    assert!(matches!(
        ledger.refund(r.id, december(), done),
        Err(LedgerError::NotOpen(_))
    ));
    let balance = ledger.balance("fabrikam", december()).unwrap();
    assert_eq!(
        (balance.credits, balance.available),
        (Amount::ZERO, Amount::ZERO)
    );
    drop(ledger);
    let ledger = db.open(config("0.00", 3000), december()).unwrap();
    assert_eq!(available(&ledger, "fabrikam"), Amount::ZERO);
}

fn a_pool_resets_at_the_start_of_each_month_utc(backend: Backend) {
    let db = Db::new(backend, "pool-month");
    let ledger = db.open(config("0.00", 2), december()).unwrap();
    let us = Leg::DialOut {
        destination: "+14255557000",
    };
    for call in ["a", "b"] {
        let r = committed(|d| ledger.reserve("contoso", us, call, december(), d)).unwrap();
        assert!(matches!(r.source, Source::Pool { .. }));
        committed(|d| ledger.settle(r.id, december(), d)).unwrap();
    }
    // December's two minutes are gone: credits pay at the +1 rate.
    let r = committed(|d| ledger.reserve("contoso", us, "c", december(), d)).unwrap();
    assert_eq!(r.source.price(), amount("0.02"));
    committed(|d| ledger.refund(r.id, december(), d)).unwrap();
    // 2027-01-01T00:00:00Z: the pool is whole again (and a restart agrees).
    let january = UNIX_EPOCH + Duration::from_secs(1_798_761_600);
    let just_before = january - Duration::from_millis(1);
    assert_eq!(
        ledger.balance("contoso", just_before).unwrap().pools[0].minutes_left,
        0
    );
    assert_eq!(
        ledger.balance("contoso", january).unwrap().pools[0].minutes_left,
        2
    );
    drop(ledger);
    let ledger = db.open(config("0.00", 2), january).unwrap();
    let r = committed(|d| ledger.reserve("contoso", us, "d", january, d)).unwrap();
    assert!(matches!(r.source, Source::Pool { .. }));
    assert_eq!(
        ledger.balance("contoso", just_before).unwrap().pools[0].minutes_left,
        0
    );
    assert_eq!(available(&ledger, "contoso"), amount("20.00"));
}

#[test]
fn a_failed_commit_fails_the_operation_and_the_balance_goes_back_to_the_rows() {
    // SQLite's own failure (PostgreSQL's: `an_outage_fails_operations_and_the_ledger_comes_back_by_itself`).
    let db = TempDb::new("failed");
    let ledger = Ledger::open(db.path(), config("1.00", 3000), december()).unwrap();
    // Another process holds the file's write lock past the busy timeout.
    let blocker = rusqlite::Connection::open(db.path()).unwrap();
    blocker.execute_batch("BEGIN EXCLUSIVE;").unwrap();
    let leg = Leg::TollFreeInbound { number: TOLL_FREE };
    let (done, rx) = done_channel();
    ledger
        .reserve("fabrikam", leg, "x", december(), done)
        .unwrap();
    assert_eq!(
        available(&ledger, "fabrikam"),
        amount("0.97"),
        "held at once"
    );
    let outcome = rx.recv_timeout(Duration::from_secs(60)).unwrap();
    assert!(matches!(outcome, Err(LedgerError::Write(_))), "{outcome:?}");
    assert_eq!(
        available(&ledger, "fabrikam"),
        amount("1.00"),
        "back to the rows"
    );
    assert_eq!(ledger.open_reservations(), 0);
    blocker.execute_batch("COMMIT;").unwrap();
    drop(blocker);
    // The next one goes through, and gets an id of its own.
    let r = committed(|d| ledger.reserve("fabrikam", leg, "y", december(), d)).unwrap();
    assert!(r.id.get() >= 2);
    assert_eq!(available(&ledger, "fabrikam"), amount("0.97"));
}

/// A `notify` whose commits the test hands back to the meter.
fn inbox() -> (dialbridge_ledger::Notify, mpsc::Receiver<Committed>) {
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let notify: dialbridge_ledger::Notify = Arc::new(move |c| {
        let _ = tx.lock().unwrap().send(c);
    });
    (notify, rx)
}

fn events(meter: &mut Meter) -> Vec<String> {
    std::iter::from_fn(|| meter.poll_event())
        .map(|e| match e {
            MeterEvent::Funded => "funded".to_string(),
            MeterEvent::CannotFund(r) => format!("cannot fund: {}", r.as_str()),
            MeterEvent::MustEnd => "must end".to_string(),
            MeterEvent::Refused(r) => format!("refused: {}", r.as_str()),
            MeterEvent::Failed(e) => format!("failed: {e}"),
        })
        .collect()
}

/// Hands the meter every commit its ledger has made so far.
fn deliver(meter: &mut Meter, ledger: &Ledger, rx: &mpsc::Receiver<Committed>) {
    ledger.flush();
    while let Ok(c) = rx.try_recv() {
        meter.handle_committed(c);
    }
}

fn toll_free_call(tenant: &str, call: &str) -> Account {
    Account {
        tenant: tenant.into(),
        leg: LegSpec::TollFreeInbound {
            number: TOLL_FREE.into(),
        },
        call_id: call.into(),
    }
}

fn a_meter_pays_minute_by_minute_and_ends_a_call_it_cannot_fund(backend: Backend) {
    let db = Db::new(backend, "meter");
    let ledger = db.open(config("0.10", 3000), december()).unwrap();
    let (notify, rx) = inbox();
    let wall = december();
    let mut meter = Meter::open(&ledger, toll_free_call("fabrikam", "tf-1"), notify, wall).unwrap();
    assert!(!meter.is_funded(), "not before the row is committed");
    assert_eq!(meter.poll_timeout(), None, "nothing runs before the answer");
    deliver(&mut meter, &ledger, &rx);
    assert_eq!(events(&mut meter), ["funded"]);
    let t0 = Instant::now();
    meter.answered(t0);
    let minute = Duration::from_secs(60);
    // The next minute is reserved 5 s ahead of the boundary, the current settled at it.
    assert_eq!(
        meter.poll_timeout(),
        Some(t0 + minute - Duration::from_secs(5))
    );
    meter.handle_timeout(t0 + Duration::from_secs(55), wall);
    assert_eq!(ledger.open_reservations(), 2);
    assert_eq!(meter.poll_timeout(), Some(t0 + minute));
    meter.handle_timeout(t0 + minute, wall);
    deliver(&mut meter, &ledger, &rx);
    assert!(events(&mut meter).is_empty());
    assert_eq!(ledger.open_reservations(), 1);
    // 0.10 pays three minutes: at the third's end the fourth is refused.
    meter.handle_timeout(t0 + minute * 2, wall);
    assert_eq!(available(&ledger, "fabrikam"), amount("0.01"));
    meter.handle_timeout(t0 + minute * 3 - Duration::from_secs(5), wall);
    assert_eq!(events(&mut meter), ["cannot fund: no_credits"]);
    assert_eq!(
        meter.poll_timeout(),
        Some(t0 + minute * 3),
        "the paid time still runs"
    );
    meter.handle_timeout(t0 + minute * 3, wall);
    assert_eq!(events(&mut meter), ["must end"]);
    assert_eq!(meter.poll_timeout(), None);
    let usage = meter.close(t0 + minute * 3 + Duration::from_secs(2), wall);
    assert_eq!((usage.credit_seconds, usage.cost), (180, amount("0.09")));
    assert_eq!(usage.funding(), "credits");
    ledger.flush();
    let balance = ledger.balance("fabrikam", wall).unwrap();
    assert_eq!(
        (balance.credits, balance.reserved),
        (amount("0.01"), Amount::ZERO)
    );
}

fn a_call_never_answered_is_refunded_and_a_started_minute_is_paid_whole(backend: Backend) {
    let db = Db::new(backend, "unanswered");
    let ledger = db.open(config("1.00", 3000), december()).unwrap();
    let wall = december();
    let (notify, _rx) = inbox();
    let mut unanswered =
        Meter::open(&ledger, toll_free_call("fabrikam", "u"), notify, wall).unwrap();
    assert_eq!(available(&ledger, "fabrikam"), amount("0.97"));
    let usage = unanswered.close(Instant::now(), wall);
    assert_eq!(usage.billed_seconds(), 0);
    assert_eq!(available(&ledger, "fabrikam"), amount("1.00"));

    let (notify, rx) = inbox();
    let mut meter = Meter::open(&ledger, toll_free_call("fabrikam", "s"), notify, wall).unwrap();
    deliver(&mut meter, &ledger, &rx);
    let t0 = Instant::now();
    meter.answered(t0);
    meter.handle_timeout(t0 + Duration::from_secs(57), wall);
    // Hung up 58 s in: the minute in use is paid, the one reserved ahead refunded.
    let usage = meter.close(t0 + Duration::from_secs(58), wall);
    assert_eq!((usage.credit_seconds, usage.cost), (60, amount("0.03")));
    ledger.flush();
    let balance = ledger.balance("fabrikam", wall).unwrap();
    assert_eq!(
        (balance.credits, balance.reserved),
        (amount("0.97"), Amount::ZERO)
    );
    // A dropped meter closes itself: nothing stays held.
    let (notify, _rx) = inbox();
    drop(Meter::open(&ledger, toll_free_call("fabrikam", "d"), notify, wall).unwrap());
    assert_eq!(ledger.open_reservations(), 0);
    // A refused one takes nothing.
    let (notify, _rx) = inbox();
    let refused = Meter::open(&ledger, toll_free_call("northwind", "n"), notify, wall);
    assert_eq!(refused.err(), Some(Refusal::UnknownTenant));
}

fn a_dial_out_meter_uses_the_pool_then_credits(backend: Backend) {
    let db = Db::new(backend, "dial-out");
    let ledger = db.open(config("0.00", 1), december()).unwrap();
    let wall = december();
    let (notify, rx) = inbox();
    let account = Account {
        tenant: "contoso".into(),
        leg: LegSpec::DialOut {
            destination: "+14255557000".into(),
        },
        call_id: "out-1".into(),
    };
    let mut meter = Meter::open(&ledger, account, notify, wall).unwrap();
    assert!(matches!(meter.source(), Source::Pool { .. }));
    deliver(&mut meter, &ledger, &rx);
    assert_eq!(events(&mut meter), ["funded"]);
    let t0 = Instant::now();
    meter.answered(t0);
    meter.handle_timeout(t0 + Duration::from_secs(60), wall);
    let usage = meter.close(t0 + Duration::from_secs(61), wall);
    assert_eq!((usage.pool_seconds, usage.credit_seconds), (60, 60));
    assert_eq!(usage.cost, amount("0.02"));
    assert_eq!(usage.funding(), "pool +1, credits");
    // A toll leg needs nothing.
    let (notify, _rx) = inbox();
    let toll = Account {
        tenant: "contoso".into(),
        leg: LegSpec::TollInbound,
        call_id: "toll".into(),
    };
    let mut free = Meter::open(&ledger, toll, notify, wall).unwrap();
    assert!(free.is_funded());
    free.answered(t0);
    assert_eq!(free.poll_timeout(), None);
    assert_eq!(free.close(t0, wall).funding(), "free");
}

// What only a shared database has.

/// A direct connection to a test's PostgreSQL, to look at the rows.
fn rows_client(server: &Postgres) -> ::postgres::Client {
    ::postgres::Client::connect(&server.url(), ::postgres::NoTls).unwrap()
}

/// Units of fabrikam's reserve rows, and how many there are.
fn reserved_rows(server: &Postgres) -> (i64, i64) {
    let row = rows_client(server)
        .query_one(
            "SELECT COALESCE(SUM(amount), 0)::BIGINT, COUNT(*) FROM entries
             WHERE tenant = 'fabrikam' AND kind = 'reserve'",
            &[],
        )
        .unwrap();
    (row.get(0), row.get(1))
}

/// Takes toll-free minutes for fabrikam on `ledger` one after another, settling each,
/// until the in-memory book or the database refuses; returns how many were committed.
fn spend_until_refused(ledger: &Ledger, tag: &str) -> usize {
    for minute in 0..200 {
        let leg = Leg::TollFreeInbound { number: TOLL_FREE };
        let (done, rx) = done_channel();
        let call = format!("{tag}-{minute}");
        let r = match ledger.reserve("fabrikam", leg, &call, december(), done) {
            Ok(r) => r,
            Err(refusal) => {
                assert_eq!(refusal, Refusal::NoCredits);
                return minute;
            }
        };
        match rx.recv_timeout(Duration::from_secs(30)).unwrap() {
            Ok(()) => committed(|d| ledger.settle(r.id, december(), d)).unwrap(),
            Err(LedgerError::Refused(Refusal::NoCredits)) => return minute,
            Err(e) => panic!("{e}"),
        }
    }
    panic!("the balance never ran out");
}

#[test]
fn nodes_racing_for_one_balance_never_overspend_it() {
    const NODES: usize = 4;
    const CALLS_PER_NODE: usize = 4;
    let db = Db::new(Backend::Postgres, "nodes");
    // 1.00 pays 33 toll-free minutes at 0.03, whoever takes them.
    let ledgers: Vec<Ledger> = (0..NODES)
        .map(|n| {
            db.open_as(&format!("node-{n}"), config("1.00", 3000), december())
                .unwrap()
        })
        .collect();
    let start = Arc::new(Barrier::new(NODES * CALLS_PER_NODE));
    let threads: Vec<_> = ledgers
        .iter()
        .enumerate()
        .flat_map(|(n, ledger)| {
            let start = start.clone();
            (0..CALLS_PER_NODE).map(move |c| {
                let (ledger, start) = (ledger.clone(), start.clone());
                std::thread::spawn(move || {
                    start.wait();
                    spend_until_refused(&ledger, &format!("n{n}-c{c}"))
                })
            })
        })
        .collect();
    let minutes: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(minutes, 33, "every minute the balance pays, and no more");
    let Db::Postgres(server) = &db else {
        unreachable!()
    };
    assert_eq!(reserved_rows(server), (33 * 300, 33));
    // Each node's book has followed what the others spent.
    for ledger in &ledgers {
        ledger.flush();
        let balance = ledger.balance("fabrikam", december()).unwrap();
        assert_eq!(balance.available, amount("0.01"));
        assert_eq!(ledger.open_reservations(), 0);
    }
    drop(ledgers);
    let ledger = db
        .open_as("node-x", config("1.00", 3000), december())
        .unwrap();
    assert_eq!(
        ledger.recovered(),
        0,
        "a live node's reservations are not touched"
    );
    assert_eq!(available(&ledger, "fabrikam"), amount("0.01"));
}

#[test]
fn the_database_refuses_what_another_node_made_unfundable_and_the_meter_acts_on_it() {
    let db = Db::new(Backend::Postgres, "refused");
    // 0.06 pays two minutes at 0.03. Four nodes open while all of it is there.
    let open = |node: &str| db.open_as(node, config("0.06", 3000), december()).unwrap();
    let (a, b, c, d) = (open("a"), open("b"), open("c"), open("d"));
    let wall = december();
    let leg = Leg::TollFreeInbound { number: TOLL_FREE };
    // b's call takes the first minute, a another: the database has nothing left...
    let (notify, rx) = inbox();
    let mut call = Meter::open(&b, toll_free_call("fabrikam", "on-b"), notify, wall).unwrap();
    deliver(&mut call, &b, &rx);
    assert_eq!(events(&mut call), ["funded"]);
    let held = committed(|done| a.reserve("fabrikam", leg, "on-a", wall, done)).unwrap();
    assert_eq!(available(&a, "fabrikam"), Amount::ZERO);
    // ... but b has not heard: its book allows the call's next minute, which the
    // database refuses. A later increment refused is "cannot fund", as in memory.
    assert_eq!(available(&b, "fabrikam"), amount("0.03"));
    let t0 = Instant::now();
    call.answered(t0);
    call.handle_timeout(t0 + Duration::from_secs(55), wall);
    deliver(&mut call, &b, &rx);
    assert_eq!(events(&mut call), ["cannot fund: no_credits"]);
    assert_eq!(
        available(&b, "fabrikam"),
        Amount::ZERO,
        "b's book caught up"
    );
    call.handle_timeout(t0 + Duration::from_secs(60), wall);
    assert_eq!(events(&mut call), ["must end"]);
    let usage = call.close(t0 + Duration::from_secs(60), wall);
    assert_eq!((usage.credit_seconds, usage.cost), (60, amount("0.03")));
    b.flush();
    // c's book still says 0.06: a first increment the database refuses refuses the leg
    // as unfunded, and takes nothing.
    let (notify, rx) = inbox();
    let mut late = Meter::open(&c, toll_free_call("fabrikam", "on-c"), notify, wall).unwrap();
    deliver(&mut late, &c, &rx);
    assert_eq!(events(&mut late), ["refused: no_credits"]);
    assert!(!late.is_funded());
    assert_eq!(c.open_reservations(), 0);
    assert_eq!(late.close(Instant::now(), wall).billed_seconds(), 0);
    // An adjustment is decided by the database too: d may not take what a holds.
    let (done, rx) = done_channel();
    d.top_up("fabrikam", amount("-0.03"), wall, done).unwrap();
    let outcome = rx.recv_timeout(Duration::from_secs(30)).unwrap();
    assert!(
        matches!(outcome, Err(LedgerError::BelowZero { available }) if available == Amount::ZERO),
        "{outcome:?}"
    );
    assert_eq!(available(&d, "fabrikam"), Amount::ZERO);
    committed(|done| a.settle(held.id, wall, done)).unwrap();
    let Db::Postgres(server) = &db else {
        unreachable!()
    };
    assert_eq!(
        reserved_rows(server),
        (600, 2),
        "only what was funded is written"
    );
    let balance = a.balance("fabrikam", wall).unwrap();
    assert_eq!(
        (balance.credits, balance.reserved),
        (Amount::ZERO, Amount::ZERO)
    );
}

#[test]
fn an_outage_fails_operations_and_the_ledger_comes_back_by_itself() {
    let mut db = Db::new(Backend::Postgres, "outage");
    let ledger = db.open(config("1.00", 3000), december()).unwrap();
    let leg = Leg::TollFreeInbound { number: TOLL_FREE };
    let before = committed(|d| ledger.reserve("fabrikam", leg, "before", december(), d)).unwrap();
    db.server().stop();
    // Decided in memory at once, then the commit fails: an error, no panic, and the
    // book takes the hold back out.
    let (done, rx) = done_channel();
    ledger
        .reserve("fabrikam", leg, "during", december(), done)
        .unwrap();
    let outcome = rx.recv_timeout(Duration::from_secs(60)).unwrap();
    assert!(matches!(outcome, Err(LedgerError::Write(_))), "{outcome:?}");
    assert_eq!(available(&ledger, "fabrikam"), amount("0.97"));
    assert_eq!(ledger.open_reservations(), 1);
    let (done, rx) = done_channel();
    ledger
        .top_up("fabrikam", amount("1.00"), december(), done)
        .unwrap();
    assert!(rx.recv_timeout(Duration::from_secs(60)).unwrap().is_err());
    assert_eq!(available(&ledger, "fabrikam"), amount("0.97"));
    // The server comes back: the same ledger writes again once its writer reconnects.
    db.server().resume();
    let deadline = Instant::now() + Duration::from_secs(30);
    let after = loop {
        let (done, rx) = done_channel();
        let r = ledger
            .reserve("fabrikam", leg, "after", december(), done)
            .unwrap();
        match rx.recv_timeout(Duration::from_secs(60)).unwrap() {
            Ok(()) => break r,
            Err(e) => {
                assert!(
                    Instant::now() < deadline,
                    "the ledger did not come back: {e}"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    };
    assert!(after.id > before.id);
    committed(|d| ledger.settle(before.id, december(), d)).unwrap();
    committed(|d| ledger.refund(after.id, december(), d)).unwrap();
    let balance = ledger.balance("fabrikam", december()).unwrap();
    assert_eq!(
        (balance.credits, balance.reserved),
        (amount("0.97"), Amount::ZERO)
    );
}

#[test]
fn a_settle_delivered_twice_settles_once() {
    let db = Db::new(Backend::Postgres, "twice");
    let first = db.open(config("1.00", 3000), december()).unwrap();
    let leg = Leg::TollFreeInbound { number: TOLL_FREE };
    let r = committed(|d| first.reserve("fabrikam", leg, "x", december(), d)).unwrap();
    // The same node starts again while the first process still runs (it was taken for
    // dead): the new one settles the reservation, then the old one settles it too.
    let second = db.open(config("1.00", 3000), december()).unwrap();
    assert_eq!(second.recovered(), 1);
    let (done, rx) = done_channel();
    first.settle(r.id, december(), done).unwrap();
    let outcome = rx.recv_timeout(Duration::from_secs(30)).unwrap();
    assert!(
        matches!(outcome, Err(LedgerError::NotOpen(id)) if id == r.id.get()),
        "{outcome:?}"
    );
    assert_eq!(available(&first, "fabrikam"), amount("0.97"), "paid once");
    // And the rows themselves refuse a second settle or a refund after it.
    let Db::Postgres(server) = &db else {
        unreachable!()
    };
    let mut client = rows_client(server);
    let again = client.execute(
        "INSERT INTO entries (at_ms, tenant, currency, kind, amount, reservation)
         VALUES (0, 'fabrikam', 'USD', 'refund', 300, $1)",
        &[&r.id.get()],
    );
    assert!(again.is_err(), "the unique index holds");
    let closes: i64 = client
        .query_one(
            "SELECT COUNT(*) FROM entries WHERE reservation = $1 AND kind != 'reserve'",
            &[&r.id.get()],
        )
        .unwrap()
        .get(0);
    assert_eq!(closes, 1);
    drop(first);
    let third = db.open(config("1.00", 3000), december()).unwrap();
    assert_eq!(third.recovered(), 0);
    assert_eq!(available(&third, "fabrikam"), amount("0.97"));
}

#[test]
fn another_live_nodes_reservations_survive_a_start_and_abandoned_ones_are_settled() {
    let db = Db::new(Backend::Postgres, "recovery");
    let wall = december();
    let a = db.open_as("a", config("1.00", 3000), wall).unwrap();
    let leg = Leg::TollFreeInbound { number: TOLL_FREE };
    committed(|d| a.reserve("fabrikam", leg, "live", wall, d)).unwrap();
    // b starts: a's call is live, its minute stays held.
    let b = db.open_as("b", config("1.00", 3000), wall).unwrap();
    assert_eq!(b.recovered(), 0);
    assert_eq!(available(&b, "fabrikam"), amount("0.97"));
    // An hour later a has vanished without coming back: the next start settles it.
    let later = wall + dialbridge_ledger::ABANDONED_AFTER + Duration::from_secs(1);
    let c = db.open_as("c", config("1.00", 3000), later).unwrap();
    assert_eq!(c.recovered(), 1);
    let balance = c.balance("fabrikam", later).unwrap();
    assert_eq!(
        (balance.credits, balance.reserved),
        (amount("0.97"), Amount::ZERO)
    );
}

/// The child half of `two_processes_racing_for_one_balance_never_overspend_it`: runs
/// only when that test starts this binary again with the database's URL.
#[test]
fn child_process_spends_fabrikams_balance() {
    let (Ok(url), Ok(node)) = (
        std::env::var("DIALBRIDGE_LEDGER_CHILD_URL"),
        std::env::var("DIALBRIDGE_LEDGER_CHILD_NODE"),
    ) else {
        return;
    };
    let ledger = Ledger::open_postgres(&url, &node, config("1.00", 3000), december()).unwrap();
    let threads: Vec<_> = (0..4)
        .map(|c| {
            let (ledger, node) = (ledger.clone(), node.clone());
            std::thread::spawn(move || spend_until_refused(&ledger, &format!("{node}-{c}")))
        })
        .collect();
    let minutes: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    println!("MINUTES={minutes}");
}

#[test]
fn two_processes_racing_for_one_balance_never_overspend_it() {
    let db = Db::new(Backend::Postgres, "processes");
    let Db::Postgres(server) = &db else {
        unreachable!()
    };
    // The schema and the opening balance first, so both children race only for money.
    drop(
        db.open_as("setup", config("1.00", 3000), december())
            .unwrap(),
    );
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = ["p1", "p2"]
        .into_iter()
        .map(|node| {
            std::process::Command::new(&exe)
                .args(["--exact", "child_process_spends_fabrikams_balance"])
                .args(["--nocapture", "--test-threads", "1"])
                .env("DIALBRIDGE_LEDGER_CHILD_URL", server.url())
                .env("DIALBRIDGE_LEDGER_CHILD_NODE", node)
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let minutes: usize = children
        .into_iter()
        .map(|child| {
            let out = child.wait_with_output().unwrap();
            let text = String::from_utf8_lossy(&out.stdout).to_string();
            assert!(out.status.success(), "{text}");
            text.split("MINUTES=")
                .nth(1)
                .and_then(|n| n.split_whitespace().next()?.parse::<usize>().ok())
                .unwrap_or_else(|| panic!("no count from the child: {text}"))
        })
        .sum();
    assert_eq!(minutes, 33);
    assert_eq!(reserved_rows(server), (33 * 300, 33));
}
