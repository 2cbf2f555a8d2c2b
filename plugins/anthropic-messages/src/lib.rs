//! `anthropic-messages`: the model adapter for the Anthropic Messages API
//! (`POST {endpoint}/messages`, `anthropic-version: 2023-06-01`).
//!
//! JSON or SSE (`message_start`, `content_block_*`, `message_delta`), parallel
//! `tool_use` blocks (with `input_json_delta` fragments), token usage, and errors
//! classified for the host's retries (529 `overloaded_error` is retryable). The
//! request carries no credential: the host adds `x-api-key` for the endpoint's
//! host on the way out.

wit_bindgen::generate!({
    path: "../../wit",
    world: "model-adapter",
});

use exports::tack::plugin::model::{
    Completion, CompletionRequest, Guest, Message, ModelError, Part, Role, StopReason, ToolCall,
    Usage,
};
use serde_json::{Value, json};
use tack::plugin::model_stream;
use tack_sdk_core::http;

tack_sdk_core::manifest!("tack.toml");

const MAX_BODY: usize = 16 << 20;
const API_VERSION: &str = "2023-06-01";

struct AnthropicMessages;

impl Guest for AnthropicMessages {
    fn complete(request: CompletionRequest) -> Result<Completion, ModelError> {
        let body = request_body(&request);
        let url = format!("{}/messages", request.endpoint.trim_end_matches('/'));
        let req = http::Request::post_json(
            url,
            &[("anthropic-version", API_VERSION)],
            body.to_string().into_bytes(),
            request.stream,
        );
        // What this adapter sends, as it sends it (the host adds the credential
        // afterwards, on the way out; it never appears here).
        tack::plugin::logging::log(tack::plugin::logging::Level::Debug, &req.describe());
        let mut response = http::open_ok(&req)?;
        if request.stream {
            read_stream(&mut response)
        } else {
            let body = http::read_all(&mut response, MAX_BODY)?;
            let value: Value = serde_json::from_slice(&body)
                .map_err(|e| error(Some(200), &format!("the response is not JSON: {e}"), false))?;
            parse_message(&value)
        }
    }
}

export!(AnthropicMessages);

fn request_body(r: &CompletionRequest) -> Value {
    let mut system: Vec<String> = r.system.iter().cloned().collect();
    // Anthropic takes tool results in user turns, and wants turns to alternate:
    // consecutive messages of one role are merged.
    let mut messages: Vec<Value> = Vec::new();
    for m in &r.messages {
        let role = match m.role {
            Role::System => {
                system.push(text_of(&m.parts));
                continue;
            }
            Role::User | Role::Tool => "user",
            Role::Assistant => "assistant",
        };
        let blocks: Vec<Value> = m
            .parts
            .iter()
            .filter_map(|p| match p {
                Part::Text(t) if t.is_empty() => None,
                Part::Text(t) => Some(json!({"type": "text", "text": t})),
                Part::ToolCall(c) => Some(json!({
                    "type": "tool_use", "id": c.id, "name": c.name,
                    "input": serde_json::from_str::<Value>(&c.arguments).unwrap_or_else(|_| json!({})),
                })),
                Part::ToolResult(r) => Some(json!({
                    "type": "tool_result", "tool_use_id": r.call_id,
                    "content": r.content, "is_error": r.is_error,
                })),
            })
            .collect();
        if blocks.is_empty() {
            continue;
        }
        match messages.last_mut() {
            Some(last) if last["role"] == role => {
                if let Some(content) = last["content"].as_array_mut() {
                    content.extend(blocks);
                }
            }
            _ => messages.push(json!({"role": role, "content": blocks})),
        }
    }
    let mut body = json!({
        "model": r.model,
        "messages": messages,
        "max_tokens": r.max_tokens,
    });
    if !system.is_empty() {
        body["system"] = json!(system.join("\n\n"));
    }
    if !r.tools.is_empty() {
        body["tools"] = r
            .tools
            .iter()
            .map(|t| {
                json!({
                    "name": t.name,
                    "description": t.description,
                    "input_schema": serde_json::from_str::<Value>(&t.input_schema)
                        .unwrap_or_else(|_| json!({"type": "object"})),
                })
            })
            .collect();
    }
    if let Some(t) = r.temperature {
        body["temperature"] = json!(t);
    }
    if r.stream {
        body["stream"] = json!(true);
    }
    body
}

fn text_of(parts: &[Part]) -> String {
    parts
        .iter()
        .filter_map(|p| match p {
            Part::Text(t) => Some(t.as_str()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("")
}

fn stop_reason(s: Option<&str>, has_calls: bool) -> StopReason {
    match s {
        Some("tool_use") => StopReason::ToolUse,
        Some("max_tokens") => StopReason::MaxTokens,
        Some("refusal") => StopReason::Refusal,
        _ if has_calls => StopReason::ToolUse,
        _ => StopReason::EndTurn,
    }
}

fn parse_message(v: &Value) -> Result<Completion, ModelError> {
    let content = v["content"]
        .as_array()
        .ok_or_else(|| error(Some(200), "the response has no `content`", false))?;
    let mut parts = Vec::new();
    for block in content {
        match block["type"].as_str() {
            Some("text") => {
                if let Some(t) = block["text"].as_str().filter(|t| !t.is_empty()) {
                    parts.push(Part::Text(t.to_string()));
                }
            }
            Some("tool_use") => parts.push(Part::ToolCall(ToolCall {
                id: block["id"].as_str().unwrap_or_default().to_string(),
                name: block["name"].as_str().unwrap_or_default().to_string(),
                arguments: block["input"].to_string(),
            })),
            _ => {}
        }
    }
    let has_calls = parts.iter().any(|p| matches!(p, Part::ToolCall(_)));
    Ok(Completion {
        message: Message {
            role: Role::Assistant,
            parts,
        },
        stop_reason: stop_reason(v["stop_reason"].as_str(), has_calls),
        usage: Usage {
            input_tokens: v["usage"]["input_tokens"].as_u64().unwrap_or(0),
            output_tokens: v["usage"]["output_tokens"].as_u64().unwrap_or(0),
        },
    })
}

/// One content block being assembled from the stream.
enum Block {
    Text(String),
    Tool {
        id: String,
        name: String,
        json: String,
    },
}

#[derive(Default)]
struct StreamState {
    blocks: Vec<(u64, Block)>,
    stop: Option<String>,
    usage: (u64, u64),
    done: bool,
}

impl StreamState {
    fn block(&mut self, index: u64) -> Option<&mut Block> {
        self.blocks
            .iter_mut()
            .find(|(i, _)| *i == index)
            .map(|(_, b)| b)
    }

    fn handle(&mut self, data: &str) -> Result<(), ModelError> {
        let v: Value = serde_json::from_str(data).map_err(|e| {
            error(
                Some(200),
                &format!("a stream event is not JSON: {e}"),
                false,
            )
        })?;
        match v["type"].as_str().unwrap_or_default() {
            "message_start" => {
                let u = &v["message"]["usage"];
                self.usage.0 = u["input_tokens"].as_u64().unwrap_or(0);
                self.usage.1 = u["output_tokens"].as_u64().unwrap_or(0);
            }
            "content_block_start" => {
                let index = v["index"].as_u64().unwrap_or(0);
                let b = &v["content_block"];
                let block = match b["type"].as_str() {
                    Some("tool_use") => Block::Tool {
                        id: b["id"].as_str().unwrap_or_default().to_string(),
                        name: b["name"].as_str().unwrap_or_default().to_string(),
                        json: String::new(),
                    },
                    _ => Block::Text(b["text"].as_str().unwrap_or_default().to_string()),
                };
                if self.blocks.len() >= 256 {
                    return Err(error(Some(200), "more than 256 content blocks", false));
                }
                self.blocks.push((index, block));
            }
            "content_block_delta" => {
                let index = v["index"].as_u64().unwrap_or(0);
                let delta = &v["delta"];
                match (self.block(index), delta["type"].as_str()) {
                    (Some(Block::Text(t)), Some("text_delta")) => {
                        let piece = delta["text"].as_str().unwrap_or_default();
                        t.push_str(piece);
                        if !piece.is_empty() {
                            model_stream::text_delta(piece);
                        }
                    }
                    (Some(Block::Tool { json, .. }), Some("input_json_delta")) => {
                        json.push_str(delta["partial_json"].as_str().unwrap_or_default());
                    }
                    _ => {}
                }
            }
            "message_delta" => {
                if let Some(s) = v["delta"]["stop_reason"].as_str() {
                    self.stop = Some(s.to_string());
                }
                if let Some(o) = v["usage"]["output_tokens"].as_u64() {
                    self.usage.1 = o;
                }
                if let Some(i) = v["usage"]["input_tokens"].as_u64() {
                    self.usage.0 = i;
                }
            }
            "message_stop" => self.done = true,
            "error" => {
                let kind = v["error"]["type"].as_str().unwrap_or("error");
                let message = v["error"]["message"]
                    .as_str()
                    .unwrap_or("the provider sent an error");
                let retryable =
                    matches!(kind, "overloaded_error" | "rate_limit_error" | "api_error");
                return Err(error(None, &format!("{kind}: {message}"), retryable));
            }
            _ => {}
        }
        Ok(())
    }
}

fn read_stream(response: &mut http::OpenResponse) -> Result<Completion, ModelError> {
    let mut state = StreamState::default();
    tack_sdk_core::sse::drain(response, |data| {
        state.handle(data)?;
        Ok::<bool, ModelError>(state.done)
    })?;
    if !state.done && state.stop.is_none() {
        return Err(error(
            None,
            "the stream ended before the answer was complete",
            true,
        ));
    }
    let mut parts = Vec::new();
    for (_, block) in std::mem::take(&mut state.blocks) {
        match block {
            Block::Text(t) if t.is_empty() => {}
            Block::Text(t) => parts.push(Part::Text(t)),
            Block::Tool { id, name, json } => parts.push(Part::ToolCall(ToolCall {
                id,
                name,
                arguments: if json.trim().is_empty() {
                    "{}".into()
                } else {
                    json
                },
            })),
        }
    }
    let has_calls = parts.iter().any(|p| matches!(p, Part::ToolCall(_)));
    Ok(Completion {
        message: Message {
            role: Role::Assistant,
            parts,
        },
        stop_reason: stop_reason(state.stop.as_deref(), has_calls),
        usage: Usage {
            input_tokens: state.usage.0,
            output_tokens: state.usage.1,
        },
    })
}

fn error(status: Option<u16>, message: &str, retryable: bool) -> ModelError {
    http::Failure::new(status, message, retryable).into()
}

impl From<http::Failure> for ModelError {
    fn from(f: http::Failure) -> Self {
        ModelError {
            status: f.status,
            message: f.message,
            retryable: f.retryable,
            retry_after_ms: f.retry_after_ms,
        }
    }
}
