//! `refund-gate`: the policy component of the refund example.
//!
//! - `issue_refund` over $100 (10,000 cents) needs an approver with the
//!   `approver` role, for that one call; the approver sees the amount, account
//!   and reason, and the model's free-text `note` is redacted.
//! - `issue_refund` of a non-positive or non-integer amount is refused.
//! - Everything else is allowed (the host's central flags still apply first).

wit_bindgen::generate!({
    path: "../../wit",
    world: "policy",
});

use exports::tack::plugin::approval_policy::{
    ApprovalRequest, Decision, GateRequest, GrantScope, Guest,
};
use tack::plugin::logging::{Level, log};

/// Refunds above this many cents need approval.
const LIMIT_CENTS: i64 = 10_000;

struct RefundGate;

impl Guest for RefundGate {
    fn decide(request: GateRequest) -> Decision {
        if request.tool != "issue_refund" {
            return Decision::Allow;
        }
        let args: serde_json::Value = match serde_json::from_str(&request.arguments) {
            Ok(v) => v,
            Err(e) => return Decision::Deny(format!("the refund arguments are not JSON: {e}")),
        };
        let Some(amount) = args["amount_cents"].as_i64() else {
            return Decision::Deny("`amount_cents` must be a whole number of cents".into());
        };
        if amount < 1 {
            return Decision::Deny(format!("a refund of {amount} cents is not a refund"));
        }
        if amount <= LIMIT_CENTS {
            return Decision::Allow;
        }
        let dollars = format!("${}.{:02}", amount / 100, amount % 100);
        log(
            Level::Info,
            &format!("refund of {dollars} held for approval"),
        );
        Decision::RequireApproval(ApprovalRequest {
            approvers: vec!["approver".into()],
            scope: GrantScope::PerCall,
            redacted_arguments: vec!["/note".into()],
            reason: format!(
                "a refund of {dollars} to {} is over the $100 limit",
                args["account"].as_str().unwrap_or("an unnamed account")
            ),
        })
    }
}

export!(RefundGate);
