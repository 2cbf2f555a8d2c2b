//! The events of a session's log: one enum, serialised as `{"type": …, …}`.
//!
//! The log is the source of truth: a session's state is the fold of its events
//! ([`crate::state::SessionState::apply`]), so a host that restarts rebuilds every
//! run from the log and continues. `docs/events.md` documents each type for API
//! users; keep the two in step.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tack_runtime::{Message, StopReason, Usage};

/// A session's status, as `status_changed` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// No run in progress; waiting for a user message.
    Idle,
    /// A run is working (model or tools).
    Running,
    /// A run waits for approvers.
    WaitingApproval,
    /// A run waits for the user's answer (`ask_user`).
    WaitingInput,
}

impl From<Status> for tack_store::SessionStatus {
    fn from(s: Status) -> Self {
        match s {
            Status::Idle => tack_store::SessionStatus::Idle,
            Status::Running => tack_store::SessionStatus::Running,
            Status::WaitingApproval => tack_store::SessionStatus::WaitingApproval,
            Status::WaitingInput => tack_store::SessionStatus::WaitingInput,
        }
    }
}

impl Status {
    /// The status as stored and served (`waiting_approval`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Idle => "idle",
            Status::Running => "running",
            Status::WaitingApproval => "waiting_approval",
            Status::WaitingInput => "waiting_input",
        }
    }
}

/// Why a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStop {
    /// The model gave its final answer.
    EndTurn,
    /// `limits.max-steps` model calls were made.
    MaxSteps,
    /// `limits.max-cost-usd` was reached (checked before every model call).
    BudgetReached,
    /// `limits.max-tokens` were used.
    TokenLimit,
    /// `limits.timeout` passed.
    Timeout,
    /// A user interrupted the run.
    Cancelled,
    /// The model or the host failed (see the `error` event before it).
    Error,
}

/// How long an approval holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// The one call.
    Call,
    /// The same tool, for the rest of the session (until the grant expires).
    Session,
}

/// An approver's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Run the call.
    Approve,
    /// Do not run it; the reason goes to the model.
    Deny,
    /// Run it with the approver's arguments.
    Edit,
}

/// Where a tool call stands with approval, as `tool_call` and `tool_result`
/// report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalStatus {
    /// Nothing asked for approval.
    NotRequired,
    /// A session grant from an earlier approval covered it.
    SessionGrant,
    /// It waits for (or waited for) an approver.
    Required,
    /// The approval policy refused it; it was not run.
    RefusedByPolicy,
    /// An approver approved it.
    Approved,
    /// An approver approved it with changed arguments.
    Edited,
    /// An approver denied it; it was not run.
    Denied,
}

/// One event's payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventData {
    /// A user's message; starts a run when none is active.
    UserMessage {
        /// The text.
        text: String,
        /// Who sent it.
        by: String,
    },
    /// A run started (one per user message taken).
    RunStarted {
        /// Run id (ULID).
        run_id: String,
        /// Agent name.
        agent: String,
        /// Agent version.
        agent_version: u32,
        /// Model catalog name.
        model: String,
    },
    /// Something a reader of the run should know that did not stop it: the
    /// agent runs code no trusted key signed.
    Warning {
        /// The run.
        run_id: String,
        /// What.
        message: String,
    },
    /// The host restarted and picked the run up from its log.
    RunResumed {
        /// Run id.
        run_id: String,
    },
    /// The session's status changed.
    StatusChanged {
        /// The new status.
        status: Status,
    },
    /// A model call starts.
    ModelRequest {
        /// Run id.
        run_id: String,
        /// Step number (1 = first model call of the run).
        step: u32,
        /// Model catalog name.
        model: String,
        /// Messages sent.
        messages: usize,
        /// Tools offered.
        tools: usize,
    },
    /// A model call failed and will be tried again.
    ModelRetry {
        /// Run id.
        run_id: String,
        /// Step number.
        step: u32,
        /// The attempt that failed (1-based).
        attempt: u32,
        /// The provider's HTTP status, if any.
        status: Option<u16>,
        /// What went wrong.
        error: String,
        /// Wait before the next attempt.
        delay_ms: u64,
    },
    /// The model answered.
    ModelResponse {
        /// Run id.
        run_id: String,
        /// Step number.
        step: u32,
        /// Model catalog name.
        model: String,
        /// The assistant message (tool arguments redacted where a policy says so).
        message: Message,
        /// Why the model stopped.
        stop_reason: StopReason,
        /// Tokens.
        usage: Usage,
        /// Cost of this call in US dollars.
        cost_usd: f64,
        /// Wall time of the call, retries included.
        latency_ms: u64,
    },
    /// A tool call passed the gate's first look.
    ToolCall {
        /// Run id.
        run_id: String,
        /// Call id (the model's).
        call_id: String,
        /// Tool name, as the model sees it.
        tool: String,
        /// The plugin reference, or `builtin`.
        plugin: String,
        /// Arguments (redacted where a policy says so).
        arguments: Value,
        /// Destructive after central flags.
        destructive: bool,
        /// Whether the gate holds it for approval.
        approval_required: bool,
        /// The gate's first answer: `not_required`, `session_grant`, `required`
        /// or `refused_by_policy`.
        approval: ApprovalStatus,
        /// Why the gate refused the call, when it did (the reason goes to the model).
        refused: Option<String>,
        /// JSON Pointers of the arguments shown as `[redacted]` (here, in the
        /// model response, in the approval request and in the result).
        #[serde(default)]
        redacted: Vec<String>,
        /// The `run_code` call whose program made this call (code mode);
        /// its id is then `PARENT.N`, N counting the program's calls from 1.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        parent_call_id: Option<String>,
    },
    /// A tool call waits for an approver.
    ApprovalRequired {
        /// Run id.
        run_id: String,
        /// Approval id; decisions name it.
        approval_id: String,
        /// The call.
        call_id: String,
        /// Tool name.
        tool: String,
        /// Plugin reference.
        plugin: String,
        /// Arguments as the approver sees them (redacted fields replaced).
        arguments: Value,
        /// JSON Pointers of redacted arguments.
        redacted: Vec<String>,
        /// Why approval is needed.
        reason: String,
        /// Roles that may decide.
        approvers: Vec<String>,
        /// What an approval covers.
        scope: Scope,
        /// How long a session-scoped approval lasts.
        grant_ttl_s: Option<u64>,
        /// The approval policy (or `central` for the destructive default).
        policy: String,
        /// The version of the policy that asked (a digest of its settings and
        /// component; `central` for the destructive default).
        #[serde(default)]
        policy_version: String,
        /// The `run_code` call whose program waits for this approval.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        parent_call_id: Option<String>,
    },
    /// An approver decided.
    ApprovalDecided {
        /// Run id.
        run_id: String,
        /// Approval id.
        approval_id: String,
        /// The call.
        call_id: String,
        /// The verdict.
        decision: Verdict,
        /// The approver (token name).
        by: String,
        /// The approver's role.
        role: String,
        /// Reason (sent to the model on deny).
        reason: Option<String>,
        /// New arguments on edit (redacted like the request).
        arguments: Option<Value>,
        /// When a session-scoped grant expires, ms since the epoch.
        grant_expires_ms: Option<i64>,
    },
    /// The model asked the user a question (built-in `ask_user`).
    AskUser {
        /// Run id.
        run_id: String,
        /// Question id (the call id of an `ask_user` call); the answer names
        /// it.
        question_id: String,
        /// The call asking, when a tool asks mid-call (an upstream MCP
        /// server's elicitation); that call waits for the answer.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        call_id: Option<String>,
        /// The question.
        question: String,
        /// Suggested answers, if any.
        choices: Vec<String>,
    },
    /// The user answered.
    UserAnswer {
        /// Question id.
        question_id: String,
        /// The answer.
        answer: String,
        /// Who answered.
        by: String,
    },
    /// A call to an upstream MCP server that takes each user's own token
    /// waits for the session's user to authorize tack with it: open
    /// `authorization_url` in a browser. The call runs once that is done.
    McpAuthRequired {
        /// Run id.
        run_id: String,
        /// The waiting call.
        call_id: String,
        /// The upstream server (`[mcp-servers.NAME]`).
        server: String,
        /// The user whose token the call needs.
        user: String,
        /// Where that user authorizes tack.
        authorization_url: String,
    },
    /// The wait of an `mcp_auth_required` call ended: the user authorized
    /// tack (`authorized`), or the host restarted before (the call asks again,
    /// with a new address).
    McpAuthCompleted {
        /// Run id.
        run_id: String,
        /// The call that waited.
        call_id: String,
        /// The upstream server.
        server: String,
        /// Whether the user authorized tack.
        authorized: bool,
    },
    /// An upstream MCP server had a catalog model complete a prompt during
    /// a call (sampling); its tokens and cost count toward the run's.
    McpSampling {
        /// Run id.
        run_id: String,
        /// The call during which the server asked.
        call_id: String,
        /// The server.
        server: String,
        /// The catalog model that answered.
        model: String,
        /// Tokens used.
        usage: tack_runtime::Usage,
        /// Their price.
        cost_usd: f64,
        /// How long the model took.
        latency_ms: u64,
    },
    /// A tool call finished (or was refused); its content goes to the model.
    ToolResult {
        /// Run id.
        run_id: String,
        /// Call id.
        call_id: String,
        /// Tool name.
        tool: String,
        /// Plugin reference, or `builtin`.
        plugin: String,
        /// Whether the tool succeeded.
        ok: bool,
        /// What the model gets back.
        content: String,
        /// The error class (`invalid_arguments`, `denied`, `timeout`, …) when not ok.
        error_code: Option<String>,
        /// Wall time of the call.
        latency_ms: u64,
        /// The sandbox instance that ran it.
        sandbox_id: Option<String>,
        /// The call's approval status: `not_required`, `approved`, `edited`,
        /// `denied`, `session_grant`, `refused_by_policy`.
        approval: ApprovalStatus,
        /// Whether the result was replayed from the idempotency record.
        replayed: bool,
        /// The `run_code` call whose program made this call; its result
        /// went to that program, not to the model.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        parent_call_id: Option<String>,
        /// The tool's content parts, for a program's call (a program that
        /// runs again after a restart gets them back as they were).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        parts: Option<Vec<tack_runtime::Content>>,
    },
    /// Something failed.
    Error {
        /// Run id, if in a run.
        run_id: Option<String>,
        /// Error class (`model`, `model_adapter`, `tool_load`, `store`, …).
        error_type: String,
        /// What went wrong.
        message: String,
    },
    /// A user asked to stop the current run.
    Interrupt {
        /// Who.
        by: String,
    },
    /// A run ended.
    RunFinished {
        /// Run id.
        run_id: String,
        /// Why.
        stop_reason: RunStop,
        /// The final answer, if any.
        output: Option<String>,
        /// Model calls made.
        steps: u32,
        /// Prompt tokens, all calls.
        input_tokens: u64,
        /// Generated tokens, all calls.
        output_tokens: u64,
        /// Cost, all calls, US dollars.
        cost_usd: f64,
    },
}

impl EventData {
    /// The event type (`tool_call`, …).
    pub fn kind(&self) -> &'static str {
        match self {
            EventData::UserMessage { .. } => "user_message",
            EventData::RunStarted { .. } => "run_started",
            EventData::Warning { .. } => "warning",
            EventData::RunResumed { .. } => "run_resumed",
            EventData::StatusChanged { .. } => "status_changed",
            EventData::ModelRequest { .. } => "model_request",
            EventData::ModelRetry { .. } => "model_retry",
            EventData::ModelResponse { .. } => "model_response",
            EventData::ToolCall { .. } => "tool_call",
            EventData::ApprovalRequired { .. } => "approval_required",
            EventData::ApprovalDecided { .. } => "approval_decided",
            EventData::AskUser { .. } => "ask_user",
            EventData::UserAnswer { .. } => "user_answer",
            EventData::McpAuthRequired { .. } => "mcp_auth_required",
            EventData::McpAuthCompleted { .. } => "mcp_auth_completed",
            EventData::McpSampling { .. } => "mcp_sampling",
            EventData::ToolResult { .. } => "tool_result",
            EventData::Error { .. } => "error",
            EventData::Interrupt { .. } => "interrupt",
            EventData::RunFinished { .. } => "run_finished",
        }
    }

    /// The event as the store keeps it: JSON text, written straight from the
    /// event (its `type` included, which [`from_stored`](Self::from_stored) reads
    /// from the store's `kind` instead; events stored before carry no `type`).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("events serialise")
    }

    /// Read a stored event back (`kind` + `data`).
    pub fn from_stored(kind: &str, data: &Value) -> Result<EventData, serde_json::Error> {
        let mut v = data.clone();
        if let Some(map) = v.as_object_mut() {
            map.insert("type".into(), Value::String(kind.to_string()));
        }
        serde_json::from_value(v)
    }
}

/// An event as the log holds it, with its position.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LoggedEvent {
    /// ULID (the SSE `id`, for `Last-Event-ID`).
    pub id: String,
    /// Position in the session's log, from 1.
    pub seq: u64,
    /// Append time, ms since the epoch.
    pub created_ms: i64,
    /// The payload as served (redacted).
    #[serde(flatten)]
    pub data: EventData,
}

impl LoggedEvent {
    /// The length of its JSON, in bytes (for memory budgets: it serializes
    /// into a counter, allocating nothing).
    pub fn json_len(&self) -> usize {
        struct Count(usize);
        impl std::io::Write for Count {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0 += buf.len();
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let mut count = Count(0);
        let _ = serde_json::to_writer(&mut count, self);
        count.0
    }
}
