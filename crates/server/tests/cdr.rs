//! Call detail records are billing data: they survive reopening the file, and a record
//! whose `record()` returned survives the process being killed the next instant.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

use dialbridge_conference::ivr::{ConferenceId, Role};
use dialbridge_router::Charge;
use dialbridge_server::cdr::{Cdr, CdrFilter, CdrStore, Direction, EndedBy, Timestamp};

/// Set in the child process: the database it writes to.
const CHILD_DB: &str = "DIALBRIDGE_CDR_CRASH_CHILD_DB";

fn sample(n: i64) -> Cdr {
    Cdr {
        call_id: format!("crash-{n}@test"),
        trunk: "telco-a".into(),
        calling: "+33612345678".into(),
        dialled: "+33170000100".parse().unwrap(),
        tenant: "contoso".into(),
        bridge: "contoso-bridge".into(),
        conference_id: Some(ConferenceId::parse("123456789").unwrap()),
        role: Some(Role::Leader),
        arrived: Timestamp::from_unix_millis(1_795_229_117_000 + n),
        answered: Some(Timestamp::from_unix_millis(1_795_229_117_100 + n)),
        joined: None,
        ended: Timestamp::from_unix_millis(1_795_229_177_000 + n),
        ended_by: EndedBy::Caller,
        sip_status: 200,
        charge: Charge::Toll,
        provider: Some("Telco A".into()),
        direction: Direction::Inbound,
        billing: None,
    }
}

/// A fresh database path in the temp directory, removed with its WAL files on drop.
struct TempDb(PathBuf);

impl TempDb {
    fn new(tag: &str) -> TempDb {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        TempDb(std::env::temp_dir().join(format!(
            "dialbridge-cdr-{tag}-{}-{nanos}.sqlite",
            std::process::id()
        )))
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", self.path()));
        }
    }
}

#[test]
fn records_survive_reopening_the_file() {
    let db = TempDb::new("reopen");
    {
        let store = CdrStore::open(db.path()).unwrap();
        for n in 0..5 {
            store.record(&sample(n)).unwrap();
        }
    }
    let store = CdrStore::open(db.path()).unwrap();
    let got = store.list(&CdrFilter::default()).unwrap();
    assert_eq!(got, (0..5).map(sample).collect::<Vec<_>>());
    store.record(&sample(5)).unwrap();
    assert_eq!(store.count().unwrap(), 6);
}

/// The child half of `a_killed_process_keeps_every_record_it_was_told_of`: does
/// nothing unless the parent set [`CHILD_DB`].
#[test]
fn crash_child() {
    let Ok(path) = std::env::var(CHILD_DB) else {
        return;
    };
    let store = CdrStore::open(&path).unwrap();
    // Record forever, telling the parent after each record() returns; the parent kills
    // us with SIGKILL at a moment of its choosing. Bounded in case the parent died.
    for n in 0..1_000_000 {
        store.record(&sample(n)).unwrap();
        println!("RECORDED {n}");
    }
}

#[test]
fn a_killed_process_keeps_every_record_it_was_told_of() {
    let db = TempDb::new("kill");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_DB, db.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut last = None;
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if let Some(n) = line.strip_prefix("RECORDED ") {
            let n: i64 = n.parse().unwrap();
            last = Some(n);
            if n >= 200 {
                // SIGKILL: no destructor, no flush, no SQLite close.
                child.kill().unwrap();
                break;
            }
        }
    }
    child.wait().unwrap();
    let last = last.expect("the child recorded something");
    let store = CdrStore::open(db.path()).unwrap();
    let ids: std::collections::HashSet<String> = store
        .list(&CdrFilter {
            limit: Some(10_000),
            ..CdrFilter::default()
        })
        .unwrap()
        .into_iter()
        .map(|c| c.call_id)
        .collect();
    for n in 0..=last {
        assert!(
            ids.contains(&format!("crash-{n}@test")),
            "record {n} was acknowledged and then lost"
        );
    }
}

#[test]
fn concurrent_callers_share_commits_and_lose_nothing() {
    let db = TempDb::new("group");
    let store = CdrStore::open(db.path()).unwrap();
    const THREADS: i64 = 8;
    const EACH: i64 = 100;
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let store = store.clone();
            s.spawn(move || {
                for n in 0..EACH {
                    store.record(&sample(t * EACH + n)).unwrap();
                }
            });
        }
    });
    let per = start.elapsed() / u32::try_from(THREADS * EACH).unwrap();
    eprintln!(
        "CdrStore::record on file, {THREADS} threads: {} µs per record",
        per.as_micros()
    );
    let reopened = CdrStore::open(db.path()).unwrap();
    let ids: std::collections::HashSet<String> = reopened
        .list(&CdrFilter {
            limit: Some(10_000),
            ..CdrFilter::default()
        })
        .unwrap()
        .into_iter()
        .map(|c| c.call_id)
        .collect();
    assert_eq!(ids.len() as i64, THREADS * EACH);
    assert_eq!(reopened.count().unwrap(), (THREADS * EACH) as u64);
}

#[test]
fn records_commit_in_memory_and_on_disk_and_their_cost_is_printed() {
    let memory = CdrStore::open(":memory:").unwrap();
    let db = TempDb::new("speed");
    let file = CdrStore::open(db.path()).unwrap();
    for (name, store, rounds) in [("memory", &memory, 2000), ("file", &file, 200)] {
        let start = Instant::now();
        for n in 0..rounds {
            store.record(&sample(n)).unwrap();
        }
        let per = start.elapsed() / u32::try_from(rounds).unwrap();
        // A figure for the README (run with --nocapture), never a pass/fail: a busy CI
        // machine makes any bound on wall-clock time flaky.
        eprintln!("CdrStore::record on {name}: {} µs each", per.as_micros());
        assert_eq!(store.count().unwrap(), u64::try_from(rounds).unwrap());
    }
}
