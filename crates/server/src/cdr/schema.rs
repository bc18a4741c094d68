//! Opening the CDR database: durability settings and the schema, versioned with
//! `PRAGMA user_version` and migrated forward on open.

use std::time::Duration;

use rusqlite::Connection;

use super::CdrError;

/// The schema version this build writes.
pub(super) const SCHEMA_VERSION: i64 = 1;

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
];

/// How long a statement waits for another process holding the file's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Opens `path` (or `:memory:`), sets it up and brings the schema up to date.
pub(super) fn open(path: &str) -> Result<Connection, CdrError> {
    let conn = if path == ":memory:" {
        Connection::open_in_memory()?
    } else {
        let conn = Connection::open(path)?;
        // WAL: a commit is one append to the log, and readers (exports) do not block
        // the writer.
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(%mode, "CDR database is not in WAL mode");
        }
        // FULL, not NORMAL: records are billing data, so each commit syncs the log and
        // survives a power cut, not only a crash of the process.
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn
    };
    conn.busy_timeout(BUSY_TIMEOUT)?;
    migrate(&conn)?;
    Ok(conn)
}

fn migrate(conn: &Connection) -> Result<(), CdrError> {
    let found: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if found > SCHEMA_VERSION {
        return Err(CdrError::SchemaTooNew {
            found,
            known: SCHEMA_VERSION,
        });
    }
    // `found` is 0..=SCHEMA_VERSION here, so the skip is in range.
    let pending = MIGRATIONS.iter().skip(usize::try_from(found).unwrap_or(0));
    for (step, sql) in (found + 1..).zip(pending) {
        // One transaction per step, the version bump included, so a crash leaves the
        // file at a version it really has.
        conn.execute_batch(&format!(
            "BEGIN IMMEDIATE; {sql} PRAGMA user_version = {step}; COMMIT;"
        ))?;
        tracing::info!(version = step, "CDR schema migrated");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
