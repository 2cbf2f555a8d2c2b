//! `tack mcp serve` as MCP clients meet it: the official Python `mcp` client
//! starts it over stdio, lists the toolset's tools with their annotations,
//! calls one, and sees refusals as tool errors. And `tack mcp tools|call`
//! against upstream servers of the host configuration (here, `tack mcp serve`
//! itself), with the annotation policy.

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

fn run(dir: &Path, config: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_tack"))
        .current_dir(dir)
        .env("TACK_CONFIG", config)
        .env("TACK_ARTIFACT_DIR", dir.join("artifacts"))
        .env(
            "TACK_CACHE_DIR",
            tack_tests::workspace_root().join("target/tack-test-cache"),
        )
        .args(args)
        .output()
        .expect("run tack")
}

fn tack(dir: &Path, config: &Path, args: &[&str]) -> String {
    let out = run(dir, config, args);
    assert!(
        out.status.success(),
        "tack {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A host configuration in `d` with a registry holding jq and payments, a
/// `support` toolset of both, and `extra` at the end.
fn setup(d: &Path, registry: &TackRegistry, extra: &str) -> std::path::PathBuf {
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
{extra}
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
    config
}

/// Operators reach upstream servers by name: `tack mcp tools` shows each tool
/// with its effective flags (an untrusted server's tools count as destructive
/// unless `read-only` lists them; a trusted one's annotations decide), `tack
/// mcp call` calls one, and an unknown server is refused naming the known.
#[test]
fn operators_list_and_call_upstream_tools_under_the_annotation_policy() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let registry = TackRegistry::start_in(&d.join("registry"), None);
    let bin = env!("CARGO_BIN_EXE_tack");
    let upstream = |name: &str, trust: bool| {
        format!(
            "[mcp-servers.{name}]\ncommand = \"{bin}\"\nargs = [\"mcp\", \"serve\", \"support\"]\n\
             env = [\"TACK_CONFIG\", \"TACK_ARTIFACT_DIR\", \"TACK_CACHE_DIR\"]\n\
             trust-annotations = {trust}\nread-only = [\"read_balance\"]\n"
        )
    };
    let extra = format!(
        "{}{}",
        upstream("payments", false),
        upstream("trusted", true)
    );
    let config = setup(d, &registry, &extra);

    let listed = tack(d, &config, &["mcp", "ls"]);
    assert!(
        listed.contains("payments\tstdio: ") && listed.contains("trusted\t"),
        "{listed}"
    );
    let flags = |server: &str| {
        let out = tack(d, &config, &["mcp", "tools", server, "--json"]);
        let tools: Vec<Value> = serde_json::from_str(&out).unwrap();
        tools
            .iter()
            .map(|t| {
                (
                    t["name"].as_str().unwrap().to_string(),
                    (
                        t["destructive"].as_bool().unwrap(),
                        t["read_only"].as_bool().unwrap(),
                    ),
                )
            })
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    let untrusted = flags("payments");
    assert_eq!(untrusted["jq"], (true, false), "a hint is not believed");
    assert_eq!(
        untrusted["read_balance"],
        (false, true),
        "the operator's list wins"
    );
    assert_eq!(untrusted["issue_refund"], (true, false));
    let trusted = flags("trusted");
    assert_eq!(
        trusted["jq"],
        (false, true),
        "trusted: jq says it is read-only"
    );
    assert_eq!(trusted["issue_refund"], (true, false));

    let out = tack(
        d,
        &config,
        &[
            "mcp",
            "call",
            "payments",
            "jq",
            "--args",
            r#"{"filter": ".a", "input": {"a": 7}}"#,
        ],
    );
    assert_eq!(out.trim(), "7");
    let out = run(d, &config, &["mcp", "tools", "nobody"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no MCP server `nobody`") && err.contains("payments, trusted"),
        "{err}"
    );
}

#[test]
fn the_python_mcp_client_lists_and_calls_a_toolset_over_stdio() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let registry = TackRegistry::start_in(&d.join("registry"), None);
    let config = setup(d, &registry, "");
    let state = d.join("payments");
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

/// A real upstream server from PyPI (`mcp-server-time`, stdio; scripts/test
/// installs it): its tools listed with the operator's flags, a call answered,
/// and the server's own error (an unknown time zone) reported as one (exit 1).
#[test]
fn a_real_upstream_server_is_listed_and_called() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let config = d.join("tack.toml");
    std::fs::write(
        &config,
        "[mcp-servers.time]\ncommand = \"python3\"\nargs = [\"-m\", \"mcp_server_time\", \"--local-timezone\", \"UTC\"]\nread-only = [\"get_current_time\"]\n",
    )
    .unwrap();
    let out = tack(d, &config, &["mcp", "tools", "time", "--json"]);
    let tools: Vec<Value> = serde_json::from_str(&out).unwrap();
    let flags = |name: &str| {
        let t = tools
            .iter()
            .find(|t| t["name"] == name)
            .unwrap_or_else(|| panic!("{out}"));
        (
            t["destructive"].as_bool().unwrap(),
            t["read_only"].as_bool().unwrap(),
        )
    };
    assert_eq!(flags("get_current_time"), (false, true));
    assert_eq!(
        flags("convert_time"),
        (true, false),
        "unlisted, untrusted: destructive"
    );

    let out = tack(
        d,
        &config,
        &[
            "mcp",
            "call",
            "time",
            "get_current_time",
            "--args",
            r#"{"timezone": "Europe/Berlin"}"#,
        ],
    );
    assert!(
        out.contains("Europe/Berlin") && out.contains("datetime"),
        "{out}"
    );
    let out = run(
        d,
        &config,
        &[
            "mcp",
            "call",
            "time",
            "get_current_time",
            "--args",
            r#"{"timezone": "Mars/Olympus"}"#,
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Mars/Olympus"), "{text}");
}

/// A toolset whose plugins share a tool name is refused at start (a client
/// could not tell the tools apart), and an unknown toolset names the known.
#[test]
fn toolsets_with_clashing_names_or_unknown_names_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let registry = TackRegistry::start_in(&d.join("registry"), None);
    tack(
        d,
        &setup(d, &registry, ""),
        &[
            "publish",
            guest("tack_plugin_jq").to_str().unwrap(),
            "tack/jq@0.2.0",
        ],
    );
    let config = setup(
        d,
        &registry,
        "[toolsets.twice]\ntools = [\"tack/jq@0.1.0\", \"tack/jq@0.2.0\"]\n",
    );
    let out = run(d, &config, &["mcp", "serve", "twice"]);
    assert_eq!(out.status.code(), Some(4));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("a tool named `jq`"), "{err}");
    let out = run(d, &config, &["mcp", "serve", "nothing"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no toolset `nothing`") && err.contains("support, twice"),
        "{err}"
    );
}
