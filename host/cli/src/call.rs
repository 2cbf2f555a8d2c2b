//! `tack tool call`.

use crate::Globals;
use crate::report::{self, EXIT_BAD_ARGUMENTS, EXIT_TOOL_ERROR, EXIT_UNUSABLE, Failure};
use clap::Args;
use ipnet::IpNet;
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use tack_capability::{ByteSize, DirGrant, Grant, HostPattern, HumanDuration};
use tack_runtime::{CallContext, Content, Runtime, RuntimeConfig};

/// Arguments of `tack tool call`. Every capability is denied unless granted here
/// (or in `--grant`) and declared by the plugin's manifest.
#[derive(Args)]
pub(crate) struct CallArgs {
    /// The component: a `.wasm` file, or a registry reference (`[REGISTRY/]NAME@VERSION`),
    /// which is resolved, verified against the trust policy and cached first.
    file: String,
    /// The tool to call.
    tool: String,
    /// Arguments as a JSON object; `@FILE` reads a file, `-` reads stdin.
    #[arg(long, default_value = "{}", value_name = "JSON")]
    args: String,
    /// A grant file (TOML, see docs/capabilities.md); flags below add to it.
    /// (`--policy` is an older name for it.)
    #[arg(long, alias = "policy", value_name = "FILE")]
    grant: Option<PathBuf>,
    /// Allow outgoing HTTP to a host pattern (`api.example.com`, `*.example.com`, `host:port`, `*`).
    #[arg(long = "allow-host", value_name = "PATTERN")]
    allow_host: Vec<HostPattern>,
    /// Allow a loopback/private/link-local range (CIDR), which is refused otherwise.
    #[arg(long = "allow-private", value_name = "CIDR")]
    allow_private: Vec<IpNet>,
    /// Mount a host directory: HOST:GUEST (read-write) or HOST:GUEST:ro.
    #[arg(long = "dir", value_name = "HOST:GUEST[:ro]")]
    dirs: Vec<DirGrant>,
    /// Pass an environment variable: NAME (the host's value) or NAME=VALUE.
    #[arg(long = "env", value_name = "NAME[=VALUE]")]
    env: Vec<String>,
    /// Let the plugin read the real wall clock.
    #[arg(long)]
    wall_clock: bool,
    /// Wall-time limit of the call [default: 10s].
    #[arg(long, value_name = "DURATION")]
    timeout: Option<HumanDuration>,
    /// Memory limit [default: 64MiB].
    #[arg(long, value_name = "SIZE")]
    memory: Option<ByteSize>,
    /// Fuel budget (deterministic instruction count); turns on metering.
    #[arg(long, value_name = "UNITS")]
    fuel: Option<u64>,
    /// Largest result accepted [default: 1MiB].
    #[arg(long, value_name = "SIZE")]
    max_output: Option<ByteSize>,
    /// Print the whole outcome (result, logs, egress decisions, timing) as JSON.
    #[arg(long)]
    json: bool,
}

impl CallArgs {
    fn grant(&self) -> Result<Grant, Failure> {
        let mut grant = match &self.grant {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    Failure::new(
                        EXIT_UNUSABLE,
                        format!("cannot read grant file {}: {e}", path.display()),
                    )
                })?;
                Grant::from_toml(&text).map_err(|e| {
                    Failure::new(EXIT_UNUSABLE, format!("{}: {e}", path.display()))
                        .help("the grant format is documented in docs/capabilities.md")
                })?
            }
            None => Grant::default(),
        };
        grant.http.allow.extend(self.allow_host.iter().cloned());
        grant
            .http
            .allow_private
            .extend(self.allow_private.iter().cloned());
        grant.dirs.extend(self.dirs.iter().cloned());
        grant.env.extend(self.env.iter().cloned());
        grant.wall_clock |= self.wall_clock;
        let l = &mut grant.limits;
        l.timeout = self.timeout.or(l.timeout);
        l.memory = self.memory.or(l.memory);
        l.fuel = self.fuel.or(l.fuel);
        l.max_output = self.max_output.or(l.max_output);
        Ok(grant)
    }

    fn arguments(&self) -> Result<String, Failure> {
        let read_err = |what: &str, e: std::io::Error| {
            Failure::new(
                EXIT_BAD_ARGUMENTS,
                format!("cannot read arguments from {what}: {e}"),
            )
        };
        if self.args == "-" {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .map_err(|e| read_err("stdin", e))?;
            Ok(s)
        } else if let Some(path) = self.args.strip_prefix('@') {
            std::fs::read_to_string(path).map_err(|e| read_err(path, e))
        } else {
            Ok(self.args.clone())
        }
    }
}

pub(crate) async fn run(args: CallArgs, cache: &Globals) -> Result<ExitCode, Failure> {
    let grant = args.grant()?;
    let arguments = args.arguments()?;
    let runtime = Runtime::new(RuntimeConfig {
        cache: cache.code_cache(),
        fuel: grant.limits.fuel.is_some(),
        ..RuntimeConfig::default()
    })
    .map_err(|e| Failure::internal(format!("cannot start the runtime: {e:#}")))?;
    let loaded = crate::dist::component(cache, &args.file).await?;
    let plugin = runtime
        .load(&loaded.bytes)
        .map_err(|e| Failure::load(std::path::Path::new(&loaded.label), e))?;
    let sandbox = plugin
        .sandbox(&grant)
        .map_err(|e| Failure::new(EXIT_UNUSABLE, format!("cannot apply the grant: {e}")))?;
    for note in &sandbox.capabilities().notes {
        report::note(&note.to_string());
    }

    let outcome = sandbox
        .call(&args.tool, &arguments, &CallContext::default())
        .await
        .map_err(Failure::call)?;

    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&outcome).expect("JSON serialises")
        );
        return Ok(if outcome.result.is_ok() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(EXIT_TOOL_ERROR)
        });
    }
    for e in &outcome.egress {
        if let Some(reason) = &e.denied {
            report::warn(reason);
        }
    }
    for log in &outcome.logs {
        let level = serde_json::to_value(log.level).ok();
        let level = level.as_ref().and_then(|l| l.as_str()).unwrap_or("log");
        eprintln!("plugin {level}: {}", log.message);
    }
    match outcome.result {
        Ok(contents) => {
            for c in contents {
                match c {
                    Content::Text(t) => println!("{t}"),
                    Content::Json(v) => println!(
                        "{}",
                        serde_json::to_string_pretty(&v).expect("JSON serialises")
                    ),
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("error: the tool `{}` failed: {e}", args.tool);
            Ok(ExitCode::from(EXIT_TOOL_ERROR))
        }
    }
}
