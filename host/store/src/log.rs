//! Each session's append-only event log.
//!
//! An event has a per-session sequence number (gap-free, assigned in the
//! appending transaction: see `append.rs`) and a ULID id (what SSE clients send
//! back as `Last-Event-ID`). Appends are atomic: after a crash an event is
//! either wholly there or not at all.

use crate::append::Batch;
use crate::db::{Db, query};
use crate::error::{Result, StoreError, json};
use crate::ids::now_ms;
use crate::{SessionStatus, Store};
use serde::Serialize;
use serde_json::Value;

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

/// A session's events after a sequence number, at most a limit.
pub(crate) const EVENTS_AFTER: &str = "SELECT id, seq, kind, data, private, created_ms FROM events
     WHERE session_id = $1 AND seq > $2 ORDER BY seq LIMIT $3";

/// Where the events of a batch landed: `ids` in order, seqs from `first`.
pub(crate) fn appended(ids: Vec<String>, first: u64, created_ms: i64) -> Vec<Appended> {
    ids.into_iter()
        .zip(first..)
        .map(|(id, seq)| Appended {
            id,
            seq,
            created_ms,
        })
        .collect()
}

impl Store {
    /// Append `events` to `session`'s log in one transaction, with consecutive
    /// sequence numbers, and in the same transaction set the session's status
    /// (`status`) and record a tool call's result (`finished_call`: call key and
    /// result, closing the record [`claim_call`](Self::claim_call) opened). All
    /// of it lands or none of it: a crash never leaves a call's record without
    /// its result event. An empty batch writes nothing.
    ///
    /// On Postgres, a concurrent append by another host that took the same
    /// sequence numbers makes this one retry.
    pub async fn append_batch(
        &self,
        session: &str,
        events: &[NewEvent<'_>],
        status: Option<SessionStatus>,
        finished_call: Option<(&str, &Value)>,
    ) -> Result<Vec<Appended>> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let write = Batch::new(session, events, status, finished_call, now_ms());
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
}

/// Operations only tests and examples use (feature `testing`): the engine
/// appends through [`Store::append_batch`] alone.
#[cfg(any(test, feature = "testing"))]
impl Store {
    /// Append one event.
    pub async fn append(&self, session: &str, kind: &str, data: &Value) -> Result<Event> {
        self.append_with_status(session, kind, data, None, None)
            .await
    }

    /// Append one event with the host's unredacted copy of its payload (kept for
    /// resuming, never served), setting the session's status to `status` in the
    /// same transaction.
    pub async fn append_with_status(
        &self,
        session: &str,
        kind: &str,
        data: &Value,
        private: Option<&Value>,
        status: Option<SessionStatus>,
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
}
