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

mod call;
mod inspect;
mod report;

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
  5  the sandbox stopped the call (time, memory, fuel, stack or output limit, panic, trap)";

/// tack: a governed runtime for agents whose every extension is a sandboxed WebAssembly component.
#[derive(Parser)]
#[command(name = "tack", version, about, after_help = EXIT_CODES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Directory for compiled native code [default: $TACK_CACHE_DIR or ~/.cache/tack/code].
    #[arg(long, global = true, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// Do not read or write the compiled-code cache.
    #[arg(long, global = true)]
    no_cache: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Work with plugin components.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Call tools.
    #[command(subcommand)]
    Tool(ToolCommand),
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Show a component's world, tools with their schemas, and declared capabilities.
    Inspect(inspect::InspectArgs),
}

#[derive(Subcommand)]
enum ToolCommand {
    /// Call one tool of a component in a fresh sandbox.
    #[command(after_help = EXIT_CODES)]
    Call(Box<call::CallArgs>),
}

/// Options shared by commands that load a component.
#[derive(Args, Clone)]
pub(crate) struct CacheArgs {
    pub(crate) cache_dir: Option<PathBuf>,
    pub(crate) no_cache: bool,
}

impl CacheArgs {
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

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TACK_LOG")
                .unwrap_or_else(|_| "error".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let cache = CacheArgs {
        cache_dir: cli.cache_dir,
        no_cache: cli.no_cache,
    };
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
    let result = rt.block_on(async {
        match cli.command {
            Command::Plugin(PluginCommand::Inspect(args)) => inspect::run(args, &cache).await,
            Command::Tool(ToolCommand::Call(args)) => call::run(*args, &cache).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(failure) => report::fail(failure),
    }
}
