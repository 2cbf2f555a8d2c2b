//! `tack mcp …`: a toolset of the host configuration served to MCP clients over
//! stdio (`serve`), and the configured upstream MCP servers, for operators
//! (`ls`, `tools`, `call`).

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
    /// List the upstream MCP servers of the host configuration.
    Ls,
    /// Connect to an upstream server and list its tools with their effective flags.
    Tools(ToolsArgs),
    /// Connect to an upstream server and call one tool (as the operator: no approval).
    Call(CallArgs),
}

#[derive(Args)]
pub(crate) struct ToolsArgs {
    /// The server's name (`[mcp-servers.NAME]`).
    server: String,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub(crate) struct CallArgs {
    /// The server's name.
    server: String,
    /// The tool.
    tool: String,
    /// Arguments, a JSON object.
    #[arg(long, default_value = "{}")]
    args: String,
}

#[derive(Args)]
pub(crate) struct ServeArgs {
    /// The toolset's name.
    toolset: String,
}

pub(crate) async fn run(cmd: McpCommand, g: &Globals) -> Result<ExitCode, Failure> {
    match cmd {
        McpCommand::Serve(a) => serve(a, g).await,
        McpCommand::Ls => {
            let host = host_config(g, "tack mcp ls")?;
            for (name, m) in &host.mcp_servers {
                let how = match (&m.command, &m.url) {
                    (Some(c), _) => format!("stdio: {c} {}", m.args.join(" ")),
                    (_, Some(u)) => format!("http: {u}"),
                    _ => String::new(),
                };
                println!("{name}\t{}", how.trim_end());
            }
            Ok(ExitCode::SUCCESS)
        }
        McpCommand::Tools(a) => {
            let upstream = connect(g, &a.server).await?;
            let tools = upstream.tools().await.map_err(unusable)?;
            if a.json {
                let list: Vec<serde_json::Value> = tools
                    .iter()
                    .map(|t| {
                        serde_json::json!({"name": t.tool.name, "description": t.tool.description,
                            "destructive": t.destructive, "read_only": t.read_only,
                            "input_schema": t.tool.input_schema})
                    })
                    .collect();
                println!("{}", serde_json::Value::Array(list));
            } else {
                for t in &tools {
                    let flag = if t.destructive {
                        "destructive"
                    } else if t.read_only {
                        "read-only"
                    } else {
                        "-"
                    };
                    println!("{}\t{flag}", t.tool.name);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        McpCommand::Call(a) => {
            let args: serde_json::Value = serde_json::from_str(&a.args).map_err(|e| {
                Failure::new(EXIT_USAGE, format!("--args is not JSON: {e}"))
                    .help("pass a JSON object, e.g. --args '{\"timezone\": \"UTC\"}'")
            })?;
            let upstream = connect(g, &a.server).await?;
            let result = upstream.call(&a.tool, args).await.map_err(unusable)?;
            println!("{}", result.text);
            Ok(if result.is_error {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
    }
}

fn unusable(e: tack_mcp::UpstreamError) -> Failure {
    Failure::new(EXIT_UNUSABLE, e.to_string())
}

/// Connect to upstream `server` of the host configuration.
async fn connect(g: &Globals, server: &str) -> Result<tack_mcp::Upstream, Failure> {
    let host = host_config(g, "tack mcp")?;
    let config = host.mcp_servers.get(server).ok_or_else(|| {
        let known: Vec<&str> = host.mcp_servers.keys().map(String::as_str).collect();
        Failure::new(
            EXIT_USAGE,
            format!(
                "the host configuration has no MCP server `{server}` (servers: {})",
                if known.is_empty() {
                    "none".into()
                } else {
                    known.join(", ")
                }
            ),
        )
        .help("define one: [mcp-servers.NAME] command = \"…\" (see docs/mcp.md)")
    })?;
    let secrets = secrets_for(g, [config]).await?;
    tack_mcp::Upstream::connect(server, config, secrets.as_ref())
        .await
        .map_err(unusable)
}

/// The host's secrets, if one of `servers` names some (only then is the
/// master key needed).
async fn secrets_for<'a>(
    g: &Globals,
    servers: impl IntoIterator<Item = &'a tack_config::McpServerConfig>,
) -> Result<Option<tack_secrets::Secrets>, Failure> {
    let named = servers.into_iter().any(|c| {
        !c.secret_env.is_empty() || !c.secret_headers.is_empty() || c.bearer_secret.is_some()
    });
    if !named {
        return Ok(None);
    }
    Ok(Some(
        crate::secret::StorageArgs::default().secrets(g).await?,
    ))
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
    // Upstream servers the toolset re-exports are reached through a gateway
    // of this process.
    let upstreams = toolset
        .mcp_servers
        .iter()
        .filter_map(|n| host.mcp_servers.get(n));
    let secrets = secrets_for(g, upstreams).await?;
    let gateway = tack_mcp::Gateway::new(&host.mcp_servers, secrets);
    let resolver = Resolver::new(runtime, Arc::new(source), Arc::new(host), None)
        .with_tool_servers(Some(Arc::new(gateway)));
    let tools = resolver
        .toolset(&a.toolset)
        .await
        .map_err(|e| Failure::new(EXIT_UNUSABLE, format!("toolset `{}`: {e}", a.toolset)))?;
    let server = tack_mcp::ToolServer::new(&a.toolset, tools)
        .map_err(|e| Failure::new(EXIT_UNUSABLE, e))?
        .with_policy(&toolset, None);
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
