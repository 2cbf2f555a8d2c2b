//! tack's tools as an MCP server.
//!
//! A [`ToolServer`] answers `tools/list` with its tools (names, descriptions,
//! input and output schemas, annotations after the host's central flags) and
//! `tools/call` by running the tool in a fresh sandbox. A tool's own error, a
//! schema violation or a sandbox limit is a tool result with `isError` (the
//! client reads the message); only an unknown tool is a protocol error.
//!
//! A destructive tool needs an approval before it runs, and this server has no
//! approver to ask yet: such a call is refused with a tool error that says so,
//! unless the toolset says its clients gate calls themselves
//! (`destructive-calls = "run"`, for another tack host's gateway).

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
    ToolAnnotations,
};
use rmcp::service::{RequestContext, RoleServer};
use rmcp::{ErrorData as McpError, ServerHandler};
use serde_json::Value;
use std::sync::Arc;
use tack_config::DestructiveCalls;
use tack_engine::components::ToolEntry;
use tack_runtime::{CallContext, CallError, Content};

/// A set of tack tools served over MCP. Cheap to clone.
#[derive(Clone)]
pub struct ToolServer {
    name: String,
    tools: Arc<Vec<ToolEntry>>,
    destructive_calls: DestructiveCalls,
}

impl ToolServer {
    /// A server called `name` (the toolset's name) offering `tools`, which
    /// must have distinct names and each a sandbox.
    pub fn new(name: &str, tools: Vec<ToolEntry>) -> Result<ToolServer, String> {
        let mut seen = std::collections::BTreeSet::new();
        for t in &tools {
            if t.sandbox().is_none() {
                return Err(format!("tool `{}` has no sandbox to run in", t.name));
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
            destructive_calls: DestructiveCalls::Refuse,
        })
    }

    /// Run or refuse calls to destructive tools, as the toolset says.
    pub fn with_destructive_calls(mut self, d: DestructiveCalls) -> Self {
        self.destructive_calls = d;
        self
    }

    /// The tools as MCP describes them.
    pub fn descriptors(&self) -> Vec<Tool> {
        self.tools.iter().map(describe).collect()
    }

    /// Run tool `name` with `arguments`, as `tools/call` does.
    pub async fn call(&self, name: &str, arguments: Value) -> Result<CallToolResult, McpError> {
        let entry = self.tools.iter().find(|t| t.name == name).ok_or_else(|| {
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
        })?;
        if entry.destructive && self.destructive_calls == DestructiveCalls::Refuse {
            return Ok(CallToolResult::error(vec![ContentBlock::text(format!(
                "`{name}` is destructive, so it runs only after an approval, and tack's MCP \
                 server cannot ask for one yet; use it from an agent run, where approvals \
                 are held by the server (or, if this toolset's clients are tack hosts that \
                 gate calls themselves, set destructive-calls = \"run\" on it)"
            ))]));
        }
        let sandbox = entry.sandbox().expect("checked in new");
        let ctx = CallContext {
            call_id: format!("mcp_{}", ulid::Ulid::generate()),
            ..CallContext::default()
        };
        let outcome = sandbox
            .call(&entry.tool, &arguments.to_string(), &ctx)
            .await;
        Ok(match outcome {
            Ok(o) => match o.result {
                Ok(parts) => success(parts),
                Err(e) => CallToolResult::error(vec![ContentBlock::text(e.to_string())]),
            },
            Err(e @ (CallError::InvalidArguments { .. } | CallError::ArgumentsNotJson(_))) => {
                CallToolResult::error(vec![ContentBlock::text(e.to_string())])
            }
            Err(e) => {
                tracing::warn!(tool = %name, "MCP call failed: {e}");
                CallToolResult::error(vec![ContentBlock::text(format!(
                    "the sandbox stopped `{name}`: {e}"
                ))])
            }
        })
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
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
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
        _: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let arguments = Value::Object(request.arguments.unwrap_or_default());
        Ok(self.call(&request.name, arguments).await?.into())
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.tools.iter().find(|t| t.name == name).map(describe)
    }
}
