//! Helpers tack's tests share that need nothing of tack itself, so that a
//! crate's tests can use them without building the sandbox: the workspace's
//! paths and guest components, real peers started on loopback (PostgreSQL,
//! Debian's `docker-registry`, a small HTTP server, an OAuth authorization
//! server, Node 22 and the npm MCP peers), and file checks.

mod loopback;
pub mod node;
mod oauth;
mod peers;
mod proxy;
mod sdk;

pub use loopback::LoopbackServer;
pub use oauth::OAuthServer;
pub use peers::{DockerRegistry, Postgres, files_under, free_port, wait_for_port, which};
pub use proxy::BearerProxy;
pub use sdk::{Sdk, sdk_plugin};

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("tests/support is two levels down")
        .to_path_buf()
}

/// Path of the built guest component `name` (crate name, e.g. `tack_plugin_jq`).
///
/// Guests are built by `scripts/build-guests` once per test process, unless
/// `TACK_GUESTS_PREBUILT=1` says the test command already built them.
pub fn guest(name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        if std::env::var_os("TACK_GUESTS_PREBUILT").is_some() {
            return;
        }
        let script = workspace_root().join("scripts/build-guests");
        let out = Command::new(&script)
            .output()
            .expect("run scripts/build-guests");
        assert!(
            out.status.success(),
            "building guest components failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
    let path = workspace_root()
        .join("target/wasm32-wasip2/release")
        .join(format!("{}.wasm", name.replace('-', "_")));
    assert!(
        path.exists(),
        "guest component {} is missing; run scripts/build-guests",
        path.display()
    );
    path
}

/// A tokio runtime with one worker thread, as a host on one core has (for the
/// benchmarks and profiling programs).
pub fn one_worker_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// The peak resident memory of process `pid` so far (`VmHWM` in
/// `/proc/PID/status`), in KiB: a bound that holds for the whole life of the
/// process, so a test reads it once at the end instead of sampling a clock.
pub fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("cannot read the status of process {pid}: {e}"));
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmHWM in {status}"))
}
