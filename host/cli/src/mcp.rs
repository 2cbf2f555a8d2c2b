//! `tack mcp …`: a toolset of the host configuration served to MCP clients over
//! stdio (`serve`), and the configured upstream MCP servers, for operators
//! (`ls`, `tools`, `call`, and `login`/`logout` for those that take OAuth
//! tokens).

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
    /// Authorize tack with an upstream server that takes OAuth tokens
    /// (`[mcp-servers.NAME.oauth]`): prints an address to open in a browser,
    /// waits for the browser to come back to 127.0.0.1, and seals the tokens
    /// in the store.
    Login(LoginArgs),
    /// Forget the host's OAuth tokens for an upstream server.
    Logout(LogoutArgs),
}

#[derive(Args)]
pub(crate) struct LoginArgs {
    /// The server's name.
    server: String,
    /// The loopback port the browser is sent back to (0: any free one).
    /// Fix it when the authorization server only accepts a registered
    /// redirect address, or to forward it over SSH from where the browser
    /// runs.
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// How long to wait for the browser.
    #[arg(long, default_value = "10m")]
    timeout: tack_capability::HumanDuration,
}

#[derive(Args)]
pub(crate) struct LogoutArgs {
    /// The server's name.
    server: String,
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
        McpCommand::Login(a) => login(a, g).await,
        McpCommand::Logout(a) => {
            server_config(g, &a.server)?;
            let secrets = crate::secret::StorageArgs::default().secrets(g).await?;
            let name = tack_mcp::oauth::credential_name(&a.server, tack_mcp::Subject::Host);
            let had = secrets
                .remove(&name)
                .await
                .map_err(|e| Failure::new(EXIT_UNUSABLE, e.to_string()))?;
            eprintln!(
                "{}",
                if had {
                    format!("Forgot the host's tokens for `{}`.", a.server)
                } else {
                    format!("The host held no tokens for `{}`.", a.server)
                }
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `tack mcp login`: one authorization with the browser's redirect caught on
/// loopback (RFC 8252's native-app flow).
async fn login(a: LoginArgs, g: &Globals) -> Result<ExitCode, Failure> {
    let config = server_config(g, &a.server)?;
    if config.oauth.is_none() {
        return Err(Failure::new(
            EXIT_USAGE,
            format!("MCP server `{}` does not take OAuth tokens", a.server),
        )
        .help(format!(
            "add an `[mcp-servers.{}.oauth]` table to the host configuration (see docs/mcp.md)",
            a.server
        )));
    }
    let secrets = crate::secret::StorageArgs::default().secrets(g).await?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", a.port))
        .await
        .map_err(|e| {
            Failure::new(
                EXIT_UNUSABLE,
                format!("cannot listen on 127.0.0.1:{}: {e}", a.port),
            )
            .help("pick another --port")
        })?;
    let port = listener
        .local_addr()
        .map_err(|e| Failure::internal(e.to_string()))?
        .port();
    let redirect = format!("http://127.0.0.1:{port}/callback");
    let login = tack_mcp::Login::begin(
        &a.server,
        &config,
        Some(&secrets),
        tack_mcp::Subject::Host,
        &redirect,
        None,
    )
    .await
    .map_err(unusable)?;
    eprintln!(
        "Open this address in a browser to authorize tack with `{}`:",
        a.server
    );
    println!("{}", login.url());
    eprintln!("Waiting for the browser to come back to {redirect} …");
    let wait = callback(&listener, &login);
    let finished = tokio::time::timeout(a.timeout.0, wait).await.map_err(|_| {
        Failure::new(
            EXIT_UNUSABLE,
            format!("the browser did not come back within {}", a.timeout),
        )
        .help("run `tack mcp login` again (and --timeout for longer)")
    })?;
    finished.map_err(unusable)?;
    let upstream = tack_mcp::Upstream::connect(&a.server, &config, Some(&secrets))
        .await
        .map_err(unusable)?;
    let tools = upstream.tools().await.map_err(unusable)?;
    eprintln!(
        "Authorized: tack reaches `{}` ({} tools). The tokens are sealed in the store as \
         secret `{}` and refreshed as they expire.",
        a.server,
        tools.len(),
        tack_mcp::oauth::credential_name(&a.server, tack_mcp::Subject::Host)
    );
    Ok(ExitCode::SUCCESS)
}

/// Wait on `listener` for the browser's return to `/callback`, finish
/// `login` with it, and tell the browser how it went. Other requests (a
/// browser's favicon) get a 404.
async fn callback(
    listener: &tokio::net::TcpListener,
    login: &tack_mcp::Login,
) -> Result<(), tack_mcp::UpstreamError> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        let line = String::from_utf8_lossy(&head);
        let target = line
            .lines()
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap_or("/");
        if !target.starts_with("/callback") {
            let _ = stream
                .write_all(
                    b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                )
                .await;
            continue;
        }
        let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
        let outcome = login
            .finish(&format!("http://127.0.0.1:{port}{target}"))
            .await;
        let text = match &outcome {
            Ok(()) => "tack is authorized. You can close this page.".to_string(),
            Err(e) => format!("tack was not authorized: {e}"),
        };
        let _ = stream
            .write_all(
                format!(
                    "HTTP/1.1 {}\r\ncontent-type: text/plain; charset=utf-8\r\n\
                     content-length: {}\r\nconnection: close\r\n\r\n{text}",
                    if outcome.is_ok() {
                        "200 OK"
                    } else {
                        "400 Bad Request"
                    },
                    text.len()
                )
                .as_bytes(),
            )
            .await;
        return outcome;
    }
}

fn unusable(e: tack_mcp::UpstreamError) -> Failure {
    Failure::new(EXIT_UNUSABLE, e.to_string())
}

/// Connect to upstream `server` of the host configuration.
async fn connect(g: &Globals, server: &str) -> Result<tack_mcp::Upstream, Failure> {
    let config = server_config(g, server)?;
    let secrets = secrets_for(g, [&config]).await?;
    tack_mcp::Upstream::connect(server, &config, secrets.as_ref())
        .await
        .map_err(unusable)
}

/// Upstream `server` of the host configuration.
fn server_config(g: &Globals, server: &str) -> Result<tack_config::McpServerConfig, Failure> {
    let host = host_config(g, "tack mcp")?;
    let config = host.mcp_servers.get(server).cloned().ok_or_else(|| {
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
    Ok(config)
}

/// The host's secrets, if one of `servers` names some (only then is the
/// master key needed).
pub(crate) async fn secrets_for<'a>(
    g: &Globals,
    servers: impl IntoIterator<Item = &'a tack_config::McpServerConfig>,
) -> Result<Option<tack_secrets::Secrets>, Failure> {
    let named = servers.into_iter().any(|c| {
        !c.secret_env.is_empty()
            || !c.secret_headers.is_empty()
            || c.bearer_secret.is_some()
            || c.oauth.is_some()
    });
    if !named {
        return Ok(None);
    }
    Ok(Some(
        crate::secret::StorageArgs::default().secrets(g).await?,
    ))
}

/// Toolset `name` of the host configuration, or an error naming those it has.
pub(crate) fn toolset_config(
    host: &tack_config::HostConfig,
    name: &str,
) -> Result<tack_config::Toolset, Failure> {
    host.toolsets.get(name).cloned().ok_or_else(|| {
        let known: Vec<&str> = host.toolsets.keys().map(String::as_str).collect();
        Failure::new(
            EXIT_USAGE,
            format!(
                "the host configuration has no toolset `{name}` (toolsets: {})",
                if known.is_empty() {
                    "none".into()
                } else {
                    known.join(", ")
                }
            ),
        )
        .help("define one: [toolsets.NAME] tools = [\"tack/jq@0.1.0\"]")
    })
}

async fn serve(a: ServeArgs, g: &Globals) -> Result<ExitCode, Failure> {
    let host = host_config(g, "tack mcp serve")?;
    let toolset = toolset_config(&host, &a.toolset)?;
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
