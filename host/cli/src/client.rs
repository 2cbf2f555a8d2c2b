//! The sessions API from the terminal: `tack run` (start a session and stream
//! it, answering approvals and questions at the prompt) and `tack approvals
//! ls | approve | deny`.

use crate::Globals;
use crate::report::{EXIT_UNUSABLE, EXIT_USAGE, Failure};
use clap::{Args, Subcommand};
use futures_util::StreamExt;
use serde_json::{Value, json};
use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

/// Exit code of `tack run` when the run ended without a final answer (a limit,
/// an error, an interrupt).
pub(crate) const EXIT_RUN_STOPPED: u8 = 7;

/// Where the API is and who calls it.
#[derive(Args, Clone)]
pub(crate) struct ApiArgs {
    /// The host's URL [default: http://<listen> from --config, else http://127.0.0.1:8080].
    #[arg(long, env = "TACK_URL", value_name = "URL")]
    url: Option<String>,
    /// API token (from `tack token create`).
    #[arg(long, env = "TACK_TOKEN", hide_env_values = true, value_name = "TOKEN")]
    token: Option<String>,
}

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

/// `tack approvals …`.
#[derive(Subcommand)]
pub(crate) enum ApprovalsCommand {
    /// List pending approvals.
    Ls(ApiArgs),
    /// Approve a pending call.
    Approve(DecideArgs),
    /// Deny a pending call; the reason goes to the model.
    Deny(DecideArgs),
}

#[derive(Args)]
pub(crate) struct DecideArgs {
    /// The approval id (`ap_…`).
    id: String,
    /// Why (required to deny).
    #[arg(long)]
    reason: Option<String>,
    #[command(flatten)]
    api: ApiArgs,
}

struct Client {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Client {
    fn new(api: &ApiArgs, g: &Globals) -> Result<Client, Failure> {
        tack_distribution::client::install_crypto();
        let base = match &api.url {
            Some(u) => u.trim_end_matches('/').to_string(),
            None => match &g.config {
                Some(p) => {
                    let c = tack_config::HostConfig::load(p)
                        .map_err(|e| Failure::new(EXIT_UNUSABLE, e.to_string()))?;
                    format!("http://{}", c.listen)
                }
                None => "http://127.0.0.1:8080".into(),
            },
        };
        let token = api.token.clone().ok_or_else(|| {
            Failure::new(EXIT_USAGE, "no API token")
                .help("pass --token or set TACK_TOKEN (create one with `tack token create NAME --role ROLE`)")
        })?;
        Ok(Client {
            base,
            token,
            http: reqwest::Client::new(),
        })
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<reqwest::Body>,
        json_body: bool,
    ) -> Result<Value, Failure> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            if json_body {
                req = req.header("content-type", "application/json");
            }
            req = req.body(b);
        }
        let resp = req.send().await.map_err(|e| {
            Failure::new(EXIT_UNUSABLE, format!("cannot reach {}: {e}", self.base))
                .help("is `tack serve` running? pass --url or set TACK_URL")
        })?;
        let status = resp.status();
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            let message = v["error"]["message"].as_str().unwrap_or("request failed");
            return Err(Failure::new(
                if status.as_u16() == 403 || status.as_u16() == 401 {
                    EXIT_USAGE
                } else {
                    EXIT_UNUSABLE
                },
                format!("{} ({status})", message),
            ));
        }
        Ok(v)
    }

    async fn post(&self, path: &str, body: Value) -> Result<Value, Failure> {
        self.send(
            reqwest::Method::POST,
            path,
            Some(body.to_string().into()),
            true,
        )
        .await
    }

    async fn get(&self, path: &str) -> Result<Value, Failure> {
        self.send(reqwest::Method::GET, path, None, false).await
    }
}

fn prompt(question: &str) -> Option<String> {
    eprint!("{question}");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).ok()?;
    Some(line.trim().to_string())
}

pub(crate) async fn run(a: RunArgs, g: &Globals) -> Result<ExitCode, Failure> {
    let client = Client::new(&a.api, g)?;
    let path = std::path::Path::new(&a.agent);
    let agent = if path.is_file() {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Failure::new(EXIT_USAGE, format!("cannot read {}: {e}", path.display()))
        })?;
        let rec = client
            .send(
                reqwest::Method::POST,
                "/v1/agents",
                Some(text.into()),
                false,
            )
            .await?;
        eprintln!(
            "agent {} v{}",
            rec["name"].as_str().unwrap_or("?"),
            rec["version"]
        );
        format!(
            "{}@{}",
            rec["name"].as_str().unwrap_or_default(),
            rec["version"]
        )
    } else {
        a.agent.clone()
    };
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
    let mut buf = String::new();
    let interactive = std::io::stdin().is_terminal();
    let mut mid_line = false;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk
            .map_err(|e| Failure::new(EXIT_UNUSABLE, format!("the event stream broke: {e}")))?;
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find("\n\n") {
            let frame: String = buf.drain(..end + 2).collect();
            let kind = frame
                .lines()
                .find_map(|l| l.strip_prefix("event: "))
                .unwrap_or("");
            let data = frame
                .lines()
                .find_map(|l| l.strip_prefix("data: "))
                .unwrap_or("");
            let Ok(e) = serde_json::from_str::<Value>(data) else {
                continue;
            };
            let end_line = |mid: &mut bool| {
                if *mid {
                    println!();
                    *mid = false;
                }
            };
            match kind {
                "text_delta" => {
                    print!("{}", e["text"].as_str().unwrap_or_default());
                    let _ = std::io::stdout().flush();
                    mid_line = true;
                }
                "model_response" => end_line(&mut mid_line),
                "model_retry" => eprintln!(
                    "  (model: {}; retrying in {} ms)",
                    e["error"].as_str().unwrap_or(""),
                    e["delay_ms"]
                ),
                "tool_call" => {
                    end_line(&mut mid_line);
                    eprintln!(
                        "  → {} {}",
                        e["tool"].as_str().unwrap_or(""),
                        e["arguments"]
                    );
                }
                "tool_result" => {
                    let content = e["content"].as_str().unwrap_or("");
                    let short: String = content.chars().take(160).collect();
                    if e["ok"] == true {
                        eprintln!(
                            "  ← {} ({} ms) {short}",
                            e["tool"].as_str().unwrap_or(""),
                            e["latency_ms"]
                        );
                    } else {
                        eprintln!("  ← {} failed: {short}", e["tool"].as_str().unwrap_or(""));
                    }
                }
                "approval_required" => {
                    end_line(&mut mid_line);
                    let ap = e["approval_id"].as_str().unwrap_or_default().to_string();
                    eprintln!(
                        "approval needed for {} {}: {} (roles: {})",
                        e["tool"].as_str().unwrap_or(""),
                        e["arguments"],
                        e["reason"].as_str().unwrap_or(""),
                        e["approvers"]
                    );
                    let answer = if interactive {
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
                            if let Err(f) = client
                                .post(
                                    &format!("/v1/approvals/{ap}"),
                                    json!({"decision": d, "reason": reason}),
                                )
                                .await
                            {
                                eprintln!("  {}; waiting for an approver", f.message);
                            }
                        }
                        None => eprintln!(
                            "  waiting: an approver runs `tack approvals approve {ap}` (or deny)"
                        ),
                    }
                }
                "approval_decided" => eprintln!(
                    "  {} by {}",
                    e["decision"].as_str().unwrap_or(""),
                    e["by"].as_str().unwrap_or("")
                ),
                "ask_user" => {
                    end_line(&mut mid_line);
                    let q = e["question_id"].as_str().unwrap_or_default().to_string();
                    let choices = e["choices"]
                        .as_array()
                        .map(|c| {
                            c.iter()
                                .filter_map(Value::as_str)
                                .collect::<Vec<_>>()
                                .join(" / ")
                        })
                        .unwrap_or_default();
                    let question = format!(
                        "{}{}",
                        e["question"].as_str().unwrap_or(""),
                        if choices.is_empty() {
                            String::new()
                        } else {
                            format!(" [{choices}]")
                        }
                    );
                    if interactive {
                        if let Some(answer) = prompt(&format!("{question}\n> ")) {
                            client
                                .post(
                                    &format!("/v1/sessions/{id}/events"),
                                    json!({"type": "answer", "question_id": q, "answer": answer}),
                                )
                                .await?;
                        }
                    } else {
                        eprintln!(
                            "question: {question} (answer over the API: POST /v1/sessions/{id}/events)"
                        );
                    }
                }
                "error" => eprintln!(
                    "error ({}): {}",
                    e["error_type"].as_str().unwrap_or(""),
                    e["message"].as_str().unwrap_or("")
                ),
                "run_finished" => {
                    end_line(&mut mid_line);
                    let stop = e["stop_reason"].as_str().unwrap_or("");
                    eprintln!(
                        "finished: {stop} · {} steps · {} tokens in, {} out · ${:.4}",
                        e["steps"],
                        e["input_tokens"],
                        e["output_tokens"],
                        e["cost_usd"].as_f64().unwrap_or(0.0)
                    );
                    if stop != "end_turn" {
                        return Ok(ExitCode::from(EXIT_RUN_STOPPED));
                    }
                    if let Some(out) = e["output"].as_str()
                        && !out.is_empty()
                        && !interactive
                    {
                        // Deltas went to stdout already when streamed; nothing more to print.
                    }
                    return Ok(ExitCode::SUCCESS);
                }
                _ => {}
            }
        }
    }
    Err(Failure::new(
        EXIT_UNUSABLE,
        "the event stream ended before the run finished",
    ))
}

pub(crate) async fn approvals(cmd: ApprovalsCommand, g: &Globals) -> Result<ExitCode, Failure> {
    match cmd {
        ApprovalsCommand::Ls(api) => {
            let client = Client::new(&api, g)?;
            let v = client.get("/v1/approvals").await?;
            let list = v["approvals"].as_array().cloned().unwrap_or_default();
            if list.is_empty() {
                eprintln!("no pending approvals");
            }
            for a in list {
                println!(
                    "{}\tsession {}\t{} {}\t{}",
                    a["approval_id"].as_str().unwrap_or(""),
                    a["session_id"].as_str().unwrap_or(""),
                    a["tool"].as_str().unwrap_or(""),
                    a["arguments"],
                    a["reason"].as_str().unwrap_or("")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        ApprovalsCommand::Approve(d) => decide(d, "approve", g).await,
        ApprovalsCommand::Deny(d) => {
            if d.reason.is_none() {
                return Err(Failure::new(
                    EXIT_USAGE,
                    "a denial needs --reason (the model reads it)",
                ));
            }
            decide(d, "deny", g).await
        }
    }
}

async fn decide(d: DecideArgs, decision: &str, g: &Globals) -> Result<ExitCode, Failure> {
    let client = Client::new(&d.api, g)?;
    let v = client
        .post(
            &format!("/v1/approvals/{}", d.id),
            json!({"decision": decision, "reason": d.reason}),
        )
        .await?;
    eprintln!("{} {} (session event {})", decision, d.id, v["seq"]);
    Ok(ExitCode::SUCCESS)
}
