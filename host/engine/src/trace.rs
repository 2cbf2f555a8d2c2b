//! Per-step trace records of a run: a projection of its events (one record per
//! model call and per tool call), so traces can never disagree with the log.

use crate::events::{ApprovalStatus, EventData, LoggedEvent};
use serde::Serialize;
use std::collections::HashMap;

/// One step of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TraceRecord {
    /// Run id.
    pub run_id: String,
    /// Agent name.
    pub agent: String,
    /// `model` or `tool`.
    pub step_type: &'static str,
    /// Model catalog name or tool name.
    pub name: String,
    /// Model (model steps).
    pub model: Option<String>,
    /// Tool (tool steps).
    pub tool: Option<String>,
    /// Plugin reference (tool steps).
    pub plugin: Option<String>,
    /// Whether the call needed approval (tool steps).
    pub approval_required: bool,
    /// The call's approval status (tool steps).
    pub approval_status: Option<ApprovalStatus>,
    /// The sandbox instance (tool steps that ran).
    pub sandbox_id: Option<String>,
    /// The call (tool steps).
    pub call_id: Option<String>,
    /// The `run_code` call whose program made the call (code mode): its
    /// record is this step's parent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_call_id: Option<String>,
    /// Prompt tokens (model steps).
    pub tokens_in: u64,
    /// Generated tokens (model steps).
    pub tokens_out: u64,
    /// Wall time of the step.
    pub latency_ms: u64,
    /// Cost in US dollars (model steps).
    pub cost_usd: f64,
    /// When the step ended, ms since the epoch.
    pub at_ms: i64,
    /// The event the record comes from.
    pub event_id: String,
}

/// The records of run `run_id` in `events`.
pub fn trace(agent: &str, run_id: &str, events: &[LoggedEvent]) -> Vec<TraceRecord> {
    let mut required: HashMap<&str, bool> = HashMap::new();
    let mut out = Vec::new();
    for e in events {
        match &e.data {
            EventData::ToolCall {
                run_id: r,
                call_id,
                approval_required,
                ..
            } if r == run_id => {
                required.insert(call_id, *approval_required);
            }
            EventData::ModelResponse {
                run_id: r,
                model,
                usage,
                cost_usd,
                latency_ms,
                ..
            } if r == run_id => out.push(TraceRecord {
                run_id: run_id.into(),
                agent: agent.into(),
                step_type: "model",
                name: model.clone(),
                model: Some(model.clone()),
                tool: None,
                plugin: None,
                approval_required: false,
                approval_status: None,
                sandbox_id: None,
                call_id: None,
                parent_call_id: None,
                tokens_in: usage.input_tokens,
                tokens_out: usage.output_tokens,
                latency_ms: *latency_ms,
                cost_usd: *cost_usd,
                at_ms: e.created_ms,
                event_id: e.id.clone(),
            }),
            EventData::ToolResult {
                run_id: r,
                call_id,
                tool,
                plugin,
                latency_ms,
                sandbox_id,
                approval,
                parent_call_id,
                ..
            } if r == run_id => out.push(TraceRecord {
                run_id: run_id.into(),
                agent: agent.into(),
                step_type: "tool",
                name: tool.clone(),
                model: None,
                tool: Some(tool.clone()),
                plugin: Some(plugin.clone()),
                approval_required: required.get(call_id.as_str()).copied().unwrap_or(false),
                approval_status: Some(*approval),
                sandbox_id: sandbox_id.clone(),
                call_id: Some(call_id.clone()),
                parent_call_id: parent_call_id.clone(),
                tokens_in: 0,
                tokens_out: 0,
                latency_ms: *latency_ms,
                cost_usd: 0.0,
                at_ms: e.created_ms,
                event_id: e.id.clone(),
            }),
            _ => {}
        }
    }
    out
}
