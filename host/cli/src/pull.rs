//! `tack pull`: fetch an artifact, verified, into the cache.

use crate::Globals;
use crate::dist::{self, Bars, Dist};
use crate::report::Failure;
use clap::Args;
use serde_json::json;
use std::process::ExitCode;
use tack_distribution::FetchOptions;

/// Arguments of `tack pull`.
#[derive(Args)]
pub(crate) struct PullArgs {
    /// `[REGISTRY/]NAME@VERSION`, `:TAG` or `@sha256:DIGEST`.
    reference: String,
    /// Re-pin the reference in the lock file to what it resolves to now.
    #[arg(long)]
    update_lock: bool,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

pub(crate) async fn pull(args: PullArgs, g: &Globals) -> Result<ExitCode, Failure> {
    let dist = Dist::load(g)?;
    let r = dist.parse_ref(&args.reference)?;
    let fetcher = dist.fetcher(g)?;
    let f = fetcher
        .fetch(
            &r,
            &FetchOptions {
                update_lock: args.update_lock,
            },
            &Bars::new(),
        )
        .await
        .map_err(dist::failure)?;
    let meta = tack_artifact::PackageMetadata::read(&f.manifest, &f.config);
    if args.json {
        println!(
            "{}",
            json!({
                "reference": r.to_string(),
                "digest": f.digest,
                "source": f.source,
                "kind": meta.as_ref().map(|m| m.kind),
                "tools": meta.as_ref().map(|m| m.tools.iter().map(|t| t.name.clone()).collect::<Vec<_>>()),
                "signature": f.signature,
            })
        );
    } else {
        println!("{r}");
        println!("  digest     {}", f.digest);
        println!(
            "  from       {}",
            serde_json::to_value(f.source)
                .unwrap()
                .as_str()
                .unwrap_or("")
        );
        if let Some(m) = &meta {
            println!("  kind       {}", m.kind);
            if !m.tools.is_empty() {
                let names: Vec<&str> = m.tools.iter().map(|t| t.name.as_str()).collect();
                println!("  tools      {}", names.join(", "));
            }
        }
        match &f.signature {
            Some(s) if s.trusted => println!("  signature  trusted, by {}", s.signer),
            Some(s) => println!(
                "  signature  by {} (not covered by the trust policy)",
                s.signer
            ),
            None => println!(
                "  signature  none (not required for namespace `{}`)",
                r.namespace()
            ),
        }
    }
    Ok(ExitCode::SUCCESS)
}
