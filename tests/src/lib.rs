//! Helpers shared by tack's integration tests that need the sandbox or the
//! registry: a runtime with a compiled-code cache shared by the whole run, calls
//! and their outcomes, and tack's own registry on loopback. What needs nothing
//! of tack (paths, guest builds, PostgreSQL, `docker-registry`, a loopback HTTP
//! server) is in `tack-test-support`, re-exported here.

pub mod registries;

use tack_runtime::{
    CallContext, CallError, CallOutcome, CodeCache, Content, Runtime, RuntimeConfig, Sandbox,
    ToolError,
};
pub use tack_test_support::{
    BearerProxy, LoopbackServer, OAuthServer, Sdk, guest, one_worker_runtime, peak_rss_kib,
    sdk_plugin, workspace_root,
};

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
pub use tack_test_support::node;
