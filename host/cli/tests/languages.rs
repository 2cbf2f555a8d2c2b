//! Tool plugins in any language, through the `tack` binary as their authors and
//! operators use it: embed the manifest, inspect, publish signed, list in the
//! registry with tools and schemas, call by reference on a fresh host, refuse bad
//! arguments before the call, and hold the plugin to its sandbox (time, memory,
//! egress, files). Each language's plugin goes through the same steps.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use tack_registry::Role;
use tack_tests::registries::TackRegistry;
use tack_tests::{guest, workspace_root};

fn tack(dir: &Path, envs: &[(&str, &str)], args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tack"))
        .current_dir(dir)
        .env_remove("TACK_CONFIG")
        .env_remove("TACK_REGISTRY")
        .env("TACK_ARTIFACT_DIR", dir.join("artifacts"))
        .env(
            "TACK_CACHE_DIR",
            workspace_root().join("target/tack-test-cache"),
        )
        .envs(envs.iter().copied())
        .args(args)
        .output()
        .expect("run tack")
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "tack failed ({:?}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn failed(out: &Output, code: i32) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout: {}\nstderr: {stderr}",
        String::from_utf8_lossy(&out.stdout)
    );
    stderr
}

/// One language's plugin and what a user checks it does.
struct Case<'a> {
    /// The package name it is published under (`tack/NAME@0.1.0`).
    name: &'a str,
    /// The component, manifest embedded.
    wasm: PathBuf,
    /// Tools it must offer.
    tools: &'a [&'a str],
    /// A call (tool, arguments) and text its output must contain.
    call: (&'a str, &'a str, &'a str),
    /// A call whose arguments break the schema, and the message naming why.
    refused: (&'a str, &'a str, &'a str),
}

/// Inspect, publish signed, list, show with schemas, call by reference on a fresh
/// host, and refuse arguments that break the schema.
fn exercise(case: &Case) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let wasm = case.wasm.to_str().unwrap();

    let inspect: Value =
        serde_json::from_str(&ok(&tack(d, &[], &["plugin", "inspect", wasm, "--json"]))).unwrap();
    let listed: Vec<&str> = inspect["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("{inspect}"))
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    for tool in case.tools {
        assert!(listed.contains(tool), "{tool} not in {listed:?}");
    }

    let registry = TackRegistry::start(false);
    let token = registry.token("tack", Role::Push);
    let host = registry.host.clone();
    let keygen = ok(&tack(d, &[], &["keygen", "--output", "publisher"]));
    let fingerprint = keygen.split_whitespace().last().unwrap().to_string();
    std::fs::write(
        d.join("tack.toml"),
        format!(
            "default-registry = \"{host}\"\n[registries.\"{host}\"]\ntoken-env = \"TACK_TEST_TOKEN\"\n[trust.tack]\nkeys = [\"publisher.pub\"]\n"
        ),
    )
    .unwrap();
    let config = d.join("tack.toml");
    let env = [
        ("TACK_CONFIG", config.to_str().unwrap()),
        ("TACK_TEST_TOKEN", token.as_str()),
    ];
    let reference = format!("tack/{}@0.1.0", case.name);
    let out = ok(&tack(
        d,
        &env,
        &["publish", wasm, &reference, "--sign-key", "publisher.key"],
    ));
    assert!(out.contains(&format!("signed  {fingerprint}")), "{out}");
    for tool in case.tools {
        assert!(out.contains(tool), "{tool} not in {out}");
    }

    let ls = ok(&tack(d, &env, &["registry", "ls"]));
    assert!(
        ls.lines()
            .any(|l| l.starts_with(&format!("tack/{}", case.name)) && l.contains("tool")),
        "{ls}"
    );
    let show = ok(&tack(
        d,
        &env,
        &["registry", "show", &format!("tack/{}", case.name)],
    ));
    assert!(show.contains(&format!("signed by {fingerprint}")), "{show}");
    for tool in case.tools {
        assert!(show.contains(&format!("tool {tool}:")), "{tool}: {show}");
    }
    // The schemas are shown: the parameters of the sample call appear.
    let sample: Value = serde_json::from_str(case.call.1).unwrap();
    for key in sample.as_object().unwrap().keys() {
        assert!(show.contains(&format!("\"{key}\"")), "{key}: {show}");
    }

    // A fresh host (empty code cache) resolves, verifies, compiles and calls it.
    let code = d.join("fresh-code");
    let (tool, args, expected) = case.call;
    let out = ok(&tack(
        d,
        &env,
        &[
            "--cache-dir",
            code.to_str().unwrap(),
            "tool",
            "call",
            &reference,
            tool,
            "--args",
            args,
        ],
    ));
    assert!(out.contains(expected), "{tool}: {out}");

    let (tool, args, expected) = case.refused;
    let stderr = failed(
        &tack(d, &env, &["tool", "call", &reference, tool, "--args", args]),
        3,
    );
    assert!(stderr.contains(expected), "{stderr}");
}

/// The hostile basics, each stopped with its own error: a loop past the time limit,
/// memory past the limit, HTTP to a host not granted, a file outside the grant.
/// The plugin exports `spin`, `hog {mib}`, `read_file {path}` and `fetch {url}`.
fn hostile(wasm: &Path, memory: &str) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let wasm = wasm.to_str().unwrap();
    let call = |tool: &str, args: &str, extra: &[&str]| {
        let mut a = vec!["tool", "call", wasm, tool, "--args", args];
        a.extend_from_slice(extra);
        tack(d, &[], &a)
    };

    let stderr = failed(&call("spin", "{}", &["--timeout", "300ms"]), 5);
    assert!(stderr.contains("[timeout]"), "{stderr}");

    let stderr = failed(
        &call(
            "hog",
            r#"{"mib": 512}"#,
            &["--memory", memory, "--timeout", "60s"],
        ),
        5,
    );
    assert!(stderr.contains("[memory-limit]"), "{stderr}");

    let out = call(
        "fetch",
        r#"{"url": "http://forbidden.invalid/"}"#,
        &["--allow-host", "allowed.invalid", "--json"],
    );
    failed(&out, 1);
    let outcome: Value = serde_json::from_slice(&out.stdout).unwrap();
    let egress = outcome["egress"].as_array().unwrap();
    assert_eq!(egress.len(), 1, "{outcome}");
    assert_eq!(egress[0]["host"], "forbidden.invalid");
    assert_eq!(egress[0]["allowed"], false);
    assert!(
        egress[0]["denied"]
            .as_str()
            .unwrap()
            .contains("not in the grant's allow-list"),
        "{outcome}"
    );

    // A directory is granted at /data; its sibling holds a secret.
    let granted = d.join("granted");
    std::fs::create_dir(&granted).unwrap();
    std::fs::write(granted.join("notes.txt"), "granted contents").unwrap();
    std::fs::write(d.join("secret.txt"), "the secret").unwrap();
    let mount = format!("{}:/data:ro", granted.display());
    let inside = ok(&call(
        "read_file",
        r#"{"path": "/data/notes.txt"}"#,
        &["--dir", &mount],
    ));
    assert!(inside.contains("granted contents"), "{inside}");
    for outside in [
        "/data/../secret.txt",
        &d.join("secret.txt").display().to_string(),
    ] {
        let args = serde_json::json!({ "path": outside }).to_string();
        let out = call("read_file", &args, &["--dir", &mount, "--json"]);
        failed(&out, 1);
        let outcome: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(
            outcome["result"]["error"]["message"].is_string(),
            "{outcome}"
        );
        assert!(!outcome.to_string().contains("the secret"), "{outcome}");
    }
}

/// `tack plugin embed` on a built component: the manifest and the WIT docs.
fn embed(dir: &Path, component: &Path, source: &Path) -> PathBuf {
    let out = dir.join(component.file_name().unwrap());
    ok(&tack(
        dir,
        &[],
        &[
            "plugin",
            "embed",
            component.to_str().unwrap(),
            "--manifest",
            source.join("tack.toml").to_str().unwrap(),
            "--wit",
            source.join("wit").to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ],
    ));
    out
}

fn plain_guest(dir: &Path) -> PathBuf {
    embed(
        dir,
        &guest("tack_guest_plain"),
        &workspace_root().join("tests/guests/plain"),
    )
}

#[test]
fn plain_wit_component_runs_as_tools() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = plain_guest(dir.path());
    exercise(&Case {
        name: "plain",
        wasm,
        tools: &["count", "top_words", "ratio", "echo_compound"],
        call: ("count", r#"{"text": "one two\nthree"}"#, r#""words": 3"#),
        refused: (
            "top_words",
            r#"{"text": "a b", "n": 300}"#,
            "at `/n`: 300 is greater than the maximum of 255",
        ),
    });
}

#[test]
fn plain_wit_component_is_held_to_its_sandbox() {
    let dir = tempfile::tempdir().unwrap();
    hostile(&plain_guest(dir.path()), "32MiB");
}
