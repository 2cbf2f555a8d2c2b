//! API tokens, stored by the SHA-256 of their value (never the value), each
//! with an optional expiry.

use crate::Store;
use crate::db::query;
use crate::error::Result;
use crate::ids::now_ms;
use serde::Serialize;

/// An API token as listed: never its value or hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiToken {
    /// Its name.
    pub name: String,
    /// Its role.
    pub role: String,
    /// When it stops being accepted, ms since the Unix epoch (`None`: never).
    pub expires_ms: Option<i64>,
}

impl Store {
    /// Store API token `name` with `role`, by the hash of its value (the value
    /// itself is never stored), accepted until `expires_ms` (`None`: until
    /// revoked). Replaces a token of the same name.
    pub async fn put_api_token(
        &self,
        name: &str,
        role: &str,
        hash: &str,
        expires_ms: Option<i64>,
    ) -> Result<()> {
        query("DELETE FROM api_tokens WHERE name = $1")
            .bind(name)
            .execute(&self.db)
            .await?;
        query(
            "INSERT INTO api_tokens (name, role, hash, created_ms, expires_ms)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(name)
        .bind(role)
        .bind(hash)
        .bind(now_ms())
        .bind(expires_ms)
        .execute(&self.db)
        .await?;
        Ok(())
    }

    /// The token (name, role) whose value hashes to `hash`, unless it has
    /// expired.
    pub async fn api_token(&self, hash: &str) -> Result<Option<(String, String)>> {
        let row = query("SELECT name, role, expires_ms FROM api_tokens WHERE hash = $1")
            .bind(hash)
            .fetch_optional(&self.db)
            .await?;
        let Some(r) = row else { return Ok(None) };
        let expires: Option<i64> = r.try_get("expires_ms")?;
        if expires.is_some_and(|e| e <= now_ms()) {
            return Ok(None);
        }
        Ok(Some((r.try_get("name")?, r.try_get("role")?)))
    }

    /// Remove API token `name`; false when there is none. It is refused from
    /// the next request on.
    pub async fn revoke_api_token(&self, name: &str) -> Result<bool> {
        let done = query("DELETE FROM api_tokens WHERE name = $1")
            .bind(name)
            .execute(&self.db)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Every API token, by name.
    pub async fn api_tokens(&self) -> Result<Vec<ApiToken>> {
        let rows = query("SELECT name, role, expires_ms FROM api_tokens ORDER BY name")
            .fetch_all(&self.db)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(ApiToken {
                    name: r.try_get("name")?,
                    role: r.try_get("role")?,
                    expires_ms: r.try_get("expires_ms")?,
                })
            })
            .collect()
    }
}
