//! Embeds the WASI 0.2 WIT that `tack plugin wit` writes for plugin authors.
//!
//! The WIT comes from the source of the `wasip2` crate (a build-dependency, at the
//! version in the workspace's lock file: the WASI release tack's Rust guests are
//! built against), so tack does not keep its own copy of WASI's interfaces.

use std::path::PathBuf;

fn main() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let workspace = manifest_dir.join("../..");
    println!(
        "cargo:rerun-if-changed={}",
        workspace.join("Cargo.lock").display()
    );
    // The version the lock file pins; the crate is a build-dependency, so its
    // source is in Cargo's registry by the time this runs.
    let lock = std::fs::read_to_string(workspace.join("Cargo.lock")).expect("read Cargo.lock");
    let version = lock
        .split("[[package]]")
        .filter(|p| p.contains("name = \"wasip2\""))
        .filter_map(|p| p.split("version = \"").nth(1)?.split('"').next())
        .max()
        .expect("the wasip2 crate is in Cargo.lock")
        .to_string();
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .expect("CARGO_HOME or HOME is set");
    let registry = cargo_home.join("registry/src");
    let dir = std::fs::read_dir(&registry)
        .unwrap_or_else(|e| panic!("{}: {e}", registry.display()))
        .map(|e| e.unwrap().path().join(format!("wasip2-{version}/wit/deps")))
        .find(|d| d.is_dir())
        .unwrap_or_else(|| {
            panic!(
                "the source of wasip2 {version} is not under {}; run `cargo fetch`",
                registry.display()
            )
        });
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wit"))
        .collect();
    files.sort();
    let mut code = format!(
        "/// The `wasip2` crate release the WASI WIT comes from.\npub(crate) const WASI_SOURCE: &str = \"wasip2 {version}\";\n/// WASI 0.2's WIT packages: (file name, text).\npub(crate) const WASI_WIT: &[(&str, &str)] = &[\n"
    );
    for f in &files {
        code.push_str(&format!(
            "    ({:?}, include_str!({:?})),\n",
            f.file_name().unwrap().to_str().unwrap(),
            f.display().to_string()
        ));
    }
    code.push_str("];\n");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap()).join("wasi_wit.rs");
    std::fs::write(out, code).unwrap();
}
