//! Code mode: agent-written programs, run by a code-runner component (world
//! `code-mode`) in a fresh instance per program with nothing granted: no
//! files, no network, no environment, a frozen wall clock. The program's
//! only way out is its tools, which the runner reaches through the
//! `host-tools` import and the host runs through [`CodeTools`].
//!
//! Calls are started and awaited separately (`start-call`, `await-calls`):
//! each started call runs at once as a task of its own, so a program's
//! `Promise.all` has its calls in flight together. Time the program spends
//! blocked in `await-calls` does not count against its wall-time limit
//! (a tool call may wait for an approver); the tools' own limits bound them.

use crate::bindings::code_world::CodeModePre;
use crate::bindings::code_world::exports::tack::plugin::code_runner as wit;
use crate::bindings::code_world::tack::plugin::host_tools;
use crate::bindings::tack::plugin::types as wit_types;
use crate::egress::EgressBinding;
use crate::error::CallError;
use crate::plugin::{classify, new_store};
use crate::runtime::Runtime;
use crate::state::SandboxState;
use crate::types::{Content, ErrorCode, ToolError};
use futures_util::future::BoxFuture;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tack_capability::{ByteSize, Capabilities, Manifest};
use tokio::task::JoinHandle;
use wasmtime::{Trap, UpdateDeadline};

/// The host's side of a program's tool calls.
pub trait CodeTools: Send + Sync {
    /// Run tool `name` (as the program names it, `namespace.tool`) with
    /// JSON `arguments` to its end: the parts it returned, or its error
    /// (an unknown tool, a refusal and a failure to run are errors too).
    fn call(
        &self,
        name: String,
        arguments: String,
    ) -> BoxFuture<'static, Result<Vec<Content>, ToolError>>;
}

/// What bounds one program.
#[derive(Debug, Clone, PartialEq)]
pub struct CodeLimits {
    /// Wall time the program may compute (not counting waits for tools).
    pub timeout: Duration,
    /// Linear memory of the sandbox.
    pub memory: ByteSize,
    /// The JavaScript heap, inside that.
    pub heap: ByteSize,
    /// Native stack for the interpreter (deep recursion ends here).
    pub stack: ByteSize,
    /// Result and console output together.
    pub output: ByteSize,
    /// Tool calls one program may start.
    pub tool_calls: u32,
}

impl Default for CodeLimits {
    fn default() -> Self {
        CodeLimits {
            timeout: Duration::from_secs(10),
            memory: ByteSize::mib(64),
            heap: ByteSize::mib(32),
            stack: ByteSize(512 * 1024),
            output: ByteSize(64 * 1024),
            tool_calls: 100,
        }
    }
}

/// What a program returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeOutput {
    /// Its return value, as JSON text.
    pub value: String,
    /// What it printed, a line per `console.log`.
    pub console: String,
    /// Tool calls it started.
    pub tool_calls: u32,
}

/// Why a program failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CodeFailure {
    /// It does not parse.
    Syntax,
    /// It threw (or did not catch a tool's error).
    Exception,
    /// It started more tool calls than allowed.
    TooManyCalls,
    /// Its result and console output are over the limit.
    OutputTooLarge,
    /// It ran out of heap, stack or sandbox memory.
    OutOfMemory,
    /// It awaits something that can never settle.
    NeverSettles,
    /// It computed longer than its wall-time limit (or ran out of fuel).
    Timeout,
}

/// A program that failed, with what it printed before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeError {
    /// The kind of failure.
    pub failure: CodeFailure,
    /// What happened, with the line where known.
    pub message: String,
    /// Its console output up to the failure.
    pub console: String,
    /// Tool calls it started.
    pub tool_calls: u32,
}

impl std::fmt::Display for CodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// A program's calls in flight, in its store.
pub(crate) struct CodeCalls {
    tools: Arc<dyn CodeTools>,
    next: u32,
    running: HashMap<u32, JoinHandle<Result<Vec<Content>, ToolError>>>,
    /// Time spent blocked in `await-calls` that the deadline has not been
    /// given back yet.
    pub(crate) waited: Duration,
}

impl host_tools::Host for SandboxState {
    fn start_call(&mut self, name: String, arguments: String) -> u32 {
        let Some(code) = self.code.as_mut() else {
            return 0;
        };
        code.next += 1;
        let id = code.next;
        let call = code.tools.call(name, arguments);
        code.running.insert(id, tokio::spawn(call));
        id
    }

    async fn await_calls(&mut self, calls: Vec<u32>) -> Vec<host_tools::Ended> {
        let Some(code) = self.code.as_mut() else {
            return Vec::new();
        };
        let began = Instant::now();
        let mut ended = Vec::new();
        let mut waiting = Vec::new();
        for call in calls {
            if code.running.contains_key(&call) && !waiting.contains(&call) {
                waiting.push(call);
            } else {
                ended.push(host_tools::Ended {
                    call,
                    outcome: Err(to_wit_error(ToolError {
                        code: ErrorCode::NotFound,
                        message: format!("no tool call {call} is in flight"),
                        field: None,
                        retryable: false,
                    })),
                });
            }
        }
        if ended.is_empty()
            && !waiting.is_empty()
            && !waiting.iter().any(|c| code.running[c].is_finished())
        {
            // Wait for the first to end; its result is taken here.
            let (ids, handles): (Vec<u32>, Vec<_>) = code
                .running
                .iter_mut()
                .filter(|(id, _)| waiting.contains(id))
                .map(|(id, h)| (*id, h))
                .unzip();
            let (first, index, _) = futures_util::future::select_all(handles).await;
            let id = ids[index];
            code.running.remove(&id);
            waiting.retain(|c| *c != id);
            ended.push(finished(id, first));
        }
        for call in waiting {
            if code.running[&call].is_finished() {
                let handle = code.running.remove(&call).expect("in flight");
                ended.push(finished(call, handle.await));
            }
        }
        code.waited += began.elapsed();
        ended
    }
}

fn finished(
    call: u32,
    joined: Result<Result<Vec<Content>, ToolError>, tokio::task::JoinError>,
) -> host_tools::Ended {
    let outcome = joined.unwrap_or_else(|e| {
        Err(ToolError {
            code: ErrorCode::Internal,
            message: format!("the tool call failed on the host: {e}"),
            field: None,
            retryable: false,
        })
    });
    host_tools::Ended {
        call,
        outcome: outcome
            .map(|parts| parts.into_iter().map(to_wit_content).collect())
            .map_err(to_wit_error),
    }
}

fn to_wit_content(c: Content) -> wit_types::Content {
    match c {
        Content::Text(t) => wit_types::Content::Text(t),
        Content::Json(v) => wit_types::Content::Json(v.to_string()),
    }
}

fn to_wit_error(e: ToolError) -> wit_types::ToolError {
    wit_types::ToolError {
        code: match e.code {
            ErrorCode::InvalidArguments => wit_types::ErrorCode::InvalidArguments,
            ErrorCode::NotFound => wit_types::ErrorCode::NotFound,
            ErrorCode::PermissionDenied => wit_types::ErrorCode::PermissionDenied,
            ErrorCode::Conflict => wit_types::ErrorCode::Conflict,
            ErrorCode::Unavailable => wit_types::ErrorCode::Unavailable,
            ErrorCode::Timeout => wit_types::ErrorCode::Timeout,
            ErrorCode::Internal => wit_types::ErrorCode::Internal,
        },
        message: e.message,
        field: e.field,
        retryable: e.retryable,
    }
}

/// A loaded code-runner component. Cheap to clone.
#[derive(Clone)]
pub struct CodeRunner {
    inner: Arc<CodeInner>,
}

struct CodeInner {
    runtime: Runtime,
    digest: String,
    pre: CodeModePre<SandboxState>,
}

impl CodeRunner {
    pub(crate) fn new(
        runtime: Runtime,
        digest: String,
        _manifest: Manifest,
        pre: CodeModePre<SandboxState>,
    ) -> Self {
        CodeRunner {
            inner: Arc::new(CodeInner {
                runtime,
                digest,
                pre,
            }),
        }
    }

    /// `sha256:<hex>` of the component.
    pub fn digest(&self) -> String {
        format!("sha256:{}", self.inner.digest)
    }

    /// Run `source` in a fresh instance, with `tools` (names
    /// `namespace.tool`) calling through `host`. `Err`: the sandbox itself
    /// failed (it could not be set up, or the runner trapped for a reason
    /// other than the limits).
    pub async fn run(
        &self,
        source: &str,
        tools: &[String],
        host: Arc<dyn CodeTools>,
        limits: &CodeLimits,
    ) -> Result<Result<CodeOutput, CodeError>, CallError> {
        let inner = &self.inner;
        // Whatever the manifest asks for, a program gets nothing but memory.
        let mut capabilities = Capabilities::deny_all();
        capabilities.limits.timeout = limits.timeout;
        capabilities.limits.memory = limits.memory;
        let (mut store, pipes) = new_store(
            &inner.runtime,
            &capabilities,
            &EgressBinding::new(capabilities.egress.clone()),
            limits.timeout,
        )?;
        store.data_mut().code = Some(CodeCalls {
            tools: host,
            next: 0,
            running: HashMap::new(),
            waited: Duration::ZERO,
        });
        // At the deadline, the time spent waiting for tools is given back.
        let tick = inner.runtime.config().epoch_tick;
        store.epoch_deadline_callback(move |mut ctx| {
            let code = ctx.data_mut().code.as_mut();
            let waited = code
                .map(|c| std::mem::take(&mut c.waited))
                .unwrap_or_default();
            if waited >= tick {
                let ticks = waited.as_nanos().div_ceil(tick.as_nanos().max(1));
                Ok(UpdateDeadline::Continue(
                    u64::try_from(ticks).unwrap_or(u64::MAX),
                ))
            } else {
                Err(Trap::Interrupt.into())
            }
        });
        let wit_limits = wit::Limits {
            max_output_bytes: bytes_u32(limits.output),
            max_tool_calls: limits.tool_calls,
            max_heap_bytes: bytes_u32(limits.heap),
            max_stack_bytes: bytes_u32(limits.stack),
        };
        let names = tools.to_vec();
        let outcome = async {
            let instance = inner.pre.instantiate_async(&mut store).await?;
            instance
                .tack_plugin_code_runner()
                .call_run(&mut store, source, &names, wit_limits)
                .await
        }
        .await;
        // Calls still in flight when the program ends are abandoned.
        if let Some(code) = store.data_mut().code.take() {
            for (_, handle) in code.running {
                handle.abort();
            }
        }
        let raw = match outcome {
            Ok(raw) => raw,
            Err(e) => {
                return match classify(e, &store, &pipes, &capabilities.limits) {
                    CallError::Timeout { .. } | CallError::FuelExhausted { .. } => {
                        Ok(Err(CodeError {
                            failure: CodeFailure::Timeout,
                            message: format!(
                                "the program computed for longer than its limit of {:?} \
                                 (waiting for tools does not count)",
                                limits.timeout
                            ),
                            console: String::new(),
                            tool_calls: 0,
                        }))
                    }
                    CallError::StackOverflow => Ok(Err(CodeError {
                        failure: CodeFailure::OutOfMemory,
                        message: "stack overflow: the program recursed too deeply".into(),
                        console: String::new(),
                        tool_calls: 0,
                    })),
                    CallError::MemoryLimit { .. } => Ok(Err(CodeError {
                        failure: CodeFailure::OutOfMemory,
                        message: format!(
                            "the program needed more than the sandbox's {} of memory",
                            limits.memory
                        ),
                        console: String::new(),
                        tool_calls: 0,
                    })),
                    other => Err(other),
                };
            }
        };
        Ok(match raw {
            Ok(o) => Ok(CodeOutput {
                value: o.value,
                console: o.console,
                tool_calls: o.tool_calls,
            }),
            Err(e) => Err(CodeError {
                failure: match e.failure {
                    wit::Failure::Syntax => CodeFailure::Syntax,
                    wit::Failure::Exception => CodeFailure::Exception,
                    wit::Failure::TooManyCalls => CodeFailure::TooManyCalls,
                    wit::Failure::OutputTooLarge => CodeFailure::OutputTooLarge,
                    wit::Failure::OutOfMemory => CodeFailure::OutOfMemory,
                    wit::Failure::NeverSettles => CodeFailure::NeverSettles,
                },
                message: e.message,
                console: e.console,
                tool_calls: e.tool_calls,
            }),
        })
    }
}

fn bytes_u32(b: ByteSize) -> u32 {
    u32::try_from(b.bytes()).unwrap_or(u32::MAX)
}
