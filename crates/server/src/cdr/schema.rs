//! Opening the CDR database: durability settings and the schema, versioned with
//! `PRAGMA user_version` and migrated forward on open (in PostgreSQL, versioned as
//! "cdr" in the shared `schema_version` table). Besides the call records it keeps
//! what else of the bridge's own must outlive a restart: its secrets (the digest nonce
//! key), the administrators' edits of the number plan and the admin API's tokens.

use dialbridge_store::pg::PgSchema;
use dialbridge_store::{Durability, Schema, StoreError};
use rusqlite::Connection;

use super::CdrError;
use super::backend::PgConnection;

/// The schema version this build writes.
pub(super) const SCHEMA_VERSION: i64 = 5;

/// Migration `n` takes a database from `user_version` n to n+1.
const MIGRATIONS: &[&str] = &[
    // 0 -> 1: one row per call. Times are milliseconds since 1970 UTC. `seq` orders
    // records that ended in the same millisecond; the index serves `since`/`until`.
    "CREATE TABLE cdrs (
        seq           INTEGER PRIMARY KEY,
        call_id       TEXT    NOT NULL,
        trunk         TEXT    NOT NULL,
        calling       TEXT    NOT NULL,
        dialled       TEXT    NOT NULL,
        tenant        TEXT    NOT NULL,
        bridge        TEXT    NOT NULL,
        conference_id TEXT,
        role          TEXT    CHECK (role IN ('leader', 'participant')),
        arrived_ms    INTEGER NOT NULL,
        answered_ms   INTEGER,
        joined_ms     INTEGER,
        ended_ms      INTEGER NOT NULL,
        ended_by      TEXT    NOT NULL,
        sip_status    INTEGER NOT NULL CHECK (sip_status BETWEEN 100 AND 699),
        charge        TEXT    NOT NULL CHECK (charge IN ('toll', 'toll-free'))
    ) STRICT;
    CREATE INDEX cdrs_by_end ON cdrs (ended_ms, seq);",
    // 1 -> 2: secrets generated once and kept across restarts (the digest nonce key when
    // the configuration gives none). This is the one durable file the server owns, so a
    // restart keeps them without one more path to configure.
    "CREATE TABLE node_secrets (
        name  TEXT PRIMARY KEY,
        value BLOB NOT NULL
    ) STRICT;",
    // 2 -> 3: the number plan as administrators changed it through the API, re-applied
    // over the configuration file at each start and reload. `seq` keeps the order the
    // edits were last made in; one row per kind and target.
    "CREATE TABLE plan_edits (
        seq      INTEGER PRIMARY KEY AUTOINCREMENT,
        kind     TEXT    NOT NULL,
        target   TEXT    NOT NULL,
        value    TEXT,
        made_ms  INTEGER NOT NULL,
        UNIQUE (kind, target)
    ) STRICT;",
    // 3 -> 4: the admin API's tokens. Only the SHA-256 of each is kept: a token is 256
    // random bits, so a fast hash is as good as a slow one and lets a request be looked
    // up by it. Revoked rows stay, so the list says what was revoked and when it was made.
    "CREATE TABLE api_tokens (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        name        TEXT    NOT NULL,
        role        TEXT    NOT NULL
                    CHECK (role IN ('admin', 'operator', 'tenant-admin', 'read-only')),
        scope       TEXT,
        hash        BLOB    NOT NULL UNIQUE CHECK (length(hash) = 32),
        created_ms  INTEGER NOT NULL,
        revoked     INTEGER NOT NULL DEFAULT 0 CHECK (revoked IN (0, 1))
    ) STRICT;",
    // 4 -> 5: money and who carried the call. `provider` is the number's (and its trunk's)
    // provider, `direction` inbound or outbound (a dial-out). A billed call's funding
    // source (`credits`, `pool +1`...), the seconds paid for, and what they cost from the
    // credits in ten-thousandths of `currency`; all four NULL for a call nobody billed.
    // Older rows read as inbound calls of an unknown provider, unbilled.
    "ALTER TABLE cdrs ADD COLUMN provider TEXT;
    ALTER TABLE cdrs ADD COLUMN direction TEXT NOT NULL DEFAULT 'inbound'
        CHECK (direction IN ('inbound', 'outbound'));
    ALTER TABLE cdrs ADD COLUMN funding TEXT;
    ALTER TABLE cdrs ADD COLUMN billed_s INTEGER CHECK (billed_s >= 0);
    ALTER TABLE cdrs ADD COLUMN cost INTEGER;
    ALTER TABLE cdrs ADD COLUMN currency TEXT;",
];

/// The CDR schema: FULL durability, because records are billing data and must
/// survive a power cut, not only a crash of the process.
const SCHEMA: Schema<'static> = Schema {
    name: "CDR",
    migrations: MIGRATIONS,
    durability: Durability::Full,
};

const _: () = assert!(MIGRATIONS.len() as i64 == SCHEMA_VERSION);

/// The PostgreSQL schema of the CDR store (see `backend.rs`): its tables, apart from
/// the other stores' in a database they share.
pub(super) const PG_NAMESPACE: &str = "cdr";

/// The migrations in PostgreSQL: SQLite's, step for step (so both backends carry the
/// same version numbers), in PostgreSQL's types. Integers become BIGINT (what both
/// backends bind), rowids identity columns (so rows that several nodes insert at once
/// never collide), BLOB BYTEA; `STRICT` is PostgreSQL's way anyway. Each step creates
/// its tables in [`PG_NAMESPACE`] and still finds the shared `schema_version` table
/// after it in the search path. Migrations keep to SQL both dialects take (`ALTER TABLE
/// ... ADD COLUMN` with a default and a CHECK does), and a test holds every step free
/// of what only SQLite knows.
fn pg_migrations() -> Vec<String> {
    MIGRATIONS
        .iter()
        .map(|sql| {
            let sql = sql
                .replace(
                    "INTEGER PRIMARY KEY AUTOINCREMENT",
                    "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
                )
                .replace(
                    "INTEGER PRIMARY KEY",
                    "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
                )
                .replace("INTEGER", "BIGINT")
                .replace("BLOB", "BYTEA")
                .replace(") STRICT;", ");");
            format!(
                "CREATE SCHEMA IF NOT EXISTS {PG_NAMESPACE};
                 SET LOCAL search_path TO {PG_NAMESPACE}, public;
                 {sql}"
            )
        })
        .collect()
}

/// Opens `path` (or `:memory:`), sets it up and brings the schema up to date.
pub(super) fn open(path: &str) -> Result<Connection, CdrError> {
    dialbridge_store::open(path, &SCHEMA).map_err(from_store)
}

/// Connects to the PostgreSQL database at `url` and brings its schema up to date.
pub(super) fn open_postgres(url: &str) -> Result<PgConnection, CdrError> {
    let migrations = pg_migrations();
    let migrations: Vec<&str> = migrations.iter().map(String::as_str).collect();
    let schema = PgSchema {
        name: "cdr",
        migrations: &migrations,
    };
    PgConnection::open(url, &schema, PG_NAMESPACE)
}

pub(super) fn from_store(e: StoreError) -> CdrError {
    match e {
        StoreError::Sqlite(e) => CdrError::Sqlite(e),
        StoreError::Postgres(e) => CdrError::Postgres(e),
        StoreError::SchemaTooNew { found, known } => CdrError::SchemaTooNew { found, known },
        other => CdrError::Database(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn migrate(conn: &Connection) -> Result<(), CdrError> {
        dialbridge_store::migrate(conn, &SCHEMA).map_err(from_store)
    }

    #[test]
    fn a_new_database_gets_the_current_version() {
        let conn = open(":memory:").unwrap();
        let v: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v, SCHEMA_VERSION);
        // Opening again is a no-op.
        migrate(&conn).unwrap();
    }

    #[test]
    fn a_newer_database_is_refused() {
        let conn = open(":memory:").unwrap();
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        assert!(matches!(
            migrate(&conn),
            Err(CdrError::SchemaTooNew { found, .. }) if found == SCHEMA_VERSION + 1
        ));
    }

    #[test]
    fn the_postgres_migrations_keep_nothing_only_sqlite_knows() {
        let migrations = pg_migrations();
        assert_eq!(migrations.len(), MIGRATIONS.len());
        for sql in migrations {
            for sqlite in ["INTEGER", "BLOB", "STRICT", "AUTOINCREMENT", "PRAGMA"] {
                assert!(!sql.contains(sqlite), "{sqlite} in {sql}");
            }
        }
    }

    #[test]
    fn a_newer_postgres_schema_is_refused() {
        let db = dialbridge_testkit::servers::PostgresDb::create();
        drop(super::super::tests::open_postgres(db.url()));
        // `schema_version` is every store's, outside the CDR schema.
        let mut client = postgres::Client::connect(db.url(), postgres::NoTls).unwrap();
        let bumped = client
            .execute(
                "UPDATE public.schema_version SET version = version + 1 WHERE name = 'cdr'",
                &[],
            )
            .unwrap();
        assert_eq!(bumped, 1);
        assert!(matches!(
            super::super::CdrStore::open_postgres(db.url()),
            Err(CdrError::SchemaTooNew { found, known })
                if found == SCHEMA_VERSION + 1 && known == SCHEMA_VERSION
        ));
    }
}
