//! The loop: model → gate → tools (in parallel) → model, until a final answer
//! or a limit, with every step written to the session's log first.
//!
//! [`drive`] asks the session state what is next ([`SessionState::next`]), does
//! it, and appends the events that record it; it returns when the run waits for
//! people or the session is idle. The same code continues a run after a restart:
//! the state is rebuilt from the log, so the runner cannot tell the difference.

use crate::approval::{Outcome, gate};
use crate::builtin;
use crate::components::{Backend, ResolvedAgent, ToolEntry, ToolSet};
use crate::engine::{Delta, Engine, RetryPolicy, SessionHandle, now_ms};
use crate::error::EngineError;
use crate::events::{ApprovalStatus, EventData, RunStop, Status};
use crate::log::{Entry, Pending};
use crate::redact::{redact, redact_text};
use crate::remote::{Asker, RemoteError, RemoteTool};
use crate::state::{ApprovalState, CallState, Next, RunState, SessionState};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tack_agent::Limits;
use tack_runtime::{
    AdapterSession, CallContext, CallError, Completion, CompletionRequest, Content, DeltaSink,
    Message, Part, Sandbox,
};
use tack_store::Claim;

/// Longest single model call.
const MODEL_CALL_TIMEOUT: Duration = Duration::from_secs(300);
/// Tokens asked for per model call when the agent sets no token limit.
const DEFAULT_MAX_TOKENS: u32 = 4096;
/// More tokens than any model reads or writes in one call: a provider reporting
/// more is wrong (or hostile), and its count is not added to the run's totals.
const MAX_PLAUSIBLE_TOKENS: u64 = 1 << 32;

/// Why the token counts a provider reported for one call cannot be true, if so.
fn implausible_usage(usage: &tack_runtime::Usage) -> Option<String> {
    (usage.input_tokens > MAX_PLAUSIBLE_TOKENS || usage.output_tokens > MAX_PLAUSIBLE_TOKENS).then(
        || {
            format!(
                "the model reported implausible token usage ({} in, {} out; at most {} each \
                 is believed)",
                usage.input_tokens, usage.output_tokens, MAX_PLAUSIBLE_TOKENS
            )
        },
    )
}

/// After the runner panicked: rebuild the state from the log (the panic may
/// have left it half-changed), log the failure and end an open run with
/// `stop_reason: error`, so the session is not left `running` with no runner.
pub(crate) async fn recover(engine: &Engine, h: &SessionHandle, what: &str) {
    let error = {
        let mut log = h.log.lock().await;
        log.reload().await;
        EventData::Error {
            run_id: log.run.as_ref().map(|r| r.run_id.clone()),
            error_type: "host".into(),
            message: format!("the host hit a bug and ended the run: {what}"),
        }
    };
    if let Err(e) = fail_run(engine, h, error).await {
        tracing::error!(session = %h.id, "cannot end the run after a panic: {e}");
    }
}

/// Log `error` and end the session's run with `stop_reason: error`. With no run
/// open but a message queued, that message's run is started and ended so: the
/// failure answers it, instead of the runner trying it again forever.
async fn fail_run(engine: &Engine, h: &SessionHandle, error: EventData) -> Result<(), EngineError> {
    {
        let mut log = h.log.lock().await;
        log.append_one(error).await?;
        if log.run.is_none() && log.next() == Next::StartRun {
            let model = engine
                .store()
                .agent(&h.agent, Some(h.agent_version))
                .await?
                .and_then(|a| a.spec["model"].as_str().map(str::to_string))
                .unwrap_or_default();
            log.append_one(EventData::RunStarted {
                run_id: ulid::Ulid::generate().to_string(),
                agent: h.agent.clone(),
                agent_version: h.agent_version,
                model,
            })
            .await?;
        }
    }
    finish(h, RunStop::Error, None).await
}

/// Whether the session has something for a runner to do now.
pub(crate) fn has_work(state: &SessionState) -> bool {
    !matches!(state.next(), Next::Idle | Next::Wait(_))
}

/// Run the session until it waits or is idle.
pub(crate) async fn drive(engine: &Engine, h: &Arc<SessionHandle>) -> Result<(), EngineError> {
    let agent = match engine.agent(&h.agent, h.agent_version).await {
        Ok(a) => a,
        Err(e) => {
            // The agent cannot run on this host (a component vanished, a secret
            // is missing): end the run with the reason instead of retrying forever.
            let error = EventData::Error {
                run_id: None,
                error_type: "resolve".into(),
                message: e.to_string(),
            };
            return fail_run(engine, h, error).await;
        }
    };
    // One adapter instance serves this stretch's model calls (see `AdapterSession`).
    let mut adapter = agent.adapter.session();
    loop {
        let next = h.log.lock().await.next();
        match next {
            Next::Idle => {
                set_status(h, Status::Idle).await?;
                return Ok(());
            }
            Next::Wait(status) => {
                set_status(h, status).await?;
                return Ok(());
            }
            Next::StartRun => {
                let mut log = h.log.lock().await;
                let run_id = ulid::Ulid::generate().to_string();
                let mut entry = Entry::one(EventData::RunStarted {
                    run_id: run_id.clone(),
                    agent: agent.spec.name.clone(),
                    agent_version: agent.version,
                    model: agent.spec.model.clone(),
                });
                if !agent.unverified.is_empty() {
                    entry = entry.and(EventData::Warning {
                        run_id,
                        message: format!(
                            "this run uses code no trusted key signed: {} (the host's trust \
                             policy does not require signatures for it)",
                            agent.unverified.join(", ")
                        ),
                    });
                }
                if log.status != Some(Status::Running) {
                    entry = entry.and(EventData::StatusChanged {
                        status: Status::Running,
                    });
                }
                // Written with the model call's `model_request` (or `run_finished`).
                log.carry(entry).await?;
            }
            Next::Finish(stop, output) => finish(h, stop, output).await?,
            Next::ModelCall => {
                set_status(h, Status::Running).await?;
                model_step(engine, h, &agent, &mut adapter).await?;
            }
            Next::Gate(calls) => gate_calls(h, &agent, &calls).await?,
            Next::Execute(calls) => {
                set_status(h, Status::Running).await?;
                execute(engine, h, &agent, &calls).await?;
            }
        }
    }
}

pub(crate) async fn set_status(h: &SessionHandle, status: Status) -> Result<(), EngineError> {
    let mut log = h.log.lock().await;
    if log.status != Some(status) {
        log.append_one(EventData::StatusChanged { status }).await?;
    }
    Ok(())
}

async fn finish(
    h: &SessionHandle,
    stop: RunStop,
    output: Option<String>,
) -> Result<(), EngineError> {
    let mut log = h.log.lock().await;
    let Some(run) = &log.run else {
        return Ok(());
    };
    let mut entry = Entry::one(EventData::RunFinished {
        run_id: run.run_id.clone(),
        stop_reason: stop,
        output,
        steps: run.steps,
        input_tokens: run.input_tokens,
        output_tokens: run.output_tokens,
        cost_usd: run.cost_usd,
    });
    // With nothing queued the session goes idle next: say so in the same write.
    if log.queued.is_empty() && log.status != Some(Status::Idle) {
        entry = entry.and(EventData::StatusChanged {
            status: Status::Idle,
        });
    }
    log.append(entry).await?;
    Ok(())
}

/// The tools callable now, built-ins included.
fn current_tools(agent: &ResolvedAgent, state: &SessionState) -> Arc<ToolSet> {
    agent.tool_set(&state.loaded_skills)
}

/// What a run's next model call is made of.
struct Prepared {
    request: CompletionRequest,
    run_id: String,
    /// The step this call answers (from 1).
    step: u32,
    /// The call's time limit: the run's time left, at most [`MODEL_CALL_TIMEOUT`].
    deadline: Duration,
    tools: Arc<ToolSet>,
}

/// The limit a run has reached before its next model call, if any (checked in
/// this order: steps, cost, tokens, wall time).
fn limit_reached(limits: &Limits, run: &RunState, now_ms: i64) -> Option<RunStop> {
    if limits.max_steps.is_some_and(|m| run.steps >= m) {
        Some(RunStop::MaxSteps)
    } else if limits.max_cost_usd.is_some_and(|m| run.cost_usd >= m) {
        Some(RunStop::BudgetReached)
    } else if limits
        .max_tokens
        .is_some_and(|m| run.input_tokens.saturating_add(run.output_tokens) >= m)
    {
        Some(RunStop::TokenLimit)
    } else if limits
        .timeout()
        .is_some_and(|t| now_ms - run.started_ms >= t.as_millis() as i64)
    {
        Some(RunStop::Timeout)
    } else {
        None
    }
}

/// How long to wait before attempt `attempt + 1`: the base delay doubled per
/// attempt, or the provider's `retry-after` if longer, at most `max_delay`.
fn backoff(retry: &RetryPolicy, attempt: u32, retry_after_ms: Option<u64>) -> Duration {
    let doubled = retry.base_delay * 2u32.saturating_pow(attempt.saturating_sub(1));
    doubled
        .max(Duration::from_millis(retry_after_ms.unwrap_or(0)))
        .min(retry.max_delay)
}

/// The next model call of `run`: the conversation so far, the tools callable
/// now, and as many tokens as the run may still spend (at most
/// [`DEFAULT_MAX_TOKENS`]).
fn prepare(agent: &ResolvedAgent, state: &SessionState, run: &RunState, now_ms: i64) -> Prepared {
    let limits = &agent.spec.limits;
    let tools = current_tools(agent, state);
    let remaining_tokens = limits
        .max_tokens
        .map(|m| m.saturating_sub(run.input_tokens.saturating_add(run.output_tokens)));
    let max_tokens = remaining_tokens
        .map(|r| r.min(u64::from(DEFAULT_MAX_TOKENS)) as u32)
        .unwrap_or(DEFAULT_MAX_TOKENS)
        .max(1);
    let deadline = limits
        .timeout()
        .map(|t| {
            let left = t.as_millis() as i64 - (now_ms - run.started_ms);
            Duration::from_millis(left.max(1) as u64)
        })
        .unwrap_or(MODEL_CALL_TIMEOUT)
        .min(MODEL_CALL_TIMEOUT);
    let request = CompletionRequest {
        endpoint: agent.model.endpoint.clone(),
        model: agent
            .model
            .model
            .clone()
            .unwrap_or_else(|| agent.spec.model.clone()),
        system: Some(agent.system_prompt().to_string()),
        messages: state.messages.clone(),
        tools: tools.model.clone(),
        max_tokens,
        temperature: None,
        stream: true,
    };
    Prepared {
        request,
        run_id: run.run_id.clone(),
        step: run.steps + 1,
        deadline,
        tools,
    }
}

/// One model step: limits, `model_request`, the call (with retries), then the
/// response and its calls' gate events.
async fn model_step(
    engine: &Engine,
    h: &Arc<SessionHandle>,
    agent: &ResolvedAgent,
    adapter: &mut AdapterSession,
) -> Result<(), EngineError> {
    let call = {
        let log = h.log.lock().await;
        let Some(run) = &log.run else {
            return Ok(());
        };
        let now = now_ms();
        if let Some(stop) = limit_reached(&agent.spec.limits, run, now) {
            drop(log);
            return finish(h, stop, None).await;
        }
        prepare(agent, &log, run, now)
    };
    let request_seq = h
        .log
        .lock()
        .await
        .append_one(EventData::ModelRequest {
            run_id: call.run_id.clone(),
            step: call.step,
            model: agent.spec.model.clone(),
            messages: call.request.messages.len(),
            tools: call.request.tools.len(),
        })
        .await?
        .seq;
    let started = Instant::now();
    let Some(completion) = complete(engine, h, agent, adapter, &call, request_seq).await? else {
        return Ok(());
    };
    let latency_ms = started.elapsed().as_millis() as u64;
    log_response(h, agent, &call, completion, latency_ms).await
}

/// Streamed text goes to live subscribers, after the event whose seq `after`
/// holds (see [`Delta::after`]).
fn delta_sink(h: &SessionHandle, run_id: &str, after: Arc<AtomicU64>) -> DeltaSink {
    let deltas = h.deltas.clone();
    let run_id = run_id.to_string();
    Arc::new(move |text: &str| {
        let _ = deltas.send(Delta {
            run_id: run_id.clone(),
            text: text.to_string(),
            after: after.load(Ordering::Relaxed),
        });
    })
}

/// Ask the model, retrying what may succeed again (each retry logged as
/// `model_retry`). `None` when the run ended instead (interrupted, out of
/// time, or the model failed for good: the run is finished and logged so).
async fn complete(
    engine: &Engine,
    h: &SessionHandle,
    agent: &ResolvedAgent,
    adapter: &mut AdapterSession,
    call: &Prepared,
    request_seq: u64,
) -> Result<Option<Completion>, EngineError> {
    let retry = engine.inner.retry;
    // The seq of the event the model's text follows.
    let after = Arc::new(AtomicU64::new(request_seq));
    let sink = delta_sink(h, &call.run_id, after.clone());
    let run_deadline = agent
        .spec
        .limits
        .timeout()
        .map(|_| Instant::now() + call.deadline);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let outcome = tokio::select! {
            out = adapter.complete(&call.request, call.deadline, Some(sink.clone())) => out,
            _ = h.cancel.notified() => return cancelled(h).await,
        };
        if let Ok(o) = &outcome {
            for l in &o.logs {
                tracing::debug!(target: "tack::adapter", session = %h.id, "{:?}: {}", l.level, l.message);
            }
        }
        let (retryable, status, message, retry_after) = match outcome {
            Ok(o) => match o.result {
                Ok(c) => match implausible_usage(&c.usage) {
                    None => return Ok(Some(c)),
                    Some(why) => (false, None, why, None),
                },
                Err(e) => (e.retryable, e.status, e.message, e.retry_after_ms),
            },
            // A trap or a limit may quote the guest, which may quote the
            // upstream: scrubbed like the adapter's own errors.
            Err(e @ CallError::Timeout { .. }) => (
                true,
                None,
                adapter.scrubber().scrub(&e.to_string()).into_owned(),
                None,
            ),
            Err(e) => {
                let message = format!("the model adapter failed: {e}");
                (
                    false,
                    None,
                    adapter.scrubber().scrub(&message).into_owned(),
                    None,
                )
            }
        };
        let (error_type, message, stop) = if run_deadline.is_some_and(|d| Instant::now() >= d) {
            let message = format!("the run's time limit passed during a model call: {message}");
            ("timeout", message, RunStop::Timeout)
        } else if !retryable || attempt >= retry.attempts {
            let message = if attempt > 1 {
                format!("{message} (after {attempt} attempts)")
            } else {
                message
            };
            ("model", message, RunStop::Error)
        } else {
            let delay = backoff(&retry, attempt, retry_after);
            let retry_seq = h
                .log
                .lock()
                .await
                .append_one(EventData::ModelRetry {
                    run_id: call.run_id.clone(),
                    step: call.step,
                    attempt,
                    status,
                    error: message,
                    delay_ms: delay.as_millis() as u64,
                })
                .await?
                .seq;
            // The next attempt's text follows this event.
            after.store(retry_seq, Ordering::Relaxed);
            tokio::select! {
                _ = tokio::time::sleep(delay) => continue,
                _ = h.cancel.notified() => return cancelled(h).await,
            }
        };
        h.log
            .lock()
            .await
            .append_one(EventData::Error {
                run_id: Some(call.run_id.clone()),
                error_type: error_type.into(),
                message,
            })
            .await?;
        finish(h, stop, None).await?;
        return Ok(None);
    }
}

/// End the run as cancelled (an interrupt arrived during a model call).
async fn cancelled(h: &SessionHandle) -> Result<Option<Completion>, EngineError> {
    finish(h, RunStop::Cancelled, None).await?;
    Ok(None)
}

/// `message` with the arguments of each call that `gated` redacts replaced.
fn redacted_message(message: &Message, gated: &[GateResult]) -> Message {
    Message {
        role: message.role,
        parts: message
            .parts
            .iter()
            .map(|p| match p {
                Part::ToolCall(c) => {
                    let pointers = gated
                        .iter()
                        .find(|g| g.call_id == c.id)
                        .map(|g| g.redacted.clone())
                        .unwrap_or_default();
                    let mut c = c.clone();
                    if !pointers.is_empty() {
                        c.arguments = redact_text(&c.arguments, &pointers).to_string();
                    }
                    Part::ToolCall(c)
                }
                other => other.clone(),
            })
            .collect(),
    }
}

/// Gate every call of the model's answer, then log the answer and the gate
/// events together. Gating comes first so that arguments a policy hides are
/// redacted in the `model_response` event too. A final answer is carried into
/// `run_finished`'s write.
async fn log_response(
    h: &SessionHandle,
    agent: &ResolvedAgent,
    call: &Prepared,
    completion: Completion,
    latency_ms: u64,
) -> Result<(), EngineError> {
    let ctx = call_context(h, &call.run_id).await;
    let mut gated = Vec::new();
    for c in completion.message.tool_calls() {
        let entries = &call.tools.entries;
        gated.push(gate_one(h, agent, entries, &c.name, &c.arguments, &ctx, &c.id).await);
    }
    let shown = redacted_message(&completion.message, &gated);
    let cost_usd = agent.model.cost_usd(
        completion.usage.input_tokens,
        completion.usage.output_tokens,
    );
    let response = |message: Message| EventData::ModelResponse {
        run_id: call.run_id.clone(),
        step: call.step,
        model: agent.spec.model.clone(),
        message,
        stop_reason: completion.stop_reason,
        usage: completion.usage,
        cost_usd,
        latency_ms,
    };
    let private = (shown != completion.message).then(|| response(completion.message.clone()));
    let mut entry = Entry::default().and_private(response(shown), private);
    for g in gated {
        entry = entry.and_all(gate_events(&call.run_id, g, true));
    }
    h.log.lock().await.carry(entry).await
}

/// A call's gate result, ready to be logged.
pub(crate) struct GateResult {
    pub(crate) call_id: String,
    pub(crate) tool: String,
    pub(crate) plugin: String,
    pub(crate) arguments: String,
    pub(crate) destructive: bool,
    pub(crate) outcome: Outcome,
    pub(crate) redacted: Vec<String>,
    /// The `run_code` call whose program made the call.
    pub(crate) parent: Option<String>,
}

#[allow(clippy::too_many_arguments)]
pub(crate) async fn gate_one(
    h: &SessionHandle,
    agent: &ResolvedAgent,
    tools: &[ToolEntry],
    name: &str,
    arguments: &str,
    ctx: &CallContext,
    call_id: &str,
) -> GateResult {
    let Some(entry) = tools.iter().find(|t| t.name == name) else {
        return GateResult {
            call_id: call_id.to_string(),
            tool: name.to_string(),
            plugin: String::new(),
            arguments: arguments.to_string(),
            destructive: false,
            outcome: Outcome::Deny(format!(
                "there is no tool `{name}`; the tools are: {}",
                tools
                    .iter()
                    .map(|t| t.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            redacted: Vec::new(),
            parent: None,
        };
    };
    let granted = h
        .log
        .lock()
        .await
        .granted(&entry.plugin, &entry.name, h.clock.now_ms());
    let mut ctx = ctx.clone();
    ctx.call_id = call_id.to_string();
    let g = gate(agent.policy.as_ref(), entry, arguments, &ctx, granted).await;
    GateResult {
        call_id: call_id.to_string(),
        tool: entry.name.clone(),
        plugin: entry.plugin.clone(),
        arguments: arguments.to_string(),
        destructive: entry.destructive,
        outcome: g.outcome,
        redacted: g.redacted,
        parent: None,
    }
}

/// The events that log a gate result: `tool_call` (when `with_call`), then
/// `approval_required` if the call waits for an approver; each with its
/// unredacted copy where the arguments are redacted.
pub(crate) fn gate_events(run_id: &str, g: GateResult, with_call: bool) -> Vec<Pending> {
    let args: Value =
        serde_json::from_str(&g.arguments).unwrap_or(Value::String(g.arguments.clone()));
    let shown = redact(&args, &g.redacted);
    let mut events = Vec::new();
    if with_call {
        let (approval, refused) = match &g.outcome {
            Outcome::Allow(s) => (*s, None),
            Outcome::Deny(r) => (ApprovalStatus::RefusedByPolicy, Some(r.clone())),
            Outcome::Require(_) => (ApprovalStatus::Required, None),
        };
        let event = |arguments: Value| EventData::ToolCall {
            run_id: run_id.to_string(),
            call_id: g.call_id.clone(),
            tool: g.tool.clone(),
            plugin: g.plugin.clone(),
            arguments,
            destructive: g.destructive,
            approval_required: matches!(g.outcome, Outcome::Require(_)),
            approval,
            refused: refused.clone(),
            redacted: g.redacted.clone(),
            parent_call_id: g.parent.clone(),
        };
        let private = (shown != args).then(|| event(args.clone()));
        events.push(Pending {
            public: event(shown.clone()),
            private,
        });
    }
    if let Outcome::Require(r) = g.outcome {
        // The approver sees the redacted arguments; the host keeps nothing more
        // here (the call's full arguments are in the tool_call's private copy).
        events.push(Pending {
            public: EventData::ApprovalRequired {
                run_id: run_id.to_string(),
                approval_id: format!("ap_{}", ulid::Ulid::generate()),
                call_id: g.call_id.clone(),
                tool: g.tool.clone(),
                plugin: g.plugin.clone(),
                arguments: shown,
                redacted: g.redacted.clone(),
                reason: r.reason.clone(),
                approvers: r.approvers.clone(),
                scope: r.scope,
                grant_ttl_s: r.grant_ttl_s,
                policy: r.policy.clone(),
                policy_version: r.policy_version.clone(),
                parent_call_id: g.parent.clone(),
            },
            private: None,
        });
    }
    events
}

/// Gate calls a restarted host found without their gate events.
async fn gate_calls(
    h: &Arc<SessionHandle>,
    agent: &ResolvedAgent,
    indexes: &[usize],
) -> Result<(), EngineError> {
    let (calls, run_id, tools): (Vec<CallState>, String, Arc<ToolSet>) = {
        let log = h.log.lock().await;
        let Some(run) = &log.run else {
            return Ok(());
        };
        (
            indexes.iter().map(|&i| run.calls[i].clone()).collect(),
            run.run_id.clone(),
            current_tools(agent, &log),
        )
    };
    let ctx = call_context(h, &run_id).await;
    let mut events = Vec::new();
    for c in calls {
        let g = gate_one(
            h,
            agent,
            &tools.entries,
            &c.tool,
            &c.arguments,
            &ctx,
            &c.call_id,
        )
        .await;
        let with_call = c.approval == ApprovalState::Ungated;
        let g = if with_call {
            g
        } else {
            // tool_call was logged as `required`: write the approval it announced.
            match g.outcome {
                Outcome::Require(_) => g,
                _ => GateResult {
                    outcome: Outcome::Require(crate::approval::Requirement {
                        approvers: vec!["approver".into()],
                        scope: crate::events::Scope::Call,
                        grant_ttl_s: None,
                        reason: format!(
                            "`{}` was held for approval before the host restarted",
                            c.tool
                        ),
                        policy: "central".into(),
                        policy_version: "central".into(),
                    }),
                    ..g
                },
            }
        };
        events.extend(gate_events(&run_id, g, with_call));
    }
    h.log
        .lock()
        .await
        .append(Entry::default().and_all(events))
        .await?;
    Ok(())
}

pub(crate) async fn call_context(h: &SessionHandle, run_id: &str) -> CallContext {
    CallContext {
        call_id: String::new(),
        run_id: Some(run_id.to_string()),
        session_id: Some(h.id.clone()),
        principal: h.owner.clone(),
    }
}

/// Run (or refuse) calls, in parallel; each logs its own result as it ends.
async fn execute(
    engine: &Engine,
    h: &Arc<SessionHandle>,
    agent: &Arc<ResolvedAgent>,
    indexes: &[usize],
) -> Result<(), EngineError> {
    let (calls, run_id, tools) = {
        let log = h.log.lock().await;
        let Some(run) = &log.run else {
            return Ok(());
        };
        (
            indexes
                .iter()
                .map(|&i| run.calls[i].clone())
                .collect::<Vec<_>>(),
            run.run_id.clone(),
            current_tools(agent, &log),
        )
    };
    let futures = calls.into_iter().map(|c| {
        let tools = &tools;
        let run_id = &run_id;
        async move { execute_one(engine, h, agent, tools, run_id, c).await }
    });
    for r in futures_util::future::join_all(futures).await {
        r?;
    }
    Ok(())
}

/// The content of a tool result as the model reads it.
pub(crate) fn content_text(content: &[Content]) -> String {
    content
        .iter()
        .map(|c| match c {
            Content::Text(t) => t.clone(),
            Content::Json(v) => v.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A finished call as the idempotency record and the `tool_result` event hold it.
pub(crate) struct Finished {
    pub(crate) ok: bool,
    pub(crate) content: String,
    /// The tool's content parts, when it returned some (redaction works on
    /// them: `content` is their text as the model reads it).
    pub(crate) parts: Option<Vec<Content>>,
    pub(crate) error_code: Option<String>,
    pub(crate) latency_ms: u64,
    pub(crate) sandbox_id: Option<String>,
    pub(crate) replayed: bool,
}

impl Finished {
    pub(crate) fn error(code: &str, content: String) -> Self {
        Finished {
            ok: false,
            content,
            parts: None,
            error_code: Some(code.into()),
            latency_ms: 0,
            sandbox_id: None,
            replayed: false,
        }
    }

    pub(crate) fn record(&self) -> Value {
        json!({"ok": self.ok, "content": self.content, "parts": self.parts,
               "error_code": self.error_code, "latency_ms": self.latency_ms,
               "sandbox_id": self.sandbox_id})
    }

    fn from_record(v: &Value) -> Self {
        Finished {
            ok: v["ok"].as_bool().unwrap_or(false),
            content: v["content"].as_str().unwrap_or_default().to_string(),
            parts: serde_json::from_value(v["parts"].clone()).ok().flatten(),
            error_code: v["error_code"].as_str().map(str::to_string),
            latency_ms: v["latency_ms"].as_u64().unwrap_or(0),
            sandbox_id: v["sandbox_id"].as_str().map(str::to_string),
            replayed: true,
        }
    }
}

async fn execute_one(
    engine: &Engine,
    h: &Arc<SessionHandle>,
    agent: &Arc<ResolvedAgent>,
    set: &Arc<ToolSet>,
    run_id: &str,
    c: CallState,
) -> Result<(), EngineError> {
    let tools = &set.entries;
    let approval = match &c.approval {
        ApprovalState::NotRequired(s) | ApprovalState::Approved(s) => *s,
        ApprovalState::Denied { status, .. } => *status,
        _ => ApprovalStatus::Required,
    };
    let finished = if let ApprovalState::Denied { reason, .. } = &c.approval {
        Finished::error("denied", format!("The call was not run: {reason}"))
    } else if c.tool == builtin::ASK_USER {
        match (&c.answer, c.asked) {
            (Some(answer), _) => Finished {
                ok: true,
                content: answer.clone(),
                parts: None,
                error_code: None,
                latency_ms: 0,
                sandbox_id: None,
                replayed: false,
            },
            (None, _) => {
                return match builtin::question(&c.arguments) {
                    Ok((question, choices)) => h
                        .log
                        .lock()
                        .await
                        .append_one(EventData::AskUser {
                            run_id: run_id.to_string(),
                            call_id: None,
                            question_id: c.call_id.clone(),
                            question,
                            choices,
                        })
                        .await
                        .map(drop),
                    Err(e) => {
                        let f = Finished::error("invalid_arguments", e);
                        log_result(h, run_id, &c, approval, f, None).await
                    }
                };
            }
        }
    } else if c.tool == builtin::RUN_CODE {
        crate::code_run::run_code(engine, h, agent, set, run_id, &c).await
    } else if c.tool == builtin::LOAD_SKILL {
        let name = builtin::skill_name(&c.arguments).unwrap_or_default();
        match agent.skills.iter().find(|k| k.name == name) {
            Some(k) => Finished {
                ok: true,
                content: k.body.clone(),
                parts: None,
                error_code: None,
                latency_ms: 0,
                sandbox_id: None,
                replayed: false,
            },
            None => Finished::error(
                "not_found",
                format!(
                    "there is no skill `{name}`; the skills are: {}",
                    agent
                        .skills
                        .iter()
                        .map(|k| k.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
        }
    } else {
        match tools.iter().find(|t| t.name == c.tool) {
            None => Finished::error("unknown_tool", format!("there is no tool `{}`", c.tool)),
            Some(entry) => {
                // A server that takes each user's own token, and a user who
                // has not authorized tack: the call waits for that.
                if let Backend::Remote(tool) = &entry.backend {
                    let ctx = CallContext {
                        call_id: c.call_id.clone(),
                        ..call_context(h, run_id).await
                    };
                    match tool.authorization(&ctx).await {
                        Ok(None) => {}
                        Ok(Some(need)) => {
                            return h
                                .log
                                .lock()
                                .await
                                .append_one(EventData::McpAuthRequired {
                                    run_id: run_id.to_string(),
                                    call_id: c.call_id.clone(),
                                    server: need.server,
                                    user: need.user,
                                    authorization_url: need.url,
                                })
                                .await
                                .map(drop);
                        }
                        Err(e) => {
                            let f = Finished::error(e.code, e.message);
                            return log_result(h, run_id, &c, approval, f, None).await;
                        }
                    }
                }
                let limits = &agent.spec.limits;
                let (finished, claim) = run_tool(engine, h, run_id, entry, &c, limits).await?;
                let record = finished.record();
                let call = claim.as_deref().map(|key| (key, &record));
                return log_result(h, run_id, &c, approval, finished, call).await;
            }
        }
    };
    log_result(h, run_id, &c, approval, finished, None).await
}

/// Log a call's `tool_result`, and finish its idempotency record (`call`: key and
/// record) in the same transaction.
async fn log_result(
    h: &SessionHandle,
    run_id: &str,
    c: &CallState,
    approval: ApprovalStatus,
    f: Finished,
    call: Option<(&str, &Value)>,
) -> Result<(), EngineError> {
    // The last result of a step is written with the next `model_request`.
    let entry = result_entry(run_id, c, approval, &f, None).closing(call);
    h.log.lock().await.carry(entry).await
}

/// A call's `tool_result` (for a program's call, `parent` is the
/// `run_code` call, and the tool's parts are kept for a re-run).
pub(crate) fn result_entry(
    run_id: &str,
    c: &CallState,
    approval: ApprovalStatus,
    f: &Finished,
    parent: Option<&str>,
) -> Entry {
    let parts = match (&f.parts, parent) {
        (Some(parts), Some(_)) if *parts != [Content::Text(f.content.clone())] => {
            Some(parts.clone())
        }
        _ => None,
    };
    let event = |content: String, parts: Option<Vec<Content>>| EventData::ToolResult {
        run_id: run_id.to_string(),
        call_id: c.call_id.clone(),
        tool: c.tool.clone(),
        plugin: if c.plugin.is_empty() {
            builtin::BUILTIN.into()
        } else {
            c.plugin.clone()
        },
        ok: f.ok,
        content,
        error_code: f.error_code.clone(),
        latency_ms: f.latency_ms,
        sandbox_id: f.sandbox_id.clone(),
        approval,
        replayed: f.replayed,
        parent_call_id: parent.map(str::to_string),
        parts,
    };
    // A tool may echo a redacted argument back (a ledger entry with its note):
    // the log shows the result with those values scrubbed, on the parsed
    // values; the model gets it whole.
    let needles = crate::redact::needles(&c.arguments, &c.redacted);
    let (shown, shown_parts) = match &f.parts {
        Some(p) => {
            let scrubbed = crate::redact::scrub_parts(p, &needles);
            let text = content_text(&scrubbed);
            (text, parts.as_ref().map(|_| scrubbed))
        }
        None => (crate::redact::scrub_plain(&f.content, &needles), None),
    };
    let private = (shown != f.content).then(|| event(f.content.clone(), parts.clone()));
    Entry::default().and_private(event(shown, shown_parts), private)
}

/// Run a plugin tool once. A destructive call claims its idempotency record
/// first, so one whose outcome a crash hid is never run again (and one that
/// finished is replayed from its record); the record is finished in the same
/// transaction as the call's `tool_result` (hence the key returned with the
/// result). Other calls take no record: after a crash they simply run again.
pub(crate) async fn run_tool(
    engine: &Engine,
    h: &Arc<SessionHandle>,
    run_id: &str,
    entry: &ToolEntry,
    c: &CallState,
    limits: &Limits,
) -> Result<(Finished, Option<String>), EngineError> {
    let store = &engine.inner.store;
    let key = format!("{run_id}/{}", c.call_id);
    if entry.destructive {
        match store.claim_call(&h.id, &key).await? {
            Claim::Done(v) => return Ok((Finished::from_record(&v), None)),
            Claim::Unfinished => {
                let f = Finished::error(
                    "outcome_unknown",
                    format!(
                        "The host stopped while `{}` ran, so whether it took effect is unknown; \
                         tack does not run a destructive call twice. Check the current state \
                         before trying again.",
                        c.tool
                    ),
                );
                return Ok((f, Some(key)));
            }
            Claim::New => {}
        }
    }
    let claim = entry.destructive.then_some(key);
    let ctx = CallContext {
        call_id: c.call_id.clone(),
        run_id: Some(run_id.to_string()),
        session_id: Some(h.id.clone()),
        principal: h.owner.clone(),
    };
    let f = match &entry.backend {
        Backend::Wasm(sandbox) => run_wasm(sandbox, entry, c, &ctx).await,
        Backend::Remote(tool) => {
            let asker = Arc::new(RunAsker {
                engine: engine.clone(),
                h: h.clone(),
                run_id: run_id.to_string(),
                call_id: c.call_id.clone(),
                asked: AtomicU64::new(0),
                limits: limits.clone(),
            });
            run_remote(tool.as_ref(), c, &ctx, asker).await
        }
        Backend::Builtin => Finished::error("internal", "a built-in tool has no runner".into()),
    };
    Ok((f, claim))
}

/// One call in a fresh instance of the tool's sandbox.
async fn run_wasm(
    sandbox: &Sandbox,
    entry: &ToolEntry,
    c: &CallState,
    ctx: &CallContext,
) -> Finished {
    let sandbox_id = ulid::Ulid::generate().to_string();
    let started = Instant::now();
    let outcome = sandbox.call(&entry.tool, &c.arguments, ctx).await;
    let latency_ms = started.elapsed().as_millis() as u64;
    let (ok, content, parts, error_code) = match outcome {
        Ok(o) => match o.result {
            Ok(content) => (true, content_text(&content), Some(content), None),
            Err(e) => {
                let code = serde_json::to_value(e.code)
                    .ok()
                    .and_then(|v| v.as_str().map(|s| s.replace('-', "_")))
                    .unwrap_or_else(|| "error".into());
                (false, e.to_string(), None, Some(code))
            }
        },
        Err(e) => (false, e.to_string(), None, Some(e.kind().replace('-', "_"))),
    };
    Finished {
        ok,
        content,
        parts,
        error_code,
        latency_ms,
        sandbox_id: Some(sandbox_id),
        replayed: false,
    }
}

/// One call to a tool the host reaches (an upstream MCP server's): the
/// arguments are checked against its schema first, as a sandbox does.
async fn run_remote(
    tool: &dyn RemoteTool,
    c: &CallState,
    ctx: &CallContext,
    asker: Arc<RunAsker>,
) -> Finished {
    let started = Instant::now();
    let outcome = match serde_json::from_str::<Value>(&c.arguments) {
        Err(e) => Err(RemoteError::new(
            "invalid_arguments",
            format!("the arguments are not JSON: {e}"),
        )),
        Ok(arguments) => match tool.check_arguments(&arguments) {
            Err(e) => Err(e),
            Ok(()) => tool.call(&arguments, ctx, asker).await,
        },
    };
    let latency_ms = started.elapsed().as_millis() as u64;
    match outcome {
        Ok(parts) => Finished {
            ok: true,
            content: content_text(&parts),
            parts: Some(parts),
            error_code: None,
            latency_ms,
            sandbox_id: None,
            replayed: false,
        },
        Err(e) => Finished {
            latency_ms,
            ..Finished::error(e.code, e.message)
        },
    }
}

/// A remote call's questions, put to the session's user mid-call: each is
/// an `ask_user` event naming the call (the session waits for input
/// meanwhile), answered through the API like any question. The answer
/// reaches the waiting call in this process; an interrupt ends the wait.
struct RunAsker {
    engine: Engine,
    h: Arc<SessionHandle>,
    run_id: String,
    call_id: String,
    asked: AtomicU64,
    /// The run's limits, which sampling spends against.
    limits: Limits,
}

impl Asker for RunAsker {
    fn sample<'a>(
        &'a self,
        server: &'a str,
        request: crate::remote::Sampling,
    ) -> futures_util::future::BoxFuture<'a, Result<crate::remote::Sampled, RemoteError>> {
        Box::pin(async move {
            let refused = |m: String| RemoteError::new("refused", m);
            {
                let log = self.h.log.lock().await;
                let Some(run) = &log.run else {
                    return Err(refused("the run has ended".into()));
                };
                if let Some(stop) = limit_reached(&self.limits, run, now_ms()) {
                    return Err(refused(format!(
                        "the run has reached a limit ({stop:?}); it pays for no more model calls"
                    )));
                }
            }
            let (entry, adapter) = self
                .engine
                .inner
                .resolver
                .catalog_model(&request.model)
                .await
                .map_err(|e| refused(e.to_string()))?;
            let completion = CompletionRequest {
                endpoint: entry.endpoint.clone(),
                model: entry.model.clone().unwrap_or_else(|| request.model.clone()),
                system: request.system,
                messages: request.messages,
                tools: Default::default(),
                max_tokens: request.max_tokens.clamp(1, DEFAULT_MAX_TOKENS),
                temperature: request.temperature,
                stream: false,
            };
            let outcome = adapter
                .complete(&completion, MODEL_CALL_TIMEOUT, None)
                .await
                .map_err(|e| RemoteError::new("unavailable", e.to_string()))?;
            let done = outcome
                .result
                .map_err(|e| RemoteError::new("unavailable", e.message))?;
            let cost_usd = entry.cost_usd(done.usage.input_tokens, done.usage.output_tokens);
            self.h
                .log
                .lock()
                .await
                .append_one(EventData::McpSampling {
                    run_id: self.run_id.clone(),
                    call_id: self.call_id.clone(),
                    server: server.to_string(),
                    model: request.model.clone(),
                    usage: done.usage,
                    cost_usd,
                    latency_ms: outcome.elapsed.as_millis() as u64,
                })
                .await
                .map_err(|e| RemoteError::new("internal", e.to_string()))?;
            let stop_reason = match done.stop_reason {
                tack_runtime::StopReason::MaxTokens => "maxTokens",
                tack_runtime::StopReason::Refusal => "refusal",
                _ => "endTurn",
            };
            Ok(crate::remote::Sampled {
                text: done.message.joined_text(),
                model: completion.model,
                stop_reason: stop_reason.into(),
            })
        })
    }

    fn ask(
        &self,
        question: String,
        choices: Vec<String>,
    ) -> futures_util::future::BoxFuture<'_, Result<String, RemoteError>> {
        Box::pin(async move {
            let n = self.asked.fetch_add(1, Ordering::SeqCst) + 1;
            let question_id = format!("{}.ask{n}", self.call_id);
            let answer = self.engine.expect_answer(&self.h.id, &question_id);
            let failed = |e: EngineError| RemoteError::new("internal", e.to_string());
            {
                let mut log = self.h.log.lock().await;
                let mut entry = Entry::one(EventData::AskUser {
                    run_id: self.run_id.clone(),
                    question_id: question_id.clone(),
                    call_id: Some(self.call_id.clone()),
                    question,
                    choices,
                });
                if log.status != Some(Status::WaitingInput) {
                    entry = entry.and(EventData::StatusChanged {
                        status: Status::WaitingInput,
                    });
                }
                log.append(entry).await.map_err(failed)?;
            }
            let answer = tokio::select! {
                a = answer => a.map_err(|_| RemoteError::new(
                    "unanswerable",
                    "the question was withdrawn before anyone answered",
                )),
                _ = self.h.cancel.notified() => Err(RemoteError::new(
                    "interrupted",
                    "the run was interrupted while the tool waited for an answer",
                )),
            };
            self.engine.forget_answer(&self.h.id, &question_id);
            set_status(&self.h, Status::Running).await.map_err(failed)?;
            answer
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tack_capability::HumanDuration;

    fn run(steps: u32, tokens: (u64, u64), cost_usd: f64) -> RunState {
        RunState {
            run_id: "r1".into(),
            started_ms: 10_000,
            steps,
            input_tokens: tokens.0,
            output_tokens: tokens.1,
            cost_usd,
            calls: Vec::new(),
            asks: Default::default(),
            code_calls: Default::default(),
        }
    }

    #[test]
    fn each_limit_stops_the_run_once_reached_and_not_before() {
        let limits = Limits {
            max_steps: Some(3),
            max_cost_usd: Some(1.0),
            max_tokens: Some(100),
            timeout: Some(HumanDuration(Duration::from_secs(2))),
        };
        let now = 10_000 + 1_999;
        assert_eq!(limit_reached(&limits, &run(2, (50, 49), 0.99), now), None);
        assert_eq!(
            limit_reached(&limits, &run(3, (0, 0), 0.0), now),
            Some(RunStop::MaxSteps)
        );
        assert_eq!(
            limit_reached(&limits, &run(0, (0, 0), 1.0), now),
            Some(RunStop::BudgetReached)
        );
        assert_eq!(
            limit_reached(&limits, &run(0, (60, 40), 0.0), now),
            Some(RunStop::TokenLimit)
        );
        assert_eq!(
            limit_reached(&limits, &run(0, (0, 0), 0.0), 12_000),
            Some(RunStop::Timeout)
        );
        // Steps are checked first, then cost, tokens and time.
        assert_eq!(
            limit_reached(&limits, &run(3, (60, 40), 1.0), 12_000),
            Some(RunStop::MaxSteps)
        );
        assert_eq!(
            limit_reached(&limits, &run(0, (60, 40), 1.0), 12_000),
            Some(RunStop::BudgetReached)
        );
        // No limits: a run may go on.
        assert_eq!(
            limit_reached(&Limits::default(), &run(1_000, (1 << 40, 0), 1e9), i64::MAX),
            None
        );
    }

    #[test]
    fn the_backoff_doubles_heeds_retry_after_and_is_capped() {
        let retry = RetryPolicy {
            attempts: 10,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(5),
        };
        let ms = |attempt, after| backoff(&retry, attempt, after).as_millis();
        assert_eq!([ms(1, None), ms(2, None), ms(3, None)], [250, 500, 1_000]);
        assert_eq!(ms(1, Some(2_000)), 2_000, "a longer retry-after wins");
        assert_eq!(ms(3, Some(10)), 1_000, "a shorter one does not");
        assert_eq!(ms(6, None), 5_000, "capped at max_delay");
        assert_eq!(ms(1, Some(60_000)), 5_000, "a provider's retry-after too");
        assert_eq!(ms(40, None), 5_000, "no overflow on many attempts");
    }
}
