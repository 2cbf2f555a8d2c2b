//! Sessions: one per conversation with an agent version, with a status.

use crate::Store;
use crate::append::Batch;
use crate::db::{Db, DbError, Row, query};
use crate::error::{Result, StoreError};
use crate::ids::{next_id, now_ms};
use crate::log::{Appended, NewEvent, appended};
use serde::Serialize;
use std::fmt;
use std::str::FromStr;

/// Where a session stands, as its row records it (kept in step with the log:
/// the status is written in the transaction of the event that implies it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionStatus {
    /// Nothing to do.
    Idle,
    /// A message waits for a run to start.
    Queued,
    /// A run is going.
    Running,
    /// The run waits for an approver.
    WaitingApproval,
    /// The run waits for the user's answer.
    WaitingInput,
}

impl SessionStatus {
    /// Every status.
    pub const ALL: [SessionStatus; 5] = [
        SessionStatus::Idle,
        SessionStatus::Queued,
        SessionStatus::Running,
        SessionStatus::WaitingApproval,
        SessionStatus::WaitingInput,
    ];

    /// As stored and served (`idle`, `queued`, `running`, `waiting_approval`,
    /// `waiting_input`).
    pub fn as_str(self) -> &'static str {
        match self {
            SessionStatus::Idle => "idle",
            SessionStatus::Queued => "queued",
            SessionStatus::Running => "running",
            SessionStatus::WaitingApproval => "waiting_approval",
            SessionStatus::WaitingInput => "waiting_input",
        }
    }
}

impl fmt::Display for SessionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SessionStatus {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        SessionStatus::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| format!("`{s}` is not a session status"))
    }
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
    /// Where it stands.
    pub status: SessionStatus,
    /// Creation time, ms.
    pub created_ms: i64,
    /// Last change, ms.
    pub updated_ms: i64,
    /// The name of the token that created it (`None` for sessions created
    /// before tack recorded owners).
    pub owner: Option<String>,
}

/// A new session row: id, agent, version, status, time, owner.
const CREATE_SESSION: &str =
    "INSERT INTO sessions (id, agent, agent_version, status, created_ms, updated_ms, owner)
     VALUES ($1, $2, $3, $4, $5, $5, $6)";

/// `SELECT` of a [`SessionRecord`]'s columns from `sessions`, then `$rest`.
macro_rules! select_sessions {
    ($rest:literal) => {
        concat!(
            "SELECT id, agent, agent_version, status, created_ms, updated_ms, owner FROM sessions ",
            $rest
        )
    };
}

fn session_row(row: &Row) -> Result<SessionRecord> {
    let version: i64 = row.try_get("agent_version")?;
    let id: String = row.try_get("id")?;
    let status: String = row.try_get("status")?;
    let status = status.parse().map_err(|message| StoreError::Corrupt {
        what: format!("session {id}"),
        message,
    })?;
    Ok(SessionRecord {
        id,
        agent: row.try_get("agent")?,
        agent_version: version as u32,
        status,
        created_ms: row.try_get("created_ms")?,
        updated_ms: row.try_get("updated_ms")?,
        owner: row.try_get("owner")?,
    })
}

impl Store {
    /// A new session of `agent` at `version`, owned by `owner`, whose log starts
    /// with `first`, with status `status`: one transaction, so a session never
    /// exists without its first event.
    pub async fn create_session_with(
        &self,
        agent: &str,
        version: u32,
        owner: &str,
        first: NewEvent<'_>,
        status: SessionStatus,
    ) -> Result<(SessionRecord, Appended)> {
        let t = now_ms();
        let record = SessionRecord {
            id: next_id(),
            agent: agent.to_string(),
            agent_version: version,
            status,
            created_ms: t,
            updated_ms: t,
            owner: Some(owner.to_string()),
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
                            r.status.as_str(),
                            r.created_ms,
                            r.owner
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
                    .bind(status.as_str())
                    .bind(t)
                    .bind(owner)
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
        let row = query(select_sessions!("WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.db)
            .await?;
        row.as_ref().map(session_row).transpose()
    }

    /// Sessions, newest first, at most `limit`, before session id `before`;
    /// only those `owner` owns when it is given.
    pub async fn sessions(
        &self,
        before: Option<&str>,
        limit: u32,
        owner: Option<&str>,
    ) -> Result<Vec<SessionRecord>> {
        let before = before.unwrap_or("~");
        let rows = match owner {
            Some(owner) => {
                query(select_sessions!(
                    "WHERE owner = $1 AND id < $2 ORDER BY id DESC LIMIT $3"
                ))
                .bind(owner)
                .bind(before)
                .bind(limit as i64)
                .fetch_all(&self.db)
                .await?
            }
            None => {
                query(select_sessions!("WHERE id < $1 ORDER BY id DESC LIMIT $2"))
                    .bind(before)
                    .bind(limit as i64)
                    .fetch_all(&self.db)
                    .await?
            }
        };
        rows.iter().map(session_row).collect()
    }

    /// How many sessions `owner` owns.
    pub async fn count_sessions(&self, owner: &str) -> Result<u64> {
        let row = query("SELECT COUNT(*) AS n FROM sessions WHERE owner = $1")
            .bind(owner)
            .fetch_one(&self.db)
            .await?;
        let n: i64 = row.try_get("n")?;
        Ok(n as u64)
    }

    /// Sessions whose status is `status` (a restarted host resumes the `running` ones).
    pub async fn sessions_with_status(&self, status: SessionStatus) -> Result<Vec<SessionRecord>> {
        let rows = query(select_sessions!("WHERE status = $1 ORDER BY id"))
            .bind(status.as_str())
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
            .bind(SessionStatus::Idle.as_str())
            .bind(t)
            .bind(None::<&str>)
            .execute(&self.db)
            .await?;
        Ok(SessionRecord {
            id,
            agent: agent.to_string(),
            agent_version: version,
            status: SessionStatus::Idle,
            created_ms: t,
            updated_ms: t,
            owner: None,
        })
    }

    /// Set session `id`'s status alone (the engine sets it with the event that
    /// implies it: [`append_batch`](Self::append_batch)).
    pub async fn set_status(&self, id: &str, status: SessionStatus) -> Result<()> {
        let done = query("UPDATE sessions SET status = $1, updated_ms = $2 WHERE id = $3")
            .bind(status.as_str())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_stored_by_their_names() {
        for s in SessionStatus::ALL {
            assert_eq!(s.as_str().parse::<SessionStatus>(), Ok(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        assert!("finished".parse::<SessionStatus>().is_err());
    }

    /// A row whose status this build does not know is reported as corrupt,
    /// naming the session, instead of being read as some other status.
    #[tokio::test]
    async fn an_unknown_stored_status_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("s.db").display());
        let store = Store::open(&url).await.unwrap();
        let s = store.create_session("a", 1).await.unwrap();
        query("UPDATE sessions SET status = 'paused' WHERE id = $1")
            .bind(&s.id)
            .execute(&store.db)
            .await
            .unwrap();
        let e = store.session(&s.id).await.unwrap_err().to_string();
        assert!(e.contains(&s.id) && e.contains("`paused`"), "{e}");
    }
}
