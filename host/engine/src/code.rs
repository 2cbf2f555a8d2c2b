//! Code mode in the engine: the tools a program calls, named as it calls
//! them (`tools.NAMESPACE.TOOL`), and the host's side of calls made outside
//! an agent run (`tack code run`).

use crate::components::{Backend, ToolEntry};
use crate::remote::Nobody;
use futures_util::future::BoxFuture;
use std::collections::HashMap;
use std::sync::Arc;
use tack_code::CodeTool;
use tack_runtime::{CallContext, CodeTools, Content, ErrorCode, ToolError};

/// The name a program calls `entry` by: the namespace (the MCP server, or
/// the last segment of the plugin's repository) and the tool's own name.
pub fn code_name(entry: &ToolEntry) -> (String, String) {
    let namespace = match entry.plugin.strip_prefix("mcp:") {
        Some(server) => server.to_string(),
        None => {
            let repository = entry.plugin.split('@').next().unwrap_or(&entry.plugin);
            repository
                .rsplit('/')
                .next()
                .unwrap_or(repository)
                .to_string()
        }
    };
    (namespace, entry.tool.clone())
}

/// `entries` as a program sees them, for the declarations the model reads.
pub fn code_tools(entries: &[ToolEntry]) -> Vec<CodeTool> {
    entries
        .iter()
        .filter(|e| !matches!(e.backend, Backend::Builtin))
        .map(|e| {
            let (namespace, name) = code_name(e);
            CodeTool {
                namespace,
                name,
                description: e.descriptor.description.clone(),
                input_schema: e.descriptor.input_schema.clone(),
                output_schema: e.descriptor.output_schema.clone(),
            }
        })
        .collect()
}

/// Refuse tools two of which a program would call by one name (a plugin
/// and an MCP server of the same name offering the same tool).
pub fn distinct_code_names(entries: &[ToolEntry]) -> Result<(), crate::EngineError> {
    let mut seen: HashMap<(String, String), &str> = HashMap::new();
    for e in entries
        .iter()
        .filter(|e| !matches!(e.backend, Backend::Builtin))
    {
        if let Some(other) = seen.insert(code_name(e), &e.plugin) {
            let (ns, tool) = code_name(e);
            return Err(crate::EngineError::Resolve(format!(
                "code mode: `{}` and `{other}` both offer `tools.{ns}.{tool}` to programs; \
                 drop one of them from the agent, or narrow the MCP server's tools",
                e.plugin
            )));
        }
    }
    Ok(())
}

/// An agent's `code-limits` over the defaults.
pub fn limits(spec: &tack_agent::CodeLimits) -> tack_runtime::CodeLimits {
    let mut limits = tack_runtime::CodeLimits::default();
    if let Some(t) = spec.timeout {
        limits.timeout = t.0;
    }
    if let Some(m) = spec.memory {
        limits.memory = m;
        // The interpreter's heap takes half; the rest is its own.
        limits.heap = tack_capability::ByteSize(m.0 / 2);
    }
    if let Some(n) = spec.max_tool_calls {
        limits.tool_calls = n;
    }
    if let Some(o) = spec.max_output_bytes {
        limits.output = o;
    }
    limits
}

/// The host's side of a program run outside an agent run: each call in a
/// fresh sandbox (or through the gateway), checked against the tool's
/// schema; destructive tools are refused unless the caller runs them.
pub struct DirectCodeTools {
    entries: HashMap<String, ToolEntry>,
    run_destructive: bool,
}

impl DirectCodeTools {
    /// Tools `entries`, by the names programs call them; destructive ones
    /// run only with `run_destructive`.
    pub fn new(entries: &[ToolEntry], run_destructive: bool) -> DirectCodeTools {
        DirectCodeTools {
            entries: entries
                .iter()
                .filter(|e| !matches!(e.backend, Backend::Builtin))
                .map(|e| {
                    let (ns, tool) = code_name(e);
                    (format!("{ns}.{tool}"), e.clone())
                })
                .collect(),
            run_destructive,
        }
    }

    /// The names programs call, `namespace.tool`, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.entries.keys().cloned().collect();
        names.sort();
        names
    }
}

fn error(code: ErrorCode, message: impl Into<String>) -> ToolError {
    ToolError {
        code,
        message: message.into(),
        field: None,
        retryable: false,
    }
}

impl CodeTools for DirectCodeTools {
    fn call(
        &self,
        name: String,
        arguments: String,
    ) -> BoxFuture<'static, Result<Vec<Content>, ToolError>> {
        let entry = self.entries.get(&name).cloned();
        let run_destructive = self.run_destructive;
        Box::pin(async move {
            let Some(entry) = entry else {
                return Err(error(
                    ErrorCode::NotFound,
                    format!("there is no tool `{name}`"),
                ));
            };
            if entry.destructive && !run_destructive {
                return Err(error(
                    ErrorCode::PermissionDenied,
                    format!(
                        "`{name}` is destructive, and programs run outside an agent run call \
                         only tools that are not (its approval is held in runs)"
                    ),
                ));
            }
            let ctx = CallContext {
                call_id: format!("code_{}", ulid::Ulid::generate()),
                ..CallContext::default()
            };
            match &entry.backend {
                Backend::Wasm(sandbox) => match sandbox.call(&entry.tool, &arguments, &ctx).await {
                    Ok(outcome) => outcome.result,
                    Err(e) => Err(error(ErrorCode::Internal, e.to_string())),
                },
                Backend::Remote(tool) => {
                    let args: serde_json::Value =
                        serde_json::from_str(&arguments).map_err(|e| {
                            error(ErrorCode::InvalidArguments, format!("not JSON: {e}"))
                        })?;
                    tool.check_arguments(&args)
                        .map_err(|e| error(ErrorCode::InvalidArguments, e.message))?;
                    let nobody = Arc::new(Nobody(
                        "nobody answers questions of programs run outside a run",
                    ));
                    tool.call(&args, &ctx, nobody).await.map_err(|e| {
                        let code = match e.code {
                            "invalid_arguments" => ErrorCode::InvalidArguments,
                            "not_found" => ErrorCode::NotFound,
                            "timeout" => ErrorCode::Timeout,
                            "unavailable" => ErrorCode::Unavailable,
                            "unauthorized" => ErrorCode::PermissionDenied,
                            _ => ErrorCode::Internal,
                        };
                        error(code, e.message)
                    })
                }
                Backend::Builtin => Err(error(
                    ErrorCode::NotFound,
                    format!("there is no tool `{name}`"),
                )),
            }
        })
    }
}
