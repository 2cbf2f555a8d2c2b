//! The loop end to end on the real components: the refund flow with an
//! approval, every gate rule, limits, retries, tool errors, ask-user, skills,
//! interrupts and traces.

mod common;

use common::*;
use serde_json::json;
use std::sync::Arc;
use tack_engine::{
    ApprovalStatus, EngineError, EventData, Principal, Role, RunStop, Status, Verdict,
};

const REFUND: &str = r#"
scenarios:
  - match: "refund 150"
    steps:
      - tool_calls:
          - {name: read_balance, arguments: {account: acct_alice}}
          - {name: load_skill, arguments: {name: refund-policy}}
        usage: [100, 20]
      - tool_calls:
          - {name: issue_refund, arguments: {account: acct_alice, amount_cents: 15000, reason: damaged, idempotency_key: k-150, note: "customer \"note\"\n7f3a ü"}}
      - text: "Refund issued."
  - match: "refund 20"
    steps:
      - tool_calls:
          - {name: issue_refund, arguments: {account: acct_alice, amount_cents: 2000, reason: late}}
      - text: "Refunded $20."
"#;

async fn session(h: &Harness, agent_yaml: &str, input: &str) -> String {
    let rec = h
        .engine
        .register_agent(agent_yaml, &common::builder())
        .await
        .unwrap();
    h.engine
        .create_session(&rec.name, input, &user())
        .await
        .unwrap()
        .id
}

/// A refund-assistant session on `input` that waits for its approval: (session, approval id).
async fn waiting_refund(h: &Harness, input: &str) -> (String, String) {
    let s = session(
        h,
        &agent("refund-assistant", "scripted", Some("refunds"), ""),
        input,
    )
    .await;
    wait_status(&h.engine, &s, Status::WaitingApproval).await;
    let id = approval_ids(&h.engine.events(&s, 0, 1000).await.unwrap()).remove(0);
    (s, id)
}

#[tokio::test(flavor = "multi_thread")]
async fn refund_over_100_waits_for_an_approver_and_runs_exactly_once() {
    let h = Harness::start(REFUND).await;
    let s = session(
        &h,
        &agent("refund-assistant", "scripted", Some("refunds"), ""),
        "please refund 150 for the broken lamp",
    )
    .await;
    wait_status(&h.engine, &s, Status::WaitingApproval).await;

    let events = h.engine.events(&s, 0, 1000).await.unwrap();
    // Step 1 ran both calls (in parallel) before the second model call.
    let results = of_kind(&events, "tool_result");
    assert_eq!(results.len(), 2, "read_balance and load_skill");
    let call = of_kind(&events, "tool_call")
        .into_iter()
        .find(|e| matches!(&e.data, EventData::ToolCall { tool, .. } if tool == "issue_refund"))
        .expect("the refund call is logged");
    assert!(matches!(
        &call.data,
        EventData::ToolCall {
            approval_required: true,
            destructive: true,
            ..
        }
    ));
    let required = of_kind(&events, "approval_required");
    assert_eq!(required.len(), 1);
    let EventData::ApprovalRequired {
        approval_id,
        approvers,
        reason,
        arguments,
        ..
    } = &required[0].data
    else {
        unreachable!()
    };
    assert_eq!(approvers, &vec!["approver".to_string()]);
    assert!(reason.contains("$150.00"), "{reason}");
    assert!(
        matches!(&required[0].data, EventData::ApprovalRequired { policy, policy_version, .. }
            if policy == "refunds" && policy_version.starts_with("sha256:")),
        "the approval records which policy version asked"
    );
    assert_eq!(
        arguments["amount_cents"], 15000,
        "the approver sees the amount"
    );
    assert_eq!(arguments["note"], "[redacted]");
    assert!(
        h.ledger()["refunds"].as_array().unwrap().is_empty(),
        "nothing paid before approval"
    );

    h.engine
        .decide(&s, approval_id, &approver(), Verdict::Approve, None, None)
        .await
        .unwrap();
    let events = wait_finished(&h.engine, &s, 1).await;
    let refunds = h.ledger()["refunds"].as_array().unwrap().clone();
    assert_eq!(refunds.len(), 1, "exactly one refund: {refunds:?}");
    assert_eq!(refunds[0]["amount_cents"], 15000);
    assert_eq!(
        refunds[0]["note"], "customer \"note\"\n7f3a ü",
        "the tool got the real arguments"
    );

    let EventData::RunFinished {
        stop_reason,
        output,
        steps,
        ..
    } = &of_kind(&events, "run_finished")[0].data
    else {
        unreachable!()
    };
    assert_eq!(*stop_reason, RunStop::EndTurn);
    assert_eq!(output.as_deref(), Some("Refund issued."));
    assert_eq!(*steps, 3);
    let approved = of_kind(&events, "tool_result")
        .into_iter()
        .find(|e| matches!(&e.data, EventData::ToolResult { tool, .. } if tool == "issue_refund"))
        .unwrap();
    assert!(
        matches!(&approved.data, EventData::ToolResult { ok: true, approval, .. } if *approval == ApprovalStatus::Approved)
    );

    // Redacted arguments appear in no event (model_response and tool_call
    // included), not even the tool's echo of a value with quotes, a newline
    // and non-ASCII in it.
    let all = serde_json::to_string(&events).unwrap();
    assert!(
        !all.contains("7f3a"),
        "a redacted argument leaked into the log"
    );
    let echo = of_kind(&events, "tool_result")
        .into_iter()
        .find_map(|e| match &e.data {
            EventData::ToolResult { tool, content, .. } if tool == "issue_refund" => {
                Some(content.clone())
            }
            _ => None,
        })
        .unwrap();
    assert!(
        echo.contains("[redacted]"),
        "the tool echoed the note: {echo}"
    );

    // The skill's body went back to the model as a tool result.
    let second = &h.model.requests()[1].body;
    assert!(
        second
            .to_string()
            .contains("Refunds over $100 need a human approver")
    );
    assert!(
        h.model.requests()[0].body["messages"][0]["content"]
            .as_str()
            .unwrap()
            .contains("refund-policy: How to issue refunds."),
        "skills listed in the system prompt"
    );

    // Traces: one record per model call and per tool call, with the fields.
    let EventData::RunStarted { run_id, .. } = &of_kind(&events, "run_started")[0].data else {
        unreachable!()
    };
    let trace = h.engine.trace(&s, run_id).await.unwrap();
    assert_eq!(trace.iter().filter(|t| t.step_type == "model").count(), 3);
    let tool = trace
        .iter()
        .find(|t| t.tool.as_deref() == Some("issue_refund"))
        .unwrap();
    assert!(tool.approval_required);
    assert_eq!(tool.approval_status, Some(ApprovalStatus::Approved));
    assert!(tool.sandbox_id.is_some());
    assert_eq!(tool.plugin.as_deref(), Some("tack/payments@0.1.0"));
    let model = trace.iter().find(|t| t.step_type == "model").unwrap();
    assert_eq!((model.tokens_in, model.tokens_out), (100, 20));
    assert!((model.cost_usd - 0.12).abs() < 1e-9, "{}", model.cost_usd);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refund_under_100_runs_without_approval() {
    let h = Harness::start(REFUND).await;
    let s = session(
        &h,
        &agent("refund-assistant", "scripted", Some("refunds"), ""),
        "refund 20 please",
    )
    .await;
    let events = wait_finished(&h.engine, &s, 1).await;
    assert!(of_kind(&events, "approval_required").is_empty());
    assert_eq!(h.ledger()["refunds"].as_array().unwrap().len(), 1);
}

/// The runner writes some events together with the next step's first event
/// (a run's start with its model request, a step's last tool result with the
/// next model request, a final answer with `run_finished`): subscribers still
/// get every event once, in order, as the log has it, and a destructive call's
/// record is closed with its result.
#[tokio::test(flavor = "multi_thread")]
async fn live_events_are_the_log_when_steps_are_written_together() {
    // The step is the number of assistant turns: the first run answers, the
    // second refunds and answers.
    const SCRIPT: &str = r#"
scenarios:
  - steps:
      - text: "Ready."
      - tool_calls:
          - {name: issue_refund, arguments: {account: acct_alice, amount_cents: 2000, reason: late}}
      - text: "Refunded $20."
"#;
    let h = Harness::start(SCRIPT).await;
    let s = session(
        &h,
        &agent("refund-assistant", "scripted", Some("refunds"), ""),
        "hello",
    )
    .await;
    wait_finished(&h.engine, &s, 1).await;

    let (mut live, _) = h.engine.subscribe(&s).await.unwrap();
    h.engine
        .post_message(&s, "refund 20 please", &user())
        .await
        .unwrap();
    let mut seen = Vec::new();
    loop {
        let e = tokio::time::timeout(std::time::Duration::from_secs(30), live.recv())
            .await
            .expect("the second run ends")
            .expect("no event is missed");
        let done = matches!(
            e.data,
            EventData::StatusChanged {
                status: Status::Idle
            }
        );
        seen.push(tack_engine::LoggedEvent::clone(&e));
        if done {
            break;
        }
    }
    let log = h.engine.events(&s, 0, 1000).await.unwrap();
    let first = seen[0].seq;
    let logged: Vec<_> = log.iter().filter(|e| e.seq >= first).collect();
    assert_eq!(
        seen.iter()
            .map(|e| (e.seq, e.id.clone(), e.data.kind()))
            .collect::<Vec<_>>(),
        logged
            .iter()
            .map(|e| (e.seq, e.id.clone(), e.data.kind()))
            .collect::<Vec<_>>(),
        "live events and the log differ"
    );
    let kinds: Vec<_> = seen.iter().map(|e| e.data.kind()).collect();
    assert_eq!(
        kinds,
        [
            "user_message",
            "run_started",
            // The harness loads local files, which no key signed.
            "warning",
            "status_changed",
            "model_request",
            "model_response",
            "tool_call",
            "tool_result",
            "model_request",
            "model_response",
            "run_finished",
            "status_changed"
        ],
        "{kinds:?}"
    );
    assert_eq!(h.ledger()["refunds"].as_array().unwrap().len(), 1);

    // The refund's idempotency record was closed with its result.
    let EventData::ToolResult {
        run_id, call_id, ..
    } = &of_kind(&seen, "tool_result")[0].data
    else {
        unreachable!()
    };
    let store = tack_store::Store::open(&h.store_url).await.unwrap();
    let claim = store
        .claim_call(&s, &format!("{run_id}/{call_id}"))
        .await
        .unwrap();
    assert!(matches!(claim, tack_store::Claim::Done(_)), "{claim:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn decisions_are_checked_role_id_and_state() {
    let h = Harness::start(REFUND).await;
    let (s, id) = waiting_refund(&h, "refund 150 now").await;

    for role in [Role::User, Role::Builder] {
        let err = h
            .engine
            .decide(
                &s,
                &id,
                &Principal::new("mallory", role),
                Verdict::Approve,
                None,
                None,
            )
            .await
            .unwrap_err();
        assert!(matches!(err, EngineError::Forbidden(_)), "{role}: {err:?}");
        assert!(err.to_string().contains("approver"), "{err}");
    }
    let err = h
        .engine
        .decide(&s, "ap_unknown", &approver(), Verdict::Approve, None, None)
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::NotFound(_)), "{err:?}");
    assert!(h.ledger()["refunds"].as_array().unwrap().is_empty());

    h.engine
        .decide(
            &s,
            &id,
            &approver(),
            Verdict::Deny,
            Some("no receipt attached".into()),
            None,
        )
        .await
        .unwrap();
    let err = h
        .engine
        .decide(&s, &id, &approver(), Verdict::Approve, None, None)
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::Conflict(_)), "{err:?}");

    let events = wait_finished(&h.engine, &s, 1).await;
    assert!(
        h.ledger()["refunds"].as_array().unwrap().is_empty(),
        "denied: nothing paid"
    );
    let denied = of_kind(&events, "tool_result")
        .into_iter()
        .find(|e| matches!(&e.data, EventData::ToolResult { tool, .. } if tool == "issue_refund"))
        .unwrap();
    assert!(
        matches!(&denied.data, EventData::ToolResult { ok: false, approval, .. } if *approval == ApprovalStatus::Denied)
    );
    // The reason went to the model.
    let last = h.model.requests().last().unwrap().body.to_string();
    assert!(last.contains("no receipt attached"), "{last}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_approver_can_edit_the_arguments() {
    let h = Harness::start(REFUND).await;
    let (s, id) = waiting_refund(&h, "refund 150 now").await;
    let err = h
        .engine
        .decide(&s, &id, &approver(), Verdict::Edit, None, None)
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::Invalid(_)));
    // Arguments that do not fit the tool's schema are refused at decision
    // time, and the approval still waits.
    let err = h
        .engine
        .decide(
            &s,
            &id,
            &approver(),
            Verdict::Edit,
            None,
            Some(json!({"account": "acct_alice", "amount_cents": "lots", "reason": "partial"})),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::Invalid(_)), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("amount_cents") && text.contains("still waits"),
        "{text}"
    );
    assert_eq!(h.engine.pending_approvals().await.len(), 1);
    h.engine
        .decide(
            &s,
            &id,
            &approver(),
            Verdict::Edit,
            None,
            Some(json!({"account": "acct_alice", "amount_cents": 9000, "reason": "partial", "note": "edited-note-91c"})),
        )
        .await
        .unwrap();
    let events = wait_finished(&h.engine, &s, 1).await;
    let refunds = h.ledger()["refunds"].as_array().unwrap().clone();
    assert_eq!(refunds.len(), 1);
    assert_eq!(refunds[0]["amount_cents"], 9000);
    assert!(
        !serde_json::to_string(&events)
            .unwrap()
            .contains("edited-note-91c")
    );
}

const TWICE: &str = r#"
scenarios:
  - steps:
      - tool_calls: [{name: issue_refund, arguments: {account: acct_alice, amount_cents: 100, reason: a, note: n1}}]
      - tool_calls: [{name: issue_refund, arguments: {account: acct_alice, amount_cents: 200, reason: b, note: n2}}]
      - text: "first done"
      - tool_calls: [{name: issue_refund, arguments: {account: acct_alice, amount_cents: 300, reason: c, note: n3}}]
      - text: "second done"
"#;

#[tokio::test(flavor = "multi_thread")]
async fn a_session_grant_covers_later_calls_until_it_expires() {
    let extra = r#"
[approval-policies.session-refunds]
tools = ["issue_refund"]
scope = "session"
grant-ttl = "1h"
"#;
    let h = Harness::start_with(TWICE, None, extra).await;
    let s = session(
        &h,
        &agent("refund-assistant", "scripted", Some("session-refunds"), ""),
        "refunds",
    )
    .await;
    wait_status(&h.engine, &s, Status::WaitingApproval).await;
    let id = approval_ids(&h.engine.events(&s, 0, 1000).await.unwrap()).remove(0);
    h.engine
        .decide(&s, &id, &approver(), Verdict::Approve, None, None)
        .await
        .unwrap();
    let events = wait_finished(&h.engine, &s, 1).await;
    // The second refund of the run did not ask again.
    assert_eq!(approval_ids(&events).len(), 1);
    let statuses: Vec<ApprovalStatus> = of_kind(&events, "tool_result")
        .iter()
        .filter_map(|e| match &e.data {
            EventData::ToolResult { approval, .. } => Some(*approval),
            _ => None,
        })
        .collect();
    assert_eq!(
        statuses,
        vec![ApprovalStatus::Approved, ApprovalStatus::SessionGrant]
    );

    // After the grant expires, the same tool asks again.
    h.clock.advance(std::time::Duration::from_secs(3600));
    h.engine
        .post_message(&s, "one more", &user())
        .await
        .unwrap();
    wait_status(&h.engine, &s, Status::WaitingApproval).await;
    let events = h.engine.events(&s, 0, 1000).await.unwrap();
    assert_eq!(
        approval_ids(&events).len(),
        2,
        "the expired grant asks again"
    );
    assert_eq!(h.ledger()["refunds"].as_array().unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_policy_destructive_tools_need_an_approver() {
    let h = Harness::start(REFUND).await;
    let s = session(
        &h,
        &agent("refund-assistant", "scripted", None, ""),
        "refund 20 please",
    )
    .await;
    wait_status(&h.engine, &s, Status::WaitingApproval).await;
    let events = h.engine.events(&s, 0, 1000).await.unwrap();
    let EventData::ApprovalRequired { policy, .. } = &of_kind(&events, "approval_required")[0].data
    else {
        unreachable!()
    };
    assert_eq!(policy, "central");
}

const LOOPING: &str = r#"
scenarios:
  - match: "carol"
    steps:
      - tool_calls: [{name: read_balance, arguments: {account: acct_carol}}]
      - text: "Carol has no account."
  - match: "busy"
    steps:
      - fail: {status: 429, times: 2}
        text: "Finally."
  - match: "down"
    steps:
      - fail: {status: 503, times: 9}
        text: "never"
  - match: "ask"
    steps:
      - tool_calls: [{name: ask_user, arguments: {question: "Which order?", choices: ["o-1", "o-2"]}}]
      - text: "Thanks."
  - match: "huge"
    steps:
      - text: "I read the whole internet."
        usage: [18446744073709551615, 18446744073709551615]
  - match: "slow"
    steps:
      - hold: true
        text: "too late"
  - steps:
      - tool_calls: [{name: read_balance, arguments: {account: acct_alice}}, {name: read_balance, arguments: {account: acct_bob}}]
        usage: [1000, 1000]
      - tool_calls: [{name: read_balance, arguments: {account: acct_alice}}]
        usage: [1000, 1000]
      - tool_calls: [{name: read_balance, arguments: {account: acct_alice}}]
        usage: [1000, 1000]
      - text: "done"
"#;

fn finished(events: &[tack_engine::LoggedEvent]) -> (RunStop, u32) {
    match &of_kind(events, "run_finished").last().unwrap().data {
        EventData::RunFinished {
            stop_reason, steps, ..
        } => (*stop_reason, *steps),
        _ => unreachable!(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn limits_stop_the_run_budget_before_the_model_call() {
    let h = Harness::start(LOOPING).await;
    // $2 per step at these prices: the third call would exceed $3.
    let s = session(
        &h,
        &agent("budget", "scripted", None, "limits:\n  max-cost-usd: 3\n"),
        "balances",
    )
    .await;
    let events = wait_finished(&h.engine, &s, 1).await;
    assert_eq!(finished(&events), (RunStop::BudgetReached, 2));
    assert_eq!(
        of_kind(&events, "model_request").len(),
        2,
        "no model call after the budget"
    );

    let s = session(
        &h,
        &agent("steps", "scripted", None, "limits:\n  max-steps: 1\n"),
        "balances",
    )
    .await;
    let events = wait_finished(&h.engine, &s, 1).await;
    assert_eq!(finished(&events), (RunStop::MaxSteps, 1));
    // Both parallel calls of the step ran.
    assert_eq!(of_kind(&events, "tool_result").len(), 2);

    let s = session(
        &h,
        &agent("tokens", "scripted", None, "limits:\n  max-tokens: 3000\n"),
        "balances",
    )
    .await;
    let events = wait_finished(&h.engine, &s, 1).await;
    assert_eq!(finished(&events), (RunStop::TokenLimit, 2));

    let s = session(
        &h,
        &agent("slow", "scripted", None, "limits:\n  timeout: 1s\n"),
        "slow",
    )
    .await;
    let events = wait_finished(&h.engine, &s, 1).await;
    assert_eq!(finished(&events).0, RunStop::Timeout, "{events:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn tool_errors_go_back_to_the_model() {
    let h = Harness::start(LOOPING).await;
    let s = session(&h, &agent("a", "scripted", None, ""), "carol").await;
    let events = wait_finished(&h.engine, &s, 1).await;
    assert_eq!(finished(&events), (RunStop::EndTurn, 2));
    let r = &of_kind(&events, "tool_result")[0].data;
    assert!(
        matches!(r, EventData::ToolResult { ok: false, error_code: Some(c), .. } if c == "not_found"),
        "{r:?}"
    );
    let last = h.model.requests().last().unwrap().body.to_string();
    assert!(
        last.contains("acct_carol"),
        "the error reached the model: {last}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn rate_limits_and_server_errors_are_retried_as_events() {
    let h = Harness::start(LOOPING).await;
    let s = session(&h, &agent("a", "scripted", None, ""), "busy").await;
    let events = wait_finished(&h.engine, &s, 1).await;
    let retries = of_kind(&events, "model_retry");
    assert_eq!(retries.len(), 2);
    assert!(matches!(
        &retries[0].data,
        EventData::ModelRetry {
            status: Some(429),
            attempt: 1,
            ..
        }
    ));
    assert_eq!(finished(&events), (RunStop::EndTurn, 1));

    let s = session(&h, &agent("b", "scripted", None, ""), "down").await;
    let events = wait_finished(&h.engine, &s, 1).await;
    assert_eq!(
        of_kind(&events, "model_retry").len(),
        3,
        "4 attempts in all"
    );
    assert_eq!(finished(&events).0, RunStop::Error);
    assert!(of_kind(&events, "error").iter().any(|e| matches!(&e.data, EventData::Error { error_type, message, .. } if error_type == "model" && message.contains("503"))));
}

#[tokio::test(flavor = "multi_thread")]
async fn ask_user_pauses_for_the_answer() {
    let h = Harness::start(LOOPING).await;
    let s = session(&h, &agent("a", "scripted", None, ""), "ask me").await;
    wait_status(&h.engine, &s, Status::WaitingInput).await;
    let events = h.engine.events(&s, 0, 1000).await.unwrap();
    let EventData::AskUser {
        question_id,
        question,
        choices,
        ..
    } = &of_kind(&events, "ask_user")[0].data
    else {
        unreachable!()
    };
    assert_eq!(question, "Which order?");
    assert_eq!(choices, &vec!["o-1".to_string(), "o-2".to_string()]);
    assert!(h.engine.answer(&s, "nope", "o-2", &user()).await.is_err());
    h.engine
        .answer(&s, question_id, "o-2", &user())
        .await
        .unwrap();
    let events = wait_finished(&h.engine, &s, 1).await;
    assert_eq!(finished(&events), (RunStop::EndTurn, 2));
    assert!(
        h.model
            .requests()
            .last()
            .unwrap()
            .body
            .to_string()
            .contains("o-2")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_interrupt_cancels_the_model_call() {
    let h = Harness::start(LOOPING).await;
    let s = session(&h, &agent("a", "scripted", None, ""), "slow").await;
    // The model has the request and holds its answer (never released).
    for _ in 0..2000 {
        if !h.model.requests().is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(h.model.requests().len(), 1, "the model call started");
    h.engine.interrupt(&s, &user()).await.unwrap();
    // The run ends while the model still holds its answer: a run that
    // waited for it would never finish.
    let events = wait_finished(&h.engine, &s, 1).await;
    assert_eq!(finished(&events).0, RunStop::Cancelled);
    assert_eq!(h.model.answered(), 0, "the run did not wait for the answer");
    assert!(of_kind(&events, "model_response").is_empty(), "{events:?}");
    assert!(
        h.engine.interrupt(&s, &user()).await.is_err(),
        "nothing left to interrupt"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_anthropic_adapter_runs_the_same_loop() {
    let h = Harness::start(LOOPING).await;
    let s = session(&h, &agent("a", "scripted-anthropic", None, ""), "carol").await;
    let events = wait_finished(&h.engine, &s, 1).await;
    assert_eq!(finished(&events), (RunStop::EndTurn, 2));
    assert!(h.model.requests().iter().all(|r| r.path == "/v1/messages"));
}

#[tokio::test(flavor = "multi_thread")]
async fn agent_files_are_validated_and_versioned() {
    let h = Harness::start(LOOPING).await;
    let a = h
        .engine
        .register_agent(&agent("v", "scripted", None, ""), &common::builder())
        .await
        .unwrap();
    let b = h
        .engine
        .register_agent(&agent("v", "scripted", None, ""), &common::builder())
        .await
        .unwrap();
    assert_eq!(
        (a.version, b.version),
        (1, 1),
        "unchanged file, same version"
    );
    let c = h
        .engine
        .register_agent(
            &agent("v", "scripted", None, "limits:\n  max-steps: 3\n"),
            &common::builder(),
        )
        .await
        .unwrap();
    assert_eq!(c.version, 2);
    let err = h
        .engine
        .register_agent(&agent("v", "nope", None, ""), &common::builder())
        .await
        .unwrap_err();
    assert!(
        matches!(err, EngineError::Agent(_)) && err.to_string().contains("model"),
        "{err}"
    );
    let err = h
        .engine
        .create_session("v@9", "hi", &user())
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::NotFound(_)), "{err}");
    assert!(err.to_string().contains("has no version 9"), "{err}");
    let err = h
        .engine
        .create_session("never-registered", "hi", &user())
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::NotFound(_)), "{err}");
    assert!(err.to_string().contains("POST /v1/agents"), "{err}");
    // Without a version, a session runs the latest one.
    let s = h.engine.create_session("v", "hi", &user()).await.unwrap();
    assert_eq!((s.agent.as_str(), s.agent_version), ("v", 2));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_destructive_call_interrupted_by_a_crash_is_not_run_again() {
    let h = Harness::start(REFUND).await;
    let s = session(
        &h,
        &agent("refund-assistant", "scripted", Some("refunds"), ""),
        "refund 150 now",
    )
    .await;
    wait_status(&h.engine, &s, Status::WaitingApproval).await;
    let events = h.engine.events(&s, 0, 1000).await.unwrap();
    let (run_id, call_id) = events
        .iter()
        .find_map(|e| match &e.data {
            EventData::ApprovalRequired {
                run_id, call_id, ..
            } => Some((run_id.clone(), call_id.clone())),
            _ => None,
        })
        .unwrap();
    // As if a host had claimed the call and died before recording its outcome.
    h.engine
        .store()
        .claim_call(&s, &format!("{run_id}/{call_id}"))
        .await
        .unwrap();
    let id = approval_ids(&events).remove(0);
    h.engine
        .decide(&s, &id, &approver(), Verdict::Approve, None, None)
        .await
        .unwrap();
    let events = wait_finished(&h.engine, &s, 1).await;
    assert!(
        h.ledger()["refunds"].as_array().unwrap().is_empty(),
        "not run a second time"
    );
    let r = of_kind(&events, "tool_result")
        .into_iter()
        .find(|e| matches!(&e.data, EventData::ToolResult { tool, .. } if tool == "issue_refund"))
        .unwrap();
    assert!(
        matches!(&r.data, EventData::ToolResult { ok: false, error_code: Some(c), .. } if c == "outcome_unknown"),
        "{r:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restarted_engine_continues_a_waiting_run() {
    let h = Harness::start(REFUND).await;
    let (s, id) = waiting_refund(&h, "refund 150 now").await;
    let second = h.restart().await;
    assert_eq!(
        second.pending_approvals().await.len(),
        1,
        "the approval is held by the store"
    );
    second
        .decide(&s, &id, &approver(), Verdict::Approve, None, None)
        .await
        .unwrap();
    wait_finished(&second, &s, 1).await;
    assert_eq!(h.ledger()["refunds"].as_array().unwrap().len(), 1);
}

const SKILL_TOOLS: &str = r#"
scenarios:
  - steps:
      - tool_calls: [{name: jq, arguments: {filter: ".a", input: {a: 1}}}]
      - tool_calls: [{name: load_skill, arguments: {name: data-skill}}]
      - tool_calls: [{name: jq, arguments: {filter: ".a", input: {a: 41}}}]
      - text: "done"
"#;

#[tokio::test(flavor = "multi_thread")]
async fn a_loaded_skill_brings_its_tools() {
    let h = Harness::start(SKILL_TOOLS).await;
    let yaml = "name: data\ndescription: Data.\nmodel: scripted\ninstructions: Work with data.\nskills:\n  - tack/data-skill@0.1.0\n";
    let s = session(&h, yaml, "reshape this").await;
    let events = wait_finished(&h.engine, &s, 1).await;
    let results: Vec<(String, bool, String)> = of_kind(&events, "tool_result")
        .iter()
        .filter_map(|e| match &e.data {
            EventData::ToolResult {
                tool, ok, content, ..
            } => Some((tool.clone(), *ok, content.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(results.len(), 3, "{results:?}");
    assert!(
        !results[0].1 && results[0].2.contains("no tool `jq`"),
        "not callable before loading: {results:?}"
    );
    assert!(
        results[1].1 && results[1].2.contains("Use jq."),
        "{results:?}"
    );
    assert_eq!(
        (results[2].1, results[2].2.as_str()),
        (true, "41"),
        "callable after loading"
    );
    // The model was offered jq only after the skill was loaded.
    let offered = |i: usize| {
        h.model.requests()[i].body["tools"]
            .to_string()
            .contains("\"jq\"")
    };
    assert!(!offered(0) && offered(2));
}

/// What a host that died right after taking a message leaves behind: a session
/// marked `queued` whose log holds only that message.
async fn queued_before_a_crash(h: &Harness) -> tack_store::SessionRecord {
    let rec = h
        .engine
        .register_agent(&agent("a", "scripted", None, ""), &common::builder())
        .await
        .unwrap();
    let store = h.engine.store();
    let s = store.create_session(&rec.name, rec.version).await.unwrap();
    store
        .append(
            &s.id,
            "user_message",
            &json!({"text": "carol", "by": "una"}),
        )
        .await
        .unwrap();
    store
        .set_status(&s.id, tack_store::SessionStatus::Queued)
        .await
        .unwrap();
    s
}

#[tokio::test(flavor = "multi_thread")]
async fn a_message_queued_before_a_crash_runs_after_restart() {
    let h = Harness::start(LOOPING).await;
    let s = queued_before_a_crash(&h).await;
    let second = h.restart().await;
    let events = wait_finished(&second, &s.id, 1).await;
    assert_eq!(finished(&events), (RunStop::EndTurn, 2));
    assert_eq!(
        h.engine
            .store()
            .session(&s.id)
            .await
            .unwrap()
            .unwrap()
            .status,
        tack_store::SessionStatus::Idle,
        "the status follows the run"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_sessions_are_unloaded_and_come_back_from_the_log() {
    const SCRIPT: &str = r#"
scenarios:
  - match: "refund 150"
    steps:
      - tool_calls:
          - {name: issue_refund, arguments: {account: acct_alice, amount_cents: 15000, reason: damaged}}
      - text: "Refund issued."
  - steps:
      - text: "Hello."
"#;
    let h = Harness::start(SCRIPT).await;
    let rec = h
        .engine
        .register_agent(
            &agent("a", "scripted", Some("refunds"), ""),
            &common::builder(),
        )
        .await
        .unwrap();
    let start = |input: String| {
        let (engine, name) = (h.engine.clone(), rec.name.clone());
        async move {
            engine
                .create_session(&name, &input, &user())
                .await
                .unwrap()
                .id
        }
    };
    let waiting = start("please refund 150".into()).await;
    wait_status(&h.engine, &waiting, Status::WaitingApproval).await;
    let first = start("hi".into()).await;
    wait_finished(&h.engine, &first, 1).await;

    // Many more sessions come and go.
    const MORE: usize = 300;
    for batch in 0..MORE / 20 {
        let mut ids = Vec::new();
        for i in 0..20 {
            ids.push(start(format!("hi {batch}-{i}")).await);
        }
        for id in ids {
            wait_finished(&h.engine, &id, 1).await;
        }
    }
    let loaded = h.engine.loaded_sessions();
    assert!(loaded < MORE, "finished sessions stay loaded: {loaded}");

    // The waiting session was kept: its approval is still listed and decidable.
    let pending = h.engine.pending_approvals().await;
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].0, waiting);
    let id = approval_ids(&h.engine.events(&waiting, 0, 100).await.unwrap()).remove(0);
    h.engine
        .decide(&waiting, &id, &approver(), Verdict::Approve, None, None)
        .await
        .unwrap();
    wait_finished(&h.engine, &waiting, 1).await;
    assert_eq!(h.ledger()["refunds"].as_array().unwrap().len(), 1);

    // An unloaded session comes back from its log and runs again.
    h.engine
        .post_message(&first, "hi again", &user())
        .await
        .unwrap();
    let events = wait_finished(&h.engine, &first, 2).await;
    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(
        seqs,
        (1..=events.len() as u64).collect::<Vec<_>>(),
        "gap-free log"
    );
    let runs: std::collections::HashSet<_> = events
        .iter()
        .filter_map(|e| match &e.data {
            EventData::RunFinished { run_id, .. } => Some(run_id.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(runs.len(), 2, "two distinct runs");
}

/// An agent whose tool no source has fails to start with the reason kept as the
/// error's source, not only as text.
#[tokio::test(flavor = "multi_thread")]
async fn an_unresolvable_agent_keeps_its_reason_as_the_source() {
    let h = Harness::start(LOOPING).await;
    let yaml = agent("ghost", "scripted", None, "").replace("tack/payments", "tack/ghost");
    h.engine
        .register_agent(&yaml, &common::builder())
        .await
        .unwrap();
    let err = h
        .engine
        .create_session("ghost", "hi", &user())
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("`tack/ghost@0.1.0` is not known to this source"),
        "{err}"
    );
    let source = std::error::Error::source(&err).expect("a source");
    assert!(
        matches!(
            source.downcast_ref::<tack_engine::SourceError>(),
            Some(tack_engine::SourceError::Unknown(r)) if r == "tack/ghost@0.1.0"
        ),
        "{source:?}"
    );
}

/// A provider reporting absurd token counts (2^64 - 1) ends the run with a model
/// error: its counts are not added up (they overflowed the run's totals before)
/// and the session goes idle instead of staying `running`.
#[tokio::test(flavor = "multi_thread")]
async fn implausible_token_usage_ends_the_run_as_a_model_error() {
    let h = Harness::start(LOOPING).await;
    let s = session(&h, &agent("u", "scripted", None, ""), "huge usage").await;
    let events = wait_finished(&h.engine, &s, 1).await;
    assert_eq!(finished(&events).0, RunStop::Error);
    assert!(
        of_kind(&events, "error").iter().any(|e| matches!(
            &e.data,
            EventData::Error { error_type, message, .. }
                if error_type == "model" && message.contains("implausible token usage")
        )),
        "{events:?}"
    );
    wait_status(&h.engine, &s, Status::Idle).await;
}

/// A component source that panics: a stand-in for any bug a runner may hit.
struct Panicking;

impl tack_engine::ComponentSource for Panicking {
    fn fetch<'a>(
        &'a self,
        _: &'a str,
    ) -> futures_util::future::BoxFuture<'a, Result<tack_engine::Artifact, tack_engine::SourceError>>
    {
        Box::pin(async { panic!("a bug in a component source") })
    }
}

/// A runner that panics ends its run with `stop_reason: error` and a logged
/// error; the session does not stay `running` with nobody driving it.
#[tokio::test(flavor = "multi_thread")]
async fn a_panicking_runner_ends_its_run_instead_of_wedging_the_session() {
    let h = Harness::start(LOOPING).await;
    // A session with a queued message, then a host whose runner will panic.
    let s = queued_before_a_crash(&h).await;
    let second = common::engine_with(
        &h.model.base_url(),
        &h.dir.path().join("payments"),
        &h.store_url,
        "",
        Arc::new(Panicking),
    )
    .await;
    second.resume().await.unwrap();
    let events = wait_finished(&second, &s.id, 1).await;
    assert_eq!(finished(&events).0, RunStop::Error);
    assert!(
        of_kind(&events, "error").iter().any(|e| matches!(
            &e.data,
            EventData::Error { message, .. } if message.contains("a bug in a component source")
        )),
        "{events:?}"
    );
    wait_status(&second, &s.id, Status::Idle).await;
}

/// The host's `[limits]` cap every agent: a file asking more is refused naming
/// the field and the key (a timeout that would overflow a clock included), a
/// file asking nothing runs under the cap, and a user's message and session
/// count are bounded.
#[tokio::test(flavor = "multi_thread")]
async fn host_limits_cap_agents_messages_and_sessions() {
    let h = Harness::start_with(
        LOOPING,
        None,
        "[limits]\nagent-max-steps = 2\nagent-timeout = \"10m\"\nmax-message-bytes = 100\nsessions-per-user = 2\n",
    )
    .await;
    let refused = |limits: &'static str| {
        let yaml = agent("capped", "scripted", None, limits);
        let engine = h.engine.clone();
        async move {
            engine
                .register_agent(&yaml, &common::builder())
                .await
                .unwrap_err()
                .to_string()
        }
    };
    let e = refused("limits:\n  max-steps: 3\n").await;
    assert!(
        e.contains("limits.max-steps") && e.contains("agent-max-steps"),
        "{e}"
    );
    let e = refused("limits:\n  timeout: 9999999999m\n").await;
    assert!(
        e.contains("limits.timeout") && e.contains("agent-timeout"),
        "{e}"
    );
    let e = refused("limits:\n  max-cost-usd: -1\n").await;
    assert!(e.contains("limits.max-cost-usd"), "{e}");

    // Nothing asked: the cap applies.
    let s = session(&h, &agent("uncapped", "scripted", None, ""), "balances").await;
    let events = wait_finished(&h.engine, &s, 1).await;
    assert_eq!(finished(&events), (RunStop::MaxSteps, 2));

    let e = h
        .engine
        .post_message(&s, &"x".repeat(101), &user())
        .await
        .unwrap_err();
    assert!(matches!(e, EngineError::Invalid(_)), "{e}");
    assert!(e.to_string().contains("max-message-bytes"), "{e}");
    let e = h
        .engine
        .create_session("uncapped", &"x".repeat(101), &user())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("`input` is 101 bytes"), "{e}");

    // The user owns one session; a second is allowed, a third is not.
    h.engine
        .create_session("uncapped", "balances", &user())
        .await
        .unwrap();
    let e = h
        .engine
        .create_session("uncapped", "balances", &user())
        .await
        .unwrap_err();
    assert!(matches!(e, EngineError::Quota(_)), "{e}");
    assert!(e.to_string().contains("sessions-per-user"), "{e}");
    // Other roles are not users: no per-user cap.
    h.engine
        .create_session("uncapped", "balances", &common::builder())
        .await
        .unwrap();
}

/// An interrupted run takes its undecided approvals with it: they leave the
/// pending list, a decision on one is refused as a conflict, and nothing is
/// paid.
#[tokio::test(flavor = "multi_thread")]
async fn approvals_of_an_interrupted_run_close_with_it() {
    let h = Harness::start(REFUND).await;
    let (s, approval) = waiting_refund(&h, "please refund 150").await;
    assert_eq!(h.engine.pending_approvals().await.len(), 1);
    h.engine.interrupt(&s, &user()).await.unwrap();
    let events = wait_finished(&h.engine, &s, 1).await;
    assert_eq!(finished(&events).0, RunStop::Cancelled);
    assert!(h.engine.pending_approvals().await.is_empty());
    let e = h
        .engine
        .decide(&s, &approval, &approver(), Verdict::Approve, None, None)
        .await
        .unwrap_err();
    assert!(matches!(e, EngineError::Conflict(_)), "{e}");
    assert!(e.to_string().contains("ended before it was decided"), "{e}");
    assert!(h.ledger()["refunds"].as_array().unwrap().is_empty());
}
