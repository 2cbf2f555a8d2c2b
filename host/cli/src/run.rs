//! `tack run`: start a session and follow its events, answering approvals and
//! questions at the prompt.

use crate::Globals;
use crate::api::{ApiArgs, Client};
use crate::report::{EXIT_UNUSABLE, EXIT_USAGE, Failure};
use clap::Args;
use futures_util::StreamExt;
use serde_json::{Value, json};
use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;
use tack_engine::{EventData, RunStop};
use tack_sdk_core::sse;

/// Exit code of `tack run` when the run ended without a final answer (a limit,
/// an error, an interrupt).
pub(crate) const EXIT_RUN_STOPPED: u8 = 7;

/// `tack run`.
#[derive(Args)]
pub(crate) struct RunArgs {
    /// A registered agent (`NAME` or `NAME@VERSION`), or an agent file to register first.
    agent: String,
    /// The first user message.
    input: String,
    #[command(flatten)]
    api: ApiArgs,
}

fn prompt(question: &str) -> Option<String> {
    eprint!("{question}");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).ok()?;
    Some(line.trim().to_string())
}

/// A streamed event: a logged one, or a piece of the model's text.
enum Streamed {
    Text(String),
    Logged(Box<EventData>),
}

/// One SSE event of the session's stream, typed; `None` for a type this
/// `tack` does not know (a newer host), which it skips.
fn streamed(e: &sse::Event) -> Option<Streamed> {
    if e.event == "text_delta" {
        let v: Value = serde_json::from_str(&e.data).ok()?;
        return Some(Streamed::Text(v["text"].as_str()?.to_string()));
    }
    serde_json::from_str(&e.data)
        .ok()
        .map(|e| Streamed::Logged(Box::new(e)))
}

/// Register the agent file at `agent` first when it is one; the agent to run.
async fn agent_ref(client: &Client, agent: &str) -> Result<String, Failure> {
    let path = std::path::Path::new(agent);
    if !path.is_file() {
        return Ok(agent.to_string());
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::new(EXIT_USAGE, format!("cannot read {}: {e}", path.display())))?;
    let rec = client
        .send(
            reqwest::Method::POST,
            "/v1/agents",
            Some(text.into()),
            false,
        )
        .await?;
    let name = rec["name"].as_str().unwrap_or_default();
    eprintln!("agent {name} v{}", rec["version"]);
    Ok(format!("{name}@{}", rec["version"]))
}

pub(crate) async fn run(a: RunArgs, g: &Globals) -> Result<ExitCode, Failure> {
    let client = Client::new(&a.api, g)?;
    let agent = agent_ref(&client, &a.agent).await?;
    let session = client
        .post("/v1/sessions", json!({"agent": agent, "input": a.input}))
        .await?;
    let id = session["id"].as_str().unwrap_or_default().to_string();
    eprintln!("session {id}");
    let resp = client
        .http
        .get(format!("{}/v1/sessions/{id}/stream", client.base))
        .bearer_auth(&client.token)
        .send()
        .await
        .map_err(|e| Failure::new(EXIT_UNUSABLE, format!("cannot open the event stream: {e}")))?;
    let mut stream = resp.bytes_stream();
    let mut parser = sse::Parser::new();
    let mut screen = Screen {
        client: &client,
        session: &id,
        interactive: std::io::stdin().is_terminal(),
        mid_line: false,
    };
    while let Some(chunk) = stream.next().await {
        let chunk = chunk
            .map_err(|e| Failure::new(EXIT_UNUSABLE, format!("the event stream broke: {e}")))?;
        for event in parser.feed(&chunk) {
            if let Some(stop) = screen.show(streamed(&event)).await? {
                return Ok(if stop == RunStop::EndTurn {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(EXIT_RUN_STOPPED)
                });
            }
        }
    }
    Err(Failure::new(
        EXIT_UNUSABLE,
        "the event stream ended before the run finished",
    ))
}

/// The terminal as `tack run` draws it: the model's text on stdout, the rest
/// on stderr, prompts when stdin is a terminal.
struct Screen<'a> {
    client: &'a Client,
    session: &'a str,
    interactive: bool,
    /// Streamed text left a line open.
    mid_line: bool,
}

impl Screen<'_> {
    fn end_line(&mut self) {
        if self.mid_line {
            println!();
            self.mid_line = false;
        }
    }

    /// Show one event; the run's stop reason once it finished.
    async fn show(&mut self, event: Option<Streamed>) -> Result<Option<RunStop>, Failure> {
        let e = match event {
            None => return Ok(None),
            Some(Streamed::Text(text)) => {
                print!("{text}");
                let _ = std::io::stdout().flush();
                self.mid_line = true;
                return Ok(None);
            }
            Some(Streamed::Logged(e)) => *e,
        };
        match e {
            EventData::ModelResponse { .. } => self.end_line(),
            EventData::ModelRetry {
                error, delay_ms, ..
            } => eprintln!("  (model: {error}; retrying in {delay_ms} ms)"),
            // A program's calls (code mode) are shown under its run_code.
            EventData::ToolCall {
                tool,
                arguments,
                parent_call_id,
                ..
            } => {
                self.end_line();
                let indent = if parent_call_id.is_some() {
                    "    "
                } else {
                    "  "
                };
                eprintln!("{indent}→ {tool} {arguments}");
            }
            EventData::ToolResult {
                tool,
                ok,
                content,
                latency_ms,
                parent_call_id,
                ..
            } => {
                let short: String = content.chars().take(160).collect();
                let indent = if parent_call_id.is_some() {
                    "    "
                } else {
                    "  "
                };
                if ok {
                    eprintln!("{indent}← {tool} ({latency_ms} ms) {short}");
                } else {
                    eprintln!("{indent}← {tool} failed: {short}");
                }
            }
            EventData::ApprovalRequired {
                approval_id,
                tool,
                arguments,
                reason,
                approvers,
                ..
            } => {
                self.end_line();
                eprintln!(
                    "approval needed for {tool} {arguments}: {reason} (roles: {})",
                    approvers.join(", ")
                );
                self.approve(&approval_id).await;
            }
            EventData::ApprovalDecided { decision, by, .. } => {
                let decision = serde_json::to_value(decision).unwrap_or_default();
                eprintln!("  {} by {by}", decision.as_str().unwrap_or_default());
            }
            EventData::AskUser {
                question_id,
                question,
                choices,
                ..
            } => {
                self.end_line();
                self.ask(&question_id, &question, &choices).await?;
            }
            EventData::Error {
                error_type,
                message,
                ..
            } => eprintln!("error ({error_type}): {message}"),
            EventData::RunFinished {
                stop_reason,
                steps,
                input_tokens,
                output_tokens,
                cost_usd,
                ..
            } => {
                self.end_line();
                let stop = serde_json::to_value(stop_reason).unwrap_or_default();
                eprintln!(
                    "finished: {} · {steps} steps · {input_tokens} tokens in, {output_tokens} out · ${cost_usd:.4}",
                    stop.as_str().unwrap_or_default()
                );
                // The answer went to stdout already, as it streamed.
                return Ok(Some(stop_reason));
            }
            _ => {}
        }
        Ok(None)
    }

    /// Offer to decide approval `id` here (interactive only).
    async fn approve(&self, id: &str) {
        let answer = if self.interactive {
            prompt("approve? [y]es / [n]o / [w]ait for an approver: ")
        } else {
            None
        };
        let decision = match answer.as_deref() {
            Some("y") | Some("yes") => Some(("approve", None)),
            Some("n") | Some("no") => Some(("deny", prompt("reason: "))),
            _ => None,
        };
        match decision {
            Some((d, reason)) => {
                if let Err(f) = self
                    .client
                    .post(
                        &format!("/v1/approvals/{id}"),
                        json!({"decision": d, "reason": reason}),
                    )
                    .await
                {
                    eprintln!("  {}; waiting for an approver", f.message);
                }
            }
            None => {
                eprintln!("  waiting: an approver runs `tack approvals approve {id}` (or deny)")
            }
        }
    }

    /// Put question `id` to the user and send the answer (interactive only).
    async fn ask(&self, id: &str, question: &str, choices: &[String]) -> Result<(), Failure> {
        let question = if choices.is_empty() {
            question.to_string()
        } else {
            format!("{question} [{}]", choices.join(" / "))
        };
        let session = self.session;
        if !self.interactive {
            eprintln!(
                "question: {question} (answer over the API: POST /v1/sessions/{session}/events)"
            );
            return Ok(());
        }
        if let Some(answer) = prompt(&format!("{question}\n> ")) {
            self.client
                .post(
                    &format!("/v1/sessions/{session}/events"),
                    json!({"type": "answer", "question_id": id, "answer": answer}),
                )
                .await?;
        }
        Ok(())
    }
}
