//! `tack`: the command-line interface of the tack agent harness host.
//!
//! Exit codes (also in `tack --help` and docs/cli.md):
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | the tool ran and returned a tool error |
//! | 2 | bad command line (unknown flag, malformed value) |
//! | 3 | the tool's arguments were rejected (not JSON, schema violation, unknown tool) |
//! | 4 | the plugin or the grant could not be used (not a component, bad manifest, bad policy file) |
//! | 5 | the sandbox stopped the call (time, memory, fuel, stack, output limit, panic, trap) |
//! | 6 | an artifact could not be obtained or was refused (unreachable, not found, denied, tampered, unsigned, untrusted, tag moved) |

mod api;
mod approvals;
mod call;
mod code;
mod dist;
mod embed;
mod inspect;
mod keygen;
mod mcp;
mod publish;
mod pull;
mod registry;
mod report;
mod run;
mod secret;
mod serve;
mod sign;
mod token;
mod verify;
mod wit;

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  the tool ran and returned a tool error
  2  bad command line
  3  the tool's arguments were rejected (not JSON, schema violation, unknown tool)
  4  the plugin or the grant could not be used (not a component, bad manifest, bad policy file)
  5  the sandbox stopped the call (time, memory, fuel, stack or output limit, panic, trap)
  6  an artifact could not be obtained or was refused (unreachable, not found, denied,
     tampered, unsigned, untrusted signer, tag moved since locked)
  7  `tack run`: the run ended without a final answer (a limit, an error, an interrupt)";

/// tack: a governed runtime for agents whose every extension is a sandboxed WebAssembly component.
#[derive(Parser)]
#[command(name = "tack", version, about, after_help = EXIT_CODES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    globals: Globals,
}

/// Options every command understands.
#[derive(Args, Clone)]
pub(crate) struct Globals {
    /// Directory for compiled native code [default: $TACK_CACHE_DIR or ~/.cache/tack/code].
    #[arg(long, global = true, value_name = "DIR")]
    pub(crate) cache_dir: Option<PathBuf>,
    /// Do not read or write the compiled-code cache.
    #[arg(long, global = true)]
    pub(crate) no_cache: bool,
    /// Host configuration: registries, credentials, trust policy (see docs/registry.md).
    #[arg(long, global = true, value_name = "FILE", env = "TACK_CONFIG")]
    pub(crate) config: Option<PathBuf>,
    /// Directory of verified artifacts [default: $TACK_ARTIFACT_DIR or ~/.cache/tack/artifacts].
    #[arg(long, global = true, value_name = "DIR")]
    pub(crate) artifact_dir: Option<PathBuf>,
    /// Lock file pinning references to digests [default: tack.lock beside --config].
    #[arg(long, global = true, value_name = "FILE", env = "TACK_LOCK")]
    pub(crate) lock: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Work with plugin components.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Call tools.
    #[command(subcommand)]
    Tool(ToolCommand),
    /// Package a component or skill directory and push it to a registry, optionally signed.
    #[command(after_help = EXIT_CODES)]
    Publish(publish::PublishArgs),
    /// Resolve, verify and cache an artifact (and pin it in the lock file).
    #[command(after_help = EXIT_CODES)]
    Pull(pull::PullArgs),
    /// Create an ECDSA P-256 signing key pair (cosign-compatible PEM).
    Keygen(keygen::KeygenArgs),
    /// Sign an artifact in its registry.
    #[command(after_help = EXIT_CODES)]
    Sign(sign::SignArgs),
    /// Check an artifact's signature against trusted keys.
    #[command(after_help = EXIT_CODES)]
    Verify(verify::VerifyArgs),
    /// Run or query a registry.
    #[command(subcommand)]
    Registry(registry::RegistryCommand),
    /// Manage secrets (sealed at rest under the master key; values are write-only).
    #[command(subcommand)]
    Secret(secret::SecretCommand),
    /// Run the host: the agent engine and the sessions API (see docs/agents.md).
    #[command(after_help = EXIT_CODES)]
    Serve(serve::ServeArgs),
    /// Manage API tokens (roles: admin, builder, approver, user).
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// Start a session on a running host and stream it; answer approvals at the prompt.
    #[command(after_help = EXIT_CODES)]
    Run(run::RunArgs),
    /// List and decide pending approvals on a running host.
    #[command(subcommand)]
    Approvals(approvals::ApprovalsCommand),
    /// Serve tack's tools to MCP clients.
    #[command(subcommand)]
    Mcp(mcp::McpCommand),
    /// Code mode: run a program against a toolset, or show its declarations.
    #[command(subcommand)]
    Code(code::CodeCommand),
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Show a component's world, tools with their schemas, and declared capabilities.
    Inspect(inspect::InspectArgs),
    /// Embed a manifest and WIT doc comments into a component built by any toolchain.
    Embed(embed::EmbedArgs),
    /// Write tack's WIT and WASI 0.2's into a WIT directory's `deps/`, for any toolchain.
    Wit(wit::WitArgs),
}

#[derive(Subcommand)]
enum ToolCommand {
    /// Call one tool of a component (a file, or a registry reference) in a fresh sandbox.
    #[command(after_help = EXIT_CODES)]
    Call(Box<call::CallArgs>),
}

impl Globals {
    pub(crate) fn code_cache(&self) -> tack_runtime::CodeCache {
        if self.no_cache {
            return tack_runtime::CodeCache::disabled();
        }
        match self
            .cache_dir
            .clone()
            .or_else(tack_runtime::CodeCache::default_dir)
        {
            Some(dir) => tack_runtime::CodeCache::new(dir),
            None => tack_runtime::CodeCache::disabled(),
        }
    }
}

/// mimalloc, not glibc's malloc: a loop step makes many small, short-lived
/// allocations (JSON values, events, wasm call plumbing) and glibc spent about a
/// tenth of the step's time in them (`benches/benches/agent_loop.rs`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TACK_LOG")
                .unwrap_or_else(|_| "error".into()),
        )
        .with_writer(std::io::stderr)
        // Colours for a terminal only: a log file or a collector gets plain
        // `key=value` text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let g = cli.globals;
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            return report::fail(report::Failure::internal(format!(
                "cannot start the async runtime: {e}"
            )));
        }
    };
    // Every HTTPS client of the process (registries, the API, upstream MCP
    // servers) uses the same TLS provider.
    tack_distribution::client::install_crypto();
    let result = rt.block_on(async {
        match cli.command {
            Command::Plugin(PluginCommand::Inspect(args)) => inspect::run(args, &g).await,
            Command::Plugin(PluginCommand::Embed(args)) => embed::run(args),
            Command::Plugin(PluginCommand::Wit(args)) => wit::run(args),
            Command::Tool(ToolCommand::Call(args)) => call::run(*args, &g).await,
            Command::Publish(args) => publish::publish(args, &g).await,
            Command::Pull(args) => pull::pull(args, &g).await,
            Command::Keygen(args) => keygen::keygen(args),
            Command::Sign(args) => sign::sign(args, &g).await,
            Command::Verify(args) => verify::verify(args, &g).await,
            Command::Registry(cmd) => registry::run(cmd, &g).await,
            Command::Secret(cmd) => secret::run(cmd, &g).await,
            Command::Serve(args) => serve::serve(args, &g).await,
            Command::Token(cmd) => token::token(cmd, &g).await,
            Command::Run(args) => run::run(args, &g).await,
            Command::Approvals(cmd) => approvals::approvals(cmd, &g).await,
            Command::Mcp(cmd) => mcp::run(cmd, &g).await,
            Command::Code(cmd) => code::run(cmd, &g).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(failure) => report::fail(failure),
    }
}
