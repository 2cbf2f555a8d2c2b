//! MCP through tack, beside agentgateway's published figure.
//!
//! Run with `cargo bench -p tack-benches --bench mcp`. Two measurements:
//!
//! - **`/mcp` to a Wasm tool**: the host (this process: `tack serve`'s router,
//!   engine and sandbox on one tokio worker, pinned to core 0 with `taskset`)
//!   serves a toolset holding the `echo` test component; the client is this
//!   binary again, on core 1, speaking MCP 2026-07-28 (stateless) through
//!   tack's own gateway client. Calls/s with 16 calls in flight (median of
//!   three 4-second rounds, with the range), and p50/p99 of 2,000 sequential
//!   calls. Each call is a fresh sandbox.
//! - **Gateway added latency**: an upstream MCP server on stdio (this binary
//!   again, on core 1, answering `echo` at once) called directly with rmcp
//!   through `Upstream`, and through the gateway as an agent's call goes
//!   (schema check, timeout, result mapping and size cap); the difference of
//!   the p50s and of the p99s over 5,000 sequential calls each, the two paths
//!   alternated call by call.
//!
//! Anchor: agentgateway publishes an added p99 of 0.44 ms at 3,000 QPS. Goals
//! on one core: ≥ 5,000 calls/s through `/mcp`, gateway added p99 ≤ 1 ms.

use rmcp::model::{
    CallToolRequestParams, CallToolResult, ContentBlock, ListToolsResult, PaginatedRequestParams,
    ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::{RequestContext, RoleServer};
use rmcp::{ErrorData, ServerHandler, ServiceExt};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tack_config::{HostConfig, McpServerConfig};
use tack_engine::{Engine, EngineConfig, LocalSource, RetryPolicy, ToolServers};
use tack_tests::{guest, runtime};

use tack_benches::{percentile, pin_to_one_core};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const IN_FLIGHT: usize = 16;
const ROUND: Duration = Duration::from_secs(4);
const ROUNDS: usize = 3;
const SEQUENTIAL: usize = 2_000;
const GATEWAY_CALLS: usize = 5_000;

/// This binary again, in `mode`, on core 1 when `taskset` is there.
fn on_core_1(mode: &str) -> Command {
    let exe = std::env::current_exe().expect("own path");
    let mut c = if Command::new("taskset").arg("-V").output().is_ok() {
        let mut c = Command::new("taskset");
        c.args(["-c", "1"]).arg(exe);
        c
    } else {
        Command::new(exe)
    };
    c.arg(mode).env_remove("RUST_BACKTRACE");
    c
}

/// The upstream of the gateway measurement: `echo`, answered at once.
#[derive(Clone)]
struct EchoServer;

impl ServerHandler for EchoServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }

    async fn list_tools(
        &self,
        _: Option<PaginatedRequestParams>,
        _: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let schema = json!({"type": "object", "properties": {"value": {"type": "string"}},
            "required": ["value"]});
        let Value::Object(schema) = schema else {
            unreachable!()
        };
        Ok(ListToolsResult::with_all_items(vec![Tool::new(
            "echo",
            "Echo the value.",
            Arc::new(schema),
        )]))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _: RequestContext<RoleServer>,
    ) -> Result<rmcp::model::CallToolResponse, ErrorData> {
        let value = request
            .arguments
            .and_then(|a| a.get("value").cloned())
            .unwrap_or(Value::Null);
        Ok(CallToolResult::success(vec![ContentBlock::text(value.to_string())]).into())
    }
}

fn upstream_config(url: Option<(&str, &str)>) -> McpServerConfig {
    let text = match url {
        Some((url, token)) => format!(
            "url = \"{url}\"\nheaders = {{ Authorization = \"Bearer {token}\" }}\n\
             trust-annotations = true"
        ),
        None => {
            let exe = std::env::current_exe().unwrap();
            format!(
                "command = \"taskset\"\nargs = [\"-c\", \"1\", \"{}\", \"--upstream\"]\n\
                 read-only = [\"echo\"]",
                exe.display()
            )
        }
    };
    toml::from_str(&text).expect("an upstream configuration")
}

/// The load generator (`--client URL TOKEN`): prints
/// `calls/s min median max p50_us p99_us`.
async fn client(url: &str, token: &str) {
    let upstream = Arc::new(
        tack_mcp::Upstream::connect("bench", &upstream_config(Some((url, token))), None)
            .await
            .expect("connect to /mcp"),
    );
    let args = || json!({"value": "hello"});
    for _ in 0..200 {
        upstream.call("echo", args()).await.expect("a call");
    }
    let mut rounds = Vec::new();
    for _ in 0..ROUNDS {
        let start = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..IN_FLIGHT {
            let upstream = upstream.clone();
            tasks.push(tokio::spawn(async move {
                let mut n = 0u64;
                while start.elapsed() < ROUND {
                    let r = upstream.call("echo", json!({"value": "hello"})).await;
                    assert!(!r.expect("a call").is_error);
                    n += 1;
                }
                n
            }));
        }
        let mut calls = 0;
        for t in tasks {
            calls += t.await.unwrap();
        }
        rounds.push(calls as f64 / start.elapsed().as_secs_f64());
    }
    rounds.sort_by(f64::total_cmp);
    let mut lat = Vec::with_capacity(SEQUENTIAL);
    for _ in 0..SEQUENTIAL {
        let t = Instant::now();
        upstream.call("echo", args()).await.expect("a call");
        lat.push(t.elapsed().as_secs_f64() * 1e6);
    }
    lat.sort_by(f64::total_cmp);
    println!(
        "{} {} {} {} {}",
        rounds[0],
        rounds[ROUNDS / 2],
        rounds[ROUNDS - 1],
        percentile(&lat, 0.5),
        percentile(&lat, 0.99)
    );
}

async fn host(dir: &std::path::Path) -> (String, String) {
    let text = "default-registry = \"localhost:5050\"\n[limits]\nrequests-per-minute = 0\n\
                [toolsets.bench]\ntools = [\"tack/echo@0.1.0\"]\n";
    let host = HostConfig::from_toml(text, &PathBuf::from("/bench/tack.toml")).unwrap();
    let store = tack_store::Store::open(&format!("sqlite://{}", dir.join("tack.db").display()))
        .await
        .unwrap();
    let token = tack_server::auth::create_token(&store, "bench", tack_engine::Role::User, None)
        .await
        .unwrap();
    let engine = Engine::new(EngineConfig {
        host,
        runtime: runtime(),
        store,
        secrets: None,
        components: Arc::new(
            LocalSource::new().component("tack/echo@0.1.0", guest("tack_guest_echo")),
        ),
        tool_servers: None,
        retry: RetryPolicy::default(),
        clock: Arc::new(tack_engine::SystemClock),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = tack_server::AppState::new(engine, None);
    tokio::spawn(async move { tack_server::serve(listener, state).await });
    (format!("http://{addr}/mcp/bench"), token)
}

fn main() {
    tack_distribution::client::install_crypto();
    let args: Vec<String> = std::env::args().collect();
    match args
        .iter()
        .map(String::as_str)
        .find(|a| a.starts_with("--"))
    {
        Some("--client") => {
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.block_on(client(&args[args.len() - 2], &args[args.len() - 1]));
            return;
        }
        Some("--upstream") => {
            let rt = tack_tests::one_worker_runtime();
            rt.block_on(async {
                let running = EchoServer
                    .serve(rmcp::transport::stdio())
                    .await
                    .expect("serve on stdio");
                let _ = running.waiting().await;
            });
            return;
        }
        _ => {}
    }
    pin_to_one_core();
    let dir = tempfile::tempdir().unwrap();
    let rt = tack_tests::one_worker_runtime();
    rt.block_on(async {
        let (url, token) = host(dir.path()).await;
        let out = tokio::task::spawn_blocking(move || {
            on_core_1("--client")
                .args([&url, &token])
                .output()
                .expect("run the client")
        })
        .await
        .unwrap();
        assert!(
            out.status.success(),
            "the client failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let figures: Vec<f64> = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(|f| f.parse().unwrap())
            .collect();

        let config = upstream_config(None);
        let direct = tack_mcp::Upstream::connect("up", &config, None)
            .await
            .expect("start the upstream");
        let gateway =
            tack_mcp::Gateway::new(&[("up".to_string(), config)].into_iter().collect(), None);
        let tool = gateway.tools("up").await.expect("the upstream's tools")[0]
            .tool
            .clone();
        let ctx = tack_runtime::CallContext::default();
        let nobody: std::sync::Arc<dyn tack_mcp::Asker> =
            std::sync::Arc::new(tack_mcp::Nobody("the bench answers no questions"));
        // Alternated, call by call, so that the machine's drift weighs on both
        // paths alike.
        let (mut plain, mut via) = (Vec::new(), Vec::new());
        for i in 0..GATEWAY_CALLS + 200 {
            let args = json!({"value": "hello"});
            let t = Instant::now();
            direct.call("echo", args.clone()).await.unwrap();
            let d = t.elapsed().as_secs_f64() * 1e6;
            let t = Instant::now();
            tool.check_arguments(&args).unwrap();
            tool.call(&args, &ctx, nobody.clone()).await.unwrap();
            let g = t.elapsed().as_secs_f64() * 1e6;
            if i >= 200 {
                plain.push(d);
                via.push(g);
            }
        }
        plain.sort_by(f64::total_cmp);
        via.sort_by(f64::total_cmp);
        let (direct_p50, direct_p99) = (percentile(&plain, 0.5), percentile(&plain, 0.99));
        let (via_p50, via_p99) = (percentile(&via, 0.5), percentile(&via, 0.99));

        let pinned = std::env::var_os("TACK_BENCH_PINNED").is_some();
        println!(
            "MCP: host {} · client and upstream in their own processes on core 1",
            if pinned {
                "pinned to one core (taskset -c 0)"
            } else {
                "NOT pinned"
            }
        );
        println!(
            "  /mcp tools/call to a Wasm tool (fresh sandbox each): {:.0} calls/s \
             (range {:.0}–{:.0}; goal ≥ 5,000)",
            figures[1], figures[0], figures[2]
        );
        println!(
            "  /mcp latency, sequential: p50 {:.0} µs · p99 {:.0} µs",
            figures[3], figures[4]
        );
        println!(
            "  gateway added per call: p50 {:.0} µs · p99 {:.0} µs (direct p50 {:.0} / p99 \
             {:.0} µs, via gateway {:.0} / {:.0} µs)",
            via_p50 - direct_p50,
            via_p99 - direct_p99,
            direct_p50,
            direct_p99,
            via_p50,
            via_p99
        );
        println!("  anchor: agentgateway added p99 0.44 ms at 3,000 QPS; goal ≤ 1 ms");
    });
}
