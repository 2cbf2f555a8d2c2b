//! The client the MCP conformance runner drives in its client scenarios:
//! tack's gateway client (`tack_mcp::Upstream`, as `[mcp-servers.NAME] url`
//! configures it) against the URL the runner appends as the last argument. It
//! connects (offering 2026-07-28, falling back to 2025-11-25), lists the tools
//! and calls each with arguments made from its input schema, as an agent's
//! model would, then disconnects. Where the server asks for OAuth it logs in
//! as `tack mcp login` does, with the browser's part (following the
//! authorization server's redirect) done in-process, and authorizes again
//! once when a call lacks a scope. What a server asks mid-call is answered
//! with an empty form, which the gateway fills with the schema's defaults. The scenario (`MCP_CONFORMANCE_SCENARIO`)
//! only names the run in its output: the client behaves the same in every
//! one; a pre-registered client comes from `MCP_CONFORMANCE_CONTEXT`.

use futures_util::future::BoxFuture;
use serde_json::{Map, Value, json};
use std::process::ExitCode;
use std::sync::Arc;
use tack_engine::remote::RemoteError;
use tack_mcp::{Asker, Login, Subject, Upstream, UpstreamError};
use tack_secrets::{MasterKey, Secrets};

/// How many times one request may send the client through authorization
/// (a first login, then scope step-ups) before it gives up.
const LOGINS: usize = 3;

/// Where the client says the browser should come back to. Nothing listens:
/// the client reads the code from the authorization server's redirect.
const REDIRECT_URI: &str = "http://127.0.0.1:1/callback";

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let Some(url) = std::env::args().nth(1) else {
        eprintln!("usage: mcp-conformance-client URL");
        return ExitCode::from(2);
    };
    let scenario = std::env::var("MCP_CONFORMANCE_SCENARIO").unwrap_or_default();
    match run(&url).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{scenario}: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(url: &str) -> Result<(), UpstreamError> {
    tack_distribution::client::install_crypto();
    // Tokens are sealed in a store, as on a host: a throwaway one here.
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = tack_store::Store::open(&format!("sqlite://{}", dir.path().join("t.db").display()))
        .await
        .expect("a store");
    let secrets = Secrets::new(store, MasterKey::generate());
    // The client metadata document's address is offered always; it is used
    // where the authorization server accepts one. A pre-registered client
    // comes from the scenario's context.
    let mut oauth = toml::Table::new();
    oauth.insert(
        "client-metadata-url".into(),
        "https://conformance-test.local/client-metadata.json".into(),
    );
    let context: Value = std::env::var("MCP_CONFORMANCE_CONTEXT")
        .ok()
        .and_then(|c| serde_json::from_str(&c).ok())
        .unwrap_or_default();
    if let Some(id) = context["client_id"].as_str() {
        oauth.insert("client-id".into(), id.into());
    }
    if let Some(secret) = context["client_secret"].as_str() {
        secrets
            .set("client-secret", secret.as_bytes())
            .await
            .expect("a secret");
        oauth.insert("client-secret".into(), "client-secret".into());
    }
    let mut table = toml::Table::new();
    table.insert("url".into(), url.into());
    table.insert("oauth".into(), oauth.into());
    let config: tack_config::McpServerConfig = table.try_into().expect("a server configuration");

    let mut logins = 0;
    let mut upstream = loop {
        match Upstream::connect("conformance", &config, Some(&secrets)).await {
            Ok(u) => break u,
            Err(UpstreamError::Authorization { challenge, .. }) if logins < LOGINS => {
                logins += 1;
                login(&config, &secrets, challenge.as_deref()).await?;
            }
            Err(e) => return Err(e),
        }
    };
    let mut logins = 0;
    let tools = loop {
        match upstream.tools().await {
            Ok(t) => break t,
            // The server moved to another authorization server, say.
            Err(UpstreamError::Authorization { challenge, .. }) if logins < LOGINS => {
                logins += 1;
                login(&config, &secrets, challenge.as_deref()).await?;
                upstream = Upstream::connect("conformance", &config, Some(&secrets)).await?;
            }
            Err(e) => return Err(e),
        }
    };
    for t in tools {
        let schema = Value::Object((*t.tool.input_schema).clone());
        let arguments = example(&schema);
        let mut logins = 0;
        loop {
            match upstream
                .call_asking(&t.tool.name, arguments.clone(), Arc::new(Defaults))
                .await
            {
                Ok(r) => println!("{}: {}", t.tool.name, r.text),
                // A token without the scope a tool needs: authorize again
                // with the scope the server names, then call again.
                Err(UpstreamError::Authorization { challenge, .. }) if logins < LOGINS => {
                    logins += 1;
                    login(&config, &secrets, challenge.as_deref()).await?;
                    upstream = Upstream::connect("conformance", &config, Some(&secrets)).await?;
                    continue;
                }
                Err(e) => eprintln!("{}: {e}", t.tool.name),
            }
            break;
        }
    }
    Ok(())
}

/// A person who accepts whatever a server asks with the values it suggests
/// (an empty form: the gateway fills in the schema's defaults).
struct Defaults;

impl Asker for Defaults {
    fn ask(&self, _: String, _: Vec<String>) -> BoxFuture<'_, Result<String, RemoteError>> {
        Box::pin(async { Ok("{}".to_string()) })
    }
}

/// Authorize as a person would, with the browser's part done here: open the
/// authorization address without following its redirect, and hand the
/// address it redirects to back to the login.
async fn login(
    config: &tack_config::McpServerConfig,
    secrets: &Secrets,
    challenge: Option<&str>,
) -> Result<(), UpstreamError> {
    let login = Login::begin(
        "conformance",
        config,
        Some(secrets),
        Subject::Host,
        REDIRECT_URI,
        challenge,
    )
    .await?;
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("an HTTP client");
    let failed = |message: String| UpstreamError::Authorization {
        server: "conformance".into(),
        challenge: None,
        message,
    };
    let answer = browser
        .get(login.url())
        .send()
        .await
        .map_err(|e| failed(format!("the authorization address did not answer: {e}")))?;
    let back = answer
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .ok_or_else(|| {
            failed(format!(
                "the authorization server did not redirect ({})",
                answer.status()
            ))
        })?;
    login.finish(back).await
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
