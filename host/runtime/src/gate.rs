//! Policy components: a signed component that decides per tool call whether it
//! may run, needs an approver, or is refused (world `policy`).
//!
//! A policy runs with nothing granted (no files, no network, no clock) under a
//! short time limit; a policy that traps or times out is an error, which the
//! caller must treat as a refusal (fail closed).

use crate::bindings::policy_world::PolicyPre;
use crate::bindings::policy_world::exports::tack::plugin::approval_policy as wit;
use crate::egress::EgressBinding;
use crate::error::CallError;
use crate::plugin::{classify, new_store};
use crate::runtime::Runtime;
use crate::state::SandboxState;
use crate::types::{Annotations, CallContext};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use tack_capability::{ByteSize, Capabilities, Manifest};
use wasmtime::Trap;

/// Time one decision may take.
const DECIDE_TIMEOUT: Duration = Duration::from_secs(2);

/// A tool call at the gate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateRequest {
    /// The tool's plugin reference, or `builtin`.
    pub plugin: String,
    /// Tool name.
    pub tool: String,
    /// Annotations after central overrides.
    pub annotations: Annotations,
    /// Arguments (JSON text).
    pub arguments: String,
    /// Who the call is for.
    pub context: CallContext,
}

/// How long an approval holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum GrantScope {
    /// This call.
    PerCall,
    /// Every call of the tool in the session, for `seconds`.
    PerSession {
        /// How long the grant lasts.
        seconds: u64,
    },
}

/// What an approver must decide on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalRequest {
    /// Roles allowed to approve (empty: the host policy's approver role).
    pub approvers: Vec<String>,
    /// How long the approval holds.
    pub scope: GrantScope,
    /// JSON Pointers of arguments hidden from approvers and events.
    pub redacted_arguments: Vec<String>,
    /// Why approval is needed.
    pub reason: String,
}

/// A policy's decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "decision")]
pub enum Decision {
    /// Run the call.
    Allow,
    /// Refuse it; the reason goes to the model.
    Deny {
        /// Why.
        reason: String,
    },
    /// Hold it for an approver.
    RequireApproval(ApprovalRequest),
}

/// A loaded policy component. Cheap to clone.
#[derive(Clone)]
pub struct PolicyComponent {
    inner: Arc<PolicyInner>,
}

struct PolicyInner {
    runtime: Runtime,
    digest: String,
    capabilities: Capabilities,
    pre: PolicyPre<SandboxState>,
}

impl PolicyComponent {
    pub(crate) fn new(
        runtime: Runtime,
        digest: String,
        _manifest: Manifest,
        pre: PolicyPre<SandboxState>,
    ) -> Self {
        // Whatever the manifest asks for, a policy gets nothing but a little memory.
        let mut capabilities = Capabilities::deny_all();
        capabilities.limits.timeout = DECIDE_TIMEOUT;
        capabilities.limits.memory = ByteSize::mib(64);
        PolicyComponent {
            inner: Arc::new(PolicyInner {
                runtime,
                digest,
                capabilities,
                pre,
            }),
        }
    }

    /// `sha256:<hex>` of the component.
    pub fn digest(&self) -> String {
        format!("sha256:{}", self.inner.digest)
    }

    /// Decide on one call, in a fresh instance with nothing granted.
    pub async fn decide(&self, request: &GateRequest) -> Result<Decision, CallError> {
        let inner = &self.inner;
        let (mut store, pipes) = new_store(
            &inner.runtime,
            &inner.capabilities,
            &EgressBinding::new(inner.capabilities.egress.clone()),
            DECIDE_TIMEOUT,
        )?;
        let wit_request = wit::GateRequest {
            plugin: request.plugin.clone(),
            tool: request.tool.clone(),
            annotations: request.annotations.to_wit(),
            arguments: request.arguments.clone(),
            context: request.context.to_wit(),
        };
        let fut = async {
            let instance = inner.pre.instantiate_async(&mut store).await?;
            instance
                .tack_plugin_approval_policy()
                .call_decide(&mut store, &wit_request)
                .await
        };
        let raw = match tokio::time::timeout(DECIDE_TIMEOUT, fut).await {
            Ok(Ok(raw)) => raw,
            Ok(Err(e)) => return Err(classify(e, &store, &pipes, &inner.capabilities.limits)),
            Err(_) => {
                return Err(classify(
                    wasmtime::Error::new(Trap::Interrupt),
                    &store,
                    &pipes,
                    &inner.capabilities.limits,
                ));
            }
        };
        Ok(match raw {
            wit::Decision::Allow => Decision::Allow,
            wit::Decision::Deny(reason) => Decision::Deny { reason },
            wit::Decision::RequireApproval(a) => Decision::RequireApproval(ApprovalRequest {
                approvers: a.approvers,
                scope: match a.scope {
                    wit::GrantScope::PerCall => GrantScope::PerCall,
                    wit::GrantScope::PerSession(seconds) => GrantScope::PerSession { seconds },
                },
                redacted_arguments: a.redacted_arguments,
                reason: a.reason,
            }),
        })
    }
}
