//! Where the CDR store's SQL runs: one SQLite file of the node's own (the default), or a
//! PostgreSQL database that several nodes share (`[shared] postgres`). The store's rules
//! — which statements, which values, how a row reads back — are written once against
//! [`Exec`]; only binding a parameter, reading a cell and keeping the connection differ
//! here, so the two backends cannot drift apart.
//!
//! Statements are written with SQLite's numbered `?N` parameters and become `$N` for
//! PostgreSQL; the rest of the text is dialect both accept (`ON CONFLICT`, `RETURNING`,
//! row values, `CAST`). In PostgreSQL the tables live in a schema of their own (`cdr`,
//! the connection's `search_path`), so they keep SQLite's names without clashing with
//! the ledger's or the directory's tables in a database they share; the migrations are
//! SQLite's, translated (`schema.rs`).
//!
//! A PostgreSQL connection that breaks (the server restarted, the network failed) fails
//! the operation that found it broken; the next one connects again, at most once per
//! [`RECONNECT_BACKOFF`], so the store comes back by itself with the server.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use dialbridge_store::pg::{self, PgSchema};
use postgres::types::{IsNull, ToSql, Type};
use postgres::{Client, GenericClient, Statement};
use rusqlite::Connection;
use rusqlite::types::{ToSqlOutput, ValueRef};

use super::CdrError;

/// The connection tries to reconnect at most this often while the database is down.
pub(super) const RECONNECT_BACKOFF: Duration = Duration::from_millis(200);

/// A statement's parameter, as both backends bind it.
#[derive(Debug, Clone, Copy)]
pub(super) enum Value<'a> {
    Int(Option<i64>),
    Text(Option<&'a str>),
    Bytes(&'a [u8]),
}

impl From<i64> for Value<'_> {
    fn from(v: i64) -> Self {
        Value::Int(Some(v))
    }
}

impl From<Option<i64>> for Value<'_> {
    fn from(v: Option<i64>) -> Self {
        Value::Int(v)
    }
}

impl<'a> From<&'a str> for Value<'a> {
    fn from(v: &'a str) -> Self {
        Value::Text(Some(v))
    }
}

impl<'a> From<Option<&'a str>> for Value<'a> {
    fn from(v: Option<&'a str>) -> Self {
        Value::Text(v)
    }
}

impl<'a> From<&'a [u8]> for Value<'a> {
    fn from(v: &'a [u8]) -> Self {
        Value::Bytes(v)
    }
}

/// One row read back: its cells in the SELECT's order.
#[derive(Debug)]
pub(super) struct Row(Vec<Cell>);

#[derive(Debug)]
enum Cell {
    Null,
    Int(i64),
    Text(String),
    Bytes(Vec<u8>),
}

impl Row {
    pub(super) fn opt_int(&self, i: usize) -> Result<Option<i64>, CdrError> {
        match self.0.get(i) {
            Some(Cell::Null) => Ok(None),
            Some(Cell::Int(v)) => Ok(Some(*v)),
            _ => Err(CdrError::Column {
                index: i,
                expected: "an integer",
            }),
        }
    }

    pub(super) fn int(&self, i: usize) -> Result<i64, CdrError> {
        self.opt_int(i)?.ok_or(CdrError::Column {
            index: i,
            expected: "an integer, not NULL",
        })
    }

    pub(super) fn opt_text(&self, i: usize) -> Result<Option<&str>, CdrError> {
        match self.0.get(i) {
            Some(Cell::Null) => Ok(None),
            Some(Cell::Text(v)) => Ok(Some(v)),
            _ => Err(CdrError::Column {
                index: i,
                expected: "text",
            }),
        }
    }

    pub(super) fn text(&self, i: usize) -> Result<&str, CdrError> {
        self.opt_text(i)?.ok_or(CdrError::Column {
            index: i,
            expected: "text, not NULL",
        })
    }

    pub(super) fn bytes(&self, i: usize) -> Result<&[u8], CdrError> {
        match self.0.get(i) {
            Some(Cell::Bytes(v)) => Ok(v),
            _ => Err(CdrError::Column {
                index: i,
                expected: "bytes",
            }),
        }
    }
}

/// Runs statements, on either backend, inside a transaction or not.
pub(super) trait Exec {
    /// Runs `sql` and returns how many rows it changed.
    fn execute(&mut self, sql: &str, params: &[Value<'_>]) -> Result<u64, CdrError>;
    /// Runs `sql` and returns every row it selects.
    fn query(&mut self, sql: &str, params: &[Value<'_>]) -> Result<Vec<Row>, CdrError>;
}

/// The store's one connection.
pub(super) enum Backend {
    Sqlite(Connection),
    Postgres(Box<PgConnection>),
}

impl Backend {
    /// Runs `f`, each statement committed on its own.
    pub(super) fn run<T>(
        &mut self,
        f: impl FnOnce(&mut dyn Exec) -> Result<T, CdrError>,
    ) -> Result<T, CdrError> {
        match self {
            Backend::Sqlite(conn) => f(&mut Sqlite(conn)),
            Backend::Postgres(pg) => {
                pg.with(|client, statements| f(&mut Postgres { client, statements }))
            }
        }
    }

    /// Runs `f` in one transaction: everything it did is committed, or (`f` or the
    /// commit failed) none of it.
    pub(super) fn transaction<T>(
        &mut self,
        f: impl FnOnce(&mut dyn Exec) -> Result<T, CdrError>,
    ) -> Result<T, CdrError> {
        match self {
            Backend::Sqlite(conn) => {
                // IMMEDIATE: take the write lock first, so another process sharing the
                // file cannot make this transaction fail halfway with SQLITE_BUSY.
                let tx =
                    conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                let out = f(&mut Sqlite(&tx))?;
                tx.commit()?;
                Ok(out)
            }
            Backend::Postgres(pg) => pg.with(|client, statements| {
                let mut tx = client.transaction()?;
                let out = f(&mut Postgres {
                    client: &mut tx,
                    statements,
                })?;
                tx.commit()?;
                Ok(out)
            }),
        }
    }
}

/// SQLite: statements prepared once per connection (rusqlite's cache).
struct Sqlite<'a>(&'a Connection);

impl Exec for Sqlite<'_> {
    fn execute(&mut self, sql: &str, params: &[Value<'_>]) -> Result<u64, CdrError> {
        let mut statement = self.0.prepare_cached(sql)?;
        let changed = statement.execute(rusqlite::params_from_iter(params))?;
        Ok(u64::try_from(changed).unwrap_or(u64::MAX))
    }

    fn query(&mut self, sql: &str, params: &[Value<'_>]) -> Result<Vec<Row>, CdrError> {
        let mut statement = self.0.prepare_cached(sql)?;
        let columns = statement.column_count();
        let mut rows = statement.query(rusqlite::params_from_iter(params))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let mut cells = Vec::with_capacity(columns);
            for index in 0..columns {
                cells.push(match row.get_ref(index)? {
                    ValueRef::Null => Cell::Null,
                    ValueRef::Integer(v) => Cell::Int(v),
                    ValueRef::Text(t) => Cell::Text(
                        std::str::from_utf8(t)
                            .map_err(|_| CdrError::Column {
                                index,
                                expected: "UTF-8 text",
                            })?
                            .to_owned(),
                    ),
                    ValueRef::Blob(b) => Cell::Bytes(b.to_vec()),
                    ValueRef::Real(_) => {
                        return Err(CdrError::Column {
                            index,
                            expected: "no floating point",
                        });
                    }
                });
            }
            out.push(Row(cells));
        }
        Ok(out)
    }
}

impl rusqlite::ToSql for Value<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match *self {
            Value::Int(Some(v)) => ValueRef::Integer(v),
            Value::Text(Some(v)) => ValueRef::Text(v.as_bytes()),
            Value::Bytes(v) => ValueRef::Blob(v),
            Value::Int(None) | Value::Text(None) => ValueRef::Null,
        }))
    }
}

/// The PostgreSQL connection: reconnected when it breaks, its statements prepared
/// once per connection.
pub(super) struct PgConnection {
    config: postgres::Config,
    search_path: &'static str,
    client: Option<Client>,
    statements: HashMap<String, Statement>,
    last_attempt: Option<Instant>,
}

impl Drop for PgConnection {
    fn drop(&mut self) {
        // The store may be dropped on a runtime thread (a test's, the server's end).
        if let Some(client) = self.client.take() {
            dialbridge_store::pg::close(client);
        }
    }
}

impl PgConnection {
    /// Connects to `url` and brings `schema` up to date; `search_path` names the
    /// PostgreSQL schema the statements find their tables in.
    pub(super) fn open(
        url: &str,
        schema: &PgSchema<'_>,
        search_path: &'static str,
    ) -> Result<PgConnection, CdrError> {
        let config = pg::config(url).map_err(super::schema::from_store)?;
        let mut client = pg::connect(&config).map_err(super::schema::from_store)?;
        // Migrated before the search path is set: `schema_version` is every store's
        // table, in the database's default schema.
        pg::migrate(&mut client, schema).map_err(super::schema::from_store)?;
        client.batch_execute(&format!("SET search_path TO {search_path}"))?;
        Ok(PgConnection {
            config,
            search_path,
            client: Some(client),
            statements: HashMap::new(),
            last_attempt: Some(Instant::now()),
        })
    }

    /// Runs `f` on the connection (connecting first if it was lost), and drops the
    /// connection if `f` found it broken, so the next call connects again.
    fn with<T>(
        &mut self,
        f: impl FnOnce(&mut Client, &mut HashMap<String, Statement>) -> Result<T, CdrError>,
    ) -> Result<T, CdrError> {
        self.connect()?;
        let Some(client) = self.client.as_mut() else {
            return Err(CdrError::Database("no PostgreSQL connection".into()));
        };
        let result = f(client, &mut self.statements);
        if result.is_err() && client.is_closed() {
            self.client = None;
            self.statements.clear();
        }
        result
    }

    fn connect(&mut self) -> Result<(), CdrError> {
        if self.client.as_ref().is_some_and(Client::is_closed) {
            self.client = None;
            self.statements.clear();
        }
        if self.client.is_some() {
            return Ok(());
        }
        if self
            .last_attempt
            .is_some_and(|at| at.elapsed() < RECONNECT_BACKOFF)
        {
            return Err(CdrError::Database(
                "the CDR database is unreachable (reconnecting)".into(),
            ));
        }
        self.last_attempt = Some(Instant::now());
        let mut client = pg::connect(&self.config).map_err(super::schema::from_store)?;
        client.batch_execute(&format!("SET search_path TO {}", self.search_path))?;
        tracing::info!("CDR database connected");
        self.client = Some(client);
        Ok(())
    }
}

/// PostgreSQL, in a transaction or not: `?N` numbered `$N`, each statement prepared once
/// per connection.
struct Postgres<'a, C> {
    client: &'a mut C,
    statements: &'a mut HashMap<String, Statement>,
}

impl<C: GenericClient> Postgres<'_, C> {
    fn statement(&mut self, sql: &str) -> Result<Statement, CdrError> {
        // No statement of the store has a `?` other than its parameters'.
        let sql = sql.replace('?', "$");
        if let Some(statement) = self.statements.get(&sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(&sql)?;
        self.statements.insert(sql, statement.clone());
        Ok(statement)
    }
}

impl<C: GenericClient> Exec for Postgres<'_, C> {
    fn execute(&mut self, sql: &str, params: &[Value<'_>]) -> Result<u64, CdrError> {
        let statement = self.statement(sql)?;
        let params: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p as _).collect();
        Ok(self.client.execute(&statement, &params)?)
    }

    fn query(&mut self, sql: &str, params: &[Value<'_>]) -> Result<Vec<Row>, CdrError> {
        let statement = self.statement(sql)?;
        let params: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p as _).collect();
        let rows = self.client.query(&statement, &params)?;
        rows.iter().map(pg_row).collect()
    }
}

/// A PostgreSQL row as cells, by each column's type.
fn pg_row(row: &postgres::Row) -> Result<Row, CdrError> {
    let mut cells = Vec::with_capacity(row.len());
    for (index, column) in row.columns().iter().enumerate() {
        let ty = column.type_();
        let cell = if *ty == Type::INT8 {
            row.try_get::<_, Option<i64>>(index)?.map(Cell::Int)
        } else if *ty == Type::INT4 {
            row.try_get::<_, Option<i32>>(index)?
                .map(|v| Cell::Int(v.into()))
        } else if *ty == Type::TEXT || *ty == Type::VARCHAR {
            row.try_get::<_, Option<String>>(index)?.map(Cell::Text)
        } else if *ty == Type::BYTEA {
            row.try_get::<_, Option<Vec<u8>>>(index)?.map(Cell::Bytes)
        } else {
            return Err(CdrError::Column {
                index,
                expected: "BIGINT, INTEGER, TEXT or BYTEA",
            });
        };
        cells.push(cell.unwrap_or(Cell::Null));
    }
    Ok(Row(cells))
}

impl ToSql for Value<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        self.to_sql_checked(ty, out)
    }

    fn accepts(ty: &Type) -> bool {
        <i64 as ToSql>::accepts(ty) || <&str as ToSql>::accepts(ty) || <&[u8] as ToSql>::accepts(ty)
    }

    /// Checks the type against the variant given, not against every variant's.
    fn to_sql_checked(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Value::Int(v) => v.to_sql_checked(ty, out),
            Value::Text(v) => v.to_sql_checked(ty, out),
            Value::Bytes(v) => v.to_sql_checked(ty, out),
        }
    }
}
