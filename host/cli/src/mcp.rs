//! `tack mcp serve TOOLSET`: a toolset of the host configuration served to MCP
//! clients over stdio.

use crate::Globals;
use crate::report::{EXIT_UNUSABLE, EXIT_USAGE, Failure};
use crate::serve::{components, host_config};
use clap::{Args, Subcommand};
use rmcp::ServiceExt;
use std::process::ExitCode;
use std::sync::Arc;
use tack_engine::components::Resolver;

/// `tack mcp …`.
#[derive(Subcommand)]
pub(crate) enum McpCommand {
    /// Serve a toolset (`[toolsets.NAME]` in the host configuration) to an MCP
    /// client on stdin/stdout.
    Serve(ServeArgs),
}

#[derive(Args)]
pub(crate) struct ServeArgs {
    /// The toolset's name.
    toolset: String,
}

pub(crate) async fn run(cmd: McpCommand, g: &Globals) -> Result<ExitCode, Failure> {
    match cmd {
        McpCommand::Serve(a) => serve(a, g).await,
    }
}

async fn serve(a: ServeArgs, g: &Globals) -> Result<ExitCode, Failure> {
    let host = host_config(g, "tack mcp serve")?;
    let toolset = host.toolsets.get(&a.toolset).cloned().ok_or_else(|| {
        let known: Vec<&str> = host.toolsets.keys().map(String::as_str).collect();
        Failure::new(
            EXIT_USAGE,
            format!(
                "the host configuration has no toolset `{}` (toolsets: {})",
                a.toolset,
                if known.is_empty() {
                    "none".into()
                } else {
                    known.join(", ")
                }
            ),
        )
        .help("define one: [toolsets.NAME] tools = [\"tack/jq@0.1.0\"]")
    })?;
    let (source, runtime) = components(&host, g)?;
    let resolver = Resolver::new(runtime, Arc::new(source), Arc::new(host), None);
    let mut tools = Vec::new();
    for reference in &toolset.tools {
        tools.extend(
            resolver.tools(reference).await.map_err(|e| {
                Failure::new(EXIT_UNUSABLE, format!("toolset `{}`: {e}", a.toolset))
            })?,
        );
    }
    let server =
        tack_mcp::ToolServer::new(&a.toolset, tools).map_err(|e| Failure::new(EXIT_UNUSABLE, e))?;
    let running = server
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|e| Failure::new(EXIT_UNUSABLE, format!("the MCP session did not start: {e}")))?;
    running
        .waiting()
        .await
        .map_err(|e| Failure::internal(format!("the MCP session failed: {e}")))?;
    Ok(ExitCode::SUCCESS)
}
