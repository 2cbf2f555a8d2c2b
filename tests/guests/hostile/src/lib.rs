//! A tool component that misbehaves on purpose, one tool per attack.
//!
//! Used only by `tests/tests/hostile.rs`. Every tool either returns what it
//! managed to do (so a test can assert it managed nothing) or is stopped by a
//! sandbox limit.

use serde::Deserialize;
use std::cell::Cell;
use tack_sdk::{Annotations, CallContext, JsonSchema, ToolError, Toolbox};

#[derive(Deserialize, JsonSchema)]
struct Nothing {}

#[derive(Deserialize, JsonSchema)]
struct Size {
    /// Megabytes.
    mb: usize,
}

#[derive(Deserialize, JsonSchema)]
struct PathArg {
    path: String,
}

#[derive(Deserialize, JsonSchema)]
struct WriteArg {
    path: String,
    content: String,
}

#[derive(Deserialize, JsonSchema)]
struct UrlArg {
    url: String,
}

#[derive(Deserialize, JsonSchema)]
struct Message {
    message: String,
}

#[derive(Deserialize, JsonSchema)]
struct Value {
    value: serde_json::Value,
}

fn spin(_: Nothing, _: &CallContext) -> Result<u64, ToolError> {
    let mut i: u64 = 0;
    loop {
        i = std::hint::black_box(i.wrapping_add(1));
    }
}

fn membomb(a: Size, _: &CallContext) -> Result<usize, ToolError> {
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    for _ in 0..a.mb {
        let mut b = vec![0u8; 1 << 20];
        b[0] = 1;
        blocks.push(std::hint::black_box(b));
    }
    Ok(blocks.len())
}

#[allow(unconditional_recursion)] // the point of the tool
fn depth(n: u64) -> u64 {
    let pad = std::hint::black_box([n; 16]);
    depth(pad[3] + 1) + pad[7]
}

fn recurse(_: Nothing, _: &CallContext) -> Result<u64, ToolError> {
    Ok(depth(0))
}

fn read_file(a: PathArg, _: &CallContext) -> Result<String, ToolError> {
    std::fs::read_to_string(&a.path).map_err(|e| ToolError::io(&a.path, e))
}

fn write_file(a: WriteArg, _: &CallContext) -> Result<String, ToolError> {
    std::fs::write(&a.path, a.content).map_err(|e| ToolError::io(&a.path, e))?;
    Ok("written".into())
}

fn env(_: Nothing, _: &CallContext) -> Result<Vec<(String, String)>, ToolError> {
    Ok(std::env::vars().collect())
}

fn http_get(a: UrlArg, _: &CallContext) -> Result<u16, ToolError> {
    let req = tack_sdk::http::Request {
        method: "GET".into(),
        url: a.url,
        headers: Vec::new(),
        body: Vec::new(),
        timeout_ms: Some(5_000),
    };
    tack_sdk::http::send(&req, 1024)
        .map(|r| r.status)
        .map_err(|e| ToolError::permission_denied(e.to_string()))
}

fn flood_output(a: Size, _: &CallContext) -> Result<String, ToolError> {
    Ok("x".repeat(a.mb << 20))
}

fn flood_stdout(a: Size, _: &CallContext) -> Result<String, ToolError> {
    use std::io::Write;
    let chunk = vec![b'y'; 1 << 16];
    let mut out = std::io::stdout();
    for _ in 0..(a.mb * 16) {
        let _ = out.write_all(&chunk);
    }
    Ok("flooded".into())
}

fn flood_logs(_: Nothing, _: &CallContext) -> Result<String, ToolError> {
    for i in 0..10_000 {
        tack_sdk::log::info(&format!("log line {i} {}", "z".repeat(10_000)));
    }
    Ok("logged".into())
}

fn panic(a: Message, _: &CallContext) -> Result<String, ToolError> {
    panic!("{}", a.message)
}

fn echo(a: Value, _: &CallContext) -> Result<serde_json::Value, ToolError> {
    Ok(a.value)
}

thread_local! {
    static CALLS: Cell<u64> = const { Cell::new(0) };
}

/// Counts calls in a global: a fresh instance per call must always answer 1.
fn count(_: Nothing, _: &CallContext) -> Result<u64, ToolError> {
    CALLS.with(|c| {
        c.set(c.get() + 1);
        Ok(c.get())
    })
}

fn wall_clock(_: Nothing, _: &CallContext) -> Result<u64, ToolError> {
    Ok(std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0))
}

fn tools() -> Toolbox {
    let a = Annotations::additive();
    Toolbox::new()
        .tool("spin", "Loop forever.", a, spin)
        .tool("membomb", "Allocate `mb` megabytes.", a, membomb)
        .tool("recurse", "Recurse without end.", a, recurse)
        .tool("read_file", "Read any path.", a, read_file)
        .tool("write_file", "Write any path.", a, write_file)
        .tool("env", "Dump the environment.", a, env)
        .tool("http_get", "GET any URL.", a, http_get)
        .tool("flood_output", "Return `mb` megabytes.", a, flood_output)
        .tool(
            "flood_stdout",
            "Print `mb` megabytes to stdout.",
            a,
            flood_stdout,
        )
        .tool("flood_logs", "Log 100 MB.", a, flood_logs)
        .tool("panic", "Panic with a message.", a, panic)
        .tool("echo", "Return the value.", Annotations::read_only(), echo)
        .tool("count", "Count calls in a global.", a, count)
        .tool("wall_clock", "Read the wall clock.", a, wall_clock)
}

tack_sdk::export_tools!(tools());
tack_sdk::manifest!("tack.toml");
