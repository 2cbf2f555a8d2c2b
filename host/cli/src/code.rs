//! `tack code …`: code mode for operators. `run` runs a program against a
//! toolset of the host configuration, in the code runner the host uses
//! (`code-runner`), and prints its result.

use crate::Globals;
use crate::report::{EXIT_TOOL_ERROR, EXIT_UNUSABLE, EXIT_USAGE, Failure};
use crate::serve::{components, host_config};
use clap::{Args, Subcommand};
use std::process::ExitCode;
use std::sync::Arc;
use tack_engine::code::DirectCodeTools;
use tack_engine::components::Resolver;
use tack_runtime::{CodeLimits, CodeTools};

/// `tack code …`.
#[derive(Subcommand)]
pub(crate) enum CodeCommand {
    /// Run a program (the body of an async JavaScript function) against a
    /// toolset's tools; prints its result as JSON, and what it logged to
    /// stderr.
    Run(RunArgs),
    /// Print the TypeScript declaration of a toolset's tools, as a model in
    /// code mode reads it.
    Declarations(DeclarationsArgs),
}

#[derive(Args)]
pub(crate) struct RunArgs {
    /// The toolset (`[toolsets.NAME]` in the host configuration).
    toolset: String,
    /// The program's file (`-` for standard input).
    file: String,
    /// Wall time the program may compute (waiting for tools does not count).
    #[arg(long, default_value = "10s")]
    timeout: tack_capability::HumanDuration,
    /// Most tool calls it may start.
    #[arg(long, default_value_t = 100)]
    max_tool_calls: u32,
}

#[derive(Args)]
pub(crate) struct DeclarationsArgs {
    /// The toolset.
    toolset: String,
}

pub(crate) async fn run(cmd: CodeCommand, g: &Globals) -> Result<ExitCode, Failure> {
    match cmd {
        CodeCommand::Run(a) => run_program(a, g).await,
        CodeCommand::Declarations(a) => {
            let (_, entries, _) = toolset(g, &a.toolset).await?;
            print!(
                "{}",
                tack_code::declarations(&tack_engine::code::code_tools(&entries))
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The resolver and the tools of `name`, with whether its destructive tools
/// run (`destructive-calls = "run"`).
async fn toolset(
    g: &Globals,
    name: &str,
) -> Result<(Resolver, Vec<tack_engine::components::ToolEntry>, bool), Failure> {
    let host = host_config(g, "tack code")?;
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
    let run_destructive = set.destructive_calls == tack_config::DestructiveCalls::Run;
    Ok((resolver, entries, run_destructive))
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
    let (resolver, entries, run_destructive) = toolset(g, &a.toolset).await?;
    let reference = resolver.host().code_runner.clone();
    let runner = resolver.code_runner(&reference).await.map_err(|e| {
        Failure::new(EXIT_UNUSABLE, e.to_string())
            .help("publish the runner (`tack publish …/tack_plugin_code_js.wasm tack/code-js@0.1.0`) or set `code-runner`")
    })?;
    let tools = DirectCodeTools::new(&entries, run_destructive);
    let names = tools.names();
    let host: Arc<dyn CodeTools> = Arc::new(tools);
    let limits = CodeLimits {
        timeout: a.timeout.0,
        tool_calls: a.max_tool_calls,
        ..CodeLimits::default()
    };
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
