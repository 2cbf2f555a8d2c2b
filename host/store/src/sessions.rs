//! Sessions: one per conversation with an agent version, with a status.

use crate::Store;
use crate::append::Batch;
use crate::db::{Db, DbError, Row, query};
use crate::error::{Result, StoreError};
use crate::ids::{next_id, now_ms};
use crate::log::{Appended, NewEvent, appended};
use serde::Serialize;

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

/// A new session row: id, agent, version, status, time.
const CREATE_SESSION: &str =
    "INSERT INTO sessions (id, agent, agent_version, status, created_ms, updated_ms)
     VALUES ($1, $2, $3, $4, $5, $5)";

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

impl Store {
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
        let write = Batch::new(&record.id, &[first], None, None, t);
        let ids = vec![write.rows[0].id.clone()];
        let insert = record.clone();
        let seq = match &self.db {
            Db::Sqlite(db) => {
                db.write(move |conn| {
                    let r = insert;
                    conn.prepare_cached(&crate::db::sqlite_sql(CREATE_SESSION))?
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

    /// Session `id`.
    pub async fn session(&self, id: &str) -> Result<Option<SessionRecord>> {
        let row = query(
            "SELECT id, agent, agent_version, status, created_ms, updated_ms FROM sessions WHERE id = $1",
        )
            .bind(id)
            .fetch_optional(&self.db)
            .await?;
        row.as_ref().map(session_row).transpose()
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
        rows.iter().map(session_row).collect()
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
        rows.iter().map(session_row).collect()
    }
}

/// Operations only tests and examples use (feature `testing`).
#[cfg(any(test, feature = "testing"))]
impl Store {
    /// A new session of `agent` at `version`, status `idle`, with an empty log
    /// (the engine always starts one with its first message:
    /// [`create_session_with`](Self::create_session_with)).
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

    /// Set session `id`'s status alone (the engine sets it with the event that
    /// implies it: [`append_batch`](Self::append_batch)).
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
}
