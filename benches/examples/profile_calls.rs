//! Run `echo` calls in a loop for a few seconds, for profiling the call path:
//!
//! ```sh
//! cargo build --release -p tack-benches --example profile_calls
//! perf record -g target/release/examples/profile_calls && perf report
//! ```

use std::time::{Duration, Instant};
use tack_capability::Grant;
use tack_runtime::{CallContext, Runtime, RuntimeConfig};

/// How long to keep calling.
const RUN_FOR: Duration = Duration::from_secs(3);

fn main() {
    let echo = tack_tests::guest("tack_guest_echo");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio");
    rt.block_on(async {
        let runtime = Runtime::new(RuntimeConfig {
            cache: tack_tests::test_cache(),
            ..RuntimeConfig::default()
        })
        .expect("runtime");
        let plugin = runtime.load_file(&echo).expect("echo loads");
        let sandbox = plugin.sandbox(&Grant::default()).expect("sandbox");
        let ctx = CallContext {
            call_id: "profile".into(),
            ..CallContext::default()
        };
        let args = r#"{"value": {"id": 42, "ok": true}}"#;
        let start = Instant::now();
        let mut calls = 0u32;
        while start.elapsed() < RUN_FOR {
            sandbox.call("echo", args, &ctx).await.expect("call");
            calls += 1;
        }
        println!(
            "{calls} calls, {:?} per call on average",
            start.elapsed() / calls
        );
    });
}
