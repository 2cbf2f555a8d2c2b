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
        // `user` is token `user-1`; `user-2` is another user, `builder-2`
        // another builder.
        for (key, role) in [
            ("admin", "admin"),
            ("builder", "builder"),
            ("approver", "approver"),
            ("user", "user"),
            ("user-2", "user"),
            ("builder-2", "builder"),
        ] {
            let name = if key.contains('-') {
                key.to_string()
            } else {
                format!("{key}-1")
            };
            let t = auth::create_token(h.engine.store(), &name, role.parse().unwrap(), None)
                .await
                .unwrap();
            tokens.insert(key, t);
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let app = router(AppState::new(h.engine.clone(), None));
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

/// A user reaches its own sessions only: another user's session answers 404 on
/// every route, exactly as a session that does not exist, and nothing the other
/// user sends reaches it. Roles with a wider reach keep it.
#[tokio::test(flavor = "multi_thread")]
async fn a_user_reaches_only_its_own_sessions() {
    let h = Harness::start(REFUND).await;
    let api = Api::start(&h).await;
    let agent_yaml = agent("refund-assistant", "scripted", Some("refunds"), "");
    let (s, body) = api
        .call("POST", "/v1/agents", Some("builder"), Some(agent_yaml))
        .await;
    assert_eq!(s, 201, "{body}");
    let (s, session) = api
        .call(
            "POST",
            "/v1/sessions",
            Some("user"),
            Some(json!({"agent": "refund-assistant", "input": "refund my lamp"}).to_string()),
        )
        .await;
    assert_eq!(s, 201, "{session}");
    assert_eq!(session["owner"], "user-1");
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
    let seen = read_until(&mut stream, &mut buf, "approval_required").await;
    let approval_id = seen.last().unwrap().2["approval_id"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, before) = api
        .call(
            "GET",
            &format!("/v1/sessions/{id}/events"),
            Some("user"),
            None,
        )
        .await;

    // What a session that does not exist answers.
    let (s, missing) = api
        .call("GET", "/v1/sessions/01NOSUCHSESSION", Some("user-2"), None)
        .await;
    assert_eq!(s, 404);
    let posts = [
        json!({"type": "message", "text": "cancel that"}),
        json!({"type": "answer", "question_id": "q", "answer": "no"}),
        json!({"type": "interrupt"}),
        json!({"type": "approval_decision", "approval_id": approval_id, "decision": "deny"}),
    ];
    let reads = ["", "/events", "/stream", "/runs/r/trace"];
    for path in reads {
        let (s, body) = api
            .call(
                "GET",
                &format!("/v1/sessions/{id}{path}"),
                Some("user-2"),
                None,
            )
            .await;
        assert_eq!(s, 404, "GET {path}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert_eq!(
            message,
            missing["error"]["message"]
                .as_str()
                .unwrap()
                .replace("01NOSUCHSESSION", &id)
        );
    }
    for post in &posts {
        let (s, body) = api
            .call(
                "POST",
                &format!("/v1/sessions/{id}/events"),
                Some("user-2"),
                Some(post.to_string()),
            )
            .await;
        assert_eq!(s, 404, "{post}: {body}");
    }
    let (s, body) = api
        .call(
            "POST",
            &format!("/v1/approvals/{approval_id}"),
            Some("user-2"),
            Some(json!({"decision": "deny"}).to_string()),
        )
        .await;
    assert_eq!(s, 404, "{body}");
    assert_eq!(
        body["error"]["message"],
        format!("no approval `{approval_id}`")
    );
    let (_, listed) = api.call("GET", "/v1/sessions", Some("user-2"), None).await;
    assert_eq!(
        listed["sessions"],
        json!([]),
        "another user's sessions are not listed"
    );

    // Nothing reached the session: the log is as it was, still waiting.
    let (_, after) = api
        .call(
            "GET",
            &format!("/v1/sessions/{id}/events"),
            Some("user"),
            None,
        )
        .await;
    assert_eq!(after, before);
    let (_, mine) = api.call("GET", "/v1/sessions", Some("user"), None).await;
    assert_eq!(mine["sessions"][0]["id"], id.as_str());
    assert_eq!(mine["sessions"][0]["status"], "waiting_approval");

    // Approvers, builders and admins reach every session.
    for role in ["approver", "builder", "admin"] {
        let (s, body) = api
            .call("GET", &format!("/v1/sessions/{id}"), Some(role), None)
            .await;
        assert_eq!(s, 200, "{role}: {body}");
        let (_, listed) = api.call("GET", "/v1/sessions", Some(role), None).await;
        assert_eq!(listed["sessions"][0]["id"], id.as_str(), "{role}");
    }
    let (s, body) = api
        .call(
            "POST",
            &format!("/v1/approvals/{approval_id}"),
            Some("approver"),
            Some(json!({"decision": "approve"}).to_string()),
        )
        .await;
    assert_eq!(s, 202, "{body}");
}

/// The first builder to publish an agent name owns it: another builder's
/// version is refused, naming the owner; an admin may publish any agent and
/// give it to another owner.
#[tokio::test(flavor = "multi_thread")]
async fn an_agent_is_published_by_its_owner_or_an_admin() {
    let h = Harness::start(REFUND).await;
    let api = Api::start(&h).await;
    let v = |extra: &str| agent("refund-assistant", "scripted", Some("refunds"), extra);
    let publish =
        |role: &'static str, yaml: String| api.call("POST", "/v1/agents", Some(role), Some(yaml));
    let (s, body) = publish("builder", v("")).await;
    assert_eq!((s, body["version"].as_u64()), (201, Some(1)), "{body}");
    let (s, body) = publish("builder-2", v("limits:\n  max-steps: 3\n")).await;
    assert_eq!(s, 403, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("belongs to `builder-1`"), "{message}");
    let (_, versions) = api
        .call("GET", "/v1/agents/refund-assistant", Some("user"), None)
        .await;
    assert_eq!(
        versions["versions"].as_array().unwrap().len(),
        1,
        "nothing was published"
    );
    assert_eq!(versions["owner"], "builder-1");

    let (s, body) = publish("admin", v("limits:\n  max-steps: 4\n")).await;
    assert_eq!((s, body["version"].as_u64()), (201, Some(2)), "{body}");
    // Only an admin gives an agent away.
    let give = json!({"owner": "builder-2"}).to_string();
    let owner = "/v1/agents/refund-assistant/owner";
    assert_eq!(
        api.call("PUT", owner, Some("builder"), Some(give.clone()))
            .await
            .0,
        403
    );
    let (s, body) = api.call("PUT", owner, Some("admin"), Some(give)).await;
    assert_eq!(s, 200, "{body}");
    let (s, body) = publish("builder-2", v("limits:\n  max-steps: 5\n")).await;
    assert_eq!((s, body["version"].as_u64()), (201, Some(3)), "{body}");
    assert_eq!(publish("builder", v("")).await.0, 403);
    let (s, _) = api
        .call(
            "PUT",
            "/v1/agents/nobody/owner",
            Some("admin"),
            Some(json!({"owner": "x"}).to_string()),
        )
        .await;
    assert_eq!(s, 404);
}

/// A revoked token is refused from its next request on, and so is an expired
/// one, each with a message saying so.
#[tokio::test(flavor = "multi_thread")]
async fn revoked_and_expired_tokens_are_refused() {
    let h = Harness::start(REFUND).await;
    let api = Api::start(&h).await;
    assert_eq!(
        api.call("GET", "/v1/sessions", Some("user-2"), None)
            .await
            .0,
        200
    );
    assert!(h.engine.store().revoke_api_token("user-2").await.unwrap());
    let (s, body) = api.call("GET", "/v1/sessions", Some("user-2"), None).await;
    assert_eq!(s, 401, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("revoked, expired")
    );
    // Expired a millisecond after the epoch.
    let t = auth::new_token();
    h.engine
        .store()
        .put_api_token("old", "admin", &auth::hash(&t), Some(1))
        .await
        .unwrap();
    let r = api
        .http
        .get(format!("{}/v1/sessions", api.base))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

/// The events route authenticates before it reads the body: no token is a
/// 401 whatever the body holds.
#[tokio::test(flavor = "multi_thread")]
async fn the_events_route_authenticates_before_it_parses() {
    let h = Harness::start(REFUND).await;
    let api = Api::start(&h).await;
    let (s, body) = api
        .call(
            "POST",
            "/v1/sessions/anything/events",
            None,
            Some("{not json".into()),
        )
        .await;
    assert_eq!(s, 401, "{body}");
}

/// Every error answer has the JSON shape, the ones axum produces included (a
/// body over the limit, a malformed query), and client text quoted in an
/// error is cut short.
#[tokio::test(flavor = "multi_thread")]
async fn errors_are_json_and_quote_client_text_briefly() {
    let h = Harness::start(REFUND).await;
    let api = Api::start(&h).await;
    // Its own connection: the server answers before reading the body, then
    // closes the connection rather than read the rest.
    let r = reqwest::Client::new()
        .post(format!("{}/v1/agents", api.base))
        .bearer_auth(&api.tokens["builder"])
        .body("x".repeat(3 << 20))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "payload_too_large");
    let (s, body) = api
        .call("GET", "/v1/sessions?limit=many", Some("user"), None)
        .await;
    assert_eq!(s, 400, "{body}");
    assert_eq!(body["error"]["code"], "invalid_request");

    let agent_yaml = agent("refund-assistant", "scripted", Some("refunds"), "");
    api.call("POST", "/v1/agents", Some("builder"), Some(agent_yaml))
        .await;
    let (_, session) = api
        .call(
            "POST",
            "/v1/sessions",
            Some("user"),
            Some(json!({"agent": "refund-assistant", "input": "hi"}).to_string()),
        )
        .await;
    let id = session["id"].as_str().unwrap();
    let r = api
        .http
        .get(format!("{}/v1/sessions/{id}/stream", api.base))
        .bearer_auth(&api.tokens["user"])
        .header("Last-Event-ID", "E".repeat(8000))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.len() < 400, "{message}");
    assert!(message.contains("more bytes"), "{message}");
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
        "/v1/agents/{name}/owner",
        "/v1/sessions",
        "/v1/sessions/{id}",
        "/v1/sessions/{id}/events",
        "/v1/sessions/{id}/stream",
        "/v1/sessions/{id}/runs/{run}/trace",
        "/v1/approvals",
        "/v1/approvals/{id}",
        "/v1/mcp-servers",
        "/v1/mcp-servers/{name}/tools",
        "/v1/mcp-oauth/callback",
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
        17,
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
