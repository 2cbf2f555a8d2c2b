//! The two backends behind one small query API (shaped like sqlx's, so the
//! store's SQL reads the same for both):
//!
//! - SQLite through rusqlite, called in place on one connection behind a mutex:
//!   the statements are short and local, so a call costs microseconds, with no
//!   hop to a worker thread (which, on one core, cost more than the query);
//! - Postgres through sqlx's pool.
//!
//! SQL uses `$n` placeholders; for SQLite they become `?n` (explicit indexes).

use sqlx::Row as _;
use std::sync::{Arc, Mutex};

/// A bound parameter.
#[derive(Debug, Clone)]
pub(crate) enum Param {
    Text(String),
    Int(i64),
    Null,
}

impl From<&str> for Param {
    fn from(s: &str) -> Self {
        Param::Text(s.to_string())
    }
}
impl From<&String> for Param {
    fn from(s: &String) -> Self {
        Param::Text(s.clone())
    }
}
impl From<String> for Param {
    fn from(s: String) -> Self {
        Param::Text(s)
    }
}
impl From<i64> for Param {
    fn from(i: i64) -> Self {
        Param::Int(i)
    }
}
impl From<Option<&str>> for Param {
    fn from(s: Option<&str>) -> Self {
        s.map(Param::from).unwrap_or(Param::Null)
    }
}

/// A database error, with unique-key conflicts told apart (appends and
/// registrations retry on them).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct DbError {
    pub(crate) message: String,
    pub(crate) conflict: bool,
}

impl DbError {
    pub(crate) fn is_conflict(&self) -> bool {
        self.conflict
    }
}

impl From<rusqlite::Error> for DbError {
    fn from(e: rusqlite::Error) -> Self {
        let conflict = matches!(&e, rusqlite::Error::SqliteFailure(f, _)
            if f.code == rusqlite::ErrorCode::ConstraintViolation);
        DbError {
            message: e.to_string(),
            conflict,
        }
    }
}

impl From<sqlx::Error> for DbError {
    fn from(e: sqlx::Error) -> Self {
        let conflict = matches!(&e, sqlx::Error::Database(d) if d.is_unique_violation());
        DbError {
            message: e.to_string(),
            conflict,
        }
    }
}

/// The database.
#[derive(Clone)]
pub(crate) enum Db {
    Sqlite(Arc<Mutex<rusqlite::Connection>>),
    Postgres(sqlx::PgPool),
}

/// One row.
pub(crate) enum Row {
    Sqlite(Vec<(String, rusqlite::types::Value)>),
    Postgres(sqlx::postgres::PgRow),
}

/// A column type a row can give.
pub(crate) trait FromColumn: Sized {
    fn from_sqlite(v: &rusqlite::types::Value) -> Option<Self>;
    fn from_pg(row: &sqlx::postgres::PgRow, name: &str) -> Result<Self, sqlx::Error>;
}

impl FromColumn for String {
    fn from_sqlite(v: &rusqlite::types::Value) -> Option<Self> {
        match v {
            rusqlite::types::Value::Text(t) => Some(t.clone()),
            _ => None,
        }
    }
    fn from_pg(row: &sqlx::postgres::PgRow, name: &str) -> Result<Self, sqlx::Error> {
        row.try_get(name)
    }
}

impl FromColumn for i64 {
    fn from_sqlite(v: &rusqlite::types::Value) -> Option<Self> {
        match v {
            rusqlite::types::Value::Integer(i) => Some(*i),
            _ => None,
        }
    }
    fn from_pg(row: &sqlx::postgres::PgRow, name: &str) -> Result<Self, sqlx::Error> {
        row.try_get(name)
    }
}

impl FromColumn for Option<String> {
    fn from_sqlite(v: &rusqlite::types::Value) -> Option<Self> {
        match v {
            rusqlite::types::Value::Null => Some(None),
            rusqlite::types::Value::Text(t) => Some(Some(t.clone())),
            _ => None,
        }
    }
    fn from_pg(row: &sqlx::postgres::PgRow, name: &str) -> Result<Self, sqlx::Error> {
        row.try_get(name)
    }
}

impl Row {
    /// Column `name` as `T`.
    pub(crate) fn try_get<T: FromColumn>(&self, name: &str) -> Result<T, DbError> {
        match self {
            Row::Sqlite(cols) => {
                let v = cols
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v)
                    .ok_or_else(|| DbError {
                        message: format!("no column `{name}`"),
                        conflict: false,
                    })?;
                T::from_sqlite(v).ok_or_else(|| DbError {
                    message: format!("column `{name}` has an unexpected type"),
                    conflict: false,
                })
            }
            Row::Postgres(r) => T::from_pg(r, name).map_err(DbError::from),
        }
    }
}

/// The result of a statement.
pub(crate) struct Done(u64);

impl Done {
    pub(crate) fn rows_affected(&self) -> u64 {
        self.0
    }
}

/// A statement being built.
pub(crate) struct Query {
    sql: &'static str,
    params: Vec<Param>,
}

/// Start a statement.
pub(crate) fn query(sql: &'static str) -> Query {
    Query {
        sql,
        params: Vec::new(),
    }
}

/// `$n` → `?n`.
fn sqlite_sql(sql: &str) -> String {
    sql.replace('$', "?")
}

impl Query {
    /// Bind the next parameter.
    pub(crate) fn bind(mut self, p: impl Into<Param>) -> Self {
        self.params.push(p.into());
        self
    }

    fn pg(&self) -> sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments> {
        let mut q = sqlx::query(self.sql);
        for p in &self.params {
            q = match p {
                Param::Text(s) => q.bind(s.as_str()),
                Param::Int(i) => q.bind(*i),
                Param::Null => q.bind(None::<String>),
            };
        }
        q
    }

    fn sqlite_rows(&self, conn: &rusqlite::Connection) -> Result<Vec<Row>, DbError> {
        let mut stmt = conn.prepare_cached(&sqlite_sql(self.sql))?;
        let names: Vec<String> = stmt.column_names().iter().map(|s| s.to_string()).collect();
        let params = rusqlite::params_from_iter(self.params.iter().map(|p| match p {
            Param::Text(s) => rusqlite::types::Value::Text(s.clone()),
            Param::Int(i) => rusqlite::types::Value::Integer(*i),
            Param::Null => rusqlite::types::Value::Null,
        }));
        let mut rows = stmt.query(params)?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let mut cols = Vec::with_capacity(names.len());
            for (i, n) in names.iter().enumerate() {
                cols.push((n.clone(), r.get::<_, rusqlite::types::Value>(i)?));
            }
            out.push(Row::Sqlite(cols));
        }
        Ok(out)
    }

    /// Run it; how many rows changed.
    pub(crate) async fn execute(self, db: &Db) -> Result<Done, DbError> {
        match db {
            Db::Sqlite(c) => {
                let conn = c.lock().unwrap_or_else(|e| e.into_inner());
                let mut stmt = conn.prepare_cached(&sqlite_sql(self.sql))?;
                let n = stmt.execute(rusqlite::params_from_iter(self.params.iter().map(
                    |p| match p {
                        Param::Text(s) => rusqlite::types::Value::Text(s.clone()),
                        Param::Int(i) => rusqlite::types::Value::Integer(*i),
                        Param::Null => rusqlite::types::Value::Null,
                    },
                )))?;
                Ok(Done(n as u64))
            }
            Db::Postgres(pool) => Ok(Done(self.pg().execute(pool).await?.rows_affected())),
        }
    }

    /// Every row.
    pub(crate) async fn fetch_all(self, db: &Db) -> Result<Vec<Row>, DbError> {
        match db {
            Db::Sqlite(c) => {
                let conn = c.lock().unwrap_or_else(|e| e.into_inner());
                self.sqlite_rows(&conn)
            }
            Db::Postgres(pool) => Ok(self
                .pg()
                .fetch_all(pool)
                .await?
                .into_iter()
                .map(Row::Postgres)
                .collect()),
        }
    }

    /// The first row, if any.
    pub(crate) async fn fetch_optional(self, db: &Db) -> Result<Option<Row>, DbError> {
        match db {
            Db::Sqlite(_) => Ok(self.fetch_all(db).await?.into_iter().next()),
            Db::Postgres(pool) => Ok(self.pg().fetch_optional(pool).await?.map(Row::Postgres)),
        }
    }

    /// Exactly one row.
    pub(crate) async fn fetch_one(self, db: &Db) -> Result<Row, DbError> {
        self.fetch_optional(db).await?.ok_or_else(|| DbError {
            message: "the query returned no row".into(),
            conflict: false,
        })
    }
}
