//! Upstream MCP servers, as the host connects to them (`[mcp-servers.NAME]`).
//!
//! A stdio server is started as a child process with a clean environment: the
//! variables its configuration lists (passed through from the host's), plus
//! `PATH` and `HOME`, and the secrets `secret-env` names, and nothing else of
//! the host's. It ends with its [`Upstream`] (the transport closes its stdin,
//! then it is killed). An HTTP server gets the configuration's headers and the
//! secrets `bearer-secret` and `secret-headers` name, marked sensitive, and
//! redirects are not followed.
//!
//! **Annotations are hints.** Unless the server is marked
//! `trust-annotations = true`, a tool counts as destructive unless the
//! operator's `read-only` list names it; with trust, the server's
//! `destructiveHint` (and `readOnlyHint`) decide. The operator's `destructive`
//! and `read-only` lists always win.
//!
//! What a server asks of the client mid-call goes to the call's [`Asker`]:
//! elicitations to the run's user (`elicit.rs`), sampling to the catalog
//! model the operator named (`sampling-model`; without it, sampling is not
//! offered and is refused).

// Sampling is deprecated by SEP-2577 and still part of both revisions tack
// speaks; rmcp marks its types so.
#![allow(deprecated)]

use crate::oauth::Subject;
use http::{HeaderName, HeaderValue};
use rmcp::model::{
    CallToolRequestParams, CallToolResult, ClientCapabilities, ClientConfig, ContentBlock,
    ElicitRequestParams, ElicitResult, ElicitationAction, ElicitationCapability,
    FormElicitationCapability, Implementation, ProtocolVersion, SubscriptionFilter, Tool,
    UrlElicitationCapability,
};
use rmcp::model::{
    CreateMessageRequestParams, CreateMessageResult, SamplingMessage, SamplingMessageContentBlock,
};
use rmcp::service::{
    ClientInitializeError, ClientLifecycleMode, ClientServiceExt, RoleClient, RunningService,
};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::Value;
use std::collections::HashMap;
use std::os::unix::ffi::OsStrExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tack_config::McpServerConfig;
use tack_engine::remote::{Asker, Nobody, Sampled, Sampling};
use tack_secrets::{SecretValue, Secrets};

/// How long connecting may take when the configuration does not say.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a call may take when the configuration does not say.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest JSON response read from an HTTP server; results are cut to
/// `max-result-bytes` afterwards, this only bounds what is buffered.
const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// Why an upstream server could not be used.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The configuration cannot be used as it is.
    #[error("mcp-servers.{server}: {message}")]
    Config {
        /// The server's name.
        server: String,
        /// What is wrong.
        message: String,
    },
    /// The server did not start or did not finish the handshake.
    #[error("MCP server `{server}` could not be reached: {message}")]
    Connect {
        /// The server's name.
        server: String,
        /// Why.
        message: String,
    },
    /// A request failed at the protocol level (the server answered with a
    /// JSON-RPC error, or with something that is not a result).
    #[error("MCP server `{server}`: {message}")]
    Request {
        /// The server's name.
        server: String,
        /// Why.
        message: String,
    },
    /// The connection is gone (the server exited or closed it).
    #[error("MCP server `{server}` went away: {message}")]
    Gone {
        /// The server's name.
        server: String,
        /// What was being done.
        message: String,
    },
    /// The server wants a token the gateway does not have (none yet, expired
    /// beyond refreshing, or without the scope a request needs).
    #[error("MCP server `{server}` needs authorization: {message}")]
    Authorization {
        /// The server's name.
        server: String,
        /// The server's `WWW-Authenticate` challenge, when it sent one.
        challenge: Option<String>,
        /// What happened and what to do.
        message: String,
    },
    /// The server did not answer in time (the request was cancelled).
    #[error("MCP server `{server}` did not answer {what} within {limit:?} (call-timeout)")]
    Timeout {
        /// The server's name.
        server: String,
        /// The request.
        what: String,
        /// The limit it exceeded.
        limit: Duration,
    },
}

impl UpstreamError {
    /// Whether the connection is unusable, so the next call should reconnect.
    pub fn is_connection_lost(&self) -> bool {
        matches!(
            self,
            UpstreamError::Gone { .. }
                | UpstreamError::Connect { .. }
                | UpstreamError::Authorization { .. }
        )
    }
}

/// One of an upstream server's tools, with its effective flags.
#[derive(Debug, Clone)]
pub struct UpstreamTool {
    /// As the server describes it.
    pub tool: Tool,
    /// Destructive after the annotation policy and the operator's lists.
    pub destructive: bool,
    /// Read-only after the same.
    pub read_only: bool,
}

/// What a call returned: its text, and whether the server marked it an error.
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamResult {
    /// `isError` as the server set it.
    pub is_error: bool,
    /// The text blocks, joined by newlines (other blocks are named by type).
    pub text: String,
    /// `structuredContent`, when the server gave one.
    pub structured: Option<Value>,
}

/// Counts the tool-list changes upstream servers announce
/// (`notifications/tools/list_changed`: unscoped, or on a 2026-07-28 listen
/// stream). Cheap to clone; clones share the count.
#[derive(Clone, Default)]
pub struct ChangeWatch {
    changes: Arc<AtomicU64>,
}

impl ChangeWatch {
    /// How many changes were announced so far.
    pub fn count(&self) -> u64 {
        self.changes.load(Ordering::SeqCst)
    }

    fn changed(&self, server: &str) {
        tracing::info!(server, "MCP server's tool list changed");
        self.changes.fetch_add(1, Ordering::SeqCst);
    }
}

/// Whom the calls in flight on one connection ask (see [`Upstream::call_tool`]).
type Askers = Arc<std::sync::Mutex<Vec<(u64, Arc<dyn Asker>)>>>;

/// The client side of a connection: tells the watch about list changes, and
/// puts the server's elicitations to the person behind the call in flight.
#[derive(Clone)]
struct Watcher {
    server: String,
    watch: ChangeWatch,
    askers: Askers,
    /// The catalog model that answers the server's sampling requests
    /// (`sampling-model`); none: they are refused.
    sampling: Option<String>,
}

impl Watcher {
    /// The asker of the one call in flight on this connection, if exactly
    /// one is (a server's request names no call).
    fn asker(&self) -> Option<Arc<dyn Asker>> {
        let askers = self.askers.lock().expect("askers lock");
        match askers.as_slice() {
            [(_, one)] => Some(one.clone()),
            _ => None,
        }
    }
}

impl rmcp::ClientHandler for Watcher {
    async fn on_tool_list_changed(&self, _: rmcp::service::NotificationContext<RoleClient>) {
        self.watch.changed(&self.server);
    }

    fn get_info(&self) -> ClientConfig {
        let mut capabilities = ClientCapabilities::default();
        if self.sampling.is_some() {
            capabilities.sampling = Some(Default::default());
        }
        capabilities.elicitation = Some(
            ElicitationCapability::new()
                .with_form(FormElicitationCapability::new().with_schema_validation(true))
                .with_url(UrlElicitationCapability::new()),
        );
        ClientConfig::new(
            capabilities,
            Implementation::new("tack", env!("CARGO_PKG_VERSION")),
        )
    }

    async fn create_message(
        &self,
        params: CreateMessageRequestParams,
        _: rmcp::service::RequestContext<RoleClient>,
    ) -> Result<CreateMessageResult, rmcp::ErrorData> {
        self.sample(params).await
    }

    async fn create_elicitation(
        &self,
        request: ElicitRequestParams,
        _: rmcp::service::RequestContext<RoleClient>,
    ) -> Result<ElicitResult, rmcp::ErrorData> {
        // An elicitation names no call; with one call in flight on this
        // connection it is that call's. With several, tack cannot tell
        // whose person to ask, and declines.
        match self.asker() {
            Some(asker) => Ok(crate::elicit::elicit(asker.as_ref(), &self.server, request).await),
            None => {
                tracing::warn!(
                    server = self.server,
                    "MCP server asked for input while no single call of it was in flight; declined"
                );
                Ok(ElicitResult::new(ElicitationAction::Decline))
            }
        }
    }
}

impl Watcher {
    /// A sampling request: the operator's `sampling-model` answers, billed
    /// to the run of the call in flight. Text only: images, audio and tool
    /// use in the conversation are refused.
    async fn sample(
        &self,
        params: CreateMessageRequestParams,
    ) -> Result<CreateMessageResult, rmcp::ErrorData> {
        let Some(model) = &self.sampling else {
            return Err(rmcp::ErrorData::invalid_request(
                format!(
                    "tack does not sample for this server: its operator has not set \
                     `sampling-model` in [mcp-servers.{}]",
                    self.server
                ),
                None,
            ));
        };
        let Some(asker) = self.asker() else {
            return Err(rmcp::ErrorData::invalid_request(
                "tack samples only during one call of a run, to bill it",
                None,
            ));
        };
        let mut messages = Vec::new();
        for m in params.messages {
            let mut text = Vec::new();
            for block in m.content.into_vec() {
                match block {
                    SamplingMessageContentBlock::Text(t) => text.push(t.text),
                    _ => {
                        return Err(rmcp::ErrorData::invalid_params(
                            "tack samples text only (no images, audio or tool use)",
                            None,
                        ));
                    }
                }
            }
            let role = match m.role {
                rmcp::model::Role::Assistant => tack_runtime::Role::Assistant,
                _ => tack_runtime::Role::User,
            };
            messages.push(tack_runtime::Message::text(role, text.join("\n")));
        }
        let request = Sampling {
            model: model.clone(),
            system: params.system_prompt,
            messages,
            max_tokens: params.max_tokens,
            temperature: params.temperature,
        };
        let sampled = asker
            .sample(&self.server, request)
            .await
            .map_err(|e| rmcp::ErrorData::internal_error(e.message, None))?;
        Ok(
            CreateMessageResult::new(SamplingMessage::assistant_text(sampled.text), sampled.model)
                .with_stop_reason(sampled.stop_reason),
        )
    }
}

/// Takes a call's asker off its connection's list when the call ends.
struct Asking<'a> {
    askers: &'a Askers,
    id: u64,
}

impl Drop for Asking<'_> {
    fn drop(&mut self) {
        self.askers
            .lock()
            .expect("askers lock")
            .retain(|(id, _)| *id != self.id);
    }
}

static CALLS: AtomicU64 = AtomicU64::new(0);

/// A connected upstream MCP server.
pub struct Upstream {
    name: String,
    config: McpServerConfig,
    /// The user whose token the connection carries (per-user delegation).
    subject: Option<String>,
    askers: Askers,
    service: RunningService<RoleClient, Watcher>,
}

impl Upstream {
    /// Connect to server `name` as `config` says (and run the handshake, in
    /// whichever protocol era the server speaks). The secrets it names are
    /// revealed from `secrets` now, so a rotated one takes effect on the next
    /// connection.
    pub async fn connect(
        name: &str,
        config: &McpServerConfig,
        secrets: Option<&Secrets>,
    ) -> Result<Upstream, UpstreamError> {
        Upstream::connect_watched(name, config, secrets, ChangeWatch::default(), Subject::Host)
            .await
    }

    /// [`connect`](Self::connect), counting the server's tool-list changes
    /// in `watch`, with `subject`'s OAuth token when the server takes OAuth
    /// tokens.
    pub async fn connect_watched(
        name: &str,
        config: &McpServerConfig,
        secrets: Option<&Secrets>,
        watch: ChangeWatch,
        subject: Subject<'_>,
    ) -> Result<Upstream, UpstreamError> {
        let askers = Askers::default();
        let watcher = Watcher {
            server: name.to_string(),
            watch: watch.clone(),
            askers: askers.clone(),
            sampling: config.sampling_model.clone(),
        };
        let fail = |message: String| UpstreamError::Connect {
            server: name.to_string(),
            message,
        };
        let limit = config.connect_timeout.map_or(CONNECT_TIMEOUT, |d| d.0);
        let watcher = &watcher;
        let attempt = |lifecycle| async move {
            tokio::time::timeout(
                limit,
                start(name, config, secrets, subject, watcher, lifecycle, limit),
            )
            .await
            .map_err(|_| fail(format!("no handshake within {limit:?} (connect-timeout)")))?
        };
        let auto = ClientLifecycleMode::Auto {
            preferred_versions: vec![ProtocolVersion::V_2026_07_28],
            legacy_version: None,
        };
        let service = match attempt(auto).await? {
            Ok(s) => s,
            // A server of the older era that answers `server/discover` with
            // some result instead of an error: greet it the older way.
            Err(
                e @ (ClientInitializeError::ExpectedInitResult(_)
                | ClientInitializeError::ExpectedInitResponse(_)),
            ) => {
                tracing::info!(
                    server = name,
                    "the server answered server/discover wrongly ({e}); trying the 2025-11-25 \
                     handshake"
                );
                attempt(ClientLifecycleMode::Initialize)
                    .await?
                    .map_err(|e| handshake_error(name, config, subject, e))?
            }
            Err(e) => return Err(handshake_error(name, config, subject, e)),
        };
        // In the stateless era, list changes come on a listen stream the client
        // opens; a server that offers none simply sends nothing.
        let stateless = service
            .peer_info()
            .is_some_and(|i| i.protocol_version == ProtocolVersion::V_2026_07_28);
        if stateless {
            let peer = service.peer().clone();
            let server = name.to_string();
            tokio::spawn(async move {
                let filter = SubscriptionFilter::builder().tools_list_changed().build();
                let Ok(mut changes) = peer.listen(filter).await else {
                    return;
                };
                while let Ok(Some(_)) = changes.next().await {
                    watch.changed(&server);
                }
            });
        }
        Ok(Upstream {
            name: name.to_string(),
            config: config.clone(),
            subject: match subject {
                Subject::Host => None,
                Subject::User(u) => Some(u.to_string()),
            },
            askers,
            service,
        })
    }

    /// Whether the connection has ended (the server exited or closed it).
    pub fn is_closed(&self) -> bool {
        self.service.is_closed()
    }

    /// `e`, from request `what`, as an [`UpstreamError`].
    fn service_error(&self, what: &str, e: rmcp::ServiceError) -> UpstreamError {
        let server = self.name.clone();
        if e.is_authorization_required() || e.auth_challenge().is_some() {
            return UpstreamError::Authorization {
                server,
                challenge: e.auth_challenge().map(str::to_string),
                message: format!(
                    "{what} was refused: {}{}",
                    refusal(e.auth_challenge()),
                    login_hint(&self.name, &self.config, self.subject.as_deref())
                ),
            };
        }
        match e {
            rmcp::ServiceError::TransportClosed | rmcp::ServiceError::TransportSend(_) => {
                UpstreamError::Gone {
                    server,
                    message: format!("{what} was not answered ({e})"),
                }
            }
            rmcp::ServiceError::Timeout { timeout } => UpstreamError::Timeout {
                server,
                what: what.into(),
                limit: timeout,
            },
            rmcp::ServiceError::McpError(e) => UpstreamError::Request {
                server,
                message: format!("{what} failed: {} (JSON-RPC error {})", e.message, e.code.0),
            },
            e => UpstreamError::Request {
                server,
                message: format!("{what} failed: {e}"),
            },
        }
    }

    fn timed_out(&self, what: &str, limit: Duration) -> UpstreamError {
        UpstreamError::Timeout {
            server: self.name.clone(),
            what: what.into(),
            limit,
        }
    }

    /// The server's tools, with their effective flags.
    pub async fn tools(&self) -> Result<Vec<UpstreamTool>, UpstreamError> {
        let limit = self.call_timeout();
        let tools = tokio::time::timeout(limit, self.service.list_all_tools())
            .await
            .map_err(|_| self.timed_out("tools/list", limit))?
            .map_err(|e| self.service_error("tools/list", e))?;
        Ok(tools.into_iter().map(|t| self.flags(t)).collect())
    }

    fn call_timeout(&self) -> Duration {
        self.config.call_timeout.map_or(CALL_TIMEOUT, |d| d.0)
    }

    /// `tool` with the annotation policy and the operator's lists applied.
    fn flags(&self, tool: Tool) -> UpstreamTool {
        let c = &self.config;
        let name = tool.name.as_ref();
        let (destructive, read_only) = if c.destructive.iter().any(|t| t == name) {
            (true, false)
        } else if c.read_only.iter().any(|t| t == name) {
            (false, true)
        } else if c.trust_annotations {
            let a = tool.annotations.clone().unwrap_or_default();
            let read_only = a.read_only_hint.unwrap_or(false);
            // The specification's defaults: not read-only, and then destructive.
            (!read_only && a.destructive_hint.unwrap_or(true), read_only)
        } else {
            (true, false)
        };
        UpstreamTool {
            tool,
            destructive,
            read_only,
        }
    }

    /// Call `tool` with `arguments` (a JSON object), with nobody to answer
    /// the server's questions.
    pub async fn call(
        &self,
        tool: &str,
        arguments: Value,
    ) -> Result<UpstreamResult, UpstreamError> {
        let nobody = Arc::new(Nobody("nobody answers questions of this call"));
        self.call_asking(tool, arguments, nobody).await
    }

    /// [`call`](Self::call), with what the server asks mid-call going to
    /// `asker`.
    pub async fn call_asking(
        &self,
        tool: &str,
        arguments: Value,
        asker: Arc<dyn Asker>,
    ) -> Result<UpstreamResult, UpstreamError> {
        Ok(result_of(self.call_tool(tool, arguments, asker).await?))
    }

    /// Call `tool` with `arguments` (a JSON object), returning the result as
    /// the server gave it. What the server asks mid-call (elicitation) goes
    /// to `asker`. A call that takes longer than `call-timeout` is cancelled
    /// (the server is told); time spent waiting for a person's answer does
    /// not count.
    pub async fn call_tool(
        &self,
        tool: &str,
        arguments: Value,
        asker: Arc<dyn Asker>,
    ) -> Result<CallToolResult, UpstreamError> {
        let id = CALLS.fetch_add(1, Ordering::SeqCst);
        let clock = Arc::new(AskClock {
            asker,
            open: AtomicU64::new(0),
            answered: AtomicU64::new(0),
        });
        self.askers
            .lock()
            .expect("askers lock")
            .push((id, clock.clone()));
        let _asking = Asking {
            askers: &self.askers,
            id,
        };
        let Value::Object(arguments) = arguments else {
            return Err(UpstreamError::Request {
                server: self.name.clone(),
                message: format!("the arguments of `{tool}` must be a JSON object"),
            });
        };
        let params = CallToolRequestParams::new(tool.to_string()).with_arguments(arguments);
        let limit = self.call_timeout();
        let what = format!("tools/call `{tool}`");
        // Time spent waiting for a person's answer does not count: while a
        // question is open, or after one was answered, the clock restarts.
        let call = self.service.call_tool(params);
        tokio::pin!(call);
        let mut answered = clock.answered.load(Ordering::SeqCst);
        let mut deadline = tokio::time::Instant::now() + limit;
        loop {
            tokio::select! {
                r = &mut call => return r.map_err(|e| self.service_error(&what, e)),
                _ = tokio::time::sleep_until(deadline) => {
                    let now_answered = clock.answered.load(Ordering::SeqCst);
                    if clock.open.load(Ordering::SeqCst) == 0 && now_answered == answered {
                        return Err(self.timed_out(&what, limit));
                    }
                    tracing::debug!(
                        server = %self.name,
                        tool,
                        "call-timeout passed while a person was asked: the call's clock restarts"
                    );
                    answered = now_answered;
                    deadline = tokio::time::Instant::now() + limit;
                }
            }
        }
    }
}

/// A call's asker, counting the questions open and answered, so the call's
/// timeout can leave out the time a person takes.
struct AskClock {
    asker: Arc<dyn Asker>,
    open: AtomicU64,
    answered: AtomicU64,
}

impl AskClock {
    /// `answer`, counted as a question open until it is answered.
    async fn counted<T>(&self, answer: impl std::future::Future<Output = T>) -> T {
        self.open.fetch_add(1, Ordering::SeqCst);
        let answer = answer.await;
        self.answered.fetch_add(1, Ordering::SeqCst);
        self.open.fetch_sub(1, Ordering::SeqCst);
        answer
    }
}

impl Asker for AskClock {
    fn ask(
        &self,
        question: String,
        choices: Vec<String>,
    ) -> futures_util::future::BoxFuture<'_, Result<String, tack_engine::remote::RemoteError>> {
        Box::pin(self.counted(self.asker.ask(question, choices)))
    }

    fn sample<'a>(
        &'a self,
        server: &'a str,
        request: Sampling,
    ) -> futures_util::future::BoxFuture<'a, Result<Sampled, tack_engine::remote::RemoteError>>
    {
        Box::pin(self.counted(self.asker.sample(server, request)))
    }
}

/// Start server `name` as `config` says (a child process, or a streamable
/// HTTP transport with its credentials) and run the handshake `lifecycle`.
/// The outer error: the server could not be started; the inner one: its
/// handshake failed.
async fn start(
    name: &str,
    config: &McpServerConfig,
    secrets: Option<&Secrets>,
    subject: Subject<'_>,
    watcher: &Watcher,
    lifecycle: ClientLifecycleMode,
    limit: Duration,
) -> Result<Result<RunningService<RoleClient, Watcher>, ClientInitializeError>, UpstreamError> {
    let fail = |message: String| UpstreamError::Connect {
        server: name.to_string(),
        message,
    };
    match (&config.command, &config.url) {
        (Some(program), _) => {
            let mut command = tokio::process::Command::new(program);
            command.args(&config.args).env_clear();
            for var in ["PATH", "HOME"]
                .iter()
                .map(|v| v.to_string())
                .chain(config.env.iter().cloned())
            {
                if let Ok(value) = std::env::var(&var) {
                    command.env(&var, value);
                }
            }
            for (var, secret) in &config.secret_env {
                let value = reveal(name, secrets, secret, "secret-env").await?;
                command.env(var, std::ffi::OsStr::from_bytes(value.expose()));
            }
            let transport = rmcp::transport::TokioChildProcess::new(command)
                .map_err(|e| fail(format!("cannot start `{program}`: {e}")))?;
            Ok(watcher
                .clone()
                .serve_with_lifecycle(transport, lifecycle)
                .await)
        }
        (None, Some(url)) => {
            let (transport, client) = http_transport(name, config, url, secrets, limit).await?;
            Ok(if config.oauth.is_some() {
                let (manager, _) = crate::oauth::manager(name, config, secrets, subject).await?;
                let client = rmcp::transport::AuthClient::new(client, manager);
                let transport = StreamableHttpClientTransport::with_client(client, transport);
                watcher
                    .clone()
                    .serve_with_lifecycle(transport, lifecycle)
                    .await
            } else {
                let transport = StreamableHttpClientTransport::with_client(client, transport);
                watcher
                    .clone()
                    .serve_with_lifecycle(transport, lifecycle)
                    .await
            })
        }
        (None, None) => Err(UpstreamError::Config {
            server: name.to_string(),
            message: "give either `command` (stdio) or `url` (streamable HTTP)".into(),
        }),
    }
}

/// The value of secret `secret`, which `field` of server `server` names.
async fn reveal(
    server: &str,
    secrets: Option<&Secrets>,
    secret: &str,
    field: &str,
) -> Result<SecretValue, UpstreamError> {
    let config = |message: String| UpstreamError::Config {
        server: server.to_string(),
        message,
    };
    let secrets = secrets.ok_or_else(|| {
        config(format!(
            "{field} names secret `{secret}`, and this host has no master key to open \
             secrets with (set TACK_MASTER_KEY)"
        ))
    })?;
    secrets
        .reveal(secret)
        .await
        .map_err(|e| config(format!("{field}: secret `{secret}` cannot be read: {e}")))?
        .ok_or_else(|| {
            config(format!(
                "{field} names secret `{secret}`, which is not set; store it with \
                 `tack secret set {secret}`"
            ))
        })
}

/// [`reveal`], as text.
pub(crate) async fn reveal_text(
    server: &str,
    secrets: Option<&Secrets>,
    secret: &str,
    field: &str,
) -> Result<zeroize::Zeroizing<String>, UpstreamError> {
    let value = reveal(server, secrets, secret, field).await?;
    let text = std::str::from_utf8(value.expose()).map_err(|_| UpstreamError::Config {
        server: server.to_string(),
        message: format!("{field}: secret `{secret}` is not text"),
    })?;
    Ok(zeroize::Zeroizing::new(text.to_string()))
}

/// The streamable HTTP transport to `url`, with the configuration's headers
/// and credentials on every request.
async fn http_transport(
    name: &str,
    config: &McpServerConfig,
    url: &str,
    secrets: Option<&Secrets>,
    connect_timeout: Duration,
) -> Result<(StreamableHttpClientTransportConfig, reqwest::Client), UpstreamError> {
    let bad = |field: &str, header: &str, why: String| UpstreamError::Config {
        server: name.to_string(),
        message: format!("{field}.{header}: {why}"),
    };
    let mut headers = HashMap::new();
    for (header, value) in &config.headers {
        let h = HeaderName::try_from(header.as_str())
            .map_err(|e| bad("headers", header, e.to_string()))?;
        let v = HeaderValue::try_from(value.as_str())
            .map_err(|e| bad("headers", header, e.to_string()))?;
        headers.insert(h, v);
    }
    for (header, secret) in &config.secret_headers {
        let h = HeaderName::try_from(header.as_str())
            .map_err(|e| bad("secret-headers", header, e.to_string()))?;
        let value = reveal(name, secrets, secret, "secret-headers").await?;
        let mut v = HeaderValue::from_bytes(value.expose()).map_err(|_| {
            bad(
                "secret-headers",
                header,
                format!("secret `{secret}` is not a valid header value"),
            )
        })?;
        v.set_sensitive(true);
        headers.insert(h, v);
    }
    let mut transport = StreamableHttpClientTransportConfig::with_uri(url)
        .custom_headers(headers)
        .max_json_response_size(MAX_RESPONSE_BYTES);
    if let Some(secret) = &config.bearer_secret {
        let token = reveal_text(name, secrets, secret, "bearer-secret").await?;
        transport = transport.auth_header(token.as_str());
    }
    // No redirects: a credential is for the server named, not wherever it
    // points.
    let client = reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| UpstreamError::Connect {
            server: name.to_string(),
            message: format!("no HTTP client: {e}"),
        })?;
    Ok((transport, client))
}

/// A failed handshake as an [`UpstreamError`] (an authorization challenge
/// named as such, with what to do about it).
fn handshake_error(
    name: &str,
    config: &McpServerConfig,
    subject: Subject<'_>,
    e: ClientInitializeError,
) -> UpstreamError {
    if e.is_authorization_required() || e.auth_challenge().is_some() {
        let user = match subject {
            Subject::Host => None,
            Subject::User(u) => Some(u),
        };
        let hint = if config.oauth.is_some() {
            login_hint(name, config, user)
        } else {
            "; give a token with `bearer-secret` or `secret-headers`, or an \
             `[mcp-servers.NAME.oauth]` table"
                .to_string()
        };
        UpstreamError::Authorization {
            server: name.to_string(),
            challenge: e.auth_challenge().map(str::to_string),
            message: format!(
                "the handshake was refused: {}{hint}",
                refusal(e.auth_challenge())
            ),
        }
    } else {
        UpstreamError::Connect {
            server: name.to_string(),
            message: e.to_string(),
        }
    }
}

/// Why a server refused a request, from its `WWW-Authenticate` challenge
/// (which names no secret: a scope, an error code, a metadata address).
fn refusal(challenge: Option<&str>) -> String {
    match challenge {
        Some(c) if c.contains("insufficient_scope") => {
            format!("the token lacks a scope the server asks for (WWW-Authenticate: {c})")
        }
        Some(c) => format!("no valid token (WWW-Authenticate: {c})"),
        None => "no valid token, and no token could be had without a login".into(),
    }
}

/// What to do about a refused token.
fn login_hint(name: &str, config: &McpServerConfig, user: Option<&str>) -> String {
    match (&config.oauth, user) {
        (None, _) => String::new(),
        (Some(_), None) => format!("; authorize the host with `tack mcp login {name}`"),
        (Some(_), Some(user)) => format!("; user `{user}` has to authorize tack for it"),
    }
}

fn result_of(r: CallToolResult) -> UpstreamResult {
    let text = r
        .content
        .iter()
        .map(|b| match b {
            ContentBlock::Text(t) => t.text.clone(),
            other => format!("[{} content]", block_kind(other)),
        })
        .collect::<Vec<_>>()
        .join("\n");
    UpstreamResult {
        is_error: r.is_error.unwrap_or(false),
        text,
        structured: r.structured_content,
    }
}

fn block_kind(b: &ContentBlock) -> &'static str {
    match b {
        ContentBlock::Text(_) => "text",
        ContentBlock::Image(_) => "image",
        ContentBlock::Audio(_) => "audio",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmcp::ClientHandler;

    fn watcher(sampling: Option<&str>) -> Watcher {
        Watcher {
            server: "notes".into(),
            watch: ChangeWatch::default(),
            askers: Askers::default(),
            sampling: sampling.map(str::to_string),
        }
    }

    fn request() -> CreateMessageRequestParams {
        serde_json::from_value(serde_json::json!({
            "messages": [{"role": "user", "content": {"type": "text", "text": "hi"}}],
            "maxTokens": 10
        }))
        .unwrap()
    }

    #[tokio::test]
    async fn sampling_is_refused_without_a_model_or_outside_a_single_call() {
        let e = watcher(None).sample(request()).await.unwrap_err();
        assert!(
            e.message
                .contains("has not set `sampling-model` in [mcp-servers.notes]"),
            "{e:?}"
        );
        assert!(
            watcher(None).get_info().capabilities.sampling.is_none(),
            "not offered either"
        );
        let w = watcher(Some("demo"));
        assert!(w.get_info().capabilities.sampling.is_some());
        let e = w.sample(request()).await.unwrap_err();
        assert!(e.message.contains("only during one call of a run"), "{e:?}");
    }
}
