//! tack's durable store, one schema on two backends: SQLite (the embedded default,
//! `sqlite://PATH`) and Postgres (`postgres://…`, for several hosts sharing state).
//!
//! What it holds, a module each:
//! - `agents`: every registered version of every agent file (versions count up
//!   from 1; registering an unchanged spec returns the latest version);
//! - `sessions`: one per conversation with an agent version, with a status;
//! - `log`: each session's append-only event log (`append` holds the write
//!   path: sequence numbers, one transaction per batch);
//! - `calls`: tool-call idempotency records;
//! - `secrets` (sealed values) and `tokens` (API tokens by hash).
//!
//! And how: `url` parses storage URLs, `migrate` brings a database's schema to
//! this build's version, `wal` keeps SQLite's write-ahead log bounded, and `db`
//! runs SQL written once with `$n` placeholders on either backend (rusqlite
//! with group commit for SQLite, sqlx for Postgres).

mod agents;
mod append;
mod calls;
mod db;
mod error;
mod ids;
mod log;
mod migrate;
mod secrets;
mod sessions;
mod tokens;
mod url;
mod wal;

pub use agents::AgentRecord;
pub use calls::Claim;
pub use db::DbError;
pub use error::StoreError;
pub use log::{Appended, Event, NewEvent};
pub use migrate::SCHEMA_VERSION;
pub use sessions::{SessionRecord, SessionStatus};
pub use tokens::ApiToken;
pub use wal::WalPolicy;

use db::Db;
use error::Result;
use std::sync::Arc;
use url::Location;

/// The store. Cheap to clone (clones share the connection or pool).
#[derive(Clone)]
pub struct Store {
    db: Db,
    /// Where each session's log ends, as this process last wrote it (SQLite).
    last_seqs: Arc<append::LastSeqs>,
}

impl Store {
    /// Open (creating if needed) the store at `url` and bring its schema to
    /// [`SCHEMA_VERSION`] (a database of a newer tack is refused, unchanged).
    ///
    /// SQLite runs in WAL mode with `synchronous=NORMAL`: a commit survives the
    /// host process dying at any point (`kill -9`), and only a power loss or
    /// kernel crash may lose the last commits. `sqlite://PATH?synchronous=full`
    /// syncs every commit to disk instead (slower: one fsync per event).
    pub async fn open(url: &str) -> Result<Store> {
        Store::open_with(url, WalPolicy::default()).await
    }

    /// [`open`](Self::open), with `wal` as an SQLite store's WAL policy (Postgres
    /// ignores it).
    pub async fn open_with(url: &str, wal: WalPolicy) -> Result<Store> {
        let db = match url::parse(url)? {
            Location::Sqlite { path, synchronous } => open_sqlite(path, synchronous, wal)?,
            Location::Postgres(url) => {
                let pool = sqlx::postgres::PgPoolOptions::new()
                    .max_connections(8)
                    .connect(url)
                    .await
                    .map_err(|e| StoreError::Db(e.into()))?;
                migrate::postgres(&pool).await?;
                Db::Postgres(pool)
            }
        };
        Ok(Store {
            db,
            last_seqs: Arc::default(),
        })
    }

    /// The schema version the database is at ([`SCHEMA_VERSION`] once open).
    #[cfg(any(test, feature = "testing"))]
    pub async fn schema_version(&self) -> Result<i64> {
        let row = db::query("SELECT COALESCE(MAX(version), 0) AS v FROM schema_migrations")
            .fetch_one(&self.db)
            .await?;
        Ok(row.try_get("v")?)
    }
}

/// Create the database file at `path`, readable by its owner only, unless it
/// exists. SQLite gives its `-wal` and `-shm` files the database file's mode,
/// so sessions, secrets' sealed values and tokens' hashes stay the owner's.
fn create_private(path: &str) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    if path == ":memory:" || path.is_empty() {
        return Ok(());
    }
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StoreError::Db(DbError {
            message: format!("cannot create the database file {path}: {e}"),
            conflict: false,
        })),
    }
}

fn open_sqlite(path: &str, synchronous: &str, policy: WalPolicy) -> Result<Db> {
    let db = |e: rusqlite::Error| StoreError::Db(e.into());
    create_private(path)?;
    let mut conn = rusqlite::Connection::open(path).map_err(db)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(db)?;
    // A new database gets 2 KiB pages: each commit writes whole pages to the
    // WAL, and most commits change a few rows at the ends of a few B-trees, so
    // 4 KiB pages doubled the bytes written (and the fsyncs' length) while most
    // events still fit in 2 KiB. No effect on an existing database.
    conn.pragma_update(None, "page_size", 2048).map_err(db)?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(db)?;
    conn.pragma_update(None, "synchronous", synchronous)
        .map_err(db)?;
    conn.set_prepared_statement_cache_capacity(64);
    // The bundled SQLite is built with STAT4, under which a statement whose
    // WHERE compares an indexed column to a parameter is parsed and planned
    // again every time a new value is bound (the value might change the best
    // plan): every cached statement, on every use. The store's statements have
    // one plan; keep it.
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )
    .map_err(db)?;
    migrate::sqlite(&mut conn)?;
    // Checkpoints (copying the WAL into the database, with an fsync) run on
    // their own thread and connection, not inside an append.
    conn.pragma_update(None, "wal_autocheckpoint", 0)
        .map_err(db)?;
    let (checkpointer, restart) = wal::checkpointer(path, policy).map_err(db)?;
    let conn = Arc::new(db::Sqlite::new(conn, restart));
    checkpointer.spawn(Arc::downgrade(&conn)).map_err(|e| {
        StoreError::Db(DbError {
            message: format!("cannot start the WAL checkpointer thread: {e}"),
            conflict: false,
        })
    })?;
    Ok(Db::Sqlite(conn))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A log read with new bounds each time runs the statement prepared once: with
    /// STAT4 and no query-planner stability, SQLite parsed it again on every read.
    #[tokio::test]
    async fn cached_statements_are_not_prepared_again_for_new_values() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("s.db").display());
        let store = Store::open(&url).await.unwrap();
        let s = store.create_session("a", 1).await.unwrap();
        for i in 0..5 {
            store
                .append(&s.id, "note", &serde_json::json!(i))
                .await
                .unwrap();
            store.events(&s.id, i, 10).await.unwrap();
        }
        let Db::Sqlite(db) = &store.db else {
            unreachable!("an SQLite store")
        };
        let conn = db.conn();
        let stmt = conn
            .prepare_cached(&db::sqlite_sql(log::EVENTS_AFTER))
            .unwrap();
        assert_eq!(
            stmt.get_status(rusqlite::StatementStatus::RePrepare),
            0,
            "the log read was parsed again"
        );
    }
}
