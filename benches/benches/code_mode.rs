//! Code mode beside its anchors.
//!
//! Run with `cargo bench -p tack-benches --bench code_mode`, pinned to one
//! core. Three measurements, p50 and p99 of 2,000 runs each (after 200 to
//! warm up):
//!
//! - **snippet + two tool calls**: a fresh code-runner sandbox runs a program
//!   that calls two tools at once (`Promise.all`) and returns their results;
//!   each tool call is itself a fresh sandbox of the `echo` test component.
//! - **trivial snippet**: a fresh code-runner sandbox running `return 1`.
//! - **two direct tool calls**: the same two `echo` calls, one after the
//!   other, without code mode (what a runtime without it pays for the tools
//!   alone, before any model round trip).
//!
//! Anchors (published): Cloudflare Workers isolates ~5 ms, E2B 440 ms median
//! to create a sandbox, Hyperlight 1-2 ms. Goal: ≤ 1 ms p50 for a fresh
//! sandbox, a snippet and two tool calls on this 2-core machine.
//!
//! Then the tokens the model reads: `examples/order-audit` (which of 500
//! orders over $100 were refunded twice?) run through the engine against
//! its scripted model, in code mode and tool by tool, with the input tokens
//! of each whole run (estimated by the scripted model at four bytes a token
//! of each request tack sent it).

use futures_util::future::BoxFuture;
use std::sync::Arc;
use std::time::Instant;
use tack_benches::{percentile, pin_to_one_core};
use tack_runtime::{
    CallContext, CodeLimits, CodeTools, Content, ErrorCode, Grant, Sandbox, ToolError,
};
use tack_tests::{guest, runtime};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const RUNS: usize = 2_000;
const WARM_UP: usize = 200;

/// Each call a fresh `echo` sandbox.
struct Echo(Sandbox);

impl CodeTools for Echo {
    fn call(
        &self,
        _name: String,
        arguments: String,
    ) -> BoxFuture<'static, Result<Vec<Content>, ToolError>> {
        let sandbox = self.0.clone();
        Box::pin(async move {
            let ctx = CallContext::default();
            match sandbox.call("echo", &arguments, &ctx).await {
                Ok(o) => o.result,
                Err(e) => Err(ToolError {
                    code: ErrorCode::Internal,
                    message: e.to_string(),
                    field: None,
                    retryable: false,
                }),
            }
        })
    }
}

fn report(what: &str, mut samples: Vec<f64>) -> (f64, f64) {
    samples.sort_by(f64::total_cmp);
    let (p50, p99) = (percentile(&samples, 0.5), percentile(&samples, 0.99));
    println!("{what:<32} p50 {p50:>8.3} ms   p99 {p99:>8.3} ms");
    (p50, p99)
}

fn main() {
    pin_to_one_core();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    rt.block_on(async {
        let runtime = runtime();
        let runner = runtime
            .load_code_runner(&std::fs::read(guest("tack_plugin_code_js")).expect("the runner"))
            .expect("the runner loads");
        let echo = runtime
            .load(&std::fs::read(guest("tack_guest_echo")).expect("echo"))
            .expect("echo loads")
            .sandbox(&Grant::default())
            .expect("a sandbox");
        let host: Arc<dyn CodeTools> = Arc::new(Echo(echo.clone()));
        let names = vec!["echo.first".to_string(), "echo.second".to_string()];
        let limits = CodeLimits::default();
        let two_calls = r#"
            const [a, b] = await Promise.all([
              tools.echo.first({ value: { n: 1 } }),
              tools.echo.second({ value: { n: 2 } }),
            ]);
            return [a, b];
        "#;

        let mut snippet = Vec::new();
        let mut trivial = Vec::new();
        let mut direct = Vec::new();
        for i in 0..RUNS + WARM_UP {
            let t = Instant::now();
            let out = runner
                .run(two_calls, &names, host.clone(), &limits)
                .await
                .expect("the sandbox ran")
                .expect("the program ran");
            let s = t.elapsed().as_secs_f64() * 1e3;
            assert_eq!(out.value, r#"[{"n":1},{"n":2}]"#);

            let t = Instant::now();
            runner
                .run("return 1;", &[], host.clone(), &limits)
                .await
                .expect("the sandbox ran")
                .expect("the program ran");
            let tr = t.elapsed().as_secs_f64() * 1e3;

            let t = Instant::now();
            let ctx = CallContext::default();
            for n in 1..=2 {
                echo.call("echo", &format!(r#"{{"value": {{"n": {n}}}}}"#), &ctx)
                    .await
                    .expect("echo ran")
                    .result
                    .expect("echo answered");
            }
            let d = t.elapsed().as_secs_f64() * 1e3;
            if i >= WARM_UP {
                snippet.push(s);
                trivial.push(tr);
                direct.push(d);
            }
        }
        println!("code mode, one core, {RUNS} runs each (fresh sandboxes throughout)");
        let (p50, _) = report("snippet + two tool calls", snippet);
        report("trivial snippet", trivial);
        report("two direct tool calls", direct);
        println!(
            "anchors: Cloudflare isolate ~5 ms; E2B sandbox create 440 ms (median); \
             Hyperlight 1-2 ms"
        );
        println!(
            "goal: snippet + two tool calls p50 <= 1 ms: {}",
            if p50 <= 1.0 { "met" } else { "not met" }
        );
        order_audit_tokens().await;
    });
}

/// The order-audit example in code mode and tool by tool: the input tokens
/// of each run, printed side by side.
async fn order_audit_tokens() {
    use tack_engine::{Engine, EngineConfig, EventData, LocalSource, Principal, Role};
    let example = tack_tests::workspace_root().join("examples/order-audit");
    let read = |f: &str| std::fs::read_to_string(example.join(f)).expect("the example");
    let script = tack_scripted_model::Script::from_yaml(&read("demo-model.yaml")).expect("script");
    let model = tack_scripted_model::ScriptedModel::start(script)
        .await
        .expect("the scripted model");
    let dir = tempfile::tempdir().expect("a temp dir");
    let text = format!(
        "default-registry = \"localhost:5050\"\n[models.demo-audit]\n\
         adapter = \"tack/openai-chat@0.1.0\"\nendpoint = \"{}\"\n",
        model.base_url()
    );
    let host =
        tack_config::HostConfig::from_toml(&text, &dir.path().join("tack.toml")).expect("config");
    let store = tack_store::Store::open(&format!(
        "sqlite://{}",
        dir.path().join("tack.db").display()
    ))
    .await
    .expect("store");
    let engine = Engine::new(EngineConfig {
        host,
        runtime: runtime(),
        store,
        secrets: None,
        components: Arc::new(
            LocalSource::new()
                .component("tack/shop@0.1.0", guest("tack_plugin_shop"))
                .component("tack/code-js@0.1.0", guest("tack_plugin_code_js"))
                .component("tack/openai-chat@0.1.0", guest("tack_plugin_openai_chat")),
        ),
        tool_servers: None,
        retry: tack_engine::RetryPolicy::default(),
        clock: Arc::new(tack_engine::SystemClock),
    });
    let question = "Which of these 500 orders over $100 were refunded twice?";
    println!("\nthe model's input tokens for: {question}");
    let mut figures = Vec::new();
    for (what, file) in [
        ("tool by tool", "agent-tool-by-tool.yaml"),
        ("code mode", "agent.yaml"),
    ] {
        let builder = Principal::new("bench", Role::Builder);
        let agent = engine
            .register_agent(&read(file), &builder)
            .await
            .expect("the agent");
        let user = Principal::new("bench", Role::User);
        let s = engine
            .create_session(&agent.name, question, &user)
            .await
            .expect("a session");
        let (calls, tokens) = loop {
            let events = engine.events(&s.id, 0, 1000).await.expect("events");
            let finished = events.iter().find_map(|e| match &e.data {
                EventData::RunFinished {
                    steps,
                    input_tokens,
                    ..
                } => Some((*steps, *input_tokens)),
                _ => None,
            });
            if let Some(f) = finished {
                break f;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        };
        println!("{what:<32} {tokens:>8} input tokens over {calls} model calls");
        figures.push(tokens);
    }
    let (direct, code) = (figures[0] as f64, figures[1] as f64);
    println!(
        "code mode reads {:.0}% fewer (anchors, published: Cloudflare's API in 1,069 tokens \
         for 2,594 endpoints; a Drive-to-Salesforce flow 150,000 -> 2,000 tokens)",
        100.0 * (direct - code) / direct
    );
}
