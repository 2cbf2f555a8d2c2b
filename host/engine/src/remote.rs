//! Tools that live outside tack (upstream MCP servers), as the engine uses
//! them. The host's gateway implements [`ToolServers`] and is handed to the
//! engine like its [`ComponentSource`](crate::ComponentSource); an agent's
//! `mcp-servers` resolve through it to [`RemoteTool`]s, which the loop gates,
//! logs, traces and claims exactly like sandboxed tools. The engine never
//! speaks MCP itself.

use futures_util::future::BoxFuture;
use serde_json::Value;
use std::sync::Arc;
use tack_runtime::{CallContext, Content, ToolDescriptor};

/// The servers the host configuration names (`[mcp-servers.*]`).
pub trait ToolServers: Send + Sync {
    /// The tools server `name` offers agents: after the host's filters, each
    /// with its effective flags in its descriptor and named as the server
    /// names it.
    fn tools<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Vec<RemoteEntry>, RemoteError>>;

    /// A number that changes when any server's tool list may have changed
    /// (a `list_changed` notification): agents resolved before are resolved
    /// again.
    fn revision(&self) -> u64 {
        0
    }

    /// Finish an authorization a call waits for (see
    /// [`RemoteTool::authorization`]) with the address the user's browser was
    /// sent back to.
    fn complete_authorization<'a>(
        &'a self,
        _callback_url: &'a str,
    ) -> BoxFuture<'a, Result<CompletedAuthorization, RemoteError>> {
        Box::pin(async {
            Err(RemoteError::new(
                "not_found",
                "this host has started no authorization",
            ))
        })
    }
}

/// A user must authorize tack with an upstream server before a call runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationNeeded {
    /// The server.
    pub server: String,
    /// The user whose token the call needs.
    pub user: String,
    /// Where that user authorizes tack.
    pub url: String,
}

/// An authorization that completed, and the calls that waited for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletedAuthorization {
    /// The server.
    pub server: String,
    /// The user who authorized tack.
    pub user: String,
    /// The waiting calls: (session id, call id).
    pub waiters: Vec<(String, String)>,
    /// Why the authorization failed (the code was refused, say), if it did:
    /// then the waiting calls ask again.
    pub failed: Option<String>,
}

/// One tool of a server, ready to call.
#[derive(Clone)]
pub struct RemoteEntry {
    /// As the server describes it, with the host's flags applied.
    pub descriptor: ToolDescriptor,
    /// Destructive after the annotation policy and the operator's lists.
    pub destructive: bool,
    /// Where its calls go.
    pub tool: Arc<dyn RemoteTool>,
}

/// A tool the host reaches on a model's behalf.
pub trait RemoteTool: Send + Sync {
    /// Whether `arguments` fit the tool's input schema (checked before every
    /// call, and on an approver's edited arguments before they are accepted).
    fn check_arguments(&self, arguments: &Value) -> Result<(), RemoteError>;

    /// Whether a call in `ctx` may go now, or must wait for its user to
    /// authorize tack with the server first (a server that takes each user's
    /// own token, and a user without one); then the call waits, and
    /// [`ToolServers::complete_authorization`] names it when that is done.
    fn authorization<'a>(
        &'a self,
        _ctx: &'a CallContext,
    ) -> BoxFuture<'a, Result<Option<AuthorizationNeeded>, RemoteError>> {
        Box::pin(async { Ok(None) })
    }

    /// Call it with `arguments` (already checked). `Ok`: the parts the model
    /// reads. `Err`: the tool's own error or a failure to reach it. A tool
    /// that needs a person's input mid-call (an MCP elicitation) puts its
    /// question to `asker`.
    fn call<'a>(
        &'a self,
        arguments: &'a Value,
        ctx: &'a CallContext,
        asker: Arc<dyn Asker>,
    ) -> BoxFuture<'a, Result<Vec<Content>, RemoteError>>;
}

/// Whom a remote tool asks when it needs a person's input mid-call (in a
/// run, the session's user: an `ask_user` event answered through the API),
/// or a model's (sampling, from the host's catalog, billed to the run).
pub trait Asker: Send + Sync {
    /// Put `question` (with suggested `choices`, possibly none) and wait for
    /// the answer. Fails when the run is interrupted or nobody can answer.
    fn ask(
        &self,
        question: String,
        choices: Vec<String>,
    ) -> BoxFuture<'_, Result<String, RemoteError>>;

    /// Have a catalog model complete `request` for server `server`.
    fn sample<'a>(
        &'a self,
        server: &'a str,
        request: Sampling,
    ) -> BoxFuture<'a, Result<Sampled, RemoteError>> {
        let _ = (server, request);
        Box::pin(async {
            Err(RemoteError::new(
                "unanswerable",
                "no run to bill a model's answer to",
            ))
        })
    }
}

/// A completion an upstream server asks of a model.
#[derive(Debug, Clone, PartialEq)]
pub struct Sampling {
    /// The catalog model to answer (`sampling-model`).
    pub model: String,
    /// The system prompt.
    pub system: Option<String>,
    /// The conversation.
    pub messages: Vec<tack_runtime::Message>,
    /// Most tokens to generate.
    pub max_tokens: u32,
    /// Sampling temperature.
    pub temperature: Option<f32>,
}

/// What the model answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sampled {
    /// Its text.
    pub text: String,
    /// The provider's model id.
    pub model: String,
    /// Why it stopped: `endTurn`, `maxTokens` or `refusal`.
    pub stop_reason: String,
}

/// An [`Asker`] for calls with nobody behind them to answer (calls from MCP
/// clients, operators' calls): every question fails, saying why.
pub struct Nobody(pub &'static str);

impl Asker for Nobody {
    fn ask(&self, _: String, _: Vec<String>) -> BoxFuture<'_, Result<String, RemoteError>> {
        Box::pin(async move { Err(RemoteError::new("unanswerable", self.0)) })
    }
}

/// Why a remote tool gave no result, with the code the `tool_result` event
/// carries.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct RemoteError {
    /// `invalid_arguments`, `tool_error` (the tool said it failed),
    /// `unavailable` (the server could not be reached or went away),
    /// `timeout`, or `protocol` (the server answered wrongly).
    pub code: &'static str,
    /// What happened, for the model and the operator.
    pub message: String,
}

impl RemoteError {
    /// An error with `code` saying `message`.
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        RemoteError {
            code,
            message: message.into(),
        }
    }
}
