//! A scripted model server: answers the OpenAI Chat Completions
//! (`POST /v1/chat/completions`) and Anthropic Messages (`POST /v1/messages`) wire
//! formats, as JSON or as SSE streams, with tool calls and token usage, from a
//! script instead of a model. tack's tests and its offline demo run against it.
//!
//! A [`Script`] is a list of scenarios. A request picks the first scenario whose
//! `match` text occurs in its first user message (a scenario without `match` takes
//! any), and the *step* is the number of assistant turns already in the request, so
//! the server needs no session state: a conversation replays deterministically.
//!
//! ```yaml
//! scenarios:
//!   - match: refund
//!     steps:
//!       - tool_calls: [{name: read_balance, arguments: {account: acct_alice}}]
//!       - tool_calls: [{name: issue_refund, arguments: {account: acct_alice, amount_cents: 15000}}]
//!       - text: "Refund issued."
//!   - steps:
//!       - fail: {status: 429, times: 1}      # first request at this step gets 429
//!                                            # (`retry_after: 2` adds `retry-after: 2`)
//!         text: "Hello."
//! ```
//!
//! `fail: {…, echo_headers: true}` puts the request's headers in the error
//! message (as sent, and base64-encoded), as a careless provider does.
//! `delay_ms: 500` waits before answering; `hold: true` waits until the test
//! calls [`ScriptedModel::release`].
//!
//! Every request is recorded ([`ScriptedModel::requests`]) with its headers, so a
//! test can check what reached the "provider" (the injected credential, and that no
//! secret leaked elsewhere).

mod wire;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use serde::Deserialize;
use serde_json::Value;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A tool call a step asks for.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ScriptedCall {
    /// Tool name.
    pub name: String,
    /// Arguments (any JSON; objects in practice).
    #[serde(default)]
    pub arguments: Value,
}

/// A failure a step injects before answering.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Failure {
    /// HTTP status (429, 500, 503, …).
    pub status: u16,
    /// How many requests at this step fail before one succeeds.
    #[serde(default = "one")]
    pub times: u32,
    /// A `retry-after` header (seconds) on the failures.
    #[serde(default)]
    pub retry_after: Option<u32>,
    /// Echo the request's headers in the error message, as a careless
    /// provider does: each as sent, and base64-encoded.
    #[serde(default)]
    pub echo_headers: bool,
}

fn one() -> u32 {
    1
}

/// One assistant turn.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// Text of the answer (streamed word by word).
    #[serde(default)]
    pub text: Option<String>,
    /// Tool calls (in parallel when several).
    #[serde(default)]
    pub tool_calls: Vec<ScriptedCall>,
    /// Fail first, then answer.
    #[serde(default)]
    pub fail: Option<Failure>,
    /// Wait this long before answering (to exercise timeouts).
    #[serde(default)]
    pub delay_ms: u64,
    /// Hold the answer until [`ScriptedModel::release`]: the request stays in
    /// flight for as long as a test needs (a crash mid-call, say), however
    /// slow the machine.
    #[serde(default)]
    pub hold: bool,
    /// Tokens reported as used (default: estimated at four bytes a token,
    /// input from the request's system prompt, messages and tools, output
    /// from the answer's text and calls).
    #[serde(default)]
    pub usage: Option<(u64, u64)>,
}

/// A conversation's script.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Substring of the first user message that selects this scenario.
    #[serde(default, rename = "match")]
    pub matches: Option<String>,
    /// A tool the request must offer for this scenario (`run_code`: the
    /// agent is in code mode).
    #[serde(default)]
    pub offers: Option<String>,
    /// The assistant turns, in order.
    pub steps: Vec<Step>,
}

/// The whole script.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Script {
    /// Scenarios, first match wins.
    pub scenarios: Vec<Scenario>,
}

/// Why a script could not be read.
#[derive(Debug, thiserror::Error)]
#[error("model script: {0}")]
pub struct ScriptError(String);

impl Script {
    /// Parse a YAML (or JSON) script.
    pub fn from_yaml(text: &str) -> Result<Script, ScriptError> {
        let s: Script = serde_yaml_ng::from_str(text).map_err(|e| ScriptError(e.to_string()))?;
        if s.scenarios.iter().any(|sc| sc.steps.is_empty()) {
            return Err(ScriptError("every scenario needs at least one step".into()));
        }
        Ok(s)
    }
}

/// One request the server received.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// Path (`/v1/chat/completions`, `/v1/messages`).
    pub path: String,
    /// Request headers, lowercase names.
    pub headers: Vec<(String, String)>,
    /// Request body.
    pub body: Value,
    /// The HTTP status answered.
    pub status: u16,
}

struct Shared {
    script: Script,
    failures: Mutex<HashMap<(usize, usize), u32>>,
    requests: Mutex<Vec<Recorded>>,
    /// Requests whose answer was handed over (after any delay).
    answered: std::sync::atomic::AtomicUsize,
    /// Whether held answers may go ([`ScriptedModel::release`]).
    released: tokio::sync::watch::Sender<bool>,
}

/// How long a request waits before its answer goes out.
#[derive(Debug, Clone, Copy, Default)]
struct Wait {
    delay_ms: u64,
    hold: bool,
}

impl From<&Step> for Wait {
    fn from(step: &Step) -> Wait {
        Wait {
            delay_ms: step.delay_ms,
            hold: step.hold,
        }
    }
}

/// A running scripted model server.
pub struct ScriptedModel {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl ScriptedModel {
    /// Serve `script` on 127.0.0.1 (a free port) in the current tokio runtime.
    pub async fn start(script: Script) -> std::io::Result<ScriptedModel> {
        ScriptedModel::start_on("127.0.0.1:0".parse().expect("address"), script).await
    }

    /// Serve `script` on `addr`.
    pub async fn start_on(addr: SocketAddr, script: Script) -> std::io::Result<ScriptedModel> {
        let shared = Arc::new(Shared {
            script,
            failures: Mutex::default(),
            requests: Mutex::default(),
            answered: Default::default(),
            released: tokio::sync::watch::channel(false).0,
        });
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let task = tokio::spawn(async move {
            let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
                // SSE frames go out as written, not held for a delayed ACK.
                let _ = tcp.set_nodelay(true);
            });
            let _ = axum::serve(listener, app).await;
        });
        Ok(ScriptedModel { addr, shared, task })
    }

    /// `http://127.0.0.1:<port>/v1`, the base URL to configure.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// How many requests have been answered: a request still in its step's
    /// delay is recorded in [`requests`](Self::requests) but not counted here.
    pub fn answered(&self) -> usize {
        self.shared
            .answered
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Let the answers of `hold` steps go, those waiting and all later ones.
    pub fn release(&self) {
        self.shared.released.send_replace(true);
    }
}

impl Drop for ScriptedModel {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Which wire format a request speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    OpenAi,
    Anthropic,
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let dialect = match path.as_str() {
        "/v1/chat/completions" | "/chat/completions" => Some(Dialect::OpenAi),
        "/v1/messages" | "/messages" => Some(Dialect::Anthropic),
        _ => None,
    };
    let parsed: Result<Value, _> = serde_json::from_slice(&body);
    let (status, response, wait) = match (dialect, &parsed) {
        (None, _) => (
            404,
            wire::error_body(Dialect::OpenAi, 404, &format!("no endpoint {path}")),
            Wait::default(),
        ),
        (Some(d), Err(e)) => (
            400,
            wire::error_body(d, 400, &format!("body is not JSON: {e}")),
            Wait::default(),
        ),
        (Some(d), Ok(req)) => respond(&shared, d, req, &headers),
    };
    let record = Recorded {
        path,
        headers: headers
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
            .collect(),
        body: parsed.unwrap_or(Value::Null),
        status,
    };
    shared.requests.lock().unwrap().push(record);
    if wait.delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(wait.delay_ms)).await;
    }
    if wait.hold {
        // The sender lives in `shared`, which this handler holds: never closed.
        let _ = shared.released.subscribe().wait_for(|go| *go).await;
    }
    shared
        .answered
        .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    response
}

/// `headers` as a careless provider echoes them: `name: value` each, then
/// each value base64-encoded.
fn echoed(headers: &HeaderMap) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    headers
        .iter()
        .map(|(k, v)| {
            format!(
                "{k}: {} (base64 {})",
                v.to_str().unwrap_or(""),
                b64.encode(v.as_bytes())
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Pick the scenario and step for `req`, apply failures, and build the answer.
fn respond(
    shared: &Shared,
    dialect: Dialect,
    req: &Value,
    headers: &HeaderMap,
) -> (u16, Response, Wait) {
    let valid = req
        .get("messages")
        .and_then(Value::as_array)
        .is_some_and(|m| !m.is_empty() && m.iter().all(|m| m.get("role").is_some()));
    if !valid {
        return (
            400,
            wire::error_body(
                dialect,
                400,
                "`messages` must be a non-empty array of messages with roles",
            ),
            Wait::default(),
        );
    }
    let conv = wire::Conversation::read(dialect, req);
    let Some((si, scenario)) = shared.script.scenarios.iter().enumerate().find(|(_, s)| {
        s.matches
            .as_deref()
            .is_none_or(|m| conv.first_user.contains(m))
            && s.offers
                .as_deref()
                .is_none_or(|t| conv.tools.iter().any(|n| n == t))
    }) else {
        return (
            400,
            wire::error_body(
                dialect,
                400,
                "no scenario of the script matches this conversation",
            ),
            Wait::default(),
        );
    };
    let step_index = conv.assistant_turns.min(scenario.steps.len() - 1);
    let step = &scenario.steps[step_index];
    if let Some(f) = &step.fail {
        let mut failures = shared.failures.lock().unwrap();
        let n = failures.entry((si, step_index)).or_insert(0);
        if *n < f.times {
            *n += 1;
            let message = if f.echo_headers {
                format!("scripted failure; you sent {}", echoed(headers))
            } else {
                "scripted failure".to_string()
            };
            let mut response = wire::error_body(dialect, f.status, &message);
            if let Some(seconds) = f.retry_after {
                response
                    .headers_mut()
                    .insert("retry-after", axum::http::HeaderValue::from(seconds));
            }
            return (f.status, response, step.into());
        }
    }
    let stream = req.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let model = req
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or("scripted");
    let usage = step.usage.unwrap_or_else(|| {
        let out = step.text.as_deref().map_or(0, str::len)
            + step
                .tool_calls
                .iter()
                .map(|c| c.name.len() + c.arguments.to_string().len())
                .sum::<usize>();
        (
            conv.input_tokens.max(1) as u64,
            out.div_ceil(4).max(1) as u64,
        )
    });
    let include_usage = req
        .pointer("/stream_options/include_usage")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let answer = wire::Answer {
        dialect,
        model,
        step,
        step_index,
        usage,
    };
    let response = if stream {
        answer.stream(include_usage)
    } else {
        answer.json()
    };
    (StatusCode::OK.as_u16(), response, step.into())
}
