//! Call detail records: who called which number, over which trunk, into which
//! conference, for how long, and how the call ended. They are billing data (toll-free
//! minutes are paid from Communications Credits), so [`CdrStore::record`] returns only
//! once the record is committed (to SQLite, or to PostgreSQL when nodes share the
//! store): a crash right after it loses nothing.
//!
//! A record is written for every call the router admitted (that held a capacity grant),
//! when the call ends; refused calls are counted by the metrics, not recorded here. A
//! billed call's record carries what paid for it and what it cost (from its meter), and
//! [`CdrStore::usage_csv`] sums the records of a month per provider and number: what an
//! operator bills its customers from.

mod backend;
mod edits;
mod schema;
mod store;
mod time;
mod tokens;
mod usage;

pub use edits::StoredEdit;
pub use store::CdrStore;
pub use time::{BadTimestamp, Timestamp};
pub use tokens::StoredToken;
pub use usage::{USAGE_COLUMNS, UsageFilter};

use dialbridge_conference::ivr::{ConferenceId, Role};
use dialbridge_ledger::{Amount, Currency};
use dialbridge_router::{Charge, E164};

/// The most records one [`CdrStore::list`] returns.
pub const MAX_LIST: usize = 10_000;
/// What [`CdrStore::list`] returns when the filter names no limit.
pub const DEFAULT_LIST: usize = 1000;
/// The CSV columns of [`CdrStore::export_csv`], in order.
pub const CSV_COLUMNS: [&str; 21] = [
    "call_id",
    "trunk",
    "calling",
    "dialled",
    "tenant",
    "bridge",
    "conference_id",
    "role",
    "arrived",
    "answered",
    "joined",
    "ended",
    "ended_by",
    "sip_status",
    "charge",
    "provider",
    "direction",
    "funding",
    "billed_seconds",
    "cost",
    "currency",
];

/// Longest Call-ID kept (RFC 3261 sets no bound; ours are far shorter). Longer ones are
/// truncated, not refused: a record must never be lost for a peer's odd header.
const MAX_CALL_ID: usize = 256;
/// Longest calling number (From user part) kept.
const MAX_CALLING: usize = 128;
/// Longest trunk, tenant or bridge name kept (they come from the config).
const MAX_NAME: usize = 128;
/// Rows read per lock while exporting, so an export never holds up `record`.
const EXPORT_PAGE: usize = 1000;

/// One call, from its INVITE to its end.
// Its schema describes the JSON of the `Serialize` below, field for field.
#[derive(Debug, Clone, PartialEq, Eq, utoipa::ToSchema)]
pub struct Cdr {
    /// The SIP Call-ID.
    pub call_id: String,
    /// The trunk the call came over (`microsoft-pstn`, `softphones`...).
    pub trunk: String,
    /// Who called: the user part of From, as the trunk sent it (not validated).
    pub calling: String,
    /// The number dialled.
    #[schema(value_type = String)]
    pub dialled: E164,
    /// The tenant that owns the bridge.
    pub tenant: String,
    /// The bridge the number is assigned to.
    pub bridge: String,
    /// The conference the caller joined, if they got that far.
    #[schema(value_type = Option<String>)]
    pub conference_id: Option<ConferenceId>,
    /// Leader or participant, once joined.
    #[schema(value_type = Option<RoleName>)]
    pub role: Option<Role>,
    /// When the INVITE arrived.
    pub arrived: Timestamp,
    /// When the bridge sent 200 OK, if it did.
    pub answered: Option<Timestamp>,
    /// When the caller entered the conference, if they did.
    pub joined: Option<Timestamp>,
    /// When the call ended (BYE, CANCEL, timeout...).
    pub ended: Timestamp,
    /// Who or what ended it.
    pub ended_by: EndedBy,
    /// The final response to the INVITE: 200 if answered, else the refusal (487 after
    /// CANCEL...).
    pub sip_status: u16,
    /// Toll (the caller pays) or toll-free (the organisation pays, per minute).
    #[schema(value_type = ChargeName)]
    pub charge: Charge,
    /// Who provides the number and its trunk (`Microsoft`, `Telco A`); none for a
    /// softphone's call (and for records older than this column).
    pub provider: Option<String>,
    /// Dialled in, or placed by the bridge.
    pub direction: Direction,
    /// What paid for the call, when it was billed (toll-free, with `[money]`).
    pub billing: Option<Billed>,
}

/// Which way a call went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum Direction {
    /// A caller dialled in.
    Inbound,
    /// The bridge placed it (a dial-out).
    Outbound,
}

impl Direction {
    pub const ALL: [Direction; 2] = [Direction::Inbound, Direction::Outbound];

    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        }
    }

    fn parse(s: &str) -> Option<Direction> {
        Direction::ALL.into_iter().find(|d| d.as_str() == s)
    }
}

/// What paid for a billed call, from its meter.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Billed {
    /// `credits`, `pool +1`, `pool +1, credits` (the pool ran out during the call).
    pub funding: String,
    /// Seconds paid for, whole increments ("a started minute is a minute").
    pub seconds: u64,
    /// What it took from the credits, as decimal text ("0.09").
    #[schema(value_type = String)]
    pub cost: Amount,
    /// The tenant's currency (`USD`).
    #[schema(value_type = String)]
    pub currency: Currency,
}

impl From<dialbridge_ledger::Usage> for Billed {
    /// What a closed meter used, as the record keeps it.
    fn from(u: dialbridge_ledger::Usage) -> Billed {
        Billed {
            funding: u.funding(),
            seconds: u.billed_seconds(),
            cost: u.cost,
            currency: u.currency,
        }
    }
}

/// Who or what ended a call.
// The schema names the values as `EndedBy::as_str` does (a test holds them equal).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum EndedBy {
    /// The caller sent BYE.
    Caller,
    /// The bridge hung up (IVR gave up, kicked by an admin, conference ended).
    Bridge,
    /// The caller sent CANCEL before the answer.
    Cancel,
    /// A timer: no ACK for the 200, session expired, transaction timeout.
    Timeout,
    /// The bridge was shutting down.
    Shutdown,
    /// Something failed (media, transport).
    Error,
}

impl EndedBy {
    /// Every value, in declaration order.
    pub const ALL: [EndedBy; 6] = [
        EndedBy::Caller,
        EndedBy::Bridge,
        EndedBy::Cancel,
        EndedBy::Timeout,
        EndedBy::Shutdown,
        EndedBy::Error,
    ];

    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            EndedBy::Caller => "caller",
            EndedBy::Bridge => "bridge",
            EndedBy::Cancel => "cancel",
            EndedBy::Timeout => "timeout",
            EndedBy::Shutdown => "shutdown",
            EndedBy::Error => "error",
        }
    }

    fn parse(s: &str) -> Option<EndedBy> {
        EndedBy::ALL.into_iter().find(|e| e.as_str() == s)
    }
}

/// Which records [`CdrStore::list`] and [`CdrStore::export_csv`] return: those that
/// ended at or after `since` and before `until`, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CdrFilter {
    pub since: Option<Timestamp>,
    pub until: Option<Timestamp>,
    /// At most this many ([`DEFAULT_LIST`] if `None`, never more than [`MAX_LIST`] for
    /// `list`; unbounded for `export_csv` if `None`).
    pub limit: Option<usize>,
    /// Only this tenant's records (a tenant admin's view).
    pub tenant: Option<String>,
}

/// What can go wrong keeping records.
#[derive(Debug, thiserror::Error)]
pub enum CdrError {
    /// The database failed (disk full, file unreadable...).
    #[error("CDR database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The PostgreSQL database failed or could not be reached (`[shared] postgres`).
    #[error("CDR database (PostgreSQL): {0}")]
    Postgres(#[from] postgres::Error),
    /// Another failure of the database (unreachable while reconnecting...).
    #[error("CDR database: {0}")]
    Database(String),
    /// A column that did not hold what the store writes there.
    #[error("CDR database: column {index} is not {expected}")]
    Column {
        index: usize,
        expected: &'static str,
    },
    /// The file was written by a newer dialbridge.
    #[error("CDR schema version {found} is newer than this build knows ({known})")]
    SchemaTooNew { found: i64, known: i64 },
    /// A stored row that no longer parses (edited by hand?).
    #[error("corrupt CDR row {row}: column {column}")]
    Corrupt { row: i64, column: &'static str },
    /// Writing the CSV export failed.
    #[error("CDR export: {0}")]
    Csv(#[from] csv::Error),
    /// A SIP status outside 100..=699 (the record is refused, nothing written).
    #[error("{0} is not a SIP status code (100 to 699)")]
    InvalidStatus(u16),
    /// The commit that carried this record (another caller's) failed.
    #[error("CDR write failed: {0}")]
    Write(String),
    /// A thread panicked while using the store.
    #[error("CDR store: a thread panicked while writing")]
    Poisoned,
}
/// Leader or participant.
// The names `role_str` writes, as the API's schema lists them (a test holds the two
// equal): `Role` belongs to another crate, so it cannot carry the schema itself.
#[derive(Debug, utoipa::ToSchema)]
#[schema(as = Role, rename_all = "lowercase")]
pub enum RoleName {
    Leader,
    Participant,
}

/// Toll (the caller pays) or toll-free (the organisation pays, per minute).
// The names `charge_str` writes, as the API's schema lists them (see `RoleName`).
#[derive(Debug, utoipa::ToSchema)]
#[schema(as = Charge, rename_all = "kebab-case")]
pub enum ChargeName {
    Toll,
    TollFree,
}

/// The name a role is stored and shown as.
pub fn role_str(role: Role) -> &'static str {
    match role {
        Role::Leader => "leader",
        Role::Participant => "participant",
    }
}

/// The name a charge is stored and shown as (the config file's spelling).
pub fn charge_str(charge: Charge) -> &'static str {
    match charge {
        Charge::Toll => "toll",
        Charge::TollFree => "toll-free",
    }
}
/// JSON as the admin API shows a record: times in RFC 3339, absent values as null.
impl serde::Serialize for Cdr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Cdr", 18)?;
        st.serialize_field("call_id", &self.call_id)?;
        st.serialize_field("trunk", &self.trunk)?;
        st.serialize_field("calling", &self.calling)?;
        st.serialize_field("dialled", &self.dialled.to_string())?;
        st.serialize_field("tenant", &self.tenant)?;
        st.serialize_field("bridge", &self.bridge)?;
        st.serialize_field(
            "conference_id",
            &self.conference_id.as_ref().map(ConferenceId::as_str),
        )?;
        st.serialize_field("role", &self.role.map(role_str))?;
        st.serialize_field("arrived", &self.arrived)?;
        st.serialize_field("answered", &self.answered)?;
        st.serialize_field("joined", &self.joined)?;
        st.serialize_field("ended", &self.ended)?;
        st.serialize_field("ended_by", self.ended_by.as_str())?;
        st.serialize_field("sip_status", &self.sip_status)?;
        st.serialize_field("charge", charge_str(self.charge))?;
        st.serialize_field("provider", &self.provider)?;
        st.serialize_field("direction", self.direction.as_str())?;
        st.serialize_field("billing", &self.billing)?;
        st.end()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::time::{Duration, Instant};

    use dialbridge_testkit::servers::{Postgres, PostgresDb};

    use super::*;

    /// Runs `test` on a store of each backend: an in-memory SQLite one, then one in a
    /// PostgreSQL database of its own.
    pub(crate) fn on_both_backends(test: impl Fn(&CdrStore)) {
        test(&CdrStore::open(":memory:").unwrap());
        let db = PostgresDb::create();
        test(&open_postgres(db.url()));
    }

    /// A store in the PostgreSQL database at `url`, once its server takes logins (a
    /// server accepts connections a moment before it has finished starting).
    pub(crate) fn open_postgres(url: &str) -> CdrStore {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match CdrStore::open_postgres(url) {
                Ok(store) => return store,
                Err(e) => assert!(Instant::now() < deadline, "no CDR store: {e}"),
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub(crate) fn sample(n: i64) -> Cdr {
        Cdr {
            call_id: format!("call-{n}@sbc"),
            trunk: "microsoft-pstn".into(),
            calling: "+14255551234".into(),
            dialled: "+18885550100".parse().unwrap(),
            tenant: "contoso".into(),
            bridge: "contoso-bridge".into(),
            conference_id: Some(ConferenceId::parse("123456789").unwrap()),
            role: Some(Role::Participant),
            arrived: Timestamp::from_unix_millis(1_000_000 + n * 1000),
            answered: Some(Timestamp::from_unix_millis(1_000_100 + n * 1000)),
            joined: Some(Timestamp::from_unix_millis(1_000_900 + n * 1000)),
            ended: Timestamp::from_unix_millis(2_000_000 + n * 1000),
            ended_by: EndedBy::Caller,
            sip_status: 200,
            charge: Charge::TollFree,
            provider: Some("Microsoft".into()),
            direction: Direction::Inbound,
            billing: Some(Billed {
                funding: "credits".into(),
                seconds: 1_000 / 60 * 60 + 60,
                cost: "0.51".parse().unwrap(),
                currency: "USD".parse().unwrap(),
            }),
        }
    }

    #[test]
    fn the_api_schema_lists_the_names_written() {
        use utoipa::PartialSchema;
        let names = |schema| serde_json::to_value(schema).unwrap()["enum"].clone();
        assert_eq!(
            names(RoleName::schema()),
            serde_json::json!([role_str(Role::Leader), role_str(Role::Participant)])
        );
        assert_eq!(
            names(ChargeName::schema()),
            serde_json::json!([charge_str(Charge::Toll), charge_str(Charge::TollFree)])
        );
        assert_eq!(
            names(EndedBy::schema()),
            serde_json::json!(EndedBy::ALL.map(EndedBy::as_str))
        );
        assert_eq!(
            names(Direction::schema()),
            serde_json::json!(Direction::ALL.map(Direction::as_str))
        );
    }

    #[test]
    fn a_record_reads_back_whole() {
        on_both_backends(a_record_reads_back_whole_on);
    }

    fn a_record_reads_back_whole_on(store: &CdrStore) {
        let mut bare = sample(2);
        bare.conference_id = None;
        bare.role = None;
        bare.answered = None;
        bare.joined = None;
        bare.ended_by = EndedBy::Cancel;
        bare.sip_status = 487;
        bare.charge = Charge::Toll;
        bare.provider = None;
        bare.billing = None;
        bare.direction = Direction::Outbound;
        store.record(&sample(1)).unwrap();
        store.record(&bare).unwrap();
        assert_eq!(
            store.list(&CdrFilter::default()).unwrap(),
            vec![sample(1), bare]
        );
        assert_eq!(store.count().unwrap(), 2);
    }

    #[test]
    fn a_secret_is_made_once_and_survives_a_reopen() {
        let path = std::env::temp_dir().join(format!(
            "dialbridge-cdr-secret-{}.sqlite",
            std::process::id()
        ));
        let path = path.to_str().unwrap().to_owned();
        let first = CdrStore::open(&path).unwrap().secret("nonce").unwrap();
        assert_eq!(first.len(), 32);
        let store = CdrStore::open(&path).unwrap();
        assert_eq!(store.secret("nonce").unwrap(), first);
        assert_ne!(store.secret("other").unwrap(), first);
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{path}{suffix}"));
        }
    }

    #[test]
    fn nodes_on_one_postgres_database_share_records_tokens_edits_and_the_secret() {
        use crate::tokens::{self, Principal};

        let db = PostgresDb::create();
        let first = open_postgres(db.url());
        // Two more nodes start at once: their migrations take turns (a no-op here).
        let (a, b) = std::thread::scope(|s| {
            let a = s.spawn(|| open_postgres(db.url()));
            let b = s.spawn(|| open_postgres(db.url()));
            (a.join().unwrap(), b.join().unwrap())
        });
        drop(first);

        // Records: both nodes commit at once; either lists everyone's, in end order.
        std::thread::scope(|s| {
            s.spawn(|| (0..20).for_each(|n| a.record(&sample(2 * n)).unwrap()));
            s.spawn(|| (0..20).for_each(|n| b.record(&sample(2 * n + 1)).unwrap()));
        });
        let all: Vec<Cdr> = (0..40).map(sample).collect();
        assert_eq!(b.list(&CdrFilter::default()).unwrap(), all);
        assert_eq!(a.list(&CdrFilter::default()).unwrap(), all);
        assert_eq!(a.count().unwrap(), 40);

        // A token made on one node speaks on the other; revoked there, it is refused here.
        let made = tokens::create(&a, "ops", &Principal::Admin).unwrap();
        let (id, who) = tokens::recognise(&b, &made.secret).unwrap().unwrap();
        assert_eq!((id, who), (made.view.id, Principal::Admin));
        tokens::revoke(&b, id).unwrap();
        assert_eq!(tokens::recognise(&a, &made.secret).unwrap(), None);

        // An edit made on one node is the other's to re-apply.
        let now = std::time::SystemTime::now();
        a.save_plan_edit("number_capacity", "+14255550123", Some("5"), now)
            .unwrap();
        b.save_plan_edit("number_capacity", "+14255550123", Some("7"), now)
            .unwrap();
        assert_eq!(
            a.plan_edits().unwrap(),
            [(
                "number_capacity".to_string(),
                "+14255550123".to_string(),
                Some("7".to_string())
            )]
        );

        // The first node to ask makes the secret; every other reads the same one.
        let (one, two) = std::thread::scope(|s| {
            let one = s.spawn(|| a.secret("digest-nonce").unwrap());
            let two = s.spawn(|| b.secret("digest-nonce").unwrap());
            (one.join().unwrap(), two.join().unwrap())
        });
        assert_eq!(one, two);
        assert_eq!(one.len(), 32);
    }

    #[test]
    fn a_postgres_outage_fails_operations_and_the_store_reconnects_by_itself() {
        let mut server = Postgres::start();
        let store = open_postgres(&server.url());
        store.record(&sample(1)).unwrap();
        server.stop();
        // Errors, not panics; the record of the failed commit is reported lost.
        assert!(matches!(
            store.record(&sample(2)),
            Err(CdrError::Postgres(_) | CdrError::Database(_))
        ));
        assert!(store.list(&CdrFilter::default()).is_err());
        assert!(store.token_by_hash(&[1; 32]).is_err());
        assert!(store.secret("digest-nonce").is_err());
        server.resume();
        // The same store, not reopened: once the server takes logins again (and the
        // reconnect back-off has passed), the next operation works.
        let deadline = Instant::now() + Duration::from_secs(30);
        while let Err(e) = store.record(&sample(3)) {
            assert!(Instant::now() < deadline, "never reconnected: {e}");
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(
            store.list(&CdrFilter::default()).unwrap(),
            vec![sample(1), sample(3)]
        );
    }

    #[test]
    fn record_async_commits_before_it_resolves() {
        // The store is opened and read off the runtime: the PostgreSQL client may not
        // block a thread that drives tasks.
        on_both_backends(|store| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            runtime.block_on(store.record_async(sample(3))).unwrap();
            assert_eq!(store.list(&CdrFilter::default()).unwrap(), vec![sample(3)]);
        });
    }

    #[test]
    fn the_filter_selects_by_end_time_and_limits() {
        on_both_backends(the_filter_selects_by_end_time_and_limits_on);
    }

    fn the_filter_selects_by_end_time_and_limits_on(store: &CdrStore) {
        for n in 0..10 {
            store.record(&sample(n)).unwrap();
        }
        let ended = |n: i64| sample(n).ended;
        let ids = |v: Vec<Cdr>| v.into_iter().map(|c| c.call_id).collect::<Vec<_>>();
        let got = store
            .list(&CdrFilter {
                since: Some(ended(3)),
                until: Some(ended(6)),
                limit: None,
                tenant: None,
            })
            .unwrap();
        assert_eq!(ids(got), ["call-3@sbc", "call-4@sbc", "call-5@sbc"]);
        let got = store
            .list(&CdrFilter {
                since: Some(ended(8)),
                limit: Some(1),
                ..CdrFilter::default()
            })
            .unwrap();
        assert_eq!(ids(got), ["call-8@sbc"]);
        let got = store
            .list(&CdrFilter {
                limit: Some(usize::MAX),
                ..CdrFilter::default()
            })
            .unwrap();
        assert_eq!(got.len(), 10);
    }

    #[test]
    fn export_writes_every_page_as_csv() {
        on_both_backends(export_writes_every_page_as_csv_on);
    }

    fn export_writes_every_page_as_csv_on(store: &CdrStore) {
        let total = EXPORT_PAGE as i64 * 2 + 7;
        // From four threads, so commits carry several records (the order read back is
        // the end times').
        std::thread::scope(|s| {
            for t in 0..4 {
                s.spawn(move || {
                    for n in (t..total).step_by(4) {
                        store.record(&sample(n)).unwrap();
                    }
                });
            }
        });
        let mut out = Vec::new();
        let n = store.export_csv(&CdrFilter::default(), &mut out).unwrap();
        assert_eq!(n as i64, total);
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len() as i64, total + 1);
        assert_eq!(lines[0], CSV_COLUMNS.join(","));
        assert_eq!(
            lines[1],
            "call-0@sbc,microsoft-pstn,+14255551234,+18885550100,contoso,contoso-bridge,\
             123456789,participant,1970-01-01T00:16:40.000Z,1970-01-01T00:16:40.100Z,\
             1970-01-01T00:16:40.900Z,1970-01-01T00:33:20.000Z,caller,200,toll-free,\
             Microsoft,inbound,credits,1020,0.51,USD"
        );
        assert!(
            lines
                .last()
                .unwrap()
                .starts_with(&format!("call-{}@sbc,", total - 1))
        );
        let mut out = Vec::new();
        let limited = CdrFilter {
            limit: Some(EXPORT_PAGE + 1),
            ..CdrFilter::default()
        };
        assert_eq!(
            store.export_csv(&limited, &mut out).unwrap(),
            EXPORT_PAGE + 1
        );
    }

    #[test]
    fn a_status_that_is_no_sip_status_is_refused_alone() {
        on_both_backends(a_status_that_is_no_sip_status_is_refused_alone_on);
    }

    fn a_status_that_is_no_sip_status_is_refused_alone_on(store: &CdrStore) {
        let mut bad = sample(1);
        bad.sip_status = 99;
        assert!(matches!(
            store.record(&bad),
            Err(CdrError::InvalidStatus(99))
        ));
        bad.sip_status = 700;
        assert!(matches!(
            store.record(&bad),
            Err(CdrError::InvalidStatus(700))
        ));
        store.record(&sample(2)).unwrap();
        assert_eq!(store.list(&CdrFilter::default()).unwrap(), vec![sample(2)]);
    }

    #[test]
    fn long_peer_values_are_cut_not_refused() {
        on_both_backends(long_peer_values_are_cut_not_refused_on);
    }

    fn long_peer_values_are_cut_not_refused_on(store: &CdrStore) {
        let mut c = sample(1);
        c.call_id = "é".repeat(MAX_CALL_ID);
        c.calling = "x".repeat(10_000);
        store.record(&c).unwrap();
        let got = store.list(&CdrFilter::default()).unwrap();
        assert_eq!(got[0].call_id.len(), MAX_CALL_ID);
        assert_eq!(got[0].calling.len(), MAX_CALLING);
    }

    #[test]
    fn json_shows_times_as_rfc3339() {
        let json = serde_json::to_value(sample(0)).unwrap();
        assert_eq!(json["arrived"], "1970-01-01T00:16:40.000Z");
        assert_eq!(json["dialled"], "+18885550100");
        assert_eq!(json["role"], "participant");
        assert_eq!(json["charge"], "toll-free");
        assert_eq!(json["provider"], "Microsoft");
        assert_eq!(json["direction"], "inbound");
        assert_eq!(
            json["billing"],
            serde_json::json!({"funding": "credits", "seconds": 1020, "cost": "0.51", "currency": "USD"})
        );
        let mut c = sample(0);
        c.answered = None;
        c.role = None;
        c.billing = None;
        let json = serde_json::to_value(c).unwrap();
        assert!(json["answered"].is_null() && json["role"].is_null());
        assert!(json["billing"].is_null());
    }
}
