//! tack's durable store, one schema on two backends: SQLite (the embedded default,
//! `sqlite://PATH`) and Postgres (`postgres://…`, for several hosts sharing state).
//!
//! What it holds:
//! - **agents**: every registered version of every agent file (versions count up
//!   from 1; registering an unchanged spec returns the latest version);
//! - **sessions**: one per conversation with an agent version, with a status;
//! - **events**: each session's append-only log. An event has a per-session
//!   sequence number (gap-free, assigned in the appending transaction) and a ULID
//!   id (what SSE clients send back as `Last-Event-ID`). Appends are atomic: after a
//!   crash an event is either wholly there or not at all;
//! - **tool calls**: an idempotency record per (session, call key), claimed before a
//!   tool runs and finished with its result, so a resumed run never executes a call
//!   twice.
//!
//! SQL is written once with `$n` placeholders and runs on either backend through
//! the small query API in `db.rs` (rusqlite for SQLite, sqlx for Postgres).

use serde::Serialize;
use serde_json::Value;
mod append;
mod db;

pub use db::DbError;
use db::{Db, Row, query};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Which database is behind the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite (one file, WAL mode).
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL names no supported database.
    #[error(
        "storage URL `{0}` is not supported: use sqlite://PATH or postgres://USER@HOST[:PORT]/DB"
    )]
    Url(String),
    /// The database said no.
    #[error("storage: {0}")]
    Db(#[from] DbError),
    /// A stored JSON document did not parse.
    #[error("storage: corrupt JSON in {what}: {message}")]
    Corrupt {
        /// Which record.
        what: String,
        /// The parse error.
        message: String,
    },
    /// The named session does not exist.
    #[error("no session `{0}`")]
    NoSession(String),
}

type Result<T> = std::result::Result<T, StoreError>;

/// One registered version of an agent.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentRecord {
    /// Agent name.
    pub name: String,
    /// Version, from 1.
    pub version: u32,
    /// The spec, as JSON.
    pub spec: Value,
    /// Registration time, ms since the Unix epoch.
    pub created_ms: i64,
}

/// A session.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionRecord {
    /// ULID.
    pub id: String,
    /// Agent name.
    pub agent: String,
    /// Agent version the session runs.
    pub agent_version: u32,
    /// Status (`idle`, `running`, `waiting`, `finished`, …: the loop decides).
    pub status: String,
    /// Creation time, ms.
    pub created_ms: i64,
    /// Last change, ms.
    pub updated_ms: i64,
}

/// One event of a session's log.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// ULID, unique across sessions.
    pub id: String,
    /// Position in the session's log, from 1, without gaps.
    pub seq: u64,
    /// Event type (`run_started`, `tool_call`, …).
    #[serde(rename = "type")]
    pub kind: String,
    /// Payload.
    pub data: Value,
    /// Append time, ms.
    pub created_ms: i64,
    /// The host's own copy of the payload where `data` is redacted (tool
    /// arguments an approval policy hides): used to resume a run, never served.
    #[serde(skip)]
    pub private: Option<Value>,
}

/// An event to append (see [`Store::append_batch`]), its payloads as JSON text
/// (what `serde_json::to_string` makes: the store writes it as it is and parses
/// it only when read).
#[derive(Debug, Clone, Copy)]
pub struct NewEvent<'a> {
    /// Event type.
    pub kind: &'a str,
    /// Payload, as served.
    pub data: &'a str,
    /// The host's unredacted copy of the payload, if it differs.
    pub private: Option<&'a str>,
}

/// Where an appended event landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    /// Its ULID.
    pub id: String,
    /// Its position in the session's log.
    pub seq: u64,
    /// Append time, ms.
    pub created_ms: i64,
}

/// The state of a tool call's idempotency record.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// First claim: run the call now.
    New,
    /// Claimed before and not finished (the host died mid-call): do not run it
    /// blindly again; the tool's own idempotency key decides.
    Unfinished,
    /// Finished before: here is its recorded result.
    Done(Value),
}

/// A new ULID, strictly greater than every one this process made before (so ids
/// made in the same millisecond still sort in creation order).
fn next_id() -> String {
    static GENERATOR: std::sync::Mutex<Option<ulid::Generator>> = std::sync::Mutex::new(None);
    let mut g = GENERATOR.lock().unwrap_or_else(|e| e.into_inner());
    let g = g.get_or_insert_with(ulid::Generator::new);
    match g.generate() {
        Ok(id) => id.to_string(),
        // The random part overflowed within one millisecond: wait for the next one.
        Err(_) => {
            std::thread::sleep(std::time::Duration::from_millis(1));
            g.generate()
                .map(|u| u.to_string())
                .unwrap_or_else(|_| ulid::Ulid::generate().to_string())
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// How an SQLite store keeps its write-ahead log in check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalPolicy {
    /// How often a checkpoint copies the WAL into the database (default 500 ms).
    pub checkpoint_every: std::time::Duration,
    /// WAL size, in frames (one page each: 2 KiB in a database tack created),
    /// past which one checkpoint runs with writes held so that the WAL starts
    /// over (default 32,768: 64 MiB).
    pub restart_after_frames: i64,
}

impl Default for WalPolicy {
    fn default() -> Self {
        WalPolicy {
            checkpoint_every: std::time::Duration::from_millis(500),
            restart_after_frames: 32_768,
        }
    }
}

/// Checkpoint the WAL of the database at `path` as `policy` says until the store
/// (`owner`) is dropped.
///
/// A passive checkpoint copies the frames present when it starts, while writes go
/// on; the WAL starts over from its beginning only once a checkpoint copied every
/// frame, which under steady writes never happens, so the file would grow without
/// bound (tens of MiB a second under load, and every fsync of it longer). When it
/// passes `policy.restart_after_frames`, one checkpoint runs with writes held (they
/// queue, the host goes on), so the next write starts the WAL over.
fn spawn_checkpointer(path: String, owner: std::sync::Weak<db::Sqlite>, policy: WalPolicy) {
    let _ = std::thread::Builder::new()
        .name("tack-store-checkpoint".into())
        .spawn(move || {
            let Ok(conn) = rusqlite::Connection::open(&path) else {
                return;
            };
            let _ = conn.busy_timeout(std::time::Duration::from_secs(5));
            // (busy, frames in the WAL, frames copied)
            let checkpoint = || {
                conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, i64>(2)?,
                    ))
                })
            };
            loop {
                std::thread::sleep(policy.checkpoint_every);
                let Some(db) = owner.upgrade() else {
                    // Last one out: fold the WAL back so the file stands alone.
                    let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
                    return;
                };
                match checkpoint() {
                    Ok((_, frames, _)) if frames > policy.restart_after_frames => {
                        if let Err(e) = db.without_writes(checkpoint) {
                            tracing::warn!("WAL checkpoint of {path} failed: {e}");
                        }
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!("WAL checkpoint of {path} failed: {e}"),
                }
            }
        });
}

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS agents (
        name TEXT NOT NULL, version BIGINT NOT NULL, spec TEXT NOT NULL, created_ms BIGINT NOT NULL,
        PRIMARY KEY (name, version))",
    "CREATE TABLE IF NOT EXISTS sessions (
        id TEXT PRIMARY KEY, agent TEXT NOT NULL, agent_version BIGINT NOT NULL,
        status TEXT NOT NULL, created_ms BIGINT NOT NULL, updated_ms BIGINT NOT NULL)",
    // No index on `id`: ULIDs are unique by construction, and the one lookup by id
    // (`Last-Event-ID`) reads within its session. An index would be one more page
    // written per append.
    "CREATE TABLE IF NOT EXISTS events (
        session_id TEXT NOT NULL, seq BIGINT NOT NULL, id TEXT NOT NULL,
        kind TEXT NOT NULL, data TEXT NOT NULL, private TEXT, created_ms BIGINT NOT NULL,
        PRIMARY KEY (session_id, seq))",
    "CREATE TABLE IF NOT EXISTS tool_calls (
        session_id TEXT NOT NULL, call_key TEXT NOT NULL, status TEXT NOT NULL,
        result TEXT, updated_ms BIGINT NOT NULL,
        PRIMARY KEY (session_id, call_key))",
    "CREATE TABLE IF NOT EXISTS api_tokens (
        name TEXT PRIMARY KEY, role TEXT NOT NULL, hash TEXT NOT NULL UNIQUE, created_ms BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS secrets (
        name TEXT PRIMARY KEY, sealed TEXT NOT NULL, version BIGINT NOT NULL, updated_ms BIGINT NOT NULL)",
];

/// A session's events after a sequence number, at most a limit.
const EVENTS_AFTER: &str = "SELECT id, seq, kind, data, private, created_ms FROM events
     WHERE session_id = $1 AND seq > $2 ORDER BY seq LIMIT $3";

/// A new session row: id, agent, version, status, time.
const CREATE_SESSION: &str =
    "INSERT INTO sessions (id, agent, agent_version, status, created_ms, updated_ms)
     VALUES ($1, $2, $3, $4, $5, $5)";

/// Where the events of a batch landed: `ids` in order, seqs from `first`.
fn appended(ids: Vec<String>, first: u64, created_ms: i64) -> Vec<Appended> {
    ids.into_iter()
        .zip(first..)
        .map(|(id, seq)| Appended {
            id,
            seq,
            created_ms,
        })
        .collect()
}

/// The store.
#[derive(Clone)]
pub struct Store {
    db: Db,
    backend: Backend,
    /// Where each session's log ends, as this process last wrote it (SQLite).
    last_seqs: Arc<append::LastSeqs>,
}

fn json(text: &str, what: impl Into<String>) -> Result<Value> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt {
        what: what.into(),
        message: e.to_string(),
    })
}

impl Store {
    /// Open (creating if needed) the store at `url` and apply the schema.
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
        if let Some(rest) = url.strip_prefix("sqlite://") {
            let (path, query_string) = rest.split_once('?').unwrap_or((rest, ""));
            let mut synchronous = "NORMAL";
            for p in query_string.split('&').filter(|p| !p.is_empty()) {
                match p.to_ascii_lowercase().as_str() {
                    "synchronous=full" => synchronous = "FULL",
                    "synchronous=normal" => synchronous = "NORMAL",
                    // sqlx's spelling of "create if missing", which is what happens anyway.
                    "mode=rwc" => {}
                    _ => return Err(StoreError::Url(url.to_string())),
                }
            }
            if path.is_empty() {
                return Err(StoreError::Url(url.to_string()));
            }
            let open = || -> std::result::Result<rusqlite::Connection, rusqlite::Error> {
                let conn = rusqlite::Connection::open(path)?;
                conn.busy_timeout(std::time::Duration::from_secs(5))?;
                // A new database gets 2 KiB pages: each commit writes whole pages
                // to the WAL, and most commits change a few rows at the ends of a
                // few B-trees, so 4 KiB pages doubled the bytes written (and the
                // fsyncs' length) while most events still fit in 2 KiB. No effect
                // on an existing database.
                conn.pragma_update(None, "page_size", 2048)?;
                conn.pragma_update(None, "journal_mode", "WAL")?;
                conn.pragma_update(None, "synchronous", synchronous)?;
                conn.set_prepared_statement_cache_capacity(64);
                // The bundled SQLite is built with STAT4, under which a statement
                // whose WHERE compares an indexed column to a parameter is parsed
                // and planned again every time a new value is bound (the value
                // might change the best plan): every cached statement, on every
                // use. The store's statements have one plan; keep it.
                conn.set_db_config(
                    rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
                    true,
                )?;
                for stmt in SCHEMA {
                    conn.execute_batch(stmt)?;
                }
                Ok(conn)
            };
            let conn = open().map_err(|e| StoreError::Db(e.into()))?;
            // Checkpoints (copying the WAL into the database, with an fsync) run on
            // their own thread and connection, not inside an append.
            conn.pragma_update(None, "wal_autocheckpoint", 0)
                .map_err(|e| StoreError::Db(e.into()))?;
            let conn = Arc::new(db::Sqlite::new(conn));
            spawn_checkpointer(path.to_string(), Arc::downgrade(&conn), wal);
            return Ok(Store {
                db: Db::Sqlite(conn),
                backend: Backend::Sqlite,
                last_seqs: Arc::default(),
            });
        }
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(StoreError::Url(url.to_string()));
        }
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(8)
            .connect(url)
            .await
            .map_err(|e| StoreError::Db(e.into()))?;
        let db = Db::Postgres(pool);
        for stmt in SCHEMA {
            query(stmt).execute(&db).await?;
        }
        Ok(Store {
            db,
            backend: Backend::Postgres,
            last_seqs: Arc::default(),
        })
    }

    /// Which backend this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Register `spec` as the next version of agent `name`; an unchanged spec
    /// returns the latest version instead of a new one.
    pub async fn put_agent(&self, name: &str, spec: &Value) -> Result<AgentRecord> {
        let text = spec.to_string();
        loop {
            if let Some(latest) = self.agent(name, None).await?
                && latest.spec == *spec
            {
                return Ok(latest);
            }
            let next: i64 =
                query("SELECT COALESCE(MAX(version), 0) + 1 AS v FROM agents WHERE name = $1")
                    .bind(name)
                    .fetch_one(&self.db)
                    .await?
                    .try_get("v")?;
            let created_ms = now_ms();
            match query(
                "INSERT INTO agents (name, version, spec, created_ms) VALUES ($1, $2, $3, $4)",
            )
            .bind(name)
            .bind(next)
            .bind(&text)
            .bind(created_ms)
            .execute(&self.db)
            .await
            {
                Ok(_) => {
                    return Ok(AgentRecord {
                        name: name.to_string(),
                        version: next as u32,
                        spec: spec.clone(),
                        created_ms,
                    });
                }
                // Someone registered the same version number first: go again.
                Err(e) if e.is_conflict() => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn agent_row(row: &Row) -> Result<AgentRecord> {
        let name: String = row.try_get("name")?;
        let version: i64 = row.try_get("version")?;
        let spec: String = row.try_get("spec")?;
        Ok(AgentRecord {
            spec: json(&spec, format!("agent {name} v{version}"))?,
            name,
            version: version as u32,
            created_ms: row.try_get("created_ms")?,
        })
    }

    /// Version `version` of agent `name` (the latest when `None`).
    pub async fn agent(&self, name: &str, version: Option<u32>) -> Result<Option<AgentRecord>> {
        let row = match version {
            Some(v) => {
                query("SELECT name, version, spec, created_ms FROM agents WHERE name = $1 AND version = $2")
                    .bind(name)
                    .bind(v as i64)
                    .fetch_optional(&self.db)
                    .await?
            }
            None => {
                query("SELECT name, version, spec, created_ms FROM agents WHERE name = $1 ORDER BY version DESC LIMIT 1")
                    .bind(name)
                    .fetch_optional(&self.db)
                    .await?
            }
        };
        row.as_ref().map(Store::agent_row).transpose()
    }

    /// The latest version of agent `name`, if it has one (without reading its
    /// spec).
    pub async fn latest_agent_version(&self, name: &str) -> Result<Option<u32>> {
        let row = query("SELECT COALESCE(MAX(version), 0) AS v FROM agents WHERE name = $1")
            .bind(name)
            .fetch_one(&self.db)
            .await?;
        let v: i64 = row.try_get("v")?;
        Ok((v > 0).then_some(v as u32))
    }

    /// Every version of agent `name`, oldest first.
    pub async fn agent_versions(&self, name: &str) -> Result<Vec<AgentRecord>> {
        let rows = query(
            "SELECT name, version, spec, created_ms FROM agents WHERE name = $1 ORDER BY version",
        )
        .bind(name)
        .fetch_all(&self.db)
        .await?;
        rows.iter().map(Store::agent_row).collect()
    }

    /// The latest version of every agent, by name.
    pub async fn agents(&self) -> Result<Vec<AgentRecord>> {
        let rows = query(
            "SELECT a.name, a.version, a.spec, a.created_ms FROM agents a
             WHERE a.version = (SELECT MAX(b.version) FROM agents b WHERE b.name = a.name)
             ORDER BY a.name",
        )
        .fetch_all(&self.db)
        .await?;
        rows.iter().map(Store::agent_row).collect()
    }

    /// A new session of `agent` at `version`, status `idle`.
    pub async fn create_session(&self, agent: &str, version: u32) -> Result<SessionRecord> {
        let id = next_id();
        let t = now_ms();
        query(CREATE_SESSION)
            .bind(&id)
            .bind(agent)
            .bind(version as i64)
            .bind("idle")
            .bind(t)
            .execute(&self.db)
            .await?;
        Ok(SessionRecord {
            id,
            agent: agent.to_string(),
            agent_version: version,
            status: "idle".into(),
            created_ms: t,
            updated_ms: t,
        })
    }

    /// A new session of `agent` at `version` whose log starts with `first`, with
    /// status `status`: one transaction, so a session never exists without its
    /// first event.
    pub async fn create_session_with(
        &self,
        agent: &str,
        version: u32,
        first: NewEvent<'_>,
        status: &str,
    ) -> Result<(SessionRecord, Appended)> {
        let t = now_ms();
        let record = SessionRecord {
            id: next_id(),
            agent: agent.to_string(),
            agent_version: version,
            status: status.to_string(),
            created_ms: t,
            updated_ms: t,
        };
        let write = append::Batch::new(&record.id, &[first], None, None, t);
        let ids = vec![write.rows[0].id.clone()];
        let insert = (record.clone(), CREATE_SESSION);
        let seq = match &self.db {
            Db::Sqlite(db) => {
                db.write(move |conn| {
                    let (r, sql) = insert;
                    conn.prepare_cached(&sql.replace('$', "?"))?
                        .execute(rusqlite::params![
                            r.id,
                            r.agent,
                            r.agent_version,
                            r.status,
                            r.created_ms
                        ])?;
                    write.sqlite(conn, None)
                })
                .await?
            }
            Db::Postgres(pool) => {
                let mut tx = pool.begin().await.map_err(DbError::from)?;
                sqlx::query(CREATE_SESSION)
                    .bind(&record.id)
                    .bind(agent)
                    .bind(version as i64)
                    .bind(status)
                    .bind(t)
                    .execute(&mut *tx)
                    .await
                    .map_err(DbError::from)?;
                let seq = write.postgres_in(&mut tx).await?;
                tx.commit().await.map_err(DbError::from)?;
                seq
            }
        };
        let first_seq = seq.ok_or_else(|| StoreError::NoSession(record.id.clone()))?;
        self.last_seqs.set(&record.id, first_seq);
        let event = appended(ids, first_seq, t).remove(0);
        Ok((record, event))
    }

    fn session_row(row: &Row) -> Result<SessionRecord> {
        let version: i64 = row.try_get("agent_version")?;
        Ok(SessionRecord {
            id: row.try_get("id")?,
            agent: row.try_get("agent")?,
            agent_version: version as u32,
            status: row.try_get("status")?,
            created_ms: row.try_get("created_ms")?,
            updated_ms: row.try_get("updated_ms")?,
        })
    }

    /// Session `id`.
    pub async fn session(&self, id: &str) -> Result<Option<SessionRecord>> {
        let row = query(
            "SELECT id, agent, agent_version, status, created_ms, updated_ms FROM sessions WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.db)
        .await?;
        row.as_ref().map(Store::session_row).transpose()
    }

    /// Sessions, newest first, at most `limit`, before session id `before`.
    pub async fn sessions(&self, before: Option<&str>, limit: u32) -> Result<Vec<SessionRecord>> {
        let rows = query(
            "SELECT id, agent, agent_version, status, created_ms, updated_ms FROM sessions
             WHERE id < $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(before.unwrap_or("~"))
        .bind(limit as i64)
        .fetch_all(&self.db)
        .await?;
        rows.iter().map(Store::session_row).collect()
    }

    /// Sessions whose status is `status` (a restarted host resumes the `running` ones).
    pub async fn sessions_with_status(&self, status: &str) -> Result<Vec<SessionRecord>> {
        let rows = query(
            "SELECT id, agent, agent_version, status, created_ms, updated_ms FROM sessions
             WHERE status = $1 ORDER BY id",
        )
        .bind(status)
        .fetch_all(&self.db)
        .await?;
        rows.iter().map(Store::session_row).collect()
    }

    /// Set session `id`'s status.
    pub async fn set_status(&self, id: &str, status: &str) -> Result<()> {
        let done = query("UPDATE sessions SET status = $1, updated_ms = $2 WHERE id = $3")
            .bind(status)
            .bind(now_ms())
            .bind(id)
            .execute(&self.db)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NoSession(id.to_string()));
        }
        Ok(())
    }

    /// Append an event to session `session`'s log: the next sequence number and a
    /// new ULID, assigned in the appending transaction (on Postgres, a concurrent
    /// append by another host that took the same number makes this one retry).
    pub async fn append(&self, session: &str, kind: &str, data: &Value) -> Result<Event> {
        self.append_private(session, kind, data, None).await
    }

    /// [`append`](Self::append) with the host's unredacted copy of the payload
    /// (kept in the log for resuming, never returned by the API).
    pub async fn append_private(
        &self,
        session: &str,
        kind: &str,
        data: &Value,
        private: Option<&Value>,
    ) -> Result<Event> {
        self.append_with_status(session, kind, data, private, None)
            .await
    }

    /// [`append_private`](Self::append_private), and set the session's status to
    /// `status` in the same transaction (so the status never disagrees with the
    /// log, even after a crash).
    pub async fn append_with_status(
        &self,
        session: &str,
        kind: &str,
        data: &Value,
        private: Option<&Value>,
        status: Option<&str>,
    ) -> Result<Event> {
        let (text, private_text) = (data.to_string(), private.map(Value::to_string));
        let event = NewEvent {
            kind,
            data: &text,
            private: private_text.as_deref(),
        };
        let at = self
            .append_batch(session, &[event], status, None)
            .await?
            .remove(0);
        Ok(Event {
            id: at.id,
            seq: at.seq,
            kind: kind.to_string(),
            data: data.clone(),
            created_ms: at.created_ms,
            private: private.cloned(),
        })
    }

    /// Append `events` to `session`'s log in one transaction, with consecutive
    /// sequence numbers, and in the same transaction set the session's status
    /// (`status`) and record a tool call's result (`finished_call`: call key and
    /// result, as [`finish_call`](Self::finish_call) does). All of it lands or
    /// none of it: a crash never leaves a call's record without its result event.
    /// An empty batch writes nothing.
    pub async fn append_batch(
        &self,
        session: &str,
        events: &[NewEvent<'_>],
        status: Option<&str>,
        finished_call: Option<(&str, &Value)>,
    ) -> Result<Vec<Appended>> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let write = append::Batch::new(session, events, status, finished_call, now_ms());
        let ids: Vec<String> = write.rows.iter().map(|r| r.id.clone()).collect();
        let created_ms = write.created_ms;
        let first = match &self.db {
            Db::Sqlite(db) => {
                let known = self.last_seqs.get(session);
                let count = write.rows.len() as u64;
                let first = db.write(move |conn| write.sqlite(conn, known)).await?;
                if let Some(first) = first {
                    self.last_seqs.set(session, first + count - 1);
                }
                first
            }
            Db::Postgres(pool) => write.postgres(pool).await?,
        };
        let Some(first) = first else {
            return Err(StoreError::NoSession(session.to_string()));
        };
        Ok(appended(ids, first, created_ms))
    }

    /// Events of `session` after sequence number `after`, at most `limit`.
    pub async fn events(&self, session: &str, after: u64, limit: u32) -> Result<Vec<Event>> {
        let rows = query(EVENTS_AFTER)
            .bind(session)
            .bind(after as i64)
            .bind(limit as i64)
            .fetch_all(&self.db)
            .await?;
        rows.iter()
            .map(|row| {
                let seq: i64 = row.try_get("seq")?;
                let data: String = row.try_get("data")?;
                let private: Option<String> = row.try_get("private")?;
                Ok(Event {
                    id: row.try_get("id")?,
                    seq: seq as u64,
                    kind: row.try_get("kind")?,
                    data: json(&data, format!("event {session}#{seq}"))?,
                    created_ms: row.try_get("created_ms")?,
                    private: private
                        .map(|p| json(&p, format!("event {session}#{seq}")))
                        .transpose()?,
                })
            })
            .collect()
    }

    /// The sequence number of event `id` in `session` (for `Last-Event-ID`; reads
    /// the session's events, as `id` has no index of its own).
    pub async fn event_seq(&self, session: &str, id: &str) -> Result<Option<u64>> {
        let row = query("SELECT seq FROM events WHERE session_id = $1 AND id = $2")
            .bind(session)
            .bind(id)
            .fetch_optional(&self.db)
            .await?;
        Ok(row
            .map(|r| r.try_get::<i64>("seq"))
            .transpose()?
            .map(|s| s as u64))
    }

    /// Store the sealed (encrypted) value of secret `name`, replacing any previous
    /// one; returns the secret's new version (from 1).
    pub async fn put_secret(&self, name: &str, sealed: &str) -> Result<u32> {
        loop {
            let current: Option<i64> = query("SELECT version FROM secrets WHERE name = $1")
                .bind(name)
                .fetch_optional(&self.db)
                .await?
                .map(|r| r.try_get("version"))
                .transpose()?;
            let result = match current {
                None => {
                    query("INSERT INTO secrets (name, sealed, version, updated_ms) VALUES ($1, $2, 1, $3)")
                        .bind(name)
                        .bind(sealed)
                        .bind(now_ms())
                        .execute(&self.db)
                        .await
                }
                Some(v) => {
                    query("UPDATE secrets SET sealed = $1, version = $2, updated_ms = $3 WHERE name = $4 AND version = $5")
                        .bind(sealed)
                        .bind(v + 1)
                        .bind(now_ms())
                        .bind(name)
                        .bind(v)
                        .execute(&self.db)
                        .await
                }
            };
            match result {
                Ok(done) if done.rows_affected() == 1 => return Ok(current.unwrap_or(0) as u32 + 1),
                // A concurrent set won: go again on top of it.
                Ok(_) => continue,
                Err(e) if e.is_conflict() => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// The sealed value and version of secret `name`.
    pub async fn secret(&self, name: &str) -> Result<Option<(String, u32)>> {
        let row = query("SELECT sealed, version FROM secrets WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.db)
            .await?;
        row.map(|r| -> Result<(String, u32)> {
            let v: i64 = r.try_get("version")?;
            Ok((r.try_get("sealed")?, v as u32))
        })
        .transpose()
    }

    /// Names and versions of every secret (never values).
    pub async fn secret_names(&self) -> Result<Vec<(String, u32)>> {
        let rows = query("SELECT name, version FROM secrets ORDER BY name")
            .fetch_all(&self.db)
            .await?;
        rows.iter()
            .map(|r| {
                let v: i64 = r.try_get("version")?;
                Ok((r.try_get("name")?, v as u32))
            })
            .collect()
    }

    /// Claim tool call `key` of `session` before running it.
    pub async fn claim_call(&self, session: &str, key: &str) -> Result<Claim> {
        let inserted = query(
            "INSERT INTO tool_calls (session_id, call_key, status, result, updated_ms)
             VALUES ($1, $2, 'started', NULL, $3)",
        )
        .bind(session)
        .bind(key)
        .bind(now_ms())
        .execute(&self.db)
        .await;
        match inserted {
            Ok(_) => Ok(Claim::New),
            Err(e) if e.is_conflict() => {
                let row = query(
                    "SELECT status, result FROM tool_calls WHERE session_id = $1 AND call_key = $2",
                )
                .bind(session)
                .bind(key)
                .fetch_one(&self.db)
                .await?;
                let status: String = row.try_get("status")?;
                let result: Option<String> = row.try_get("result")?;
                match (status.as_str(), result) {
                    ("done", Some(r)) => Ok(Claim::Done(json(&r, format!("tool call {key}"))?)),
                    _ => Ok(Claim::Unfinished),
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Record the result of tool call `key`.
    pub async fn finish_call(&self, session: &str, key: &str, result: &Value) -> Result<()> {
        query(
            "UPDATE tool_calls SET status = 'done', result = $1, updated_ms = $2
             WHERE session_id = $3 AND call_key = $4",
        )
        .bind(result.to_string())
        .bind(now_ms())
        .bind(session)
        .bind(key)
        .execute(&self.db)
        .await?;
        Ok(())
    }

    /// Store API token `name` with `role`, by the hash of its value (the value
    /// itself is never stored). Replaces a token of the same name.
    pub async fn put_api_token(&self, name: &str, role: &str, hash: &str) -> Result<()> {
        query("DELETE FROM api_tokens WHERE name = $1")
            .bind(name)
            .execute(&self.db)
            .await?;
        query("INSERT INTO api_tokens (name, role, hash, created_ms) VALUES ($1, $2, $3, $4)")
            .bind(name)
            .bind(role)
            .bind(hash)
            .bind(now_ms())
            .execute(&self.db)
            .await?;
        Ok(())
    }

    /// The token (name, role) whose value hashes to `hash`.
    pub async fn api_token(&self, hash: &str) -> Result<Option<(String, String)>> {
        let row = query("SELECT name, role FROM api_tokens WHERE hash = $1")
            .bind(hash)
            .fetch_optional(&self.db)
            .await?;
        row.map(|r| Ok((r.try_get("name")?, r.try_get("role")?)))
            .transpose()
    }

    /// Every API token's name and role.
    pub async fn api_tokens(&self) -> Result<Vec<(String, String)>> {
        let rows = query("SELECT name, role FROM api_tokens ORDER BY name")
            .fetch_all(&self.db)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("name")?, r.try_get("role")?)))
            .collect()
    }
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
        let stmt = conn.prepare_cached(&db::sqlite_sql(EVENTS_AFTER)).unwrap();
        assert_eq!(
            stmt.get_status(rusqlite::StatementStatus::RePrepare),
            0,
            "the log read was parsed again"
        );
    }
}
