//! Tool-call idempotency records: claimed before a destructive tool runs and
//! closed with its result (in the transaction of its `tool_result` event:
//! [`Store::append_batch`]), so a resumed run never executes a call twice.

use crate::Store;
use crate::db::query;
use crate::error::{Result, json};
use crate::ids::now_ms;
use serde_json::Value;

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

impl Store {
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
}

/// Operations only tests use (feature `testing`).
#[cfg(any(test, feature = "testing"))]
impl Store {
    /// Record the result of tool call `key` alone (the engine records it with
    /// the call's `tool_result` event: [`append_batch`](Self::append_batch)).
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
}
