//! `tack plugin wit`: the WIT a plugin in any language builds against — tack's
//! interfaces and the WASI 0.2 interfaces tack hosts — written into a WIT
//! directory's `deps/`, where `wit-bindgen`, `componentize-py` and `jco` look.

use crate::report::{EXIT_UNUSABLE, Failure};
use clap::Args;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

include!(concat!(env!("OUT_DIR"), "/wasi_wit.rs"));

/// tack's own WIT package, `tack:plugin`: (file name, text).
const TACK_WIT: &[(&str, &str)] = &[
    ("types.wit", include_str!("../../../wit/types.wit")),
    ("tool.wit", include_str!("../../../wit/tool.wit")),
    ("model.wit", include_str!("../../../wit/model.wit")),
    ("policy.wit", include_str!("../../../wit/policy.wit")),
    ("code.wit", include_str!("../../../wit/code.wit")),
];

/// Arguments of `tack plugin wit`.
#[derive(Args)]
pub(crate) struct WitArgs {
    /// The plugin's WIT directory; the interfaces go into its `deps/`.
    #[arg(default_value = "wit")]
    dir: PathBuf,
}

pub(crate) fn run(args: WitArgs) -> Result<ExitCode, Failure> {
    let written = write(&args.dir).map_err(|e| {
        Failure::new(
            EXIT_UNUSABLE,
            format!("cannot write WIT into {}: {e}", args.dir.display()),
        )
    })?;
    println!(
        "wrote tack:plugin@0.1.0 and WASI 0.2 (from {WASI_SOURCE}) into {}",
        written.display()
    );
    println!(
        "use them from your world, e.g. `include tack:plugin/tool-plugin@0.1.0;` \
         or `import wasi:http/outgoing-handler@0.2.12;`"
    );
    Ok(ExitCode::SUCCESS)
}

/// Write the deps into `dir/deps`, replacing earlier copies; returns that path.
pub(crate) fn write(dir: &Path) -> std::io::Result<PathBuf> {
    let deps = dir.join("deps");
    let tack = deps.join("tack-plugin");
    std::fs::create_dir_all(&tack)?;
    for (name, text) in TACK_WIT {
        std::fs::write(tack.join(name), text)?;
    }
    for (name, text) in WASI_WIT {
        std::fs::write(deps.join(format!("wasi-{name}")), text)?;
    }
    Ok(deps)
}
