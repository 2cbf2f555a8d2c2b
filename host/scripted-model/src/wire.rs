//! The two wire formats: reading a request's conversation, writing answers as JSON
//! or SSE, and error bodies.

use crate::{Dialect, Step};
use axum::body::Body;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Value, json};

/// What the server needs to know of a request's conversation.
pub(crate) struct Conversation {
    pub(crate) first_user: String,
    pub(crate) assistant_turns: usize,
    /// The request's size in tokens, estimated at four bytes a token (the
    /// usual rule of thumb for English and JSON): what the model reads.
    pub(crate) input_tokens: usize,
    /// The names of the tools offered.
    pub(crate) tools: Vec<String>,
}

fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

impl Conversation {
    pub(crate) fn read(_dialect: Dialect, req: &Value) -> Conversation {
        let messages = req
            .get("messages")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let role = |m: &Value| {
            m.get("role")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        let first_user = messages
            .iter()
            .find(|m| role(m) == "user")
            .map(|m| text_of(m.get("content").unwrap_or(&Value::Null)))
            .unwrap_or_default();
        let assistant_turns = messages.iter().filter(|m| role(m) == "assistant").count();
        let bytes: usize = ["system", "messages", "tools"]
            .iter()
            .filter_map(|k| req.get(*k))
            .map(|v| match v {
                Value::String(s) => s.len(),
                other => other.to_string().len(),
            })
            .sum();
        // OpenAI nests the name under `function`; Anthropic does not.
        let tools = req
            .get("tools")
            .and_then(Value::as_array)
            .map(|tools| {
                tools
                    .iter()
                    .filter_map(|t| {
                        t.pointer("/function/name")
                            .or_else(|| t.get("name"))
                            .and_then(Value::as_str)
                            .map(str::to_string)
                    })
                    .collect()
            })
            .unwrap_or_default();
        Conversation {
            first_user,
            assistant_turns,
            input_tokens: bytes.div_ceil(4),
            tools,
        }
    }
}

/// An answer to build.
pub(crate) struct Answer<'a> {
    pub(crate) dialect: Dialect,
    pub(crate) model: &'a str,
    pub(crate) step: &'a Step,
    pub(crate) step_index: usize,
    pub(crate) usage: (u64, u64),
}

fn args_text(v: &Value) -> String {
    if v.is_null() {
        "{}".into()
    } else {
        v.to_string()
    }
}

/// Split `s` into two pieces (arguments arrive in fragments in real streams).
fn halves(s: &str) -> [&str; 2] {
    let mut mid = s.len() / 2;
    while !s.is_char_boundary(mid) {
        mid += 1;
    }
    [&s[..mid], &s[mid..]]
}

/// Words of `text`, each with its following space, so they concatenate back.
fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for c in text.chars() {
        cur.push(c);
        if c == ' ' {
            out.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

impl Answer<'_> {
    fn call_id(&self, i: usize) -> String {
        match self.dialect {
            Dialect::OpenAi => format!("call_{}_{i}", self.step_index),
            Dialect::Anthropic => format!("toolu_{}_{i}", self.step_index),
        }
    }

    fn has_tools(&self) -> bool {
        !self.step.tool_calls.is_empty()
    }

    pub(crate) fn json(&self) -> Response {
        let (input, output) = self.usage;
        let body = match self.dialect {
            Dialect::OpenAi => {
                let tool_calls: Vec<Value> = self
                    .step
                    .tool_calls
                    .iter()
                    .enumerate()
                    .map(|(i, c)| {
                        json!({"id": self.call_id(i), "type": "function",
                               "function": {"name": c.name, "arguments": args_text(&c.arguments)}})
                    })
                    .collect();
                let mut message = json!({"role": "assistant", "content": self.step.text});
                if self.has_tools() {
                    message["tool_calls"] = json!(tool_calls);
                }
                json!({
                    "id": format!("chatcmpl-scripted-{}", self.step_index),
                    "object": "chat.completion",
                    "created": 0,
                    "model": self.model,
                    "choices": [{"index": 0, "message": message,
                                 "finish_reason": if self.has_tools() { "tool_calls" } else { "stop" }}],
                    "usage": {"prompt_tokens": input, "completion_tokens": output, "total_tokens": input.saturating_add(output)},
                })
            }
            Dialect::Anthropic => {
                let mut content = Vec::new();
                if let Some(t) = &self.step.text {
                    content.push(json!({"type": "text", "text": t}));
                }
                for (i, c) in self.step.tool_calls.iter().enumerate() {
                    let input = if c.arguments.is_null() {
                        json!({})
                    } else {
                        c.arguments.clone()
                    };
                    content.push(json!({"type": "tool_use", "id": self.call_id(i), "name": c.name, "input": input}));
                }
                json!({
                    "id": format!("msg_scripted_{}", self.step_index),
                    "type": "message",
                    "role": "assistant",
                    "model": self.model,
                    "content": content,
                    "stop_reason": if self.has_tools() { "tool_use" } else { "end_turn" },
                    "stop_sequence": null,
                    "usage": {"input_tokens": input, "output_tokens": output},
                })
            }
        };
        (StatusCode::OK, axum::Json(body)).into_response()
    }

    pub(crate) fn stream(&self, include_usage: bool) -> Response {
        let frames = match self.dialect {
            Dialect::OpenAi => self.openai_frames(include_usage),
            Dialect::Anthropic => self.anthropic_frames(),
        };
        let stream = futures_util::stream::iter(
            frames
                .into_iter()
                .map(|f| Ok::<Bytes, std::convert::Infallible>(Bytes::from(f))),
        );
        Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, "text/event-stream")
            .header(header::CACHE_CONTROL, "no-cache")
            .body(Body::from_stream(stream))
            .expect("a valid response")
    }

    fn openai_frames(&self, include_usage: bool) -> Vec<String> {
        let id = format!("chatcmpl-scripted-{}", self.step_index);
        let chunk = |delta: Value, finish: Value| {
            let c = json!({"id": id, "object": "chat.completion.chunk", "created": 0, "model": self.model,
                           "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
            format!("data: {c}\n\n")
        };
        let mut frames = vec![chunk(
            json!({"role": "assistant", "content": ""}),
            Value::Null,
        )];
        if let Some(t) = &self.step.text {
            for w in words(t) {
                frames.push(chunk(json!({"content": w}), Value::Null));
            }
        }
        for (i, c) in self.step.tool_calls.iter().enumerate() {
            frames.push(chunk(
                json!({"tool_calls": [{"index": i, "id": self.call_id(i), "type": "function",
                                       "function": {"name": c.name, "arguments": ""}}]}),
                Value::Null,
            ));
            for part in halves(&args_text(&c.arguments)) {
                frames.push(chunk(
                    json!({"tool_calls": [{"index": i, "function": {"arguments": part}}]}),
                    Value::Null,
                ));
            }
        }
        let finish = if self.has_tools() {
            "tool_calls"
        } else {
            "stop"
        };
        frames.push(chunk(json!({}), json!(finish)));
        if include_usage {
            let (input, output) = self.usage;
            let c = json!({"id": id, "object": "chat.completion.chunk", "created": 0, "model": self.model,
                           "choices": [],
                           "usage": {"prompt_tokens": input, "completion_tokens": output, "total_tokens": input.saturating_add(output)}});
            frames.push(format!("data: {c}\n\n"));
        }
        frames.push("data: [DONE]\n\n".into());
        frames
    }

    fn anthropic_frames(&self) -> Vec<String> {
        let (input, output) = self.usage;
        let event = |name: &str, data: Value| format!("event: {name}\ndata: {data}\n\n");
        let mut frames = vec![event(
            "message_start",
            json!({"type": "message_start", "message": {
                "id": format!("msg_scripted_{}", self.step_index), "type": "message", "role": "assistant",
                "model": self.model, "content": [], "stop_reason": null, "stop_sequence": null,
                "usage": {"input_tokens": input, "output_tokens": 1}}}),
        )];
        let mut index = 0;
        if let Some(t) = &self.step.text {
            frames.push(event(
                "content_block_start",
                json!({"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}}),
            ));
            for w in words(t) {
                frames.push(event(
                    "content_block_delta",
                    json!({"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": w}}),
                ));
            }
            frames.push(event(
                "content_block_stop",
                json!({"type": "content_block_stop", "index": index}),
            ));
            index += 1;
        }
        for (i, c) in self.step.tool_calls.iter().enumerate() {
            frames.push(event(
                "content_block_start",
                json!({"type": "content_block_start", "index": index,
                       "content_block": {"type": "tool_use", "id": self.call_id(i), "name": c.name, "input": {}}}),
            ));
            for part in halves(&args_text(&c.arguments)) {
                frames.push(event(
                    "content_block_delta",
                    json!({"type": "content_block_delta", "index": index,
                           "delta": {"type": "input_json_delta", "partial_json": part}}),
                ));
            }
            frames.push(event(
                "content_block_stop",
                json!({"type": "content_block_stop", "index": index}),
            ));
            index += 1;
        }
        let stop = if self.has_tools() {
            "tool_use"
        } else {
            "end_turn"
        };
        frames.push(event(
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": null},
                   "usage": {"output_tokens": output}}),
        ));
        frames.push(event("message_stop", json!({"type": "message_stop"})));
        frames
    }
}

/// An error answer in the dialect's shape.
pub(crate) fn error_body(dialect: Dialect, status: u16, message: &str) -> Response {
    let kind = match status {
        429 => "rate_limit_error",
        400..=499 => "invalid_request_error",
        _ => match dialect {
            Dialect::OpenAi => "server_error",
            Dialect::Anthropic => "api_error",
        },
    };
    let body = match dialect {
        Dialect::OpenAi => json!({"error": {"message": message, "type": kind, "code": null}}),
        Dialect::Anthropic => json!({"type": "error", "error": {"type": kind, "message": message}}),
    };
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, axum::Json(body)).into_response()
}
