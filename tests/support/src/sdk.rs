//! Plugins written with tack's Python and JavaScript SDKs, built the way their
//! READMEs say, once per change of their sources: the build takes seconds and
//! every test process (nextest runs each test in its own) would otherwise repeat it.

use crate::workspace_root;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Which SDK a plugin is written with.
#[derive(Clone, Copy, Debug)]
pub enum Sdk {
    /// `sdk/python`: `python3 -m tack_sdk build app.py`.
    Python,
    /// `sdk/js`: `node sdk/js/bin/tack-js.mjs build index.ts` (or `index.js`).
    Js,
}

impl Sdk {
    fn dir(self) -> PathBuf {
        workspace_root().join(match self {
            Sdk::Python => "sdk/python",
            Sdk::Js => "sdk/js",
        })
    }
}

/// The component built from the plugin in `source` (workspace-relative, e.g.
/// `plugins/csv-stats`) with `sdk`, using `tack` for its WIT and manifest steps.
/// Rebuilt only when the plugin, the SDK or tack's WIT changed.
pub fn sdk_plugin(sdk: Sdk, source: &str, tack: &Path) -> PathBuf {
    let root = workspace_root();
    let source = root.join(source);
    let mut hash = Sha256::new();
    for dir in [source.clone(), sdk.dir(), root.join("wit")] {
        for file in files(&dir) {
            hash.update(
                file.strip_prefix(&root)
                    .unwrap()
                    .to_string_lossy()
                    .as_bytes(),
            );
            hash.update(std::fs::read(&file).unwrap());
        }
    }
    let digest = hex(&hash.finalize()[..8]);
    let name = source.file_name().unwrap().to_string_lossy().into_owned();
    let out_dir = root.join("target/tack-sdk-plugins");
    std::fs::create_dir_all(&out_dir).unwrap();
    let out = out_dir.join(format!("{name}-{digest}.wasm"));
    // One builder at a time; the others wait, then find the component built.
    let lock = std::fs::File::create(out_dir.join(format!("{name}.lock"))).unwrap();
    lock.lock().unwrap();
    if out.exists() {
        return out;
    }
    let tmp = out.with_extension("wasm.tmp");
    let mut cmd = match sdk {
        Sdk::Python => {
            let mut c = Command::new("python3");
            c.args(["-m", "tack_sdk", "build"])
                .arg(source.join("app.py"))
                .env("PYTHONPATH", sdk.dir());
            c
        }
        Sdk::Js => {
            let mut c = Command::new(crate::node::node());
            let ts = source.join("index.ts");
            let entry = if ts.exists() {
                ts
            } else {
                source.join("index.js")
            };
            c.arg(sdk.dir().join("bin/tack-js.mjs"))
                .arg("build")
                .arg(entry);
            c
        }
    };
    let built = cmd
        .arg("-o")
        .arg(&tmp)
        .arg("--tack")
        .arg(tack)
        .output()
        .unwrap_or_else(|e| panic!("cannot run the {sdk:?} SDK's build: {e}"));
    assert!(
        built.status.success(),
        "building {} with the {sdk:?} SDK failed:\n{}{}",
        source.display(),
        String::from_utf8_lossy(&built.stdout),
        String::from_utf8_lossy(&built.stderr)
    );
    std::fs::rename(&tmp, &out).unwrap();
    out
}

/// Every file under `dir`, sorted, leaving out installed packages and caches.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if matches!(&*name, "node_modules" | "__pycache__" | "build") || name.ends_with(".egg-info")
        {
            continue;
        }
        if path.is_dir() {
            out.extend(files(&path));
        } else {
            out.push(path);
        }
    }
    out.sort();
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
