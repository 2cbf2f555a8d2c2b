//! `openai-chat`: the model adapter for OpenAI-compatible Chat Completions
//! (`POST {endpoint}/chat/completions`): OpenAI, vLLM, Ollama, llama.cpp server,
//! and anything else that speaks the format.
//!
//! JSON or SSE (`stream: true` with `stream_options.include_usage`), parallel tool
//! calls (fragments reassembled by `index`), token usage, and errors classified
//! for the host's retries. The request carries no credential: the host adds
//! `authorization` for the endpoint's host on the way out.

wit_bindgen::generate!({
    path: "../../wit",
    world: "model-adapter",
});

use exports::tack::plugin::model::{
    Completion, CompletionRequest, Guest, Message, ModelError, Part, Role, StopReason, ToolCall,
    Usage,
};
use serde_json::Value;
use std::borrow::Cow;
use tack::plugin::model_stream;
use tack_sdk_core::http;

mod wire;

tack_sdk_core::manifest!("tack.toml");

/// Largest non-streamed response body read.
const MAX_BODY: usize = 16 << 20;

struct OpenAiChat;

impl Guest for OpenAiChat {
    fn complete(request: CompletionRequest) -> Result<Completion, ModelError> {
        let body = request_body(&request);
        let url = format!(
            "{}/chat/completions",
            request.endpoint.trim_end_matches('/')
        );
        let req = http::Request::post_json(url, &[], body, request.stream);
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
            parse_completion(&value)
        }
    }
}

export!(OpenAiChat);

/// The request body, serialized straight from the request (no JSON tree in
/// between; tool schemas are copied in as they are, after a check that they are
/// JSON).
fn request_body(r: &CompletionRequest) -> Vec<u8> {
    let mut messages = Vec::with_capacity(r.messages.len() + 1);
    if let Some(system) = &r.system {
        messages.push(wire::Message::text("system", system.as_str().into()));
    }
    for m in &r.messages {
        match m.role {
            Role::System => messages.push(wire::Message::text("system", text_of(&m.parts))),
            Role::User => messages.push(wire::Message::text("user", text_of(&m.parts))),
            Role::Assistant => {
                let text = text_of(&m.parts);
                messages.push(wire::Message {
                    role: "assistant",
                    content: (!text.is_empty()).then_some(text),
                    tool_calls: m
                        .parts
                        .iter()
                        .filter_map(|p| match p {
                            Part::ToolCall(c) => Some(wire::OutCall {
                                id: &c.id,
                                kind: "function",
                                function: wire::OutFunction {
                                    name: &c.name,
                                    arguments: &c.arguments,
                                },
                            }),
                            _ => None,
                        })
                        .collect(),
                    tool_call_id: None,
                });
            }
            Role::Tool => {
                // One `tool` message per result.
                for p in &m.parts {
                    if let Part::ToolResult(t) = p {
                        messages.push(wire::Message {
                            role: "tool",
                            content: Some(t.content.as_str().into()),
                            tool_calls: Vec::new(),
                            tool_call_id: Some(&t.call_id),
                        });
                    }
                }
            }
        }
    }
    let body = wire::Body {
        model: &r.model,
        messages,
        max_tokens: r.max_tokens,
        tools: r
            .tools
            .iter()
            .map(|t| wire::OutTool {
                kind: "function",
                function: wire::OutToolFunction {
                    name: &t.name,
                    description: &t.description,
                    parameters: serde_json::from_str(&t.input_schema)
                        .unwrap_or_else(|_| wire::any_object()),
                },
            })
            .collect(),
        temperature: r.temperature,
        stream: r.stream,
        stream_options: r.stream.then_some(wire::StreamOptions {
            include_usage: true,
        }),
    };
    serde_json::to_vec(&body).expect("a request body serializes")
}

fn text_of(parts: &[Part]) -> Cow<'_, str> {
    let mut texts = parts.iter().filter_map(|p| match p {
        Part::Text(t) => Some(t.as_str()),
        _ => None,
    });
    match (texts.next(), texts.next()) {
        (None, _) => Cow::Borrowed(""),
        (Some(one), None) => Cow::Borrowed(one),
        (Some(first), Some(second)) => {
            let mut all = format!("{first}{second}");
            all.extend(texts);
            Cow::Owned(all)
        }
    }
}

fn stop_reason(finish: Option<&str>, has_calls: bool) -> StopReason {
    match finish {
        Some("tool_calls") | Some("function_call") => StopReason::ToolUse,
        Some("length") => StopReason::MaxTokens,
        Some("content_filter") => StopReason::Refusal,
        _ if has_calls => StopReason::ToolUse,
        _ => StopReason::EndTurn,
    }
}

fn usage_of(v: &Value) -> Usage {
    Usage {
        input_tokens: v["prompt_tokens"].as_u64().unwrap_or(0),
        output_tokens: v["completion_tokens"].as_u64().unwrap_or(0),
    }
}

fn parse_completion(v: &Value) -> Result<Completion, ModelError> {
    let choice = v["choices"]
        .get(0)
        .ok_or_else(|| error(Some(200), "the response has no `choices`", false))?;
    let msg = &choice["message"];
    let mut parts = Vec::new();
    if let Some(text) = msg["content"].as_str().filter(|t| !t.is_empty()) {
        parts.push(Part::Text(text.to_string()));
    }
    if let Some(calls) = msg["tool_calls"].as_array() {
        for c in calls {
            parts.push(Part::ToolCall(ToolCall {
                id: c["id"].as_str().unwrap_or_default().to_string(),
                name: c["function"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                arguments: match &c["function"]["arguments"] {
                    Value::String(s) => s.clone(),
                    Value::Null => "{}".into(),
                    other => other.to_string(),
                },
            }));
        }
    }
    let has_calls = parts.iter().any(|p| matches!(p, Part::ToolCall(_)));
    Ok(Completion {
        message: Message {
            role: Role::Assistant,
            parts,
        },
        stop_reason: stop_reason(choice["finish_reason"].as_str(), has_calls),
        usage: usage_of(&v["usage"]),
    })
}

/// A tool call being assembled from stream fragments.
#[derive(Default)]
struct PartialCall {
    id: String,
    name: String,
    arguments: String,
}

/// The answer so far, assembled from `chat.completion.chunk` events.
#[derive(Default)]
struct StreamState {
    text: String,
    calls: Vec<PartialCall>,
    finish: Option<String>,
    usage: Option<Usage>,
    done: bool,
}

impl StreamState {
    fn handle(&mut self, data: &str) -> Result<(), ModelError> {
        if data.trim() == "[DONE]" {
            self.done = true;
            return Ok(());
        }
        let chunk: wire::Chunk<'_> = serde_json::from_str(data).map_err(|e| {
            error(
                Some(200),
                &format!("a stream event is not JSON: {e}"),
                false,
            )
        })?;
        if let Some(err) = chunk.error {
            let message = err["message"]
                .as_str()
                .unwrap_or("the provider sent an error");
            return Err(error(None, message, true));
        }
        if let Some(usage) = chunk.usage.filter(Value::is_object) {
            self.usage = Some(usage_of(&usage));
        }
        let Some(choice) = chunk.choices.into_iter().next() else {
            return Ok(());
        };
        let delta = choice.delta.unwrap_or_default();
        if let Some(t) = delta.content.0.filter(|t| !t.is_empty()) {
            self.text.push_str(&t);
            model_stream::text_delta(&t);
        }
        for f in delta.tool_calls.unwrap_or_default() {
            let index = f.index.unwrap_or(self.calls.len() as u64) as usize;
            if index >= 128 {
                return Err(error(
                    Some(200),
                    "more than 128 tool calls in one answer",
                    false,
                ));
            }
            if self.calls.len() <= index {
                self.calls.resize_with(index + 1, PartialCall::default);
            }
            let call = &mut self.calls[index];
            if let Some(id) = f.id.0 {
                call.id = id.into_owned();
            }
            let function = f.function.unwrap_or_default();
            if let Some(name) = function.name.0 {
                call.name.push_str(&name);
            }
            if let Some(args) = function.arguments.0 {
                call.arguments.push_str(&args);
            }
        }
        if let Some(f) = choice.finish_reason.0 {
            self.finish = Some(f.into_owned());
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
    if !state.done && state.finish.is_none() {
        return Err(error(
            None,
            "the stream ended before the answer was complete",
            true,
        ));
    }
    let mut parts = Vec::new();
    if !state.text.is_empty() {
        parts.push(Part::Text(std::mem::take(&mut state.text)));
    }
    for c in std::mem::take(&mut state.calls) {
        parts.push(Part::ToolCall(ToolCall {
            id: c.id,
            name: c.name,
            arguments: if c.arguments.is_empty() {
                "{}".into()
            } else {
                c.arguments
            },
        }));
    }
    let has_calls = parts.iter().any(|p| matches!(p, Part::ToolCall(_)));
    Ok(Completion {
        message: Message {
            role: Role::Assistant,
            parts,
        },
        stop_reason: stop_reason(state.finish.as_deref(), has_calls),
        usage: state.usage.unwrap_or(Usage {
            input_tokens: 0,
            output_tokens: 0,
        }),
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
