//! `tack code …`: code mode for operators. `run` runs a program against a
//! toolset of the host configuration or a registered agent's tools, in the
//! code runner the host uses (`code-runner`), and prints its result.

use crate::Globals;
use crate::report::{EXIT_TOOL_ERROR, EXIT_UNUSABLE, EXIT_USAGE, Failure};
use crate::serve::{components, host_config};
use clap::{Args, Subcommand};
use std::process::ExitCode;
use std::sync::Arc;
use tack_config::HostConfig;
use tack_engine::code::DirectCodeTools;
use tack_engine::components::Resolver;
use tack_runtime::{CodeLimits, CodeTools};

/// `tack code …`.
#[derive(Subcommand)]
pub(crate) enum CodeCommand {
    /// Run a program (the body of an async JavaScript function) against a
    /// toolset's or an agent's tools; prints its result as JSON, and what
    /// it logged to stderr.
    Run(RunArgs),
    /// Print the TypeScript declaration of a toolset's or an agent's tools,
    /// as a model in code mode reads it.
    Declarations(DeclarationsArgs),
}

#[derive(Args)]
pub(crate) struct RunArgs {
    /// A toolset (`[toolsets.NAME]` in the host configuration) or an agent
    /// registered on this host (`NAME` or `NAME@VERSION`); `toolset:NAME`
    /// or `agent:NAME` when both have the name.
    target: String,
    /// The program's file (`-` for standard input).
    file: String,
    /// Wall time the program may compute (waiting for tools does not
    /// count) [default: the agent's `code-limits`, else 10s].
    #[arg(long)]
    timeout: Option<tack_capability::HumanDuration>,
    /// Most tool calls it may start [default: the agent's `code-limits`,
    /// else 100].
    #[arg(long)]
    max_tool_calls: Option<u32>,
}

#[derive(Args)]
pub(crate) struct DeclarationsArgs {
    /// The toolset or agent, as for `run`.
    target: String,
}

/// The tools a program runs against, resolved.
struct Target {
    resolver: Resolver,
    entries: Vec<tack_engine::components::ToolEntry>,
    /// Whether its destructive tools run (a toolset's
    /// `destructive-calls = "run"`; never for an agent, whose approvals
    /// are held in runs).
    run_destructive: bool,
    /// The agent's `code-limits`, for an agent.
    limits: CodeLimits,
}

pub(crate) async fn run(cmd: CodeCommand, g: &Globals) -> Result<ExitCode, Failure> {
    match cmd {
        CodeCommand::Run(a) => run_program(a, g).await,
        CodeCommand::Declarations(a) => {
            let t = target(g, &a.target).await?;
            print!(
                "{}",
                tack_code::declarations(&tack_engine::code::code_tools(&t.entries))
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `name` resolved: a toolset of the host configuration, else an agent of
/// its store (`toolset:` and `agent:` say which).
async fn target(g: &Globals, name: &str) -> Result<Target, Failure> {
    let host = host_config(g, "tack code")?;
    if let Some(agent) = name.strip_prefix("agent:") {
        return agent_target(g, host, agent).await;
    }
    if let Some(set) = name.strip_prefix("toolset:") {
        return toolset(g, host, set).await;
    }
    if host.toolsets.contains_key(name) {
        return toolset(g, host, name).await;
    }
    agent_target(g, host, name).await
}

/// The tools of toolset `name`.
async fn toolset(g: &Globals, host: HostConfig, name: &str) -> Result<Target, Failure> {
    let set = crate::mcp::toolset_config(&host, name)?;
    let (source, runtime) = components(&host, g)?;
    // Upstream servers the toolset re-exports are reached through a gateway
    // of this process, with the credentials they name.
    let upstreams = set
        .mcp_servers
        .iter()
        .filter_map(|n| host.mcp_servers.get(n));
    let secrets = crate::mcp::secrets_for(g, upstreams).await?;
    let gateway = tack_mcp::Gateway::new(&host.mcp_servers, secrets);
    let resolver = Resolver::new(runtime, Arc::new(source), Arc::new(host), None)
        .with_tool_servers(Some(Arc::new(gateway)));
    let entries = resolver
        .toolset(name)
        .await
        .map_err(|e| Failure::new(EXIT_UNUSABLE, format!("toolset `{name}`: {e}")))?;
    Ok(Target {
        resolver,
        entries,
        run_destructive: set.destructive_calls == tack_config::DestructiveCalls::Run,
        limits: CodeLimits::default(),
    })
}

/// The tools of agent `name` (`NAME[@VERSION]`) as registered in the host's
/// store, its skills' tools included, resolved as a run resolves them.
async fn agent_target(g: &Globals, host: HostConfig, name: &str) -> Result<Target, Failure> {
    let (agent, version) = match name.split_once('@') {
        None => (name, None),
        Some((n, v)) => (
            n,
            Some(v.parse::<u32>().map_err(|_| {
                Failure::new(
                    EXIT_USAGE,
                    format!("`{v}` is not an agent version; write NAME@VERSION, e.g. {n}@2"),
                )
            })?),
        ),
    };
    let url = crate::secret::StorageArgs::default().url(g)?;
    let store = crate::serve::open_store(&url).await?;
    let record = store
        .agent(agent, version)
        .await
        .map_err(|e| Failure::new(EXIT_UNUSABLE, e.to_string()))?
        .ok_or_else(|| {
            let mut toolsets: Vec<&str> = host.toolsets.keys().map(String::as_str).collect();
            toolsets.sort();
            Failure::new(
                EXIT_USAGE,
                format!(
                    "`{name}` is neither a toolset of the host configuration (toolsets: {}) \
                     nor an agent registered on this host",
                    if toolsets.is_empty() {
                        "none".to_string()
                    } else {
                        toolsets.join(", ")
                    }
                ),
            )
            .help("register the agent with POST /v1/agents, or add [toolsets.NAME]")
        })?;
    let spec: tack_agent::AgentSpec = serde_json::from_value(record.spec).map_err(|e| {
        Failure::new(
            EXIT_UNUSABLE,
            format!("agent `{name}` as stored cannot be read: {e}"),
        )
    })?;
    // Its model's credential and its servers' are opened only when named.
    let credential = host
        .models
        .get(&spec.model)
        .is_some_and(|m| m.credential.is_some());
    let upstreams: Vec<&tack_config::McpServerConfig> = spec
        .mcp_servers
        .iter()
        .filter_map(|s| host.mcp_servers.get(&s.name))
        .collect();
    let secrets = match crate::mcp::secrets_for(g, upstreams.iter().copied()).await? {
        Some(s) => Some(s),
        None if credential => Some(crate::secret::StorageArgs::default().secrets(g).await?),
        None => None,
    };
    let gateway = tack_mcp::Gateway::new(&host.mcp_servers, secrets.clone());
    let (source, runtime) = components(&host, g)?;
    let resolver = Resolver::new(runtime, Arc::new(source), Arc::new(host), secrets)
        .with_tool_servers(Some(Arc::new(gateway)));
    let resolved = resolver
        .resolve(spec, record.version)
        .await
        .map_err(|e| Failure::new(EXIT_UNUSABLE, format!("agent `{name}`: {e}")))?;
    let all_skills = resolved.skills.iter().map(|k| k.name.clone()).collect();
    let entries = resolved.tools_with(&all_skills).cloned().collect();
    let limits = resolved
        .code
        .as_ref()
        .map(|c| c.limits.clone())
        .unwrap_or_default();
    Ok(Target {
        resolver,
        entries,
        run_destructive: false,
        limits,
    })
}

async fn run_program(a: RunArgs, g: &Globals) -> Result<ExitCode, Failure> {
    let source = if a.file == "-" {
        std::io::read_to_string(std::io::stdin())
    } else {
        std::fs::read_to_string(&a.file)
    }
    .map_err(|e| {
        Failure::new(
            EXIT_USAGE,
            format!("cannot read the program `{}`: {e}", a.file),
        )
    })?;
    let t = target(g, &a.target).await?;
    let reference = t.resolver.host().code_runner.clone();
    let runner = t.resolver.code_runner(&reference).await.map_err(|e| {
        Failure::new(EXIT_UNUSABLE, e.to_string())
            .help("publish the runner (`tack publish …/tack_plugin_code_js.wasm tack/code-js@0.1.0`) or set `code-runner`")
    })?;
    let tools = DirectCodeTools::new(&t.entries, t.run_destructive);
    let names = tools.names();
    let host: Arc<dyn CodeTools> = Arc::new(tools);
    let mut limits = t.limits;
    if let Some(timeout) = a.timeout {
        limits.timeout = timeout.0;
    }
    if let Some(n) = a.max_tool_calls {
        limits.tool_calls = n;
    }
    let outcome = runner
        .run(&source, &names, host, &limits)
        .await
        .map_err(|e| Failure::new(EXIT_UNUSABLE, format!("the code runner failed: {e}")))?;
    match outcome {
        Ok(out) => {
            eprint!("{}", out.console);
            println!("{}", out.value);
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprint!("{}", e.console);
            let kind = serde_json::to_value(e.failure)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            Err(Failure::new(
                EXIT_TOOL_ERROR,
                format!("the program failed ({kind}): {}", e.message),
            ))
        }
    }
}
