//! The `tack` binary as a user runs it: output, error messages and exit codes.

use std::process::{Command, Output};
use tack_tests::guest;

fn tack(args: &[&str]) -> Output {
    let cache = tack_tests::workspace_root().join("target/tack-test-cache");
    Command::new(env!("CARGO_BIN_EXE_tack"))
        .arg("--cache-dir")
        .arg(cache)
        .args(args)
        .output()
        .expect("run tack")
}

/// `tack tool call FILE TOOL REST...`
fn tool_call(file: &str, tool: &str, rest: &[&str]) -> Output {
    let mut args = vec!["tool", "call", file, tool];
    args.extend_from_slice(rest);
    tack(&args)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Assert the exit code and that stderr contains `needle`.
fn expect_failure(out: &Output, code: i32, needle: &str) {
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{stderr}");
    assert!(stderr.contains(needle), "expected `{needle}` in:\n{stderr}");
}

fn wasm(name: &str) -> String {
    guest(name).display().to_string()
}

#[test]
fn jq_filter_returns_one() {
    let out = tool_call(
        &wasm("tack_plugin_jq"),
        "jq",
        &["--args", r#"{"filter": ".a", "input": {"a": 1}}"#],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "1\n");
}

#[test]
fn schema_error_names_the_field_and_exits_3() {
    let out = tool_call(
        &wasm("tack_plugin_jq"),
        "jq",
        &["--args", r#"{"filter": 1, "input": {}}"#],
    );
    assert_eq!(out.status.code(), Some(3));
    let err = text(&out.stderr);
    assert!(
        err.contains("error: arguments do not match the input schema of `jq`"),
        "{err}"
    );
    assert!(
        err.contains("at `/filter`: 1 is not of type \"string\""),
        "{err}"
    );
    assert!(
        err.contains("help: see the schema with `tack plugin inspect"),
        "{err}"
    );

    let out = tool_call(&wasm("tack_plugin_jq"), "jq", &["--args", "{oops"]);
    expect_failure(&out, 3, "arguments are not valid JSON");
}

#[test]
fn tool_error_exits_1() {
    let out = tool_call(
        &wasm("tack_plugin_jq"),
        "jq",
        &["--args", r#"{"filter": ".a + 1", "input": {"a": "x"}}"#],
    );
    expect_failure(
        &out,
        1,
        "the tool `jq` failed: invalid-arguments: filter failed",
    );
}

#[test]
fn inspect_shows_world_tools_schemas_and_capabilities() {
    let out = tack(&["plugin", "inspect", &wasm("tack_plugin_files")]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    assert!(s.contains("plugin   files"), "{s}");
    assert!(s.contains("export tack:plugin/tool@0.1.0"), "{s}");
    assert!(s.contains("dir    /workspace rw"), "{s}");
    assert!(s.contains("write  [destructive]"), "{s}");
    assert!(s.contains("\"pattern\""), "{s}");

    let out = tack(&["plugin", "inspect", "--json", &wasm("tack_plugin_jq")]);
    let doc: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("inspect --json prints JSON");
    assert_eq!(doc["tools"][0]["name"], "jq");
    assert_eq!(
        doc["tools"][0]["inputSchema"]["required"],
        serde_json::json!(["filter", "input"])
    );
    assert!(doc["digest"].as_str().unwrap().starts_with("sha256:"));
}

#[test]
fn grants_come_from_flags() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.txt"), "alpha\n").unwrap();
    let grant = format!("{}:/workspace:ro", dir.path().display());
    let out = tool_call(
        &wasm("tack_plugin_files"),
        "read",
        &["--dir", &grant, "--args", r#"{"path": "a.txt"}"#],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("\"content\": \"alpha\\n\""));

    let out = tool_call(
        &wasm("tack_plugin_files"),
        "write",
        &[
            "--dir",
            &grant,
            "--args",
            r#"{"path": "a.txt", "content": "b"}"#,
        ],
    );
    expect_failure(&out, 1, "permission-denied");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("a.txt")).unwrap(),
        "alpha\n"
    );
}

#[test]
fn sandbox_limits_exit_5_and_say_which() {
    let hostile = wasm("tack_guest_hostile");
    let out = tool_call(&hostile, "spin", &["--timeout", "100ms"]);
    expect_failure(&out, 5, "exceeded its time limit of 100ms");

    let out = tool_call(
        &hostile,
        "membomb",
        &["--memory", "16MiB", "--args", r#"{"mb": 100}"#],
    );
    expect_failure(&out, 5, "memory limit of 16MiB");

    let out = tool_call(&hostile, "spin", &["--fuel", "1000000"]);
    expect_failure(&out, 5, "fuel budget of 1000000");

    let out = tool_call(&hostile, "panic", &["--args", r#"{"message": "kaboom"}"#]);
    expect_failure(&out, 5, "the plugin panicked");
    assert!(
        text(&out.stderr).contains("kaboom"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn unusable_inputs_exit_4_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let out = tack(&["plugin", "inspect", "/no/such/file.wasm"]);
    expect_failure(&out, 4, "cannot read /no/such/file.wasm");

    let core = dir.path().join("core.wasm");
    std::fs::write(&core, b"\0asm\x01\0\0\0").unwrap();
    let out = tack(&["plugin", "inspect", core.to_str().unwrap()]);
    expect_failure(&out, 4, "core WebAssembly module, not a component");

    let policy = dir.path().join("grant.toml");
    std::fs::write(&policy, "[limits]\nmemroy = \"1MiB\"\n").unwrap();
    let out = tool_call(
        &wasm("tack_plugin_jq"),
        "jq",
        &["--grant", policy.to_str().unwrap()],
    );
    expect_failure(&out, 4, "unknown field `memroy`");
}

#[test]
fn bad_flags_exit_2() {
    let out = tool_call("x.wasm", "t", &["--dir", "nocolon"]);
    expect_failure(&out, 2, "is not HOST:GUEST[:ro]");
    let out = tool_call("x.wasm", "t", &["--memory", "lots"]);
    assert_eq!(out.status.code(), Some(2));
    let out = tool_call("x.wasm", "t", &["--allow-host", "https://x.com/"]);
    expect_failure(&out, 2, "no scheme or path");
}

#[test]
fn json_outcome_reports_egress_decisions() {
    let out = tool_call(
        &wasm("tack_plugin_http"),
        "get",
        &[
            "--json",
            "--allow-host",
            "169.254.169.254",
            "--args",
            r#"{"url": "http://169.254.169.254/latest/meta-data/"}"#,
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["egress"][0]["allowed"], false);
    assert!(
        doc["egress"][0]["denied"]
            .as_str()
            .unwrap()
            .contains("link-local (cloud metadata)")
    );
    assert_eq!(doc["result"]["error"]["code"], "permission-denied");
}

#[test]
fn a_component_without_a_manifest_gets_nothing() {
    let out = tack(&["plugin", "inspect", &wasm("tack_guest_echo")]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    assert!(s.contains("plugin   (unnamed)"), "{s}");
    assert!(
        s.contains("none (the plugin runs with no filesystem, network, environment or clock)"),
        "{s}"
    );

    // Granting a directory to it changes nothing: it declared none.
    let dir = tempfile::tempdir().unwrap();
    let grant = format!("{}:/workspace", dir.path().display());
    let out = tool_call(
        &wasm("tack_guest_echo"),
        "echo",
        &["--dir", &grant, "--args", r#"{"value": 5}"#],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("note: directory"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        text(&out.stderr).contains("is not mounted"),
        "{}",
        text(&out.stderr)
    );
}
