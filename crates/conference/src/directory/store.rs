//! Where the directory's rows live, behind one small interface so that its rules
//! (validation, PIN hashing, import semantics, the guard's counters) are written once:
//! an embedded SQLite file (the default) or a PostgreSQL database several nodes share
//! (`pg.rs`). Only the execution of a statement differs.
//!
//! Every statement is written once, in SQLite's numbered-parameter form (`?1`, `?2`),
//! which PostgreSQL runs as `$1`, `$2` (see [`numbered`]). Not the other way round:
//! SQLite takes `$1` for a *named* parameter and numbers those by first appearance, so
//! `SET x = $3 WHERE y = $1` would bind the wrong values there.

use std::sync::{Mutex, MutexGuard};

use rusqlite::{Connection, TransactionBehavior};

use super::DirectoryError;
use super::pg::PgStore;

/// The directory's database: one SQLite connection behind a mutex, or PostgreSQL.
pub(super) enum Store {
    /// One connection is enough: every statement is a point lookup or a short write
    /// on a small table, and the slow part (Argon2) runs unlocked.
    Sqlite(Mutex<Connection>),
    Postgres(Box<PgStore>),
}

impl Store {
    /// Runs `f`, which only reads, outside a transaction. With PostgreSQL it may run
    /// twice: again on a fresh connection when the one it had turned out to be dead
    /// (a restarted server).
    pub(super) fn read<T>(
        &self,
        mut f: impl FnMut(&mut Db<'_, '_>) -> Result<T, DirectoryError>,
    ) -> Result<T, DirectoryError> {
        match self {
            Store::Sqlite(conn) => {
                let conn = lock(conn)?;
                f(&mut Db::Sqlite(&conn))
            }
            Store::Postgres(pg) => pg.read(f),
        }
    }

    /// Runs `f` in a write transaction, committed if it returns `Ok`, rolled back
    /// otherwise. Writers take turns: SQLite's `BEGIN IMMEDIATE`, PostgreSQL's
    /// transaction-scoped advisory lock (so a check and the write it allows are never
    /// split by another node's write).
    pub(super) fn write<T>(
        &self,
        f: impl FnOnce(&mut Db<'_, '_>) -> Result<T, DirectoryError>,
    ) -> Result<T, DirectoryError> {
        match self {
            Store::Sqlite(conn) => {
                let mut conn = lock(conn)?;
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let out = f(&mut Db::Sqlite(&tx))?;
                tx.commit()?;
                Ok(out)
            }
            Store::Postgres(pg) => pg.write(f),
        }
    }
}

/// A lock that a panic poisoned is refused rather than guessed at: every write runs
/// in a transaction that rolls back on drop, but we do not rely on it.
pub(super) fn lock<T>(mutex: &Mutex<T>) -> Result<MutexGuard<'_, T>, DirectoryError> {
    mutex.lock().map_err(|_| DirectoryError::Poisoned)
}

/// One connection (or a transaction on it) of either backend.
pub(super) enum Db<'c, 't> {
    Sqlite(&'c Connection),
    Postgres(&'c mut (dyn PgExec + 't)),
}

impl Db<'_, '_> {
    /// Runs a statement that returns no rows; how many rows it changed.
    pub(super) fn execute(
        &mut self,
        sql: &str,
        params: &[&dyn Param],
    ) -> Result<u64, DirectoryError> {
        match self {
            Db::Sqlite(conn) => {
                let changed = conn
                    .prepare_cached(sql)?
                    .execute(rusqlite::params_from_iter(
                        params.iter().map(|p| p.sqlite()),
                    ))?;
                Ok(u64::try_from(changed).unwrap_or(u64::MAX))
            }
            Db::Postgres(client) => Ok(client.execute(&numbered(sql), &pg_params(params))?),
        }
    }

    /// Every row of a query, each made a value by `f`.
    pub(super) fn query<T>(
        &mut self,
        sql: &str,
        params: &[&dyn Param],
        mut f: impl FnMut(&Row<'_, '_>) -> Result<T, DirectoryError>,
    ) -> Result<Vec<T>, DirectoryError> {
        let mut out = Vec::new();
        match self {
            Db::Sqlite(conn) => {
                let mut statement = conn.prepare_cached(sql)?;
                let mut rows = statement.query(rusqlite::params_from_iter(
                    params.iter().map(|p| p.sqlite()),
                ))?;
                while let Some(row) = rows.next()? {
                    out.push(f(&Row::Sqlite(row))?);
                }
            }
            Db::Postgres(client) => {
                for row in &client.query(&numbered(sql), &pg_params(params))? {
                    out.push(f(&Row::Postgres(row))?);
                }
            }
        }
        Ok(out)
    }

    /// The first row of a query, if any, made a value by `f`.
    pub(super) fn query_opt<T>(
        &mut self,
        sql: &str,
        params: &[&dyn Param],
        f: impl FnMut(&Row<'_, '_>) -> Result<T, DirectoryError>,
    ) -> Result<Option<T>, DirectoryError> {
        // Every caller's query is on a key: at most one row.
        Ok(self.query(sql, params, f)?.into_iter().next())
    }
}

/// What the PostgreSQL side needs of a client or a transaction (the `postgres` crate's
/// own `GenericClient` cannot be a trait object).
pub(super) trait PgExec {
    fn execute(
        &mut self,
        sql: &str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Result<u64, postgres::Error>;
    fn query(
        &mut self,
        sql: &str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Result<Vec<postgres::Row>, postgres::Error>;
}

impl<C: postgres::GenericClient> PgExec for C {
    fn execute(
        &mut self,
        sql: &str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Result<u64, postgres::Error> {
        postgres::GenericClient::execute(self, sql, params)
    }
    fn query(
        &mut self,
        sql: &str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Result<Vec<postgres::Row>, postgres::Error> {
        postgres::GenericClient::query(self, sql, params)
    }
}

/// A value both backends can bind: text, integers, booleans and their `Option`s.
pub(super) trait Param: Sync {
    fn sqlite(&self) -> &dyn rusqlite::ToSql;
    fn pg(&self) -> &(dyn postgres::types::ToSql + Sync);
}

impl<T: rusqlite::ToSql + postgres::types::ToSql + Sync> Param for T {
    fn sqlite(&self) -> &dyn rusqlite::ToSql {
        self
    }
    fn pg(&self) -> &(dyn postgres::types::ToSql + Sync) {
        self
    }
}

fn pg_params<'p>(params: &[&'p dyn Param]) -> Vec<&'p (dyn postgres::types::ToSql + Sync)> {
    params.iter().map(|p| p.pg()).collect()
}

/// A value both backends can read: text, integers, booleans and their `Option`s.
pub(super) trait Value:
    rusqlite::types::FromSql + for<'a> postgres::types::FromSql<'a>
{
}

impl<T: rusqlite::types::FromSql + for<'a> postgres::types::FromSql<'a>> Value for T {}

/// One row of a result, of either backend.
pub(super) enum Row<'r, 's> {
    Sqlite(&'r rusqlite::Row<'s>),
    Postgres(&'r postgres::Row),
}

impl Row<'_, '_> {
    /// Column `i` (from 0).
    pub(super) fn get<T: Value>(&self, i: usize) -> Result<T, DirectoryError> {
        match self {
            Row::Sqlite(row) => Ok(row.get(i)?),
            Row::Postgres(row) => Ok(row.try_get(i)?),
        }
    }
}

/// `sql` with SQLite's `?N` parameters as PostgreSQL's `$N`. The directory's statements
/// hold no `?` but in parameters (no string literal has one).
fn numbered(sql: &str) -> String {
    sql.replace('?', "$")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_renumbered_for_postgres() {
        assert_eq!(
            numbered("UPDATE t SET a = ?3 WHERE b = ?1 AND c = ?2"),
            "UPDATE t SET a = $3 WHERE b = $1 AND c = $2"
        );
    }
}
