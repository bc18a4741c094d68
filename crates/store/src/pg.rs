//! dialbridge's PostgreSQL databases (`[shared] postgres`), for the stores several nodes
//! share: one connection's settings (timeouts, so a stalled server fails an operation
//! instead of hanging a node) and versioned migrations. Every store keeps its version in
//! one `schema_version` row of its own, so all of them may share one database; nodes that
//! start at once migrate one after another under an advisory lock.
//!
//! The client is the synchronous `postgres` crate, which blocks on a runtime of its own:
//! call it from a thread of the store's own or a blocking pool, never from a task.

use std::time::Duration;

use postgres::{Client, NoTls};

use crate::StoreError;

/// Longest a statement, or a wait for a row lock, may take before it fails.
pub const STATEMENT_TIMEOUT: Duration = Duration::from_secs(5);
/// The lock every store's migrations take (any constant shared by all builds).
const MIGRATION_LOCK: i64 = 0x6469_616c_6c65_6467; // "dialledg"

/// One store's schema in PostgreSQL.
#[derive(Debug, Clone, Copy)]
pub struct PgSchema<'a> {
    /// Its name in `schema_version` and in log lines ("ledger", "directory").
    pub name: &'static str,
    /// Migration `n` takes the store from version n to n+1.
    pub migrations: &'a [&'a str],
}

/// A `postgres://` URL's settings with the timeouts every store uses.
pub fn config(url: &str) -> Result<postgres::Config, StoreError> {
    let mut config: postgres::Config = url.parse()?;
    config
        .connect_timeout(Duration::from_secs(5))
        .keepalives_idle(Duration::from_secs(30))
        .tcp_user_timeout(Duration::from_secs(10));
    Ok(config)
}

/// A connection with the statement and lock timeouts set. No TLS: the databases are
/// reached over loopback or a private network (a TLS connector is a later addition).
pub fn connect(config: &postgres::Config) -> Result<Client, StoreError> {
    let mut client = config.connect(NoTls)?;
    let ms = STATEMENT_TIMEOUT.as_millis();
    client.batch_execute(&format!(
        "SET statement_timeout = {ms}; SET lock_timeout = {ms}"
    ))?;
    Ok(client)
}

/// `user@host:port/db` of a `postgres://` URL, without its password (for logs).
pub fn target(url: &str) -> String {
    let Ok(config) = url.parse::<postgres::Config>() else {
        return "(not a postgres:// URL)".to_string();
    };
    let host = match config.get_hosts().first() {
        Some(postgres::config::Host::Tcp(host)) => host.clone(),
        Some(postgres::config::Host::Unix(path)) => path.display().to_string(),
        None => "localhost".to_string(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!(
        "{}@{host}:{port}/{}",
        config.get_user().unwrap_or(""),
        config.get_dbname().unwrap_or("")
    )
}

/// Brings `schema` up to date, one transaction per step under the lock nodes opening at
/// once share, refusing a database newer than this build.
pub fn migrate(client: &mut Client, schema: &PgSchema) -> Result<(), StoreError> {
    let known = i64::try_from(schema.migrations.len()).unwrap_or(i64::MAX);
    for (step, sql) in (1..).zip(schema.migrations) {
        let mut tx = client.transaction()?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_version (
                 name    TEXT PRIMARY KEY,
                 version BIGINT NOT NULL
             )",
        )?;
        let found: i64 = tx
            .query_opt(
                "SELECT version FROM schema_version WHERE name = $1",
                &[&schema.name],
            )?
            .map_or(0, |r| r.get(0));
        if found > known {
            return Err(StoreError::SchemaTooNew { found, known });
        }
        if found >= step {
            continue; // the transaction rolls back: it changed nothing
        }
        tx.batch_execute(sql)?;
        tx.execute(
            "INSERT INTO schema_version (name, version) VALUES ($1, $2)
             ON CONFLICT (name) DO UPDATE SET version = $2",
            &[&schema.name, &step],
        )?;
        tx.commit()?;
        tracing::info!(
            version = step,
            "{} schema migrated (PostgreSQL)",
            schema.name
        );
    }
    Ok(())
}

/// Closes `client` on a thread of its own and waits: the last handle of a store may be
/// dropped on a thread that drives tokio tasks, where the client could not run its
/// runtime to say goodbye (it would panic). Should no thread start, it drops here.
pub fn close(client: Client) {
    let closing = std::thread::Builder::new()
        .name("postgres-close".into())
        .spawn(move || drop(client));
    if let Ok(closing) = closing {
        let _ = closing.join();
    }
}
