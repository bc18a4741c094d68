//! dialbridge's SQLite files (the organiser directory, the CDRs): opening one with
//! the connection settings every store shares, and its schema, versioned with
//! `PRAGMA user_version` and migrated forward on open. With the `postgres` feature,
//! `pg` does the same for the PostgreSQL databases nodes share.
//!
//! Each store keeps its own [`Schema`] (its migrations and how durable a commit must
//! be) and maps [`StoreError`] into its own error type.

#[cfg(feature = "postgres")]
pub mod pg;

use std::time::Duration;

use rusqlite::Connection;

/// How long a statement waits for another process holding the file's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How durable a commit is: the `synchronous` pragma, in WAL mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// `NORMAL`: durable across application crashes in WAL mode; only a power cut may
    /// lose the last commits. For data that can be written again (an admin can
    /// import the directory again).
    Normal,
    /// `FULL`: each commit syncs the log and survives a power cut, not only a crash of
    /// the process. For data that cannot be recreated (billing records).
    Full,
}

impl Durability {
    /// The value of the `synchronous` pragma.
    fn pragma(self) -> &'static str {
        match self {
            Self::Normal => "NORMAL",
            Self::Full => "FULL",
        }
    }
}

/// One store's schema and settings.
#[derive(Debug, Clone, Copy)]
pub struct Schema<'a> {
    /// What the store is called in log lines ("directory", "CDR").
    pub name: &'static str,
    /// Migration `n` takes a database from `user_version` n to n+1, so the schema
    /// version this build writes is `migrations.len()`.
    pub migrations: &'a [&'a str],
    /// The `synchronous` pragma for files (not used for `:memory:`).
    pub durability: Durability,
}

impl Schema<'_> {
    /// The schema version this build writes.
    pub fn version(&self) -> i64 {
        i64::try_from(self.migrations.len()).unwrap_or(i64::MAX)
    }
}

/// What can go wrong opening a store. Non-exhaustive: the PostgreSQL variant exists
/// only with the `postgres` feature, which another crate of the build may turn on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database failed.
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The PostgreSQL database failed (or could not be reached).
    #[cfg(feature = "postgres")]
    #[error("PostgreSQL: {0}")]
    Postgres(#[from] postgres::Error),
    /// The file was written by a newer dialbridge than this one.
    #[error("schema version {found} is newer than this build knows ({known})")]
    SchemaTooNew {
        /// `PRAGMA user_version` of the file.
        found: i64,
        /// The newest version this build knows.
        known: i64,
    },
}

/// Opens `path` (or `:memory:`), sets it up and brings the schema up to date.
pub fn open(path: &str, schema: &Schema) -> Result<Connection, StoreError> {
    let conn = if path == ":memory:" {
        Connection::open_in_memory()?
    } else {
        let conn = Connection::open(path)?;
        // WAL: a commit is one append to the log, and readers on other connections
        // (lookups, exports) are not blocked while one writes.
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(%mode, "{} database is not in WAL mode", schema.name);
        }
        conn.pragma_update(None, "synchronous", schema.durability.pragma())?;
        conn
    };
    conn.busy_timeout(BUSY_TIMEOUT)?;
    migrate(&conn, schema)?;
    Ok(conn)
}

/// Brings the schema of `conn` up to date, refusing a file newer than `schema`.
pub fn migrate(conn: &Connection, schema: &Schema) -> Result<(), StoreError> {
    let known = schema.version();
    let found: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if found > known {
        return Err(StoreError::SchemaTooNew { found, known });
    }
    // `found` is 0..=known here, so the skip is in range.
    let pending = schema
        .migrations
        .iter()
        .skip(usize::try_from(found).unwrap_or(0));
    for (step, sql) in (found + 1..).zip(pending) {
        // One transaction per step, the version bump included, so a crash leaves the
        // file at a version it really has.
        conn.execute_batch(&format!(
            "BEGIN IMMEDIATE; {sql} PRAGMA user_version = {step}; COMMIT;"
        ))?;
        tracing::info!(version = step, "{} schema migrated", schema.name);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO: Schema<'static> = Schema {
        name: "test",
        migrations: &[
            "CREATE TABLE t (a INTEGER NOT NULL) STRICT;",
            "ALTER TABLE t ADD COLUMN b TEXT;",
        ],
        durability: Durability::Full,
    };

    fn version(conn: &Connection) -> i64 {
        conn.pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap()
    }

    /// A fresh file under the system temp dir, removed (with its WAL) on drop.
    struct TempDb(std::path::PathBuf);

    impl TempDb {
        fn new(tag: &str) -> Self {
            let path = std::env::temp_dir().join(format!(
                "dialbridge-store-{tag}-{}.sqlite",
                std::process::id()
            ));
            let db = Self(path);
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

    #[test]
    fn a_fresh_database_gets_the_current_version() {
        let conn = open(":memory:", &TWO).unwrap();
        assert_eq!(TWO.version(), 2);
        assert_eq!(version(&conn), 2);
        conn.execute("INSERT INTO t (a, b) VALUES (1, 'x')", [])
            .unwrap();
    }

    #[test]
    fn a_file_is_wal_with_the_schemas_durability_and_reopening_is_a_no_op() {
        let db = TempDb::new("reopen");
        for (durability, synchronous) in [(Durability::Full, 2), (Durability::Normal, 1)] {
            let schema = Schema { durability, ..TWO };
            let conn = open(db.path(), &schema).unwrap();
            assert_eq!(version(&conn), 2);
            let mode: String = conn
                .pragma_query_value(None, "journal_mode", |r| r.get(0))
                .unwrap();
            assert_eq!(mode, "wal");
            let sync: i64 = conn
                .pragma_query_value(None, "synchronous", |r| r.get(0))
                .unwrap();
            assert_eq!(sync, synchronous);
            // A second open runs no migration again: the table (and its row) survive.
            conn.execute("INSERT INTO t (a) VALUES (7)", []).unwrap();
            migrate(&conn, &schema).unwrap();
            assert_eq!(version(&conn), 2);
        }
        let conn = open(db.path(), &TWO).unwrap();
        let rows: i64 = conn
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 2);
    }

    #[test]
    fn an_older_file_is_migrated_forward() {
        let conn = Connection::open_in_memory().unwrap();
        let one = Schema {
            migrations: &TWO.migrations[..1],
            ..TWO
        };
        migrate(&conn, &one).unwrap();
        assert_eq!(version(&conn), 1);
        conn.execute("INSERT INTO t (a) VALUES (1)", []).unwrap();
        migrate(&conn, &TWO).unwrap();
        assert_eq!(version(&conn), 2);
        let b: Option<String> = conn.query_row("SELECT b FROM t", [], |r| r.get(0)).unwrap();
        assert_eq!(b, None);
    }

    #[test]
    fn a_newer_database_is_refused() {
        let conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "user_version", 3).unwrap();
        assert!(matches!(
            migrate(&conn, &TWO),
            Err(StoreError::SchemaTooNew { found: 3, known: 2 })
        ));
        assert_eq!(version(&conn), 3, "left as it was");
    }

    #[test]
    fn a_failed_step_leaves_the_version_and_the_schema_unchanged() {
        let db = TempDb::new("failed-step");
        let broken = Schema {
            migrations: &[
                "CREATE TABLE t (a INTEGER NOT NULL) STRICT;",
                "CREATE TABLE u (x INTEGER); ALTER TABLE missing ADD COLUMN b TEXT;",
            ],
            ..TWO
        };
        assert!(matches!(
            open(db.path(), &broken),
            Err(StoreError::Sqlite(_))
        ));
        let conn = Connection::open(db.path()).unwrap();
        assert_eq!(version(&conn), 1, "step 1 committed, step 2 did not");
        let tables: Vec<String> = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(tables, ["t"], "the half of step 2 that ran was rolled back");
        drop(conn);
        // The fixed build migrates the same file from where it stopped.
        let conn = open(db.path(), &TWO).unwrap();
        assert_eq!(version(&conn), 2);
    }
}
