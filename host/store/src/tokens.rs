//! API tokens, stored by the SHA-256 of their value (never the value).

use crate::Store;
use crate::db::query;
use crate::error::Result;
use crate::ids::now_ms;

impl Store {
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
