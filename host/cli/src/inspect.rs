//! `tack plugin inspect`.

use crate::Globals;
use crate::report::{EXIT_UNUSABLE, Failure};
use clap::Args;
use serde_json::json;
use std::process::ExitCode;
use tack_runtime::{Runtime, RuntimeConfig};

/// Arguments of `tack plugin inspect`.
#[derive(Args)]
pub(crate) struct InspectArgs {
    /// The component to inspect: a `.wasm` file or a registry reference.
    file: String,
    /// Print one JSON document instead of text.
    #[arg(long)]
    json: bool,
}

pub(crate) async fn run(args: InspectArgs, cache: &Globals) -> Result<ExitCode, Failure> {
    let runtime = Runtime::new(RuntimeConfig {
        cache: cache.code_cache(),
        ..RuntimeConfig::default()
    })
    .map_err(|e| Failure::internal(format!("cannot start the runtime: {e:#}")))?;
    let loaded = crate::dist::component(cache, &args.file).await?;
    let plugin = runtime
        .load(&loaded.bytes)
        .map_err(|e| Failure::load(std::path::Path::new(&loaded.label), e))?;
    let tools = plugin.tools().await.map_err(|e| {
        Failure::new(
            EXIT_UNUSABLE,
            format!("cannot list the tools of {}: {e}", args.file),
        )
    })?;
    let manifest = plugin.manifest();

    if args.json {
        let doc = json!({
            "file": args.file,
            "digest": plugin.digest(),
            "size": plugin.size(),
            "world": plugin.world(),
            "manifest": manifest,
            "tools": tools,
            "tool-exports": plugin.tool_exports().into_iter().collect::<std::collections::BTreeMap<_, _>>(),
            "skipped-exports": plugin.skipped_exports(),
            "artifact": loaded.fetched.as_ref().map(|f| json!({
                "manifest-digest": f.digest,
                "source": f.source,
                "signature": f.signature,
            })),
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&doc).expect("JSON serialises")
        );
        return Ok(ExitCode::SUCCESS);
    }

    let name = if manifest.plugin.name.is_empty() {
        "(unnamed)"
    } else {
        &manifest.plugin.name
    };
    println!("plugin   {name}");
    if !manifest.plugin.description.is_empty() {
        println!("         {}", manifest.plugin.description);
    }
    println!("digest   {}", plugin.digest());
    println!("size     {} bytes", plugin.size());
    if let Some(f) = &loaded.fetched {
        println!("artifact {} ({})", loaded.label, f.digest);
        match &f.signature {
            Some(s) => println!(
                "signer   {}{}",
                s.signer,
                if s.trusted {
                    " (trusted)"
                } else {
                    " (not covered by the trust policy)"
                }
            ),
            None => println!("signer   none"),
        }
    }
    println!("\nworld");
    for e in &plugin.world().exports {
        println!("  export {e}");
    }
    for i in &plugin.world().imports {
        println!("  import {i}");
    }

    println!("\ndeclared capabilities");
    let caps = &manifest.capabilities;
    let mut any = false;
    for d in &caps.dirs {
        any = true;
        let purpose = if d.purpose.is_empty() {
            String::new()
        } else {
            format!("  ({})", d.purpose)
        };
        println!("  dir    {} {}{purpose}", d.guest, d.mode);
    }
    for e in &caps.env {
        any = true;
        println!("  env    {e}");
    }
    if let Some(h) = &caps.http {
        any = true;
        let hosts: Vec<String> = h.hosts.iter().map(|h| h.to_string()).collect();
        println!("  http   {}", hosts.join(", "));
    }
    if caps.wall_clock {
        any = true;
        println!("  clock  wall clock");
    }
    if let Some(m) = manifest.limits.memory {
        println!("  needs  {m} of memory");
    }
    if !any {
        println!("  none (the plugin runs with no filesystem, network, environment or clock)");
    }

    let exports = plugin.tool_exports();
    println!("\ntools");
    if !exports.is_empty() {
        println!("  (the component's plain exported functions; annotations from its manifest)");
    }
    for t in tools {
        let a = &t.annotations;
        let mut flags = Vec::new();
        if a.destructive {
            flags.push("destructive");
        }
        if a.read_only {
            flags.push("read-only");
        }
        if a.idempotent {
            flags.push("idempotent");
        }
        if a.open_world {
            flags.push("open-world");
        }
        println!("  {}  [{}]", t.name, flags.join(", "));
        if let Some((_, export)) = exports.iter().find(|(n, _)| *n == t.name) {
            println!("    from {export}");
        }
        println!("    {}", t.description);
        let schema = serde_json::to_string_pretty(&t.input_schema).expect("JSON serialises");
        println!("    input schema:");
        for line in schema.lines() {
            println!("      {line}");
        }
    }
    let skipped = plugin.skipped_exports();
    if !skipped.is_empty() {
        println!("\nexported functions that are not tools");
        for s in skipped {
            println!("  {}: {}", s.export, s.reason);
        }
    }
    Ok(ExitCode::SUCCESS)
}
