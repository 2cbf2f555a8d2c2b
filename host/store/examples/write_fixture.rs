//! Writes the upgrade test's fixture: a store with some of everything (agent
//! versions, sessions in several states, events with private copies, call
//! records, secrets, API tokens), then prints what it holds (`dump`) as JSON.
//!
//! `cargo run -p tack-store --example write_fixture -- URL > expected.json`
//!
//! A fixture is written once, by the code of the schema version it stands for,
//! and checked in; `tests/fixtures/README.md` says how each one was made.

#[path = "../tests/fixtures/dump.rs"]
mod dump;

use serde_json::json;
use tack_store::{NewEvent, SessionStatus, Store};

fn main() {
    let url = std::env::args()
        .nth(1)
        .expect("usage: write_fixture sqlite://PATH | postgres://…");
    let rt = tokio::runtime::Runtime::new().expect("a tokio runtime");
    rt.block_on(async {
        let store = Store::open(&url).await.expect("open the store");
        write(&store).await;
        let dumped = dump::dump(&store).await;
        println!("{}", serde_json::to_string_pretty(&dumped).unwrap());
    });
}

async fn write(store: &Store) {
    store
        .put_agent(
            "refunds",
            &json!({"name": "refunds", "model": "demo", "tools": ["acme/payments@0.1.0"]}),
        )
        .await
        .unwrap();
    store
        .put_agent(
            "refunds",
            &json!({"name": "refunds", "model": "demo-2", "tools": ["acme/payments@0.1.0"],
                                      "limits": {"max_steps": 8}}),
        )
        .await
        .unwrap();
    store
        .put_agent(
            "notes",
            &json!({"name": "notes", "model": "demo", "instructions": "Take notes. ünïcødé ✓"}),
        )
        .await
        .unwrap();

    // A finished run with a destructive call, a redacted argument and its record.
    let message = r#"{"text":"refund order 42","by":"alice"}"#;
    let (s, _) = store
        .create_session_with(
            "refunds",
            2,
            "alice",
            NewEvent {
                kind: "user_message",
                data: message,
                private: None,
            },
            SessionStatus::Queued,
        )
        .await
        .unwrap();
    let run = [
        (
            "run_started",
            r#"{"run_id":"run-1","agent":"refunds","agent_version":2,"model":"demo-2"}"#,
            None,
        ),
        ("status_changed", r#"{"status":"running"}"#, None),
        (
            "tool_call",
            r#"{"run_id":"run-1","call_id":"call-1","arguments":{"card":"[redacted]"}}"#,
            Some(r#"{"run_id":"run-1","call_id":"call-1","arguments":{"card":"4111"}}"#),
        ),
    ];
    let events: Vec<NewEvent> = run
        .iter()
        .map(|(kind, data, private)| NewEvent {
            kind,
            data,
            private: *private,
        })
        .collect();
    store
        .append_batch(&s.id, &events, Some(SessionStatus::Running), None)
        .await
        .unwrap();
    store.claim_call(&s.id, "run-1/call-1").await.unwrap();
    let record = json!({"ok": true, "content": "refunded", "latency_ms": 3});
    store
        .append_batch(
            &s.id,
            &[NewEvent {
                kind: "tool_result",
                data: r#"{"run_id":"run-1","call_id":"call-1","ok":true}"#,
                private: None,
            }],
            None,
            Some(("run-1/call-1", &record)),
        )
        .await
        .unwrap();
    // A call a crash left unfinished.
    store.claim_call(&s.id, "run-1/call-2").await.unwrap();
    store
        .append_batch(
            &s.id,
            &[
                NewEvent {
                    kind: "run_finished",
                    data: r#"{"run_id":"run-1","stop_reason":"end_turn"}"#,
                    private: None,
                },
                NewEvent {
                    kind: "status_changed",
                    data: r#"{"status":"idle"}"#,
                    private: None,
                },
            ],
            Some(SessionStatus::Idle),
            None,
        )
        .await
        .unwrap();

    // A session waiting for an approval, one on an older agent version, one empty.
    let waiting = store.create_session("notes", 1).await.unwrap();
    store
        .append_with_status(
            &waiting.id,
            "approval_required",
            &json!({"approval_id": "ap_1"}),
            None,
            Some(SessionStatus::WaitingApproval),
        )
        .await
        .unwrap();
    let old = store.create_session("refunds", 1).await.unwrap();
    store
        .append(&old.id, "user_message", &json!({"text": "hi", "by": "bob"}))
        .await
        .unwrap();
    store.create_session("notes", 1).await.unwrap();

    store.put_secret("openai", "sealed-v1").await.unwrap();
    store.put_secret("openai", "sealed-v2").await.unwrap();
    store.put_secret("anthropic", "sealed-a").await.unwrap();
    store
        .put_api_token("admin", "admin", "hash-of-admin-token", None)
        .await
        .unwrap();
    store
        .put_api_token("alice", "user", "hash-of-user-token", None)
        .await
        .unwrap();
}
