//! Sealed (encrypted) secrets by name, with a version per change. The store
//! never sees a plain value: `tack-secrets` seals and opens them.

use crate::Store;
use crate::db::query;
use crate::error::Result;
use crate::ids::now_ms;

impl Store {
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

    /// Forget secret `name`; whether there was one.
    pub async fn delete_secret(&self, name: &str) -> Result<bool> {
        let done = query("DELETE FROM secrets WHERE name = $1")
            .bind(name)
            .execute(&self.db)
            .await?;
        Ok(done.rows_affected() > 0)
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
}
