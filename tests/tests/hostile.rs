//! The hostile plugin suite: a deliberately malicious component
//! (`tests/guests/hostile`) tries each attack; every case asserts the specific
//! error, that the host still serves, that the next normal call succeeds, and that
//! nothing outside the granted directory changed.

use serde_json::json;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tack_capability::{ByteSize, DirGrant, Grant, HumanDuration, Mode};
use tack_runtime::{
    CallError, ErrorCode, Plugin, Runtime, RuntimeConfig, Sandbox, StaticResolver, SystemResolver,
};
use tack_tests::{LoopbackServer, call, guest, one_json, runtime_with, tool_error};

const SECRET: &str = "the host's secret, never to be read by a plugin";

/// A runtime, the hostile plugin, a granted directory and a sentinel tree beside it.
struct Fixture {
    _root: tempfile::TempDir,
    data: PathBuf,
    outside: PathBuf,
    before: BTreeMap<PathBuf, String>,
    plugin: Plugin,
    runtime: Runtime,
}

impl Fixture {
    fn new() -> Self {
        Self::with_config(RuntimeConfig::default())
    }

    fn with_config(config: RuntimeConfig) -> Self {
        let root = tempfile::tempdir().expect("tempdir");
        let data = root.path().join("data");
        let outside = root.path().join("outside");
        std::fs::create_dir_all(&data).unwrap();
        std::fs::create_dir_all(outside.join("nested")).unwrap();
        std::fs::write(outside.join("secret.txt"), SECRET).unwrap();
        std::fs::write(outside.join("nested/keep.txt"), "keep").unwrap();
        std::fs::write(data.join("inside.txt"), "inside").unwrap();
        // Symlinks planted inside the grant that point out of it.
        std::os::unix::fs::symlink(outside.join("secret.txt"), data.join("link-to-secret"))
            .unwrap();
        std::os::unix::fs::symlink(&outside, data.join("link-to-outside")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", data.join("link-to-passwd")).unwrap();
        let before = snapshot(root.path(), &data);
        let runtime = runtime_with(config);
        let plugin = runtime
            .load_file(guest("tack_guest_hostile"))
            .expect("hostile guest loads");
        Fixture {
            _root: root,
            data,
            outside,
            before,
            plugin,
            runtime,
        }
    }

    /// A sandbox with the data directory granted read-write at `/data`, plus `edit`.
    fn sandbox(&self, edit: impl FnOnce(&mut Grant)) -> Sandbox {
        let mut grant = Grant {
            dirs: vec![DirGrant {
                host: self.data.clone(),
                guest: "/data".into(),
                mode: Mode::ReadWrite,
            }],
            ..Grant::default()
        };
        edit(&mut grant);
        let policy = grant
            .resolve(self.plugin.manifest(), |name| match name {
                "TACK_ALLOWED_VAR" => Some("visible".into()),
                "TACK_SECRET_VAR" | "HOME" | "PATH" => Some(SECRET.into()),
                _ => None,
            })
            .expect("grant resolves");
        self.plugin
            .sandbox_with_capabilities(policy)
            .expect("sandbox")
    }

    /// The host survived: a normal call on a fresh instance succeeds, a global in
    /// the guest starts from zero again, and nothing outside `/data` changed.
    async fn assert_survived(&self, sandbox: &Sandbox) {
        let out = call(sandbox, "echo", json!({"value": {"still": "serving"}}))
            .await
            .expect("normal call succeeds");
        assert_eq!(one_json(&out), json!({"still": "serving"}));
        let out = call(sandbox, "count", json!({}))
            .await
            .expect("count succeeds");
        assert_eq!(
            one_json(&out),
            json!(1),
            "a fresh instance starts with fresh globals"
        );
        let after = snapshot(self._root.path(), &self.data);
        assert_eq!(
            self.before, after,
            "files outside the granted directory changed"
        );
    }
}

/// Poll `cond` every 5 ms for up to 10 s; fail naming `what` if it never holds.
async fn wait_until(what: &str, cond: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Every file and symlink under `root` except inside `skip`, with its content or link target.
fn snapshot(root: &Path, skip: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            let path = e.path();
            if path == skip {
                continue;
            }
            let ft = e.file_type().unwrap();
            let value = if ft.is_symlink() {
                format!("-> {}", std::fs::read_link(&path).unwrap().display())
            } else if ft.is_dir() {
                stack.push(path.clone());
                "<dir>".into()
            } else {
                std::fs::read_to_string(&path).unwrap()
            };
            out.insert(path, value);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn infinite_loop_is_stopped_by_the_time_limit() {
    let f = Fixture::new();
    let sb = f.sandbox(|g| g.limits.timeout = Some(HumanDuration(Duration::from_millis(200))));
    let err = call(&sb, "spin", json!({})).await.unwrap_err();
    assert!(
        matches!(err, CallError::Timeout { limit } if limit == Duration::from_millis(200)),
        "{err}"
    );
    assert!(err.to_string().contains("time limit of 200ms"), "{err}");
    f.assert_survived(&sb).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn infinite_loop_is_stopped_by_fuel() {
    let f = Fixture::with_config(RuntimeConfig {
        fuel: true,
        ..RuntimeConfig::default()
    });
    let sb = f.sandbox(|g| g.limits.fuel = Some(5_000_000));
    let err = call(&sb, "spin", json!({})).await.unwrap_err();
    assert!(
        matches!(err, CallError::FuelExhausted { limit: 5_000_000 }),
        "{err}"
    );
    let out = call(&sb, "echo", json!({"value": 1})).await.unwrap();
    assert!(
        out.fuel_used
            .is_some_and(|used| used > 0 && used < 5_000_000),
        "{:?}",
        out.fuel_used
    );
    f.assert_survived(&sb).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_bomb_hits_the_memory_limit() {
    let f = Fixture::new();
    let sb = f.sandbox(|g| g.limits.memory = Some(ByteSize::mib(32)));
    let err = call(&sb, "membomb", json!({"mb": 512})).await.unwrap_err();
    assert!(
        matches!(err, CallError::MemoryLimit { limit } if limit == ByteSize::mib(32)),
        "{err}"
    );
    assert!(err.to_string().contains("memory limit of 32MiB"), "{err}");
    // Under the limit the same tool works.
    let out = call(&sb, "membomb", json!({"mb": 4})).await.unwrap();
    assert_eq!(one_json(&out), json!(4));
    f.assert_survived(&sb).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unbounded_recursion_overflows_the_stack() {
    let f = Fixture::new();
    let sb = f.sandbox(|_| {});
    let err = call(&sb, "recurse", json!({})).await.unwrap_err();
    assert!(matches!(err, CallError::StackOverflow), "{err}");
    f.assert_survived(&sb).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filesystem_escapes_are_refused() {
    let f = Fixture::new();
    let sb = f.sandbox(|_| {});

    // The grant itself works.
    let out = call(&sb, "read_file", json!({"path": "/data/inside.txt"}))
        .await
        .unwrap();
    assert_eq!(one_json(&out), json!("inside"));

    let escapes = [
        "/data/../outside/secret.txt",
        "/data/nested/../../outside/secret.txt",
        "/etc/passwd",
        "/data/link-to-secret",
        "/data/link-to-outside/secret.txt",
        "/data/link-to-passwd",
        "../outside/secret.txt",
        "secret.txt",
    ];
    for path in escapes {
        let out = call(&sb, "read_file", json!({ "path": path }))
            .await
            .unwrap();
        let err = tool_error(&out);
        assert!(
            matches!(err.code, ErrorCode::PermissionDenied | ErrorCode::NotFound),
            "{path}: unexpected error class {err}"
        );
        assert!(!err.message.contains(SECRET), "{path}: the secret leaked");
    }

    for path in [
        "/data/../outside/pwned.txt",
        "/data/link-to-outside/pwned.txt",
        "/data/link-to-secret",
        "/outside/pwned.txt",
        "/tmp/pwned.txt",
    ] {
        let out = call(
            &sb,
            "write_file",
            json!({ "path": path, "content": "pwned" }),
        )
        .await
        .unwrap();
        let err = tool_error(&out);
        assert!(
            matches!(err.code, ErrorCode::PermissionDenied | ErrorCode::NotFound),
            "{path}: unexpected error class {err}"
        );
    }
    assert!(!f.outside.join("pwned.txt").exists());
    assert_eq!(
        std::fs::read_to_string(f.outside.join("secret.txt")).unwrap(),
        SECRET
    );
    f.assert_survived(&sb).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_grant_refuses_writes() {
    let f = Fixture::new();
    let sb = f.sandbox(|g| g.dirs[0].mode = Mode::ReadOnly);
    let out = call(
        &sb,
        "write_file",
        json!({"path": "/data/inside.txt", "content": "changed"}),
    )
    .await
    .unwrap();
    assert_eq!(
        tool_error(&out).code,
        ErrorCode::PermissionDenied,
        "{}",
        tool_error(&out)
    );
    assert_eq!(
        std::fs::read_to_string(f.data.join("inside.txt")).unwrap(),
        "inside"
    );
    f.assert_survived(&sb).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_environment_is_invisible() {
    let f = Fixture::new();
    // Nothing granted: an empty environment.
    let sb = f.sandbox(|_| {});
    let out = call(&sb, "env", json!({})).await.unwrap();
    assert_eq!(one_json(&out), json!([]));

    // Granted but undeclared names are not passed; declared and granted ones are.
    let sb = f.sandbox(|g| {
        g.env = vec![
            "TACK_ALLOWED_VAR".into(),
            "TACK_SECRET_VAR".into(),
            "HOME".into(),
            "PATH".into(),
        ]
    });
    let out = call(&sb, "env", json!({})).await.unwrap();
    assert_eq!(one_json(&out), json!([["TACK_ALLOWED_VAR", "visible"]]));
    assert!(sb.capabilities().notes.iter().any(|n| {
        n.to_string()
            .contains("TACK_SECRET_VAR is granted but the plugin does not declare it")
    }));
    f.assert_survived(&sb).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wall_clock_is_frozen_unless_granted() {
    let f = Fixture::new();
    let sb = f.sandbox(|_| {});
    let out = call(&sb, "wall_clock", json!({})).await.unwrap();
    assert_eq!(one_json(&out), json!(0));
    f.assert_survived(&sb).await;
    // Granted, the plugin reads the host's clock: now, to within the call.
    let sb = f.sandbox(|g| g.wall_clock = true);
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let out = call(&sb, "wall_clock", json!({})).await.unwrap();
    let read = one_json(&out).as_u64().unwrap();
    let after = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(
        (before..=after).contains(&read),
        "{before} <= {read} <= {after}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_to_a_host_not_allowed_is_refused() {
    let server = LoopbackServer::start().await;
    let f = Fixture::new();
    let sb = f.sandbox(|g| g.http.allow = vec!["api.allowed.test".parse().unwrap()]);
    for url in [
        format!("http://evil.example:{}/", server.addr.port()),
        format!("http://127.0.0.1:{}/", server.addr.port()),
        format!(
            "http://API.allowed.test.evil.example:{}/",
            server.addr.port()
        ),
    ] {
        let out = call(&sb, "http_get", json!({ "url": url })).await.unwrap();
        let err = tool_error(&out);
        assert!(
            err.message.contains("denied by the host's egress policy"),
            "{url}: {err}"
        );
        assert_eq!(out.egress.len(), 1, "{url}");
        let event = &out.egress[0];
        assert!(!event.allowed);
        assert!(
            event
                .denied
                .as_deref()
                .unwrap()
                .contains("is not in the grant's allow-list"),
            "{url}: {:?}",
            event.denied
        );
    }
    assert_eq!(server.hits(), 0, "a refused request reached the server");
    f.assert_survived(&sb).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowed_name_resolving_to_loopback_or_metadata_is_refused() {
    let server = LoopbackServer::start().await;
    let port = server.addr.port();
    let loopback: IpAddr = "127.0.0.1".parse().unwrap();
    let metadata: IpAddr = "169.254.169.254".parse().unwrap();
    let resolver = StaticResolver::new()
        .with("api.allowed.test", &[loopback])
        .with("meta.allowed.test", &[metadata])
        .with(
            "mixed.allowed.test",
            &["93.184.216.34".parse().unwrap(), loopback],
        )
        .or_else(Arc::new(SystemResolver));
    let f = Fixture::with_config(RuntimeConfig {
        resolver: Arc::new(resolver),
        ..RuntimeConfig::default()
    });
    let sb = f.sandbox(|g| {
        g.http.allow = vec![
            "*.allowed.test".parse().unwrap(),
            "169.254.169.254".parse().unwrap(),
            "::ffff:a9fe:a9fe".parse().unwrap(),
        ]
    });

    let cases = [
        (
            format!("http://api.allowed.test:{port}/"),
            "resolves to 127.0.0.1, a loopback address",
        ),
        (
            "http://meta.allowed.test/latest/meta-data/".to_string(),
            "resolves to 169.254.169.254, a link-local (cloud metadata) address",
        ),
        (
            format!("http://mixed.allowed.test:{port}/"),
            "resolves to 127.0.0.1, a loopback address",
        ),
        (
            "http://169.254.169.254/latest/meta-data/".to_string(),
            "169.254.169.254, a link-local (cloud metadata) address",
        ),
        (
            "http://[::ffff:a9fe:a9fe]/".to_string(),
            "link-local (cloud metadata) address",
        ),
    ];
    for (url, why) in &cases {
        let out = call(&sb, "http_get", json!({ "url": url })).await.unwrap();
        let err = tool_error(&out);
        assert!(err.message.contains("forbidden address"), "{url}: {err}");
        let event = &out.egress[0];
        assert!(!event.allowed, "{url}");
        assert!(
            event.denied.as_deref().unwrap().contains(why),
            "{url}: {:?}",
            event.denied
        );
    }
    assert_eq!(server.hits(), 0, "a refused request reached the server");

    // Control: the same name works once the operator opens loopback explicitly,
    // so it was the address check (not a dead server) that refused it above.
    let open = f.sandbox(|g| {
        g.http.allow = vec!["*.allowed.test".parse().unwrap()];
        g.http.allow_private = vec!["127.0.0.0/8".parse().unwrap()];
    });
    let out = call(
        &open,
        "http_get",
        json!({ "url": format!("http://api.allowed.test:{port}/") }),
    )
    .await
    .unwrap();
    assert_eq!(one_json(&out), json!(200));
    assert_eq!(server.hits(), 1);
    assert_eq!(out.egress[0].ip, Some(loopback));
    f.assert_survived(&sb).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_megabytes_of_output_is_refused() {
    let f = Fixture::new();
    let sb = f.sandbox(|g| g.limits.memory = Some(ByteSize::mib(512)));
    let err = call(&sb, "flood_output", json!({"mb": 100}))
        .await
        .unwrap_err();
    assert!(
        // 100 MiB of `x` plus the two quotes of its JSON encoding.
        matches!(err, CallError::OutputTooLarge { size: 104_857_602, limit } if limit == ByteSize::mib(1)),
        "{err}"
    );
    f.assert_survived(&sb).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_megabytes_of_stdout_and_logs_are_capped() {
    let f = Fixture::new();
    let sb = f.sandbox(|g| g.limits.timeout = Some(HumanDuration(Duration::from_secs(60))));
    let out = call(&sb, "flood_stdout", json!({"mb": 100})).await.unwrap();
    assert_eq!(one_json(&out), json!("flooded"));
    assert_eq!(out.stdout.len(), 64 * 1024);
    assert_eq!(out.stdio_dropped, 100 * 1024 * 1024 - 64 * 1024);

    let out = call(&sb, "flood_logs", json!({})).await.unwrap();
    assert_eq!(out.logs.len(), 256);
    assert_eq!(out.logs_dropped, 10_000 - 256);
    assert!(
        out.logs
            .iter()
            .all(|l| l.message.len() <= 4096 + '…'.len_utf8())
    );
    f.assert_survived(&sb).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panic_is_reported_with_its_message() {
    let f = Fixture::new();
    let sb = f.sandbox(|_| {});
    let err = call(&sb, "panic", json!({"message": "boom at the refund desk"}))
        .await
        .unwrap_err();
    match &err {
        CallError::Panic { message } => {
            assert!(message.contains("boom at the refund desk"), "{message}")
        }
        other => panic!("expected a panic, got {other}"),
    }
    f.assert_survived(&sb).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_limit_refuses_excess_calls() {
    let f = Fixture::new();
    let sb = f.sandbox(|g| {
        g.limits.max_concurrency = Some(1);
        g.limits.timeout = Some(HumanDuration(Duration::from_secs(5)));
    });
    let busy = sb.clone();
    let spinner = tokio::spawn(async move { call(&busy, "spin", json!({})).await });
    // Wait until the spinner holds the only slot.
    wait_until("the spinning call holds the slot", || sb.running() == 1).await;
    assert_eq!(sb.running(), 1);
    let err = call(
        &sb.with_timeout(Duration::from_millis(200)),
        "echo",
        json!({"value": 1}),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, CallError::Busy { max: 1, .. }), "{err}");
    let spun = spinner.await.unwrap().unwrap_err();
    assert!(matches!(spun, CallError::Timeout { .. }), "{spun}");
    f.assert_survived(&sb).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_instance_pool_is_reported_not_crashed() {
    let f = Fixture::with_config(RuntimeConfig {
        max_instances: 1,
        ..RuntimeConfig::default()
    });
    let spinning = f.sandbox(|g| g.limits.timeout = Some(HumanDuration(Duration::from_secs(5))));
    // Another sandbox of the same plugin: its own concurrency slots, the same pool.
    let other = f.sandbox(|_| {});
    f.plugin.tools().await.unwrap();
    let busy = spinning.clone();
    let spinner = tokio::spawn(async move { call(&busy, "spin", json!({})).await });
    // Wait until the spinning call holds the pool's only instance slot.
    wait_until("the spinning call holds the pool slot", || {
        f.runtime
            .engine()
            .pooling_allocator_metrics()
            .expect("pooling is on")
            .component_instances()
            == 1
    })
    .await;
    let err = call(&other, "echo", json!({"value": 1})).await.unwrap_err();
    assert!(matches!(err, CallError::AtCapacity(_)), "{err}");
    assert!(err.to_string().contains("max_instances"), "{err}");
    assert!(matches!(
        spinner.await.unwrap().unwrap_err(),
        CallError::Timeout { .. }
    ));
    f.assert_survived(&other).await;
}
