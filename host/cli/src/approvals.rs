//! `tack approvals ls | approve | deny`: pending approvals over the API.

use crate::Globals;
use crate::api::{ApiArgs, Client};
use crate::report::{EXIT_USAGE, Failure};
use clap::{Args, Subcommand};
use serde_json::json;
use std::process::ExitCode;

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
                let source = match a["session_id"].as_str() {
                    Some(s) => format!("session {s}"),
                    None => a["source"].as_str().unwrap_or("").to_string(),
                };
                println!(
                    "{}\t{source}\t{} {}\t{}",
                    a["approval_id"].as_str().unwrap_or(""),
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
    match v["seq"].as_u64() {
        Some(seq) => eprintln!("{decision} {} (session event {seq})", d.id),
        None => eprintln!(
            "{decision} {} ({})",
            d.id,
            v["source"].as_str().unwrap_or("a direct call")
        ),
    }
    Ok(ExitCode::SUCCESS)
}
