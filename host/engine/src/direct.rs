//! Approvals for direct calls: tool calls from outside an agent run (a client
//! of tack's MCP server), held in memory while the caller waits.
//!
//! A direct call has no session log to hold its approval, and needs none: the
//! caller's open request is the only thing waiting, and it ends with the
//! process. Such approvals are listed beside the sessions' (`GET
//! /v1/approvals`) and decided by the same rule: a role the approval lists, or
//! `admin`. An approval leaves the list when it is decided or when its caller
//! stops waiting (the request ends, times out or is cancelled); a decision on
//! it then is a 409 or a 404, never a call.

use crate::components::ToolEntry;
use crate::error::EngineError;
use crate::events::Verdict;
use crate::principal::Principal;
use crate::redact::redact;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

/// A call waiting for an approver.
pub struct DirectRequest {
    /// Where the call came from, for approvers (`mcp:support`: toolset
    /// `support` over MCP).
    pub source: String,
    /// The tool.
    pub tool: ToolEntry,
    /// The arguments as the caller sent them.
    pub arguments: Value,
    /// JSON Pointers hidden from approvers.
    pub redacted: Vec<String>,
    /// Who asked.
    pub requested_by: Principal,
    /// Roles that may decide (`admin` always may).
    pub approvers: Vec<String>,
    /// Why approval is needed.
    pub reason: String,
}

/// A pending direct approval as approvers see it (the arguments redacted).
#[derive(Debug, Clone, Serialize)]
pub struct DirectApproval {
    /// Decisions name it.
    pub approval_id: String,
    /// Where the call came from (`mcp:TOOLSET`).
    pub source: String,
    /// Tool name.
    pub tool: String,
    /// Plugin reference.
    pub plugin: String,
    /// Arguments with the redacted fields replaced.
    pub arguments: Value,
    /// JSON Pointers of the redacted fields.
    pub redacted: Vec<String>,
    /// Why approval is needed.
    pub reason: String,
    /// Roles that may decide.
    pub approvers: Vec<String>,
    /// Token name of the caller.
    pub requested_by: String,
    /// When the call arrived, ms since the epoch.
    pub created_ms: i64,
}

/// What the approver said.
#[derive(Debug, Clone, PartialEq)]
pub enum DirectOutcome {
    /// Run the call with these arguments (the caller's, or the approver's
    /// edit).
    Approved {
        /// Token name of the approver.
        by: String,
        /// The arguments to run with.
        arguments: Value,
    },
    /// Do not run it.
    Denied {
        /// Token name of the approver.
        by: String,
        /// The approver's reason, for the caller.
        reason: Option<String>,
    },
}

struct Waiting {
    view: DirectApproval,
    tool: ToolEntry,
    arguments: Value,
    answer: oneshot::Sender<DirectOutcome>,
}

/// The pending direct approvals of this process. Cheap to share.
#[derive(Default)]
pub struct DirectApprovals {
    pending: Mutex<BTreeMap<String, Waiting>>,
}

/// A call's place in the queue: await [`outcome`](Self::outcome); dropping it
/// withdraws the approval.
pub struct Held {
    /// The approval's id.
    pub id: String,
    answer: Option<oneshot::Receiver<DirectOutcome>>,
    desk: Arc<DirectApprovals>,
}

impl Held {
    /// The decision, when an approver makes it.
    pub async fn outcome(&mut self) -> DirectOutcome {
        let rx = self.answer.as_mut().expect("outcome awaited once");
        // The sender lives in the pending map until a decision sends on it,
        // and only this guard's drop removes it otherwise.
        let outcome = rx
            .await
            .expect("a pending approval is answered or withdrawn");
        self.answer = None;
        outcome
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if self.answer.is_some() {
            self.desk.lock().remove(&self.id);
        }
    }
}

impl DirectApprovals {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Waiting>> {
        // A panic while holding this lock cannot leave the map half-changed
        // (every change is one insert or remove), so a poisoned lock is usable.
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queue `request` for an approver.
    pub fn hold(self: &Arc<Self>, request: DirectRequest) -> Held {
        let id = format!("ap_{}", ulid::Ulid::generate());
        let view = DirectApproval {
            approval_id: id.clone(),
            source: request.source,
            tool: request.tool.tool.clone(),
            plugin: request.tool.plugin.clone(),
            arguments: redact(&request.arguments, &request.redacted),
            redacted: request.redacted,
            reason: request.reason,
            approvers: request.approvers,
            requested_by: request.requested_by.name,
            created_ms: crate::engine::now_ms(),
        };
        let (tx, rx) = oneshot::channel();
        self.lock().insert(
            id.clone(),
            Waiting {
                view,
                tool: request.tool,
                arguments: request.arguments,
                answer: tx,
            },
        );
        Held {
            id,
            answer: Some(rx),
            desk: self.clone(),
        }
    }

    /// The pending approvals, oldest first.
    pub fn pending(&self) -> Vec<DirectApproval> {
        let mut v: Vec<DirectApproval> = self.lock().values().map(|w| w.view.clone()).collect();
        v.sort_by(|a, b| a.approval_id.cmp(&b.approval_id));
        v
    }

    /// Whether `id` is pending here.
    pub fn contains(&self, id: &str) -> bool {
        self.lock().contains_key(id)
    }

    /// `by`'s decision on approval `id`. Edited arguments must fit the tool's
    /// input schema; a misfit is refused and the approval still waits.
    pub async fn decide(
        &self,
        id: &str,
        by: &Principal,
        verdict: Verdict,
        reason: Option<String>,
        arguments: Option<Value>,
    ) -> Result<DirectApproval, EngineError> {
        let gone = || {
            EngineError::NotFound(format!(
                "no pending approval `{id}`: it was decided, or its caller stopped waiting; \
                 list pending ones with GET /v1/approvals"
            ))
        };
        let (tool, approvers) = {
            let pending = self.lock();
            let w = pending.get(id).ok_or_else(gone)?;
            (w.tool.clone(), w.view.approvers.clone())
        };
        if !by.may_approve(&approvers) {
            return Err(EngineError::Forbidden(format!(
                "the `{}` role may not decide approval `{id}`; it needs one of: {}",
                by.role,
                approvers.join(", ")
            )));
        }
        let edited = crate::approval::decided_arguments(verdict, arguments)?;
        if let Some(a) = &edited {
            crate::approval::check_edit(&tool, a, id).await?;
        }
        // Taken out under the lock: of two deciders, one finds it gone.
        let waiting = self.lock().remove(id).ok_or_else(gone)?;
        let outcome = match verdict {
            Verdict::Deny => DirectOutcome::Denied {
                by: by.name.clone(),
                reason,
            },
            Verdict::Approve | Verdict::Edit => DirectOutcome::Approved {
                by: by.name.clone(),
                arguments: edited.unwrap_or(waiting.arguments),
            },
        };
        tracing::info!(
            approval = %id,
            source = %waiting.view.source,
            tool = %waiting.view.tool,
            by = %by.name,
            decision = ?verdict,
            "direct call decided"
        );
        // The caller may have stopped waiting just now; then nothing runs.
        waiting.answer.send(outcome).map_err(|_| gone())?;
        Ok(waiting.view)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::components::Backend;
    use crate::principal::Role;
    use serde_json::json;
    use tack_runtime::{Annotations, ToolDescriptor};

    fn request() -> DirectRequest {
        DirectRequest {
            source: "mcp:support".into(),
            tool: ToolEntry {
                name: "issue_refund".into(),
                tool: "issue_refund".into(),
                plugin: "tack/payments@0.1.0".into(),
                descriptor: ToolDescriptor {
                    name: "issue_refund".into(),
                    description: String::new(),
                    input_schema: json!({"type": "object"}),
                    output_schema: None,
                    annotations: Annotations::default(),
                },
                destructive: true,
                backend: Backend::Builtin,
            },
            arguments: json!({"account": "acct_alice", "card": "4111"}),
            redacted: vec!["/card".into()],
            requested_by: Principal::new("una", Role::User),
            approvers: vec!["approver".into()],
            reason: "destructive".into(),
        }
    }

    #[tokio::test]
    async fn one_decision_runs_the_call_with_its_own_arguments() {
        let desk = Arc::new(DirectApprovals::default());
        let mut held = desk.hold(request());
        let listed = desk.pending();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].requested_by, "una");
        assert_ne!(
            listed[0].arguments["card"], "4111",
            "approvers see it redacted"
        );

        let user = Principal::new("una", Role::User);
        let e = desk
            .decide(&held.id, &user, Verdict::Approve, None, None)
            .await
            .unwrap_err();
        assert!(matches!(e, EngineError::Forbidden(_)), "{e}");
        let e = desk
            .decide(
                &held.id,
                &Principal::new("ada", Role::Approver),
                Verdict::Edit,
                None,
                None,
            )
            .await
            .unwrap_err();
        assert!(matches!(e, EngineError::Invalid(_)), "{e}");
        assert!(desk.contains(&held.id), "refusals leave it pending");

        let approver = Principal::new("ada", Role::Approver);
        desk.decide(&held.id, &approver, Verdict::Approve, None, None)
            .await
            .unwrap();
        let e = desk
            .decide(&held.id, &approver, Verdict::Deny, None, None)
            .await
            .unwrap_err();
        assert!(matches!(e, EngineError::NotFound(_)), "decided once: {e}");
        assert_eq!(
            held.outcome().await,
            DirectOutcome::Approved {
                by: "ada".into(),
                arguments: json!({"account": "acct_alice", "card": "4111"}),
            },
            "the call runs with the real arguments"
        );
        assert!(desk.pending().is_empty());
    }

    #[tokio::test]
    async fn a_caller_that_stops_waiting_withdraws_its_approval() {
        let desk = Arc::new(DirectApprovals::default());
        let held = desk.hold(request());
        let id = held.id.clone();
        drop(held);
        assert!(desk.pending().is_empty());
        let admin = Principal::new("root", Role::Admin);
        let e = desk
            .decide(&id, &admin, Verdict::Approve, None, None)
            .await
            .unwrap_err();
        assert!(matches!(e, EngineError::NotFound(_)), "{e}");
    }
}
