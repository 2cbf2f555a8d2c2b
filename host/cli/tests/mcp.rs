//! `tack mcp serve` as MCP clients meet it: the official Python `mcp` client
//! starts it over stdio, lists the toolset's tools with their annotations,
//! calls one, and sees refusals as tool errors. And `tack mcp tools|call`
//! against upstream servers of the host configuration (here, `tack mcp serve`
//! itself), with the annotation policy.

mod common;

use common::*;
use serde_json::{Value, json};
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
        command=sys.argv[1], args=["mcp", "serve", os.environ.get("TACK_TOOLSET", "support")],
        env=dict(os.environ))
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

/// What the Python client saw of `tack mcp serve TOOLSET` (in `dir`, with
/// `config`), making `calls`.
fn python_stdio_client(dir: &Path, config: &Path, toolset: &str, calls: &Value) -> Value {
    let out = Command::new("python3")
        .arg("-c")
        .arg(CLIENT)
        .arg(env!("CARGO_BIN_EXE_tack"))
        .arg(calls.to_string())
        .current_dir(dir)
        .env("TACK_TOOLSET", toolset)
        .env("TACK_CONFIG", config)
        .env("TACK_ARTIFACT_DIR", dir.join("artifacts"))
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
    serde_json::from_slice(&out.stdout).unwrap()
}

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
    let seen = python_stdio_client(d, &config, "support", &calls);
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

/// The Python client over streamable HTTP: `URL TOKEN ERA CALLS`, where ERA
/// is `legacy` (initialize, 2025-11-25, a session) or `modern` (discover,
/// 2026-07-28, stateless); prints what it saw as JSON, with the progress
/// messages of each call.
const HTTP_CLIENT: &str = r#"
import asyncio, json, sys
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client, create_mcp_http_client

async def main():
    url, token, era, calls = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
    http = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
    async with http:
        async with streamable_http_client(url, http_client=http) as streams:
            async with ClientSession(streams[0], streams[1]) as session:
                if era == "legacy":
                    r = await session.initialize()
                    out = {"version": r.protocol_version, "server": r.server_info.name}
                else:
                    r = await session.discover()
                    out = {"version": session._negotiated_version, "server": None}
                tools = await session.list_tools()
                out["tools"] = sorted(t.name for t in tools.tools)
                out["calls"] = []
                for name, args in calls:
                    progress = []
                    async def note(done, total, message):
                        progress.append(message)
                    r = await session.call_tool(name, args, progress_callback=note)
                    out["calls"].append({"is_error": bool(r.is_error),
                                         "text": r.content[0].text if r.content else "",
                                         "progress": progress})
                print(json.dumps(out))

asyncio.run(main())
"#;

/// The Python client against `endpoint` as `token` in `era`, making `calls`;
/// started, not awaited.
fn python_http_client(
    endpoint: &str,
    token: &str,
    era: &str,
    calls: &Value,
) -> std::process::Child {
    Command::new("python3")
        .args(["-c", HTTP_CLIENT, endpoint, token, era, &calls.to_string()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs (with the `mcp` package: scripts/test installs it)")
}

/// What the client saw, once it has finished.
async fn finished(child: std::process::Child, era: &str) -> Value {
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(
        out.status.success(),
        "the {era} client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The pending approvals as `token` lists them, once one is there.
async fn pending_approval(host: &Host, token: &str) -> Value {
    for _ in 0..3000 {
        let (st, v) = get(host, "/v1/approvals", token).await;
        assert_eq!(st, 200, "{v}");
        if let Some(a) = v["approvals"].as_array().unwrap().first() {
            return a.clone();
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("no approval became pending");
}

/// `/mcp/{toolset}` on `tack serve`, as the Python client meets it in both
/// protocol eras, and as an attacker does: no token (401 pointing at the RFC
/// 9728 metadata), a role without sessions (403), a foreign `Host` (DNS
/// rebinding, 403 before any token is looked at), a foreign browser `Origin`
/// (403), an unknown toolset (404). A destructive call waits for an approver
/// (the client hears which approval, as progress), who denies it in one era
/// and approves it in the other; one nobody decides times out.
#[tokio::test(flavor = "multi_thread")]
async fn the_python_mcp_client_uses_a_toolset_over_http_in_both_eras() {
    tack_distribution::client::install_crypto();
    let extra = format!(
        "{UNSIGNED_TACK}
[toolsets.support]
tools = [\"tack/jq@0.1.0\", \"tack/payments@0.1.0\"]
redact = [\"/reason\"]

[toolsets.hasty]
tools = [\"tack/payments@0.1.0\"]
approval-timeout = \"1s\"

[toolsets.closed]
tools = [\"tack/payments@0.1.0\"]
destructive-calls = \"refuse\"
"
    );
    let s = Setup::build("sqlite://host.db", None, "scenarios: []", &extra).await;
    tack_publish(&s, "tack_plugin_jq", "tack/jq@0.1.0");
    let (builder, approver, user) = s.tokens.clone();
    let serve_log = s.dir.path().join("serve.log");
    let host = s.serve_logging(std::process::Stdio::from(
        std::fs::File::create(&serve_log).unwrap(),
    ));
    let endpoint = format!("{}/mcp/support", host.url);
    let refund = json!({"account": "acct_alice", "amount_cents": 100, "reason": "card stolen"});
    let calls = json!([
        ["jq", {"filter": ".a", "input": {"a": 41}}],
        ["issue_refund", refund]
    ]);
    for (era, version, verdict) in [
        ("legacy", "2025-11-25", "deny"),
        ("modern", "2026-07-28", "approve"),
    ] {
        let client = python_http_client(&endpoint, &user, era, &calls);
        let pending = pending_approval(&host, &approver).await;
        let id = pending["approval_id"].as_str().unwrap().to_string();
        assert_eq!(pending["source"], "mcp:support", "{pending}");
        assert_eq!(pending["tool"], "issue_refund", "{pending}");
        assert_eq!(pending["requested_by"], "una", "{pending}");
        assert_eq!(pending["approvers"], json!(["approver"]), "{pending}");
        assert_eq!(pending["arguments"]["amount_cents"], 100, "{pending}");
        assert_ne!(
            pending["arguments"]["reason"], "card stolen",
            "redacted for approvers: {pending}"
        );
        // The caller cannot approve its own call.
        let path = format!("/v1/approvals/{id}");
        let (st, v) = post(&host, &path, &user, json!({"decision": "approve"})).await;
        assert_eq!(st, 403, "{v}");
        let decision = json!({"decision": verdict, "reason": "not this one"});
        let (st, v) = post(&host, &path, &approver, decision.clone()).await;
        assert_eq!(st, 202, "{v}");
        let (st, v) = post(&host, &path, &approver, decision).await;
        assert_eq!(st, 404, "decided once: {v}");

        let seen = finished(client, era).await;
        assert_eq!(seen["version"], version, "{seen}");
        assert_eq!(
            seen["tools"],
            json!(["issue_refund", "jq", "read_balance"]),
            "{seen}"
        );
        assert_eq!(seen["calls"][0]["is_error"], false, "{seen}");
        assert_eq!(seen["calls"][0]["text"], "41", "{seen}");
        let call = &seen["calls"][1];
        assert!(
            call["progress"][0].as_str().unwrap().contains(&id),
            "the client heard what it waits for: {call}"
        );
        if verdict == "deny" {
            assert_eq!(call["is_error"], true, "{call}");
            let text = call["text"].as_str().unwrap();
            assert!(
                text.contains("denied") && text.contains("not this one"),
                "{text}"
            );
            assert_eq!(s.ledger()["refunds"], json!([]), "nothing was paid");
        } else {
            assert_eq!(call["is_error"], false, "{call}");
            assert_eq!(s.ledger()["refunds"].as_array().unwrap().len(), 1);
        }
    }

    // Nobody decides: the call times out, unrun, and its approval is gone.
    let refund_only = json!([["issue_refund", refund]]);
    let hasty = format!("{}/mcp/hasty", host.url);
    let seen = finished(
        python_http_client(&hasty, &user, "modern", &refund_only),
        "hasty",
    )
    .await;
    let call = &seen["calls"][0];
    assert_eq!(call["is_error"], true, "{call}");
    assert!(
        call["text"].as_str().unwrap().contains("nobody decided"),
        "{call}"
    );
    let (_, v) = get(&host, "/v1/approvals", &approver).await;
    assert_eq!(v["approvals"], json!([]), "{v}");
    // A toolset that refuses destructive calls says so at once.
    let closed = format!("{}/mcp/closed", host.url);
    let seen = finished(
        python_http_client(&closed, &user, "legacy", &refund_only),
        "closed",
    )
    .await;
    let call = &seen["calls"][0];
    assert_eq!(call["is_error"], true, "{call}");
    assert!(
        call["text"]
            .as_str()
            .unwrap()
            .contains("refuses such calls"),
        "{call}"
    );
    assert_eq!(s.ledger()["refunds"].as_array().unwrap().len(), 1);

    // Each call has a trace record: where it ran, its approval and who
    // decided it, and its outcome.
    let log = std::fs::read_to_string(&serve_log).unwrap();
    let records: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("MCP tools/call"))
        .collect();
    let record = |parts: &[&str]| {
        records
            .iter()
            .find(|r| parts.iter().all(|p| r.contains(p)))
            .unwrap_or_else(|| panic!("no record with {parts:?} in {records:#?}"))
            .to_string()
    };
    let jq = record(&["toolset=support", "tool=jq", "caller=una"]);
    assert!(
        jq.contains("approval=\"not_required\"")
            && jq.contains("ran_in=\"sandbox\"")
            && jq.contains("call_id=\"mcp_")
            && jq.contains("outcome=\"ok\""),
        "{jq}"
    );
    record(&[
        "tool=issue_refund",
        "approval=\"denied\"",
        "decided_by=\"ada\"",
        "outcome=\"tool_error\"",
    ]);
    let approved = record(&[
        "tool=issue_refund",
        "approval=\"approved\"",
        "decided_by=\"ada\"",
    ]);
    assert!(
        approved.contains("outcome=\"ok\"") && approved.contains("approval_id=\"ap_"),
        "{approved}"
    );
    record(&[
        "toolset=hasty",
        "approval=\"timed_out\"",
        "outcome=\"tool_error\"",
    ]);
    record(&["toolset=closed", "approval=\"refused\"", "call_id=\"-\""]);

    let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "probe", "version": "1"}}});
    let http = reqwest::Client::new();
    let send = |token: Option<&str>, headers: &[(&str, &str)]| {
        let mut r = http
            .post(&endpoint)
            .header("accept", "application/json, text/event-stream")
            .json(&initialize);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        r.send()
    };

    let r = send(None, &[]).await.unwrap();
    assert_eq!(r.status(), 401);
    let challenge = r.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_string();
    let metadata = format!(
        "{}/.well-known/oauth-protected-resource/mcp/support",
        host.url
    );
    assert_eq!(
        challenge,
        format!("Bearer resource_metadata=\"{metadata}\"")
    );
    let (st, v) = get(
        &host,
        "/.well-known/oauth-protected-resource/mcp/support",
        "",
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["resource"], endpoint.as_str(), "{v}");
    assert_eq!(v["bearer_methods_supported"], json!(["header"]), "{v}");

    let r = send(Some("tack_0000"), &[]).await.unwrap();
    assert_eq!(r.status(), 401, "a made-up token");
    let r = send(Some(&approver), &[]).await.unwrap();
    assert_eq!(r.status(), 403, "an approver does not call tools");
    let r = send(Some(&builder), &[("host", "evil.example")])
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "forbidden_host", "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("allowed-hosts"),
        "{v}"
    );
    let r = send(None, &[("host", "evil.example")]).await.unwrap();
    assert_eq!(
        r.status(),
        403,
        "a foreign Host learns nothing about tokens"
    );
    let r = send(Some(&builder), &[("origin", "http://evil.example")])
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "a browser on another origin");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "forbidden_origin", "{v}");
    let r = send(Some(&builder), &[("origin", &host.url)])
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "a page of the endpoint's own origin");
    let r = send(Some(&builder), &[]).await.unwrap();
    assert_eq!(r.status(), 200, "the same request, as it should be");

    let (st, v) = post(&host, "/mcp/nothing", &builder, initialize.clone()).await;
    assert_eq!(st, 404, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("toolsets: closed, hasty, support"),
        "{v}"
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

/// The agent for the gateway tests: a Wasm tool (jq) and the `payments` MCP
/// server, under a policy whose approval of a refund covers the session.
const GATEWAY_AGENT: &str = "name: refunds-over-mcp\ndescription: Refunds.\nmodel: scripted\ninstructions: Help with refunds.\ntools:\n  - tack/jq@0.1.0\nmcp-servers:\n  - payments\napproval-policy: refunds-per-session\n";

/// An agent takes its payments tools from an MCP server by name
/// (`payments`: the payments plugin served by `tack mcp serve` over stdio):
/// one step calls an MCP tool and a Wasm tool at once; the refund (which the
/// policy names by the server's tool name) waits for an approver through the
/// API, whose edited arguments are checked against the server's schema, and
/// then runs upstream exactly once; the approval covers the session's next
/// refund. An unknown server is refused at registration, naming the field.
#[tokio::test(flavor = "multi_thread")]
async fn an_agent_uses_an_mcp_server_by_name_behind_the_central_gate() {
    tack_distribution::client::install_crypto();
    let script = r#"
scenarios:
  - steps:
      - tool_calls:
          - {name: jq, arguments: {filter: ".a", input: {a: 7}}}
          - {name: payments__read_balance, arguments: {account: acct_alice}}
      - tool_calls:
          - {name: payments__issue_refund, arguments: {account: acct_alice, amount_cents: 15000, reason: damaged, idempotency_key: k-1}}
      - tool_calls:
          - {name: payments__issue_refund, arguments: {account: acct_alice, amount_cents: 500, reason: late, idempotency_key: k-2}}
      - text: "Refunds issued."
"#;
    let bin = env!("CARGO_BIN_EXE_tack");
    let extra = format!(
        "{UNSIGNED_TACK}
[toolsets.pay]
tools = [\"tack/payments@0.1.0\"]
destructive-calls = \"run\"

[mcp-servers.payments]
command = \"{bin}\"
args = [\"mcp\", \"serve\", \"pay\"]
env = [\"TACK_CONFIG\", \"TACK_ARTIFACT_DIR\", \"TACK_CACHE_DIR\"]
read-only = [\"read_balance\"]

[approval-policies.refunds-per-session]
tools = [\"issue_refund\"]
scope = \"session\"
grant-ttl = \"1h\"
"
    );
    let s = Setup::build("sqlite://host.db", None, script, &extra).await;
    tack_publish(&s, "tack_plugin_jq", "tack/jq@0.1.0");
    let (builder, approver, user) = s.tokens.clone();
    let host = s.serve();

    // Builders see the servers and each one's tools with effective flags.
    let (st, v) = get(&host, "/v1/mcp-servers", &builder).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["mcp_servers"][0]["name"], "payments", "{v}");
    assert_eq!(v["mcp_servers"][0]["transport"], "stdio", "{v}");
    assert!(v["mcp_servers"][0].get("args").is_none(), "{v}");
    assert_eq!(v["mcp_servers"][0]["oauth"], Value::Null, "{v}");
    let (st, v) = get(&host, "/v1/mcp-servers/payments/tools", &builder).await;
    assert_eq!(st, 200, "{v}");
    let tool = |name: &str| {
        v["tools"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == name)
            .unwrap_or_else(|| panic!("{v}"))
            .clone()
    };
    assert_eq!(tool("read_balance")["read_only"], true);
    assert_eq!(tool("read_balance")["destructive"], false);
    assert_eq!(tool("issue_refund")["destructive"], true);
    assert_eq!(tool("issue_refund")["called"], "payments__issue_refund");
    let (st, v) = get(&host, "/v1/mcp-servers/jira/tools", &builder).await;
    assert_eq!(st, 404, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("known: payments"),
        "{v}"
    );
    let (st, _) = get(&host, "/v1/mcp-servers", &user).await;
    assert_eq!(st, 403, "a user does not see how servers are reached");

    let unknown = GATEWAY_AGENT.replace("  - payments\n", "  - jira\n");
    let (st, v) = post(&host, "/v1/agents", &builder, json!({"yaml": unknown})).await;
    assert_eq!(st, 400, "{v}");
    let msg = v["error"]["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains("mcp-servers[0]")
            && msg.contains("no MCP server `jira`")
            && msg.contains("payments"),
        "{v}"
    );

    let (st, v) = post(
        &host,
        "/v1/agents",
        &builder,
        json!({"yaml": GATEWAY_AGENT}),
    )
    .await;
    assert_eq!(st, 201, "{v}");
    let session = start_session(&host, &user, "refunds-over-mcp", "refund 150").await;
    let ev = wait_for(&host, &session, &user, |ev| {
        count(ev, "approval_required") == 1
    })
    .await;

    // Step 1: both calls ran, each from its source.
    let results: Vec<&Value> = ev.iter().filter(|e| e["type"] == "tool_result").collect();
    let result = |tool: &str| {
        *results
            .iter()
            .find(|e| e["tool"] == tool)
            .unwrap_or_else(|| panic!("no result of {tool}: {results:#?}"))
    };
    assert_eq!(result("jq")["ok"], true);
    assert_eq!(result("jq")["content"], "7");
    let balance = result("payments__read_balance");
    assert_eq!(balance["ok"], true, "{balance}");
    assert_eq!(balance["plugin"], "mcp:payments");
    assert!(
        balance["content"].as_str().unwrap().contains("12500"),
        "{balance}"
    );
    // The refund is destructive here (an untrusted server's tool), so it waits.
    let call = ev
        .iter()
        .find(|e| e["type"] == "tool_call" && e["tool"] == "payments__issue_refund")
        .unwrap();
    assert_eq!(call["destructive"], true, "{call}");
    assert_eq!(call["plugin"], "mcp:payments", "{call}");
    assert!(
        s.ledger()["refunds"].as_array().unwrap().is_empty(),
        "nothing paid before the approval"
    );
    let approval = ev
        .iter()
        .find(|e| e["type"] == "approval_required")
        .unwrap()["approval_id"]
        .as_str()
        .unwrap()
        .to_string();
    // Edited arguments are checked against the server's schema first.
    let (st, v) = post(
        &host,
        &format!("/v1/approvals/{approval}"),
        &approver,
        json!({"decision": "edit", "arguments": {"account": 5, "amount_cents": 100, "reason": "x"}}),
    )
    .await;
    assert_eq!(st, 400, "{v}");
    let msg = v["error"]["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains("still waits") && msg.contains("/account"),
        "{v}"
    );
    approve(&host, &approver, &approval).await;
    let ev = wait_for(&host, &session, &user, |ev| count(ev, "run_finished") == 1).await;
    let refunds: Vec<&Value> = ev
        .iter()
        .filter(|e| e["type"] == "tool_result" && e["tool"] == "payments__issue_refund")
        .collect();
    assert_eq!(refunds.len(), 2, "{refunds:#?}");
    assert_eq!(refunds[0]["ok"], true, "{}", refunds[0]);
    assert_eq!(refunds[0]["approval"], "approved", "{}", refunds[0]);
    assert_eq!(refunds[1]["ok"], true, "{}", refunds[1]);
    assert_eq!(refunds[1]["approval"], "session_grant", "{}", refunds[1]);
    assert_eq!(count(&ev, "approval_required"), 1);
    let paid = s.ledger()["refunds"].as_array().unwrap().clone();
    assert_eq!(paid.len(), 2, "each paid exactly once, upstream: {paid:?}");
    assert_eq!(paid[0]["amount_cents"], 15000);
}

/// A small upstream server on the official Python SDK, with tools that
/// misbehave on request.
const FLAKY_SERVER: &str = r#"
import asyncio, os
from mcp.server.mcpserver import MCPServer

server = MCPServer("flaky")

@server.tool()
def echo(text: str) -> str:
    """Return the text."""
    return text

@server.tool()
def big(size: int) -> str:
    """Return `size` bytes."""
    return "x" * size

@server.tool()
async def hang() -> str:
    """Never answer."""
    await asyncio.sleep(3600)
    return "late"

@server.tool()
def die() -> str:
    """Exit mid-call."""
    os._exit(3)

@server.tool()
def refund() -> str:
    """Filtered out by the host."""
    return "refunded"

server.run("stdio")
"#;

/// Every way an upstream tool can fail is a tool error the model reads, and
/// the run goes on: arguments that miss the server's schema are refused before
/// the call, a tool the host filtered out is unknown, an oversized result is
/// cut to `max-result-bytes`, a call that hangs ends at `call-timeout`, and
/// when the server exits mid-call the next call connects again.
#[tokio::test(flavor = "multi_thread")]
async fn upstream_failures_are_tool_errors_and_the_run_goes_on() {
    tack_distribution::client::install_crypto();
    let script = r#"
scenarios:
  - steps:
      - tool_calls:
          - {name: flaky__echo, arguments: {text: 5}}
          - {name: flaky__refund, arguments: {}}
      - tool_calls: [{name: flaky__big, arguments: {size: 5000}}]
      - tool_calls: [{name: flaky__hang, arguments: {}}]
      - tool_calls: [{name: flaky__die, arguments: {}}]
      - tool_calls: [{name: flaky__echo, arguments: {text: back}}]
      - text: "done"
"#;
    let dir = tempfile::tempdir().unwrap();
    let server = dir.path().join("flaky.py");
    std::fs::write(&server, FLAKY_SERVER).unwrap();
    let extra = format!(
        "{UNSIGNED_TACK}
[mcp-servers.flaky]
command = \"python3\"
args = [\"{}\"]
read-only = [\"echo\", \"big\", \"hang\", \"die\", \"refund\"]
disable-tools = [\"refund\"]
call-timeout = \"1s\"
max-result-bytes = 1000
",
        server.display()
    );
    let s = Setup::build("sqlite://host.db", None, script, &extra).await;
    let (builder, _, user) = s.tokens.clone();
    let host = s.serve();
    let agent = "name: flaky\nmodel: scripted\nmcp-servers: [flaky]\n";
    register(&host, &builder, agent).await;
    let session = start_session(&host, &user, "flaky", "go").await;
    let ev = wait_for(&host, &session, &user, |ev| count(ev, "run_finished") == 1).await;
    let results: Vec<&Value> = ev.iter().filter(|e| e["type"] == "tool_result").collect();
    assert_eq!(results.len(), 6, "{results:#?}");
    let outcome = |i: usize| {
        (
            results[i]["tool"].as_str().unwrap(),
            results[i]["error_code"].as_str().unwrap_or("ok"),
            results[i]["content"].as_str().unwrap(),
        )
    };
    let (tool, code, text) = outcome(0);
    assert_eq!((tool, code), ("flaky__echo", "invalid_arguments"), "{text}");
    assert!(text.contains("/text") && text.contains("string"), "{text}");
    let (tool, code, text) = outcome(1);
    assert_eq!((tool, code), ("flaky__refund", "denied"), "{text}");
    assert!(text.contains("there is no tool `flaky__refund`"), "{text}");
    let (_, code, text) = outcome(2);
    assert_eq!(code, "ok", "{text}");
    // The SDK gives a `str` result as structuredContent `{"result": …}`.
    let (kept, note) = text.split_once('\n').unwrap();
    assert_eq!(kept.len(), 1000, "{text}");
    assert!(kept.starts_with(r#"{"result":"xxxx"#), "{text}");
    assert_eq!(
        note,
        "[cut: the result was 5013 bytes; this server's max-result-bytes is 1000]"
    );
    let (_, code, text) = outcome(3);
    assert_eq!(code, "timeout", "{text}");
    assert!(text.contains("call-timeout"), "{text}");
    let (_, code, text) = outcome(4);
    assert_eq!(code, "unavailable", "{text}");
    assert!(text.contains("went away"), "{text}");
    let (_, code, text) = outcome(5);
    assert_eq!(
        (code, text),
        ("ok", r#"{"result":"back"}"#),
        "connected again"
    );
    let finished = ev.iter().find(|e| e["type"] == "run_finished").unwrap();
    assert_eq!(finished["stop_reason"], "end_turn", "{finished}");
}

/// Publish guest `file` as `reference` to the setup's registry.
fn tack_publish(s: &Setup, file: &str, reference: &str) {
    common::tack(
        s.dir.path(),
        &s.config,
        &["publish", guest(file).to_str().unwrap(), reference],
    );
}

/// `tack` in `dir` with `config` and master key `key`; stdin is `input`.
fn tack_with_key(
    dir: &Path,
    config: &Path,
    key: &str,
    args: &[&str],
    input: &str,
) -> std::process::Output {
    use std::io::Write;
    let mut child = command(dir, config, Some(key))
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// Upstream servers over streamable HTTP: another tack host's `/mcp`, which
/// wants a tack token, reached with `bearer-secret` from this host's secret
/// store (a missing key, a missing secret and a refused token each named),
/// and the reference `server-everything` from npm.
#[tokio::test(flavor = "multi_thread")]
async fn http_upstreams_are_reached_with_credentials_from_the_secret_store() {
    tack_distribution::client::install_crypto();
    let extra = format!(
        "{UNSIGNED_TACK}\n[toolsets.pay]\ntools = [\"tack/payments@0.1.0\"]\n\
         destructive-calls = \"run\"\n"
    );
    let s = Setup::build("sqlite://host.db", None, "scenarios: []", &extra).await;
    let (_, _, user) = s.tokens.clone();
    let upstream_host = s.serve();
    let everything = tack_tests::node::EverythingServer::start();

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let config = d.join("tack.toml");
    std::fs::write(
        &config,
        format!(
            "storage = \"sqlite://gateway.db\"\n\n\
             [mcp-servers.payments]\nurl = \"{}/mcp/pay\"\nbearer-secret = \"PAY_TOKEN\"\n\
             read-only = [\"read_balance\"]\n\n\
             [mcp-servers.everything]\nurl = \"{}\"\ntrust-annotations = true\n",
            upstream_host.url, everything.url
        ),
    )
    .unwrap();
    let key = tack(d, &config, &["secret", "master-key"]);
    let balance = [
        "mcp",
        "call",
        "payments",
        "read_balance",
        "--args",
        r#"{"account": "acct_alice"}"#,
    ];
    let failure = |out: std::process::Output| {
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).to_string()
    };

    let err = failure(run(d, &config, &balance));
    assert!(err.contains("TACK_MASTER_KEY"), "{err}");
    let err = failure(tack_with_key(d, &config, &key, &balance, ""));
    assert!(
        err.contains("secret `PAY_TOKEN`, which is not set")
            && err.contains("tack secret set PAY_TOKEN"),
        "{err}"
    );
    let set = |value: &str| {
        let out = tack_with_key(d, &config, &key, &["secret", "set", "PAY_TOKEN"], value);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    set("tack_not_a_token");
    let err = failure(tack_with_key(d, &config, &key, &balance, ""));
    assert!(
        err.contains("needs authorization: the handshake was refused: no valid token"),
        "{err}"
    );
    assert!(
        !err.contains("tack_not_a_token"),
        "the token is not echoed: {err}"
    );

    set(&user);
    let out = tack_with_key(d, &config, &key, &balance, "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["balance_cents"], 12500, "{v}");

    // server-everything: its annotations believed, its echo answered.
    let out = tack(d, &config, &["mcp", "tools", "everything", "--json"]);
    let tools: Vec<Value> = serde_json::from_str(&out).unwrap();
    let echo = tools.iter().find(|t| t["name"] == "echo").expect("echo");
    assert_eq!(echo["read_only"], true, "{echo}");
    assert_eq!(echo["destructive"], false, "{echo}");
    let out = tack(
        d,
        &config,
        &[
            "mcp",
            "call",
            "everything",
            "echo",
            "--args",
            r#"{"message": "hi"}"#,
        ],
    );
    assert!(out.contains("hi"), "{out}");
}

/// A stdio upstream's environment is clean: `server-everything`'s `get-env`
/// shows the variables the operator listed and the secret injected by name,
/// and none of the host's own (not the master key, not an unlisted variable).
#[test]
fn a_stdio_upstream_sees_only_the_environment_it_is_given() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let entry =
        tack_tests::node::package_file("@modelcontextprotocol/server-everything", "dist/index.js");
    let config = d.join("tack.toml");
    std::fs::write(
        &config,
        format!(
            "storage = \"sqlite://gateway.db\"\n\n[mcp-servers.everything]\n\
             command = \"{}\"\nargs = [\"{}\", \"stdio\"]\nenv = [\"TACK_TEST_SHOWN\"]\n\
             secret-env = {{ UPSTREAM_API_KEY = \"UPSTREAM_KEY\" }}\n",
            tack_tests::node::node().display(),
            entry.display()
        ),
    )
    .unwrap();
    let key = tack(d, &config, &["secret", "master-key"]);
    let secret = format!("upstream-{}", ulid::Ulid::generate());
    let out = tack_with_key(
        d,
        &config,
        &key,
        &["secret", "set", "UPSTREAM_KEY"],
        &secret,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = command(d, &config, Some(&key))
        .args(["mcp", "call", "everything", "get-env"])
        .env("TACK_TEST_SHOWN", "shown")
        .env("TACK_TEST_HIDDEN", "hidden")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let env: Value = serde_json::from_str(text.trim()).expect("get-env gives JSON");
    assert_eq!(env["TACK_TEST_SHOWN"], "shown", "{env}");
    assert_eq!(env["UPSTREAM_API_KEY"], secret.as_str(), "{env}");
    for absent in ["TACK_TEST_HIDDEN", "TACK_MASTER_KEY", "TACK_CONFIG"] {
        assert!(env.get(absent).is_none(), "{absent} leaked: {env}");
    }
    let names: Vec<&str> = env
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert!(
        names
            .iter()
            .all(|n| ["PATH", "HOME", "TACK_TEST_SHOWN", "UPSTREAM_API_KEY"].contains(n)),
        "nothing else: {names:?}"
    );
}

/// The reference filesystem server from npm (stdio, on a temp directory) as an
/// agent's tool source, its annotations trusted: in one step `read_text_file`
/// (read-only) runs at once while `write_file` (destructive) waits for an
/// approver, and nothing is written until the approval.
#[tokio::test(flavor = "multi_thread")]
async fn a_real_filesystem_server_writes_only_after_an_approval() {
    tack_distribution::client::install_crypto();
    let files = tempfile::tempdir().unwrap();
    let root = files.path().canonicalize().unwrap();
    std::fs::write(root.join("hello.txt"), "hello from disk").unwrap();
    let out = root.join("out.txt");
    let script = format!(
        r#"
scenarios:
  - steps:
      - tool_calls:
          - {{name: fs__read_text_file, arguments: {{path: "{read}"}}}}
          - {{name: fs__write_file, arguments: {{path: "{write}", content: "written by tack"}}}}
      - text: "done"
"#,
        read = root.join("hello.txt").display(),
        write = out.display()
    );
    let extra = format!(
        "{UNSIGNED_TACK}\n[mcp-servers.fs]\ncommand = \"{}\"\nargs = [\"{}\", \"{}\"]\ntrust-annotations = true\n",
        tack_tests::node::node().display(),
        tack_tests::node::package_file("@modelcontextprotocol/server-filesystem", "dist/index.js")
            .display(),
        root.display()
    );
    let s = Setup::build("sqlite://host.db", None, &script, &extra).await;
    let (builder, approver, user) = s.tokens.clone();
    let host = s.serve();
    let agent = "name: files\nmodel: scripted\nmcp-servers: [fs]\n";
    register(&host, &builder, agent).await;
    let session = start_session(&host, &user, "files", "copy").await;
    let ev = wait_for(&host, &session, &user, |ev| {
        count(ev, "approval_required") == 1 && count(ev, "tool_result") == 1
    })
    .await;
    let read = ev.iter().find(|e| e["type"] == "tool_result").unwrap();
    assert_eq!(read["tool"], "fs__read_text_file", "{read}");
    assert!(
        read["content"]
            .as_str()
            .unwrap()
            .contains("hello from disk"),
        "{read}"
    );
    let approval = ev
        .iter()
        .find(|e| e["type"] == "approval_required")
        .unwrap();
    assert_eq!(approval["tool"], "fs__write_file", "{approval}");
    assert_eq!(approval["plugin"], "mcp:fs", "{approval}");
    assert!(!out.exists(), "nothing written before the approval");

    let id = approval["approval_id"].as_str().unwrap();
    let (st, v) = post(
        &host,
        &format!("/v1/approvals/{id}"),
        &approver,
        json!({"decision": "approve"}),
    )
    .await;
    assert_eq!(st, 202, "{v}");
    let ev = wait_for(&host, &session, &user, |ev| count(ev, "run_finished") == 1).await;
    let write = ev
        .iter()
        .find(|e| e["type"] == "tool_result" && e["tool"] == "fs__write_file")
        .unwrap();
    assert_eq!(write["ok"], true, "{write}");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "written by tack");
}

/// An upstream's credential goes in the header meant for it and nowhere else:
/// an agent on one host calls a tool of another host's `/mcp` (which wants a
/// tack token, stored here as `bearer-secret`), and the token is in no event,
/// trace record or log line of either host (both logging at debug), in no file
/// of either host's directory (the gateway's store holds it sealed), and the
/// tool the upstream ran never saw it.
#[tokio::test(flavor = "multi_thread")]
async fn an_upstream_credential_appears_nowhere_but_in_its_header() {
    tack_distribution::client::install_crypto();
    let upstream_extra = format!(
        "{UNSIGNED_TACK}\n[toolsets.pay]\ntools = [\"tack/payments@0.1.0\"]\n\
         destructive-calls = \"run\"\n"
    );
    let a = Setup::build("sqlite://host.db", None, "scenarios: []", &upstream_extra).await;
    let (_, _, token) = a.tokens.clone();
    let a_log = a.dir.path().join("serve.log");
    let a_host = a.serve_logging(std::process::Stdio::from(
        std::fs::File::create(&a_log).unwrap(),
    ));

    let script = r#"
scenarios:
  - steps:
      - tool_calls:
          - {name: payments__read_balance, arguments: {account: acct_alice}}
      - text: "done"
"#;
    let gateway_extra = format!(
        "{UNSIGNED_TACK}\n[mcp-servers.payments]\nurl = \"{}/mcp/pay\"\n\
         bearer-secret = \"PAY_TOKEN\"\nread-only = [\"read_balance\"]\n",
        a_host.url
    );
    let b = Setup::build(
        "sqlite://host.db",
        Some("model-key"),
        script,
        &gateway_extra,
    )
    .await;
    let key = b.master_key.clone().unwrap();
    let out = tack_with_key(
        b.dir.path(),
        &b.config,
        &key,
        &["secret", "set", "PAY_TOKEN"],
        &token,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let b_log = b.dir.path().join("serve.log");
    let b_host = b.serve_logging(std::process::Stdio::from(
        std::fs::File::create(&b_log).unwrap(),
    ));
    let (builder, _, user) = b.tokens.clone();
    let agent = "name: balances\nmodel: scripted\nmcp-servers: [payments]\n";
    let (st, v) = post(&b_host, "/v1/agents", &builder, json!({"yaml": agent})).await;
    assert_eq!(st, 201, "{v}");
    let (st, v) = post(
        &b_host,
        "/v1/sessions",
        &user,
        json!({"agent": "balances", "input": "balance?"}),
    )
    .await;
    assert_eq!(st, 201, "{v}");
    let session = v["id"].as_str().unwrap().to_string();
    let ev = wait_for(&b_host, &session, &user, |ev| {
        count(ev, "run_finished") == 1
    })
    .await;
    let result = ev.iter().find(|e| e["type"] == "tool_result").unwrap();
    assert_eq!(result["ok"], true, "the call went through: {result}");
    assert!(
        result["content"].as_str().unwrap().contains("12500"),
        "{result}"
    );
    let run = ev.iter().find(|e| e["type"] == "run_started").unwrap()["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    let (st, trace) = get(
        &b_host,
        &format!("/v1/sessions/{session}/runs/{run}/trace"),
        &user,
    )
    .await;
    assert_eq!(st, 200, "{trace}");
    drop(b_host);
    drop(a_host);

    let mut scanned = vec![
        ("events", serde_json::to_string(&ev).unwrap()),
        ("trace", trace.to_string()),
        ("gateway log", std::fs::read_to_string(&b_log).unwrap()),
        ("upstream log", std::fs::read_to_string(&a_log).unwrap()),
    ];
    for f in tack_tests::registries::files_under(b.dir.path())
        .into_iter()
        .chain(tack_tests::registries::files_under(a.dir.path()))
    {
        scanned.push((
            "file",
            String::from_utf8_lossy(&std::fs::read(&f).unwrap()).into_owned(),
        ));
    }
    assert!(
        scanned[2].1.contains("Service initialized as client")
            && scanned[3].1.contains("read_balance"),
        "both hosts logged the exchange at debug level"
    );
    // The upstream's record of the call names the caller by its token's name.
    let record = scanned[3]
        .1
        .lines()
        .find(|l| l.contains("MCP tools/call"))
        .expect("the upstream logs each call");
    assert!(
        record.contains("toolset=pay")
            && record.contains("tool=read_balance")
            && record.contains("caller=una")
            && record.contains("outcome=\"ok\""),
        "{record}"
    );
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let forms = [
        token.clone(),
        b64.encode(&token),
        b64.encode(format!("Bearer {token}")),
    ];
    for (what, text) in &scanned {
        for form in &forms {
            assert_eq!(
                text.matches(form.as_str()).count(),
                0,
                "the credential leaked into the {what} (as {form})"
            );
        }
    }
}

/// A toolset re-exports an upstream MCP server through the gateway: the
/// Python client sees `mcp-server-time`'s tools as `time__…` beside a Wasm
/// tool, with the host's flags (an untrusted server's unlisted tool is
/// destructive, so over stdio it is refused), and calls one; arguments that
/// miss the upstream's schema are refused before the call.
#[test]
fn a_toolset_reexports_an_upstream_server_through_the_gateway() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let registry = TackRegistry::start_in(&d.join("registry"), None);
    let config = setup(
        d,
        &registry,
        "[mcp-servers.time]\ncommand = \"mcp-server-time\"\nread-only = [\"get_current_time\"]\n\n\
         [toolsets.relay]\ntools = [\"tack/jq@0.1.0\"]\nmcp-servers = [\"time\"]\n",
    );
    let calls = json!([
        ["time__get_current_time", {"timezone": "UTC"}],
        ["time__convert_time", {"source_timezone": "UTC", "time": "12:00", "target_timezone": "Asia/Tokyo"}],
        ["time__get_current_time", {"timezone": 5}],
        ["jq", {"filter": ".a", "input": {"a": 2}}]
    ]);
    let seen = python_stdio_client(d, &config, "relay", &calls);
    let tools = &seen["tools"];
    assert_eq!(
        tools["time__get_current_time"]["read_only"], true,
        "{tools}"
    );
    assert_eq!(tools["time__convert_time"]["destructive"], true, "{tools}");
    assert_eq!(tools["jq"]["destructive"], false, "{tools}");
    let calls = seen["calls"].as_array().unwrap();
    assert_eq!(calls[0]["is_error"], false, "{}", calls[0]);
    assert!(
        calls[0]["text"].as_str().unwrap().contains("UTC"),
        "{}",
        calls[0]
    );
    assert_eq!(calls[1]["is_error"], true, "{}", calls[1]);
    assert!(
        calls[1]["text"]
            .as_str()
            .unwrap()
            .contains("runs only after an approval"),
        "{}",
        calls[1]
    );
    assert_eq!(calls[2]["is_error"], true, "{}", calls[2]);
    assert!(
        calls[2]["text"].as_str().unwrap().contains("timezone"),
        "{}",
        calls[2]
    );
    assert_eq!(calls[3]["text"], "2", "{}", calls[3]);
}

/// An upstream server whose tool list changes: `retire` removes `old` and
/// announces the change.
const CHANGING_SERVER: &str = r#"
from mcp.server.mcpserver import MCPServer, Context

server = MCPServer("changing")

@server.tool()
def old() -> str:
    """About to go."""
    return "still here"

@server.tool()
async def retire(ctx: Context) -> str:
    """Remove `old` and say so."""
    server.remove_tool("old")
    await ctx.notify_tools_changed()
    return "retired"

server.run("stdio")
"#;

/// A server's tool-list change reaches the gateway: a call to a tool that
/// went away mid-run is a clear tool error (the run goes on), and the next
/// session of the agent is resolved again, without the tool.
#[tokio::test(flavor = "multi_thread")]
async fn a_changed_tool_list_refreshes_the_agents_tools() {
    tack_distribution::client::install_crypto();
    let script = r#"
scenarios:
  - match: "first"
    steps:
      - tool_calls: [{name: live__retire, arguments: {}}]
      - tool_calls: [{name: live__old, arguments: {}}]
      - text: "done"
  - steps:
      - tool_calls: [{name: live__old, arguments: {}}]
      - text: "done"
"#;
    let dir = tempfile::tempdir().unwrap();
    let server = dir.path().join("changing.py");
    std::fs::write(&server, CHANGING_SERVER).unwrap();
    let extra = format!(
        "{UNSIGNED_TACK}\n[mcp-servers.live]\ncommand = \"python3\"\nargs = [\"{}\"]\n\
         read-only = [\"old\", \"retire\"]\n",
        server.display()
    );
    let s = Setup::build("sqlite://host.db", None, script, &extra).await;
    let (builder, _, user) = s.tokens.clone();
    let host = s.serve();
    let agent = "name: live\nmodel: scripted\nmcp-servers: [live]\n";
    register(&host, &builder, agent).await;
    let session = |input: &'static str| {
        let host = &host;
        let user = user.clone();
        async move {
            let id = start_session(host, &user, "live", input).await;
            wait_for(host, &id, &user, |ev| count(ev, "run_finished") == 1).await
        }
    };
    let ev = session("first").await;
    let results: Vec<&Value> = ev.iter().filter(|e| e["type"] == "tool_result").collect();
    assert_eq!(results[0]["ok"], true, "{:?}", results[0]);
    assert_eq!(results[1]["error_code"], "not_found", "{:?}", results[1]);
    assert!(
        results[1]["content"]
            .as_str()
            .unwrap()
            .contains("no longer offers `old`"),
        "{:?}",
        results[1]
    );
    let ev = session("second").await;
    let result = ev.iter().find(|e| e["type"] == "tool_result").unwrap();
    assert!(
        result["content"]
            .as_str()
            .unwrap()
            .contains("there is no tool `live__old`"),
        "the agent was resolved again, without the tool: {result}"
    );
}

/// An upstream behind OAuth 2.1 (tests/support's authorization server in
/// front of `server-everything`): refused with what to do until `tack mcp
/// login`, which prints the address, catches the browser's return on
/// loopback and seals the tokens; then usable from any later process (the
/// tokens survive it), refreshed when the server stops taking the access
/// token, and forgotten by `tack mcp logout`. No token shows in any output
/// or in the store's file.
#[tokio::test(flavor = "multi_thread")]
async fn an_oauth_upstream_is_used_after_a_login_and_its_token_refreshed() {
    tack_distribution::client::install_crypto();
    let everything = tack_tests::node::EverythingServer::start();
    let upstream: std::net::SocketAddr = everything
        .url
        .trim_start_matches("http://")
        .trim_end_matches("/mcp")
        .parse()
        .unwrap();
    let oauth = tack_tests::OAuthServer::start(upstream, "/mcp").await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let config = d.join("tack.toml");
    std::fs::write(
        &config,
        format!(
            "storage = \"sqlite://gateway.db\"\n\n\
             [mcp-servers.ev]\nurl = \"{}\"\ntrust-annotations = true\n\n\
             [mcp-servers.ev.oauth]\n",
            oauth.url()
        ),
    )
    .unwrap();
    let key = tack(d, &config, &["secret", "master-key"]);
    let echo = [
        "mcp",
        "call",
        "ev",
        "echo",
        "--args",
        r#"{"message": "hi"}"#,
    ];
    let mut outputs = String::new();
    let mut keep = |out: &std::process::Output| {
        outputs.push_str(&String::from_utf8_lossy(&out.stdout));
        outputs.push_str(&String::from_utf8_lossy(&out.stderr));
    };

    let out = tack_with_key(d, &config, &key, &echo, "");
    keep(&out);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("needs authorization") && err.contains("tack mcp login ev"),
        "{err}"
    );

    // The login, with the test as the browser.
    let mut login = common::command(d, &config, Some(&key))
        .args(["mcp", "login", "ev"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    {
        use std::io::BufRead;
        let stdout = login.stdout.as_mut().unwrap();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .unwrap();
    }
    let address = line.trim().to_string();
    assert!(
        address.starts_with(&format!("http://{}/authorize?", oauth.addr))
            && address.contains("code_challenge_method=S256")
            && address.contains("resource="),
        "{address}"
    );
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let answer = browser.get(&address).send().await.unwrap();
    let back = answer.headers()["location"].to_str().unwrap().to_string();
    assert!(back.starts_with("http://127.0.0.1:"), "{back}");
    let page = browser.get(&back).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("authorized"));
    let out = login.wait_with_output().unwrap();
    keep(&out);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("secret `mcp-oauth.ev`"), "{err}");

    // A later process uses the sealed token.
    let out = tack_with_key(d, &config, &key, &echo, "");
    keep(&out);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("hi"));
    let log = oauth.log();
    assert_eq!(
        log.iter().filter(|l| l.starts_with("token ")).count(),
        1,
        "{log:?}"
    );
    assert!(log.iter().any(|l| l == "mcp alice"), "{log:?}");

    // The access token stops working: refreshed once, and the call goes on.
    oauth.expire_access_tokens();
    let out = tack_with_key(d, &config, &key, &echo, "");
    keep(&out);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = oauth.log();
    assert!(
        log.iter().any(|l| l == "token refresh_token alice"),
        "{log:?}"
    );

    let out = tack_with_key(d, &config, &key, &["secret", "ls"], "");
    keep(&out);
    assert!(String::from_utf8_lossy(&out.stdout).contains("mcp-oauth.ev"));

    // No token in any output, nor in the clear in the store.
    let db: Vec<u8> = ["gateway.db", "gateway.db-wal"]
        .iter()
        .filter_map(|f| std::fs::read(d.join(f)).ok())
        .flatten()
        .collect();
    let tokens = oauth.tokens();
    assert!(tokens.len() >= 4, "{tokens:?}");
    for t in &tokens {
        assert!(!outputs.contains(t.as_str()), "token {t} shown: {outputs}");
        assert!(
            !db.windows(t.len()).any(|w| w == t.as_bytes()),
            "token {t} in the store in the clear"
        );
    }

    let out = tack_with_key(d, &config, &key, &["mcp", "logout", "ev"], "");
    assert!(out.status.success());
    let out = tack_with_key(d, &config, &key, &echo, "");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("tack mcp login ev"));
}

/// Plays the browser of someone authorizing tack: opens `address` at the
/// test authorization server (which approves at once) and follows its
/// redirect; returns where it led and that page's status and text.
async fn authorize_in_browser(address: &str) -> (String, u16, String) {
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let answer = browser.get(address).send().await.unwrap();
    let back = answer.headers()["location"].to_str().unwrap().to_string();
    let page = browser.get(&back).send().await.unwrap();
    let status = page.status().as_u16();
    (back, status, page.text().await.unwrap())
}

/// Per-user delegation: a run of user `una` calls a tool of a server that
/// takes each user's own token, and una has none, so the run emits
/// `mcp_auth_required` with the address to authorize at and waits. Once una
/// has authorized (the browser comes back to tack's callback), the call runs
/// with una's token (the host's own login only lists the tools), and una's
/// next run needs no authorization, its expired token refreshed mid-run. A
/// callback replayed is refused, and no token shows in events, traces or the
/// host's debug log.
#[tokio::test(flavor = "multi_thread")]
async fn a_user_without_a_delegated_token_is_asked_to_authorize_and_the_run_waits() {
    tack_distribution::client::install_crypto();
    let everything = tack_tests::node::EverythingServer::start();
    let upstream: std::net::SocketAddr = everything
        .url
        .trim_start_matches("http://")
        .trim_end_matches("/mcp")
        .parse()
        .unwrap();
    let oauth = tack_tests::OAuthServer::start(upstream, "/mcp").await;
    let script = r#"
scenarios:
  - steps:
      - tool_calls:
          - {name: ev__echo, arguments: {message: "hello from una"}}
      - text: "Echoed."
"#;
    let extra = format!(
        "{UNSIGNED_TACK}\n[mcp-servers.ev]\nurl = \"{}\"\ntrust-annotations = true\n\n\
         [mcp-servers.ev.oauth]\ndelegation = \"per-user\"\n",
        oauth.url()
    );
    let s = Setup::build("sqlite://host.db", Some("model-key"), script, &extra).await;
    let key = s.master_key.clone().unwrap();
    let (builder, _, user) = s.tokens.clone();
    let d = s.dir.path();

    // The operator's own login lets the host list the server's tools.
    oauth.approve_as("operator");
    let mut login = common::command(d, &s.config, Some(&key))
        .args(["mcp", "login", "ev"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut address = String::new();
    {
        use std::io::BufRead;
        std::io::BufReader::new(login.stdout.as_mut().unwrap())
            .read_line(&mut address)
            .unwrap();
    }
    let (_, status, _) = authorize_in_browser(address.trim()).await;
    assert_eq!(status, 200);
    assert!(login.wait().unwrap().success());

    let serve_log = d.join("serve.log");
    let host = s.serve_logging(std::process::Stdio::from(
        std::fs::File::create(&serve_log).unwrap(),
    ));
    oauth.approve_as("una-at-idp");
    let agent = "name: echoer\ndescription: Echoes.\nmodel: scripted\ninstructions: Echo.\nmcp-servers:\n  - ev\n";
    register(&host, &builder, agent).await;
    let (_, v) = get(&host, "/v1/mcp-servers", &builder).await;
    assert_eq!(
        v["mcp_servers"][0]["oauth"],
        json!({"delegation": "per-user"}),
        "{v}"
    );
    let session = start_session(&host, &user, "echoer", "echo please").await;
    let ev = wait_for(&host, &session, &user, |ev| {
        count(ev, "mcp_auth_required") == 1
    })
    .await;
    let asked = ev
        .iter()
        .find(|e| e["type"] == "mcp_auth_required")
        .unwrap()
        .clone();
    assert_eq!(asked["server"], "ev", "{asked}");
    assert_eq!(asked["user"], "una", "{asked}");
    let address = asked["authorization_url"].as_str().unwrap().to_string();
    assert!(
        address.starts_with(&format!("http://{}/authorize?", oauth.addr))
            && address.contains("code_challenge_method=S256"),
        "{address}"
    );
    assert_eq!(count(&ev, "tool_result"), 0, "the call waits: {ev:#?}");
    let (_, v) = get(&host, &format!("/v1/sessions/{session}"), &user).await;
    assert_eq!(v["status"], "waiting_input", "{v}");

    let (callback, status, text) = authorize_in_browser(&address).await;
    assert!(
        callback.starts_with(&format!("{}/v1/mcp-oauth/callback?", host.url)),
        "{callback}"
    );
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("authorized with `ev` for `una`"), "{text}");
    let ev = wait_for(&host, &session, &user, |ev| count(ev, "run_finished") == 1).await;
    let done = ev
        .iter()
        .find(|e| e["type"] == "mcp_auth_completed")
        .unwrap();
    assert_eq!(done["authorized"], true, "{done}");
    let result = ev.iter().find(|e| e["type"] == "tool_result").unwrap();
    assert_eq!(result["ok"], true, "{result}");
    assert!(
        result["content"]
            .as_str()
            .unwrap()
            .contains("hello from una"),
        "{result}"
    );
    let log = oauth.log();
    assert!(log.iter().any(|l| l == "mcp una-at-idp"), "{log:?}");

    // The same address again: nothing waits for it.
    let browser = reqwest::Client::new();
    let replay = browser.get(&callback).send().await.unwrap();
    assert_eq!(replay.status(), 404);

    // Una's next run uses the sealed token at once, though the access
    // token has expired meanwhile: it is refreshed mid-run.
    oauth.expire_access_tokens();
    let second = start_session(&host, &user, "echoer", "echo again").await;
    let ev2 = wait_for(&host, &second, &user, |ev| count(ev, "run_finished") == 1).await;
    assert_eq!(count(&ev2, "mcp_auth_required"), 0, "{ev2:#?}");
    let result = ev2.iter().find(|e| e["type"] == "tool_result").unwrap();
    assert_eq!(result["ok"], true, "{result}");
    let log = oauth.log();
    assert!(
        log.iter().any(|l| l == "token refresh_token una-at-idp"),
        "{log:?}"
    );

    // No token of any kind shows in the events, the traces or the host's
    // debug log.
    let mut places = vec![("serve log", std::fs::read_to_string(&serve_log).unwrap())];
    for (session, events) in [(&session, &ev), (&second, &ev2)] {
        places.push(("events", serde_json::to_string(events).unwrap()));
        for run in events
            .iter()
            .filter(|e| e["type"] == "run_started")
            .map(|e| e["run_id"].as_str().unwrap().to_string())
        {
            let (st, trace) = get(
                &host,
                &format!("/v1/sessions/{session}/runs/{run}/trace"),
                &user,
            )
            .await;
            assert_eq!(st, 200, "{trace}");
            places.push(("trace", trace.to_string()));
        }
    }
    assert!(
        places[0].1.contains("DEBUG"),
        "the host logged at debug level"
    );
    let tokens = oauth.tokens();
    assert!(tokens.len() >= 6, "{tokens:?}");
    for (place, text) in &places {
        for t in &tokens {
            assert!(!text.contains(t.as_str()), "token {t} in the {place}");
        }
    }
}

/// An upstream server (on the official Python SDK) whose tool asks for
/// input mid-call: an input-required result in the 2026-07-28 era the
/// gateway speaks with it (an elicitation request in the older one).
const ASKING_SERVER: &str = r#"
from typing import Annotated
from pydantic import BaseModel
from mcp.server.mcpserver import MCPServer, Elicit, ElicitationResult, Resolve

server = MCPServer("asking")

class Confirm(BaseModel):
    approve: bool
    note: str = "none"

def ask(order: str):
    return Elicit(f"Refund order {order}?", Confirm)

@server.tool()
async def confirm_refund(
    order: str, answer: Annotated[ElicitationResult[Confirm], Resolve(ask)]
) -> str:
    """Ask the user to confirm a refund."""
    if answer.action == "accept":
        return f"accept approve={answer.data.approve} note={answer.data.note}"
    return answer.action

server.run("stdio")
"#;

/// An upstream server's elicitation in a run becomes an `ask_user` event
/// naming the call; the session waits for input, the user answers through
/// the API (a bare value for the one required field; the schema's default
/// fills the other), and the call goes on with that content. The time the
/// user takes does not count toward `call-timeout`. A second question is
/// declined by its answer.
#[tokio::test(flavor = "multi_thread")]
async fn an_upstream_question_mid_call_is_put_to_the_user_and_answered_through_the_api() {
    tack_distribution::client::install_crypto();
    let script = r#"
scenarios:
  - steps:
      - tool_calls: [{name: asking__confirm_refund, arguments: {order: A-17}}]
      - tool_calls: [{name: asking__confirm_refund, arguments: {order: B-2}}]
      - text: "done"
"#;
    let dir = tempfile::tempdir().unwrap();
    let server = dir.path().join("asking.py");
    std::fs::write(&server, ASKING_SERVER).unwrap();
    let extra = format!(
        "{UNSIGNED_TACK}
[mcp-servers.asking]
command = \"python3\"
args = [\"{}\"]
read-only = [\"confirm_refund\"]
call-timeout = \"1s\"
",
        server.display()
    );
    let s = Setup::build("sqlite://host.db", None, script, &extra).await;
    let (builder, _, user) = s.tokens.clone();
    let serve_log = dir.path().join("serve.log");
    let host = s.serve_logging(std::process::Stdio::from(
        std::fs::File::create(&serve_log).unwrap(),
    ));
    let agent = "name: asking\nmodel: scripted\nmcp-servers: [asking]\n";
    register(&host, &builder, agent).await;
    let session = start_session(&host, &user, "asking", "go").await;
    let question = |ev: &[Value], n: usize| {
        ev.iter()
            .filter(|e| e["type"] == "ask_user")
            .nth(n)
            .cloned()
    };
    let ev = wait_for(&host, &session, &user, |ev| count(ev, "ask_user") == 1).await;
    let q = question(&ev, 0).unwrap();
    let call = ev.iter().find(|e| e["type"] == "tool_call").unwrap();
    assert_eq!(q["call_id"], call["call_id"], "{q}");
    let text = q["question"].as_str().unwrap();
    assert!(
        text.contains("MCP server `asking` asks: Refund order A-17?")
            && text.contains("`approve` (boolean, required)")
            && text.contains("`note` (string, default \"none\")"),
        "{text}"
    );
    assert_eq!(count(&ev, "tool_result"), 0, "the call waits: {ev:#?}");
    let (_, v) = get(&host, &format!("/v1/sessions/{session}"), &user).await;
    assert_eq!(v["status"], "waiting_input", "{v}");

    // A person's time does not count: the call outlives its call-timeout
    // (the host says so in its log) and is still waiting, not failed.
    for _ in 0..2000 {
        let log = std::fs::read_to_string(&serve_log).unwrap_or_default();
        if log.contains("call-timeout passed while a person was asked") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let log = std::fs::read_to_string(&serve_log).unwrap();
    assert!(
        log.contains("call-timeout passed while a person was asked"),
        "the call's timeout never came round: {log}"
    );
    let ev = wait_for(&host, &session, &user, |ev| count(ev, "ask_user") == 1).await;
    assert_eq!(count(&ev, "tool_result"), 0, "the call waits: {ev:#?}");
    let answer = |id: Value, text: &str| {
        let host = &host;
        let user = &user;
        let session = &session;
        let text = text.to_string();
        async move {
            post(
                host,
                &format!("/v1/sessions/{session}/events"),
                user,
                json!({"type": "answer", "question_id": id, "answer": text}),
            )
            .await
        }
    };
    let (st, v) = answer(q["question_id"].clone(), "{\"approve\": true}").await;
    assert_eq!(st, 202, "{v}");
    let ev = wait_for(&host, &session, &user, |ev| count(ev, "ask_user") == 2).await;
    let first = ev.iter().find(|e| e["type"] == "tool_result").unwrap();
    assert_eq!(first["ok"], true, "{first}");
    assert!(
        first["content"]
            .as_str()
            .unwrap()
            .contains("accept approve=True note=none"),
        "{first}"
    );

    let q = question(&ev, 1).unwrap();
    let (st, v) = answer(q["question_id"].clone(), "decline").await;
    assert_eq!(st, 202, "{v}");
    let ev = wait_for(&host, &session, &user, |ev| count(ev, "run_finished") == 1).await;
    let second = ev
        .iter()
        .filter(|e| e["type"] == "tool_result")
        .nth(1)
        .unwrap();
    assert!(
        second["content"].as_str().unwrap().contains("decline"),
        "{second}"
    );
    // An answered question is not open any more.
    let (st, _) = answer(q["question_id"].clone(), "again").await;
    assert_eq!(st, 404);
}

/// An upstream server (on the official Python SDK) whose tool samples the
/// client's model.
const SAMPLING_SERVER: &str = r#"
from typing import Annotated
from mcp.server.mcpserver import MCPServer, Resolve, Sample
from mcp_types import CreateMessageResult, SamplingMessage, TextContent

server = MCPServer("sampler")

def summarize(text: str):
    return Sample(
        [SamplingMessage(role="user", content=TextContent(type="text", text=f"Summarize: {text}"))],
        max_tokens=64,
    )

@server.tool()
async def summary(text: str, answer: Annotated[CreateMessageResult, Resolve(summarize)]) -> str:
    """Summarize a text with the client's model."""
    return f"summary: {answer.content.text} (by {answer.model})"

server.run("stdio")
"#;

/// Sampling: a server the operator lets sample (`sampling-model`) has its
/// request answered by that catalog model, whose tokens count toward the
/// run (`mcp_sampling`, and the run's totals); the same server without the
/// setting is not offered sampling, and its call fails saying so.
#[tokio::test(flavor = "multi_thread")]
async fn sampling_is_refused_unless_the_operator_names_a_model_which_bills_the_run() {
    tack_distribution::client::install_crypto();
    let script = r#"
scenarios:
  - match: "Summarize:"
    steps:
      - text: "A short summary."
  - steps:
      - tool_calls:
          - {name: allowed__summary, arguments: {text: "a long text"}}
      - tool_calls:
          - {name: refused__summary, arguments: {text: "another text"}}
      - text: "done"
"#;
    let dir = tempfile::tempdir().unwrap();
    let server = dir.path().join("sampler.py");
    std::fs::write(&server, SAMPLING_SERVER).unwrap();
    let extra = format!(
        "{UNSIGNED_TACK}
[mcp-servers.allowed]
command = \"python3\"
args = [\"{0}\"]
read-only = [\"summary\"]
sampling-model = \"scripted\"

[mcp-servers.refused]
command = \"python3\"
args = [\"{0}\"]
read-only = [\"summary\"]
",
        server.display()
    );
    let s = Setup::build("sqlite://host.db", None, script, &extra).await;
    let (builder, _, user) = s.tokens.clone();
    let host = s.serve();
    let agent = "name: sampler\nmodel: scripted\nmcp-servers: [allowed, refused]\n";
    register(&host, &builder, agent).await;
    let session = start_session(&host, &user, "sampler", "go").await;
    let ev = wait_for(&host, &session, &user, |ev| count(ev, "run_finished") == 1).await;
    let result = |tool: &str| {
        ev.iter()
            .find(|e| e["type"] == "tool_result" && e["tool"] == tool)
            .unwrap_or_else(|| panic!("no result of {tool}: {ev:#?}"))
            .clone()
    };
    let allowed = result("allowed__summary");
    assert_eq!(allowed["ok"], true, "{allowed}");
    assert!(
        allowed["content"]
            .as_str()
            .unwrap()
            .contains("summary: A short summary."),
        "{allowed}"
    );
    let sampled = ev
        .iter()
        .find(|e| e["type"] == "mcp_sampling")
        .expect("an mcp_sampling event");
    assert_eq!(sampled["server"], "allowed", "{sampled}");
    assert_eq!(sampled["model"], "scripted", "{sampled}");
    assert_eq!(sampled["call_id"], allowed["call_id"], "{sampled}");
    let sampled_in = sampled["usage"]["input_tokens"].as_u64().unwrap();
    assert!(sampled_in > 0, "{sampled}");
    assert_eq!(count(&ev, "mcp_sampling"), 1);

    // Without `sampling-model` tack does not offer sampling to the server,
    // which then refuses its own call (a server that asks anyway is refused
    // by tack, naming the setting).
    let refused = result("refused__summary");
    assert_eq!(refused["ok"], false, "{refused}");
    assert!(
        refused["content"]
            .as_str()
            .unwrap()
            .contains("did not declare the sampling capability"),
        "{refused}"
    );

    // The run's tokens are its model calls' and the sampling's.
    let responses: u64 = ev
        .iter()
        .filter(|e| e["type"] == "model_response")
        .map(|e| e["usage"]["input_tokens"].as_u64().unwrap())
        .sum();
    let finished = ev.iter().find(|e| e["type"] == "run_finished").unwrap();
    assert_eq!(
        finished["input_tokens"].as_u64().unwrap(),
        responses + sampled_in,
        "{finished}"
    );
}
