//! From `tack publish` to the first successful tool call on a host that has never
//! seen the plugin (resolve, pull, verify the signature, compile, call), and the
//! warm start of the same plugin from the artifact and code caches.
//!
//! Run with `cargo bench -p tack-benches --bench registry`. Each round uses a fresh
//! registry, a fresh host artifact cache and a fresh code cache; figures are the
//! medians across rounds with their spread. Beside them, the anchor measured here
//! on the same artifact: the official ORAS Python client pulling it (a plain pull:
//! no signature check, no compile, no call).

use std::process::Command;
use std::time::{Duration, Instant};
use tack_artifact::SigningKey;
use tack_capability::Grant;
use tack_distribution::{
    ArtifactCache, ArtifactRef, FetchOptions, Fetcher, NoProgress, TrustPolicy,
};
use tack_registry::Role;
use tack_runtime::{CallContext, CodeCache, Runtime, RuntimeConfig};
use tack_tests::registries::{TackRegistry, host_registries};

const ROUNDS: usize = 5;

#[derive(Default)]
struct Phases {
    publish: Vec<Duration>,
    fetch: Vec<Duration>,
    compile: Vec<Duration>,
    call: Vec<Duration>,
    total: Vec<Duration>,
}

fn median(v: &[Duration]) -> Duration {
    let mut s = v.to_vec();
    s.sort();
    s[s.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:>8.1} ms", d.as_secs_f64() * 1e3)
}

fn line(label: &str, v: &[Duration]) {
    let (lo, hi) = (
        v.iter().min().copied().unwrap_or_default(),
        v.iter().max().copied().unwrap_or_default(),
    );
    println!(
        "  {label:<44} {}   (rounds {:.1}–{:.1} ms)",
        ms(median(v)),
        lo.as_secs_f64() * 1e3,
        hi.as_secs_f64() * 1e3
    );
}

async fn first_call(runtime: &Runtime, component: &[u8]) -> (Duration, Duration) {
    let t = Instant::now();
    let plugin = runtime.load(component).expect("loads");
    let compile = t.elapsed();
    let t = Instant::now();
    let sandbox = plugin.sandbox(&Grant::default()).expect("sandbox");
    let out = sandbox
        .call(
            "jq",
            r#"{"filter": ".a", "input": {"a": 1}}"#,
            &CallContext::default(),
        )
        .await
        .expect("call");
    assert!(out.result.is_ok(), "jq failed: {:?}", out.result);
    (compile, t.elapsed())
}

#[tokio::main]
async fn main() {
    let wasm = tack_tests::guest("tack_plugin_jq");
    let wasm_size = std::fs::metadata(&wasm).expect("the jq component").len();
    let key = SigningKey::generate();
    let publisher_runtime = tack_tests::runtime();
    let t = Instant::now();
    let artifact = tack_package::package(&publisher_runtime, &wasm)
        .await
        .expect("package");
    let package_time = t.elapsed();

    let mut cold = Phases::default();
    let mut warm = Phases::default();
    let mut oras = Vec::new();
    let mut oras_errors: Vec<String> = Vec::new();
    for round in 0..ROUNDS {
        let reg = TackRegistry::start(true);
        let dir = tempfile::tempdir().unwrap();
        let token = reg.token("acme", Role::Push);
        let publisher = host_registries(&reg.host, Some(&token), dir.path());
        let r = ArtifactRef::parse(&format!("{}/acme/jq:1.0.{round}", reg.host), None).unwrap();
        let host_regs = host_registries(&reg.host, None, dir.path());
        let fetcher = Fetcher::new(
            host_regs,
            TrustPolicy::require("acme", vec![key.public_key()]),
            ArtifactCache::new(dir.path().join("artifacts")),
            Some(dir.path().join("tack.lock")),
        );
        let code = dir.path().join("code");
        let new_runtime = || {
            Runtime::new(RuntimeConfig {
                cache: CodeCache::new(&code),
                ..RuntimeConfig::default()
            })
            .expect("runtime")
        };

        // Cold: publish, then a host that has never seen it.
        let runtime = new_runtime();
        let start = Instant::now();
        tack_distribution::publish::publish(&publisher, &r, &artifact, Some(&key), &NoProgress)
            .await
            .expect("publish");
        let published = start.elapsed();
        let t = Instant::now();
        let fetched = fetcher
            .fetch(&r, &FetchOptions::default(), &NoProgress)
            .await
            .expect("fetch");
        let fetch = t.elapsed();
        let (compile, call) = first_call(&runtime, fetched.component.as_ref().unwrap()).await;
        cold.total.push(start.elapsed());
        cold.publish.push(published);
        cold.fetch.push(fetch);
        cold.compile.push(compile);
        cold.call.push(call);

        // Warm: a restarted host (new runtime, no in-memory state) with both caches.
        let runtime = new_runtime();
        let start = Instant::now();
        let fetched = fetcher
            .fetch(&r, &FetchOptions::default(), &NoProgress)
            .await
            .expect("fetch");
        let fetch = start.elapsed();
        let (compile, call) = first_call(&runtime, fetched.component.as_ref().unwrap()).await;
        warm.total.push(start.elapsed());
        warm.fetch.push(fetch);
        warm.compile.push(compile);
        warm.call.push(call);

        // Anchor: oras-py pulls the same artifact from the same registry.
        let out = dir.path().join("oras");
        let script = tack_tests::workspace_root().join("tests/interop/oras_client.py");
        let t = Instant::now();
        let status = Command::new("python3")
            .arg(&script)
            .args(["pull", &reg.host, &r.to_string(), out.to_str().unwrap()])
            .output();
        match status {
            Ok(o) if o.status.success() => oras.push(t.elapsed()),
            Ok(o) => oras_errors.push(format!(
                "round {round}: oras-py exited with {}: {}",
                o.status,
                String::from_utf8_lossy(&o.stderr).trim()
            )),
            Err(e) => oras_errors.push(format!("round {round}: cannot run python3: {e}")),
        }
    }

    println!(
        "publish → first tool call (jq, {:.1} MB component; {ROUNDS} rounds, medians)",
        wasm_size as f64 / 1e6
    );
    println!(
        "  publisher-side packaging (world, tools, schemas): {}",
        ms(package_time)
    );
    println!("cold: a host that has never seen the plugin");
    line(
        "publish (push config + layer + manifest, sign)",
        &cold.publish,
    );
    line("resolve + pull + verify signature + cache", &cold.fetch);
    line("compile (Cranelift)", &cold.compile);
    line("first call (fresh instance)", &cold.call);
    line("total, publish → first successful call", &cold.total);
    println!("warm: a restarted host, artifact and native code cached");
    line("resolve (HEAD) + cache read + re-verify", &warm.fetch);
    line("load native code from cache", &warm.compile);
    line("first call (fresh instance)", &warm.call);
    line("total, start → first successful call", &warm.total);
    println!("anchor, measured here on the same artifact and registry:");
    if !oras.is_empty() {
        line("oras-py pull (no verify, no compile, no call)", &oras);
    }
    // A failed round is reported with its cause, never dropped from the figures
    // unsaid (a missing install is one cause among others).
    for e in &oras_errors {
        println!("  oras-py pull failed, {e}");
    }
}
