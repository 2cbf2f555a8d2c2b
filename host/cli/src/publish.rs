//! `tack publish`: push a component or skill to a registry, signed.

use crate::Globals;
use crate::dist::{self, Bars, Dist};
use crate::keygen::signing_key;
use crate::report::{EXIT_UNUSABLE, Failure};
use clap::Args;
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;
use tack_runtime::{Runtime, RuntimeConfig};

/// Arguments of `tack publish`.
#[derive(Args)]
pub(crate) struct PublishArgs {
    /// A component (`.wasm`) or a skill directory (`SKILL.md`, optionally one `.wasm`).
    path: PathBuf,
    /// Where to publish: `[REGISTRY/]NAMESPACE/NAME@VERSION` (the version is a semver tag).
    reference: String,
    /// Sign the published manifest with this private key (from `tack keygen`).
    #[arg(long, value_name = "KEY")]
    sign_key: Option<PathBuf>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

pub(crate) async fn publish(args: PublishArgs, g: &Globals) -> Result<ExitCode, Failure> {
    let dist = Dist::load(g)?;
    let r = dist.parse_ref(&args.reference)?;
    tack_distribution::publish::version_of(&r).map_err(dist::failure)?;
    let key = args.sign_key.as_deref().map(signing_key).transpose()?;
    let runtime = Runtime::new(RuntimeConfig {
        cache: g.code_cache(),
        ..RuntimeConfig::default()
    })
    .map_err(|e| Failure::internal(format!("cannot start the runtime: {e:#}")))?;
    let artifact = tack_package::package(&runtime, &args.path)
        .await
        .map_err(|e| Failure::new(EXIT_UNUSABLE, e.to_string()))?;
    let kind = artifact.config.tack.as_ref().map(|t| t.kind);
    let tools: Vec<String> = artifact
        .config
        .tack
        .iter()
        .flat_map(|t| t.tools.iter().map(|t| t.name.clone()))
        .collect();
    let published = tack_distribution::publish::publish(
        &dist.registries,
        &r,
        &artifact,
        key.as_ref(),
        &Bars::new(),
    )
    .await
    .map_err(dist::failure)?;
    if args.json {
        println!(
            "{}",
            json!({
                "reference": r.to_string(),
                "digest": published.digest,
                "size": published.size,
                "kind": kind,
                "tools": tools,
                "signer": published.signer,
            })
        );
    } else {
        println!("published {r}");
        println!("  digest  {}", published.digest);
        if let Some(k) = kind {
            println!("  kind    {k}");
        }
        if !tools.is_empty() {
            println!("  tools   {}", tools.join(", "));
        }
        match &published.signer {
            Some(s) => println!("  signed  {s}"),
            None => println!("  signed  no (sign later with `tack sign --key KEY {r}`)"),
        }
    }
    Ok(ExitCode::SUCCESS)
}
