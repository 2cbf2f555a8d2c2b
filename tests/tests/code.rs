//! The code-mode runner (`plugins/code-js`, QuickJS-ng in a component) with
//! tools the test plays: calls in `Promise.all` in flight together (counted
//! in the tool, not timed), results and console output, tool errors as
//! exceptions, and hostile programs, each failing its own way while the
//! next program runs clean.

use futures_util::future::BoxFuture;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tack_runtime::{
    CodeError, CodeFailure, CodeLimits, CodeOutput, CodeRunner, CodeTools, Content, ErrorCode,
    ToolError,
};
use tack_tests::{guest, runtime};

/// Tools for the programs: `orders.list` returns orders, `orders.slow`
/// waits until three calls of it are in flight at once, `orders.fail`
/// fails with `not_found`. Every call is recorded.
#[derive(Default)]
struct Tools {
    calls: Mutex<Vec<(String, Value)>>,
    in_flight: AtomicUsize,
    most_in_flight: AtomicUsize,
    all_in: tokio::sync::Notify,
}

/// The host side handed to the runner: shares the test's [`Tools`].
struct Host(Arc<Tools>);

impl CodeTools for Host {
    fn call(
        &self,
        name: String,
        arguments: String,
    ) -> BoxFuture<'static, Result<Vec<Content>, ToolError>> {
        let tools = self.0.clone();
        Box::pin(async move {
            let args: Value = serde_json::from_str(&arguments).unwrap();
            tools
                .calls
                .lock()
                .unwrap()
                .push((name.clone(), args.clone()));
            match name.as_str() {
                "orders.list" => Ok(vec![Content::Json(json!([
                    {"id": 1, "total": 50}, {"id": 2, "total": 150}, {"id": 3, "total": 250}
                ]))]),
                "orders.slow" => {
                    let now = tools.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                    tools.most_in_flight.fetch_max(now, Ordering::SeqCst);
                    if now >= 3 {
                        tools.all_in.notify_waiters();
                    } else {
                        // Wait for the others: a runner that ran calls one
                        // at a time would never get here (the test's
                        // timeout then fails it).
                        let notified = tools.all_in.notified();
                        if tools.in_flight.load(Ordering::SeqCst) < 3 {
                            notified.await;
                        }
                    }
                    Ok(vec![Content::Text(format!("slow {}", args["n"]))])
                }
                "orders.fail" => Err(ToolError {
                    code: ErrorCode::NotFound,
                    message: "no order 9".into(),
                    field: None,
                    retryable: false,
                }),
                other => Err(ToolError {
                    code: ErrorCode::NotFound,
                    message: format!("no tool {other}"),
                    field: None,
                    retryable: false,
                }),
            }
        })
    }
}

fn names() -> Vec<String> {
    ["orders.list", "orders.slow", "orders.fail"]
        .map(String::from)
        .to_vec()
}

async fn runner() -> CodeRunner {
    let bytes = std::fs::read(guest("tack_plugin_code_js")).unwrap();
    runtime()
        .load_code_runner(&bytes)
        .expect("the runner loads")
}

async fn run(
    runner: &CodeRunner,
    source: &str,
    limits: &CodeLimits,
) -> (Result<CodeOutput, CodeError>, Arc<Tools>) {
    let tools = Arc::new(Tools::default());
    let host: Arc<dyn CodeTools> = Arc::new(Host(tools.clone()));
    let outcome = tokio::time::timeout(
        Duration::from_secs(120),
        runner.run(source, &names(), host, limits),
    )
    .await
    .expect("the program ended")
    .expect("the sandbox ran");
    (outcome, tools)
}

fn failure(outcome: Result<CodeOutput, CodeError>) -> CodeError {
    outcome.expect_err("the program fails")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_program_calls_tools_filters_their_results_and_prints() {
    let runner = runner().await;
    let limits = CodeLimits::default();
    let source = r#"
        const orders = await tools.orders.list({ since: "2026-01-01" });
        const big = orders.filter(o => o.total > 100).map(o => o.id);
        console.log("big orders:", big.length, { ids: big });
        return { big };
    "#;
    let (out, tools) = run(&runner, source, &limits).await;
    let out = out.unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&out.value).unwrap(),
        json!({"big": [2, 3]})
    );
    assert_eq!(out.console, "big orders: 2 {\"ids\":[2,3]}\n");
    assert_eq!(out.tool_calls, 1);
    assert_eq!(
        *tools.calls.lock().unwrap(),
        [("orders.list".to_string(), json!({"since": "2026-01-01"}))]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn calls_in_promise_all_are_in_flight_together() {
    let runner = runner().await;
    let source = r#"
        return await Promise.all([1, 2, 3].map(n => tools.orders.slow({ n })));
    "#;
    let (out, tools) = run(&runner, source, &CodeLimits::default()).await;
    let out = out.unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&out.value).unwrap(),
        json!(["slow 1", "slow 2", "slow 3"])
    );
    assert_eq!(tools.most_in_flight.load(Ordering::SeqCst), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tool_error_is_an_exception_with_its_code() {
    let runner = runner().await;
    let caught = r#"
        try { await tools.orders.fail({ id: 9 }); }
        catch (e) { return { name: e.name, code: e.code, message: e.message }; }
    "#;
    let (out, _) = run(&runner, caught, &CodeLimits::default()).await;
    assert_eq!(
        serde_json::from_str::<Value>(&out.unwrap().value).unwrap(),
        json!({"name": "ToolError", "code": "not_found", "message": "no order 9"})
    );
    let (out, _) = run(
        &runner,
        "console.log('before');\nawait tools.orders.fail({});",
        &CodeLimits::default(),
    )
    .await;
    let e = failure(out);
    assert_eq!(e.failure, CodeFailure::Exception, "{e:?}");
    assert!(
        e.message.contains("ToolError: no order 9 (code not_found)"),
        "{e:?}"
    );
    assert_eq!(e.console, "before\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_programs_each_fail_their_own_way_and_the_next_runs_clean() {
    let runner = runner().await;
    let limits = CodeLimits {
        timeout: Duration::from_secs(2),
        ..CodeLimits::default()
    };
    let cases: &[(&str, &str, CodeFailure, &str)] = &[
        ("syntax", "return {;", CodeFailure::Syntax, "SyntaxError"),
        (
            "infinite loop",
            "while (true) {}",
            CodeFailure::Timeout,
            "computed for longer",
        ),
        (
            "memory bomb",
            "const a = []; while (true) a.push('x'.repeat(1 << 20));",
            CodeFailure::OutOfMemory,
            "",
        ),
        (
            "deep recursion",
            "const f = n => f(n + 1) + 1; return f(0);",
            CodeFailure::OutOfMemory,
            "stack overflow",
        ),
        (
            "a 10 MB result",
            "return 'x'.repeat(10 * 1024 * 1024);",
            CodeFailure::OutputTooLarge,
            "at most 65536",
        ),
        (
            "1,000 tool calls",
            "const all = []; for (let i = 0; i < 1000; i++) all.push(tools.orders.list({})); return (await Promise.all(all)).length;",
            CodeFailure::TooManyCalls,
            "at most 100 tool calls",
        ),
        (
            "a tool it lacks",
            "return await tools.payments.issue_refund({ amount: 1 });",
            CodeFailure::Exception,
            "TypeError",
        ),
        (
            "a promise that never settles",
            "await new Promise(() => {}); return 1;",
            CodeFailure::NeverSettles,
            "never settles",
        ),
    ];
    for (what, source, expected, says) in cases {
        let (out, _) = run(&runner, source, &limits).await;
        let e = failure(out);
        assert_eq!(e.failure, *expected, "{what}: {e:?}");
        assert!(e.message.contains(says), "{what}: {e:?}");
        // The next program runs clean.
        let (out, _) = run(&runner, "return 1 + 1;", &limits).await;
        assert_eq!(out.unwrap().value, "2", "after {what}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_program_reaches_nothing_but_its_tools() {
    let runner = runner().await;
    let source = r#"
        const seen = {
            std: typeof std, os: typeof os, require: typeof require, process: typeof process,
            fetch: typeof fetch, primitives: Object.keys(globalThis).filter(k => k.startsWith("__tack")),
        };
        // The tools object cannot be changed, even through prototypes.
        try { tools.orders.list = () => "forged"; } catch {}
        try { Object.prototype.list = () => "polluted"; } catch {}
        try { tools.evil = {}; } catch {}
        const viaEval = eval("typeof tools.orders.list");
        const viaFunction = Function("return Object.keys(tools).join()")();
        const list = await tools.orders.list({});
        let imported;
        try { await import("os"); imported = "yes"; } catch (e) { imported = e.name; }
        return { seen, viaEval, viaFunction, count: list.length, evil: typeof tools.evil, imported,
                 now: Date.now() };
    "#;
    let (out, tools) = run(&runner, source, &CodeLimits::default()).await;
    let v: Value = serde_json::from_str(&out.unwrap().value).unwrap();
    assert_eq!(
        v["seen"],
        json!({"std": "undefined", "os": "undefined", "require": "undefined",
               "process": "undefined", "fetch": "undefined", "primitives": []})
    );
    assert_eq!(v["viaEval"], "function");
    assert_eq!(v["viaFunction"], "orders");
    assert_eq!(v["count"], 3, "the real tool answered: {v}");
    assert_eq!(v["evil"], "undefined");
    assert_ne!(v["imported"], "yes", "{v}");
    assert_eq!(tools.calls.lock().unwrap().len(), 1);
    // The wall clock is frozen (no clock is granted).
    let (again, _) = run(&runner, "return Date.now();", &CodeLimits::default()).await;
    assert_eq!(v["now"].to_string(), again.unwrap().value);
}

/// TypeScript: its types are stripped inside the sandbox, and an error
/// names the line of the program as written.
#[tokio::test(flavor = "multi_thread")]
async fn typescript_programs_run_and_their_errors_name_their_own_lines() {
    let runner = runner().await;
    let limits = CodeLimits::default();
    let typed = r#"
        interface Order { id: number; total: number }
        type Totals = Record<string, number>;
        enum Level { Low = 1, High = 2 }
        const orders = (await tools.orders.list({})) as Order[];
        const big = <T extends Order>(xs: T[], min: number): T[] => xs.filter((o: T) => o.total > min);
        const totals: Totals = {};
        for (const o of big(orders, 10)) totals[String(o.id)] = o.total;
        return { totals, level: Level.High };
    "#;
    let (out, _) = run(&runner, typed, &limits).await;
    let v: Value = serde_json::from_str(&out.unwrap().value).unwrap();
    assert_eq!(v["level"], 2);
    assert!(
        v["totals"].as_object().is_some_and(|t| !t.is_empty()),
        "{v}"
    );

    // Line 4 of the program throws; the stripped code's lines differ.
    let throws =
        "interface A {\n  x: number;\n}\nconst a: A = { x: 1 }; throw new Error(`boom ${a.x}`);\n";
    let e = failure(run(&runner, throws, &limits).await.0);
    assert_eq!(e.failure, CodeFailure::Exception);
    assert!(e.message.starts_with("Error: boom 1"), "{e:?}");
    assert!(e.message.contains(":4:"), "the program's own line 4: {e:?}");

    // Neither JavaScript nor TypeScript: the error has the line and column.
    let broken = "const a: number = 1;\nconst b: = 2;\n";
    let e = failure(run(&runner, broken, &limits).await.0);
    assert_eq!(e.failure, CodeFailure::Syntax);
    assert!(e.message.contains("(line 2, column 10)"), "{e:?}");
    let e = failure(run(&runner, "const x: number = ;", &limits).await.0);
    assert!(e.message.contains("(line 1, column 19)"), "{e:?}");
}
