//! tack's sessions API over [`tack_engine::Engine`] (axum).
//!
//! Routes (all under `/v1`, documented in [`OPENAPI`], served at
//! `/v1/openapi.json`):
//! agents (`POST/GET /agents`, `GET /agents/{name}`, `PUT /agents/{name}/owner`), sessions
//! (`POST/GET /sessions`, `GET /sessions/{id}`), user events
//! (`POST /sessions/{id}/events`: message, approval decision, answer,
//! interrupt), the log (`GET /sessions/{id}/events`, paged) and its live
//! stream (`GET /sessions/{id}/stream`, SSE with `Last-Event-ID`), traces
//! (`GET /sessions/{id}/runs/{run}/trace`), approvals (`GET /approvals`,
//! `POST /approvals/{id}`), secrets (`PUT /secrets/{name}`, write-only) and
//! health. Outside `/v1`, `/mcp/{toolset}` serves a toolset over MCP
//! (streamable HTTP, [`mcp`]) with its RFC 9728 metadata under
//! `/.well-known/oauth-protected-resource/`. Every route but health and the OpenAPI document needs a bearer
//! token ([`auth`]).

pub mod auth;
pub mod error;
mod extract;
mod mcp;
mod quota;
mod routes;
mod sse;

pub use routes::{AppState, router};

/// The OpenAPI 3.1 document of this API.
pub const OPENAPI: &str = include_str!("../openapi.json");

/// Serve the API on `listener` until the process ends, within the host's
/// `[limits]` on connections and header time.
pub async fn serve(listener: tokio::net::TcpListener, state: AppState) -> std::io::Result<()> {
    let limits = &state.engine.host().limits;
    let limits = tack_serve::Limits {
        connections: limits.connections,
        header_timeout: limits.header_timeout.0,
    };
    tack_serve::serve(listener, router(state), limits).await
}
