//! The two backends behind one small query API (shaped like sqlx's, so the
//! store's SQL reads the same for both):
//!
//! - SQLite through rusqlite, called in place on one connection behind a mutex:
//!   the statements are short and local, so a call costs microseconds, with no
//!   hop to a worker thread (which, on one core, cost more than the query).
//!   Writes are **group-committed**: each write is queued, and one task runs every
//!   write queued by then in a single transaction (a commit — WAL frames, locks,
//!   checksums — cost several times the insert itself). A write returns only
//!   after its transaction committed; reads take the connection between
//!   transactions, so they never see an uncommitted write;
//! - Postgres through sqlx's pool.
//!
//! SQL uses `$n` placeholders; for SQLite they become `?n` (explicit indexes).

use sqlx::Row as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// A bound parameter.
#[derive(Debug, Clone)]
pub(crate) enum Param {
    Text(String),
    Int(i64),
    /// A NULL text.
    Null,
    /// A NULL integer (Postgres types a bound NULL).
    NullInt,
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
impl From<Option<i64>> for Param {
    fn from(i: Option<i64>) -> Self {
        i.map(Param::Int).unwrap_or(Param::NullInt)
    }
}
impl From<Option<&str>> for Param {
    fn from(s: Option<&str>) -> Self {
        s.map(Param::from).unwrap_or(Param::Null)
    }
}

/// A database error, with unique-key conflicts told apart (appends and
/// registrations retry on them).
#[derive(Debug, Clone, thiserror::Error)]
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
    Sqlite(Arc<Sqlite>),
    Postgres(sqlx::PgPool),
}

/// What a queued write reports once its transaction ended (`Err` when the
/// transaction did not commit).
type Completion = Box<dyn FnOnce(Result<(), &DbError>) + Send>;
/// A queued write: runs inside the group's transaction, or is told why it
/// cannot (`Err`).
type Job = Box<dyn FnOnce(Result<&rusqlite::Connection, &DbError>) -> Completion + Send>;

/// The SQLite connection and the writes waiting for the next group commit.
pub(crate) struct Sqlite {
    conn: Mutex<rusqlite::Connection>,
    pending: Mutex<Vec<Job>>,
    flush_scheduled: AtomicBool,
    /// Set while the checkpointer folds the whole WAL back into the database:
    /// no write transaction starts (writes wait in `pending`).
    hold: AtomicBool,
    /// Where group commits run (the runtime that opened the store).
    runtime: tokio::runtime::Handle,
    /// When a commit leaves the WAL too long: hold writes and wake the
    /// checkpointer (see `wal.rs`).
    restart: crate::wal::Restart,
}

impl Sqlite {
    /// Wrap an open connection; group commits run on the current tokio runtime.
    pub(crate) fn new(conn: rusqlite::Connection, restart: crate::wal::Restart) -> Self {
        crate::wal::watch(&conn);
        Sqlite {
            restart,
            conn: Mutex::new(conn),
            pending: Mutex::default(),
            flush_scheduled: AtomicBool::new(false),
            hold: AtomicBool::new(false),
            runtime: tokio::runtime::Handle::current(),
        }
    }

    /// Run `f` with no write transaction open and none starting (writes queue
    /// meanwhile), then let the queued writes go. For a checkpoint that must see
    /// no new WAL frames while it runs, so that it backfills them all and the next
    /// write starts the WAL over instead of growing it.
    pub(crate) fn without_writes<R>(self: &Arc<Self>, f: impl FnOnce() -> R) -> R {
        self.hold.store(true, Ordering::SeqCst);
        // A group commit holds the connection for its whole transaction: once we
        // had it, that one is over, and the next sees `hold`.
        drop(self.conn());
        let out = f();
        self.hold.store(false, Ordering::SeqCst);
        self.schedule_flush();
        out
    }

    /// Let writes go again after the checkpoint a commit asked for (see
    /// [`flush`](Self::flush)).
    pub(crate) fn release_writes(self: &Arc<Self>) {
        self.hold.store(false, Ordering::SeqCst);
        self.schedule_flush();
    }

    /// Make sure a group commit will run for what is queued.
    fn schedule_flush(self: &Arc<Self>) {
        if self.flush_scheduled.swap(true, Ordering::SeqCst) {
            return;
        }
        let me = self.clone();
        self.runtime.spawn(async move {
            // Let the writers that are ready now queue up behind this one.
            tokio::task::yield_now().await;
            me.flush();
        });
    }

    /// The connection, between transactions.
    pub(crate) fn conn(&self) -> MutexGuard<'_, rusqlite::Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Run `write` in the next group transaction; its result once that committed.
    ///
    /// `write` must either fail before changing anything (a constraint refused
    /// its one statement) or succeed: its statements are not rolled back alone.
    pub(crate) async fn write<R: Send + 'static>(
        self: &Arc<Self>,
        write: impl FnOnce(&rusqlite::Connection) -> Result<R, DbError> + Send + 'static,
    ) -> Result<R, DbError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let result = conn.map_err(DbError::clone).and_then(write);
            Box::new(move |committed: Result<(), &DbError>| {
                let _ = tx.send(match (result, committed) {
                    (Ok(v), Ok(())) => Ok(v),
                    (Ok(_), Err(e)) => Err(e.clone()),
                    (Err(e), _) => Err(e),
                });
            })
        });
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(job);
        self.schedule_flush();
        rx.await.unwrap_or_else(|_| {
            Err(DbError {
                message: "the store stopped before the write committed".into(),
                conflict: false,
            })
        })
    }

    /// Run every queued write in one transaction and report to each.
    fn flush(&self) {
        self.flush_scheduled.store(false, Ordering::SeqCst);
        let conn = self.conn();
        if self.hold.load(Ordering::SeqCst) {
            // `without_writes` flushes what is queued when it is done.
            return;
        }
        let jobs = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()));
        if jobs.is_empty() {
            return;
        }
        // A transaction left open (a panic mid-batch) must not swallow this one.
        if !conn.is_autocommit() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        let run = |sql: &str| -> Result<(), DbError> {
            conn.prepare_cached(sql)?.execute([])?;
            Ok(())
        };
        if let Err(e) = run("BEGIN IMMEDIATE") {
            for job in jobs {
                job(Err(&e))(Err(&e));
            }
            return;
        }
        let mut done = Vec::with_capacity(jobs.len());
        let mut failed: Option<DbError> = None;
        for job in jobs {
            match &failed {
                Some(e) => done.push(job(Err(e))),
                None => {
                    done.push(job(Ok(&conn)));
                    // SQLite ends the whole transaction on some errors (I/O, full
                    // disk): everything before is gone, nothing after may run.
                    if conn.is_autocommit() {
                        failed = Some(DbError {
                            message:
                                "the database rolled the transaction back (I/O error or full disk?)"
                                    .into(),
                            conflict: false,
                        });
                    }
                }
            }
        }
        crate::wal::reset_pages();
        let outcome = match failed {
            Some(e) => Err(e),
            None => run("COMMIT"),
        };
        // Past the limit, no transaction starts until the checkpointer copied the
        // whole WAL, so that the next one starts it over.
        if outcome.is_ok() && crate::wal::pages() > self.restart.after_pages {
            self.hold.store(true, Ordering::SeqCst);
            self.restart.wake();
        }
        if outcome.is_err() && !conn.is_autocommit() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        drop(conn);
        for complete in done {
            complete(outcome.as_ref().map(|_| ()));
        }
    }
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

impl FromColumn for Option<i64> {
    fn from_sqlite(v: &rusqlite::types::Value) -> Option<Self> {
        match v {
            rusqlite::types::Value::Null => Some(None),
            rusqlite::types::Value::Integer(i) => Some(Some(*i)),
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
pub(crate) fn sqlite_sql(sql: &str) -> String {
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
                Param::NullInt => q.bind(None::<i64>),
            };
        }
        q
    }

    fn sqlite_params(&self) -> impl Iterator<Item = rusqlite::types::Value> + '_ {
        self.params.iter().map(|p| match p {
            Param::Text(s) => rusqlite::types::Value::Text(s.clone()),
            Param::Int(i) => rusqlite::types::Value::Integer(*i),
            Param::Null | Param::NullInt => rusqlite::types::Value::Null,
        })
    }

    fn sqlite_rows(&self, conn: &rusqlite::Connection) -> Result<Vec<Row>, DbError> {
        let mut stmt = conn.prepare_cached(&sqlite_sql(self.sql))?;
        let names: Vec<String> = stmt.column_names().iter().map(|s| s.to_string()).collect();
        let mut rows = stmt.query(rusqlite::params_from_iter(self.sqlite_params()))?;
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

    /// Run it (a write); how many rows changed.
    pub(crate) async fn execute(self, db: &Db) -> Result<Done, DbError> {
        match db {
            Db::Sqlite(s) => {
                s.write(move |conn| {
                    let mut stmt = conn.prepare_cached(&sqlite_sql(self.sql))?;
                    let n = stmt.execute(rusqlite::params_from_iter(self.sqlite_params()))?;
                    Ok(Done(n as u64))
                })
                .await
            }
            Db::Postgres(pool) => Ok(Done(self.pg().execute(pool).await?.rows_affected())),
        }
    }

    /// Every row (a read).
    pub(crate) async fn fetch_all(self, db: &Db) -> Result<Vec<Row>, DbError> {
        match db {
            Db::Sqlite(s) => self.sqlite_rows(&s.conn()),
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
