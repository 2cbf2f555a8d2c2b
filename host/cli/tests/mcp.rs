//! `tack mcp serve` as MCP clients meet it: the official Python `mcp` client
//! starts it over stdio, lists the toolset's tools with their annotations,
//! calls one, and sees refusals as tool errors.

use serde_json::Value;
use std::path::Path;
use std::process::Command;
use tack_tests::guest;
use tack_tests::registries::TackRegistry;

/// The Python client: list the tools, then make each call in `calls` (a JSON
/// list of [tool, arguments]); prints what it saw as JSON.
const CLIENT: &str = r#"
import asyncio, json, os, sys
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

async def main():
    params = StdioServerParameters(
        command=sys.argv[1], args=["mcp", "serve", "support"], env=dict(os.environ))
    calls = json.loads(sys.argv[2])
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            tools = await session.list_tools()
            out = {"server": init.server_info.name, "tools": {}, "calls": []}
            for t in tools.tools:
                a = t.annotations
                out["tools"][t.name] = {"destructive": a.destructive_hint,
                                        "read_only": a.read_only_hint,
                                        "schema": t.input_schema}
            for name, args in calls:
                r = await session.call_tool(name, args)
                out["calls"].append({"is_error": bool(r.is_error),
                                     "text": r.content[0].text if r.content else "",
                                     "structured": r.structured_content})
            print(json.dumps(out))

asyncio.run(main())
"#;

fn tack(dir: &Path, config: &Path, args: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_tack"))
        .current_dir(dir)
        .env("TACK_CONFIG", config)
        .env("TACK_ARTIFACT_DIR", dir.join("artifacts"))
        .args(args)
        .output()
        .expect("run tack");
    assert!(
        out.status.success(),
        "tack {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_python_mcp_client_lists_and_calls_a_toolset_over_stdio() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let registry = TackRegistry::start_in(&d.join("registry"), None);
    let state = d.join("payments");
    std::fs::create_dir_all(&state).unwrap();
    let config = d.join("tack.toml");
    std::fs::write(
        &config,
        format!(
            r#"default-registry = "{registry}"

[trust.tack]
require-signature = false

[tools."tack/payments"]
destructive = ["issue_refund"]
grant = {{ dirs = [{{ host = "{state}", guest = "/state", mode = "rw" }}], wall-clock = true }}

[toolsets.support]
tools = ["tack/jq@0.1.0", "tack/payments@0.1.0"]
"#,
            registry = registry.host,
            state = state.display()
        ),
    )
    .unwrap();
    for (file, r) in [
        ("tack_plugin_jq", "tack/jq@0.1.0"),
        ("tack_plugin_payments", "tack/payments@0.1.0"),
    ] {
        tack(d, &config, &["publish", guest(file).to_str().unwrap(), r]);
    }
    let calls = serde_json::json!([
        ["jq", {"filter": ".a", "input": {"a": 41}}],
        ["read_balance", {"account": "acct_alice"}],
        ["issue_refund", {"account": "acct_alice", "amount_cents": 100, "reason": "x"}],
        ["jq", {"filter": 5, "input": {}}]
    ]);
    let out = Command::new("python3")
        .arg("-c")
        .arg(CLIENT)
        .arg(env!("CARGO_BIN_EXE_tack"))
        .arg(calls.to_string())
        .current_dir(d)
        .env("TACK_CONFIG", &config)
        .env("TACK_ARTIFACT_DIR", d.join("artifacts"))
        .env(
            "TACK_CACHE_DIR",
            tack_tests::workspace_root().join("target/tack-test-cache"),
        )
        .output()
        .expect("python3 runs (with the `mcp` package: scripts/test installs it)");
    assert!(
        out.status.success(),
        "the client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(seen["server"], "tack:support");

    // Annotations are tack's after the central flags.
    let tools = &seen["tools"];
    assert_eq!(tools["issue_refund"]["destructive"], true);
    assert_eq!(tools["read_balance"]["read_only"], true);
    assert_eq!(tools["read_balance"]["destructive"], false);
    assert_eq!(tools["jq"]["schema"]["type"], "object");

    let calls = seen["calls"].as_array().unwrap();
    assert_eq!(calls[0]["is_error"], false, "{}", calls[0]);
    assert_eq!(calls[0]["text"], "41", "{}", calls[0]);
    assert_eq!(calls[1]["structured"]["balance_cents"], 12500);
    // A destructive tool needs an approval this server cannot ask for: refused,
    // and nothing was paid.
    assert_eq!(calls[2]["is_error"], true);
    assert!(
        calls[2]["text"]
            .as_str()
            .unwrap()
            .contains("runs only after an approval"),
        "{}",
        calls[2]
    );
    assert!(!state.join("ledger.json").exists());
    // A schema violation names the field.
    assert_eq!(calls[3]["is_error"], true);
    assert!(
        calls[3]["text"].as_str().unwrap().contains("filter"),
        "{}",
        calls[3]
    );
}
