//! Model-adapter components: tack's provider-neutral completion request in, one
//! provider's completion out, with the provider's HTTP going through the host
//! (egress checks, credential injection).
//!
//! The types mirror `wit/model.wit` and are serialisable, so the agent loop can
//! keep conversations in its event log.

use crate::bindings::model_world::exports::tack::plugin::model as wit;
use crate::bindings::model_world::{ModelAdapter as ModelAdapterBindings, ModelAdapterPre};
use crate::egress::{Credential, EgressBinding, EgressEvent};
use crate::error::CallError;
use crate::inspect::WorldInfo;
use crate::plugin::{Pipes, arm, classify, new_store};
use crate::runtime::Runtime;
use crate::scrub::Scrubber;
use crate::state::SandboxState;
use crate::types::{LogRecord, ToolDescriptor};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tack_capability::{Capabilities, CapabilityError, Grant, Manifest};
use wasmtime::{Store, Trap};

/// Receives a model's streamed text, piece by piece.
pub type DeltaSink = Arc<dyn Fn(&str) + Send + Sync>;

/// Who said a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Instructions.
    System,
    /// The user.
    User,
    /// The model.
    Assistant,
    /// Tool results.
    Tool,
}

/// A tool call the model asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCall {
    /// Provider-assigned id.
    pub id: String,
    /// Tool name, as the model sees it.
    pub name: String,
    /// Arguments (JSON text, as the model wrote them).
    pub arguments: String,
}

/// The result of a tool call, for the model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolResult {
    /// The id of the call this answers.
    pub call_id: String,
    /// The result (or the error) as text.
    pub content: String,
    /// Whether the call failed.
    pub is_error: bool,
}

/// One part of a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Part {
    /// Text.
    Text {
        /// The text.
        text: String,
    },
    /// A tool call (assistant).
    ToolCall(ToolCall),
    /// A tool result (tool).
    ToolResult(ToolResult),
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// Who said it.
    pub role: Role,
    /// What was said.
    pub parts: Vec<Part>,
}

impl Message {
    /// A message of one text part.
    pub fn text(role: Role, text: impl Into<String>) -> Self {
        Message {
            role,
            parts: vec![Part::Text { text: text.into() }],
        }
    }

    /// The message's text parts, joined.
    pub fn joined_text(&self) -> String {
        self.parts
            .iter()
            .filter_map(|p| match p {
                Part::Text { text } => Some(text.as_str()),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join("")
    }

    /// The tool calls in the message.
    pub fn tool_calls(&self) -> impl Iterator<Item = &ToolCall> {
        self.parts.iter().filter_map(|p| match p {
            Part::ToolCall(c) => Some(c),
            _ => None,
        })
    }
}

/// The tools offered to a model, with their WIT form made once: a list is built
/// per agent (and set of loaded skills) and sent with every model call, so its
/// schemas are not cloned and serialized again each time. Cheap to clone.
#[derive(Clone, Default)]
pub struct ModelTools {
    descriptors: Arc<[ToolDescriptor]>,
    wit: Arc<[crate::bindings::model_world::tack::plugin::types::ToolDescriptor]>,
}

impl ModelTools {
    /// The list `descriptors`.
    pub fn new(descriptors: Vec<ToolDescriptor>) -> Self {
        let wit = descriptors.iter().map(ToolDescriptor::to_wit).collect();
        ModelTools {
            descriptors: descriptors.into(),
            wit,
        }
    }

    /// The tools.
    pub fn descriptors(&self) -> &[ToolDescriptor] {
        &self.descriptors
    }

    /// How many tools.
    pub fn len(&self) -> usize {
        self.descriptors.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.descriptors.is_empty()
    }
}

impl From<Vec<ToolDescriptor>> for ModelTools {
    fn from(descriptors: Vec<ToolDescriptor>) -> Self {
        ModelTools::new(descriptors)
    }
}

impl std::fmt::Debug for ModelTools {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.descriptors.iter()).finish()
    }
}

impl PartialEq for ModelTools {
    fn eq(&self, other: &Self) -> bool {
        self.descriptors == other.descriptors
    }
}

impl Serialize for ModelTools {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.descriptors.serialize(s)
    }
}

impl<'de> Deserialize<'de> for ModelTools {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Vec::<ToolDescriptor>::deserialize(d).map(ModelTools::new)
    }
}

/// A completion request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompletionRequest {
    /// The provider's base URL.
    pub endpoint: String,
    /// The provider's model id.
    pub model: String,
    /// The system prompt.
    pub system: Option<String>,
    /// The conversation.
    pub messages: Vec<Message>,
    /// Tools the model may call.
    pub tools: ModelTools,
    /// Most tokens to generate.
    pub max_tokens: u32,
    /// Sampling temperature.
    pub temperature: Option<f32>,
    /// Whether to stream.
    pub stream: bool,
}

/// Token counts of one completion.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Prompt tokens.
    pub input_tokens: u64,
    /// Generated tokens.
    pub output_tokens: u64,
}

/// Why the model stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// A final answer.
    EndTurn,
    /// Tool calls.
    ToolUse,
    /// Cut by the token limit.
    MaxTokens,
    /// Refused by the provider.
    Refusal,
}

/// A completion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Completion {
    /// The assistant message.
    pub message: Message,
    /// Why generation stopped.
    pub stop_reason: StopReason,
    /// Tokens used.
    pub usage: Usage,
}

/// A failed completion, as the adapter reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelError {
    /// The provider's HTTP status, if any.
    pub status: Option<u16>,
    /// What went wrong.
    pub message: String,
    /// Whether a retry may succeed.
    pub retryable: bool,
    /// The provider's `retry-after`, in milliseconds.
    pub retry_after_ms: Option<u64>,
}

/// The outcome of one adapter call that ran.
#[derive(Debug, Clone)]
pub struct ModelOutcome {
    /// The completion or the adapter's error.
    pub result: Result<Completion, ModelError>,
    /// The adapter's log records.
    pub logs: Vec<LogRecord>,
    /// The adapter's outgoing HTTP.
    pub egress: Vec<EgressEvent>,
    /// Wall time, instantiation included.
    pub elapsed: Duration,
}

/// A loaded model-adapter component. Cheap to clone.
#[derive(Clone)]
pub struct ModelAdapter {
    inner: Arc<AdapterInner>,
}

struct AdapterInner {
    runtime: Runtime,
    digest: String,
    manifest: Manifest,
    world: WorldInfo,
    pre: ModelAdapterPre<crate::state::SandboxState>,
}

impl ModelAdapter {
    pub(crate) fn new(
        runtime: Runtime,
        digest: String,
        manifest: Manifest,
        world: WorldInfo,
        pre: ModelAdapterPre<crate::state::SandboxState>,
    ) -> Self {
        ModelAdapter {
            inner: Arc::new(AdapterInner {
                runtime,
                digest,
                manifest,
                world,
                pre,
            }),
        }
    }

    /// `sha256:<hex>` of the component.
    pub fn digest(&self) -> String {
        format!("sha256:{}", self.inner.digest)
    }

    /// The component's WIT world.
    pub fn world(&self) -> &WorldInfo {
        &self.inner.world
    }

    /// Bind the adapter to a grant (normally: HTTP to the model's endpoint only)
    /// and the credentials the host adds to its requests.
    pub fn bind(
        &self,
        grant: &Grant,
        credentials: Vec<Credential>,
    ) -> Result<BoundAdapter, CapabilityError> {
        let capabilities = grant.resolve(&self.inner.manifest, |_| None)?;
        Ok(BoundAdapter {
            adapter: self.clone(),
            scrubber: Scrubber::for_credentials(&credentials),
            egress: EgressBinding::new(capabilities.egress.clone()).with_credentials(credentials),
            capabilities: Arc::new(capabilities),
        })
    }
}

/// A model adapter bound to its grant and credentials; completions run here, each
/// in a fresh instance.
#[derive(Clone)]
pub struct BoundAdapter {
    adapter: ModelAdapter,
    scrubber: Scrubber,
    capabilities: Arc<Capabilities>,
    egress: EgressBinding,
}

impl BoundAdapter {
    /// Keep-alive connections to the model's endpoint held open and idle now.
    pub fn idle_connections(&self) -> usize {
        self.egress.pool.idle_count()
    }

    /// The adapter.
    pub fn adapter(&self) -> &ModelAdapter {
        &self.adapter
    }

    /// What takes this binding's credentials out of text. Its calls' errors and
    /// log records come out scrubbed already; text made from a [`CallError`]
    /// (which may quote the guest) is the caller's to scrub.
    pub fn scrubber(&self) -> &Scrubber {
        &self.scrubber
    }

    /// Ask for one completion in a fresh instance (one attempt: retries are the
    /// caller's). Streamed text goes to `deltas`. `timeout` bounds the whole call.
    pub async fn complete(
        &self,
        request: &CompletionRequest,
        timeout: Duration,
        deltas: Option<DeltaSink>,
    ) -> Result<ModelOutcome, CallError> {
        self.session().complete(request, timeout, deltas).await
    }

    /// A session for the model calls of one stretch of a run: its instance is
    /// kept between calls that succeed (see [`AdapterSession`]).
    pub fn session(&self) -> AdapterSession {
        AdapterSession {
            bound: self.clone(),
            warm: None,
        }
    }
}

/// Most calls one adapter instance serves before it is replaced.
const MAX_WARM_CALLS: u32 = 64;

/// The model calls of one stretch of a run (from its start, or a resume, until it
/// waits or ends), made by one adapter instance kept between them.
///
/// The instance serves only this run of this session, whose every request carries
/// the whole conversation so far: what it could keep from one call to the next it
/// is sent again anyway, and it never holds a credential (the host adds those to
/// its requests). It is replaced after any failed call (a trap, a limit, the
/// adapter's own error), after [`MAX_WARM_CALLS`] calls, and once its memory passes
/// half its limit, so a leak in an adapter cannot build up to a failure. Each call
/// gets its own time limit, fuel, log, egress record and output pipes. Dropping
/// the session frees the instance. At most a quarter of the runtime's
/// `max_instances` are kept warm at once; past that, calls use fresh instances.
pub struct AdapterSession {
    bound: BoundAdapter,
    warm: Option<Warm>,
}

struct Warm {
    store: Store<SandboxState>,
    pipes: Pipes,
    bindings: ModelAdapterBindings,
    calls: u32,
    /// One of the runtime's warm slots, held while the instance is kept.
    slot: tokio::sync::OwnedSemaphorePermit,
}

impl AdapterSession {
    /// The binding's [`Scrubber`].
    pub fn scrubber(&self) -> &Scrubber {
        &self.bound.scrubber
    }

    /// How many calls the instance kept for the next call has served (0: the
    /// next call starts a fresh instance).
    pub fn warm_calls(&self) -> u32 {
        self.warm.as_ref().map_or(0, |w| w.calls)
    }

    /// Ask for one completion (one attempt: retries are the caller's). Streamed
    /// text goes to `deltas`. `timeout` bounds the whole call.
    pub async fn complete(
        &mut self,
        request: &CompletionRequest,
        timeout: Duration,
        deltas: Option<DeltaSink>,
    ) -> Result<ModelOutcome, CallError> {
        let start = Instant::now();
        let inner = &self.bound.adapter.inner;
        let capabilities = &self.bound.capabilities;
        let mut limits = capabilities.limits;
        limits.timeout = timeout;
        let (mut store, pipes, bindings, calls, slot) = match self.warm.take() {
            Some(mut w) => {
                arm(&inner.runtime, &mut w.store, capabilities, timeout)?;
                w.store.data_mut().limiter.hit = false;
                (w.store, w.pipes, Some(w.bindings), w.calls, Some(w.slot))
            }
            None => {
                let (store, pipes) =
                    new_store(&inner.runtime, capabilities, &self.bound.egress, timeout)?;
                (store, pipes, None, 0, None)
            }
        };
        store.data_mut().deltas = deltas;
        let wit_request = request.to_wit();
        let fut = async {
            let bindings = match bindings {
                Some(b) => b,
                None => inner.pre.instantiate_async(&mut store).await?,
            };
            let raw = bindings
                .tack_plugin_model()
                .call_complete(&mut store, &wit_request)
                .await?;
            Ok::<_, wasmtime::Error>((bindings, raw))
        };
        let (bindings, raw) = match tokio::time::timeout(timeout, fut).await {
            Ok(Ok(done)) => done,
            Ok(Err(e)) => return Err(classify(e, &store, &pipes, &limits)),
            Err(_) => {
                return Err(classify(
                    wasmtime::Error::new(Trap::Interrupt),
                    &store,
                    &pipes,
                    &limits,
                ));
            }
        };
        // An upstream may echo the request's headers, credentials included:
        // what the guest reports goes nowhere unscrubbed.
        let scrubber = &self.bound.scrubber;
        let result = match raw {
            Ok(c) => Ok(Completion::from_wit(c)),
            Err(e) => Err(ModelError {
                status: e.status,
                message: scrubber.scrub(&e.message).into_owned(),
                retryable: e.retryable,
                retry_after_ms: e.retry_after_ms,
            }),
        };
        let state = store.data_mut();
        state.deltas = None;
        let mut logs = std::mem::take(&mut state.logs);
        for l in &mut logs {
            scrubber.scrub_in_place(&mut l.message);
        }
        let outcome = ModelOutcome {
            logs,
            egress: std::mem::take(&mut *pipes.egress.lock().expect("egress lock")),
            elapsed: start.elapsed(),
            result,
        };
        state.logs_dropped = 0;
        let keep = outcome.result.is_ok()
            && !state.limiter.hit
            && calls + 1 < MAX_WARM_CALLS
            && state.limiter.total <= state.limiter.limit / 2;
        let slot = if keep {
            slot.or_else(|| {
                inner
                    .runtime
                    .inner
                    .warm_slots
                    .clone()
                    .try_acquire_owned()
                    .ok()
            })
        } else {
            None
        };
        if let Some(slot) = slot {
            pipes.stdout.take();
            pipes.stderr.take();
            self.warm = Some(Warm {
                store,
                pipes,
                bindings,
                calls: calls + 1,
                slot,
            });
        }
        Ok(outcome)
    }
}

impl CompletionRequest {
    fn to_wit(&self) -> wit::CompletionRequest {
        wit::CompletionRequest {
            endpoint: self.endpoint.clone(),
            model: self.model.clone(),
            system: self.system.clone(),
            messages: self.messages.iter().map(Message::to_wit).collect(),
            tools: self.tools.wit.to_vec(),
            max_tokens: self.max_tokens,
            temperature: self.temperature,
            stream: self.stream,
        }
    }
}

impl Message {
    fn to_wit(&self) -> wit::Message {
        wit::Message {
            role: match self.role {
                Role::System => wit::Role::System,
                Role::User => wit::Role::User,
                Role::Assistant => wit::Role::Assistant,
                Role::Tool => wit::Role::Tool,
            },
            parts: self
                .parts
                .iter()
                .map(|p| match p {
                    Part::Text { text } => wit::Part::Text(text.clone()),
                    Part::ToolCall(c) => wit::Part::ToolCall(wit::ToolCall {
                        id: c.id.clone(),
                        name: c.name.clone(),
                        arguments: c.arguments.clone(),
                    }),
                    Part::ToolResult(r) => wit::Part::ToolResult(wit::ToolResult {
                        call_id: r.call_id.clone(),
                        content: r.content.clone(),
                        is_error: r.is_error,
                    }),
                })
                .collect(),
        }
    }

    fn from_wit(m: wit::Message) -> Self {
        Message {
            role: match m.role {
                wit::Role::System => Role::System,
                wit::Role::User => Role::User,
                wit::Role::Assistant => Role::Assistant,
                wit::Role::Tool => Role::Tool,
            },
            parts: m
                .parts
                .into_iter()
                .map(|p| match p {
                    wit::Part::Text(text) => Part::Text { text },
                    wit::Part::ToolCall(c) => Part::ToolCall(ToolCall {
                        id: c.id,
                        name: c.name,
                        arguments: c.arguments,
                    }),
                    wit::Part::ToolResult(r) => Part::ToolResult(ToolResult {
                        call_id: r.call_id,
                        content: r.content,
                        is_error: r.is_error,
                    }),
                })
                .collect(),
        }
    }
}

impl Completion {
    fn from_wit(c: wit::Completion) -> Self {
        Completion {
            message: Message::from_wit(c.message),
            stop_reason: match c.stop_reason {
                wit::StopReason::EndTurn => StopReason::EndTurn,
                wit::StopReason::ToolUse => StopReason::ToolUse,
                wit::StopReason::MaxTokens => StopReason::MaxTokens,
                wit::StopReason::Refusal => StopReason::Refusal,
            },
            usage: Usage {
                input_tokens: c.usage.input_tokens,
                output_tokens: c.usage.output_tokens,
            },
        }
    }
}
