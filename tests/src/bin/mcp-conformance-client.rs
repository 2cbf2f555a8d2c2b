//! The client the MCP conformance runner drives in its client scenarios:
//! tack's gateway client (`tack_mcp::Upstream`, as `[mcp-servers.NAME] url`
//! configures it) against the URL the runner appends as the last argument. It
//! connects (offering 2026-07-28, falling back to 2025-11-25), lists the tools
//! and calls each with arguments made from its input schema, as an agent's
//! model would, then disconnects. The scenario (`MCP_CONFORMANCE_SCENARIO`)
//! only names the run in its output: the client behaves the same in every one.

use serde_json::{Map, Value, json};
use std::process::ExitCode;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let Some(url) = std::env::args().nth(1) else {
        eprintln!("usage: mcp-conformance-client URL");
        return ExitCode::from(2);
    };
    let scenario = std::env::var("MCP_CONFORMANCE_SCENARIO").unwrap_or_default();
    tack_distribution::client::install_crypto();
    let config: tack_config::McpServerConfig =
        toml::from_str(&format!("url = {}", Value::String(url.clone())))
            .expect("a server configuration");
    let upstream = match tack_mcp::Upstream::connect("conformance", &config, None).await {
        Ok(u) => u,
        Err(e) => {
            eprintln!("{scenario}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let tools = match upstream.tools().await {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{scenario}: {e}");
            return ExitCode::FAILURE;
        }
    };
    for t in tools {
        let schema = Value::Object((*t.tool.input_schema).clone());
        let arguments = example(&schema);
        match upstream.call(&t.tool.name, arguments).await {
            Ok(r) => println!("{}: {}", t.tool.name, r.text),
            Err(e) => eprintln!("{}: {e}", t.tool.name),
        }
    }
    ExitCode::SUCCESS
}

/// Arguments that fit `schema`'s required properties: a number is 1, a string
/// `"tack ✓ test"`, and so on.
fn example(schema: &Value) -> Value {
    match schema.get("type").and_then(Value::as_str) {
        Some("object") | None => {
            let mut out = Map::new();
            let required = schema.get("required").and_then(Value::as_array);
            for name in required.into_iter().flatten().filter_map(Value::as_str) {
                let property = &schema["properties"][name];
                out.insert(name.to_string(), example(property));
            }
            Value::Object(out)
        }
        Some("number") | Some("integer") => json!(1),
        Some("boolean") => json!(true),
        Some("array") => json!([]),
        Some("null") => Value::Null,
        // Not plain ASCII, so headers mirroring it (Mcp-Param) need encoding.
        _ => json!("tack ✓ test"),
    }
}
