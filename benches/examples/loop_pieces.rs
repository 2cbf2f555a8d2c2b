//! Time the pieces of one agent step separately (adapter call, tool call), for
//! finding where the loop's time goes.
//!
//! `ADAPTER_WASM=PATH` times another build of the OpenAI adapter (to compare two
//! builds of it side by side).

use std::sync::Arc;
use std::time::Instant;
use tack_capability::Grant;
use tack_runtime::{CallContext, CompletionRequest, Credential, Message, Role};
use tack_tests::{guest, runtime};

fn main() {
    tack_distribution::client::install_crypto();
    let rt = tack_tests::one_worker_runtime();
    rt.block_on(async {
        let script = tack_scripted_model::Script::from_yaml(
            "scenarios:\n  - steps:\n      - text: \"Alice has $125.00.\"\n",
        )
        .unwrap();
        let model = tack_scripted_model::ScriptedModel::start(script).await.unwrap();
        let rt = runtime();
        let adapter = rt
            .load_model_adapter(&std::fs::read(std::env::var("ADAPTER_WASM").map(std::path::PathBuf::from).unwrap_or_else(|_| guest("tack_plugin_openai_chat"))).unwrap())
            .unwrap();
        let grant: Grant = serde_json::from_value(serde_json::json!({"http": {"allow": [format!("127.0.0.1:{}", model.addr().port())], "allow-private": ["127.0.0.1/32"]}})).unwrap();
        let bound = adapter
            .bind(&grant, vec![Credential::new("127.0.0.1", None, "authorization", "Bearer x").unwrap()])
            .unwrap();
        for stream in [false, true] {
            let req = CompletionRequest {
                endpoint: model.base_url(),
                model: "m".into(),
                system: Some("Answer.".into()),
                messages: vec![Message::text(Role::User, "balance?")],
                tools: vec![serde_json::from_value::<tack_runtime::ToolDescriptor>(serde_json::json!({"name": "read_balance", "description": "Read an account's balance.", "inputSchema": {"type": "object", "properties": {"account": {"type": "string", "description": "The account id"}}, "required": ["account"]}, "annotations": {"destructive": false, "readOnly": true, "idempotent": true, "openWorld": false}})).unwrap()].into(),
                max_tokens: 100,
                temperature: None,
                stream,
            };
            let n = 500;
            let start = Instant::now();
            for _ in 0..n {
                bound.complete(&req, std::time::Duration::from_secs(5), Some(Arc::new(|_: &str| {}))).await.unwrap().result.unwrap();
            }
            println!("adapter call (stream={stream}): {:.1} µs", start.elapsed().as_secs_f64() * 1e6 / n as f64);
        }
        let dir = tempfile::tempdir().unwrap();
        let plugin = rt.load(&std::fs::read(guest("tack_plugin_payments")).unwrap()).unwrap();
        let grant: Grant = serde_json::from_value(serde_json::json!({"dirs": [{"host": dir.path(), "guest": "/state", "mode": "rw"}]})).unwrap();
        let sb = plugin.sandbox(&grant).unwrap();
        let n = 1000;
        let start = Instant::now();
        for _ in 0..n {
            sb.call("read_balance", r#"{"account": "acct_alice"}"#, &CallContext::default()).await.unwrap();
        }
        println!("tool call read_balance: {:.1} µs", start.elapsed().as_secs_f64() * 1e6 / n as f64);
    });
}
