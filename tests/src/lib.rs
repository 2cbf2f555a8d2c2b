//! Helpers shared by tack's integration tests: the guest components built once per
//! test run, a shared compiled-code cache, and a real HTTP server on loopback.

pub mod registries;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use tack_runtime::{
    CallContext, CallError, CallOutcome, CodeCache, Content, Runtime, RuntimeConfig, Sandbox,
    ToolError,
};

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// Path of the built guest component `name` (crate name, e.g. `tack_plugin_jq`).
///
/// Guests are built by `scripts/build-guests` once per test process, unless
/// `TACK_GUESTS_PREBUILT=1` says the test command already built them.
pub fn guest(name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        if std::env::var_os("TACK_GUESTS_PREBUILT").is_some() {
            return;
        }
        let script = workspace_root().join("scripts/build-guests");
        let out = Command::new(&script)
            .output()
            .expect("run scripts/build-guests");
        assert!(
            out.status.success(),
            "building guest components failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
    let path = workspace_root()
        .join("target/wasm32-wasip2/release")
        .join(format!("{}.wasm", name.replace('-', "_")));
    assert!(
        path.exists(),
        "guest component {} is missing; run scripts/build-guests",
        path.display()
    );
    path
}

/// A compiled-code cache shared by all test processes (compile each guest once per run).
pub fn test_cache() -> CodeCache {
    CodeCache::new(workspace_root().join("target/tack-test-cache"))
}

/// A runtime with the shared test cache and otherwise default settings.
pub fn runtime() -> Runtime {
    runtime_with(RuntimeConfig::default())
}

/// A runtime with the shared test cache and the given settings.
pub fn runtime_with(config: RuntimeConfig) -> Runtime {
    Runtime::new(RuntimeConfig {
        cache: test_cache(),
        ..config
    })
    .expect("runtime starts")
}

/// A tokio runtime with one worker thread, as a host on one core has (for the
/// benchmarks and profiling programs).
pub fn one_worker_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// A real HTTP/1.1 server on 127.0.0.1 answering every request with
/// `hello from <METHOD> <path>` (plus ` (<n> bytes)` when a body came), counting the
/// requests it served and the connections it accepted.
pub struct LoopbackServer {
    /// Address it listens on.
    pub addr: SocketAddr,
    hits: Arc<AtomicUsize>,
    connections: Arc<AtomicUsize>,
    hang_up: Arc<tokio::sync::Notify>,
}

impl LoopbackServer {
    /// Start the server on an ephemeral port (inside a tokio runtime).
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let hits = Arc::new(AtomicUsize::new(0));
        let connections = Arc::new(AtomicUsize::new(0));
        let hang_up = Arc::new(tokio::sync::Notify::new());
        let counter = hits.clone();
        let accepted = connections.clone();
        let hang_up_all = hang_up.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    break;
                };
                accepted.fetch_add(1, Ordering::SeqCst);
                let hang_up = hang_up_all.clone();
                let counter = counter.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<Incoming>| {
                        counter.fetch_add(1, Ordering::SeqCst);
                        async move {
                            let (parts, body) = req.into_parts();
                            let received = body
                                .collect()
                                .await
                                .map(|b| b.to_bytes().len())
                                .unwrap_or(0);
                            let mut body =
                                format!("hello from {} {}", parts.method, parts.uri.path());
                            if received > 0 {
                                body.push_str(&format!(" ({received} bytes)"));
                            }
                            Ok::<_, Infallible>(
                                Response::builder()
                                    .header("x-served-by", "tack-tests")
                                    .body(Full::new(Bytes::from(body)))
                                    .expect("response builds"),
                            )
                        }
                    });
                    let serve =
                        http1::Builder::new().serve_connection(TokioIo::new(stream), service);
                    tokio::select! {
                        _ = serve => {}
                        _ = hang_up.notified() => {}
                    }
                });
            }
        });
        LoopbackServer {
            addr,
            hits,
            connections,
            hang_up,
        }
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// Close every open connection (as a server's idle timeout would).
    pub fn hang_up(&self) {
        self.hang_up.notify_waiters();
    }

    /// Requests served so far.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// Call `tool` with `args` and a default call context.
pub async fn call(
    sandbox: &Sandbox,
    tool: &str,
    args: serde_json::Value,
) -> Result<CallOutcome, CallError> {
    sandbox
        .call(tool, &args.to_string(), &CallContext::default())
        .await
}

/// The JSON items of a successful outcome; panics on a tool error or text content.
pub fn json_results(out: &CallOutcome) -> Vec<serde_json::Value> {
    match &out.result {
        Ok(items) => items
            .iter()
            .map(|c| match c {
                Content::Json(v) => v.clone(),
                Content::Text(t) => panic!("unexpected text content {t}"),
            })
            .collect(),
        Err(e) => panic!("expected success, got tool error {e}"),
    }
}

/// The single JSON item of a successful outcome.
pub fn one_json(out: &CallOutcome) -> serde_json::Value {
    let mut items = json_results(out);
    assert_eq!(items.len(), 1, "expected one item: {items:?}");
    items.remove(0)
}

/// The tool error of an outcome; panics on success.
pub fn tool_error(out: &CallOutcome) -> &ToolError {
    match &out.result {
        Err(e) => e,
        Ok(items) => panic!("expected a tool error, got {items:?}"),
    }
}
