//! Model adapters and policy components as components: the OpenAI-compatible and
//! Anthropic adapters against the scripted model server (JSON and SSE, tool
//! calls, usage, errors), credential injection by the host, and the refund gate.

use std::sync::{Arc, Mutex};
use std::time::Duration;
use tack_runtime::{
    BoundAdapter, CallContext, CompletionRequest, Credential, Decision, GateRequest, Grant,
    Message, ModelOutcome, Part, Role, StopReason, ToolDescriptor,
};
use tack_scripted_model::{Script, ScriptedModel};
use tack_tests::{guest, runtime};

const SCRIPT: &str = r#"
scenarios:
  - match: refund
    steps:
      - text: "Checking."
        tool_calls:
          - {name: read_balance, arguments: {account: acct_alice}}
          - {name: lookup_order, arguments: {order: "o-1", verbose: true}}
        usage: [120, 30]
      - text: "Done: the refund is on its way."
  - match: busy
    steps:
      - fail: {status: 429, times: 5, retry_after: 2}
        text: never
"#;

/// A value shaped like a provider key, generated per test run.
fn test_credential() -> String {
    format!(
        "sk-test-{}",
        ulid::Ulid::generate().to_string().to_lowercase()
    )
}

fn grant_for(model: &ScriptedModel) -> Grant {
    serde_json::from_value(serde_json::json!({
        "http": {"allow": [format!("127.0.0.1:{}", model.addr().port())],
                 "allow-private": ["127.0.0.1/32"]}
    }))
    .unwrap()
}

fn adapter(crate_name: &str, model: &ScriptedModel, header: &str, value: &str) -> BoundAdapter {
    let bytes = std::fs::read(guest(crate_name)).unwrap();
    let adapter = runtime().load_model_adapter(&bytes).unwrap();
    let cred = Credential::new("127.0.0.1", Some(model.addr().port()), header, value).unwrap();
    adapter.bind(&grant_for(model), vec![cred]).unwrap()
}

fn tool(name: &str) -> ToolDescriptor {
    serde_json::from_value(serde_json::json!({
        "name": name, "description": format!("{name} tool"),
        "inputSchema": {"type": "object"},
        "annotations": {"destructive": false, "readOnly": true, "idempotent": true, "openWorld": false}
    }))
    .unwrap()
}

fn request(model: &ScriptedModel, input: &str, stream: bool) -> CompletionRequest {
    CompletionRequest {
        endpoint: model.base_url(),
        model: "scripted-1".into(),
        system: Some("You are the refund assistant.".into()),
        messages: vec![Message::text(Role::User, input)],
        tools: vec![tool("read_balance"), tool("lookup_order")].into(),
        max_tokens: 512,
        temperature: None,
        stream,
    }
}

async fn complete(bound: &BoundAdapter, req: &CompletionRequest) -> (ModelOutcome, Vec<String>) {
    let deltas = Arc::new(Mutex::new(Vec::new()));
    let sink = deltas.clone();
    let out = bound
        .complete(
            req,
            Duration::from_secs(20),
            Some(Arc::new(move |t: &str| {
                sink.lock().unwrap().push(t.to_string())
            })),
        )
        .await
        .expect("the adapter ran");
    let deltas = deltas.lock().unwrap().clone();
    (out, deltas)
}

/// Both adapters, JSON and SSE: same conversation, same parsed answer.
#[tokio::test(flavor = "multi_thread")]
async fn adapters_speak_both_wire_formats_with_tool_calls_and_usage() {
    let model = ScriptedModel::start(Script::from_yaml(SCRIPT).unwrap())
        .await
        .unwrap();
    let key = test_credential();
    for (crate_name, header, value, path) in [
        (
            "tack_plugin_openai_chat",
            "authorization",
            format!("Bearer {key}"),
            "/v1/chat/completions",
        ),
        (
            "tack_plugin_anthropic_messages",
            "x-api-key",
            key.clone(),
            "/v1/messages",
        ),
    ] {
        let bound = adapter(crate_name, &model, header, &value);
        for stream in [false, true] {
            let before = model.requests().len();
            let (out, deltas) = complete(&bound, &request(&model, "please refund", stream)).await;
            let c = out.result.expect("a completion");
            assert_eq!(
                c.stop_reason,
                StopReason::ToolUse,
                "{crate_name} stream={stream}"
            );
            assert_eq!(c.message.joined_text(), "Checking.");
            let calls: Vec<_> = c.message.tool_calls().collect();
            assert_eq!(calls.len(), 2, "{crate_name} stream={stream}: {calls:?}");
            assert_eq!(calls[0].name, "read_balance");
            assert_eq!(
                serde_json::from_str::<serde_json::Value>(&calls[0].arguments).unwrap(),
                serde_json::json!({"account": "acct_alice"})
            );
            assert_eq!(
                serde_json::from_str::<serde_json::Value>(&calls[1].arguments).unwrap(),
                serde_json::json!({"order": "o-1", "verbose": true})
            );
            assert_eq!((c.usage.input_tokens, c.usage.output_tokens), (120, 30));
            if stream {
                assert_eq!(deltas.concat(), "Checking.", "{crate_name}: text streamed");
            } else {
                assert!(deltas.is_empty());
            }

            // The credential reached the provider, added by the host.
            let reqs = model.requests();
            assert_eq!(reqs.len(), before + 1);
            let last = reqs.last().unwrap();
            assert_eq!(last.path, path);
            let sent = last
                .headers
                .iter()
                .find(|(k, _)| k == header)
                .map(|(_, v)| v.clone());
            assert_eq!(sent.as_deref(), Some(value.as_str()), "{crate_name}");
            assert_eq!(last.body["stream"].as_bool().unwrap_or(false), stream);
            // The body goes with its length, not chunked (some servers refuse that).
            let header = |name: &str| {
                last.headers
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.clone())
            };
            let length = serde_json::to_vec(&last.body).unwrap().len();
            assert!(
                header("content-length").is_some_and(|l| l.parse::<usize>().unwrap() >= length),
                "{crate_name}: {:?}",
                last.headers
            );
            assert_eq!(header("transfer-encoding"), None, "{crate_name}");
        }

        // Second turn: the assistant message with its calls and the tool results go back.
        let mut req = request(&model, "please refund", true);
        let (out, _) = complete(&bound, &req).await;
        let answer = out.result.unwrap().message;
        let results = Message {
            role: Role::Tool,
            parts: answer
                .tool_calls()
                .map(|c| {
                    Part::ToolResult(tack_runtime::ToolResult {
                        call_id: c.id.clone(),
                        content: "{\"ok\":true}".into(),
                        is_error: false,
                    })
                })
                .collect(),
        };
        req.messages.push(answer);
        req.messages.push(results);
        let (out, deltas) = complete(&bound, &req).await;
        let c = out.result.unwrap();
        assert_eq!(c.stop_reason, StopReason::EndTurn);
        assert_eq!(c.message.joined_text(), "Done: the refund is on its way.");
        assert_eq!(deltas.concat(), "Done: the refund is on its way.");
        let text = model.requests().last().unwrap().body.to_string();
        assert!(
            text.contains("{\\\"ok\\\":true}"),
            "tool results sent: {text}"
        );
        if crate_name == "tack_plugin_openai_chat" {
            // The whole body, as Chat Completions servers expect it.
            let body = model.requests().last().unwrap().body.clone();
            let ids: Vec<String> = req.messages[1].tool_calls().map(|c| c.id.clone()).collect();
            let schema = |name: &str| {
                serde_json::json!({"type": "function", "function": {
                "name": name, "description": format!("{name} tool"), "parameters": {"type": "object"}}})
            };
            let call = |i: usize| {
                let c = req.messages[1].tool_calls().nth(i).unwrap();
                serde_json::json!({"id": c.id, "type": "function",
                    "function": {"name": c.name, "arguments": c.arguments}})
            };
            assert_eq!(
                body,
                serde_json::json!({
                    "model": "scripted-1",
                    "max_tokens": 512,
                    "stream": true,
                    "stream_options": {"include_usage": true},
                    "tools": [schema("read_balance"), schema("lookup_order")],
                    "messages": [
                        {"role": "system", "content": "You are the refund assistant."},
                        {"role": "user", "content": "please refund"},
                        {"role": "assistant", "content": "Checking.", "tool_calls": [call(0), call(1)]},
                        {"role": "tool", "tool_call_id": ids[0], "content": "{\"ok\":true}"},
                        {"role": "tool", "tool_call_id": ids[1], "content": "{\"ok\":true}"},
                    ],
                })
            );
        }
    }
}

/// 429 comes back as a retryable error with the provider's `retry-after` (the
/// host retries, not the adapter).
#[tokio::test(flavor = "multi_thread")]
async fn rate_limits_are_reported_retryable() {
    let model = ScriptedModel::start(Script::from_yaml(SCRIPT).unwrap())
        .await
        .unwrap();
    for crate_name in ["tack_plugin_openai_chat", "tack_plugin_anthropic_messages"] {
        let bound = adapter(crate_name, &model, "authorization", "Bearer x");
        let (out, _) = complete(&bound, &request(&model, "busy", false)).await;
        let err = out.result.unwrap_err();
        assert_eq!(err.status, Some(429), "{crate_name}");
        assert!(err.retryable, "{crate_name}: {err:?}");
        assert_eq!(err.retry_after_ms, Some(2000), "{crate_name}");
    }
}

/// The adapter may reach only the endpoint it is granted; a credential is never
/// sent to any other host.
#[tokio::test(flavor = "multi_thread")]
async fn an_adapter_cannot_reach_other_hosts() {
    let model = ScriptedModel::start(Script::from_yaml(SCRIPT).unwrap())
        .await
        .unwrap();
    let other = ScriptedModel::start(Script::from_yaml(SCRIPT).unwrap())
        .await
        .unwrap();
    let bound = adapter(
        "tack_plugin_openai_chat",
        &model,
        "authorization",
        "Bearer x",
    );
    let mut req = request(&other, "please refund", false);
    req.endpoint = other.base_url();
    let (out, _) = complete(&bound, &req).await;
    let err = out.result.unwrap_err();
    assert!(!err.retryable, "{err:?}");
    assert!(err.message.contains("egress policy"), "{err:?}");
    assert!(other.requests().is_empty());
    assert!(!out.egress.is_empty(), "the refusal is recorded");
    assert!(out.egress.iter().all(|e| !e.allowed), "{:?}", out.egress);
}

fn gate(tool: &str, args: serde_json::Value) -> GateRequest {
    GateRequest {
        plugin: "tack/payments@0.1.0".into(),
        tool: tool.into(),
        annotations: Default::default(),
        arguments: args.to_string(),
        context: CallContext::default(),
    }
}

/// The refund rule is a component: small refunds pass, big ones need an approver,
/// nonsense is refused.
#[tokio::test(flavor = "multi_thread")]
async fn refund_gate_component_decides_per_call() {
    let bytes = std::fs::read(guest("tack_plugin_refund_gate")).unwrap();
    let policy = runtime().load_policy(&bytes).unwrap();
    let small = gate(
        "issue_refund",
        serde_json::json!({"account": "acct_alice", "amount_cents": 10_000}),
    );
    assert_eq!(policy.decide(&small).await.unwrap(), Decision::Allow);
    let big = gate(
        "issue_refund",
        serde_json::json!({"account": "acct_alice", "amount_cents": 15_000, "note": "x"}),
    );
    match policy.decide(&big).await.unwrap() {
        Decision::RequireApproval(a) => {
            assert_eq!(a.approvers, vec!["approver".to_string()]);
            assert_eq!(a.redacted_arguments, vec!["/note".to_string()]);
            assert!(a.reason.contains("$150.00"), "{}", a.reason);
        }
        other => panic!("expected approval, got {other:?}"),
    }
    let bad = gate("issue_refund", serde_json::json!({"amount_cents": -5}));
    assert!(matches!(
        policy.decide(&bad).await.unwrap(),
        Decision::Deny { .. }
    ));
    let other = gate("read_balance", serde_json::json!({"account": "acct_alice"}));
    assert_eq!(policy.decide(&other).await.unwrap(), Decision::Allow);

    // A tool plugin is not a policy, and a policy is not a model adapter.
    let jq = std::fs::read(guest("tack_plugin_jq")).unwrap();
    let err = runtime().load_policy(&jq).err().unwrap().to_string();
    assert!(err.contains("tack:plugin/approval-policy"), "{err}");
    let err = runtime()
        .load_model_adapter(&bytes)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("tack:plugin/model"), "{err}");
}

/// A run's model calls share one adapter instance while they succeed; each call
/// still gets only its own egress record and streamed text, and a failed call
/// (here a 429) makes the next one start a fresh instance.
#[tokio::test(flavor = "multi_thread")]
async fn a_session_keeps_its_adapter_between_calls_and_replaces_it_after_a_failure() {
    let model = ScriptedModel::start(Script::from_yaml(SCRIPT).unwrap())
        .await
        .unwrap();
    for crate_name in ["tack_plugin_openai_chat", "tack_plugin_anthropic_messages"] {
        let bound = adapter(crate_name, &model, "authorization", "Bearer x");
        let mut session = bound.session();
        assert_eq!(session.warm_calls(), 0);
        let call = |text: &'static str| {
            let deltas = Arc::new(Mutex::new(Vec::<String>::new()));
            let sink = deltas.clone();
            let sink: tack_runtime::DeltaSink =
                Arc::new(move |t: &str| sink.lock().unwrap().push(t.to_string()));
            (request(&model, text, true), deltas, sink)
        };

        for n in 1..=3 {
            let (req, deltas, sink) = call("please refund");
            let out = session
                .complete(&req, Duration::from_secs(20), Some(sink))
                .await
                .expect("the adapter ran");
            let c = out.result.expect("a completion");
            assert_eq!(
                c.message.joined_text(),
                "Checking.",
                "{crate_name} call {n}"
            );
            assert_eq!(c.message.tool_calls().count(), 2);
            assert_eq!(deltas.lock().unwrap().concat(), "Checking.");
            assert_eq!(
                out.egress.len(),
                1,
                "{crate_name} call {n}: {:?}",
                out.egress
            );
            assert_eq!(session.warm_calls(), n, "{crate_name}: kept after call {n}");
        }

        // A failed call drops the instance; the next call starts a fresh one.
        let (req, _, sink) = call("busy");
        let out = session
            .complete(&req, Duration::from_secs(20), Some(sink))
            .await
            .expect("the adapter ran");
        assert_eq!(out.result.unwrap_err().status, Some(429));
        assert_eq!(
            session.warm_calls(),
            0,
            "{crate_name}: replaced after a failure"
        );
        let (req, deltas, sink) = call("please refund");
        let out = session
            .complete(&req, Duration::from_secs(20), Some(sink))
            .await
            .expect("the adapter ran");
        assert_eq!(out.result.unwrap().message.joined_text(), "Checking.");
        assert_eq!(deltas.lock().unwrap().concat(), "Checking.");
        assert_eq!(session.warm_calls(), 1);
    }
}
