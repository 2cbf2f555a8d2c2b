//! `http`: GET and POST URLs within the operator's allow-list.
//!
//! The plugin declares `*` (any host); what it can actually reach is the grant's
//! `http.allow` list, and never a loopback, private or link-local address unless
//! the grant opens that range explicitly.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use tack_sdk::http::{self, HttpError, Request};
use tack_sdk::{Annotations, CallContext, JsonSchema, ToolError, Toolbox};

/// Largest body the tools return unless told otherwise.
const DEFAULT_MAX_BYTES: usize = 256 * 1024;

/// Arguments of `get`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct GetInput {
    /// Absolute http:// or https:// URL.
    url: String,
    /// Extra request headers.
    #[serde(default)]
    headers: BTreeMap<String, String>,
    /// Most body bytes to return (default 262144).
    #[serde(default = "default_max")]
    max_bytes: usize,
}

/// Arguments of `post`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct PostInput {
    /// Absolute http:// or https:// URL.
    url: String,
    /// Request body.
    body: String,
    /// Content type of the body (default application/json).
    #[serde(default = "default_content_type")]
    content_type: String,
    /// Extra request headers.
    #[serde(default)]
    headers: BTreeMap<String, String>,
    /// Most body bytes to return (default 262144).
    #[serde(default = "default_max")]
    max_bytes: usize,
}

fn default_max() -> usize {
    DEFAULT_MAX_BYTES
}

fn default_content_type() -> String {
    "application/json".into()
}

/// An HTTP response.
#[derive(Serialize, JsonSchema)]
struct HttpOutput {
    /// Status code.
    status: u16,
    /// Response headers (lower-case names; repeated headers joined with `, `).
    headers: BTreeMap<String, String>,
    /// Body as UTF-8 (invalid sequences replaced), at most `max_bytes`.
    body: String,
    /// Whether the body was cut at `max_bytes`.
    truncated: bool,
}

fn send(req: Request, max_bytes: usize) -> Result<HttpOutput, ToolError> {
    let resp = http::send(&req, max_bytes).map_err(|e| match e {
        HttpError::InvalidRequest(m) => ToolError::invalid("/url", m),
        HttpError::Transport(m) if m.contains("egress policy") => {
            ToolError::permission_denied(format!("{}: {m}", req.url))
        }
        HttpError::Transport(m) => ToolError::unavailable(format!("{}: {m}", req.url)),
    })?;
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in resp.headers {
        headers
            .entry(k.to_ascii_lowercase())
            .and_modify(|e| {
                e.push_str(", ");
                e.push_str(&v)
            })
            .or_insert(v);
    }
    Ok(HttpOutput {
        status: resp.status,
        headers,
        body: String::from_utf8_lossy(&resp.body).into_owned(),
        truncated: resp.truncated,
    })
}

fn get(input: GetInput, _: &CallContext) -> Result<HttpOutput, ToolError> {
    send(
        Request {
            method: "GET".into(),
            url: input.url,
            headers: input.headers.into_iter().collect(),
            body: Vec::new(),
            timeout_ms: None,
        },
        input.max_bytes,
    )
}

fn post(input: PostInput, _: &CallContext) -> Result<HttpOutput, ToolError> {
    let mut headers: Vec<(String, String)> = input.headers.into_iter().collect();
    headers.push(("content-type".into(), input.content_type));
    send(
        Request {
            method: "POST".into(),
            url: input.url,
            headers,
            body: input.body.into_bytes(),
            timeout_ms: None,
        },
        input.max_bytes,
    )
}

fn tools() -> Toolbox {
    Toolbox::new()
        .tool(
            "get",
            "Fetch a URL with GET; returns status, headers and the (capped) body.",
            Annotations::read_only().open_world(),
            get,
        )
        .tool(
            "post",
            "Send a body to a URL with POST; returns status, headers and the (capped) body.",
            Annotations::additive().open_world(),
            post,
        )
}

tack_sdk::export_tools!(tools());
tack_sdk::manifest!("tack.toml");
