//! The schema, as an ordered list of migrations.
//!
//! A database records each migration applied to it in `schema_migrations`
//! (version, description, time). Opening a store applies the missing ones in
//! order, in one transaction that also takes the database's write lock
//! (`BEGIN IMMEDIATE` on SQLite, an advisory lock on Postgres), so that hosts
//! starting together on one database migrate it once. A database whose version
//! is newer than this build's is refused, unchanged.
//!
//! Rules for a new migration: append it with the next version; never edit one
//! that has shipped; keep its SQL valid on both SQLite and Postgres; give it a fixture of
//! the version before it in `tests/fixtures/` so the upgrade test covers it.
//!
//! Version 1 is the schema tack used before databases had versions; its
//! statements create only what is missing, so a database of that time becomes
//! version 1 without a change to its tables.

use crate::db::DbError;
use crate::error::{Result, StoreError};
use crate::ids::now_ms;

/// One step of the schema.
#[derive(Debug)]
pub(crate) struct Migration {
    /// Its version (1, 2, …: the position in [`MIGRATIONS`]).
    pub(crate) version: i64,
    /// What it does, recorded with it.
    pub(crate) description: &'static str,
    /// Its statements, run in order (`$n` placeholders are not used).
    pub(crate) statements: &'static [&'static str],
}

/// Every migration, oldest first.
pub(crate) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "agents, sessions, events, tool calls, API tokens, secrets",
        statements: &[
            "CREATE TABLE IF NOT EXISTS agents (
                name TEXT NOT NULL, version BIGINT NOT NULL, spec TEXT NOT NULL, created_ms BIGINT NOT NULL,
                PRIMARY KEY (name, version))",
            "CREATE TABLE IF NOT EXISTS sessions (
                id TEXT PRIMARY KEY, agent TEXT NOT NULL, agent_version BIGINT NOT NULL,
                status TEXT NOT NULL, created_ms BIGINT NOT NULL, updated_ms BIGINT NOT NULL)",
            // No index on `id`: ULIDs are unique by construction, and the one lookup by
            // id (`Last-Event-ID`) reads within its session. An index would be one more
            // page written per append.
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
        ],
    },
    Migration {
        version: 2,
        description: "sessions and agent names record who owns them",
        statements: &[
            // NULL for sessions created before owners were recorded: only the
            // roles that reach every session see those.
            "ALTER TABLE sessions ADD COLUMN owner TEXT",
            "CREATE INDEX IF NOT EXISTS sessions_by_owner ON sessions (owner, id)",
            // The first publisher of a name owns it. Names registered before
            // owners were recorded get a NULL owner: only an admin publishes
            // them (or gives them an owner).
            "CREATE TABLE IF NOT EXISTS agent_owners (
                name TEXT PRIMARY KEY, owner TEXT, created_ms BIGINT NOT NULL)",
            "INSERT INTO agent_owners (name, owner, created_ms)
                SELECT name, NULL, MIN(created_ms) FROM agents GROUP BY name",
        ],
    },
    Migration {
        version: 3,
        description: "API tokens may expire",
        statements: &["ALTER TABLE api_tokens ADD COLUMN expires_ms BIGINT"],
    },
];

/// The newest schema version this build knows.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

const VERSIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
    version BIGINT PRIMARY KEY, description TEXT NOT NULL, applied_ms BIGINT NOT NULL)";
const CURRENT: &str = "SELECT COALESCE(MAX(version), 0) FROM schema_migrations";
const RECORD: &str =
    "INSERT INTO schema_migrations (version, description, applied_ms) VALUES ($1, $2, $3)";
/// Any constant will do: every tack host takes the same one.
const PG_LOCK: i64 = 0x7461_636b_5f6d_6967; // "tack_mig"

/// The migrations a database at `current` still needs, or why it cannot be
/// opened.
fn pending(current: i64) -> Result<&'static [Migration]> {
    if current > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema {
            found: current,
            known: SCHEMA_VERSION,
        });
    }
    Ok(&MIGRATIONS[current.max(0) as usize..])
}

/// Bring the SQLite database on `conn` to [`SCHEMA_VERSION`]; its version before.
pub(crate) fn sqlite(conn: &mut rusqlite::Connection) -> Result<i64> {
    let db = |e: rusqlite::Error| StoreError::Db(DbError::from(e));
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(db)?;
    tx.execute_batch(VERSIONS_TABLE).map_err(db)?;
    let current: i64 = tx.query_row(CURRENT, [], |r| r.get(0)).map_err(db)?;
    for m in pending(current)? {
        for stmt in m.statements {
            tx.execute_batch(stmt).map_err(db)?;
        }
        tx.execute(
            &RECORD.replace('$', "?"),
            rusqlite::params![m.version, m.description, now_ms()],
        )
        .map_err(db)?;
    }
    tx.commit().map_err(db)?;
    Ok(current)
}

/// Bring the Postgres database behind `pool` to [`SCHEMA_VERSION`]; its version
/// before.
pub(crate) async fn postgres(pool: &sqlx::PgPool) -> Result<i64> {
    let db = |e: sqlx::Error| StoreError::Db(DbError::from(e));
    let mut tx = pool.begin().await.map_err(db)?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(PG_LOCK)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    sqlx::query(VERSIONS_TABLE)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    let current: i64 = sqlx::query_scalar(CURRENT)
        .fetch_one(&mut *tx)
        .await
        .map_err(db)?;
    for m in pending(current)? {
        for stmt in m.statements {
            sqlx::query(stmt).execute(&mut *tx).await.map_err(db)?;
        }
        sqlx::query(RECORD)
            .bind(m.version)
            .bind(m.description)
            .bind(now_ms())
            .execute(&mut *tx)
            .await
            .map_err(db)?;
    }
    tx.commit().await.map_err(db)?;
    Ok(current)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_count_up_from_one_without_gaps() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version, i as i64 + 1, "{}", m.description);
            assert!(!m.statements.is_empty(), "{}", m.description);
        }
    }

    #[test]
    fn a_database_newer_than_this_build_is_refused() {
        assert_eq!(pending(0).unwrap().len(), MIGRATIONS.len());
        assert!(pending(SCHEMA_VERSION).unwrap().is_empty());
        let e = pending(SCHEMA_VERSION + 1).unwrap_err();
        assert!(matches!(e, StoreError::NewerSchema { .. }), "{e}");
        assert!(e.to_string().contains("a newer tack upgraded it"), "{e}");
    }

    #[test]
    fn opening_a_newer_database_changes_nothing_in_it() {
        let mut conn = rusqlite::Connection::open_in_memory().unwrap();
        sqlite(&mut conn).unwrap();
        conn.execute(
            "INSERT INTO schema_migrations VALUES (?1, 'from the future', 0)",
            [SCHEMA_VERSION + 1],
        )
        .unwrap();
        let e = sqlite(&mut conn).unwrap_err();
        assert!(
            matches!(e, StoreError::NewerSchema { found, known }
                if found == SCHEMA_VERSION + 1 && known == SCHEMA_VERSION),
            "{e}"
        );
        let rows: i64 = conn
            .query_row("SELECT COUNT(*) FROM schema_migrations", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, SCHEMA_VERSION + 1);
    }

    #[test]
    fn migrating_twice_changes_nothing_the_second_time() {
        let mut conn = rusqlite::Connection::open_in_memory().unwrap();
        assert_eq!(sqlite(&mut conn).unwrap(), 0);
        assert_eq!(sqlite(&mut conn).unwrap(), SCHEMA_VERSION);
        let rows: i64 = conn
            .query_row("SELECT COUNT(*) FROM schema_migrations", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, SCHEMA_VERSION);
    }
}
