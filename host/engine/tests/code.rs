//! Code mode in the loop: `run_code` programs whose tool calls pass the
//! gate, wait for approvers, are logged under their program, and replay
//! from the log when the host restarts mid-program.

mod common;

use common::*;
use serde_json::{Value, json};
use tack_engine::{ApprovalStatus, EventData, LoggedEvent, RunStop, Status, Verdict};

/// A model that answers with one program, then with its result's gist.
const SCRIPT: &str = r#"
scenarios:
  - match: "two refunds"
    steps:
      - tool_calls:
          - name: run_code
            arguments:
              code: |
                const before = await tools.payments.read_balance({account: "acct_alice"});
                const first = await tools.payments.issue_refund({account: "acct_alice", amount_cents: 12000, reason: "lamp"});
                const second = await tools.payments.issue_refund({account: "acct_alice", amount_cents: 11000, reason: "mug"});
                console.log("refunded", first.refund.refund_id, second.refund.refund_id);
                return {before: before.balance_cents, after: second.balance_cents};
      - text: "Both refunds issued."
  - match: "denied"
    steps:
      - tool_calls:
          - name: run_code
            arguments:
              code: |
                try {
                  await tools.payments.issue_refund({account: "acct_alice", amount_cents: 15000, reason: "lamp"});
                  return "paid";
                } catch (e) {
                  return {code: e.code, message: e.message};
                }
      - text: "The refund was not approved."
  - match: "strangers"
    steps:
      - tool_calls:
          - name: run_code
            arguments:
              code: |
                const out = [];
                for (const name of ["files", "payments"]) {
                  try { await tools[name].write({path: "x"}); } catch (e) { out.push(e.message); }
                }
                try { await tools.payments.read_balance({account: 42}); } catch (e) { out.push(e.code); }
                return out;
      - tool_calls:
          - {name: read_balance, arguments: {account: acct_alice}}
      - text: "Done."
"#;

fn code_agent(mode: &str) -> String {
    format!(
        "name: coder\ndescription: Refunds in code.\nmodel: scripted\ninstructions: Use code.\n\
         tools:\n  - tack/payments@0.1.0\napproval-policy: refunds\ncode-mode: {mode}\n"
    )
}

async fn start(h: &Harness, mode: &str, input: &str) -> String {
    let rec = h
        .engine
        .register_agent(&code_agent(mode), &builder())
        .await
        .unwrap();
    h.engine
        .create_session(&rec.name, input, &user())
        .await
        .unwrap()
        .id
}

/// The `tool_result` events of calls `run_code` call `parent`'s program made.
fn nested<'a>(events: &'a [LoggedEvent], parent: &str) -> Vec<&'a LoggedEvent> {
    events
        .iter()
        .filter(|e| matches!(&e.data, EventData::ToolResult { parent_call_id: Some(p), .. } if p == parent))
        .collect()
}

fn run_code_id(events: &[LoggedEvent]) -> String {
    events
        .iter()
        .find_map(|e| match &e.data {
            EventData::ToolCall { tool, call_id, .. } if tool == "run_code" => {
                Some(call_id.clone())
            }
            _ => None,
        })
        .expect("a run_code call")
}

/// Approve the one pending approval of `session` and return its event.
async fn approve_next(engine: &tack_engine::Engine, session: &str, seen: usize) -> String {
    let events = engine.events(session, 0, 1000).await.unwrap();
    let ids = approval_ids(&events);
    assert_eq!(ids.len(), seen + 1, "one more approval is pending");
    let id = ids[seen].clone();
    engine
        .decide(session, &id, &approver(), Verdict::Approve, None, None)
        .await
        .unwrap();
    id
}

/// Wait until `session` has `n` approval requests and waits for one.
async fn wait_approvals(engine: &tack_engine::Engine, session: &str, n: usize) {
    for _ in 0..2000 {
        let events = engine.events(session, 0, 1000).await.unwrap();
        if approval_ids(&events).len() >= n
            && engine.status(session).await.unwrap() == Some(Status::WaitingApproval)
        {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("session {session} never reached {n} approvals");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_programs_gated_calls_wait_for_approvers_and_run_once_each() {
    let h = Harness::start(SCRIPT).await;
    let s = start(&h, "true", "two refunds").await;
    wait_approvals(&h.engine, &s, 1).await;

    let events = h.engine.events(&s, 0, 1000).await.unwrap();
    let parent = run_code_id(&events);
    // The balance was read inside the program; the refund waits for an
    // approver, as a direct call would, and names the program.
    let read = nested(&events, &parent);
    assert_eq!(read.len(), 1, "the read ran before the refund");
    assert!(
        matches!(&read[0].data, EventData::ToolResult { call_id, tool, ok: true, .. }
            if *call_id == format!("{parent}.1") && tool == "read_balance")
    );
    let request = events
        .iter()
        .find(|e| e.data.kind() == "approval_required")
        .unwrap();
    assert!(
        matches!(&request.data, EventData::ApprovalRequired { call_id, parent_call_id: Some(p), tool, .. }
            if *call_id == format!("{parent}.2") && *p == parent && tool == "issue_refund"),
        "{request:?}"
    );
    assert_eq!(h.ledger()["refunds"].as_array().unwrap().len(), 0);

    approve_next(&h.engine, &s, 0).await;
    wait_approvals(&h.engine, &s, 2).await;
    assert_eq!(h.ledger()["refunds"].as_array().unwrap().len(), 1);
    approve_next(&h.engine, &s, 1).await;
    let events = wait_finished(&h.engine, &s, 1).await;

    let refunds = h.ledger()["refunds"].as_array().unwrap().clone();
    assert_eq!(refunds.len(), 2, "{refunds:?}");
    // Each program call: tool_call and tool_result under the program; the
    // model got one result, the program's.
    let results = nested(&events, &parent);
    assert_eq!(results.len(), 3);
    let statuses: Vec<ApprovalStatus> = results
        .iter()
        .map(|e| match &e.data {
            EventData::ToolResult { approval, .. } => *approval,
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(
        statuses,
        [
            ApprovalStatus::NotRequired,
            ApprovalStatus::Approved,
            ApprovalStatus::Approved
        ]
    );
    let top: Vec<&LoggedEvent> = of_kind(&events, "tool_result")
        .into_iter()
        .filter(|e| {
            matches!(
                &e.data,
                EventData::ToolResult {
                    parent_call_id: None,
                    ..
                }
            )
        })
        .collect();
    assert_eq!(top.len(), 1);
    let EventData::ToolResult {
        ok, content, tool, ..
    } = &top[0].data
    else {
        unreachable!()
    };
    assert!(ok, "{content}");
    assert_eq!(tool, "run_code");
    let (value, console) = content.split_once("\n\nconsole:\n").unwrap();
    let value: Value = serde_json::from_str(value).unwrap();
    assert_eq!(
        value["after"].as_i64().unwrap() - value["before"].as_i64().unwrap(),
        23_000
    );
    assert_eq!(console.trim(), "refunded rf_1 rf_2");
    // The session went waiting_approval and back to running per wait.
    let statuses: Vec<Status> = events
        .iter()
        .filter_map(|e| match e.data {
            EventData::StatusChanged { status } => Some(status),
            _ => None,
        })
        .collect();
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == Status::WaitingApproval)
            .count(),
        2
    );
    let finished = events.last().unwrap();
    assert!(matches!(
        finished.data,
        EventData::StatusChanged {
            status: Status::Idle
        }
    ));
    // The trace has each program call under its program.
    let run_id = match &events
        .iter()
        .find(|e| e.data.kind() == "run_started")
        .unwrap()
        .data
    {
        EventData::RunStarted { run_id, .. } => run_id.clone(),
        _ => unreachable!(),
    };
    let trace = h.engine.trace(&s, &run_id).await.unwrap();
    let children = trace
        .iter()
        .filter(|r| r.parent_call_id.as_deref() == Some(parent.as_str()))
        .count();
    assert_eq!(children, 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_denied_call_throws_in_the_program_with_the_reason() {
    let h = Harness::start(SCRIPT).await;
    let s = start(&h, "only", "denied").await;
    wait_approvals(&h.engine, &s, 1).await;
    let events = h.engine.events(&s, 0, 1000).await.unwrap();
    let id = approval_ids(&events).remove(0);
    h.engine
        .decide(
            &s,
            &id,
            &approver(),
            Verdict::Deny,
            Some("not without a photo".into()),
            None,
        )
        .await
        .unwrap();
    let events = wait_finished(&h.engine, &s, 1).await;
    let parent = run_code_id(&events);
    let program = events
        .iter()
        .find_map(|e| match &e.data {
            EventData::ToolResult {
                call_id, content, ..
            } if *call_id == parent => Some(content.clone()),
            _ => None,
        })
        .unwrap();
    let v: Value = serde_json::from_str(&program).unwrap();
    assert_eq!(v["code"], "permission_denied");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("not without a photo"),
        "{v}"
    );
    assert!(h.ledger()["refunds"].as_array().unwrap().is_empty());
    assert!(matches!(
        nested(&events, &parent)[0].data,
        EventData::ToolResult {
            ok: false,
            approval: ApprovalStatus::Denied,
            ..
        }
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn only_mode_offers_the_tools_through_code_alone() {
    let h = Harness::start(SCRIPT).await;
    let s = start(&h, "only", "strangers").await;
    let events = wait_finished(&h.engine, &s, 1).await;
    let parent = run_code_id(&events);
    let results: Vec<(String, bool, String)> = events
        .iter()
        .filter_map(|e| match &e.data {
            EventData::ToolResult {
                call_id,
                ok,
                content,
                ..
            } => Some((call_id.clone(), *ok, content.clone())),
            _ => None,
        })
        .collect();
    // In the program, neither a namespace nor a tool the agent lacks is
    // there at all; forged arguments fail the tool's schema.
    let program = &results.iter().find(|r| r.0 == parent).unwrap().2;
    let v: Value = serde_json::from_str(program).unwrap();
    let v = v.as_array().unwrap();
    assert!(
        v[0].as_str().unwrap().contains("not a function")
            || v[0].as_str().unwrap().contains("undefined"),
        "{v:?}"
    );
    assert!(v[1].as_str().unwrap().contains("not a function"), "{v:?}");
    assert_eq!(v[2], json!("invalid_arguments"));
    // Directly, the model has no `read_balance`: only run_code and ask_user.
    let direct = results
        .iter()
        .find(|r| r.0 != parent && !r.0.starts_with(&format!("{parent}.")))
        .unwrap();
    assert!(!direct.1);
    assert!(
        direct.2.contains("there is no tool `read_balance`"),
        "{direct:?}"
    );
    let finished = events
        .iter()
        .find_map(|e| match &e.data {
            EventData::RunFinished { stop_reason, .. } => Some(*stop_reason),
            _ => None,
        })
        .unwrap();
    assert_eq!(finished, RunStop::EndTurn);
    let request = h.model.requests().into_iter().next().unwrap().body;
    let names: Vec<&str> = request["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["ask_user", "run_code"]);
    let description = request["tools"][1]["function"]["description"]
        .as_str()
        .unwrap();
    assert!(
        description.contains("issue_refund(args: {"),
        "the declarations are in the description: {description}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restarted_host_replays_the_programs_calls_and_pays_once() {
    let h = Harness::start(SCRIPT).await;
    let s = start(&h, "true", "two refunds").await;
    wait_approvals(&h.engine, &s, 1).await;
    approve_next(&h.engine, &s, 0).await;
    wait_approvals(&h.engine, &s, 2).await;
    assert_eq!(h.ledger()["refunds"].as_array().unwrap().len(), 1);

    // The host stops while the program waits for its second approval; a
    // new one runs the program again from the start.
    let restarted = h.restart().await;
    wait_status(&restarted, &s, Status::WaitingApproval).await;
    approve_next(&restarted, &s, 1).await;
    let events = wait_finished(&restarted, &s, 1).await;

    let refunds = h.ledger()["refunds"].as_array().unwrap().clone();
    assert_eq!(refunds.len(), 2, "each refund paid once: {refunds:?}");
    let parent = run_code_id(&events);
    let ids: Vec<String> = nested(&events, &parent)
        .iter()
        .map(|e| match &e.data {
            EventData::ToolResult { call_id, .. } => call_id.clone(),
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(
        ids,
        [
            format!("{parent}.1"),
            format!("{parent}.2"),
            format!("{parent}.3")
        ],
        "one result per call: the first two came from the log"
    );
    assert_eq!(approval_ids(&events).len(), 2, "no approval asked twice");
    let program = events
        .iter()
        .find_map(|e| match &e.data {
            EventData::ToolResult {
                call_id,
                ok: true,
                content,
                ..
            } if *call_id == parent => Some(content.clone()),
            _ => None,
        })
        .unwrap();
    assert!(program.contains("refunded rf_1 rf_2"), "{program}");
}

/// The example in `examples/order-audit`: the same question answered by one
/// program, and tool call by tool call; the program's run reads a fraction
/// of the tokens, and finds the answer itself.
#[tokio::test(flavor = "multi_thread")]
async fn the_order_audit_example_answers_in_one_program_for_far_fewer_tokens() {
    let example = tack_tests::workspace_root().join("examples/order-audit");
    let read = |f: &str| std::fs::read_to_string(example.join(f)).unwrap();
    // The example's model, `demo-audit`, is the harness's `scripted` here.
    let h = Harness::start_with(&read("demo-model.yaml"), None, "").await;
    let question = "Which of these 500 orders over $100 were refunded twice?";
    let mut runs = Vec::new();
    for file in ["agent.yaml", "agent-tool-by-tool.yaml"] {
        let rec = h
            .engine
            .register_agent(
                &read(file).replace("model: demo-audit", "model: scripted"),
                &builder(),
            )
            .await
            .unwrap();
        let s = h
            .engine
            .create_session(&rec.name, question, &user())
            .await
            .unwrap()
            .id;
        runs.push(wait_finished(&h.engine, &s, 1).await);
    }
    let tokens = |events: &[LoggedEvent]| {
        events
            .iter()
            .find_map(|e| match &e.data {
                EventData::RunFinished {
                    stop_reason,
                    input_tokens,
                    ..
                } => {
                    assert_eq!(*stop_reason, RunStop::EndTurn);
                    Some(*input_tokens)
                }
                _ => None,
            })
            .unwrap()
    };
    let (code, direct) = (&runs[0], &runs[1]);
    // Code mode: the model made one call, run_code; its program made seven.
    let top: Vec<&str> = code
        .iter()
        .filter_map(|e| match &e.data {
            EventData::ToolCall {
                tool,
                parent_call_id: None,
                ..
            } => Some(tool.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(top, ["run_code"]);
    let parent = run_code_id(code);
    assert_eq!(nested(code, &parent).len(), 7);
    let result = code
        .iter()
        .find_map(|e| match &e.data {
            EventData::ToolResult {
                call_id,
                content,
                ok: true,
                ..
            } if *call_id == parent => Some(content.clone()),
            _ => None,
        })
        .unwrap();
    let (value, console) = result.split_once("\n\nconsole:\n").unwrap();
    let orders: Vec<String> = serde_json::from_str::<Value>(value)
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["order"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        orders,
        [
            "ord_0097", "ord_0107", "ord_0192", "ord_0211", "ord_0245", "ord_0356"
        ]
    );
    assert_eq!(console.trim(), "checked 500 orders and 157 refunds");
    // Tool by tool: seven results in the prompt.
    assert_eq!(of_kind(direct, "tool_result").len(), 7);
    let (code, direct) = (tokens(code), tokens(direct));
    eprintln!("input tokens: code mode {code}, tool by tool {direct}");
    assert!(
        code * 10 < direct,
        "code mode read {code} input tokens, tool by tool {direct}"
    );
}
