//! The ledger through its public API, on real SQLite files: restarts settle what was
//! reserved, concurrent calls never overspend a balance, top-ups and adjustments keep
//! it at or above 0.00, a failed commit changes nothing, and the per-call meter on a
//! virtual clock (no sleeps: time is passed in).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex, mpsc};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dialbridge_ledger::{
    Account, Amount, Committed, Ledger, LedgerError, Leg, LegSpec, Meter, MeterEvent, MoneyConfig,
    Refusal, Source, done_channel,
};

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

#[test]
fn opening_balances_are_written_once_and_a_restart_settles_what_was_reserved() {
    let db = TempDb::new("restart");
    let ledger = Ledger::open(db.path(), config("0.00", 3000), december()).unwrap();
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
    let ledger = Ledger::open(db.path(), richer, december()).unwrap();
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
    let ledger = Ledger::open(db.path(), config("0.00", 3000), december()).unwrap();
    assert_eq!(ledger.recovered(), 0);
    assert_eq!(available(&ledger, "contoso"), amount("19.94"));
}

#[test]
fn concurrent_calls_never_overspend_one_balance() {
    const THREADS: usize = 16;
    let db = TempDb::new("concurrent");
    // 1.00 pays 33 toll-free minutes at 0.03, and leaves 0.01.
    let ledger = Ledger::open(db.path(), config("1.00", 3000), december()).unwrap();
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
    let ledger = Ledger::open(db.path(), config("1.00", 3000), december()).unwrap();
    assert_eq!(available(&ledger, "fabrikam"), amount("0.01"));
}

#[test]
fn top_ups_and_adjustments_keep_the_balance_at_or_above_zero() {
    let db = TempDb::new("top-up");
    let ledger = Ledger::open(db.path(), config("0.00", 3000), december()).unwrap();
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
    let ledger = Ledger::open(db.path(), config("0.00", 3000), december()).unwrap();
    assert_eq!(available(&ledger, "fabrikam"), Amount::ZERO);
}

#[test]
fn a_pool_resets_at_the_start_of_each_month_utc() {
    let db = TempDb::new("pool-month");
    let ledger = Ledger::open(db.path(), config("0.00", 2), december()).unwrap();
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
    let ledger = Ledger::open(db.path(), config("0.00", 2), january).unwrap();
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

#[test]
fn a_meter_pays_minute_by_minute_and_ends_a_call_it_cannot_fund() {
    let ledger = Ledger::open(":memory:", config("0.10", 3000), december()).unwrap();
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

#[test]
fn a_call_never_answered_is_refunded_and_a_started_minute_is_paid_whole() {
    let ledger = Ledger::open(":memory:", config("1.00", 3000), december()).unwrap();
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

#[test]
fn a_dial_out_meter_uses_the_pool_then_credits() {
    let ledger = Ledger::open(":memory:", config("0.00", 1), december()).unwrap();
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
