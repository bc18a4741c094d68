//! The directory in PostgreSQL (`[shared] postgres`), for bridge nodes that share
//! their organisers and the guessing guard's counters: an organiser an admin adds
//! through one node is found by a call to any other, and a lock-out one node records
//! is restored by the others when they start.
//!
//! - **The same rules.** The tables are SQLite's column for column (BOOLEAN where
//!   SQLite keeps 0/1, BIGINT times), with the same keys, UNIQUE constraint and
//!   CHECKs, in a schema of their own (`directory`) so they cannot meet another
//!   store's tables in a database the stores share. Versioned with the other stores
//!   through `dialbridge_store::pg::migrate`.
//! - **Writers take turns.** Every write transaction first takes one
//!   transaction-scoped advisory lock, as SQLite's `BEGIN IMMEDIATE` makes writers
//!   take turns: a check ("is this conference ID another organiser's?") and the write
//!   it allows are never split by another node's write, and a bulk import stays all or
//!   nothing. Directory writes are admin actions and the guard's counters, so one
//!   writer at a time costs nothing that matters.
//! - **Outages.** One connection per process, as with SQLite, behind a mutex. An
//!   operation during an outage fails (a lookup then answers "directory unavailable");
//!   a connection found dead is dropped, and the next operation connects again. A read
//!   that finds the connection it had dead (a restarted server) tries once more on a
//!   fresh one; a write checks a connection it did not just make before it begins.
//! - **Threads.** The sync client blocks on a runtime of its own, which cannot run on
//!   a thread that drives tokio tasks: callers use the directory from their own or a
//!   blocking pool's threads (as they already do for Argon2), and the last handle,
//!   wherever it is dropped, closes the connection on a thread of its own.

use std::sync::Mutex;

use dialbridge_store::pg::{self, PgSchema};
use postgres::Client;

use super::DirectoryError;
use super::schema::{from_store, guard_counters_ddl, organisers_ddl};
use super::store::{Db, lock};

/// The directory's schema in PostgreSQL.
const SCHEMA: PgSchema<'static> = PgSchema {
    name: "directory",
    migrations: MIGRATIONS,
};

/// Migration `n` takes the database from version n to n+1. Version 1 is the SQLite
/// file's version 3 (see schema.rs for what the columns mean).
const MIGRATIONS: &[&str] = &[concat!(
    "CREATE SCHEMA directory;\n",
    organisers_ddl!(
        "directory.",
        "BOOLEAN NOT NULL",
        "\n        join_leave_tones BOOLEAN,",
        ""
    ),
    "\n",
    guard_counters_ddl!("directory.", "BIGINT", ""),
)];

/// Where the directory's statements find its tables by their bare names.
const SEARCH_PATH: &str = "SET search_path = directory";

/// The advisory lock every directory write transaction takes ("dialdire").
const WRITE_LOCK: i64 = 0x6469_616c_6469_7265;

/// The directory's PostgreSQL connection.
pub(super) struct PgStore {
    state: Mutex<PgState>,
}

struct PgState {
    config: postgres::Config,
    /// `None` after a connection was found dead, until the next operation.
    client: Option<Client>,
}

impl PgStore {
    /// Connects to `url`, brings the schema up to date (refusing a newer one).
    pub(super) fn open(url: &str) -> Result<PgStore, DirectoryError> {
        let config = pg::config(url).map_err(from_store)?;
        // Migrated on the default search path: `schema_version` is shared by the stores.
        let mut client = pg::connect(&config).map_err(from_store)?;
        pg::migrate(&mut client, &SCHEMA).map_err(from_store)?;
        client.batch_execute(SEARCH_PATH)?;
        Ok(PgStore {
            state: Mutex::new(PgState {
                config,
                client: Some(client),
            }),
        })
    }

    /// See [`super::store::Store::read`].
    pub(super) fn read<T>(
        &self,
        mut f: impl FnMut(&mut Db<'_, '_>) -> Result<T, DirectoryError>,
    ) -> Result<T, DirectoryError> {
        let mut state = lock(&self.state)?;
        let mut may_retry = state.client.is_some();
        loop {
            let client = state.client()?;
            let result = f(&mut Db::Postgres(client));
            match result {
                Err(e) if connection_lost(&e) => {
                    state.client = None;
                    if !std::mem::take(&mut may_retry) {
                        return Err(e);
                    }
                    tracing::info!(error = %e, "directory database: connection lost, reconnecting");
                }
                other => return other,
            }
        }
    }

    /// See [`super::store::Store::write`].
    pub(super) fn write<T>(
        &self,
        f: impl FnOnce(&mut Db<'_, '_>) -> Result<T, DirectoryError>,
    ) -> Result<T, DirectoryError> {
        let mut state = lock(&self.state)?;
        // A write is not tried twice (its commit's answer may be what was lost), so it
        // begins only on a connection known to be alive. Writes are rare: the round
        // trip is cheap.
        if let Some(client) = &mut state.client
            && client.is_valid(pg::STATEMENT_TIMEOUT).is_err()
        {
            tracing::info!("directory database: connection lost, reconnecting");
            state.client = None;
        }
        let result = (|| {
            let mut tx = state.client()?.transaction()?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&WRITE_LOCK])?;
            let out = f(&mut Db::Postgres(&mut tx))?;
            tx.commit()?;
            Ok(out)
        })();
        if let Err(e) = &result
            && connection_lost(e)
        {
            state.client = None;
        }
        result
    }
}

impl PgState {
    /// The connection, connecting again if the last one was found dead.
    fn client(&mut self) -> Result<&mut Client, DirectoryError> {
        match &mut self.client {
            Some(client) if !client.is_closed() => {}
            _ => {
                self.client = None;
                self.client = Some(connect(&self.config)?);
            }
        }
        self.client
            .as_mut()
            .ok_or(DirectoryError::Database("no connection".into()))
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        let state = self
            .state
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(client) = state.client.take() else {
            return;
        };
        pg::close(client);
    }
}

/// A connection with the stores' timeouts, its statements finding the directory's
/// tables by their bare names (as SQLite's, so both run the same text).
fn connect(config: &postgres::Config) -> Result<Client, DirectoryError> {
    let mut client = pg::connect(config).map_err(from_store)?;
    client.batch_execute(SEARCH_PATH)?;
    Ok(client)
}

/// Whether `e` says the connection is gone (rather than that a statement failed on a
/// live one): an I/O or protocol failure, or a connection or shutdown error.
fn connection_lost(e: &DirectoryError) -> bool {
    let DirectoryError::Postgres(e) = e else {
        return false;
    };
    e.is_closed()
        || e.as_db_error().is_none_or(|db| {
            let code = db.code().code();
            code.starts_with("08") || code.starts_with("57P")
        })
}

#[cfg(test)]
mod tests {
    use dialbridge_testkit::servers::PostgresDb;

    use super::*;
    use crate::directory::Directory;

    #[test]
    fn the_schema_is_versioned_keeps_its_rules_and_a_newer_one_is_refused() {
        let db = PostgresDb::create();
        let first = Directory::open_postgres(db.url()).unwrap();
        // A second node opening the same database migrates nothing.
        let _second = Directory::open_postgres(db.url()).unwrap();
        let mut client = postgres::Client::connect(db.url(), postgres::NoTls).unwrap();
        let version: i64 = client
            .query_one(
                "SELECT version FROM schema_version WHERE name = 'directory'",
                &[],
            )
            .unwrap()
            .get(0);
        assert_eq!(version, 1);
        let insert = |client: &mut Client, pin: &str| {
            client.execute(
                "INSERT INTO directory.organisers (tenant, organiser, display_name,
                     toll_number, conference_id, pin_hash, wait_for_leader)
                 VALUES ('t', $1, '', '+1', '123456', $1, false)",
                &[&pin],
            )
        };
        assert!(insert(&mut client, "13579").is_err());
        assert!(insert(&mut client, "$argon2id$v=19$m=16384,t=2,p=1$c2FsdA$aGFzaA").is_ok());
        drop(first);

        client
            .execute(
                "UPDATE schema_version SET version = 2 WHERE name = 'directory'",
                &[],
            )
            .unwrap();
        assert!(matches!(
            Directory::open_postgres(db.url()),
            Err(DirectoryError::SchemaTooNew { found: 2, known: 1 })
        ));
    }
}
