//! A harness for engine tests: the real components (payments, refund-gate,
//! the OpenAI-compatible adapter) from local files, the scripted model server on
//! loopback, and a fresh store.

#![allow(dead_code)]

use serde_json::Value;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;
use tack_config::HostConfig;
use tack_engine::{
    Clock, Engine, EngineConfig, EventData, LocalSource, LoggedEvent, Principal, RetryPolicy, Role,
    Status,
};
use tack_scripted_model::{Script, ScriptedModel};
use tack_store::Store;
use tack_tests::{guest, runtime};

/// The refund policy skill, for `load_skill`.
pub const SKILL: &str = "---\nname: refund-policy\ndescription: How to issue refunds.\n---\n# Refund policy\nRefunds over $100 need a human approver.\n";

/// A skill that brings a component's tools (jq) once loaded.
pub const DATA_SKILL: &str = "---\nname: data-skill\ndescription: Reshape JSON.\nmetadata:\n  tack.tools: tack/jq@0.1.0\n---\n# Data\nUse jq.\n";

pub struct Harness {
    pub engine: Engine,
    pub model: ScriptedModel,
    pub dir: tempfile::TempDir,
    pub store_url: String,
    /// The engine's clock: the system's, moved on by [`TestClock::advance`].
    pub clock: Arc<TestClock>,
}

/// The system clock plus an offset a test moves forward, so waiting out a
/// grant's lifetime takes no waiting.
#[derive(Default)]
pub struct TestClock {
    offset_ms: AtomicI64,
}

impl TestClock {
    /// Move the clock `by` forward.
    pub fn advance(&self, by: Duration) {
        self.offset_ms
            .fetch_add(by.as_millis() as i64, Ordering::SeqCst);
    }
}

impl Clock for TestClock {
    fn now_ms(&self) -> i64 {
        tack_engine::SystemClock.now_ms() + self.offset_ms.load(Ordering::SeqCst)
    }
}

pub fn user() -> Principal {
    Principal::new("una", Role::User)
}

pub fn builder() -> Principal {
    Principal::new("bo", Role::Builder)
}

pub fn approver() -> Principal {
    Principal::new("ada", Role::Approver)
}

/// Host configuration text with the scripted model at `endpoint`, a state
/// directory for payments at `state`, and `extra` appended.
pub fn host_toml(endpoint: &str, state: &std::path::Path, extra: &str) -> String {
    format!(
        r#"
default-registry = "localhost:5050"

[models.scripted]
adapter = "tack/openai-chat@0.1.0"
endpoint = "{endpoint}"
input-usd-per-mtok = 1000
output-usd-per-mtok = 1000

[models.scripted-anthropic]
adapter = "tack/anthropic-messages@0.1.0"
endpoint = "{endpoint}"
credential-header = "x-api-key"

[tools."tack/payments"]
destructive = ["issue_refund"]
grant = {{ dirs = [{{ host = "{state}", guest = "/state", mode = "rw" }}], wall-clock = true }}

[approval-policies.refunds]
component = "tack/refund-gate@0.1.0"

[approval-policies.every-refund]
tools = ["issue_refund"]
scope = "session"
grant-ttl = "1s"
redact = ["/note"]

{extra}
"#,
        state = state.display()
    )
}

pub fn source() -> LocalSource {
    LocalSource::new()
        .component("tack/payments@0.1.0", guest("tack_plugin_payments"))
        .component("tack/refund-gate@0.1.0", guest("tack_plugin_refund_gate"))
        .component("tack/openai-chat@0.1.0", guest("tack_plugin_openai_chat"))
        .component(
            "tack/anthropic-messages@0.1.0",
            guest("tack_plugin_anthropic_messages"),
        )
        .skill("tack/refund-policy@0.1.0", SKILL)
        .component("tack/jq@0.1.0", guest("tack_plugin_jq"))
        .component("tack/code-js@0.1.0", guest("tack_plugin_code_js"))
        .component("tack/shop@0.1.0", guest("tack_plugin_shop"))
        .skill("tack/data-skill@0.1.0", DATA_SKILL)
}

impl Harness {
    pub async fn start(script: &str) -> Harness {
        Self::start_with(script, None, "").await
    }

    /// A harness on `store_url` (default: SQLite in a temp dir).
    pub async fn start_with(script: &str, store_url: Option<String>, extra: &str) -> Harness {
        let model = ScriptedModel::start(Script::from_yaml(script).expect("script"))
            .await
            .expect("model starts");
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("payments");
        std::fs::create_dir_all(&state).unwrap();
        let store_url = store_url
            .unwrap_or_else(|| format!("sqlite://{}", dir.path().join("tack.db").display()));
        let clock = Arc::new(TestClock::default());
        let engine = engine_full(
            &model.base_url(),
            &state,
            &store_url,
            extra,
            Arc::new(source()),
            None,
            clock.clone(),
        )
        .await;
        Harness {
            engine,
            model,
            dir,
            store_url,
            clock,
        }
    }

    /// A second engine on the same store and files, as after a host restart.
    pub async fn restart(&self) -> Engine {
        let e = engine_full(
            &self.model.base_url(),
            &self.dir.path().join("payments"),
            &self.store_url,
            "",
            Arc::new(source()),
            None,
            self.clock.clone(),
        )
        .await;
        e.resume().await.unwrap();
        e
    }

    pub fn ledger(&self) -> Value {
        let text = std::fs::read_to_string(self.dir.path().join("payments/ledger.json"))
            .unwrap_or_else(|_| "{\"refunds\": []}".into());
        serde_json::from_str(&text).unwrap()
    }
}

pub async fn engine(
    endpoint: &str,
    state: &std::path::Path,
    store_url: &str,
    extra: &str,
) -> Engine {
    engine_with(endpoint, state, store_url, extra, Arc::new(source())).await
}

/// [`engine`] with components from `components`.
pub async fn engine_with(
    endpoint: &str,
    state: &std::path::Path,
    store_url: &str,
    extra: &str,
    components: Arc<dyn tack_engine::ComponentSource>,
) -> Engine {
    let clock = Arc::new(tack_engine::SystemClock);
    engine_full(endpoint, state, store_url, extra, components, None, clock).await
}

/// [`engine_with`], reaching agents' `mcp-servers` through `servers`, grants
/// expiring by `clock`.
pub async fn engine_full(
    endpoint: &str,
    state: &std::path::Path,
    store_url: &str,
    extra: &str,
    components: Arc<dyn tack_engine::ComponentSource>,
    servers: Option<Arc<dyn tack_engine::ToolServers>>,
    clock: Arc<dyn tack_engine::Clock>,
) -> Engine {
    let text = host_toml(endpoint, state, extra);
    let host = HostConfig::from_toml(&text, &PathBuf::from("/etc/tack/tack.toml")).expect("config");
    let store = Store::open(store_url).await.expect("store");
    Engine::new(EngineConfig {
        host,
        runtime: runtime(),
        store,
        secrets: None,
        components,
        tool_servers: servers,
        retry: RetryPolicy {
            attempts: 4,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(50),
        },
        clock,
    })
}

/// An agent file.
pub fn agent(name: &str, model: &str, policy: Option<&str>, limits: &str) -> String {
    let policy = policy
        .map(|p| format!("approval-policy: {p}\n"))
        .unwrap_or_default();
    format!(
        "name: {name}\ndescription: Handles refunds.\nmodel: {model}\ninstructions: You help customers with refunds.\ntools:\n  - tack/payments@0.1.0\nskills:\n  - tack/refund-policy@0.1.0\n{policy}{limits}"
    )
}

/// Wait until the session reaches `status` (or panic after 20 s).
pub async fn wait_status(engine: &Engine, session: &str, status: Status) {
    for _ in 0..2000 {
        if engine.status(session).await.unwrap() == Some(status) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let events = engine.events(session, 0, 1000).await.unwrap();
    panic!(
        "session {session} never reached {status:?}; events:\n{}",
        events
            .iter()
            .map(|e| serde_json::to_string(e).unwrap())
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// Wait until a `run_finished` event is in the log (the `n`th), and return all events.
pub async fn wait_finished(engine: &Engine, session: &str, n: usize) -> Vec<LoggedEvent> {
    for _ in 0..2000 {
        let events = engine.events(session, 0, 10_000).await.unwrap();
        let finished = events
            .iter()
            .filter(|e| matches!(e.data, EventData::RunFinished { .. }))
            .count();
        if finished >= n && engine.status(session).await.unwrap() == Some(Status::Idle) {
            return events;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let events = engine.events(session, 0, 1000).await.unwrap();
    panic!(
        "session {session} never finished; events:\n{}",
        events
            .iter()
            .map(|e| serde_json::to_string(e).unwrap())
            .collect::<Vec<_>>()
            .join("\n")
    );
}

pub fn of_kind<'a>(events: &'a [LoggedEvent], kind: &str) -> Vec<&'a LoggedEvent> {
    events.iter().filter(|e| e.data.kind() == kind).collect()
}

/// The pending approval ids in the log.
pub fn approval_ids(events: &[LoggedEvent]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match &e.data {
            EventData::ApprovalRequired { approval_id, .. } => Some(approval_id.clone()),
            _ => None,
        })
        .collect()
}
