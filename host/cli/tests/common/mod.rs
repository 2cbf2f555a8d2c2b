//! A harness for tests of the host as a process: a registry with the refund
//! components published, the scripted model on loopback, a host
//! configuration, tokens for each role, and `tack serve` started on it.

#![allow(dead_code)]

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;
use tack_scripted_model::{Script, ScriptedModel};
use tack_tests::guest;
use tack_tests::registries::TackRegistry;

/// The plugins these tests publish are not signed: the `tack` namespace opts
/// out of the host's default of requiring signatures.
pub const UNSIGNED_TACK: &str = "[trust.tack]\nrequire-signature = false\n";

/// A `tack serve` process, killed on drop.
pub struct Host {
    pub child: Child,
    pub url: String,
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Setup {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub _registry: TackRegistry,
    pub model: ScriptedModel,
    pub tokens: (String, String, String),
    pub master_key: Option<String>,
}

pub fn command(dir: &Path, config: &Path, master_key: Option<&str>) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tack"));
    c.current_dir(dir)
        .env("TACK_CONFIG", config)
        .env("TACK_ARTIFACT_DIR", dir.join("artifacts"))
        .env(
            "TACK_CACHE_DIR",
            tack_tests::workspace_root().join("target/tack-test-cache"),
        )
        .env_remove("TACK_MASTER_KEY")
        .env_remove("TACK_MASTER_KEY_FILE");
    if let Some(k) = master_key {
        c.env("TACK_MASTER_KEY", k);
    }
    c
}

/// Run `tack` in `dir` configured by `envs` alone (the caller's `TACK_CONFIG`
/// and `TACK_REGISTRY` removed), its artifacts under `dir`, its compiled code in
/// the test run's shared cache.
pub fn tack_with(dir: &Path, envs: &[(&str, &str)], args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tack"))
        .current_dir(dir)
        .env_remove("TACK_CONFIG")
        .env_remove("TACK_REGISTRY")
        .env("TACK_ARTIFACT_DIR", dir.join("artifacts"))
        .env(
            "TACK_CACHE_DIR",
            tack_tests::workspace_root().join("target/tack-test-cache"),
        )
        .envs(envs.iter().copied())
        .args(args)
        .output()
        .expect("run tack")
}

/// The stdout of a `tack` that must have succeeded.
pub fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "tack failed ({:?}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn tack(dir: &Path, config: &Path, args: &[&str]) -> String {
    let out = command(dir, config, None)
        .args(args)
        .output()
        .expect("run tack");
    assert!(
        out.status.success(),
        "tack {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

impl Setup {
    /// [`scripted`](Self::scripted), with `extra` at the end of the host
    /// configuration.
    pub async fn build(storage: &str, secret: Option<&str>, script: &str, extra: &str) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let registry = TackRegistry::start_in(&dir.path().join("registry"), None);
        let model = ScriptedModel::start(Script::from_yaml(script).unwrap())
            .await
            .unwrap();
        let state = dir.path().join("payments");
        std::fs::create_dir_all(&state).unwrap();
        let config = dir.path().join("tack.toml");
        std::fs::write(
            &config,
            format!(
                r#"default-registry = "{registry}"
listen = "127.0.0.1:0"
storage = "{storage}"

[models.scripted]
adapter = "tack/openai-chat@0.1.0"
endpoint = "{endpoint}"
{credential}

[tools."tack/payments"]
destructive = ["issue_refund"]
grant = {{ dirs = [{{ host = "{state}", guest = "/state", mode = "rw" }}], wall-clock = true }}

[approval-policies.refunds]
component = "tack/refund-gate@0.1.0"
{extra}
"#,
                registry = registry.host,
                endpoint = model.base_url(),
                state = state.display(),
                credential = if secret.is_some() {
                    "credential = \"DEMO_KEY\""
                } else {
                    ""
                },
            ),
        )
        .unwrap();
        for (file, r) in [
            ("tack_plugin_payments", "tack/payments@0.1.0"),
            ("tack_plugin_refund_gate", "tack/refund-gate@0.1.0"),
            ("tack_plugin_openai_chat", "tack/openai-chat@0.1.0"),
        ] {
            tack(
                dir.path(),
                &config,
                &["publish", guest(file).to_str().unwrap(), r],
            );
        }
        let token = |name: &str, role: &str| {
            tack(
                dir.path(),
                &config,
                &["token", "create", name, "--role", role],
            )
        };
        let tokens = (
            token("ops", "builder"),
            token("ada", "approver"),
            token("una", "user"),
        );
        let master_key = secret.map(|value| {
            let key = tack(dir.path(), &config, &["secret", "master-key"]);
            let mut child = command(dir.path(), &config, Some(&key))
                .args(["secret", "set", "DEMO_KEY"])
                .stdin(Stdio::piped())
                .spawn()
                .unwrap();
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(value.as_bytes())
                .unwrap();
            assert!(child.wait().unwrap().success());
            key
        });
        Setup {
            dir,
            config,
            _registry: registry,
            model,
            tokens,
            master_key,
        }
    }

    pub fn serve(&self) -> Host {
        self.serve_logging(Stdio::null())
    }

    pub fn serve_logging(&self, stderr: Stdio) -> Host {
        let mut child = command(self.dir.path(), &self.config, self.master_key.as_deref())
            .env("TACK_LOG", "debug")
            .arg("serve")
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("start tack serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .trim()
            .strip_prefix("tack listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
            .to_string();
        Host { child, url }
    }

    pub fn ledger(&self) -> Value {
        let text = std::fs::read_to_string(self.dir.path().join("payments/ledger.json"))
            .unwrap_or_else(|_| "{\"refunds\": []}".into());
        serde_json::from_str(&text).unwrap()
    }
}

/// Register agent file `yaml` as `builder`, which must be accepted.
pub async fn register(host: &Host, builder: &str, yaml: &str) {
    let (st, v) = post(
        host,
        "/v1/agents",
        builder,
        serde_json::json!({"yaml": yaml}),
    )
    .await;
    assert_eq!(st, 201, "{v}");
}

/// Start a session of `agent` on `input` as `user`: its id.
pub async fn start_session(host: &Host, user: &str, agent: &str, input: &str) -> String {
    let (st, v) = post(
        host,
        "/v1/sessions",
        user,
        serde_json::json!({"agent": agent, "input": input}),
    )
    .await;
    assert_eq!(st, 201, "{v}");
    v["id"].as_str().unwrap().to_string()
}

/// POST `body` to `path` of `host` as `token`: (status, JSON answer).
pub async fn post(host: &Host, path: &str, token: &str, body: Value) -> (u16, Value) {
    call(
        reqwest::Method::POST,
        format!("{}{path}", host.url),
        token,
        Some(body),
    )
    .await
}

/// Approve `approval` as `approver`, which must be accepted.
pub async fn approve(host: &Host, approver: &str, approval: &str) {
    let (st, v) = post(
        host,
        &format!("/v1/approvals/{approval}"),
        approver,
        serde_json::json!({"decision": "approve"}),
    )
    .await;
    assert_eq!(st, 202, "{v}");
}

/// GET `path` of `host` as `token`: (status, JSON answer).
pub async fn get(host: &Host, path: &str, token: &str) -> (u16, Value) {
    call(
        reqwest::Method::GET,
        format!("{}{path}", host.url),
        token,
        None,
    )
    .await
}

pub async fn call(
    method: reqwest::Method,
    url: String,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .request(method, url)
        .bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

pub async fn events(host: &Host, session: &str, token: &str) -> Vec<Value> {
    let (s, v) = call(
        reqwest::Method::GET,
        format!("{}/v1/sessions/{session}/events?limit=1000", host.url),
        token,
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    v["events"].as_array().unwrap().clone()
}

pub async fn wait_for(
    host: &Host,
    session: &str,
    token: &str,
    what: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    for _ in 0..1000 {
        let ev = events(host, session, token).await;
        if what(&ev) {
            return ev;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "timed out; events: {:#?}",
        events(host, session, token).await
    );
}

pub fn count(ev: &[Value], kind: &str) -> usize {
    ev.iter().filter(|e| e["type"] == kind).count()
}
