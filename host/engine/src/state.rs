//! A session's state as the fold of its event log.
//!
//! [`SessionState::apply`] is the only way state changes, both while a run goes
//! and when a host restarts and replays the log; [`SessionState::next`] says what
//! the run must do next. The runner and the API both work from this one state.

use crate::events::{EventData, LoggedEvent, RunStop, Scope, Status, Verdict};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use tack_runtime::{Message, Part, Role, ToolResult};

/// Where a tool call stands with its approval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApprovalState {
    /// Not looked at by the gate yet (a host restarted in between).
    Ungated,
    /// No approval needed (`session_grant` when a session grant covered it).
    NotRequired(&'static str),
    /// Waiting for approval `id`.
    Pending(String),
    /// Approved (`approved` or `edited`).
    Approved(&'static str),
    /// Refused, by an approver or a policy; the reason goes to the model.
    Denied {
        /// Why.
        reason: String,
        /// `denied` or `refused_by_policy`.
        status: &'static str,
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
}

/// A session-scoped grant: calls of `tool` of `plugin` need no approval until
/// `expires_ms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionGrant {
    /// Plugin reference.
    pub plugin: String,
    /// Tool name.
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
    /// Events applied here but not written yet; not part of the log's fold.
    pub(crate) unwritten: Unwritten,
}

/// Events the runner applied to a session's state before writing them, because
/// its very next step starts with an append (a model call's `model_request`, a
/// run's `run_finished`): that append writes them first, in the same
/// transaction. See `Engine::append_or_carry`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Unwritten {
    /// Each event (public form, unredacted form if it differs) and the sequence
    /// number it was applied with.
    pub(crate) events: Vec<(EventData, Option<EventData>, u64)>,
    /// A tool call's idempotency key and result record, to close with them.
    pub(crate) finished_call: Option<(String, serde_json::Value)>,
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
                    run.input_tokens += usage.input_tokens;
                    run.output_tokens += usage.output_tokens;
                    run.cost_usd += cost_usd;
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
                            result: None,
                        })
                        .collect();
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
                        c.approval = match (refused, approval.as_str()) {
                            (Some(reason), _) => ApprovalState::Denied {
                                reason: reason.clone(),
                                status: "refused_by_policy",
                            },
                            (None, "session_grant") => ApprovalState::NotRequired("session_grant"),
                            // `required`: the approval_required event that follows sets Pending;
                            // until then the call must not run.
                            (None, "required") => ApprovalState::Pending(String::new()),
                            _ => ApprovalState::NotRequired("not_required"),
                        };
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
                    },
                );
                if let Some(c) = self.call_mut(call_id) {
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
                if let Some(c) = self.call_mut(call_id) {
                    c.approval = match decision {
                        Verdict::Approve => ApprovalState::Approved("approved"),
                        Verdict::Edit => {
                            if let Some(args) = arguments {
                                c.arguments = args.to_string();
                            }
                            ApprovalState::Approved("edited")
                        }
                        Verdict::Deny => ApprovalState::Denied {
                            reason: reason
                                .clone()
                                .unwrap_or_else(|| "an approver denied the call".into()),
                            status: "denied",
                        },
                    };
                }
            }
            EventData::AskUser { question_id, .. } => {
                if let Some(c) = self.call_mut(question_id) {
                    c.asked = true;
                }
            }
            EventData::UserAnswer {
                question_id,
                answer,
                ..
            } => {
                if let Some(c) = self.call_mut(question_id) {
                    c.answer = Some(answer.clone());
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
            }
            EventData::RunResumed { .. }
            | EventData::ModelRequest { .. }
            | EventData::ModelRetry { .. }
            | EventData::Error { .. } => {}
        }
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

    /// Approvals nobody has decided yet.
    pub fn pending_approvals(&self) -> impl Iterator<Item = &Approval> {
        self.approvals.values().filter(|a| a.decided.is_none())
    }

    /// Whether a session grant covers `tool` of `plugin` at `now_ms`.
    pub fn granted(&self, plugin: &str, tool: &str, now_ms: i64) -> bool {
        self.grants
            .iter()
            .any(|g| g.plugin == plugin && g.tool == tool && now_ms < g.expires_ms)
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
