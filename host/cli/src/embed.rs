//! `tack plugin embed`: give a component built by any toolchain its manifest
//! (declared capabilities, tool notes) and its WIT doc comments, the way the
//! Rust SDK's `manifest!` gives them to a Rust plugin.

use crate::report::{EXIT_UNUSABLE, Failure};
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `tack plugin embed`.
#[derive(Args)]
pub(crate) struct EmbedArgs {
    /// The component as the toolchain built it.
    component: PathBuf,
    /// The plugin's manifest (`tack.toml`): its name, the capabilities it
    /// asks for, and `[tools.NAME]` notes.
    #[arg(long, value_name = "TACK_TOML")]
    manifest: Option<PathBuf>,
    /// The WIT directory the component was built from: its doc comments
    /// become the descriptions of the tools a plain component offers.
    #[arg(long, value_name = "DIR")]
    wit: Option<PathBuf>,
    /// Where to write the result [default: over COMPONENT].
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
}

pub(crate) fn run(args: EmbedArgs) -> Result<ExitCode, Failure> {
    if args.manifest.is_none() && args.wit.is_none() {
        return Err(Failure::new(crate::report::EXIT_USAGE, "nothing to embed")
            .help("pass --manifest tack.toml, --wit wit/, or both"));
    }
    let path = |p: &PathBuf| p.display().to_string();
    let mut bytes = std::fs::read(&args.component).map_err(|e| {
        Failure::new(
            EXIT_UNUSABLE,
            format!("cannot read {}: {e}", path(&args.component)),
        )
    })?;
    if let Some(wit) = &args.wit {
        bytes = tack_runtime::embed_wit_docs(&bytes, wit).map_err(|e| {
            Failure::new(
                EXIT_UNUSABLE,
                format!(
                    "cannot embed the docs of {} into {}: {e:#}",
                    path(wit),
                    path(&args.component)
                ),
            )
            .help("pass the WIT directory the component was built from")
        })?;
    }
    if let Some(manifest) = &args.manifest {
        let text = std::fs::read_to_string(manifest).map_err(|e| {
            Failure::new(
                EXIT_UNUSABLE,
                format!("cannot read {}: {e}", path(manifest)),
            )
        })?;
        refuse_tool_notes_for_contract_plugins(&bytes, &text, manifest)?;
        bytes = tack_runtime::embed_manifest(&bytes, &text).map_err(|e| {
            Failure::new(EXIT_UNUSABLE, format!("{}: {e}", path(manifest)))
                .help("the manifest's format is in docs/capabilities.md")
        })?;
    }
    let out = args.output.as_ref().unwrap_or(&args.component);
    // Write beside, then rename: a failure never leaves half a component.
    let tmp = out.with_extension("wasm.tmp");
    std::fs::write(&tmp, &bytes)
        .and_then(|()| std::fs::rename(&tmp, out))
        .map_err(|e| Failure::new(EXIT_UNUSABLE, format!("cannot write {}: {e}", path(out))))?;
    eprintln!("embedded into {} ({} bytes)", path(out), bytes.len());
    Ok(ExitCode::SUCCESS)
}

/// `[tools.NAME]` notes are for plain-function components: a `tack:plugin/tool`
/// plugin's tool list carries its annotations, and loading it would refuse them.
fn refuse_tool_notes_for_contract_plugins(
    component: &[u8],
    manifest_text: &str,
    manifest: &std::path::Path,
) -> Result<(), Failure> {
    let Ok(parsed) = tack_capability::Manifest::from_toml(manifest_text) else {
        return Ok(()); // embed_manifest reports what is wrong with it
    };
    let contract = tack_runtime::world_info(component).is_ok_and(|w| w.is_tool_plugin());
    if contract && let Some(name) = parsed.tools.keys().next() {
        return Err(Failure::new(
            EXIT_UNUSABLE,
            format!(
                "{}: [tools.{name}] is for components whose tools are plain exported functions, \
                 but this component exports tack:plugin/tool",
                manifest.display()
            ),
        )
        .help("give the tool's annotations in its descriptor (the SDKs' tool options) and drop the [tools] tables"));
    }
    Ok(())
}
