//! Fresh instance + one tool call per plugin language, beside the anchors.
//!
//! Run with `cargo bench -p tack-benches --bench languages`. For a plugin built
//! with the Rust SDK, a plain-WIT component (no SDK), the Python SDK and the
//! JavaScript SDK, prints the component's size, the time to compile it (no code
//! cache), and the latency of a complete `Sandbox::call` (argument checks, a new
//! store and instance from the cached `InstancePre`, the call, the result),
//! p50 and p99 as medians over rounds, with pooling on (the host's default).
//! Goal: Python and JavaScript p50 ≤ 5 ms; E2B creates a sandbox in ~440 ms.
//!
//! The Python and JavaScript plugins are built with their SDKs (`tack_tests::
//! sdk_plugin`), which need the `tack` binary: `$TACK`, or the workspace's
//! debug build (built here if missing).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tack_benches::percentile;
use tack_capability::Grant;
use tack_runtime::{CallContext, CodeCache, Runtime, RuntimeConfig};
use tack_tests::{Sdk, sdk_plugin, workspace_root};

const ROUNDS: usize = 5;
const CALLS: usize = 300;
const WARMUP: usize = 50;

struct Plugin {
    language: &'static str,
    wasm: PathBuf,
    tool: &'static str,
    args: &'static str,
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

fn tack_binary() -> PathBuf {
    if let Some(t) = std::env::var_os("TACK") {
        return PathBuf::from(t);
    }
    let debug = workspace_root().join("target/debug/tack");
    if !debug.exists() {
        let built = std::process::Command::new(env!("CARGO"))
            .args(["build", "--quiet", "-p", "tack-cli"])
            .current_dir(workspace_root())
            .status()
            .expect("run cargo build");
        assert!(built.success(), "building the tack binary failed");
    }
    debug
}

/// `tack plugin embed` of the plain guest's manifest and WIT docs.
fn plain_guest(tack: &Path) -> PathBuf {
    let source = workspace_root().join("tests/guests/plain");
    let out = workspace_root().join("target/tack-sdk-plugins/plain-embedded.wasm");
    let done = std::process::Command::new(tack)
        .args(["plugin", "embed"])
        .arg(tack_tests::guest("tack_guest_plain"))
        .arg("--manifest")
        .arg(source.join("tack.toml"))
        .arg("--wit")
        .arg(source.join("wit"))
        .arg("-o")
        .arg(&out)
        .output()
        .expect("run tack plugin embed");
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    out
}

fn compile_time(bytes: &[u8]) -> Duration {
    let runtime = Runtime::new(RuntimeConfig {
        cache: CodeCache::disabled(),
        ..RuntimeConfig::default()
    })
    .expect("runtime");
    let t = Instant::now();
    runtime.load(bytes).expect("load");
    t.elapsed()
}

async fn latency(runtime: &Runtime, p: &Plugin) -> (Duration, Duration, Duration, Duration) {
    let plugin = runtime.load_file(&p.wasm).expect("plugin loads");
    let sandbox = plugin.sandbox(&Grant::default()).expect("sandbox");
    let ctx = CallContext {
        call_id: "bench".into(),
        ..CallContext::default()
    };
    for _ in 0..WARMUP {
        let out = sandbox.call(p.tool, p.args, &ctx).await.expect("call");
        assert!(out.result.is_ok(), "{}: {:?}", p.language, out.result);
    }
    let (mut p50s, mut p99s) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let mut samples = Vec::with_capacity(CALLS);
        for _ in 0..CALLS {
            let t = Instant::now();
            sandbox.call(p.tool, p.args, &ctx).await.expect("call");
            samples.push(t.elapsed());
        }
        samples.sort();
        p50s.push(percentile(&samples, 0.5));
        p99s.push(percentile(&samples, 0.99));
    }
    p50s.sort();
    p99s.sort();
    (
        percentile(&p50s, 0.5),
        percentile(&p99s, 0.5),
        p50s[0],
        p50s[ROUNDS - 1],
    )
}

fn main() {
    let tack = tack_binary();
    let plugins = [
        Plugin {
            language: "Rust (tack SDK)",
            wasm: tack_tests::guest("tack_guest_echo"),
            tool: "echo",
            args: r#"{"value": {"id": 42, "ok": true}}"#,
        },
        Plugin {
            language: "Rust (plain WIT, no SDK)",
            wasm: plain_guest(&tack),
            tool: "count",
            args: r#"{"text": "one two three"}"#,
        },
        Plugin {
            language: "Python (tack_sdk)",
            wasm: sdk_plugin(Sdk::Python, "plugins/csv-stats", &tack),
            tool: "top_words",
            args: r#"{"text": "one two two three", "n": 2}"#,
        },
        Plugin {
            language: "TypeScript (tack-sdk)",
            wasm: sdk_plugin(Sdk::Js, "plugins/json-tools", &tack),
            tool: "pick",
            args: r#"{"document": {"a": [1, 2]}, "pointers": ["/a/1"]}"#,
        },
    ];
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio");
    let runtime = Runtime::new(RuntimeConfig {
        cache: tack_tests::test_cache(),
        ..RuntimeConfig::default()
    })
    .expect("runtime");
    println!(
        "tack plugin languages: fresh instance + one call ({} cores, pooling on; {ROUNDS} rounds of {CALLS})",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "  {:<26} {:>9} {:>13} {:>11} {:>11}  p50 range",
        "language", "size", "first compile", "p50", "p99"
    );
    for p in &plugins {
        let bytes = std::fs::read(&p.wasm).expect("read component");
        let compile = compile_time(&bytes);
        let (p50, p99, lo, hi) = rt.block_on(latency(&runtime, p));
        println!(
            "  {:<26} {:>6.1} MB {:>13} {:>11} {:>11}  {}-{}",
            p.language,
            bytes.len() as f64 / 1e6,
            ms(compile),
            ms(p50),
            ms(p99),
            ms(lo),
            ms(hi),
        );
    }
    println!("  anchor: E2B sandbox create ~440 ms; goal: Python and JavaScript p50 <= 5 ms");
}
