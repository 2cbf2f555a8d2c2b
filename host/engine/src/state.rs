//! A session's state as the fold of its event log.
//!
//! [`SessionState::apply`] is the only way state changes, both while a run goes
//! and when a host restarts and replays the log; [`SessionState::next`] says what
//! the run must do next. The runner and the API both work from this one state.

use crate::events::{ApprovalStatus, EventData, LoggedEvent, RunStop, Scope, Status, Verdict};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use tack_runtime::{Message, Part, Role, ToolResult};

/// Where a tool call stands with its approval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApprovalState {
    /// Not looked at by the gate yet (a host restarted in between).
    Ungated,
    /// No approval needed (`session_grant` when a session grant covered it).
    NotRequired(ApprovalStatus),
    /// Waiting for approval `id`.
    Pending(String),
    /// Approved (`approved` or `edited`).
    Approved(ApprovalStatus),
    /// Refused, by an approver or a policy; the reason goes to the model.
    Denied {
        /// Why.
        reason: String,
        /// `denied` or `refused_by_policy`.
        status: ApprovalStatus,
    },
}

/// One tool call of the current step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallState {
    /// The model's call id.
    pub call_id: String,
    /// Tool name as the model sees it.
    pub tool: String,
    /// Arguments, JSON text (the approver's, after an edit).
    pub arguments: String,
    /// Plugin reference (`builtin` for host tools), once gated.
    pub plugin: String,
    /// Destructive after central flags, once gated.
    pub destructive: bool,
    /// Approval state.
    pub approval: ApprovalState,
    /// Redacted argument pointers.
    pub redacted: Vec<String>,
    /// For `ask_user`: the question was put.
    pub asked: bool,
    /// For `ask_user`: the answer.
    pub answer: Option<String>,
    /// The upstream server whose per-user authorization the call waits for
    /// (`mcp_auth_required` without its `mcp_auth_completed`).
    pub awaiting_auth: Option<String>,
    /// The result, once there is one.
    pub result: Option<ToolResult>,
}

impl CallState {
    /// Whether the gate still has events to write for this call: none yet, or
    /// the `tool_call` but not its `approval_required` (a host stopped between).
    pub fn needs_gate(&self) -> bool {
        match &self.approval {
            ApprovalState::Ungated => true,
            ApprovalState::Pending(id) => id.is_empty(),
            _ => false,
        }
    }
}

/// A tool call a `run_code` program made (code mode). Its events name the
/// program's call as parent; its result went to the program, so it is kept
/// apart from the step's calls until the step's results go to the model.
#[derive(Debug, Clone, PartialEq)]
pub struct CodeCallState {
    /// The `run_code` call.
    pub parent: String,
    /// Tool name as the model would call it.
    pub tool: String,
    /// Plugin reference.
    pub plugin: String,
    /// The arguments the program gave.
    pub requested: serde_json::Value,
    /// Arguments, JSON text (the approver's, after an edit).
    pub arguments: String,
    /// Redacted argument pointers.
    pub redacted: Vec<String>,
    /// Destructive after central flags.
    pub destructive: bool,
    /// Approval state.
    pub approval: ApprovalState,
    /// The logged result, once there is one.
    pub result: Option<CodeCallResult>,
}

/// A program's call that ended, as its `tool_result` logged it.
#[derive(Debug, Clone, PartialEq)]
pub struct CodeCallResult {
    /// Whether the tool succeeded.
    pub ok: bool,
    /// Its content as text.
    pub content: String,
    /// Its content parts, where they say more than `content`.
    pub parts: Option<Vec<tack_runtime::Content>>,
    /// The error class when not ok.
    pub error_code: Option<String>,
}

/// A pending or decided approval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approval {
    /// Approval id.
    pub id: String,
    /// The call it holds.
    pub call_id: String,
    /// Plugin reference.
    pub plugin: String,
    /// Tool name.
    pub tool: String,
    /// Roles that may decide.
    pub approvers: Vec<String>,
    /// What an approval covers.
    pub scope: Scope,
    /// Session grant length.
    pub grant_ttl_s: Option<u64>,
    /// Redacted argument pointers.
    pub redacted: Vec<String>,
    /// The verdict, once decided.
    pub decided: Option<Verdict>,
    /// Whether its run ended (interrupted, out of time, failed) before anyone
    /// decided: it can no longer be decided.
    pub closed: bool,
}

/// A session-scoped grant: calls of `tool` of `plugin` need no approval until
/// `expires_ms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionGrant {
    /// Plugin reference.
    pub plugin: String,
    /// The tool's name as the model calls it (`payments__issue_refund`).
    pub tool: String,
    /// Expiry, ms since the epoch.
    pub expires_ms: i64,
}

/// The run in progress.
#[derive(Debug, Clone, PartialEq)]
pub struct RunState {
    /// Run id.
    pub run_id: String,
    /// Start time, ms since the epoch.
    pub started_ms: i64,
    /// Model calls answered.
    pub steps: u32,
    /// Prompt tokens so far.
    pub input_tokens: u64,
    /// Generated tokens so far.
    pub output_tokens: u64,
    /// Cost so far.
    pub cost_usd: f64,
    /// Tool calls of the current step.
    pub calls: Vec<CallState>,
    /// Questions tools put to the user mid-call and not yet answered:
    /// question id -> the asking call's id.
    pub asks: BTreeMap<String, String>,
    /// Calls the current step's programs made, by call id (`PARENT.N`).
    pub code_calls: BTreeMap<String, CodeCallState>,
}

/// What the run must do next.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    /// Nothing: no run, no message waiting.
    Idle,
    /// Start a run for the next queued message.
    StartRun,
    /// Put these calls (indexes into `calls`) through the gate.
    Gate(Vec<usize>),
    /// Run (or refuse) these calls.
    Execute(Vec<usize>),
    /// Wait for people.
    Wait(Status),
    /// Ask the model.
    ModelCall,
    /// End the run.
    Finish(RunStop, Option<String>),
}

/// A session's state.
#[derive(Debug, Clone, Default)]
pub struct SessionState {
    /// The session's last reported status.
    pub status: Option<Status>,
    /// The conversation, all runs.
    pub messages: Vec<Message>,
    /// The run in progress.
    pub run: Option<RunState>,
    /// User messages not yet taken by a run.
    pub queued: VecDeque<String>,
    /// Approvals by id.
    pub approvals: BTreeMap<String, Approval>,
    /// Session grants.
    pub grants: Vec<SessionGrant>,
    /// A stop was asked for the current run.
    pub interrupted: bool,
    /// Skills loaded with `load_skill`.
    pub loaded_skills: BTreeSet<String>,
    /// Sequence number of the last event applied.
    pub last_seq: u64,
}

impl SessionState {
    /// Apply one event (its unredacted form where the log keeps one).
    pub fn apply(&mut self, event: &LoggedEvent) {
        self.last_seq = event.seq;
        match &event.data {
            EventData::UserMessage { text, .. } => self.queued.push_back(text.clone()),
            EventData::RunStarted { run_id, .. } => {
                if let Some(text) = self.queued.pop_front() {
                    self.messages.push(Message::text(Role::User, text));
                }
                self.interrupted = false;
                self.run = Some(RunState {
                    run_id: run_id.clone(),
                    started_ms: event.created_ms,
                    steps: 0,
                    input_tokens: 0,
                    output_tokens: 0,
                    cost_usd: 0.0,
                    calls: Vec::new(),
                    asks: BTreeMap::new(),
                    code_calls: BTreeMap::new(),
                });
            }
            EventData::StatusChanged { status } => self.status = Some(*status),
            EventData::ModelResponse {
                step,
                message,
                usage,
                cost_usd,
                ..
            } => {
                self.messages.push(message.clone());
                if let Some(run) = &mut self.run {
                    run.steps = *step;
                    // Saturating: a provider's counts are not trusted to be sane.
                    run.input_tokens = run.input_tokens.saturating_add(usage.input_tokens);
                    run.output_tokens = run.output_tokens.saturating_add(usage.output_tokens);
                    run.cost_usd += cost_usd;
                    run.code_calls.clear();
                    run.calls = message
                        .tool_calls()
                        .map(|c| CallState {
                            call_id: c.id.clone(),
                            tool: c.name.clone(),
                            arguments: c.arguments.clone(),
                            plugin: String::new(),
                            destructive: false,
                            approval: ApprovalState::Ungated,
                            redacted: Vec::new(),
                            asked: false,
                            answer: None,
                            awaiting_auth: None,
                            result: None,
                        })
                        .collect();
                }
            }
            EventData::ToolCall {
                call_id,
                tool,
                plugin,
                arguments,
                destructive,
                approval,
                refused,
                redacted,
                parent_call_id: Some(parent),
                ..
            } => {
                if let Some(run) = &mut self.run {
                    let approval = first_look(refused, *approval);
                    run.code_calls.insert(
                        call_id.clone(),
                        CodeCallState {
                            parent: parent.clone(),
                            tool: tool.clone(),
                            plugin: plugin.clone(),
                            requested: arguments.clone(),
                            arguments: match arguments {
                                serde_json::Value::String(raw) => raw.clone(),
                                other => other.to_string(),
                            },
                            redacted: redacted.clone(),
                            destructive: *destructive,
                            approval,
                            result: None,
                        },
                    );
                }
            }
            EventData::ToolCall {
                call_id,
                plugin,
                destructive,
                approval,
                refused,
                redacted,
                ..
            } => {
                if let Some(c) = self.call_mut(call_id) {
                    c.plugin = plugin.clone();
                    c.redacted = redacted.clone();
                    c.destructive = *destructive;
                    if c.approval == ApprovalState::Ungated {
                        c.approval = first_look(refused, *approval);
                    }
                }
            }
            EventData::ApprovalRequired {
                approval_id,
                call_id,
                tool,
                plugin,
                redacted,
                approvers,
                scope,
                grant_ttl_s,
                ..
            } => {
                self.approvals.insert(
                    approval_id.clone(),
                    Approval {
                        id: approval_id.clone(),
                        call_id: call_id.clone(),
                        plugin: plugin.clone(),
                        tool: tool.clone(),
                        approvers: approvers.clone(),
                        scope: *scope,
                        grant_ttl_s: *grant_ttl_s,
                        redacted: redacted.clone(),
                        decided: None,
                        closed: false,
                    },
                );
                if let Some(c) = self.call_mut(call_id) {
                    c.approval = ApprovalState::Pending(approval_id.clone());
                } else if let Some(c) = self.code_call_mut(call_id) {
                    c.approval = ApprovalState::Pending(approval_id.clone());
                }
            }
            EventData::ApprovalDecided {
                approval_id,
                call_id,
                decision,
                reason,
                arguments,
                grant_expires_ms,
                ..
            } => {
                let mut grant = None;
                if let Some(a) = self.approvals.get_mut(approval_id) {
                    a.decided = Some(*decision);
                    if let (Some(expires_ms), Verdict::Approve | Verdict::Edit) =
                        (grant_expires_ms, decision)
                    {
                        grant = Some(SessionGrant {
                            plugin: a.plugin.clone(),
                            tool: a.tool.clone(),
                            expires_ms: *expires_ms,
                        });
                    }
                }
                self.grants.extend(grant);
                let decided = |args: &mut String| match decision {
                    Verdict::Approve => ApprovalState::Approved(ApprovalStatus::Approved),
                    Verdict::Edit => {
                        if let Some(edited) = arguments {
                            *args = edited.to_string();
                        }
                        ApprovalState::Approved(ApprovalStatus::Edited)
                    }
                    Verdict::Deny => ApprovalState::Denied {
                        reason: reason
                            .clone()
                            .unwrap_or_else(|| "an approver denied the call".into()),
                        status: ApprovalStatus::Denied,
                    },
                };
                if let Some(c) = self.call_mut(call_id) {
                    c.approval = decided(&mut c.arguments);
                } else if let Some(c) = self.code_call_mut(call_id) {
                    c.approval = decided(&mut c.arguments);
                }
            }
            EventData::AskUser {
                question_id,
                call_id,
                ..
            } => match call_id {
                Some(call) => {
                    if let Some(run) = &mut self.run {
                        run.asks.insert(question_id.clone(), call.clone());
                    }
                }
                None => {
                    if let Some(c) = self.call_mut(question_id) {
                        c.asked = true;
                    }
                }
            },
            EventData::UserAnswer {
                question_id,
                answer,
                ..
            } => {
                if let Some(run) = &mut self.run {
                    run.asks.remove(question_id);
                }
                if let Some(c) = self.call_mut(question_id) {
                    c.answer = Some(answer.clone());
                }
            }
            EventData::McpAuthRequired {
                call_id, server, ..
            } => {
                if let Some(c) = self.call_mut(call_id) {
                    c.awaiting_auth = Some(server.clone());
                }
            }
            EventData::McpSampling {
                usage, cost_usd, ..
            } => {
                if let Some(run) = &mut self.run {
                    run.input_tokens += usage.input_tokens;
                    run.output_tokens += usage.output_tokens;
                    run.cost_usd += cost_usd;
                }
            }
            EventData::McpAuthCompleted { call_id, .. } => {
                if let Some(c) = self.call_mut(call_id) {
                    c.awaiting_auth = None;
                }
            }
            EventData::ToolResult {
                call_id,
                ok,
                content,
                error_code,
                parts,
                parent_call_id: Some(_),
                ..
            } => {
                if let Some(c) = self.code_call_mut(call_id) {
                    c.result = Some(CodeCallResult {
                        ok: *ok,
                        content: content.clone(),
                        parts: parts.clone(),
                        error_code: error_code.clone(),
                    });
                }
            }
            EventData::ToolResult {
                call_id,
                tool,
                ok,
                content,
                ..
            } => {
                if tool == crate::builtin::LOAD_SKILL
                    && *ok
                    && let Some(c) = self.call(call_id)
                    && let Some(name) = crate::builtin::skill_name(&c.arguments)
                {
                    self.loaded_skills.insert(name);
                }
                if let Some(c) = self.call_mut(call_id) {
                    c.result = Some(ToolResult {
                        call_id: call_id.clone(),
                        content: content.clone(),
                        is_error: !ok,
                    });
                }
                // A finished call asks nothing more.
                if let Some(run) = &mut self.run {
                    run.asks.retain(|_, asking| asking != call_id);
                }
                if let Some(run) = &mut self.run
                    && !run.calls.is_empty()
                    && run.calls.iter().all(|c| c.result.is_some())
                {
                    let parts = run
                        .calls
                        .drain(..)
                        .filter_map(|c| c.result.map(Part::ToolResult))
                        .collect();
                    self.messages.push(Message {
                        role: Role::Tool,
                        parts,
                    });
                }
            }
            EventData::Interrupt { .. } => {
                if self.run.is_some() {
                    self.interrupted = true;
                }
            }
            EventData::RunFinished { .. } => {
                self.run = None;
                self.interrupted = false;
                // Its undecided approvals end with it.
                for a in self.approvals.values_mut() {
                    if a.decided.is_none() {
                        a.closed = true;
                    }
                }
            }
            EventData::RunResumed { .. }
            | EventData::Warning { .. }
            | EventData::ModelRequest { .. }
            | EventData::ModelRetry { .. }
            | EventData::Error { .. } => {}
        }
    }

    fn code_call_mut(&mut self, id: &str) -> Option<&mut CodeCallState> {
        self.run.as_mut()?.code_calls.get_mut(id)
    }

    /// Call `id` of a program of the current step, if it was logged.
    pub fn code_call(&self, id: &str) -> Option<&CodeCallState> {
        self.run.as_ref()?.code_calls.get(id)
    }

    fn call(&self, id: &str) -> Option<&CallState> {
        self.run.as_ref()?.calls.iter().find(|c| c.call_id == id)
    }

    fn call_mut(&mut self, id: &str) -> Option<&mut CallState> {
        self.run
            .as_mut()?
            .calls
            .iter_mut()
            .find(|c| c.call_id == id)
    }

    /// The pending approval `id`, if it exists and is undecided.
    pub fn approval(&self, id: &str) -> Option<&Approval> {
        self.approvals.get(id)
    }

    /// Approvals nobody has decided yet, of the run in progress.
    pub fn pending_approvals(&self) -> impl Iterator<Item = &Approval> {
        self.approvals
            .values()
            .filter(|a| a.decided.is_none() && !a.closed)
    }

    /// Whether a session grant covers `tool` of `plugin` at `now_ms`.
    pub fn granted(&self, plugin: &str, tool: &str, now_ms: i64) -> bool {
        self.grants
            .iter()
            .any(|g| g.plugin == plugin && g.tool == tool && now_ms < g.expires_ms)
    }

    /// The calls of the current run waiting for a user's authorization with
    /// an upstream server: (run id, call id, server).
    pub fn awaiting_auth(&self) -> Vec<(String, String, String)> {
        let Some(run) = &self.run else {
            return Vec::new();
        };
        run.calls
            .iter()
            .filter(|c| c.result.is_none())
            .filter_map(|c| {
                let server = c.awaiting_auth.clone()?;
                Some((run.run_id.clone(), c.call_id.clone(), server))
            })
            .collect()
    }

    /// Whether `id` is a question a tool put mid-call and nobody answered.
    pub fn open_tool_question(&self, id: &str) -> bool {
        self.run.as_ref().is_some_and(|r| r.asks.contains_key(id))
    }

    /// The unanswered `ask_user` question `id`, if any.
    pub fn open_question(&self, id: &str) -> Option<&CallState> {
        self.call(id).filter(|c| c.asked && c.answer.is_none())
    }

    /// What the run must do next.
    pub fn next(&self) -> Next {
        let Some(run) = &self.run else {
            return if self.queued.is_empty() {
                Next::Idle
            } else {
                Next::StartRun
            };
        };
        if self.interrupted {
            return Next::Finish(RunStop::Cancelled, None);
        }
        if !run.calls.is_empty() {
            let ungated: Vec<usize> = (0..run.calls.len())
                .filter(|&i| run.calls[i].needs_gate())
                .collect();
            if !ungated.is_empty() {
                return Next::Gate(ungated);
            }
            let ready: Vec<usize> = (0..run.calls.len())
                .filter(|&i| {
                    let c = &run.calls[i];
                    c.result.is_none()
                        && c.awaiting_auth.is_none()
                        && match &c.approval {
                            ApprovalState::NotRequired(_) | ApprovalState::Approved(_) => {
                                !c.asked || c.answer.is_some()
                            }
                            ApprovalState::Denied { .. } => true,
                            ApprovalState::Pending(_) | ApprovalState::Ungated => false,
                        }
                })
                .collect();
            if !ready.is_empty() {
                return Next::Execute(ready);
            }
            if run
                .calls
                .iter()
                .any(|c| matches!(c.approval, ApprovalState::Pending(_)))
            {
                return Next::Wait(Status::WaitingApproval);
            }
            return Next::Wait(Status::WaitingInput);
        }
        match self.messages.last() {
            Some(m) if m.role == Role::Assistant => {
                Next::Finish(RunStop::EndTurn, Some(m.joined_text()))
            }
            _ => Next::ModelCall,
        }
    }
}

/// A call's approval state from the gate's first look, as its `tool_call`
/// reports it.
fn first_look(refused: &Option<String>, approval: ApprovalStatus) -> ApprovalState {
    match (refused, approval) {
        (Some(reason), _) => ApprovalState::Denied {
            reason: reason.clone(),
            status: ApprovalStatus::RefusedByPolicy,
        },
        (None, ApprovalStatus::SessionGrant) => {
            ApprovalState::NotRequired(ApprovalStatus::SessionGrant)
        }
        // `required`: the approval_required event that follows sets Pending;
        // until then the call must not run.
        (None, ApprovalStatus::Required) => ApprovalState::Pending(String::new()),
        _ => ApprovalState::NotRequired(ApprovalStatus::NotRequired),
    }
}

#[cfg(test)]
mod tests {
    //! The fold and `next`, driven by events alone: no wasm, no model server.

    use super::*;
    use serde_json::{Value, json};

    /// Apply each event (given as its JSON form) with the next seq.
    fn fold(state: &mut SessionState, events: &[Value]) {
        for data in events {
            let data: EventData = serde_json::from_value(data.clone()).expect("an event");
            state.apply(&LoggedEvent {
                id: format!("e{}", state.last_seq + 1),
                seq: state.last_seq + 1,
                created_ms: 1_000,
                data,
            });
        }
    }

    fn started(input: &str) -> SessionState {
        let mut s = SessionState::default();
        fold(
            &mut s,
            &[
                json!({"type": "user_message", "text": input, "by": "una"}),
                json!({"type": "run_started", "run_id": "r1", "agent": "a", "agent_version": 1,
                       "model": "m"}),
            ],
        );
        s
    }

    fn response(step: u32, parts: Value) -> Value {
        json!({"type": "model_response", "run_id": "r1", "step": step, "model": "m",
               "message": {"role": "assistant", "parts": parts},
               "stop_reason": "tool_use", "usage": {"input_tokens": 10, "output_tokens": 5},
               "cost_usd": 0.5, "latency_ms": 3})
    }

    fn call(id: &str, tool: &str, args: &str) -> Value {
        json!({"type": "tool_call", "id": id, "name": tool, "arguments": args})
    }

    fn tool_call(id: &str, approval: &str, refused: Option<&str>) -> Value {
        json!({"type": "tool_call", "run_id": "r1", "call_id": id, "tool": "t", "plugin": "p",
               "arguments": {}, "destructive": approval == "required",
               "approval_required": approval == "required", "approval": approval,
               "refused": refused})
    }

    fn result(id: &str, tool: &str, ok: bool) -> Value {
        json!({"type": "tool_result", "run_id": "r1", "call_id": id, "tool": tool, "plugin": "p",
               "ok": ok, "content": format!("{id} done"), "error_code": null, "latency_ms": 1,
               "sandbox_id": null, "approval": "not_required", "replayed": false})
    }

    fn approval_required(id: &str, call_id: &str, scope: &str) -> Value {
        json!({"type": "approval_required", "run_id": "r1", "approval_id": id,
               "call_id": call_id, "tool": "t", "plugin": "p", "arguments": {},
               "redacted": [], "reason": "", "approvers": ["approver"], "scope": scope,
               "grant_ttl_s": 60, "policy": "central"})
    }

    fn decided(id: &str, call_id: &str, decision: &str, expires: Option<i64>) -> Value {
        json!({"type": "approval_decided", "run_id": "r1", "approval_id": id,
               "call_id": call_id, "decision": decision, "by": "ann", "role": "approver",
               "reason": null, "arguments": null, "grant_expires_ms": expires})
    }

    #[test]
    fn a_message_starts_a_run_and_the_run_asks_the_model() {
        let mut s = SessionState::default();
        assert_eq!(s.next(), Next::Idle);
        fold(
            &mut s,
            &[json!({"type": "user_message", "text": "hi", "by": "una"})],
        );
        assert_eq!(s.next(), Next::StartRun);
        assert_eq!(s.queued.len(), 1);
        fold(
            &mut s,
            &[json!({"type": "run_started", "run_id": "r1", "agent": "a",
                           "agent_version": 1, "model": "m"})],
        );
        assert_eq!(s.next(), Next::ModelCall);
        assert!(s.queued.is_empty(), "the run took the message");
        assert_eq!(s.messages, [Message::text(Role::User, "hi")]);
        assert_eq!(s.last_seq, 2);
    }

    #[test]
    fn calls_are_gated_then_run_and_their_results_go_back_to_the_model() {
        let mut s = started("refund");
        fold(
            &mut s,
            &[response(
                1,
                json!([call("c1", "t", "{}"), call("c2", "t", "{\"n\":2}")]),
            )],
        );
        let run = s.run.as_ref().unwrap();
        assert_eq!((run.steps, run.input_tokens, run.output_tokens), (1, 10, 5));
        assert_eq!(s.next(), Next::Gate(vec![0, 1]));
        // c1 needs nothing; c2 waits for an approver.
        fold(
            &mut s,
            &[
                tool_call("c1", "not_required", None),
                tool_call("c2", "required", None),
            ],
        );
        assert_eq!(
            s.next(),
            Next::Gate(vec![1]),
            "a `required` call is not gated until its approval_required is logged"
        );
        fold(&mut s, &[approval_required("ap1", "c2", "call")]);
        assert_eq!(s.next(), Next::Execute(vec![0]));
        fold(&mut s, &[result("c1", "t", true)]);
        assert_eq!(s.next(), Next::Wait(Status::WaitingApproval));
        assert_eq!(s.pending_approvals().count(), 1);
        fold(&mut s, &[decided("ap1", "c2", "approve", None)]);
        assert_eq!(s.pending_approvals().count(), 0);
        assert_eq!(s.next(), Next::Execute(vec![1]));
        fold(&mut s, &[result("c2", "t", false)]);
        // Both results went back as one tool message; the model is next.
        let last = s.messages.last().unwrap();
        assert_eq!(last.role, Role::Tool);
        assert_eq!(last.parts.len(), 2);
        assert!(matches!(&last.parts[1], Part::ToolResult(r) if r.is_error));
        assert_eq!(s.next(), Next::ModelCall);
    }

    #[test]
    fn a_refused_or_denied_call_still_gets_a_result() {
        let mut s = started("x");
        fold(
            &mut s,
            &[
                response(1, json!([call("c1", "t", "{}"), call("c2", "t", "{}")])),
                tool_call("c1", "refused_by_policy", Some("over the limit")),
                tool_call("c2", "required", None),
                approval_required("ap1", "c2", "call"),
                decided("ap1", "c2", "deny", None),
            ],
        );
        let run = s.run.as_ref().unwrap();
        assert!(matches!(
            &run.calls[0].approval,
            ApprovalState::Denied { reason, status: ApprovalStatus::RefusedByPolicy } if reason == "over the limit"
        ));
        assert!(matches!(
            &run.calls[1].approval,
            ApprovalState::Denied {
                status: ApprovalStatus::Denied,
                ..
            }
        ));
        assert_eq!(s.next(), Next::Execute(vec![0, 1]));
    }

    #[test]
    fn an_edit_replaces_the_arguments_and_a_session_grant_lasts_until_it_expires() {
        let mut s = started("x");
        let mut edit = decided("ap1", "c1", "edit", Some(5_000));
        edit["arguments"] = json!({"amount": 10});
        fold(
            &mut s,
            &[
                response(1, json!([call("c1", "t", "{\"amount\":500}")])),
                tool_call("c1", "required", None),
                approval_required("ap1", "c1", "session"),
                edit,
            ],
        );
        let c = &s.run.as_ref().unwrap().calls[0];
        assert_eq!(c.arguments, r#"{"amount":10}"#);
        assert_eq!(c.approval, ApprovalState::Approved(ApprovalStatus::Edited));
        assert!(s.granted("p", "t", 4_999));
        assert!(!s.granted("p", "t", 5_000), "the grant has expired");
        assert!(!s.granted("p", "other", 1_000));
    }

    #[test]
    fn a_call_waiting_for_a_users_authorization_runs_once_it_completes() {
        let mut s = started("x");
        fold(
            &mut s,
            &[
                response(1, json!([call("c1", "ev__echo", "{}")])),
                tool_call("c1", "not_required", None),
            ],
        );
        assert_eq!(s.next(), Next::Execute(vec![0]));
        fold(
            &mut s,
            &[
                json!({"type": "mcp_auth_required", "run_id": "r1", "call_id": "c1",
                     "server": "ev", "user": "una", "authorization_url": "https://as/a"}),
            ],
        );
        assert_eq!(s.next(), Next::Wait(Status::WaitingInput));
        assert_eq!(
            s.awaiting_auth(),
            [("r1".to_string(), "c1".to_string(), "ev".to_string())]
        );
        // Authorized, or the host restarted (the call asks again): it runs.
        fold(
            &mut s,
            &[
                json!({"type": "mcp_auth_completed", "run_id": "r1", "call_id": "c1",
                     "server": "ev", "authorized": false}),
            ],
        );
        assert!(s.awaiting_auth().is_empty());
        assert_eq!(s.next(), Next::Execute(vec![0]));
    }

    #[test]
    fn a_question_waits_for_its_answer() {
        let mut s = started("x");
        fold(
            &mut s,
            &[
                response(
                    1,
                    json!([call("q1", "ask_user", "{\"question\":\"which?\"}")]),
                ),
                tool_call("q1", "not_required", None),
                json!({"type": "ask_user", "run_id": "r1", "question_id": "q1",
                       "question": "which?", "choices": []}),
            ],
        );
        assert_eq!(s.next(), Next::Wait(Status::WaitingInput));
        assert!(s.open_question("q1").is_some());
        fold(
            &mut s,
            &[json!({"type": "user_answer", "question_id": "q1", "answer": "b", "by": "una"})],
        );
        assert!(s.open_question("q1").is_none());
        assert_eq!(s.next(), Next::Execute(vec![0]));
    }

    #[test]
    fn a_final_answer_ends_the_run_and_the_next_message_starts_another() {
        let mut s = started("x");
        fold(
            &mut s,
            &[
                response(1, json!([{"type": "text", "text": "done"}])),
                json!({"type": "user_message", "text": "again", "by": "una"}),
            ],
        );
        assert_eq!(
            s.next(),
            Next::Finish(RunStop::EndTurn, Some("done".into()))
        );
        fold(
            &mut s,
            &[
                json!({"type": "run_finished", "run_id": "r1", "stop_reason": "end_turn",
                     "output": "done", "steps": 1, "input_tokens": 10, "output_tokens": 5,
                     "cost_usd": 0.5}),
            ],
        );
        assert!(s.run.is_none());
        assert_eq!(s.next(), Next::StartRun, "the queued message is next");
    }

    #[test]
    fn an_interrupt_ends_the_run_before_anything_else() {
        let mut s = started("x");
        fold(
            &mut s,
            &[
                response(1, json!([call("c1", "t", "{}")])),
                json!({"type": "interrupt", "by": "una"}),
            ],
        );
        assert_eq!(s.next(), Next::Finish(RunStop::Cancelled, None));
        // Without a run an interrupt changes nothing.
        let mut idle = SessionState::default();
        fold(&mut idle, &[json!({"type": "interrupt", "by": "una"})]);
        assert!(!idle.interrupted);
    }

    /// Token totals saturate instead of overflowing (which panicked in debug
    /// builds and left the session `running`).
    #[test]
    fn token_totals_saturate() {
        let mut s = started("x");
        let mut huge = response(1, json!([{"type": "text", "text": "a"}]));
        huge["usage"] = json!({"input_tokens": u64::MAX, "output_tokens": u64::MAX});
        fold(&mut s, &[huge.clone(), huge]);
        let run = s.run.as_ref().unwrap();
        assert_eq!((run.input_tokens, run.output_tokens), (u64::MAX, u64::MAX));
    }

    #[test]
    fn a_loaded_skill_is_remembered_and_the_status_follows_its_event() {
        let mut s = started("x");
        fold(
            &mut s,
            &[
                json!({"type": "status_changed", "status": "running"}),
                response(
                    1,
                    json!([call("c1", "load_skill", "{\"name\":\"refunds\"}")]),
                ),
                tool_call("c1", "not_required", None),
                result("c1", "load_skill", true),
            ],
        );
        assert_eq!(s.status, Some(Status::Running));
        assert!(s.loaded_skills.contains("refunds"));
    }
}
