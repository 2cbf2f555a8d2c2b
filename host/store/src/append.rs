//! Appending to a session's log: one transaction per batch of events, with the
//! session's status and a tool call's result record in the same transaction.
//!
//! The SQL differs by backend. SQLite has one writer at a time (the group
//! commit's transaction, `BEGIN IMMEDIATE`), so the next sequence number is read
//! and used inside that transaction and the inserts cannot collide; a plain
//! `INSERT` costs a quarter less than `INSERT … SELECT … RETURNING`. Postgres may
//! have several hosts appending at once: each insert takes `MAX(seq) + 1` in one
//! statement, and a batch that collided with another host's append is retried
//! whole.

use crate::db::DbError;
use rusqlite::OptionalExtension;

/// One event row, serialized.
pub(crate) struct EventRow {
    pub(crate) id: String,
    pub(crate) kind: String,
    pub(crate) data: String,
    pub(crate) private: Option<String>,
}

/// Everything one append writes.
pub(crate) struct Batch {
    pub(crate) session: String,
    pub(crate) rows: Vec<EventRow>,
    pub(crate) created_ms: i64,
    /// The session's new status.
    pub(crate) status: Option<String>,
    /// A tool call's key and result record.
    pub(crate) finished_call: Option<(String, String)>,
}

const LAST_SEQ_SQLITE: &str = "SELECT (SELECT seq FROM events WHERE session_id = ?1
                     ORDER BY seq DESC LIMIT 1)
     FROM sessions WHERE id = ?1";
const INSERT_SQLITE: &str =
    "INSERT INTO events (session_id, seq, id, kind, data, private, created_ms)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
const INSERT_PG: &str = "INSERT INTO events (session_id, seq, id, kind, data, private, created_ms)
     SELECT $1, COALESCE((SELECT seq FROM events WHERE session_id = $1
                          ORDER BY seq DESC LIMIT 1), 0) + 1,
            $2, $3, $4, $5, $6
     WHERE EXISTS (SELECT 1 FROM sessions WHERE id = $1)
     RETURNING seq";
const SET_STATUS: &str = "UPDATE sessions SET status = $1, updated_ms = $2 WHERE id = $3";
const FINISH_CALL: &str = "UPDATE tool_calls SET status = 'done', result = $1, updated_ms = $2
     WHERE session_id = $3 AND call_key = $4";

impl Batch {
    /// Serialize `events` for `session`, each with a new id.
    pub(crate) fn new(
        session: &str,
        events: &[crate::NewEvent<'_>],
        status: Option<&str>,
        finished_call: Option<(&str, &serde_json::Value)>,
        created_ms: i64,
    ) -> Batch {
        Batch {
            session: session.to_string(),
            rows: events
                .iter()
                .map(|e| EventRow {
                    id: crate::next_id(),
                    kind: e.kind.to_string(),
                    data: e.data.to_string(),
                    private: e.private.map(str::to_string),
                })
                .collect(),
            created_ms,
            status: status.map(str::to_string),
            finished_call: finished_call.map(|(k, r)| (k.to_string(), r.to_string())),
        }
    }

    /// Write it inside the group commit's transaction; the first event's
    /// sequence number, or `None` when the session does not exist (nothing
    /// written). Nothing here can fail after a change except the database itself
    /// (which then rolls the whole transaction back).
    pub(crate) fn sqlite(self, conn: &rusqlite::Connection) -> Result<Option<u64>, DbError> {
        // One statement: no row when the session does not exist, NULL when its
        // log is empty.
        let last: Option<Option<i64>> = conn
            .prepare_cached(LAST_SEQ_SQLITE)?
            .query_row([&self.session], |r| r.get(0))
            .optional()?;
        let Some(last) = last else {
            return Ok(None);
        };
        let last = last.unwrap_or(0);
        let mut insert = conn.prepare_cached(INSERT_SQLITE)?;
        for (row, seq) in self.rows.iter().zip(last + 1..) {
            insert.execute(rusqlite::params![
                self.session,
                seq,
                row.id,
                row.kind,
                row.data,
                row.private,
                self.created_ms
            ])?;
        }
        if let Some(status) = &self.status {
            conn.prepare_cached(&SET_STATUS.replace('$', "?"))?
                .execute(rusqlite::params![status, self.created_ms, self.session])?;
        }
        if let Some((key, record)) = &self.finished_call {
            conn.prepare_cached(&FINISH_CALL.replace('$', "?"))?
                .execute(rusqlite::params![
                    record,
                    self.created_ms,
                    self.session,
                    key
                ])?;
        }
        Ok(Some(last as u64 + 1))
    }

    /// Write it in a Postgres transaction (retried whole when another host's
    /// append took a sequence number first); as [`sqlite`](Self::sqlite).
    pub(crate) async fn postgres(self, pool: &sqlx::PgPool) -> Result<Option<u64>, DbError> {
        loop {
            match self.postgres_once(pool).await {
                Err(e) if e.is_conflict() => continue,
                other => return other,
            }
        }
    }

    async fn postgres_once(&self, pool: &sqlx::PgPool) -> Result<Option<u64>, DbError> {
        let mut tx = pool.begin().await?;
        let first = self.postgres_in(&mut tx).await?;
        if first.is_some() {
            tx.commit().await?;
        }
        // Otherwise dropping `tx` rolls back (nothing was written anyway).
        Ok(first)
    }

    /// The statements of [`postgres`](Self::postgres), inside transaction `tx`.
    pub(crate) async fn postgres_in(
        &self,
        tx: &mut sqlx::PgConnection,
    ) -> Result<Option<u64>, DbError> {
        use sqlx::Row as _;
        let mut first = None;
        for row in &self.rows {
            let inserted = sqlx::query(INSERT_PG)
                .bind(&self.session)
                .bind(&row.id)
                .bind(&row.kind)
                .bind(&row.data)
                .bind(row.private.as_deref())
                .bind(self.created_ms)
                .fetch_optional(&mut *tx)
                .await?;
            let Some(inserted) = inserted else {
                return Ok(None);
            };
            let seq: i64 = inserted.try_get("seq")?;
            first.get_or_insert(seq as u64);
        }
        if let Some(status) = &self.status {
            sqlx::query(SET_STATUS)
                .bind(status)
                .bind(self.created_ms)
                .bind(&self.session)
                .execute(&mut *tx)
                .await?;
        }
        if let Some((key, record)) = &self.finished_call {
            sqlx::query(FINISH_CALL)
                .bind(record)
                .bind(self.created_ms)
                .bind(&self.session)
                .bind(key)
                .execute(&mut *tx)
                .await?;
        }
        Ok(first)
    }
}
