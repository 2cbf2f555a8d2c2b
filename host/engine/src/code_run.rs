//! A `run_code` call inside a run (code mode).
//!
//! The program runs in a fresh code-runner sandbox. Each tool call it makes
//! is a call of the run like a model's: gated (a call held for approval
//! waits, the session shows `waiting_approval`, the program's clock
//! stopped), checked against the tool's schema, run in a fresh sandbox or
//! through the gateway, and logged as `tool_call` / `tool_result` with
//! `parent_call_id` (the `run_code` call) and the id `PARENT.N`, N counting
//! the program's calls in the order it starts them. Its result goes to the
//! program, not to the model.
//!
//! A host that restarts mid-program runs the program again from the start:
//! a call the log already holds returns its logged result (or waits for its
//! approval, or runs if it had not started); a destructive call whose
//! outcome a crash hid is refused by its idempotency record, never run
//! twice. A program that calls differently the second time gets an error
//! for the call that differs.

use crate::builtin;
use crate::components::{Backend, ResolvedAgent, ToolEntry, ToolSet};
use crate::engine::{Engine, SessionHandle};
use crate::error::EngineError;
use crate::events::{ApprovalStatus, EventData, Status};
use crate::log::Entry;
use crate::runner::{
    Finished, call_context, gate_events, gate_one, result_entry, run_tool, set_status,
};
use crate::state::{ApprovalState, CallState, CodeCallResult, CodeCallState};
use futures_util::future::BoxFuture;
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;
use tack_runtime::{CodeTools, Content, ErrorCode, ToolError};

/// Run `c`, a `run_code` call of run `run_id`: its program's outcome as
/// the call's result.
pub(crate) async fn run_code(
    engine: &Engine,
    h: &Arc<SessionHandle>,
    agent: &Arc<ResolvedAgent>,
    set: &Arc<ToolSet>,
    run_id: &str,
    c: &CallState,
) -> Finished {
    let Some(setup) = &agent.code else {
        return Finished::error(
            "not_found",
            "there is no tool `run_code`: code mode is off for this agent".into(),
        );
    };
    let source = match builtin::program(&c.arguments) {
        Ok(s) => s,
        Err(e) => return Finished::error("invalid_arguments", e),
    };
    let mut names: Vec<String> = set.code.keys().cloned().collect();
    names.sort();
    let calls = Arc::new(RunCalls(Arc::new(Program {
        engine: engine.clone(),
        h: h.clone(),
        agent: agent.clone(),
        set: set.clone(),
        run_id: run_id.to_string(),
        parent: c.call_id.clone(),
        started: AtomicU32::new(0),
    })));
    let sandbox_id = ulid::Ulid::generate().to_string();
    let started = Instant::now();
    let outcome = setup
        .runner
        .run(&source, &names, calls, &setup.limits)
        .await;
    let latency_ms = started.elapsed().as_millis() as u64;
    let mut f = match outcome {
        Ok(Ok(out)) => {
            let mut content = out.value;
            if !out.console.is_empty() {
                content.push_str("\n\nconsole:\n");
                content.push_str(&out.console);
            }
            Finished {
                ok: true,
                content,
                parts: None,
                error_code: None,
                latency_ms: 0,
                sandbox_id: None,
                replayed: false,
            }
        }
        Ok(Err(e)) => {
            let failure = serde_json::to_value(e.failure)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_else(|| "error".into());
            let mut content = format!("The program failed ({failure}): {}", e.message);
            if !e.console.is_empty() {
                content.push_str("\n\nconsole:\n");
                content.push_str(&e.console);
            }
            Finished::error(&failure, content)
        }
        Err(e) => Finished::error(
            &e.kind().replace('-', "_"),
            format!("The program could not run: {e}"),
        ),
    };
    f.latency_ms = latency_ms;
    f.sandbox_id = Some(sandbox_id);
    f
}

/// One program's side of the run.
struct Program {
    engine: Engine,
    h: Arc<SessionHandle>,
    agent: Arc<ResolvedAgent>,
    set: Arc<ToolSet>,
    run_id: String,
    /// The `run_code` call.
    parent: String,
    /// Calls the program has started.
    started: AtomicU32,
}

/// The tools as the program's runner calls them.
struct RunCalls(Arc<Program>);

impl CodeTools for RunCalls {
    fn call(
        &self,
        name: String,
        arguments: String,
    ) -> BoxFuture<'static, Result<Vec<Content>, ToolError>> {
        // Numbered as started, which a program that runs again repeats.
        let n = self.0.started.fetch_add(1, Ordering::SeqCst) + 1;
        let id = format!("{}.{n}", self.0.parent);
        let p = self.0.clone();
        Box::pin(async move {
            match call(&p, &id, &name, &arguments).await {
                Ok(result) => result,
                Err(e) => Err(tool_error(ErrorCode::Internal, e.to_string())),
            }
        })
    }
}

fn tool_error(code: ErrorCode, message: impl Into<String>) -> ToolError {
    ToolError {
        code,
        message: message.into(),
        field: None,
        retryable: false,
    }
}

/// The program's call `id` of tool `name`: gated and run (or its logged
/// result, when the program runs again).
async fn call(
    p: &Program,
    id: &str,
    name: &str,
    arguments: &str,
) -> Result<Result<Vec<Content>, ToolError>, EngineError> {
    let Some(entry) = p.set.code.get(name) else {
        let mut names: Vec<&str> = p.set.code.keys().map(String::as_str).collect();
        names.sort();
        return Ok(Err(tool_error(
            ErrorCode::NotFound,
            format!(
                "there is no tool `{name}`; a program may call: {}",
                names.join(", ")
            ),
        )));
    };
    let logged = p.h.log.lock().await.code_call(id).cloned();
    match logged {
        None => {
            let g = gate(p, entry, arguments, id).await;
            let mut log = p.h.log.lock().await;
            log.append(Entry::default().and_all(gate_events(&p.run_id, g, true)))
                .await?;
        }
        Some(logged) => {
            let given: Value = serde_json::from_str(arguments)
                .unwrap_or_else(|_| Value::String(arguments.to_string()));
            if logged.tool != entry.name || logged.requested != given {
                return Ok(Err(tool_error(
                    ErrorCode::Conflict,
                    format!(
                        "call {id} differs from the one this program made before the host \
                         restarted (`{}` then, `{name}` with these arguments now); a program \
                         must make the same calls each time it runs",
                        logged.tool
                    ),
                )));
            }
            if let Some(r) = logged.result {
                return Ok(replayed(r));
            }
            if logged.approval == ApprovalState::Pending(String::new()) {
                // Its `approval_required` was not written before the stop.
                let mut g = gate(p, entry, arguments, id).await;
                if !matches!(g.outcome, crate::approval::Outcome::Require(_)) {
                    g.outcome = crate::approval::Outcome::Require(held(&entry.name));
                }
                let mut log = p.h.log.lock().await;
                log.append(Entry::default().and_all(gate_events(&p.run_id, g, false)))
                    .await?;
            }
        }
    }
    let (approval, state) = match wait_for_approval(p, id).await? {
        Ok(decided) => decided,
        Err(refused) => return Ok(Err(refused)),
    };
    let c = call_state(id, &state);
    let f = match authorization(p, entry, id).await {
        Some(refused) => refused,
        None => {
            let limits = &p.agent.spec.limits;
            let (f, claim) = run_tool(&p.engine, &p.h, &p.run_id, entry, &c, limits).await?;
            let record = f.record();
            let entry = result_entry(&p.run_id, &c, approval, &f, Some(&p.parent))
                .closing(claim.as_deref().map(|key| (key, &record)));
            p.h.log.lock().await.append(entry).await?;
            return Ok(outcome(f.ok, f.content, f.parts, f.error_code));
        }
    };
    let entry = result_entry(&p.run_id, &c, approval, &f, Some(&p.parent));
    p.h.log.lock().await.append(entry).await?;
    Ok(outcome(f.ok, f.content, f.parts, f.error_code))
}

/// Program call `id` as the runner's tool and result code takes a call.
fn call_state(id: &str, state: &CodeCallState) -> CallState {
    CallState {
        call_id: id.to_string(),
        tool: state.tool.clone(),
        arguments: state.arguments.clone(),
        plugin: state.plugin.clone(),
        destructive: state.destructive,
        approval: state.approval.clone(),
        redacted: state.redacted.clone(),
        asked: false,
        answer: None,
        awaiting_auth: None,
        result: None,
    }
}

/// The gate's look at a program's call.
async fn gate(
    p: &Program,
    entry: &ToolEntry,
    arguments: &str,
    id: &str,
) -> crate::runner::GateResult {
    let ctx = call_context(&p.h, &p.run_id).await;
    let mut g = gate_one(
        &p.h,
        &p.agent,
        std::slice::from_ref(entry),
        &entry.name,
        arguments,
        &ctx,
        id,
    )
    .await;
    g.parent = Some(p.parent.clone());
    g
}

/// The approval a call logged as `required` before a restart asks for.
fn held(tool: &str) -> crate::approval::Requirement {
    crate::approval::Requirement {
        approvers: vec!["approver".into()],
        scope: crate::events::Scope::Call,
        grant_ttl_s: None,
        reason: format!("`{tool}` was held for approval before the host restarted"),
        policy: "central".into(),
        policy_version: "central".into(),
    }
}

/// Wait until call `id` may run (its approval status and logged state), or
/// its refusal: denied (logged here), or the run interrupted.
async fn wait_for_approval(
    p: &Program,
    id: &str,
) -> Result<Result<(ApprovalStatus, CodeCallState), ToolError>, EngineError> {
    let mut waited = false;
    loop {
        let state = p.h.log.lock().await.code_call(id).cloned();
        let Some(state) = state else {
            return Ok(Err(tool_error(
                ErrorCode::Internal,
                format!("call {id} is missing from the log"),
            )));
        };
        let approval_id = match &state.approval {
            ApprovalState::NotRequired(s) | ApprovalState::Approved(s) => {
                if waited {
                    resume_status(&p.h).await?;
                }
                return Ok(Ok((*s, state)));
            }
            ApprovalState::Denied { reason, status } => {
                if waited {
                    resume_status(&p.h).await?;
                }
                let f = Finished::error("denied", format!("The call was not run: {reason}"));
                let c = call_state(id, &state);
                let entry = result_entry(&p.run_id, &c, *status, &f, Some(&p.parent));
                p.h.log.lock().await.append(entry).await?;
                return Ok(Err(tool_error(ErrorCode::PermissionDenied, f.content)));
            }
            ApprovalState::Pending(a) if !a.is_empty() => a.clone(),
            ApprovalState::Pending(_) | ApprovalState::Ungated => {
                return Ok(Err(tool_error(
                    ErrorCode::Internal,
                    format!("call {id} was never put to the gate"),
                )));
            }
        };
        // Listen before looking again, so a decision or an interrupt that
        // lands in between is not missed.
        let decided = p.engine.expect_answer(&p.h.id, &approval_id);
        let interrupted = p.h.cancel.notified();
        tokio::pin!(interrupted);
        interrupted.as_mut().enable();
        {
            let mut log = p.h.log.lock().await;
            let still = log
                .code_call(id)
                .is_some_and(|c| c.approval == ApprovalState::Pending(approval_id.clone()));
            if log.interrupted {
                drop(log);
                p.engine.forget_answer(&p.h.id, &approval_id);
                return Ok(Err(interrupted_error()));
            }
            if !still {
                drop(log);
                p.engine.forget_answer(&p.h.id, &approval_id);
                continue;
            }
            if log.status != Some(Status::WaitingApproval) {
                log.append_one(EventData::StatusChanged {
                    status: Status::WaitingApproval,
                })
                .await?;
            }
        }
        waited = true;
        tokio::select! {
            _ = decided => {}
            _ = &mut interrupted => {
                p.engine.forget_answer(&p.h.id, &approval_id);
                return Ok(Err(interrupted_error()));
            }
        }
        p.engine.forget_answer(&p.h.id, &approval_id);
    }
}

fn interrupted_error() -> ToolError {
    tool_error(
        ErrorCode::Unavailable,
        "the run was interrupted while the call waited for approval",
    )
}

/// Back to `running` after a wait, unless another call still waits.
async fn resume_status(h: &SessionHandle) -> Result<(), EngineError> {
    let waiting = h.log.lock().await.pending_approvals().next().is_some();
    if !waiting {
        set_status(h, Status::Running).await?;
    }
    Ok(())
}

/// A refusal when the call's MCP server takes each user's own token and
/// the session's user has not authorized tack yet: a program cannot wait
/// for a browser, so the call fails, naming the way out.
async fn authorization(p: &Program, entry: &ToolEntry, id: &str) -> Option<Finished> {
    let Backend::Remote(tool) = &entry.backend else {
        return None;
    };
    let ctx = tack_runtime::CallContext {
        call_id: id.to_string(),
        ..call_context(&p.h, &p.run_id).await
    };
    match tool.authorization(&ctx).await {
        Ok(None) => None,
        Ok(Some(need)) => Some(Finished::error(
            "permission_denied",
            format!(
                "`{}` needs {} to authorize tack with MCP server `{}` first; call the tool \
                 directly (not from a program) so that they are asked",
                entry.name, need.user, need.server
            ),
        )),
        Err(e) => Some(Finished::error(e.code, e.message)),
    }
}

/// A logged result as the program gets it.
fn replayed(r: CodeCallResult) -> Result<Vec<Content>, ToolError> {
    outcome(r.ok, r.content, r.parts, r.error_code)
}

/// A call's end as the program gets it: the tool's parts, or an error whose
/// code is the nearest of the tool error codes to the logged one.
fn outcome(
    ok: bool,
    content: String,
    parts: Option<Vec<Content>>,
    error_code: Option<String>,
) -> Result<Vec<Content>, ToolError> {
    if ok {
        return Ok(parts.unwrap_or_else(|| vec![Content::Text(content)]));
    }
    let code = match error_code.as_deref().unwrap_or("internal") {
        "invalid_arguments" => ErrorCode::InvalidArguments,
        "not_found" | "unknown_tool" => ErrorCode::NotFound,
        "permission_denied" | "denied" | "refused" | "unauthorized" => ErrorCode::PermissionDenied,
        "conflict" => ErrorCode::Conflict,
        "unavailable" | "interrupted" => ErrorCode::Unavailable,
        "timeout" => ErrorCode::Timeout,
        _ => ErrorCode::Internal,
    };
    Err(tool_error(code, content))
}
