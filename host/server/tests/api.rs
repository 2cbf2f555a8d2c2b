//! The sessions API over HTTP on loopback, as a client would use it: tokens and
//! roles, agents, a session whose SSE stream shows the tool call and the
//! approval, the decision over the API, the refund paid once, the final event,
//! Last-Event-ID resume, paging, traces, the OpenAPI document.

#[path = "../../engine/tests/common/mod.rs"]
mod common;

use common::*;
use futures_util::StreamExt;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use tack_server::{AppState, auth, router};

const REFUND: &str = r#"
scenarios:
  - steps:
      - tool_calls:
          - {name: read_balance, arguments: {account: acct_alice}}
      - tool_calls:
          - {name: issue_refund, arguments: {account: acct_alice, amount_cents: 15000, reason: damaged, idempotency_key: k-1}}
      - text: "Refund issued."
"#;

struct Api {
    base: String,
    tokens: BTreeMap<&'static str, String>,
    http: reqwest::Client,
}

impl Api {
    async fn start(h: &Harness) -> Api {
        let mut tokens = BTreeMap::new();
        for role in ["admin", "builder", "approver", "user"] {
            let t = auth::create_token(
                h.engine.store(),
                &format!("{role}-1"),
                role.parse().unwrap(),
            )
            .await
            .unwrap();
            tokens.insert(role, t);
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let app = router(AppState {
            engine: h.engine.clone(),
            secrets: None,
        });
        tokio::spawn(async move { axum::serve(listener, app).await });
        tack_distribution::client::install_crypto();
        Api {
            base,
            tokens,
            http: reqwest::Client::new(),
        }
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        role: Option<&str>,
        body: Option<String>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.base));
        if let Some(r) = role {
            req = req.bearer_auth(&self.tokens[r]);
        }
        if let Some(b) = body {
            req = req.body(b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }
}

/// Read SSE events (id, type, data) until one of type `until` arrives.
async fn read_until(
    resp: &mut (impl futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin),
    buf: &mut String,
    until: &str,
) -> Vec<(Option<String>, String, Value)> {
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        while let Some(end) = buf.find("\n\n") {
            let frame: String = buf.drain(..end + 2).collect();
            let (mut id, mut kind, mut data) = (None, String::from("message"), String::new());
            for line in frame.lines() {
                if let Some(v) = line
                    .strip_prefix("id: ")
                    .or_else(|| line.strip_prefix("id:"))
                {
                    id = Some(v.to_string());
                } else if let Some(v) = line
                    .strip_prefix("event: ")
                    .or_else(|| line.strip_prefix("event:"))
                {
                    kind = v.to_string();
                } else if let Some(v) = line
                    .strip_prefix("data: ")
                    .or_else(|| line.strip_prefix("data:"))
                {
                    data.push_str(v);
                }
            }
            if data.is_empty() {
                continue;
            }
            let done = kind == until;
            out.push((id, kind, serde_json::from_str(&data).unwrap()));
            if done {
                return out;
            }
        }
        let chunk = tokio::time::timeout_at(deadline, resp.next())
            .await
            .unwrap_or_else(|_| panic!("no `{until}` event; got {out:?}"))
            .expect("the stream stays open")
            .unwrap();
        buf.push_str(&String::from_utf8_lossy(&chunk));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_refund_flow_over_http_with_sse_and_an_approval() {
    let h = Harness::start(REFUND).await;
    let api = Api::start(&h).await;
    let agent_yaml = agent("refund-assistant", "scripted", Some("refunds"), "");

    // Tokens and roles.
    assert_eq!(
        api.call("POST", "/v1/agents", None, Some(agent_yaml.clone()))
            .await
            .0,
        401
    );
    let (s, body) = api
        .call("POST", "/v1/agents", Some("user"), Some(agent_yaml.clone()))
        .await;
    assert_eq!(s, 403, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("admin or builder")
    );
    let (s, body) = api
        .call("POST", "/v1/agents", Some("builder"), Some(agent_yaml))
        .await;
    assert_eq!(s, 201, "{body}");
    assert_eq!(body["version"], 1);

    // Bad input gets a clear error.
    let (s, body) = api
        .call(
            "POST",
            "/v1/sessions",
            Some("user"),
            Some("{\"agent\": 5}".into()),
        )
        .await;
    assert_eq!(s, 400);
    assert!(
        body["error"]["message"].as_str().unwrap().contains("agent"),
        "{body}"
    );
    let (s, _) = api
        .call(
            "POST",
            "/v1/sessions",
            Some("user"),
            Some(json!({"agent": "nobody", "input": "x"}).to_string()),
        )
        .await;
    assert_eq!(s, 404);

    let (s, session) = api
        .call(
            "POST",
            "/v1/sessions",
            Some("user"),
            Some(json!({"agent": "refund-assistant", "input": "refund my $150 lamp"}).to_string()),
        )
        .await;
    assert_eq!(s, 201, "{session}");
    let id = session["id"].as_str().unwrap().to_string();

    let mut stream = api
        .http
        .get(format!("{}/v1/sessions/{id}/stream", api.base))
        .bearer_auth(&api.tokens["user"])
        .send()
        .await
        .unwrap()
        .bytes_stream();
    let mut buf = String::new();
    let first = read_until(&mut stream, &mut buf, "approval_required").await;
    let kinds: Vec<&str> = first.iter().map(|(_, k, _)| k.as_str()).collect();
    assert!(kinds.contains(&"tool_call"), "{kinds:?}");
    let (approval_event_id, _, approval) = first.last().unwrap().clone();
    let approval_id = approval["approval_id"].as_str().unwrap().to_string();
    assert_eq!(approval["arguments"]["amount_cents"], 15000);

    // Only an approver (or admin) decides; unknown ids and second decisions are refused.
    let events = format!("/v1/sessions/{id}/events");
    let approve =
        json!({"type": "approval_decision", "approval_id": approval_id, "decision": "approve"})
            .to_string();
    let decide = |role: &'static str| api.call("POST", &events, Some(role), Some(approve.clone()));
    for role in ["builder", "user"] {
        let (s, body) = decide(role).await;
        assert_eq!(s, 403, "{role}: {body}");
    }
    let (s, _) = api
        .call(
            "POST",
            "/v1/approvals/ap_nope",
            Some("approver"),
            Some(json!({"decision": "approve"}).to_string()),
        )
        .await;
    assert_eq!(s, 404);
    let (s, pending) = api
        .call("GET", "/v1/approvals", Some("approver"), None)
        .await;
    assert_eq!(s, 200);
    assert_eq!(pending["approvals"][0]["approval_id"], approval_id.as_str());
    assert_eq!(
        api.call("GET", "/v1/approvals", Some("user"), None).await.0,
        403
    );
    assert!(h.ledger()["refunds"].as_array().unwrap().is_empty());

    // The approver's decision counts once; the same decision again is a conflict.
    for expected in [202, 409] {
        let (s, body) = decide("approver").await;
        assert_eq!(s, expected, "{body}");
    }

    let rest = read_until(&mut stream, &mut buf, "run_finished").await;
    let (_, _, finished) = rest.last().unwrap();
    assert_eq!(finished["stop_reason"], "end_turn");
    assert_eq!(finished["output"], "Refund issued.");
    // The streamed text reaches the client, between its step's request and response.
    let at = |kind: &str| rest.iter().rposition(|(_, k, _)| k == kind);
    let delta = at("text_delta").expect("streamed text reaches the client");
    let kinds: Vec<&str> = rest.iter().map(|(_, k, _)| k.as_str()).collect();
    assert!(
        at("model_request").is_some_and(|r| r < delta)
            && at("model_response").is_some_and(|r| delta < r),
        "{kinds:?}"
    );
    assert_eq!(
        h.ledger()["refunds"].as_array().unwrap().len(),
        1,
        "paid exactly once"
    );

    // Reconnect after the approval: the remainder, once, in order.
    let mut again = api
        .http
        .get(format!("{}/v1/sessions/{id}/stream", api.base))
        .bearer_auth(&api.tokens["user"])
        .header("Last-Event-ID", approval_event_id.clone().unwrap())
        .send()
        .await
        .unwrap()
        .bytes_stream();
    let mut buf2 = String::new();
    let replay = read_until(&mut again, &mut buf2, "run_finished").await;
    let replay_seqs: Vec<u64> = replay
        .iter()
        .filter(|(id, _, _)| id.is_some())
        .map(|(_, _, v)| v["seq"].as_u64().unwrap())
        .collect();
    let first_seq = approval["seq"].as_u64().unwrap();
    let expected: Vec<u64> = (first_seq + 1..=first_seq + replay_seqs.len() as u64).collect();
    assert_eq!(replay_seqs, expected, "no gap, no duplicate");
    let live_seqs: Vec<u64> = rest
        .iter()
        .filter(|(id, _, _)| id.is_some())
        .map(|(_, _, v)| v["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(replay_seqs, live_seqs);
    let (s, _) = api
        .http
        .get(format!("{}/v1/sessions/{id}/stream", api.base))
        .bearer_auth(&api.tokens["user"])
        .header("Last-Event-ID", "01NOTANID")
        .send()
        .await
        .map(|r| (r.status().as_u16(), ()))
        .unwrap();
    assert_eq!(s, 400);

    // The log, paged.
    let mut after = 0;
    let mut seqs = Vec::new();
    loop {
        let (s, page) = api
            .call(
                "GET",
                &format!("/v1/sessions/{id}/events?after={after}&limit=4"),
                Some("user"),
                None,
            )
            .await;
        assert_eq!(s, 200);
        let events = page["events"].as_array().unwrap();
        if events.is_empty() {
            break;
        }
        seqs.extend(events.iter().map(|e| e["seq"].as_u64().unwrap()));
        after = page["next_after"].as_u64().unwrap();
    }
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());

    // The trace of the run.
    let run_id = finished["run_id"].as_str().unwrap();
    let (s, trace) = api
        .call(
            "GET",
            &format!("/v1/sessions/{id}/runs/{run_id}/trace"),
            Some("approver"),
            None,
        )
        .await;
    assert_eq!(s, 200);
    let records = trace["records"].as_array().unwrap();
    assert_eq!(
        records.iter().filter(|r| r["step_type"] == "model").count(),
        3
    );
    let refund = records
        .iter()
        .find(|r| r["tool"] == "issue_refund")
        .unwrap();
    assert_eq!(refund["approval_required"], true);
    assert_eq!(refund["approval_status"], "approved");
    for field in [
        "run_id",
        "agent",
        "step_type",
        "name",
        "model",
        "tool",
        "plugin",
        "sandbox_id",
        "tokens_in",
        "tokens_out",
        "latency_ms",
        "cost_usd",
    ] {
        assert!(refund.get(field).is_some(), "trace records carry `{field}`");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_openapi_document_describes_every_route() {
    let h = Harness::start(REFUND).await;
    let api = Api::start(&h).await;
    let (s, doc) = api.call("GET", "/v1/openapi.json", None, None).await;
    assert_eq!(s, 200);
    assert_eq!(doc["openapi"], "3.1.0");
    let paths: Vec<&str> = doc["paths"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    for route in [
        "/v1/health",
        "/v1/openapi.json",
        "/v1/agents",
        "/v1/agents/{name}",
        "/v1/sessions",
        "/v1/sessions/{id}",
        "/v1/sessions/{id}/events",
        "/v1/sessions/{id}/stream",
        "/v1/sessions/{id}/runs/{run}/trace",
        "/v1/approvals",
        "/v1/approvals/{id}",
        "/v1/secrets",
        "/v1/secrets/{name}",
    ] {
        assert!(paths.contains(&route), "{route} is not documented");
        // And it exists: without a token, it is 401 (or 200 for the open ones), never 404.
        let probe = route
            .replace("{name}", "x")
            .replace("{id}", "x")
            .replace("{run}", "x");
        let resp = api
            .http
            .get(format!("{}{probe}", api.base))
            .send()
            .await
            .unwrap();
        assert_ne!(
            resp.status().as_u16(),
            404,
            "{route} is documented but not routed"
        );
    }
    assert_eq!(
        paths.len(),
        13,
        "every documented path is in the list above"
    );
    let (s, body) = api.call("GET", "/v1/nope", None, None).await;
    assert_eq!(s, 404);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("openapi")
    );
}
