//! Opening the SQLite file: connection settings and the schema, versioned with
//! `PRAGMA user_version` and migrated forward on open.

use dialbridge_store::{Durability, Schema, StoreError};
use rusqlite::Connection;

use super::DirectoryError;

/// The schema version this build writes.
pub(super) const SCHEMA_VERSION: i64 = 3;

/// `organisers` in either backend's SQL, so both hold the same rules: `$schema` what
/// precedes the table's name, `$wait` the type of `wait_for_leader` (SQLite keeps
/// booleans as 0/1 under a CHECK), `$more` columns a later SQLite migration adds,
/// `$strict` what follows the table's definition.
macro_rules! organisers_ddl {
    ($schema:literal, $wait:literal, $more:literal, $strict:literal) => {
        concat!(
            "CREATE TABLE ",
            $schema,
            "organisers (
        tenant           TEXT    NOT NULL,
        organiser        TEXT    NOT NULL,
        display_name     TEXT    NOT NULL,
        toll_number      TEXT    NOT NULL,
        toll_free_number TEXT,
        conference_id    TEXT    NOT NULL,
        pin_hash         TEXT    NOT NULL CHECK (substr(pin_hash, 1, 7) = '$argon2'),
        wait_for_leader  ",
            $wait,
            ",
        provider         TEXT    NOT NULL DEFAULT 'dialbridge',",
            $more,
            "
        PRIMARY KEY (tenant, organiser),
        UNIQUE (tenant, conference_id)
    )",
            $strict,
            ";"
        )
    };
}
pub(super) use organisers_ddl;

/// `guard_counters` in either backend's SQL: `$schema` what precedes the table's name,
/// `$int` a 64-bit integer's type, `$strict` what follows the table's definition.
macro_rules! guard_counters_ddl {
    ($schema:literal, $int:literal, $strict:literal) => {
        concat!(
            "CREATE TABLE ",
            $schema,
            "guard_counters (
        scope            TEXT    NOT NULL CHECK (scope IN ('caller', 'conference')),
        key              TEXT    NOT NULL,
        failures         ",
            $int,
            " NOT NULL CHECK (failures >= 0),
        window_start_ms  ",
            $int,
            " NOT NULL,
        blocked_until_ms ",
            $int,
            ",
        PRIMARY KEY (scope, key)
    )",
            $strict,
            ";"
        )
    };
}
pub(super) use guard_counters_ddl;

/// Migration `n` takes a database from `user_version` n to n+1.
const MIGRATIONS: &[&str] = &[
    // 0 -> 1: organisers. `(tenant, conference_id)` is unique because a conference ID
    // is looked up only within a tenant; `pin_hash` can only hold a PHC Argon2 string.
    organisers_ddl!(
        "",
        "INTEGER NOT NULL CHECK (wait_for_leader IN (0, 1))",
        "",
        " STRICT"
    ),
    // 1 -> 2: per-conference join and leave tones; NULL (every existing row) means
    // the bridge's default (`[conference] join_leave_tones`).
    "ALTER TABLE organisers ADD COLUMN join_leave_tones INTEGER
        CHECK (join_leave_tones IN (0, 1));",
    // 2 -> 3: the guessing guard's counters, so a restart does not forgive a guesser.
    // Times are milliseconds since the Unix epoch.
    guard_counters_ddl!("", "INTEGER", " STRICT"),
];

/// The directory's schema: NORMAL durability, because an admin can import again
/// whatever a power cut loses.
const SCHEMA: Schema<'static> = Schema {
    name: "directory",
    migrations: MIGRATIONS,
    durability: Durability::Normal,
};

const _: () = assert!(MIGRATIONS.len() as i64 == SCHEMA_VERSION);

/// Opens `path` (or `:memory:`), sets it up and brings the schema up to date.
pub(super) fn open(path: &str) -> Result<Connection, DirectoryError> {
    dialbridge_store::open(path, &SCHEMA).map_err(from_store)
}

/// A store error as the directory's.
pub(super) fn from_store(e: StoreError) -> DirectoryError {
    match e {
        StoreError::Sqlite(e) => DirectoryError::Sqlite(e),
        StoreError::Postgres(e) => DirectoryError::Postgres(e),
        StoreError::SchemaTooNew { found, known } => DirectoryError::SchemaTooNew { found, known },
        other => DirectoryError::Database(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn migrate(conn: &Connection) -> Result<(), DirectoryError> {
        dialbridge_store::migrate(conn, &SCHEMA).map_err(from_store)
    }

    #[test]
    fn fresh_database_gets_the_current_version() {
        let conn = open(":memory:").unwrap();
        let v: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v, SCHEMA_VERSION);
        assert_eq!(MIGRATIONS.len(), usize::try_from(SCHEMA_VERSION).unwrap());
        // Opening again is a no-op.
        migrate(&conn).unwrap();
    }

    #[test]
    fn newer_schema_is_refused() {
        let conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        assert!(matches!(
            migrate(&conn),
            Err(DirectoryError::SchemaTooNew { found: 4, known: 3 })
        ));
    }

    #[test]
    fn a_version_1_file_keeps_its_organisers_and_gets_default_tones() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(MIGRATIONS[0]).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        conn.execute(
            "INSERT INTO organisers (tenant, organiser, display_name, toll_number,
                 conference_id, pin_hash, wait_for_leader)
             VALUES ('t', 'o', '', '+1', '123456', '$argon2id$x', 0)",
            [],
        )
        .unwrap();
        migrate(&conn).unwrap();
        let tones: Option<bool> = conn
            .query_row("SELECT join_leave_tones FROM organisers", [], |r| r.get(0))
            .unwrap();
        assert_eq!(tones, None);
        let set = |v: i64| conn.execute("UPDATE organisers SET join_leave_tones = ?1", [v]);
        assert!(set(0).is_ok() && set(1).is_ok());
        assert!(set(2).is_err(), "only 0, 1 or NULL");
    }

    #[test]
    fn pin_column_refuses_anything_but_a_phc_hash() {
        let conn = open(":memory:").unwrap();
        let insert = |pin: &str| {
            conn.execute(
                "INSERT INTO organisers (tenant, organiser, display_name, toll_number,
                     conference_id, pin_hash, wait_for_leader)
                 VALUES ('t', ?1, '', '+1', '123456', ?2, 0)",
                (pin, pin),
            )
        };
        assert!(insert("13579").is_err());
        assert!(insert("$argon2id$v=19$m=16384,t=2,p=1$c2FsdA$aGFzaA").is_ok());
    }
}
