//! `code-js`: tack's code-mode runner. An agent's program (the body of an
//! async JavaScript function) runs on QuickJS-ng in this component, one
//! fresh instance per program; its only way out is `tools`, whose calls go
//! to the host through `host-tools`.
//!
//! A tool call is a promise. Starting one hands it to the host at once
//! (`start-call`); when the program has nothing left to do but wait, the
//! runner blocks in `await-calls` for every call still open and settles
//! the promises of those that ended, so calls in `Promise.all` run on the
//! host at the same time. A tool's error rejects its promise with an
//! `Error` whose `name` is `ToolError` and whose `code` is the tool error's
//! code.
//!
//! The prelude builds `tools` and `console` from three primitives and
//! removes them from the global object, so the program reaches the host
//! only through `tools`, whose objects are frozen.

wit_bindgen::generate!({
    path: "../../wit",
    world: "code-mode",
});

use exports::tack::plugin::code_runner::{Failure, Guest, Limits, RunError, RunOutput};
use rquickjs::promise::PromiseState;
use rquickjs::{Context, Ctx, Exception, Function, Promise, Runtime, Value};
use std::cell::RefCell;
use std::rc::Rc;

mod typescript;
use tack::plugin::host_tools::{await_calls, start_call};
use tack::plugin::types::{Content, ErrorCode};

/// Builds `tools` and `console`, hides the primitives, and returns the
/// function that settles the calls that ended.
const PRELUDE: &str = r#"
(() => {
  const print = globalThis.__tack_print;
  const start = globalThis.__tack_start;
  const wait = globalThis.__tack_await;
  const names = globalThis.__tack_names;
  delete globalThis.__tack_print;
  delete globalThis.__tack_start;
  delete globalThis.__tack_await;
  delete globalThis.__tack_names;
  const open = new Map();
  const show = (v) => {
    if (typeof v === "string") return v;
    try { const s = JSON.stringify(v); return s === undefined ? String(v) : s; }
    catch { return String(v); }
  };
  const line = (...args) => print(args.map(show).join(" "));
  globalThis.console = Object.freeze({ log: line, info: line, warn: line, error: line, debug: line });
  // Objects without a prototype: no name (not even `__proto__`) reaches
  // Object.prototype, and nothing added to it shows through.
  const tools = Object.create(null);
  for (const name of names) {
    const dot = name.indexOf(".");
    const ns = name.slice(0, dot);
    const tool = name.slice(dot + 1);
    if (!Object.prototype.hasOwnProperty.call(tools, ns)) tools[ns] = Object.create(null);
    tools[ns][tool] = (args) => new Promise((resolve, reject) => {
      const json = JSON.stringify(args === undefined ? {} : args);
      open.set(start(name, json === undefined ? "{}" : json), { resolve, reject });
    });
  }
  for (const ns of Object.keys(tools)) Object.freeze(tools[ns]);
  Object.defineProperty(globalThis, "tools", { value: Object.freeze(tools), writable: false, configurable: false });
  return () => {
    if (open.size === 0) return false;
    for (const [call, ok, payload] of JSON.parse(wait(Array.from(open.keys())))) {
      const p = open.get(call);
      open.delete(call);
      if (!p) continue;
      if (ok) { p.resolve(payload); continue; }
      const e = payload;
      const error = new Error(e.message);
      error.name = "ToolError";
      error.code = e.code;
      p.reject(error);
    }
    return true;
  };
})()
"#;

/// What the primitives share with the runner.
#[derive(Default)]
struct State {
    console: String,
    started: u32,
    max_calls: u32,
    refused: bool,
    /// A TypeScript program's stripped form, whose places errors map back.
    stripped: Option<typescript::Stripped>,
}

struct Runner;

/// What a program is wrapped in, before it: the body of an async function
/// called at once, on the program's first line.
const WRAPPER_OPENING: &str = "(async () => {";

impl Guest for Runner {
    fn run(source: String, tools: Vec<String>, limits: Limits) -> Result<RunOutput, RunError> {
        let state = Rc::new(RefCell::new(State {
            max_calls: limits.max_tool_calls,
            ..State::default()
        }));
        let fail = |failure: Failure, message: String, state: &Rc<RefCell<State>>| {
            let s = state.borrow();
            RunError {
                failure,
                message,
                console: s.console.clone(),
                tool_calls: s.started,
            }
        };
        let runtime = Runtime::new().map_err(|e| {
            fail(
                Failure::OutOfMemory,
                format!("no JavaScript runtime: {e}"),
                &state,
            )
        })?;
        runtime.set_memory_limit(limits.max_heap_bytes as usize);
        runtime.set_max_stack_size(limits.max_stack_bytes as usize);
        let context = Context::full(&runtime).map_err(|e| {
            fail(
                Failure::OutOfMemory,
                format!("no JavaScript context: {e}"),
                &state,
            )
        })?;
        let outcome = context.with(|ctx| run_in(&ctx, &source, &tools, &state));
        let s = state.borrow();
        match outcome {
            Ok(value) => {
                let size = value.len() + s.console.len();
                if size > limits.max_output_bytes as usize {
                    return Err(RunError {
                        failure: Failure::OutputTooLarge,
                        message: format!(
                            "the program's result and console output take {size} bytes; at most \
                             {} are taken (return less: filter, count or summarize)",
                            limits.max_output_bytes
                        ),
                        console: cut(&s.console, limits.max_output_bytes as usize),
                        tool_calls: s.started,
                    });
                }
                Ok(RunOutput {
                    value,
                    console: s.console.clone(),
                    tool_calls: s.started,
                })
            }
            Err((failure, message)) => Err(RunError {
                failure,
                message,
                console: cut(&s.console, limits.max_output_bytes as usize),
                tool_calls: s.started,
            }),
        }
    }
}

/// `text` cut to at most `max` bytes, on a character boundary.
fn cut(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

/// Run the program in `ctx`: its result as JSON, or why it failed.
fn run_in<'js>(
    ctx: &Ctx<'js>,
    source: &str,
    tools: &[String],
    state: &Rc<RefCell<State>>,
) -> Result<String, (Failure, String)> {
    let internal = |e: rquickjs::Error| (Failure::Exception, format!("the runner failed: {e}"));
    let globals = ctx.globals();
    let printer = state.clone();
    globals
        .set(
            "__tack_print",
            Function::new(ctx.clone(), move |line: String| {
                let mut s = printer.borrow_mut();
                s.console.push_str(&line);
                s.console.push('\n');
            })
            .map_err(internal)?,
        )
        .map_err(internal)?;
    let starter = state.clone();
    globals
        .set(
            "__tack_start",
            Function::new(
                ctx.clone(),
                move |ctx: Ctx<'js>, name: String, arguments: String| -> rquickjs::Result<u32> {
                    let mut s = starter.borrow_mut();
                    if s.started >= s.max_calls {
                        s.refused = true;
                        return Err(Exception::throw_range(
                            &ctx,
                            &format!("this program may start at most {} tool calls", s.max_calls),
                        ));
                    }
                    s.started += 1;
                    Ok(start_call(&name, &arguments))
                },
            )
            .map_err(internal)?,
        )
        .map_err(internal)?;
    globals
        .set(
            "__tack_await",
            Function::new(ctx.clone(), |calls: Vec<u32>| -> String {
                let ended: Vec<serde_json::Value> = await_calls(&calls)
                    .into_iter()
                    .map(|ended| match ended.outcome {
                        Ok(parts) => serde_json::json!([ended.call, true, value_of(parts)]),
                        Err(e) => serde_json::json!([ended.call, false, {
                            "code": code_name(e.code),
                            "message": e.message,
                        }]),
                    })
                    .collect();
                serde_json::Value::Array(ended).to_string()
            })
            .map_err(internal)?,
        )
        .map_err(internal)?;
    globals
        .set("__tack_names", tools.to_vec())
        .map_err(internal)?;
    let pump: Function = ctx.eval(PRELUDE).map_err(|_| caught(ctx, state))?;
    // The program's first line stays line 1 of what QuickJS sees.
    let wrapped = format!("{WRAPPER_OPENING}{source}\n}})()");
    let result: Promise = match ctx.eval(wrapped.as_str()) {
        Ok(promise) => promise,
        Err(_) => {
            let (failure, message) = caught(ctx, state);
            if !message.starts_with("SyntaxError") {
                return Err((failure, message));
            }
            // Not JavaScript: TypeScript, once its types are stripped?
            let stripped = typescript::strip(&wrapped).map_err(|e| (Failure::Syntax, e))?;
            let code = stripped.code.clone();
            state.borrow_mut().stripped = Some(stripped);
            ctx.eval(code).map_err(|_| {
                let (failure, message) = caught(ctx, state);
                if message.starts_with("SyntaxError") {
                    (Failure::Syntax, message)
                } else {
                    (failure, message)
                }
            })?
        }
    };
    loop {
        // Within `Context::with` the runtime is borrowed: jobs run
        // through the context (a job's exception rejects its promise).
        while ctx.execute_pending_job() {}
        match result.state() {
            PromiseState::Resolved => {
                let value: Value = result
                    .result::<Value>()
                    .expect("settled")
                    .map_err(|_| caught(ctx, state))?;
                let json = ctx
                    .json_stringify(value)
                    .map_err(|_| caught(ctx, state))?
                    .map(|s| s.to_string())
                    .transpose()
                    .map_err(internal)?;
                return Ok(json.unwrap_or_else(|| "null".into()));
            }
            PromiseState::Rejected => {
                let _ = result.result::<Value>();
                return Err(caught(ctx, state));
            }
            PromiseState::Pending => {
                let waited: bool = pump.call(()).map_err(|_| caught(ctx, state))?;
                if !waited {
                    return Err((
                        Failure::NeverSettles,
                        "the program awaits something that never settles (only tool calls \
                         settle; there are no timers)"
                            .into(),
                    ));
                }
            }
        }
    }
}

/// The pending exception, as a failure and a message with its line.
fn caught(ctx: &Ctx<'_>, state: &Rc<RefCell<State>>) -> (Failure, String) {
    let value = ctx.catch();
    if state.borrow().refused {
        let message = describe(&value);
        return (Failure::TooManyCalls, message);
    }
    let mut message = describe(&value);
    if let Some(stripped) = &state.borrow().stripped {
        message = stripped.map_places(&message);
    }
    let failure = if message.contains("out of memory") || message.contains("stack overflow") {
        Failure::OutOfMemory
    } else {
        Failure::Exception
    };
    (failure, message)
}

/// An exception as `Name: message` with the place it was thrown.
fn describe(value: &Value<'_>) -> String {
    if let Some(object) = value.as_object() {
        let get = |key: &str| object.get::<_, Option<String>>(key).ok().flatten();
        if let Some(message) = get("message") {
            let name = get("name").unwrap_or_else(|| "Error".into());
            let mut out = format!("{name}: {message}");
            if let Some(code) = get("code") {
                out.push_str(&format!(" (code {code})"));
            }
            if let Some(place) = get("stack").and_then(|s| {
                s.lines()
                    .map(str::trim)
                    .find(|l| l.contains("<eval>"))
                    .map(String::from)
            }) {
                out.push_str(&format!(" {place}"));
            }
            return out;
        }
    }
    match value.as_string().and_then(|s| s.to_string().ok()) {
        Some(s) => format!("uncaught: {s}"),
        None => format!("uncaught {}", value.type_name()),
    }
}

/// A tool's result parts as one value: a single part is itself (JSON
/// parsed), several are an array.
fn value_of(parts: Vec<Content>) -> serde_json::Value {
    let mut values: Vec<serde_json::Value> = parts
        .into_iter()
        .map(|p| match p {
            Content::Text(t) => serde_json::Value::String(t),
            Content::Json(j) => serde_json::from_str(&j).unwrap_or(serde_json::Value::String(j)),
        })
        .collect();
    match values.len() {
        0 => serde_json::Value::Null,
        1 => values.remove(0),
        _ => serde_json::Value::Array(values),
    }
}

fn code_name(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::InvalidArguments => "invalid_arguments",
        ErrorCode::NotFound => "not_found",
        ErrorCode::PermissionDenied => "permission_denied",
        ErrorCode::Conflict => "conflict",
        ErrorCode::Unavailable => "unavailable",
        ErrorCode::Timeout => "timeout",
        ErrorCode::Internal => "internal",
    }
}

export!(Runner);
