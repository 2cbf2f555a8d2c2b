//! `/mcp/{toolset}`: the host's toolsets over MCP's streamable HTTP transport,
//! behind the API's tokens.
//!
//! Order of checks, each before the next: the toolset exists (404); `Host`
//! names this server (403, against DNS rebinding: nothing is done for a
//! foreign name, not even authentication); a browser's `Origin` is the
//! endpoint's own or allowed (403); a bearer token whose role may use
//! sessions (401 with `WWW-Authenticate` pointing at the RFC 9728 metadata,
//! or 403). Then rmcp's transport takes the request.
//! A toolset is resolved (fetched and verified) on its first request; a
//! failure answers 503 and the next request tries again.

use crate::auth::{Need, authenticate, require};
use crate::error::ApiError;
use crate::routes::AppState;
use axum::Json;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use tack_mcp::HttpToolset;
use tokio::sync::OnceCell;

/// The toolsets' endpoints, each resolved on first use.
pub(crate) struct Endpoints {
    toolsets: HashMap<String, OnceCell<HttpToolset>>,
    allowed_hosts: Vec<String>,
    allowed_origins: Vec<String>,
}

impl Endpoints {
    /// Endpoints for the toolsets of `host`, answering to loopback, the
    /// `listen` address and `[mcp] allowed-hosts`.
    pub(crate) fn new(host: &tack_config::HostConfig) -> Arc<Endpoints> {
        let mut allowed_hosts: Vec<String> = tack_mcp::http::LOOPBACK_HOSTS
            .iter()
            .map(|h| h.to_string())
            .collect();
        if !host.listen.ip().is_unspecified() {
            allowed_hosts.push(host.listen.ip().to_string());
        }
        allowed_hosts.extend(host.mcp.allowed_hosts.iter().cloned());
        Arc::new(Endpoints {
            toolsets: host
                .toolsets
                .keys()
                .map(|k| (k.clone(), OnceCell::new()))
                .collect(),
            allowed_hosts,
            allowed_origins: host.mcp.allowed_origins.clone(),
        })
    }

    async fn toolset(&self, state: &AppState, name: &str) -> Result<&HttpToolset, ApiError> {
        let cell = self
            .toolsets
            .get(name)
            .ok_or_else(|| no_toolset(state, name))?;
        cell.get_or_try_init(|| async {
            let tools = state.engine.toolset(name).await.map_err(|e| {
                tracing::warn!(toolset = %name, "cannot serve toolset over MCP: {e}");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    format!("toolset `{name}` cannot be served: {e}"),
                )
            })?;
            let policy = &state.engine.host().toolsets[name];
            let server = tack_mcp::ToolServer::new(name, tools)
                .map_err(|e| {
                    ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "unavailable",
                        format!("toolset `{name}` cannot be served: {e}"),
                    )
                })?
                .with_policy(policy, Some(state.engine.direct_approvals().clone()));
            Ok(HttpToolset::new(server, self.allowed_hosts.clone()))
        })
        .await
    }
}

fn no_toolset(state: &AppState, name: &str) -> ApiError {
    let known: Vec<&str> = state
        .engine
        .host()
        .toolsets
        .keys()
        .map(String::as_str)
        .collect();
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!(
            "this host serves no toolset `{name}` over MCP (toolsets: {}); the operator \
             defines them as [toolsets.NAME] in the host configuration",
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        ),
    )
}

/// The request's `Host`, if this server answers to it.
fn host<'a>(state: &AppState, headers: &'a HeaderMap) -> Result<&'a str, ApiError> {
    let value = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    tack_mcp::http::checked_host(&state.mcp.allowed_hosts, value)
        .map_err(|e| ApiError::new(StatusCode::FORBIDDEN, "forbidden_host", e))
}

/// This server's URL for `path`, as the client reached it.
fn url(headers: &HeaderMap, host: &str, path: &str) -> String {
    let https = headers
        .get("x-forwarded-proto")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"));
    format!("{}://{host}{path}", if https { "https" } else { "http" })
}

/// Any method on `/mcp/{toolset}`.
pub(crate) async fn endpoint(
    State(state): State<AppState>,
    Path(toolset): Path<String>,
    mut request: Request,
) -> Response {
    let mcp = state.mcp.clone();
    if !mcp.toolsets.contains_key(&toolset) {
        return no_toolset(&state, &toolset).into_response();
    }
    let headers = request.headers();
    let host = match host(&state, headers) {
        Ok(h) => h,
        Err(e) => return e.into_response(),
    };
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    if let Err(e) = tack_mcp::http::checked_origin(&mcp.allowed_origins, host, origin) {
        return ApiError::new(StatusCode::FORBIDDEN, "forbidden_origin", e).into_response();
    }
    let who = match authenticate(&state, headers)
        .await
        .and_then(|who| require(who, Need::Session))
    {
        Ok(who) => who,
        Err(e) if e.status == StatusCode::UNAUTHORIZED => {
            let metadata = url(
                headers,
                host,
                &format!("/.well-known/oauth-protected-resource/mcp/{toolset}"),
            );
            let mut response = e.into_response();
            if let Ok(v) =
                HeaderValue::from_str(&format!("Bearer resource_metadata=\"{metadata}\""))
            {
                response.headers_mut().insert(header::WWW_AUTHENTICATE, v);
            }
            return response;
        }
        Err(e) => return e.into_response(),
    };
    let server = match mcp.toolset(&state, &toolset).await {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    // The caller's own token goes no further than here: tools see who called,
    // never the credential.
    request.headers_mut().remove(header::AUTHORIZATION);
    request.extensions_mut().insert(who);
    server.handle(request).await.map(axum::body::Body::new)
}

/// `GET /.well-known/oauth-protected-resource/mcp/{toolset}` (RFC 9728): what
/// the endpoint is and how to present a token. tack's tokens are issued by
/// `tack token create`, not by an authorization server, so none is listed.
pub(crate) async fn resource_metadata(
    State(state): State<AppState>,
    Path(toolset): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    if !state.mcp.toolsets.contains_key(&toolset) {
        return Err(no_toolset(&state, &toolset));
    }
    let host = host(&state, &headers)?;
    Ok(Json(json!({
        "resource": url(&headers, host, &format!("/mcp/{toolset}")),
        "resource_name": format!("tack toolset {toolset}"),
        "bearer_methods_supported": ["header"],
    })))
}
