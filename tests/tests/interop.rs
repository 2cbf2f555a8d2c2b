//! Interop with the official ORAS Python client (`pip install oras`), both ways:
//! oras pushes a component to tack's registry and tack resolves and runs it; tack
//! publishes (signed) and oras pulls the same bytes, from tack's registry and from
//! Debian's docker-registry.

use std::process::Command;
use tack_artifact::SigningKey;
use tack_capability::Grant;
use tack_distribution::{
    ArtifactCache, ArtifactRef, FetchOptions, Fetcher, NoProgress, TrustPolicy,
};
use tack_registry::Role;
use tack_tests::registries::{DockerRegistry, TackRegistry, host_registries};
use tack_tests::{call, guest, one_json, runtime, workspace_root};

fn oras(args: &[&str], password: Option<&str>) -> String {
    let script = workspace_root().join("tests/interop/oras_client.py");
    let mut cmd = Command::new("python3");
    cmd.arg(script).args(args);
    if let Some(p) = password {
        cmd.env("ORAS_PASSWORD", p);
    }
    let out = cmd.output().expect("python3 runs");
    assert!(
        out.status.success(),
        "oras {args:?} failed (is the `oras` Python package installed? scripts/test installs it):\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn oras_pushes_to_tack_registry_and_tack_runs_it() {
    let reg = TackRegistry::start(true);
    let token = reg.token("acme", Role::Push);
    let dir = tempfile::tempdir().unwrap();
    let wasm = dir.path().join("jq.wasm");
    std::fs::copy(guest("tack_plugin_jq"), &wasm).unwrap();
    let config = dir.path().join("config.json");
    std::fs::write(&config, r#"{"architecture":"wasm","os":"wasip2"}"#).unwrap();
    let target = format!("{}/acme/jq:1.0.0", reg.host);
    oras(
        &[
            "push",
            &reg.host,
            &target,
            &format!("{}:application/wasm", wasm.display()),
            &format!("{}:application/vnd.wasm.config.v0+json", config.display()),
        ],
        Some(&token),
    );
    // tack resolves what oras pushed (through the same registry) and runs it.
    let r = ArtifactRef::parse(&target, None).unwrap();
    let fetcher = Fetcher::new(
        host_registries(&reg.host, None, dir.path()),
        TrustPolicy::default(),
        ArtifactCache::new(dir.path().join("artifacts")),
        None,
    );
    let fetched = fetcher
        .fetch(&r, &FetchOptions::default(), &NoProgress)
        .await
        .unwrap();
    assert_eq!(
        fetched.component.as_deref(),
        Some(&std::fs::read(&wasm).unwrap()[..])
    );
    let plugin = runtime().load(fetched.component.as_ref().unwrap()).unwrap();
    let sandbox = plugin.sandbox(&Grant::default()).unwrap();
    let out = call(
        &sandbox,
        "jq",
        serde_json::json!({"filter": ".a + 1", "input": {"a": 1}}),
    )
    .await
    .unwrap();
    assert_eq!(one_json(&out), serde_json::json!(2));
    // oras without credentials cannot push.
    let script = workspace_root().join("tests/interop/oras_client.py");
    let denied = Command::new("python3")
        .arg(script)
        .args([
            "push",
            &reg.host,
            &format!("{}/acme/jq:2.0.0", reg.host),
            &format!("{}:application/wasm", wasm.display()),
            &format!("{}:application/vnd.wasm.config.v0+json", config.display()),
        ])
        .output()
        .unwrap();
    assert!(
        !denied.status.success(),
        "an anonymous oras push was accepted"
    );
}

async fn tack_publishes_and_oras_pulls(host: &str, token: Option<&str>) {
    let dir = tempfile::tempdir().unwrap();
    let regs = host_registries(host, token, dir.path());
    let key = SigningKey::generate();
    let r = ArtifactRef::parse(&format!("{host}/acme/jq:0.3.0"), None).unwrap();
    let artifact = tack_package::package(&runtime(), &guest("tack_plugin_jq"))
        .await
        .unwrap();
    let published =
        tack_distribution::publish::publish(&regs, &r, &artifact, Some(&key), &NoProgress)
            .await
            .unwrap();
    let out = dir.path().join("pulled");
    let files: Vec<String> = serde_json::from_str(&oras(
        &["pull", host, &r.to_string(), out.to_str().unwrap()],
        None,
    ))
    .unwrap();
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(files[0].ends_with("tack_plugin_jq.wasm"), "{files:?}");
    assert_eq!(
        std::fs::read(&files[0]).unwrap(),
        std::fs::read(guest("tack_plugin_jq")).unwrap()
    );
    // oras sees the wkg layout and the cosign signature manifest.
    let m: serde_json::Value =
        serde_json::from_str(&oras(&["manifest", host, &r.to_string()], None)).unwrap();
    assert_eq!(
        m["config"]["mediaType"],
        "application/vnd.wasm.config.v0+json"
    );
    assert_eq!(
        m["annotations"]["org.opencontainers.image.version"],
        "0.3.0"
    );
    assert_eq!(m["annotations"]["dev.tack.tools"], "jq");
    let sig_target = format!(
        "{}/{}:{}",
        host,
        r.repository,
        tack_artifact::signature_tag(&published.digest)
    );
    let sig: serde_json::Value =
        serde_json::from_str(&oras(&["manifest", host, &sig_target], None)).unwrap();
    assert_eq!(
        sig["layers"][0]["mediaType"],
        "application/vnd.dev.cosign.simplesigning.v1+json"
    );
    assert!(sig["layers"][0]["annotations"]["dev.cosignproject.cosign/signature"].is_string());
    assert_eq!(sig["subject"]["digest"], published.digest);
}

#[tokio::test(flavor = "multi_thread")]
async fn tack_publishes_to_tack_registry_and_oras_pulls_the_same_bytes() {
    let reg = TackRegistry::start(true);
    let token = reg.token("acme", Role::Push);
    tack_publishes_and_oras_pulls(&reg.host, Some(&token)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tack_publishes_to_docker_registry_and_oras_pulls_the_same_bytes() {
    let reg = DockerRegistry::start();
    tack_publishes_and_oras_pulls(&reg.host, None).await;
}
