//! Sandbox start-up and call latency, beside the anchors.
//!
//! Run with `cargo bench -p tack-benches` (builds the guest components first if
//! needed). Prints:
//! - fresh instance + one tool call (`echo`), p50 and p99, pooling on and off;
//! - loading a component: compiling it vs loading native code from the cache.
//!
//! Every call is a complete `Sandbox::call`: argument validation, a new `Store`
//! with its WASI context, instantiation from the cached `InstancePre`, the call,
//! and the result lifted back. Nothing is reused between calls but compiled code.

use std::time::{Duration, Instant};
use tack_policy::Grant;
use tack_runtime::{CallContext, CodeCache, Runtime, RuntimeConfig};

/// Calls measured per configuration.
const CALLS: usize = 5_000;
/// Calls run first and not measured.
const WARMUP: usize = 500;
/// Loads measured per cache mode.
const LOADS: usize = 5;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx]
}

fn micros(d: Duration) -> String {
    format!("{:>7.1} µs", d.as_secs_f64() * 1e6)
}

fn millis(d: Duration) -> String {
    format!("{:>8.1} ms", d.as_secs_f64() * 1e3)
}

async fn call_latency(pooling: bool, wasm: &std::path::Path) -> (Duration, Duration) {
    let runtime = Runtime::new(RuntimeConfig {
        pooling,
        cache: tack_tests::test_cache(),
        ..RuntimeConfig::default()
    })
    .expect("runtime");
    let plugin = runtime.load_file(wasm).expect("echo loads");
    let sandbox = plugin.sandbox(&Grant::default()).expect("sandbox");
    let ctx = CallContext {
        call_id: "bench".into(),
        ..CallContext::default()
    };
    let args = r#"{"value": {"id": 42, "ok": true}}"#;
    for _ in 0..WARMUP {
        sandbox.call("echo", args, &ctx).await.expect("call");
    }
    let mut samples = Vec::with_capacity(CALLS);
    for _ in 0..CALLS {
        let t = Instant::now();
        let out = sandbox.call("echo", args, &ctx).await.expect("call");
        samples.push(t.elapsed());
        assert!(out.result.is_ok());
    }
    samples.sort();
    (percentile(&samples, 0.50), percentile(&samples, 0.99))
}

fn load_time(cache: impl Fn() -> CodeCache, bytes: &[u8]) -> Duration {
    let mut samples = Vec::new();
    for _ in 0..LOADS {
        // A new runtime each time, so its in-memory plugin cache cannot answer.
        let runtime = Runtime::new(RuntimeConfig {
            cache: cache(),
            ..RuntimeConfig::default()
        })
        .expect("runtime");
        let t = Instant::now();
        runtime.load(bytes).expect("load");
        samples.push(t.elapsed());
    }
    samples.sort();
    percentile(&samples, 0.5)
}

fn main() {
    // `cargo bench` passes `--bench`; nothing here takes arguments.
    let echo = tack_tests::guest("tack_guest_echo");
    let jq = tack_tests::guest("tack_plugin_jq");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio");

    println!(
        "tack sandbox benchmark ({} cores)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!();
    println!("fresh instance + one tool call (echo), {CALLS} calls after {WARMUP} warm-up:");
    let (p50, p99) = rt.block_on(call_latency(true, &echo));
    println!("  pooling on    p50 {}   p99 {}", micros(p50), micros(p99));
    let (off50, off99) = rt.block_on(call_latency(false, &echo));
    println!(
        "  pooling off   p50 {}   p99 {}",
        micros(off50),
        micros(off99)
    );
    println!("  goal, pooling on: p50 <= 30 µs, p99 <= 100 µs");
    println!();
    println!("anchors (sandbox ready to run code):");
    println!(
        "  E2B sandbox create, median        {}   (ComputeSDK leaderboard, 2026-04-01)",
        millis(Duration::from_millis(440))
    );
    println!(
        "  Firecracker boot to guest init  <= {}   (Firecracker SPECIFICATION.md)",
        millis(Duration::from_millis(125))
    );
    println!(
        "  tack p50 is {:.0}x faster than E2B's median and {:.0}x faster than Firecracker's bound",
        0.440 / p50.as_secs_f64(),
        0.125 / p50.as_secs_f64()
    );
    println!();

    let bytes = std::fs::read(&jq).expect("read jq");
    let cache_dir = tempfile::tempdir().expect("tempdir");
    let compile = load_time(CodeCache::disabled, &bytes);
    // Warm the cache once, then measure hits.
    Runtime::new(RuntimeConfig {
        cache: CodeCache::new(cache_dir.path()),
        ..RuntimeConfig::default()
    })
    .expect("runtime")
    .load(&bytes)
    .expect("load");
    let cached = load_time(|| CodeCache::new(cache_dir.path()), &bytes);
    println!(
        "loading a component (jq, {:.1} MB), median of {LOADS}:",
        bytes.len() as f64 / 1e6
    );
    println!("  compile with Cranelift     {}", millis(compile));
    println!(
        "  native code from cache     {}   ({:.0}x faster)",
        millis(cached),
        compile.as_secs_f64() / cached.as_secs_f64()
    );
}
