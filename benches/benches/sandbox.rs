//! Sandbox start-up and call latency, beside the anchors.
//!
//! Run with `cargo bench -p tack-benches` (builds the guest components first if
//! needed). Prints:
//! - fresh instance + one tool call (`echo`), p50 and p99 (medians over rounds),
//!   pooling on and off;
//! - loading a component: compiling it vs loading native code from the cache.
//!
//! Every call is a complete `Sandbox::call`: argument validation, a new `Store`
//! with its WASI context, instantiation from the cached `InstancePre`, the call,
//! and the result lifted back. Nothing is reused between calls but compiled code.

use std::time::{Duration, Instant};
use tack_benches::percentile;
use tack_capability::Grant;
use tack_runtime::{CallContext, CodeCache, Runtime, RuntimeConfig};

/// Rounds per configuration; the figures are the medians across rounds, so one
/// noisy stretch of the (shared, 2-core) machine does not decide the result.
const ROUNDS: usize = 5;
/// Calls measured per round.
const CALLS: usize = 2_000;
/// Calls run first and not measured.
const WARMUP: usize = 500;
/// Loads measured per cache mode.
const LOADS: usize = 5;

fn micros(d: Duration) -> String {
    format!("{:>7.1} µs", d.as_secs_f64() * 1e6)
}

fn millis(d: Duration) -> String {
    format!("{:>8.1} ms", d.as_secs_f64() * 1e3)
}

/// p50 and p99 of each round.
async fn call_latency(pooling: bool, wasm: &std::path::Path) -> Vec<(Duration, Duration)> {
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
    let mut rounds = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let mut samples = Vec::with_capacity(CALLS);
        for _ in 0..CALLS {
            let t = Instant::now();
            let out = sandbox.call("echo", args, &ctx).await.expect("call");
            samples.push(t.elapsed());
            assert!(out.result.is_ok());
        }
        samples.sort();
        rounds.push((percentile(&samples, 0.50), percentile(&samples, 0.99)));
    }
    rounds
}

/// Print one configuration's line and return its median p50.
fn report(label: &str, rounds: &[(Duration, Duration)]) -> Duration {
    let mut p50s: Vec<Duration> = rounds.iter().map(|r| r.0).collect();
    let mut p99s: Vec<Duration> = rounds.iter().map(|r| r.1).collect();
    p50s.sort();
    p99s.sort();
    let (p50, p99) = (percentile(&p50s, 0.5), percentile(&p99s, 0.5));
    println!(
        "  {label}  p50 {}   p99 {}   (rounds: p50 {:.1}-{:.1} µs, p99 {:.1}-{:.1} µs)",
        micros(p50),
        micros(p99),
        p50s[0].as_secs_f64() * 1e6,
        p50s[p50s.len() - 1].as_secs_f64() * 1e6,
        p99s[0].as_secs_f64() * 1e6,
        p99s[p99s.len() - 1].as_secs_f64() * 1e6,
    );
    p50
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
    println!(
        "fresh instance + one tool call (echo); median of {ROUNDS} rounds of {CALLS} calls, after {WARMUP} warm-up:"
    );
    let p50 = report("pooling on ", &rt.block_on(call_latency(true, &echo)));
    report("pooling off", &rt.block_on(call_latency(false, &echo)));
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
