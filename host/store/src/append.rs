//! Appending to a session's log: one transaction per batch of events, with the
//! session's status and a tool call's result record in the same transaction.
//!
//! The SQL differs by backend. SQLite has one writer at a time (the group
//! commit's transaction, `BEGIN IMMEDIATE`), so the next sequence number is
//! known inside that transaction (remembered from this process's last commit to
//! the session, else read) and plain `INSERT`s use it: a quarter cheaper than
//! `INSERT … SELECT … RETURNING`. A remembered number gone stale (another process
//! appended) makes the first insert collide before anything changed; the number
//! is then read and the batch goes on. Postgres may
//! have several hosts appending at once: each insert takes `MAX(seq) + 1` in one
//! statement, and a batch that collided with another host's append is retried
//! whole.

use crate::db::DbError;
use rusqlite::OptionalExtension;

/// Whether `e` is a constraint violation (here: a sequence number taken).
fn is_conflict(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if f.code == rusqlite::ErrorCode::ConstraintViolation)
}

/// The last sequence number this process committed, by session (SQLite only):
/// an append then need not read it from the log first. Only ever a hint: a
/// stale one makes the append's first insert collide, and the log is asked.
/// Bounded: emptied when it holds [`LastSeqs::MAX`] sessions.
#[derive(Debug, Default)]
pub(crate) struct LastSeqs(std::sync::Mutex<std::collections::HashMap<String, u64>>);

impl LastSeqs {
    /// Sessions remembered at most.
    const MAX: usize = 65_536;

    /// What this process last committed to `session`, if it remembers.
    pub(crate) fn get(&self, session: &str) -> Option<u64> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(session)
            .copied()
    }

    /// `session`'s log now ends at `last` (or later).
    pub(crate) fn set(&self, session: &str, last: u64) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= Self::MAX && !map.contains_key(session) {
            map.clear();
        }
        let known = map.entry(session.to_string()).or_insert(last);
        *known = (*known).max(last);
    }
}

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
    pub(crate) status: Option<&'static str>,
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
        events: &[crate::log::NewEvent<'_>],
        status: Option<crate::SessionStatus>,
        finished_call: Option<(&str, &serde_json::Value)>,
        created_ms: i64,
    ) -> Batch {
        Batch {
            session: session.to_string(),
            rows: events
                .iter()
                .map(|e| EventRow {
                    id: crate::ids::next_id(),
                    kind: e.kind.to_string(),
                    data: e.data.to_string(),
                    private: e.private.map(str::to_string),
                })
                .collect(),
            created_ms,
            status: status.map(crate::SessionStatus::as_str),
            finished_call: finished_call.map(|(k, r)| (k.to_string(), r.to_string())),
        }
    }

    /// Write it inside the group commit's transaction; the first event's
    /// sequence number, or `None` when the session does not exist (nothing
    /// written). Nothing here can fail after a change except the database itself
    /// (which then rolls the whole transaction back).
    ///
    /// `known_last` is the session's last sequence number as this process last
    /// committed it (the store's [`LastSeqs`]), which saves reading it. If another
    /// writer appended since, the first insert collides (changing nothing) and the
    /// log is asked after all.
    pub(crate) fn sqlite(
        self,
        conn: &rusqlite::Connection,
        known_last: Option<u64>,
    ) -> Result<Option<u64>, DbError> {
        let mut last = match known_last {
            Some(last) => last as i64,
            None => match Self::last_seq(conn, &self.session)? {
                Some(last) => last,
                None => return Ok(None),
            },
        };
        let mut insert = conn.prepare_cached(INSERT_SQLITE)?;
        let mut put = |row: &EventRow, seq: i64| {
            insert.execute(rusqlite::params![
                self.session,
                seq,
                row.id,
                row.kind,
                row.data,
                row.private,
                self.created_ms
            ])
        };
        if let Some(first) = self.rows.first() {
            match put(first, last + 1) {
                Ok(_) => {}
                Err(e) if known_last.is_some() && is_conflict(&e) => {
                    // Another writer appended since this process last did; nothing
                    // was written yet: ask the log.
                    last = match Self::last_seq(conn, &self.session)? {
                        Some(last) => last,
                        None => return Ok(None),
                    };
                    put(first, last + 1)?;
                }
                Err(e) => return Err(e.into()),
            }
        }
        for (row, seq) in self.rows.iter().zip(last + 1..).skip(1) {
            put(row, seq)?;
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

    /// The session's last sequence number (0 for an empty log), or `None` when
    /// the session does not exist: one statement.
    fn last_seq(conn: &rusqlite::Connection, session: &str) -> Result<Option<i64>, DbError> {
        let last: Option<Option<i64>> = conn
            .prepare_cached(LAST_SEQ_SQLITE)?
            .query_row([session], |r| r.get(0))
            .optional()?;
        Ok(last.map(|l| l.unwrap_or(0)))
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
