//! The scripted model over real HTTP: both dialects, JSON and SSE, tool calls
//! reassembled from stream fragments, usage, injected failures, recorded requests.

use serde_json::{Value, json};
use tack_scripted_model::{Script, ScriptedModel};

const SCRIPT: &str = r#"
scenarios:
  - match: refund
    steps:
      - tool_calls:
          - {name: read_balance, arguments: {account: acct_alice}}
          - {name: lookup_order, arguments: {order: "o-7"}}
      - tool_calls: [{name: issue_refund, arguments: {account: acct_alice, amount_cents: 15000}}]
      - text: "Your refund of $150.00 was issued."
  - match: flaky
    steps:
      - fail: {status: 429, times: 2}
        text: "finally"
  - steps:
      - text: "Hello there, how can I help?"
"#;

async fn server() -> ScriptedModel {
    let _ = rustls::crypto::ring::default_provider().install_default();
    ScriptedModel::start(Script::from_yaml(SCRIPT).unwrap())
        .await
        .unwrap()
}

async fn post(m: &ScriptedModel, path: &str, body: Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}{path}", m.base_url()))
        .header("authorization", "Bearer injected-by-host")
        .json(&body)
        .send()
        .await
        .unwrap()
}

fn openai(messages: Value, stream: bool) -> Value {
    json!({"model": "gpt-test", "messages": messages, "stream": stream,
           "stream_options": {"include_usage": true}})
}

/// The `data:` payloads of an SSE body, with their `event:` names.
fn sse(text: &str) -> Vec<(Option<String>, String)> {
    text.split("\n\n")
        .filter(|f| !f.trim().is_empty())
        .map(|frame| {
            let mut event = None;
            let mut data = String::new();
            for line in frame.lines() {
                if let Some(e) = line.strip_prefix("event: ") {
                    event = Some(e.to_string());
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data.push_str(d);
                }
            }
            (event, data)
        })
        .collect()
}

#[tokio::test]
async fn openai_json_follows_the_script_step_by_step() {
    let m = server().await;
    let user = json!({"role": "user", "content": "I want a refund for order o-7"});
    let v: Value = post(&m, "/chat/completions", openai(json!([user]), false))
        .await
        .json()
        .await
        .unwrap();
    let choice = &v["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    let calls = choice["message"]["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 2, "parallel tool calls");
    assert_eq!(calls[0]["function"]["name"], "read_balance");
    let args: Value =
        serde_json::from_str(calls[0]["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args, json!({"account": "acct_alice"}));
    assert!(v["usage"]["prompt_tokens"].as_u64().unwrap() > 0);

    let history = json!([user, choice["message"],
        {"role": "tool", "tool_call_id": calls[0]["id"], "content": "{\"balance_cents\": 20000}"},
        {"role": "tool", "tool_call_id": calls[1]["id"], "content": "{}"}]);
    let v: Value = post(&m, "/chat/completions", openai(history.clone(), false))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        v["choices"][0]["message"]["tool_calls"][0]["function"]["name"],
        "issue_refund"
    );
    let mut longer = history.as_array().unwrap().clone();
    longer.push(v["choices"][0]["message"].clone());
    let v: Value = post(&m, "/chat/completions", openai(json!(longer), false))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "Your refund of $150.00 was issued."
    );
    // Requests are recorded with their headers.
    let reqs = m.requests();
    assert_eq!(reqs.len(), 3);
    assert!(
        reqs[0]
            .headers
            .iter()
            .any(|(k, v)| k == "authorization" && v == "Bearer injected-by-host")
    );
}

#[tokio::test]
async fn openai_streams_reassemble_to_the_same_answer() {
    let m = server().await;
    let user = json!({"role": "user", "content": "refund please"});
    let text = post(&m, "/chat/completions", openai(json!([user]), true))
        .await
        .text()
        .await
        .unwrap();
    let frames = sse(&text);
    assert_eq!(frames.last().unwrap().1, "[DONE]");
    let mut args = [String::new(), String::new()];
    let mut names = vec![String::new(), String::new()];
    let mut finish = None;
    let mut usage = None;
    for (_, data) in &frames[..frames.len() - 1] {
        let c: Value = serde_json::from_str(data).unwrap();
        assert_eq!(c["object"], "chat.completion.chunk");
        if let Some(u) = c.get("usage").filter(|u| !u.is_null()) {
            usage = Some(u.clone());
        }
        let Some(choice) = c["choices"].get(0) else {
            continue;
        };
        if let Some(f) = choice["finish_reason"].as_str() {
            finish = Some(f.to_string());
        }
        for tc in choice["delta"]["tool_calls"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let i = tc["index"].as_u64().unwrap() as usize;
            if let Some(n) = tc["function"]["name"].as_str() {
                names[i].push_str(n);
            }
            args[i].push_str(tc["function"]["arguments"].as_str().unwrap_or(""));
        }
    }
    assert_eq!(names, ["read_balance", "lookup_order"]);
    assert_eq!(
        serde_json::from_str::<Value>(&args[1]).unwrap(),
        json!({"order": "o-7"})
    );
    assert_eq!(finish.as_deref(), Some("tool_calls"));
    assert!(usage.unwrap()["completion_tokens"].as_u64().unwrap() > 0);

    let hello = json!([{"role": "user", "content": "hi"}]);
    let text = post(&m, "/chat/completions", openai(hello, true))
        .await
        .text()
        .await
        .unwrap();
    let content: String = sse(&text)
        .iter()
        .filter_map(|(_, d)| serde_json::from_str::<Value>(d).ok())
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_string)
        })
        .collect();
    assert_eq!(content, "Hello there, how can I help?");
}

#[tokio::test]
async fn anthropic_json_and_stream() {
    let m = server().await;
    let req = |stream: bool| {
        json!({"model": "claude-test", "max_tokens": 512, "system": "You are careful.", "stream": stream,
               "messages": [{"role": "user", "content": [{"type": "text", "text": "a refund, please"}]}]})
    };
    let v: Value = post(&m, "/messages", req(false))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["type"], "message");
    assert_eq!(v["stop_reason"], "tool_use");
    assert_eq!(v["content"][0]["type"], "tool_use");
    assert_eq!(v["content"][1]["input"], json!({"order": "o-7"}));
    assert!(v["usage"]["input_tokens"].as_u64().unwrap() > 0);

    let text = post(&m, "/messages", req(true)).await.text().await.unwrap();
    let frames = sse(&text);
    let events: Vec<&str> = frames.iter().map(|(e, _)| e.as_deref().unwrap()).collect();
    assert_eq!(events[0], "message_start");
    assert_eq!(
        events[events.len() - 2..],
        ["message_delta", "message_stop"]
    );
    let mut partial = std::collections::BTreeMap::<u64, String>::new();
    let mut stop = None;
    for (_, data) in &frames {
        let e: Value = serde_json::from_str(data).unwrap();
        if e["type"] == "content_block_delta" && e["delta"]["type"] == "input_json_delta" {
            partial
                .entry(e["index"].as_u64().unwrap())
                .or_default()
                .push_str(e["delta"]["partial_json"].as_str().unwrap());
        }
        if e["type"] == "message_delta" {
            stop = e["delta"]["stop_reason"].as_str().map(str::to_string);
        }
    }
    let inputs: Vec<Value> = partial
        .values()
        .map(|p| serde_json::from_str(p).unwrap())
        .collect();
    assert_eq!(
        inputs,
        [json!({"account": "acct_alice"}), json!({"order": "o-7"})]
    );
    assert_eq!(stop.as_deref(), Some("tool_use"));
}

#[tokio::test]
async fn injected_failures_come_first_in_each_dialects_shape() {
    let m = server().await;
    let body = openai(json!([{"role": "user", "content": "flaky"}]), false);
    let r = post(&m, "/chat/completions", body.clone()).await;
    assert_eq!(r.status(), 429);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["type"], "rate_limit_error");
    assert_eq!(
        post(&m, "/chat/completions", body.clone()).await.status(),
        429
    );
    let v: Value = post(&m, "/chat/completions", body)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "finally");
    // The same script as an Anthropic Messages endpoint: its error shape.
    let m2 = server().await;
    let body = json!({"model": "claude-test", "max_tokens": 64,
                      "messages": [{"role": "user", "content": "flaky"}]});
    let r = post(&m2, "/messages", body.clone()).await;
    assert_eq!(r.status(), 429);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["type"], "error", "{v}");
    assert_eq!(v["error"]["type"], "rate_limit_error", "{v}");
    assert!(v["error"]["message"].is_string(), "{v}");
    assert_eq!(post(&m2, "/messages", body.clone()).await.status(), 429);
    let v: Value = post(&m2, "/messages", body).await.json().await.unwrap();
    assert_eq!(v["content"][0]["text"], "finally", "{v}");
    let r = post(&m, "/messages", json!({"messages": "nope"})).await;
    assert_eq!(r.status(), 400);
    let r = post(&m, "/embeddings", json!({})).await;
    assert_eq!(r.status(), 404);
    assert!(Script::from_yaml("scenarios: [{steps: []}]").is_err());
    assert!(
        Script::from_yaml("scenarios: [{steps: [{txt: hi}]}]")
            .unwrap_err()
            .to_string()
            .contains("unknown field `txt`")
    );
}
