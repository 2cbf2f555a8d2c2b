//! The gate every tool call passes: central flags, the agent's approval policy
//! (its tool list and its policy component), and session grants.
//!
//! Rules, in order:
//! 1. Built-in tools (`ask_user`, `load_skill`) pass.
//! 2. The policy component, if any, decides first; a failing component refuses
//!    the call (fail closed). `deny` ends there.
//! 3. A tool listed in the policy's `tools` (or `*destructive` for a destructive
//!    one) needs approval.
//! 4. Without an approval policy, a destructive tool (after the central flags of
//!    `[tools."repo"]`) needs approval by the `approver` role, per call.
//! 5. Approval already granted for the session (scope `session`, not expired)
//!    covers the call.

use crate::builtin;
use crate::components::{Backend, PolicySet, ToolEntry};
use crate::error::EngineError;
use crate::events::{ApprovalStatus, Scope, Verdict};
use serde_json::Value;
use tack_config::ApprovalScope;
use tack_runtime::{CallContext, Decision, GateRequest, GrantScope};

/// Default length of a session-scoped grant.
const DEFAULT_GRANT_TTL_S: u64 = 15 * 60;

/// An approval the gate asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    /// Roles that may decide.
    pub approvers: Vec<String>,
    /// What an approval covers.
    pub scope: Scope,
    /// How long a session grant lasts.
    pub grant_ttl_s: Option<u64>,
    /// Why.
    pub reason: String,
    /// The policy asking (`central` for rule 4).
    pub policy: String,
    /// The policy's version (`central` for rule 4).
    pub policy_version: String,
}

/// The gate's outcome for one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Run it (`not_required` or `session_grant`).
    Allow(ApprovalStatus),
    /// Refuse it; the reason goes to the model.
    Deny(String),
    /// Hold it for an approver.
    Require(Requirement),
}

/// The outcome and the argument pointers to redact everywhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gated {
    /// What to do.
    pub outcome: Outcome,
    /// JSON Pointers hidden from events and approvers.
    pub redacted: Vec<String>,
}

/// Put one call through the gate. `granted` says whether a session grant covers
/// this tool now.
pub async fn gate(
    policy: Option<&PolicySet>,
    tool: &ToolEntry,
    arguments: &str,
    context: &CallContext,
    granted: bool,
) -> Gated {
    let mut redacted: Vec<String> = policy.map(|p| p.config.redact.clone()).unwrap_or_default();
    if tool.plugin == builtin::BUILTIN {
        return Gated {
            outcome: Outcome::Allow(ApprovalStatus::NotRequired),
            redacted,
        };
    }
    let mut require = None;
    match policy {
        Some(p) => {
            if let Some(component) = &p.component {
                let request = GateRequest {
                    plugin: tool.plugin.clone(),
                    tool: tool.tool.clone(),
                    annotations: tool.descriptor.annotations,
                    arguments: arguments.to_string(),
                    context: context.clone(),
                };
                match component.decide(&request).await {
                    Err(e) => {
                        return Gated {
                            outcome: Outcome::Deny(format!(
                                "the approval policy `{}` failed, so the call was refused: {e}",
                                p.name
                            )),
                            redacted,
                        };
                    }
                    Ok(Decision::Allow) => {}
                    Ok(Decision::Deny { reason }) => {
                        return Gated {
                            outcome: Outcome::Deny(reason),
                            redacted,
                        };
                    }
                    Ok(Decision::RequireApproval(a)) => {
                        redacted.extend(a.redacted_arguments);
                        let (scope, ttl) = match a.scope {
                            GrantScope::PerCall => (Scope::Call, None),
                            GrantScope::PerSession { seconds } => (Scope::Session, Some(seconds)),
                        };
                        require = Some(Requirement {
                            approvers: if a.approvers.is_empty() {
                                vec![p.config.approver_role.clone()]
                            } else {
                                a.approvers
                            },
                            scope,
                            grant_ttl_s: ttl,
                            reason: a.reason,
                            policy: p.name.clone(),
                            policy_version: p.version.clone(),
                        });
                    }
                }
            }
            let listed = p.config.tools.iter().any(|t| {
                t == &tool.tool || t == &tool.name || (t == "*destructive" && tool.destructive)
            });
            if require.is_none() && listed {
                let scope = match p.config.scope {
                    ApprovalScope::Call => Scope::Call,
                    ApprovalScope::Session => Scope::Session,
                };
                require = Some(Requirement {
                    approvers: vec![p.config.approver_role.clone()],
                    scope,
                    grant_ttl_s: (scope == Scope::Session).then(|| {
                        p.config
                            .grant_ttl
                            .map(|d| d.0.as_secs())
                            .unwrap_or(DEFAULT_GRANT_TTL_S)
                    }),
                    reason: format!("`{}` needs approval under policy `{}`", tool.name, p.name),
                    policy: p.name.clone(),
                    policy_version: p.version.clone(),
                });
            }
        }
        None if tool.destructive => {
            require = Some(Requirement {
                approvers: vec!["approver".into()],
                scope: Scope::Call,
                grant_ttl_s: None,
                reason: format!(
                    "`{}` is destructive and the agent has no approval policy",
                    tool.name
                ),
                policy: "central".into(),
                policy_version: "central".into(),
            });
        }
        None => {}
    }
    dedup(&mut redacted);
    let outcome = match require {
        Some(_) if granted => Outcome::Allow(ApprovalStatus::SessionGrant),
        Some(r) => Outcome::Require(r),
        None => Outcome::Allow(ApprovalStatus::NotRequired),
    };
    Gated { outcome, redacted }
}

fn dedup(v: &mut Vec<String>) {
    let mut seen = std::collections::BTreeSet::new();
    v.retain(|x| seen.insert(x.clone()));
}

/// The arguments an approver's decision carries: those of an `edit` (a JSON
/// object), none for the others; any other combination is refused.
pub fn decided_arguments(
    verdict: Verdict,
    arguments: Option<Value>,
) -> Result<Option<Value>, EngineError> {
    match (verdict, arguments) {
        (Verdict::Edit, Some(a)) if a.is_object() => Ok(Some(a)),
        (Verdict::Edit, _) => Err(EngineError::Invalid(
            "an `edit` decision needs `arguments`, a JSON object".into(),
        )),
        (_, Some(_)) => Err(EngineError::Invalid(
            "`arguments` go with an `edit` decision only".into(),
        )),
        (_, None) => Ok(None),
    }
}

/// Whether an approver's `edited` arguments fit `tool`, before approval
/// `approval_id` is spent on them: a misfit is refused, and the approval still
/// waits.
pub async fn check_edit(
    tool: &ToolEntry,
    edited: &Value,
    approval_id: &str,
) -> Result<(), EngineError> {
    let refused = |e: String| {
        EngineError::Invalid(format!(
            "the edited arguments were refused, and approval `{approval_id}` still waits: {e}"
        ))
    };
    match &tool.backend {
        Backend::Wasm(sandbox) => sandbox
            .check_arguments(&tool.tool, edited)
            .await
            .map_err(|e| refused(e.to_string())),
        Backend::Remote(remote) => remote
            .check_arguments(edited)
            .map_err(|e| refused(e.to_string())),
        Backend::Builtin => Ok(()),
    }
}
