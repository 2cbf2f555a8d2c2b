//! Per-user delegation in the loop, with a stand-in for the gateway: a call
//! to a server that takes each user's own token waits in the log
//! (`mcp_auth_required`) before anything runs; a host restart makes it ask
//! again with a new address; the user's authorization lets it run once.

mod common;

use common::*;
use futures_util::future::BoxFuture;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tack_engine::remote::{
    Asker, AuthorizationNeeded, CompletedAuthorization, RemoteEntry, RemoteError, RemoteTool,
    ToolServers,
};
use tack_engine::{EventData, RunStop};
use tack_runtime::{Annotations, CallContext, Content, ToolDescriptor};

const SCRIPT: &str = r#"
scenarios:
  - steps:
      - tool_calls:
          - {name: ev__echo, arguments: {message: hi}}
      - text: "Echoed."
"#;

/// One server, `ev`, whose tool `echo` needs the caller's authorization
/// until someone completes it; the addresses it hands out are numbered.
#[derive(Default)]
struct Delegating {
    authorized: Mutex<bool>,
    addresses: AtomicU32,
    waiting: Mutex<Vec<(String, String)>>,
    runs: AtomicUsize,
    users: Mutex<Vec<Option<String>>>,
}

struct Echo(Arc<Delegating>);

impl RemoteTool for Echo {
    fn check_arguments(&self, _: &Value) -> Result<(), RemoteError> {
        Ok(())
    }

    fn authorization<'a>(
        &'a self,
        ctx: &'a CallContext,
    ) -> BoxFuture<'a, Result<Option<AuthorizationNeeded>, RemoteError>> {
        Box::pin(async move {
            self.0.users.lock().unwrap().push(ctx.principal.clone());
            if *self.0.authorized.lock().unwrap() {
                return Ok(None);
            }
            let n = self.0.addresses.fetch_add(1, Ordering::SeqCst) + 1;
            self.0.waiting.lock().unwrap().push((
                ctx.session_id.clone().unwrap_or_default(),
                ctx.call_id.clone(),
            ));
            Ok(Some(AuthorizationNeeded {
                server: "ev".into(),
                user: ctx.principal.clone().unwrap_or_default(),
                url: format!("https://as.example/authorize?attempt={n}"),
            }))
        })
    }

    fn call<'a>(
        &'a self,
        arguments: &'a Value,
        _: &'a CallContext,
        _: Arc<dyn Asker>,
    ) -> BoxFuture<'a, Result<Vec<Content>, RemoteError>> {
        Box::pin(async move {
            self.0.runs.fetch_add(1, Ordering::SeqCst);
            Ok(vec![Content::Text(format!(
                "echo {}",
                arguments["message"]
            ))])
        })
    }
}

struct Servers(Arc<Delegating>);

impl ToolServers for Servers {
    fn tools<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<Vec<RemoteEntry>, RemoteError>> {
        Box::pin(async move {
            Ok(vec![RemoteEntry {
                descriptor: ToolDescriptor {
                    name: "echo".into(),
                    description: "Echo.".into(),
                    input_schema: json!({"type": "object"}),
                    output_schema: None,
                    annotations: Annotations {
                        destructive: false,
                        read_only: true,
                        idempotent: true,
                        open_world: false,
                    },
                },
                destructive: false,
                tool: Arc::new(Echo(self.0.clone())),
            }])
        })
    }

    fn complete_authorization<'a>(
        &'a self,
        callback_url: &'a str,
    ) -> BoxFuture<'a, Result<CompletedAuthorization, RemoteError>> {
        Box::pin(async move {
            assert!(callback_url.contains("code="), "{callback_url}");
            *self.0.authorized.lock().unwrap() = true;
            Ok(CompletedAuthorization {
                server: "ev".into(),
                user: "una".into(),
                waiters: std::mem::take(&mut *self.0.waiting.lock().unwrap()),
                failed: None,
            })
        })
    }
}

const EXTRA: &str = "[mcp-servers.ev]\nurl = \"http://127.0.0.1:1/mcp\"\n";

#[tokio::test(flavor = "multi_thread")]
async fn a_call_waits_for_its_users_authorization_across_a_restart() {
    let h = Harness::start_with(SCRIPT, None, EXTRA).await;
    let fake = Arc::new(Delegating::default());
    let endpoint = h.model.base_url();
    let state = h.dir.path().join("payments");
    let on = |fake: &Arc<Delegating>| {
        let servers: Arc<dyn ToolServers> = Arc::new(Servers(fake.clone()));
        engine_full(
            &endpoint,
            &state,
            &h.store_url,
            EXTRA,
            Arc::new(source()),
            Some(servers),
            h.clock.clone(),
        )
    };
    let first = on(&fake).await;
    let yaml = "name: echoer\nmodel: scripted\nmcp-servers: [ev]\n";
    let agent = first.register_agent(yaml, &builder()).await.unwrap();
    let session = first
        .create_session(&agent.name, "echo please", &user())
        .await
        .unwrap()
        .id;
    let kinds = |events: &[tack_engine::LoggedEvent], kind: &str| {
        events
            .iter()
            .filter(|e| e.data.kind() == kind)
            .cloned()
            .collect::<Vec<_>>()
    };
    wait_status(&first, &session, tack_engine::Status::WaitingInput).await;
    let events = first.events(&session, 0, 1000).await.unwrap();
    let asked = kinds(&events, "mcp_auth_required");
    assert_eq!(asked.len(), 1, "{events:?}");
    let EventData::McpAuthRequired {
        user,
        authorization_url,
        ..
    } = &asked[0].data
    else {
        unreachable!()
    };
    assert_eq!(user, &user_name());
    assert!(authorization_url.ends_with("attempt=1"));
    assert_eq!(fake.runs.load(Ordering::SeqCst), 0, "nothing ran");

    // The host restarts: the authorization in progress is gone, so the
    // call asks again, with a new address.
    drop(first);
    let second = on(&fake).await;
    second.resume().await.unwrap();
    let asked_again = async {
        loop {
            let events = second.events(&session, 0, 1000).await.unwrap();
            if kinds(&events, "mcp_auth_required").len() == 2 {
                return events;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    };
    let again = tokio::time::timeout(std::time::Duration::from_secs(60), asked_again)
        .await
        .expect("the call asked again");
    let completed = kinds(&again, "mcp_auth_completed");
    assert!(
        matches!(
            completed[0].data,
            EventData::McpAuthCompleted {
                authorized: false,
                ..
            }
        ),
        "{completed:?}"
    );
    let EventData::McpAuthRequired {
        authorization_url, ..
    } = &kinds(&again, "mcp_auth_required")[1].data
    else {
        unreachable!()
    };
    assert!(authorization_url.ends_with("attempt=2"));

    // The user authorizes: the call runs once, and the run ends.
    let (server, who) = second
        .complete_mcp_authorization("http://callback/?code=c&state=s")
        .await
        .unwrap();
    assert_eq!((server.as_str(), who.as_str()), ("ev", "una"));
    let events = wait_finished(&second, &session, 1).await;
    assert!(matches!(
        events.iter().rev().find_map(|e| match &e.data {
            EventData::RunFinished { stop_reason, .. } => Some(*stop_reason),
            _ => None,
        }),
        Some(RunStop::EndTurn)
    ));
    assert_eq!(fake.runs.load(Ordering::SeqCst), 1);
    assert!(
        fake.users
            .lock()
            .unwrap()
            .iter()
            .all(|u| u.as_deref() == Some(user_name().as_str())),
        "every check was for the session's user"
    );
}

fn user_name() -> String {
    user().name
}
