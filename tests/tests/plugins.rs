//! The first-party plugins doing their jobs through the runtime, as an agent would
//! call them: real components, real files, real HTTP on loopback.

use serde_json::json;
use std::sync::Arc;
use tack_capability::{DirGrant, Grant, Mode};
use tack_runtime::{
    CallContext, CallError, Credential, ErrorCode, FileIo, RuntimeConfig, Sandbox, StaticResolver,
};
use tack_tests::{LoopbackServer, call, guest, json_results, one_json, runtime, runtime_with};

fn dir(host: &std::path::Path, guest: &str, mode: Mode) -> DirGrant {
    DirGrant {
        host: host.to_path_buf(),
        guest: guest.into(),
        mode,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jq_runs_filters() {
    let rt = runtime();
    let plugin = rt.load_file(guest("tack_plugin_jq")).unwrap();
    let tools = plugin.tools().await.unwrap();
    assert_eq!(tools.len(), 1);
    assert!(tools[0].annotations.read_only);
    assert!(plugin.manifest().capabilities.dirs.is_empty());
    let sb = plugin.sandbox(&Grant::default()).unwrap();

    let out = call(&sb, "jq", json!({"filter": ".a", "input": {"a": 1}}))
        .await
        .unwrap();
    assert_eq!(json_results(&out), vec![json!(1)]);

    let out = call(
        &sb,
        "jq",
        json!({"filter": ".items[] | select(.price > 10) | .name", "input": {"items": [
            {"name": "tea", "price": 4}, {"name": "pot", "price": 30}, {"name": "cup", "price": 12}
        ]}}),
    )
    .await
    .unwrap();
    assert_eq!(json_results(&out), vec![json!("pot"), json!("cup")]);

    let out = call(
        &sb,
        "jq",
        json!({"filter": "[.[] | . * 2] | add", "input": [1, 2, 3]}),
    )
    .await
    .unwrap();
    assert_eq!(json_results(&out), vec![json!(12)]);

    // A filter that does not parse is the tool's own invalid-arguments error, naming the field.
    let out = call(&sb, "jq", json!({"filter": ".a |||", "input": {}}))
        .await
        .unwrap();
    let err = out.result.unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidArguments);
    assert_eq!(err.field.as_deref(), Some("/filter"));
    assert!(err.message.contains("column 4"), "{}", err.message);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_violations_name_the_field_before_the_guest_runs() {
    let rt = runtime();
    let plugin = rt.load_file(guest("tack_plugin_jq")).unwrap();
    let sb = plugin.sandbox(&Grant::default()).unwrap();

    let err = call(&sb, "jq", json!({"filter": 42, "input": {}}))
        .await
        .unwrap_err();
    match &err {
        CallError::InvalidArguments { tool, errors } => {
            assert_eq!(tool, "jq");
            assert_eq!(errors.len(), 1);
            assert_eq!(errors[0].pointer, "/filter");
            assert!(
                errors[0].message.contains("not of type \"string\""),
                "{}",
                errors[0].message
            );
        }
        other => panic!("expected InvalidArguments, got {other}"),
    }
    assert!(err.to_string().contains("at `/filter`"), "{err}");

    let err = call(&sb, "jq", json!({"filter": ".a"})).await.unwrap_err();
    assert!(
        err.to_string().contains("\"input\" is a required property"),
        "{err}"
    );

    let err = sb
        .call("jq", "{not json", &CallContext::default())
        .await
        .unwrap_err();
    assert!(matches!(err, CallError::ArgumentsNotJson(_)), "{err}");

    let err = call(&sb, "nope", json!({})).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("no tool named `nope`; it offers: jq"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_lists_reads_writes_and_searches_inside_its_directory() {
    files_suite(runtime()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_io_on_the_calling_thread_behaves_the_same() {
    files_suite(runtime_with(RuntimeConfig {
        file_io: FileIo::Direct,
        ..RuntimeConfig::default()
    }))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_io_on_the_thread_pool_behaves_the_same() {
    files_suite(runtime_with(RuntimeConfig {
        file_io: FileIo::ThreadPool,
        ..RuntimeConfig::default()
    }))
    .await;
}

/// `auto` runs file operations on the calling thread only where they cannot
/// hang: every granted directory on a local disk or memory filesystem.
#[test]
fn auto_file_io_is_direct_only_on_local_filesystems() {
    use tack_runtime::{is_local_disk, is_local_filesystem_type};
    assert!(is_local_filesystem_type(0xEF53), "ext4");
    assert!(is_local_filesystem_type(0x0102_1994), "tmpfs");
    assert!(!is_local_filesystem_type(0x6969), "NFS may hang");
    assert!(!is_local_filesystem_type(0x6573_5546), "FUSE may hang");
    assert!(!is_local_filesystem_type(0x9FA0), "procfs files may block");

    let proc_ = std::path::Path::new("/proc/self");
    assert!(!is_local_disk(proc_), "procfs files may block");
    let tmp = tempfile::tempdir().unwrap();
    assert!(!is_local_disk(&tmp.path().join("missing")), "unchecked");
    assert!(!FileIo::Auto.direct_for([tmp.path(), proc_].into_iter()));
    assert!(FileIo::Auto.direct_for(std::iter::empty()));
    assert_eq!(
        FileIo::Auto.direct_for([tmp.path()].into_iter()),
        is_local_disk(tmp.path())
    );
    assert!(!FileIo::ThreadPool.direct_for([tmp.path()].into_iter()));
    assert!(FileIo::Direct.direct_for([proc_].into_iter()));
}

async fn files_suite(rt: tack_runtime::Runtime) {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("docs")).unwrap();
    std::fs::write(
        tmp.path().join("docs/guide.md"),
        "# Guide\ninstall tack\nrun tack\n",
    )
    .unwrap();
    std::fs::write(tmp.path().join("readme.md"), "tack readme\n").unwrap();

    let plugin = rt.load_file(guest("tack_plugin_files")).unwrap();
    let names: Vec<String> = plugin
        .tools()
        .await
        .unwrap()
        .iter()
        .map(|t| t.name.clone())
        .collect();
    assert_eq!(names, ["list", "read", "write", "search"]);
    let write_tool = plugin
        .tools()
        .await
        .unwrap()
        .iter()
        .find(|t| t.name == "write")
        .unwrap()
        .clone();
    assert!(write_tool.annotations.destructive);

    let sb = plugin
        .sandbox(&Grant {
            dirs: vec![dir(tmp.path(), "/workspace", Mode::ReadWrite)],
            ..Grant::default()
        })
        .unwrap();

    let out = call(&sb, "list", json!({})).await.unwrap();
    assert_eq!(
        one_json(&out),
        json!({"entries": [
            {"name": "docs", "kind": "dir", "size": null},
            {"name": "readme.md", "kind": "file", "size": 12}
        ]})
    );

    let out = call(
        &sb,
        "read",
        json!({"path": "docs/guide.md", "max_bytes": 7}),
    )
    .await
    .unwrap();
    assert_eq!(
        one_json(&out),
        json!({"path": "docs/guide.md", "content": "# Guide", "size": 30, "truncated": true})
    );

    let out = call(
        &sb,
        "write",
        json!({"path": "out/new.txt", "content": "hello", "create_dirs": true}),
    )
    .await
    .unwrap();
    assert_eq!(
        one_json(&out),
        json!({"path": "out/new.txt", "bytes": 5, "replaced": false})
    );
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("out/new.txt")).unwrap(),
        "hello"
    );

    let out = call(
        &sb,
        "write",
        json!({"path": "readme.md", "content": "x", "overwrite": false}),
    )
    .await
    .unwrap();
    assert_eq!(out.result.unwrap_err().code, ErrorCode::Conflict);
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("readme.md")).unwrap(),
        "tack readme\n"
    );

    let out = call(&sb, "search", json!({"pattern": "tack"}))
        .await
        .unwrap();
    assert_eq!(
        one_json(&out),
        json!({"matches": [
            {"path": "docs/guide.md", "line": 2, "text": "install tack"},
            {"path": "docs/guide.md", "line": 3, "text": "run tack"},
            {"path": "readme.md", "line": 1, "text": "tack readme"}
        ], "truncated": false})
    );

    let out = call(&sb, "read", json!({"path": "../etc/passwd"}))
        .await
        .unwrap();
    let err = out.result.unwrap_err();
    assert_eq!(
        (err.code, err.field.as_deref()),
        (ErrorCode::InvalidArguments, Some("/path"))
    );
    let out = call(&sb, "read", json!({"path": "/etc/passwd"}))
        .await
        .unwrap();
    assert!(out.result.unwrap_err().message.contains("is absolute"));

    // Granted read-only, the same plugin cannot write.
    let ro = plugin
        .sandbox(&Grant {
            dirs: vec![dir(tmp.path(), "/workspace", Mode::ReadOnly)],
            ..Grant::default()
        })
        .unwrap();
    let out = call(&ro, "write", json!({"path": "readme.md", "content": "x"}))
        .await
        .unwrap();
    assert_eq!(out.result.unwrap_err().code, ErrorCode::PermissionDenied);
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("readme.md")).unwrap(),
        "tack readme\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_without_a_grant_sees_nothing() {
    let rt = runtime();
    let plugin = rt.load_file(guest("tack_plugin_files")).unwrap();
    let sb = plugin.sandbox(&Grant::default()).unwrap();
    assert!(
        sb.capabilities()
            .notes
            .iter()
            .any(|n| n.to_string().contains("declares directory /workspace"))
    );
    let out = call(&sb, "list", json!({})).await.unwrap();
    assert_eq!(out.result.unwrap_err().code, ErrorCode::NotFound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_fetches_from_an_allowed_host_on_loopback() {
    let server = LoopbackServer::start().await;
    let port = server.addr.port();
    let rt = runtime_with(RuntimeConfig {
        resolver: Arc::new(
            StaticResolver::new().with("service.internal", &["127.0.0.1".parse().unwrap()]),
        ),
        ..RuntimeConfig::default()
    });
    let plugin = rt.load_file(guest("tack_plugin_http")).unwrap();
    let mut grant = Grant::default();
    grant.http.allow = vec![format!("service.internal:{port}").parse().unwrap()];
    grant.http.allow_private = vec!["127.0.0.1/32".parse().unwrap()];
    let sb = plugin.sandbox(&grant).unwrap();

    let out = call(
        &sb,
        "get",
        json!({"url": format!("http://service.internal:{port}/status?x=1")}),
    )
    .await
    .unwrap();
    let v = one_json(&out);
    assert_eq!(v["status"], 200);
    assert_eq!(v["body"], "hello from GET /status");
    assert_eq!(v["headers"]["x-served-by"], "tack-tests");
    assert_eq!(v["truncated"], false);

    let out = call(
        &sb,
        "post",
        json!({"url": format!("http://service.internal:{port}/refunds"), "body": "{\"amount\": 5}"}),
    )
    .await
    .unwrap();
    assert_eq!(
        one_json(&out)["body"],
        "hello from POST /refunds (13 bytes)"
    );

    // A body larger than the host takes in one write streams after the request.
    let big = "x".repeat(1_500_000);
    let out = call(
        &sb,
        "post",
        json!({"url": format!("http://service.internal:{port}/big"), "body": big}),
    )
    .await
    .unwrap();
    assert_eq!(
        one_json(&out)["body"],
        "hello from POST /big (1500000 bytes)"
    );

    let out = call(
        &sb,
        "get",
        json!({"url": format!("http://service.internal:{port}/"), "max_bytes": 5}),
    )
    .await
    .unwrap();
    let v = one_json(&out);
    assert_eq!(
        (v["body"].as_str(), v["truncated"].as_bool()),
        (Some("hello"), Some(true))
    );
    assert_eq!(server.hits(), 4);

    // Another port on the same host is not in the grant.
    let out = call(&sb, "get", json!({"url": "http://service.internal:1/"}))
        .await
        .unwrap();
    assert_eq!(out.result.unwrap_err().code, ErrorCode::PermissionDenied);
    assert!(
        out.egress[0]
            .denied
            .as_deref()
            .unwrap()
            .contains("not in the grant's allow-list")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_calls_reuse_keep_alive_connections_within_one_binding_only() {
    let server = LoopbackServer::start().await;
    let port = server.addr.port();
    let rt = runtime();
    let plugin = rt.load_file(guest("tack_plugin_http")).unwrap();
    let mut grant = Grant::default();
    grant.http.allow = vec![format!("127.0.0.1:{port}").parse().unwrap()];
    grant.http.allow_private = vec!["127.0.0.1/32".parse().unwrap()];
    let sb = plugin.sandbox(&grant).unwrap();
    let url = format!("http://127.0.0.1:{port}/ping");
    let get = |sb: Sandbox, args: serde_json::Value| async move {
        let out = call(&sb, "get", args).await.unwrap();
        let egress = out.egress.clone();
        (one_json(&out), egress)
    };

    for i in 0..3 {
        let (v, egress) = get(sb.clone(), json!({"url": url})).await;
        assert_eq!(v["body"], "hello from GET /ping", "request {i}");
        // Every request, pooled or not, is checked and recorded.
        assert_eq!(egress.len(), 1);
        assert!(egress[0].allowed);
        assert_eq!(egress[0].ip, Some("127.0.0.1".parse().unwrap()));
    }
    assert_eq!(server.hits(), 3);
    assert_eq!(server.connections(), 1, "three calls share one connection");
    assert_eq!(sb.idle_connections(), 1);

    // A guest that stops reading early (here: at 5 bytes) does not cost the
    // connection: the host drains the rest and keeps it.
    let (v, _) = get(sb.clone(), json!({"url": url, "max_bytes": 5})).await;
    assert_eq!(v["body"], "hello");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while sb.idle_connections() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the connection was not kept"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    get(sb.clone(), json!({"url": url})).await;
    assert_eq!(server.connections(), 1);

    // A binding with other credentials never rides this binding's connection.
    let other = sb.with_credentials(vec![
        Credential::new("127.0.0.1", Some(port), "x-test", "other").unwrap(),
    ]);
    let (v, _) = get(other.clone(), json!({"url": url})).await;
    assert_eq!(v["body"], "hello from GET /ping");
    assert_eq!(server.connections(), 2);
    assert_eq!((sb.idle_connections(), other.idle_connections()), (1, 1));
    assert_eq!(server.hits(), 6);

    // The server hangs up its idle connections: the next call opens a new one.
    server.hang_up();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while sb.idle_connections() > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the hang-up was never seen"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let (v, _) = get(sb.clone(), json!({"url": url})).await;
    assert_eq!(v["body"], "hello from GET /ping");
    assert_eq!(server.connections(), 3);
    assert_eq!(server.hits(), 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payments_reads_balances_and_issues_idempotent_refunds() {
    let state = tempfile::tempdir().unwrap();
    let rt = runtime();
    let plugin = rt.load_file(guest("tack_plugin_payments")).unwrap();
    let tools = plugin.tools().await.unwrap();
    let annotations: Vec<(String, bool, bool)> = tools
        .iter()
        .map(|t| {
            (
                t.name.clone(),
                t.annotations.read_only,
                t.annotations.destructive,
            )
        })
        .collect();
    assert_eq!(
        annotations,
        [
            ("read_balance".to_string(), true, false),
            ("issue_refund".to_string(), false, true)
        ]
    );
    let sb = plugin
        .sandbox(&Grant {
            dirs: vec![dir(state.path(), "/state", Mode::ReadWrite)],
            wall_clock: true,
            ..Grant::default()
        })
        .unwrap();

    let out = call(&sb, "read_balance", json!({"account": "acct_alice"}))
        .await
        .unwrap();
    assert_eq!(
        one_json(&out),
        json!({"account": "acct_alice", "currency": "USD", "balance_cents": 12500, "refundable_cents": 25000})
    );

    let refund = json!({"account": "acct_alice", "amount_cents": 1250, "reason": "damaged", "idempotency_key": "k1"});
    let ctx = CallContext {
        call_id: "call-audit-1".into(),
        ..CallContext::default()
    };
    let out = sb
        .call("issue_refund", &refund.to_string(), &ctx)
        .await
        .unwrap();
    let v = one_json(&out);
    assert_eq!(v["balance_cents"], 13750);
    assert_eq!(v["replayed"], false);
    assert_eq!(v["refund"]["refund_id"], "rf_1");
    assert_eq!(v["refund"]["call_id"], "call-audit-1");
    assert!(
        v["refund"]["issued_at"].as_u64().unwrap() > 1_700_000_000,
        "wall clock granted"
    );
    assert!(
        out.logs
            .iter()
            .any(|l| l.message.contains("refund rf_1 of 1250 cents"))
    );

    // Same key: replayed, not paid twice; the ledger persisted across instances.
    let out = call(&sb, "issue_refund", refund.clone()).await.unwrap();
    let v = one_json(&out);
    assert_eq!(
        (v["replayed"].as_bool(), v["balance_cents"].as_i64()),
        (Some(true), Some(13750))
    );

    let out = call(
        &sb,
        "issue_refund",
        json!({"account": "acct_alice", "amount_cents": 999999, "reason": "x"}),
    )
    .await
    .unwrap();
    let err = out.result.unwrap_err();
    assert_eq!(err.code, ErrorCode::Conflict);
    assert!(
        err.message.contains("only 23750 cents are refundable"),
        "{}",
        err.message
    );

    let out = call(&sb, "read_balance", json!({"account": "acct_carol"}))
        .await
        .unwrap();
    let err = out.result.unwrap_err();
    assert_eq!(err.code, ErrorCode::NotFound);
    assert!(err.message.contains("known accounts: acct_alice, acct_bob"));

    let err = call(
        &sb,
        "issue_refund",
        json!({"account": "acct_alice", "amount_cents": 0, "reason": "x"}),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("at `/amount_cents`"), "{err}");

    let ledger: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(state.path().join("ledger.json")).unwrap())
            .unwrap();
    assert_eq!(ledger["refunds"].as_array().unwrap().len(), 1);
    assert!(!state.path().join(".ledger.json.tmp").exists());
}

/// Eight refunds at once, each in its own sandbox instance: every one reported
/// `ok` is in the ledger exactly once, none reported failed is, the balance
/// adds up, and no lock or temporary file is left behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_refunds_all_land_in_the_ledger() {
    let state = tempfile::tempdir().unwrap();
    let rt = runtime();
    let plugin = rt.load_file(guest("tack_plugin_payments")).unwrap();
    let sb = plugin
        .sandbox(&Grant {
            dirs: vec![dir(state.path(), "/state", Mode::ReadWrite)],
            wall_clock: true,
            ..Grant::default()
        })
        .unwrap();
    let calls = (0..8).map(|i| {
        let sb = sb.clone();
        async move {
            let ctx = CallContext {
                call_id: format!("call-{i}"),
                ..CallContext::default()
            };
            let args = json!({"account": "acct_alice", "amount_cents": 100 + i,
                              "reason": "batch", "idempotency_key": format!("k-{i}")});
            let out = sb.call("issue_refund", &args.to_string(), &ctx).await;
            (
                format!("call-{i}"),
                out.map(|o| o.result.is_ok()).unwrap_or(false),
            )
        }
    });
    let results = futures_util::future::join_all(calls).await;
    let ok: std::collections::BTreeSet<String> = results
        .iter()
        .filter(|(_, ok)| *ok)
        .map(|(id, _)| id.clone())
        .collect();
    assert_eq!(ok.len(), 8, "every refund succeeds: {results:?}");
    let ledger: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(state.path().join("ledger.json")).unwrap())
            .unwrap();
    let refunds = ledger["refunds"].as_array().unwrap();
    let in_ledger: std::collections::BTreeSet<String> = refunds
        .iter()
        .map(|r| r["call_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(refunds.len(), in_ledger.len(), "no refund twice");
    assert_eq!(
        in_ledger, ok,
        "the ledger holds exactly the refunds reported ok"
    );
    let paid: i64 = (0..8).map(|i| 100 + i).sum();
    assert_eq!(
        ledger["accounts"]["acct_alice"]["balance_cents"],
        12500 + paid,
        "the balance adds up"
    );
    let mut left: Vec<String> = std::fs::read_dir(state.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["ledger.json"]);
}
