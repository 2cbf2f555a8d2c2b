//! Versioned agents: every registered version of every agent file.

use crate::Store;
use crate::db::{Row, query};
use crate::error::{Result, json};
use crate::ids::now_ms;
use serde::Serialize;
use serde_json::Value;

/// One registered version of an agent.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentRecord {
    /// Agent name.
    pub name: String,
    /// Version, from 1.
    pub version: u32,
    /// The spec, as JSON.
    pub spec: Value,
    /// Registration time, ms since the Unix epoch.
    pub created_ms: i64,
}

fn agent_row(row: &Row) -> Result<AgentRecord> {
    let name: String = row.try_get("name")?;
    let version: i64 = row.try_get("version")?;
    let spec: String = row.try_get("spec")?;
    Ok(AgentRecord {
        spec: json(&spec, format!("agent {name} v{version}"))?,
        name,
        version: version as u32,
        created_ms: row.try_get("created_ms")?,
    })
}

impl Store {
    /// Make `owner` the owner of agent name `name` unless it has one; returns the
    /// name's owner after that (`None` for a name registered before tack
    /// recorded owners and given none since). One statement, so of two
    /// publishers racing for a new name exactly one owns it.
    pub async fn claim_agent(&self, name: &str, owner: &str) -> Result<Option<String>> {
        query(
            "INSERT INTO agent_owners (name, owner, created_ms) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(owner)
        .bind(now_ms())
        .execute(&self.db)
        .await?;
        Ok(self.agent_owner(name).await?.flatten())
    }

    /// Who owns agent name `name`: `None` when nobody has registered it,
    /// `Some(None)` when it has no recorded owner.
    pub async fn agent_owner(&self, name: &str) -> Result<Option<Option<String>>> {
        let row = query("SELECT owner FROM agent_owners WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.db)
            .await?;
        row.map(|r| r.try_get("owner"))
            .transpose()
            .map_err(Into::into)
    }

    /// Give agent name `name` to `owner`; false when no agent has that name.
    pub async fn set_agent_owner(&self, name: &str, owner: &str) -> Result<bool> {
        if self.latest_agent_version(name).await?.is_none() {
            return Ok(false);
        }
        let t = now_ms();
        let done = query("UPDATE agent_owners SET owner = $1 WHERE name = $2")
            .bind(owner)
            .bind(name)
            .execute(&self.db)
            .await?;
        if done.rows_affected() == 0 {
            query("INSERT INTO agent_owners (name, owner, created_ms) VALUES ($1, $2, $3)")
                .bind(name)
                .bind(owner)
                .bind(t)
                .execute(&self.db)
                .await?;
        }
        Ok(true)
    }

    /// Register `spec` as the next version of agent `name`; an unchanged spec
    /// returns the latest version instead of a new one.
    pub async fn put_agent(&self, name: &str, spec: &Value) -> Result<AgentRecord> {
        let text = spec.to_string();
        loop {
            if let Some(latest) = self.agent(name, None).await?
                && latest.spec == *spec
            {
                return Ok(latest);
            }
            let next: i64 =
                query("SELECT COALESCE(MAX(version), 0) + 1 AS v FROM agents WHERE name = $1")
                    .bind(name)
                    .fetch_one(&self.db)
                    .await?
                    .try_get("v")?;
            let created_ms = now_ms();
            match query(
                "INSERT INTO agents (name, version, spec, created_ms) VALUES ($1, $2, $3, $4)",
            )
            .bind(name)
            .bind(next)
            .bind(&text)
            .bind(created_ms)
            .execute(&self.db)
            .await
            {
                Ok(_) => {
                    return Ok(AgentRecord {
                        name: name.to_string(),
                        version: next as u32,
                        spec: spec.clone(),
                        created_ms,
                    });
                }
                // Someone registered the same version number first: go again.
                Err(e) if e.is_conflict() => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Version `version` of agent `name` (the latest when `None`).
    pub async fn agent(&self, name: &str, version: Option<u32>) -> Result<Option<AgentRecord>> {
        let row = match version {
            Some(v) => {
                query("SELECT name, version, spec, created_ms FROM agents WHERE name = $1 AND version = $2")
                    .bind(name)
                    .bind(v as i64)
                    .fetch_optional(&self.db)
                    .await?
            }
            None => {
                query("SELECT name, version, spec, created_ms FROM agents WHERE name = $1 ORDER BY version DESC LIMIT 1")
                    .bind(name)
                    .fetch_optional(&self.db)
                    .await?
            }
        };
        row.as_ref().map(agent_row).transpose()
    }

    /// The latest version of agent `name`, if it has one (without reading its
    /// spec).
    pub async fn latest_agent_version(&self, name: &str) -> Result<Option<u32>> {
        let row = query("SELECT COALESCE(MAX(version), 0) AS v FROM agents WHERE name = $1")
            .bind(name)
            .fetch_one(&self.db)
            .await?;
        let v: i64 = row.try_get("v")?;
        Ok((v > 0).then_some(v as u32))
    }

    /// Every version of agent `name`, oldest first.
    pub async fn agent_versions(&self, name: &str) -> Result<Vec<AgentRecord>> {
        let rows = query(
            "SELECT name, version, spec, created_ms FROM agents WHERE name = $1 ORDER BY version",
        )
        .bind(name)
        .fetch_all(&self.db)
        .await?;
        rows.iter().map(agent_row).collect()
    }

    /// The latest version of every agent, by name.
    pub async fn agents(&self) -> Result<Vec<AgentRecord>> {
        let rows = query(
            "SELECT a.name, a.version, a.spec, a.created_ms FROM agents a
             WHERE a.version = (SELECT MAX(b.version) FROM agents b WHERE b.name = a.name)
             ORDER BY a.name",
        )
        .fetch_all(&self.db)
        .await?;
        rows.iter().map(agent_row).collect()
    }
}
