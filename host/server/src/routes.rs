//! The routes.

use crate::auth::{Admin, AnyRole, Approvals, Build, Caller, Need, Session, Sessions, require};
use crate::error::ApiError;
use crate::extract::{Body, Params};
use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post, put};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tack_engine::{Engine, EngineError, Verdict};

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The engine.
    pub engine: Engine,
    /// Secrets, when the host has a master key.
    pub secrets: Option<tack_secrets::Secrets>,
    /// Streams and request rates, against the host's `[limits]`.
    pub(crate) quotas: std::sync::Arc<crate::quota::Quotas>,
    /// The toolsets served at `/mcp/{toolset}`.
    pub(crate) mcp: std::sync::Arc<crate::mcp::Endpoints>,
}

impl AppState {
    /// The state of an API over `engine` (and `secrets`, with a master key),
    /// with quotas from the engine's host configuration.
    pub fn new(engine: Engine, secrets: Option<tack_secrets::Secrets>) -> AppState {
        let quotas = crate::quota::Quotas::new(engine.host().limits.clone());
        let mcp = crate::mcp::Endpoints::new(engine.host());
        AppState {
            engine,
            secrets,
            quotas,
            mcp,
        }
    }
}

/// The API's router.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/health", get(health))
        .route("/v1/openapi.json", get(openapi))
        .route("/v1/agents", post(create_agent).get(list_agents))
        .route("/v1/agents/{name}", get(agent_versions))
        .route("/v1/agents/{name}/owner", put(set_agent_owner))
        .route("/v1/sessions", post(create_session).get(list_sessions))
        .route("/v1/sessions/{id}", get(get_session))
        .route("/v1/sessions/{id}/events", post(post_event).get(get_events))
        .route("/v1/sessions/{id}/stream", get(crate::sse::stream))
        .route("/v1/sessions/{id}/runs/{run}/trace", get(get_trace))
        .route("/v1/approvals", get(list_approvals))
        .route("/v1/approvals/{id}", post(decide_approval))
        .route("/v1/mcp-servers", get(list_mcp_servers))
        .route("/v1/mcp-servers/{name}/tools", get(mcp_server_tools))
        .route("/v1/mcp-oauth/callback", get(mcp_oauth_callback))
        .route("/v1/secrets", get(list_secrets))
        .route("/v1/secrets/{name}", put(put_secret))
        .route("/mcp/{toolset}", any(crate::mcp::endpoint))
        .route(
            "/.well-known/oauth-protected-resource/mcp/{toolset}",
            get(crate::mcp::resource_metadata),
        )
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(crate::extract::MAX_BODY))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such route; the API is described at /v1/openapi.json",
    )
}

fn parse<T: DeserializeOwned>(body: &Bytes, what: &str) -> Result<T, ApiError> {
    if body.is_empty() {
        return Err(ApiError::bad_request(format!(
            "the request has no body; send {what} as JSON"
        )));
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the body is not {what}: {e}")))
}

async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], crate::OPENAPI).into_response()
}

async fn create_agent(
    State(state): State<AppState>,
    Caller(who, _): Caller<Build>,
    Body(body): Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let text = std::str::from_utf8(&body)
        .map_err(|_| ApiError::bad_request("the agent file is not UTF-8 text"))?;
    // A JSON body may wrap the file: {"yaml": "..."}; otherwise the body is the
    // file itself (YAML, or JSON, which is YAML too).
    let yaml = serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|v| v.get("yaml").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_else(|| text.to_string());
    let record = state.engine.register_agent(&yaml, &who).await?;
    Ok((StatusCode::CREATED, Json(json!(record))))
}

async fn list_agents(
    State(state): State<AppState>,
    _: Caller<AnyRole>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        json!({"agents": state.engine.store().agents().await?}),
    ))
}

async fn agent_versions(
    State(state): State<AppState>,
    _: Caller<AnyRole>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let versions = state.engine.store().agent_versions(&name).await?;
    if versions.is_empty() {
        return Err(EngineError::NotFound(format!("agent `{name}` is not registered")).into());
    }
    let owner = state.engine.store().agent_owner(&name).await?.flatten();
    Ok(Json(
        json!({"name": name, "owner": owner, "versions": versions}),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Owner {
    owner: String,
}

/// Give an agent name to another token name (admin): its new owner publishes
/// its versions from then on.
async fn set_agent_owner(
    State(state): State<AppState>,
    _: Caller<Admin>,
    Path(name): Path<String>,
    Body(body): Body,
) -> Result<Json<Value>, ApiError> {
    let req: Owner = parse(&body, "{\"owner\": TOKEN-NAME}")?;
    if req.owner.trim().is_empty() {
        return Err(ApiError::bad_request("`owner` must name a token"));
    }
    if !state
        .engine
        .store()
        .set_agent_owner(&name, &req.owner)
        .await?
    {
        return Err(EngineError::NotFound(format!("agent `{name}` is not registered")).into());
    }
    Ok(Json(json!({"name": name, "owner": req.owner})))
}

/// The host's upstream MCP servers, for builders writing agent files: how
/// each is reached and filtered (no arguments or environment values, which
/// may hold what only the operator should see).
async fn list_mcp_servers(State(state): State<AppState>, _: Caller<Build>) -> Json<Value> {
    let servers: Vec<Value> = state
        .engine
        .host()
        .mcp_servers
        .iter()
        .map(|(name, c)| {
            let (transport, target) = match (&c.command, &c.url) {
                (Some(command), _) => ("stdio", command.clone()),
                (None, Some(url)) => (
                    "streamable-http",
                    url.split(['?', '#']).next().unwrap_or_default().to_string(),
                ),
                (None, None) => ("none", String::new()),
            };
            json!({
                "name": name,
                "transport": transport,
                "target": target,
                "trust_annotations": c.trust_annotations,
                "enable_tools": c.enable_tools,
                "disable_tools": c.disable_tools,
                "oauth": c.oauth.as_ref().map(|o| json!({
                    "delegation": match o.delegation {
                        tack_config::Delegation::Host => "host",
                        tack_config::Delegation::PerUser => "per-user",
                    },
                })),
                "sampling_model": c.sampling_model,
                "links": {"tools": format!("/v1/mcp-servers/{name}/tools")},
            })
        })
        .collect();
    Json(json!({"mcp_servers": servers}))
}

/// Where a user's browser comes back to after authorizing tack with an
/// upstream MCP server (per-user delegation). No bearer token: a browser
/// has none. The OAuth `state` names the authorization this host began,
/// and the code is only good with its PKCE verifier, which never left the
/// host.
async fn mcp_oauth_callback(State(state): State<AppState>, uri: axum::http::Uri) -> Response {
    let query = uri.query().unwrap_or_default();
    let page = |status: StatusCode, text: String| {
        (
            status,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            text,
        )
            .into_response()
    };
    if !query.split('&').any(|p| p.starts_with("state=")) {
        return page(
            StatusCode::BAD_REQUEST,
            "tack: this is where browsers come back after authorizing tack with an MCP \
             server; the authorization server adds the `code` and `state` it needs"
                .into(),
        );
    }
    match state
        .engine
        .complete_mcp_authorization(&format!("http://callback/?{query}"))
        .await
    {
        Ok((server, user)) => page(
            StatusCode::OK,
            format!(
                "tack is authorized with `{server}` for `{user}`. You can close this page; \
                 the waiting run goes on."
            ),
        ),
        Err(EngineError::NotFound(why)) => page(StatusCode::NOT_FOUND, format!("tack: {why}")),
        Err(e) => page(
            StatusCode::BAD_REQUEST,
            format!(
                "tack was not authorized: {e}. The waiting run shows a new address to try again."
            ),
        ),
    }
}

/// A server's tools as agents are offered them: after the host's filters,
/// with their effective flags and the name the model calls.
async fn mcp_server_tools(
    State(state): State<AppState>,
    _: Caller<Build>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let host = state.engine.host();
    if !host.mcp_servers.contains_key(&name) {
        let known: Vec<&str> = host.mcp_servers.keys().map(String::as_str).collect();
        return Err(EngineError::NotFound(format!(
            "no MCP server `{name}` is configured on this host (known: {})",
            if known.is_empty() {
                "none".into()
            } else {
                known.join(", ")
            }
        ))
        .into());
    }
    let servers = state.engine.tool_servers().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_gateway",
            "this host reaches no MCP servers",
        )
    })?;
    let tools = servers.tools(&name).await.map_err(|e| {
        let status = if e.code == "timeout" {
            StatusCode::GATEWAY_TIMEOUT
        } else {
            StatusCode::BAD_GATEWAY
        };
        ApiError::new(status, "upstream_failed", e.to_string())
    })?;
    let tools: Vec<Value> = tools
        .iter()
        .map(|t| {
            let d = &t.descriptor;
            json!({
                "name": d.name,
                "called": format!("{name}__{}", d.name),
                "description": d.description,
                "input_schema": d.input_schema,
                "output_schema": d.output_schema,
                "destructive": t.destructive,
                "read_only": d.annotations.read_only,
                "idempotent": d.annotations.idempotent,
                "open_world": d.annotations.open_world,
            })
        })
        .collect();
    Ok(Json(json!({"server": name, "tools": tools})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewSession {
    agent: String,
    input: String,
}

fn session_json(s: &tack_store::SessionRecord) -> Value {
    json!({
        "id": s.id, "agent": s.agent, "agent_version": s.agent_version, "status": s.status,
        "owner": s.owner, "created_ms": s.created_ms, "updated_ms": s.updated_ms,
        "links": {
            "events": format!("/v1/sessions/{}/events", s.id),
            "stream": format!("/v1/sessions/{}/stream", s.id),
        },
    })
}

async fn create_session(
    State(state): State<AppState>,
    Caller(who, _): Caller<Sessions>,
    Body(body): Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let req: NewSession = parse(&body, "{\"agent\": NAME[@VERSION], \"input\": TEXT}")?;
    let s = state
        .engine
        .create_session(&req.agent, &req.input, &who)
        .await?;
    Ok((StatusCode::CREATED, Json(session_json(&s))))
}

#[derive(Deserialize)]
struct Page {
    before: Option<String>,
    limit: Option<u32>,
    after: Option<u64>,
}

async fn list_sessions(
    State(state): State<AppState>,
    Caller(who, _): Caller<AnyRole>,
    Params(page): Params<Page>,
) -> Result<Json<Value>, ApiError> {
    let limit = page.limit.unwrap_or(50).clamp(1, 500);
    let sessions = state
        .engine
        .store()
        .sessions(page.before.as_deref(), limit, who.session_owner_scope())
        .await?;
    Ok(Json(json!({
        "sessions": sessions.iter().map(session_json).collect::<Vec<_>>(),
        "next_before": sessions.last().map(|s| s.id.clone()),
    })))
}

async fn get_session(s: Session<AnyRole>) -> Json<Value> {
    Json(session_json(&s.session))
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum UserEvent {
    Message {
        text: String,
    },
    ApprovalDecision {
        approval_id: String,
        decision: Verdict,
        reason: Option<String>,
        arguments: Option<Value>,
    },
    Answer {
        question_id: String,
        answer: String,
    },
    Interrupt,
}

async fn post_event(
    State(state): State<AppState>,
    Session { who, session, .. }: Session<AnyRole>,
    Body(body): Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let id = session.id;
    let event: UserEvent = parse(
        &body,
        "a user event: {\"type\": \"message\" | \"approval_decision\" | \"answer\" | \"interrupt\", ...}",
    )?;
    let e = &state.engine;
    let logged = match event {
        UserEvent::Message { text } => {
            let who = require(who, Need::Session)?;
            e.post_message(&id, &text, &who).await?
        }
        UserEvent::ApprovalDecision {
            approval_id,
            decision,
            reason,
            arguments,
        } => {
            // Who may decide is the approval's own list; the engine checks it.
            e.decide(&id, &approval_id, &who, decision, reason, arguments)
                .await?
        }
        UserEvent::Answer {
            question_id,
            answer,
        } => {
            let who = require(who, Need::Session)?;
            e.answer(&id, &question_id, &answer, &who).await?
        }
        UserEvent::Interrupt => {
            let who = require(who, Need::Session)?;
            e.interrupt(&id, &who).await?
        }
    };
    Ok((StatusCode::ACCEPTED, Json(json!(logged))))
}

async fn get_events(
    State(state): State<AppState>,
    s: Session<AnyRole>,
    Params(page): Params<Page>,
) -> Result<Json<Value>, ApiError> {
    let limit = page.limit.unwrap_or(100).clamp(1, 1000);
    let events = state
        .engine
        .events(&s.session.id, page.after.unwrap_or(0), limit)
        .await?;
    let next = events.last().map(|e| e.seq);
    Ok(Json(json!({"events": events, "next_after": next})))
}

async fn get_trace(
    State(state): State<AppState>,
    s: Session<AnyRole>,
    Path((_, run)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let records = state.engine.trace(&s.session.id, &run).await?;
    Ok(Json(json!({"run_id": run, "records": records})))
}

async fn list_approvals(
    State(state): State<AppState>,
    _: Caller<Approvals>,
) -> Result<Json<Value>, ApiError> {
    let pending = state.engine.pending_approvals().await;
    let mut approvals: Vec<Value> = pending
        .iter()
        .map(|(session, e)| {
            let mut v = json!(e);
            v["source"] = json!("session");
            v["session_id"] = json!(session);
            v
        })
        .collect();
    // Calls from MCP clients, waiting on their open requests.
    approvals.extend(
        state
            .engine
            .direct_approvals()
            .pending()
            .into_iter()
            .map(|a| json!(a)),
    );
    Ok(Json(json!({ "approvals": approvals })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Decision {
    decision: Verdict,
    reason: Option<String>,
    arguments: Option<Value>,
}

async fn decide_approval(
    State(state): State<AppState>,
    Caller(who, _): Caller<AnyRole>,
    Path(approval): Path<String>,
    Body(body): Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let d: Decision = parse(
        &body,
        "a decision: {\"decision\": \"approve\" | \"deny\" | \"edit\", \"reason\"?, \"arguments\"?}",
    )?;
    let direct = state.engine.direct_approvals();
    if direct.contains(&approval) {
        let decided = direct
            .decide(&approval, &who, d.decision, d.reason, d.arguments)
            .await?;
        let mut v = json!(decided);
        v["decision"] = json!(d.decision);
        v["by"] = json!(who.name);
        return Ok((StatusCode::ACCEPTED, Json(v)));
    }
    // An approval in a session the caller does not reach is not found either.
    let unknown = || EngineError::NotFound(format!("no approval `{approval}`"));
    let session = state
        .engine
        .session_of_approval(&approval)
        .await?
        .ok_or_else(unknown)?;
    state
        .engine
        .session(&session, &who)
        .await
        .map_err(|_| unknown())?;
    let logged = state
        .engine
        .decide(&session, &approval, &who, d.decision, d.reason, d.arguments)
        .await?;
    Ok((StatusCode::ACCEPTED, Json(json!(logged))))
}

async fn list_secrets(
    State(state): State<AppState>,
    _: Caller<Admin>,
) -> Result<Json<Value>, ApiError> {
    let names = state.engine.store().secret_names().await?;
    Ok(Json(json!({
        "secrets": names.iter().map(|(n, v)| json!({"name": n, "version": v})).collect::<Vec<_>>()
    })))
}

async fn put_secret(
    State(state): State<AppState>,
    _: Caller<Admin>,
    Path(name): Path<String>,
    Body(body): Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let secrets = state.secrets.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            "no_master_key",
            "this host has no master key, so it cannot store secrets; start it with TACK_MASTER_KEY or TACK_MASTER_KEY_FILE",
        )
    })?;
    if body.is_empty() {
        return Err(ApiError::bad_request(
            "the body is the secret's value; it is empty",
        ));
    }
    let value = body.strip_suffix(b"\n").unwrap_or(&body);
    let version = secrets
        .set(&name, value)
        .await
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    // Write-only: the answer names the secret and its version, never the value.
    Ok((
        StatusCode::CREATED,
        Json(json!({"name": name, "version": version})),
    ))
}
