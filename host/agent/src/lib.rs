//! Agent files: the small declarative YAML documents agent builders write.
//!
//! ```yaml
//! name: refund-assistant
//! description: Answers refund requests and issues refunds within policy.
//! model: demo                      # a name from the host's model catalog
//! instructions: |
//!   You help customers with refunds. Check the balance first.
//! tools:                           # plugin references, with versions
//!   - tack/payments@0.1.0
//! skills:                          # skill references, with versions
//!   - tack/refund-policy@0.1.0
//! limits:
//!   max-steps: 12
//!   max-cost-usd: 0.50
//!   max-tokens: 20000
//!   timeout: 2m
//! approval-policy: refunds-over-100
//! ```
//!
//! [`AgentSpec::parse`] refuses unknown fields and anything shaped like a secret,
//! naming the field; [`AgentSpec::validate`] refuses references the host cannot
//! satisfy (model not in the catalog, approval policy not defined, malformed tool or
//! skill references). Agent files never carry credentials: the host injects them.

mod secrets;
mod spec;

pub use secrets::{SecretFinding, looks_like_secret, scan_for_secrets};
pub use spec::{AgentError, AgentSpec, Catalog, CodeLimits, CodeMode, Limits, McpServerUse};
