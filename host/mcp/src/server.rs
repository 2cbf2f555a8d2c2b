//! tack's tools as an MCP server.
//!
//! A [`ToolServer`] answers `tools/list` with its tools (names, descriptions,
//! input and output schemas, annotations after the host's central flags) and
//! `tools/call` by running the tool in a fresh sandbox. A tool's own error, a
//! schema violation or a sandbox limit is a tool result with `isError` (the
//! client reads the message); only an unknown tool is a protocol error.
//!
//! A destructive tool needs an approval before it runs. Over HTTP (with a
//! [`DirectApprovals`] desk and the caller's [`Principal`] in the request), the
//! call waits for an approver's decision through the approvals API, sending
//! progress notifications while it waits; a denial or a timeout is a tool
//! error and nothing runs. Over stdio nobody can be asked, so such a call is
//! refused with a tool error that says so, unless the toolset says its clients
//! gate calls themselves (`destructive-calls = "run"`, for another tack host's
//! gateway).

// MCP logging (`logging/setLevel`, `notifications/message`) is deprecated by
// SEP-2577 in the 2026-07-28 revision, and rmcp marks it so; it is still part of
// 2025-11-25, which most clients speak, so tool log records are sent to clients
// that ask for them.
#![allow(deprecated)]

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    ListToolsResult, LoggingLevel, LoggingMessageNotificationParam, PaginatedRequestParams,
    ProgressNotificationParam, ServerCapabilities, ServerConfig, SetLevelRequestParams, Tool,
    ToolAnnotations,
};
use rmcp::service::{RequestContext, RoleServer};
use rmcp::{ErrorData as McpError, ServerHandler};
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tack_config::{DestructiveCalls, Toolset};
use tack_engine::Principal;
use tack_engine::components::{Backend, ToolEntry};
use tack_engine::direct::{DirectApprovals, DirectOutcome, DirectRequest};
use tack_runtime::{CallContext, CallError, Content, LogLevel, LogRecord};

/// How often a call waiting for approval tells its client it still waits.
const PROGRESS_EVERY: Duration = Duration::from_secs(15);

/// A set of tack tools served over MCP. Cheap to clone.
#[derive(Clone)]
pub struct ToolServer {
    name: String,
    tools: Arc<Vec<ToolEntry>>,
    gate: Arc<Gate>,
    /// The least severe log level the session's client asked for
    /// (`logging/setLevel`); tool log records at or above it are sent.
    level: Arc<Mutex<Option<LoggingLevel>>>,
}

/// What becomes of calls to destructive tools.
struct Gate {
    destructive_calls: DestructiveCalls,
    /// Where calls wait for approvers; `None` over stdio.
    desk: Option<Arc<DirectApprovals>>,
    approver_role: String,
    timeout: Duration,
    redact: Vec<String>,
}

impl ToolServer {
    /// A server called `name` (the toolset's name) offering `tools`, which
    /// must have distinct names and each run in a sandbox or upstream.
    pub fn new(name: &str, tools: Vec<ToolEntry>) -> Result<ToolServer, String> {
        let mut seen = std::collections::BTreeSet::new();
        for t in &tools {
            if matches!(t.backend, Backend::Builtin) {
                return Err(format!("tool `{}` is built into agent runs", t.name));
            }
            if !seen.insert(t.name.clone()) {
                return Err(format!(
                    "two plugins of toolset `{name}` offer a tool named `{}`; an MCP client \
                     could not tell them apart, so list only one of them",
                    t.name
                ));
            }
        }
        Ok(ToolServer {
            name: name.to_string(),
            tools: Arc::new(tools),
            gate: Arc::new(Gate {
                destructive_calls: DestructiveCalls::Refuse,
                desk: None,
                approver_role: "approver".into(),
                timeout: Toolset::APPROVAL_TIMEOUT,
                redact: Vec::new(),
            }),
            level: Arc::default(),
        })
    }

    /// The same server for a new client session, with its own log level.
    pub fn for_session(&self) -> ToolServer {
        ToolServer {
            level: Arc::default(),
            ..self.clone()
        }
    }

    /// Treat calls to destructive tools as `toolset` says: hold them for
    /// approval at `desk` (over HTTP), refuse them, or run them.
    pub fn with_policy(mut self, toolset: &Toolset, desk: Option<Arc<DirectApprovals>>) -> Self {
        self.gate = Arc::new(Gate {
            destructive_calls: toolset.destructive_calls,
            desk,
            approver_role: toolset.approver_role.clone(),
            timeout: toolset
                .approval_timeout
                .map_or(Toolset::APPROVAL_TIMEOUT, |d| d.0),
            redact: toolset.redact.clone(),
        });
        self
    }

    /// The tools as MCP describes them.
    pub fn descriptors(&self) -> Vec<Tool> {
        self.tools.iter().map(describe).collect()
    }

    /// Run tool `name` with `arguments` for a caller who cannot wait for an
    /// approval: a destructive tool runs only where the toolset says
    /// `destructive-calls = "run"`.
    pub async fn call(&self, name: &str, arguments: Value) -> Result<CallToolResult, McpError> {
        self.call_as(name, arguments, None).await
    }

    /// The call, with one trace record of it in the host's log
    /// (`TACK_LOG=info`, target `tack::trace`): toolset, tool, caller, call
    /// id, where it ran, its approval (and who decided), outcome and time
    /// taken.
    async fn call_as(
        &self,
        name: &str,
        arguments: Value,
        waiter: Option<&RequestContext<RoleServer>>,
    ) -> Result<CallToolResult, McpError> {
        let start = std::time::Instant::now();
        let mut trail = Trail::default();
        let result = self.call_gated(name, arguments, waiter, &mut trail).await;
        // The record costs nothing on the hot path unless it is written.
        if !tracing::enabled!(target: "tack::trace", tracing::Level::INFO) {
            return result;
        }
        let caller = waiter
            .and_then(principal)
            .map_or_else(|| "stdio".to_string(), |p| p.name);
        let outcome = match &result {
            Ok(r) if r.is_error == Some(true) => "tool_error",
            Ok(_) => "ok",
            Err(_) => "protocol_error",
        };
        let ran_in = self
            .tools
            .iter()
            .find(|t| t.name == name)
            .map(|t| match &t.backend {
                Backend::Wasm(_) => "sandbox".to_string(),
                Backend::Remote(_) => t.plugin.clone(),
                Backend::Builtin => "builtin".to_string(),
            });
        tracing::info!(
            target: "tack::trace",
            toolset = %self.name,
            tool = %name,
            caller = %caller,
            call_id = trail.call_id.as_deref().unwrap_or("-"),
            ran_in = ran_in.as_deref().unwrap_or("-"),
            approval = trail.approval,
            approval_id = trail.approval_id.as_deref().unwrap_or("-"),
            decided_by = trail.decided_by.as_deref().unwrap_or("-"),
            outcome,
            elapsed_us = start.elapsed().as_micros() as u64,
            "MCP tools/call"
        );
        result
    }

    async fn call_gated(
        &self,
        name: &str,
        arguments: Value,
        waiter: Option<&RequestContext<RoleServer>>,
        trail: &mut Trail,
    ) -> Result<CallToolResult, McpError> {
        let entry = self.entry(name)?;
        if !entry.destructive {
            trail.approval = "not_required";
            return Ok(self.run(entry, arguments, waiter, trail).await);
        }
        let refuse = |why: String| Ok(CallToolResult::error(vec![ContentBlock::text(why)]));
        let gate = &*self.gate;
        match gate.destructive_calls {
            DestructiveCalls::Run => {
                trail.approval = "not_required";
                Ok(self.run(entry, arguments, waiter, trail).await)
            }
            DestructiveCalls::Refuse => {
                trail.approval = "refused";
                refuse(format!(
                    "`{name}` is destructive, and toolset `{}` refuses such calls over MCP                  (destructive-calls = \"refuse\"); use it from an agent run, where                  approvals are held by the server",
                    self.name
                ))
            }
            DestructiveCalls::Approve => {
                let waiting = waiter.and_then(|ctx| Some((ctx, principal(ctx)?)));
                match (&gate.desk, waiting) {
                    (Some(desk), Some((ctx, who))) => {
                        self.await_approval(desk, entry, arguments, who, ctx, trail)
                            .await
                    }
                    _ => {
                        trail.approval = "refused";
                        refuse(format!(
                            "`{name}` is destructive, so it runs only after an approval, and \
                         none can be asked for over stdio; call it through `tack serve`'s \
                         /mcp/{} endpoint, where it waits for an approver, or from an \
                         agent run",
                            self.name
                        ))
                    }
                }
            }
        }
    }

    fn entry(&self, name: &str) -> Result<&ToolEntry, McpError> {
        self.tools.iter().find(|t| t.name == name).ok_or_else(|| {
            McpError::invalid_params(
                format!(
                    "no tool `{name}` in toolset `{}`; the tools are: {}",
                    self.name,
                    self.tools
                        .iter()
                        .map(|t| t.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                None,
            )
        })
    }

    /// Hold the call until an approver decides, telling the client (when it
    /// gave a progress token) which approval it waits for.
    async fn await_approval(
        &self,
        desk: &Arc<DirectApprovals>,
        entry: &ToolEntry,
        arguments: Value,
        who: Principal,
        ctx: &RequestContext<RoleServer>,
        trail: &mut Trail,
    ) -> Result<CallToolResult, McpError> {
        let gate = &*self.gate;
        let name = &entry.name;
        // Arguments that do not fit are refused before an approver sees them.
        let misfit = match &entry.backend {
            Backend::Wasm(sandbox) => sandbox
                .check_arguments(&entry.tool, &arguments)
                .await
                .err()
                .map(|e| e.to_string()),
            Backend::Remote(tool) => tool.check_arguments(&arguments).err().map(|e| e.message),
            Backend::Builtin => None,
        };
        if let Some(e) = misfit {
            trail.approval = "refused";
            return Ok(CallToolResult::error(vec![ContentBlock::text(e)]));
        }
        let requested_by = who.name.clone();
        let mut held = desk.hold(DirectRequest {
            source: format!("mcp:{}", self.name),
            tool: entry.clone(),
            arguments,
            redacted: gate.redact.clone(),
            requested_by: who,
            approvers: vec![gate.approver_role.clone()],
            reason: format!(
                "`{name}` is destructive; `{requested_by}` called it through toolset `{}` over MCP",
                self.name
            ),
        });
        let id = held.id.clone();
        trail.approval_id = Some(id.clone());
        tracing::info!(approval = %id, toolset = %self.name, tool = %name, by = %requested_by,
            "MCP call waits for approval");
        let message = format!(
            "waiting for approval `{id}` by the `{}` role (POST /v1/approvals/{id}, or \
             `tack approvals approve {id}`)",
            gate.approver_role
        );
        let token = ctx.meta.get_progress_token();
        let progress = async {
            let Some(token) = token else {
                return std::future::pending().await;
            };
            let mut ticks = tokio::time::interval(PROGRESS_EVERY);
            for n in 0u32.. {
                ticks.tick().await;
                let note = ProgressNotificationParam::new(token.clone(), f64::from(n))
                    .with_message(message.clone());
                if ctx.peer.notify_progress(note).await.is_err() {
                    break;
                }
            }
            std::future::pending().await
        };
        let outcome = tokio::select! {
            o = held.outcome() => Some(o),
            _ = tokio::time::sleep(gate.timeout) => None,
            _ = ctx.ct.cancelled() => None,
            () = progress => None,
        };
        Ok(match outcome {
            Some(DirectOutcome::Approved { by, arguments }) => {
                tracing::info!(approval = %id, by = %by, "MCP call approved");
                trail.approval = "approved";
                trail.decided_by = Some(by);
                self.run(entry, arguments, Some(ctx), trail).await
            }
            Some(DirectOutcome::Denied { by, reason }) => {
                trail.approval = "denied";
                trail.decided_by = Some(by.clone());
                CallToolResult::error(vec![ContentBlock::text(format!(
                    "`{name}` was not run: `{by}` denied approval `{id}`{}",
                    reason.map(|r| format!(": {r}")).unwrap_or_default()
                ))])
            }
            None => {
                trail.approval = "timed_out";
                CallToolResult::error(vec![ContentBlock::text(format!(
                    "`{name}` was not run: nobody decided approval `{id}` within {}s",
                    gate.timeout.as_secs()
                ))])
            }
        })
    }
}

/// What became of one call over MCP, for its trace record.
#[derive(Default)]
struct Trail {
    /// The call's id (`mcp_ULID`), once it ran.
    call_id: Option<String>,
    /// `not_required`, `approved`, `denied`, `timed_out` or `refused`
    /// (empty: the call named no tool).
    approval: &'static str,
    /// The approval it waited for.
    approval_id: Option<String>,
    /// Who decided it.
    decided_by: Option<String>,
}

/// Who called, as `tack serve` authenticated the HTTP request.
fn principal(ctx: &RequestContext<RoleServer>) -> Option<Principal> {
    ctx.extensions
        .get::<http::request::Parts>()
        .and_then(|p| p.extensions.get::<Principal>())
        .cloned()
}

impl ToolServer {
    /// Run `entry` with `arguments` in a fresh sandbox, as an MCP result; its
    /// log records go to the client first, if it asked for them (a level set
    /// for the session, or one in the request's `_meta`).
    async fn run(
        &self,
        entry: &ToolEntry,
        arguments: Value,
        ctx: Option<&RequestContext<RoleServer>>,
        trail: &mut Trail,
    ) -> CallToolResult {
        let call = CallContext {
            call_id: format!("mcp_{}", ulid::Ulid::generate()),
            principal: ctx.and_then(principal).map(|p| p.name),
            ..CallContext::default()
        };
        trail.call_id = Some(call.call_id.clone());
        let (result, logs) = run(entry, arguments, &call).await;
        let Some(ctx) = ctx else {
            return result;
        };
        let level = ctx
            .meta
            .log_level()
            .or(*self.level.lock().unwrap_or_else(|p| p.into_inner()));
        if let Some(least) = level {
            for record in logs {
                let level = logging_level(record.level);
                if rank(level) >= rank(least) {
                    let note =
                        LoggingMessageNotificationParam::new(level, Value::String(record.message))
                            .with_logger(entry.name.clone());
                    let sent = ctx.peer.notify_logging_message(note).await;
                    if sent.is_err() {
                        break;
                    }
                }
            }
        }
        result
    }
}

fn logging_level(l: LogLevel) -> LoggingLevel {
    match l {
        LogLevel::Trace | LogLevel::Debug => LoggingLevel::Debug,
        LogLevel::Info => LoggingLevel::Info,
        LogLevel::Warn => LoggingLevel::Warning,
        LogLevel::Error => LoggingLevel::Error,
    }
}

/// Severity order of MCP's (syslog) levels.
fn rank(l: LoggingLevel) -> u8 {
    l as u8
}

/// Run `entry` with `arguments` in a fresh sandbox: the MCP result and the
/// tool's log records.
async fn run(
    entry: &ToolEntry,
    arguments: Value,
    ctx: &CallContext,
) -> (CallToolResult, Vec<LogRecord>) {
    let name = &entry.name;
    let sandbox = match &entry.backend {
        Backend::Wasm(sandbox) => sandbox,
        // An upstream server's tool, re-exported: through the gateway (schema
        // check, timeout, size cap), its errors as tool errors.
        Backend::Remote(tool) => {
            let outcome = match tool.check_arguments(&arguments) {
                Ok(()) => {
                    let nobody = Arc::new(tack_engine::remote::Nobody(
                        "tack does not pass an upstream server's questions on to MCP clients",
                    ));
                    tool.call(&arguments, ctx, nobody).await
                }
                Err(e) => Err(e),
            };
            let result = match outcome {
                Ok(parts) => success(parts),
                Err(e) => CallToolResult::error(vec![ContentBlock::text(e.message)]),
            };
            return (result, Vec::new());
        }
        Backend::Builtin => unreachable!("refused in ToolServer::new"),
    };
    let outcome = sandbox.call(&entry.tool, &arguments.to_string(), ctx).await;
    match outcome {
        Ok(o) => (
            match o.result {
                Ok(parts) => success(parts),
                Err(e) => CallToolResult::error(vec![ContentBlock::text(e.to_string())]),
            },
            o.logs,
        ),
        Err(e @ (CallError::InvalidArguments { .. } | CallError::ArgumentsNotJson(_))) => (
            CallToolResult::error(vec![ContentBlock::text(e.to_string())]),
            Vec::new(),
        ),
        Err(e) => {
            tracing::warn!(tool = %name, "MCP call failed: {e}");
            (
                CallToolResult::error(vec![ContentBlock::text(format!(
                    "the sandbox stopped `{name}`: {e}"
                ))]),
                Vec::new(),
            )
        }
    }
}

/// A tool as MCP describes it.
fn describe(t: &ToolEntry) -> Tool {
    let d = &t.descriptor;
    let object = |v: &Value| match v {
        Value::Object(m) => m.clone(),
        _ => serde_json::Map::new(),
    };
    let mut tool = Tool::new(
        t.name.clone(),
        d.description.clone(),
        Arc::new(object(&d.input_schema)),
    );
    // MCP's structured content is an object, so only an object schema is an
    // output schema there; a tool that returns other JSON (jq's outputs) has
    // none, and its result is text. A client checks results against it.
    if let Some(out @ Value::Object(m)) = &d.output_schema
        && m.get("type").and_then(Value::as_str) == Some("object")
    {
        tool.output_schema = Some(Arc::new(object(out)));
    }
    let a = &d.annotations;
    tool.with_annotations(ToolAnnotations::from_raw(
        None,
        Some(a.read_only),
        Some(t.destructive),
        Some(a.idempotent),
        Some(a.open_world),
    ))
}

/// A tool's content parts as an MCP result: each part a text block (JSON as
/// its text), and a lone JSON object also as `structuredContent` (which MCP
/// defines as an object).
fn success(parts: Vec<Content>) -> CallToolResult {
    let structured = match parts.as_slice() {
        [Content::Json(v @ Value::Object(_))] => Some(v.clone()),
        _ => None,
    };
    let blocks = parts
        .into_iter()
        .map(|p| match p {
            Content::Text(t) => ContentBlock::text(t),
            Content::Json(v) => ContentBlock::text(v.to_string()),
        })
        .collect();
    let mut result = CallToolResult::success(blocks);
    result.structured_content = structured;
    result
}

impl ServerHandler for ToolServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_logging()
                .build(),
        )
        .with_server_info(Implementation::new(
            format!("tack:{}", self.name),
            env!("CARGO_PKG_VERSION"),
        ))
        .with_instructions(format!(
            "Tools of tack toolset `{}`: WebAssembly components run in a fresh sandbox \
                 per call.",
            self.name
        ))
    }

    async fn list_tools(
        &self,
        _: Option<PaginatedRequestParams>,
        _: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        Ok(ListToolsResult::with_all_items(self.descriptors()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let arguments = Value::Object(request.arguments.unwrap_or_default());
        Ok(self
            .call_as(&request.name, arguments, Some(&ctx))
            .await?
            .into())
    }

    async fn set_level(
        &self,
        request: SetLevelRequestParams,
        _: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        *self.level.lock().unwrap_or_else(|p| p.into_inner()) = Some(request.level);
        Ok(())
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.tools.iter().find(|t| t.name == name).map(describe)
    }
}
