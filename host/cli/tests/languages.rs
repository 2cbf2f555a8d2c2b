//! Tool plugins in any language, through the `tack` binary as their authors and
//! operators use it: embed the manifest, inspect, publish signed, list in the
//! registry with tools and schemas, call by reference on a fresh host, refuse bad
//! arguments before the call, and hold the plugin to its sandbox (time, memory,
//! egress, files). Each language's plugin goes through the same steps.

mod common;

use common::{ok, tack_with as tack};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use tack_registry::Role;
use tack_tests::registries::TackRegistry;
use tack_tests::{LoopbackServer, Sdk, guest, sdk_plugin, workspace_root};

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
/// The plugin offers `spin`, `hog {mib}`, `read_file {path}` and `fetch {url}`
/// (returning the status). What is granted works: the file inside the grant, the
/// host allowed.
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

    // Egress: a granted host is reached; one not granted is refused by the host.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt.block_on(LoopbackServer::start());
    let port = server.addr.port();
    let granted_host = format!("127.0.0.1:{port}");
    let status = ok(&call(
        "fetch",
        &format!(r#"{{"url": "http://{granted_host}/granted"}}"#),
        &[
            "--allow-host",
            &granted_host,
            "--allow-private",
            "127.0.0.1/32",
        ],
    ));
    assert_eq!(status.trim(), "200");
    assert_eq!(server.hits(), 1);
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

#[test]
fn python_plugin_runs_as_tools() {
    exercise(&Case {
        name: "csv-stats",
        wasm: sdk_plugin(Sdk::Python, "plugins/csv-stats", tack_bin()),
        tools: &["summarize", "top_words", "write_csv"],
        call: (
            "top_words",
            r#"{"text": "b a b", "n": 1}"#,
            r#""word": "b""#,
        ),
        refused: (
            "top_words",
            r#"{"text": "a b", "n": 0}"#,
            "at `/n`: 0 is less than the minimum of 1",
        ),
    });
}

#[test]
fn python_plugin_is_held_to_its_sandbox() {
    hostile(
        &sdk_plugin(Sdk::Python, "tests/guests/python-hostile", tack_bin()),
        "64MiB",
    );
}

fn tack_bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_tack"))
}

/// The files (` ```LANG file=NAME `) and commands (` ```sh run `) of a "write
/// your first tool" section, as a reader follows them: files written into a new
/// directory, commands run there in order with `bash -e`. Returns their stdout.
fn follow_readme(readme: &Path, dir: &Path, path: &str, envs: &[(&str, &str)]) -> String {
    let text = std::fs::read_to_string(readme).unwrap();
    let mut stdout = String::new();
    let blocks = text.split("```").skip(1).step_by(2);
    let mut ran = 0;
    for block in blocks {
        let (info, body) = block.split_once('\n').unwrap();
        let words: Vec<&str> = info.split_whitespace().collect();
        if let Some(file) = words.iter().find_map(|w| w.strip_prefix("file=")) {
            std::fs::write(dir.join(file), body).unwrap();
        } else if words == ["sh", "run"] {
            let out = Command::new("bash")
                .args(["-e", "-c", body])
                .current_dir(dir)
                .env("PATH", path)
                .envs(envs.iter().copied())
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}: this step failed:\n{body}\n{}{}",
                readme.display(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            stdout.push_str(&String::from_utf8_lossy(&out.stdout));
            ran += 1;
        }
    }
    assert!(ran > 0, "{} has no `sh run` steps", readme.display());
    stdout
}

/// `PATH` with the `tack` under test first.
fn path_with_tack() -> String {
    format!(
        "{}:{}",
        tack_bin().parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

#[test]
fn python_sdk_readme_is_followed_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // The README's setup step, into a directory of this test's own:
    // `pip install ./sdk/python` (componentize-py is installed by scripts/test).
    let site = d.join("site");
    let pip = Command::new("python3")
        .args(["-m", "pip", "install", "--quiet", "--no-deps", "--target"])
        .arg(&site)
        .arg(workspace_root().join("sdk/python"))
        .output()
        .unwrap();
    assert!(
        pip.status.success(),
        "{}",
        String::from_utf8_lossy(&pip.stderr)
    );
    let project = d.join("word-tools");
    std::fs::create_dir(&project).unwrap();
    let out = follow_readme(
        &workspace_root().join("sdk/python/README.md"),
        &project,
        &path_with_tack(),
        &[
            ("PYTHONPATH", site.to_str().unwrap()),
            ("TACK_CACHE_DIR", d.join("code").to_str().unwrap()),
        ],
    );
    assert!(out.contains("built "), "{out}");
    assert!(out.contains("count  [read-only]"), "{out}");
    assert!(out.contains(r#""words": 3"#), "{out}");
    assert!(out.contains("A.L."), "{out}");
    assert!(out.contains("refused with exit code 3"), "{out}");
}

#[test]
fn typescript_plugin_runs_as_tools() {
    exercise(&Case {
        name: "json-tools",
        wasm: sdk_plugin(Sdk::Js, "plugins/json-tools", tack_bin()),
        tools: &["diff", "pick", "fetch_json"],
        call: (
            "pick",
            r#"{"document": {"a": [1, 2]}, "pointers": ["/a/1"]}"#,
            r#""/a/1": 2"#,
        ),
        refused: (
            "pick",
            r#"{"document": {}, "pointers": []}"#,
            "at `/pointers`: [] has less than 1 item",
        ),
    });
}

#[test]
fn javascript_plugin_is_held_to_its_sandbox() {
    hostile(
        &sdk_plugin(Sdk::Js, "tests/guests/js-hostile", tack_bin()),
        "64MiB",
    );
}

#[test]
fn js_sdk_readme_is_followed_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let project = d.join("word-tools");
    std::fs::create_dir(&project).unwrap();
    let node = tack_tests::node::node();
    let path = format!("{}:{}", node.parent().unwrap().display(), path_with_tack());
    let out = follow_readme(
        &workspace_root().join("sdk/js/README.md"),
        &project,
        &path,
        &[
            ("TACK_CHECKOUT", workspace_root().to_str().unwrap()),
            ("TACK_CACHE_DIR", d.join("code").to_str().unwrap()),
            ("npm_config_cache", d.join("npm-cache").to_str().unwrap()),
        ],
    );
    assert!(out.contains("built "), "{out}");
    assert!(out.contains("count  [read-only]"), "{out}");
    assert!(out.contains(r#""words": 3"#), "{out}");
    assert!(out.contains("A.L."), "{out}");
    assert!(out.contains("refused with exit code 3"), "{out}");
}

/// The agent's script: a Rust tool, a TypeScript tool, a Python tool, then a
/// destructive Python tool that waits for approval.
const MIXED_SCRIPT: &str = r#"
scenarios:
  - steps:
      - tool_calls: [{name: read_balance, arguments: {account: acct_alice}}]
      - tool_calls: [{name: pick, arguments: {document: {orders: [{id: o-1, total: 12.5}, {id: o-2, total: 7.5}]}, pointers: [/orders/1/total]}}]
      - tool_calls: [{name: summarize, arguments: {csv_text: "id,total\no-1,12.5\no-2,7.5\n"}}]
      - tool_calls: [{name: write_csv, arguments: {path: report.csv, rows: [{id: o-1, total: "12.5"}, {id: o-2, total: "7.5"}]}}]
      - text: "Report written."
"#;

#[tokio::test(flavor = "multi_thread")]
async fn an_agent_runs_rust_python_and_typescript_plugins_with_approvals() {
    tack_distribution::client::install_crypto();
    let keys = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let csv_stats = sdk_plugin(Sdk::Python, "plugins/csv-stats", tack_bin());
    let json_tools = sdk_plugin(Sdk::Js, "plugins/json-tools", tack_bin());
    let keygen = ok(&tack(
        keys.path(),
        &[],
        &["keygen", "--output", "publisher"],
    ));
    let fingerprint = keygen.split_whitespace().last().unwrap().to_string();
    // The Rust plugins the harness publishes are unsigned (the `tack` namespace
    // opts out); the Python and TypeScript ones go to `lang`, which requires
    // the publisher's signature.
    let extra = format!(
        r#"{unsigned}
[trust.lang]
keys = ["{key}"]

[tools."lang/csv-stats"]
grant = {{ dirs = [{{ host = "{data}", guest = "/data", mode = "rw" }}] }}

[approval-policies.writes]
tools = ["*destructive"]
"#,
        unsigned = common::UNSIGNED_TACK,
        key = keys.path().join("publisher.pub").display(),
        data = data.path().display(),
    );
    let s = common::Setup::build(
        &format!("sqlite://{}", data.path().join("host.db").display()),
        None,
        MIXED_SCRIPT,
        &extra,
    )
    .await;
    let key = keys.path().join("publisher.key");
    for (wasm, reference) in [
        (&csv_stats, "lang/csv-stats@0.1.0"),
        (&json_tools, "lang/json-tools@0.1.0"),
    ] {
        let out = common::tack(
            s.dir.path(),
            &s.config,
            &[
                "publish",
                wasm.to_str().unwrap(),
                reference,
                "--sign-key",
                key.to_str().unwrap(),
            ],
        );
        assert!(out.contains(&format!("signed  {fingerprint}")), "{out}");
    }
    let show = common::tack(
        s.dir.path(),
        &s.config,
        &["registry", "show", "lang/csv-stats"],
    );
    assert!(show.contains("tool write_csv:"), "{show}");

    let (builder, approver, user) = s.tokens.clone();
    let host = s.serve();
    common::register(
        &host,
        &builder,
        "name: analyst\ndescription: Reports.\nmodel: scripted\ninstructions: Write reports.\n\
         tools:\n  - tack/payments@0.1.0\n  - lang/csv-stats@0.1.0\n  - lang/json-tools@0.1.0\n\
         approval-policy: writes\n",
    )
    .await;
    let session = common::start_session(&host, &user, "analyst", "write the report").await;
    let ev = common::wait_for(&host, &session, &user, |ev| {
        common::count(ev, "approval_required") == 1
    })
    .await;
    let asked = ev
        .iter()
        .find(|e| e["type"] == "approval_required")
        .unwrap();
    assert_eq!(asked["tool"], "write_csv", "{asked}");
    assert!(
        !data.path().join("report.csv").exists(),
        "nothing is written before the approval"
    );
    let results = |ev: &[Value]| -> Vec<(String, bool, String)> {
        ev.iter()
            .filter(|e| e["type"] == "tool_result")
            .map(|e| {
                (
                    e["tool"].as_str().unwrap().to_string(),
                    e["ok"].as_bool().unwrap(),
                    e["content"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let so_far = results(&ev);
    let tools: Vec<&str> = so_far.iter().map(|(t, _, _)| t.as_str()).collect();
    assert_eq!(tools, ["read_balance", "pick", "summarize"], "{so_far:?}");
    assert!(so_far.iter().all(|(_, ok, _)| *ok), "{so_far:?}");
    assert!(so_far[1].2.contains("7.5"), "{so_far:?}");
    assert!(
        so_far[2].2.contains("\"rows\":2") || so_far[2].2.contains("\"rows\": 2"),
        "{so_far:?}"
    );

    let id = asked["approval_id"].as_str().unwrap();
    common::approve(&host, &approver, id).await;
    let ev = common::wait_for(&host, &session, &user, |ev| {
        common::count(ev, "run_finished") == 1
    })
    .await;
    let finished = ev.iter().find(|e| e["type"] == "run_finished").unwrap();
    assert_eq!(finished["output"], "Report written.", "{finished}");
    let all = results(&ev);
    assert_eq!(all.len(), 4, "{all:?}");
    assert_eq!(all[3].0, "write_csv");
    assert!(all[3].1, "{all:?}");
    assert_eq!(
        std::fs::read_to_string(data.path().join("report.csv")).unwrap(),
        "id,total\r\no-1,12.5\r\no-2,7.5\r\n"
    );
}

#[test]
fn embed_mistakes_get_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let echo = guest("tack_guest_echo");
    let echo = echo.to_str().unwrap();
    let stderr = failed(&tack(d, &[], &["plugin", "embed", echo]), 2);
    assert!(stderr.contains("nothing to embed"), "{stderr}");

    std::fs::write(
        d.join("notes.toml"),
        "[plugin]\nname = \"echo\"\n[tools.echo]\nread-only = true\n",
    )
    .unwrap();
    let out = d.join("out.wasm");
    let stderr = failed(
        &tack(
            d,
            &[],
            &[
                "plugin",
                "embed",
                echo,
                "--manifest",
                "notes.toml",
                "-o",
                out.to_str().unwrap(),
            ],
        ),
        4,
    );
    assert!(
        stderr.contains("[tools.echo] is for components whose tools are plain exported functions"),
        "{stderr}"
    );
    assert!(!out.exists(), "nothing is written");

    // A second manifest is refused: the first stays the one that counts.
    let plain = plain_guest(d);
    let stderr = failed(
        &tack(
            d,
            &[],
            &[
                "plugin",
                "embed",
                plain.to_str().unwrap(),
                "--manifest",
                workspace_root()
                    .join("tests/guests/plain/tack.toml")
                    .to_str()
                    .unwrap(),
            ],
        ),
        4,
    );
    assert!(
        stderr.contains("the component already carries a manifest"),
        "{stderr}"
    );
}
