//! The host as a process: `tack serve` over the registry, killed with SIGKILL
//! mid-run and started again, on SQLite and on PostgreSQL. The run continues
//! from its log: no event lost or duplicated, the refund paid exactly once.

mod common;

use common::*;
use serde_json::{Value, json};
use std::process::{Command, Stdio};
use std::time::Duration;
use tack_tests::registries::Postgres;

const SCRIPT: &str = r#"
scenarios:
  - steps:
      - tool_calls: [{name: read_balance, arguments: {account: acct_alice}}]
      - tool_calls: [{name: issue_refund, arguments: {account: acct_alice, amount_cents: 15000, reason: damaged, idempotency_key: k-1}}]
      - text: "Refund issued."
"#;

/// [`SCRIPT`] with the final answer held until the test releases it, so a
/// host can be killed while that model call is in flight.
const HELD_SCRIPT: &str = r#"
scenarios:
  - steps:
      - tool_calls: [{name: read_balance, arguments: {account: acct_alice}}]
      - tool_calls: [{name: issue_refund, arguments: {account: acct_alice, amount_cents: 15000, reason: damaged, idempotency_key: k-1}}]
      - hold: true
        text: "Refund issued."
"#;

/// [`SCRIPT`] from a provider that echoes request headers, credentials
/// included, in its errors: once before the first answer (a retry), and for
/// good in a conversation about `fail for good`.
const ECHOING_SCRIPT: &str = r#"
scenarios:
  - match: fail for good
    steps:
      - fail: {status: 401, times: 1000, echo_headers: true}
        text: never
  - steps:
      - fail: {status: 500, times: 1, echo_headers: true}
        tool_calls: [{name: read_balance, arguments: {account: acct_alice}}]
      - tool_calls: [{name: issue_refund, arguments: {account: acct_alice, amount_cents: 15000, reason: damaged, idempotency_key: k-1}}]
      - text: "Refund issued."
"#;

const AGENT: &str = "name: refund-assistant\ndescription: Refunds.\nmodel: scripted\ninstructions: Help with refunds.\ntools:\n  - tack/payments@0.1.0\napproval-policy: refunds\n";

impl Setup {
    async fn new(storage: &str) -> Setup {
        Setup::with(storage, None).await
    }

    /// With `secret`: a master key, the secret stored as `DEMO_KEY`, and the
    /// model configured to use it.
    async fn with(storage: &str, secret: Option<&str>) -> Setup {
        Setup::scripted(storage, secret, SCRIPT).await
    }

    /// [`with`](Self::with), the model playing `script`.
    async fn scripted(storage: &str, secret: Option<&str>, script: &str) -> Setup {
        Setup::build(storage, secret, script, UNSIGNED_TACK).await
    }
}

/// Register the refund agent, start a session that needs an approval, and wait
/// for it: (session id, approval id).
async fn start_refund(host: &Host, builder: &str, user: &str) -> (String, String) {
    let (st, v) = call(
        reqwest::Method::POST,
        format!("{}/v1/agents", host.url),
        builder,
        Some(json!({"yaml": AGENT})),
    )
    .await;
    assert_eq!(st, 201, "{v}");
    let (st, v) = call(
        reqwest::Method::POST,
        format!("{}/v1/sessions", host.url),
        user,
        Some(json!({"agent": "refund-assistant", "input": "refund 150"})),
    )
    .await;
    assert_eq!(st, 201, "{v}");
    let session = v["id"].as_str().unwrap().to_string();
    let ev = wait_for(host, &session, user, |ev| {
        count(ev, "approval_required") == 1
    })
    .await;
    let approval = ev
        .iter()
        .find(|e| e["type"] == "approval_required")
        .unwrap()["approval_id"]
        .as_str()
        .unwrap()
        .to_string();
    (session, approval)
}

async fn crash_and_resume(storage: &str) {
    tack_distribution::client::install_crypto();
    let s = Setup::scripted(storage, None, HELD_SCRIPT).await;
    let (builder, approver, user) = s.tokens.clone();

    // Host A: register, start, wait for the approval; then SIGKILL.
    let mut a = s.serve();
    let (session, approval) = start_refund(&a, &builder, &user).await;
    a.child.kill().unwrap(); // SIGKILL
    a.child.wait().unwrap();

    // Host B: the pending approval survived; approve it, let the refund run,
    // and SIGKILL while the final model call is in flight (held by the model).
    let mut b = s.serve();
    let (st, v) = call(
        reqwest::Method::POST,
        format!("{}/v1/approvals/{approval}", b.url),
        &approver,
        Some(json!({"decision": "approve"})),
    )
    .await;
    assert_eq!(st, 202, "{v}");
    wait_for(&b, &session, &user, |ev| {
        count(ev, "tool_result") == 2 && count(ev, "model_request") == 3
    })
    .await;
    assert_eq!(s.ledger()["refunds"].as_array().unwrap().len(), 1);
    for _ in 0..2000 {
        if s.model.requests().len() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        s.model.requests().len(),
        3,
        "the final model call reached the model"
    );
    b.child.kill().unwrap();
    b.child.wait().unwrap();
    assert_eq!(s.model.answered(), 2, "B died before the final answer");
    s.model.release();

    // Host C: resumes the run from its log and finishes it.
    let c = s.serve();
    let ev = wait_for(&c, &session, &user, |ev| {
        count(ev, "run_finished") == 1 && ev.last().unwrap()["type"] == "status_changed"
    })
    .await;
    let seqs: Vec<u64> = ev.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(
        seqs,
        (1..=seqs.len() as u64).collect::<Vec<_>>(),
        "no event lost"
    );
    let mut ids: Vec<&str> = ev.iter().map(|e| e["id"].as_str().unwrap()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), ev.len(), "no event twice");
    let mut calls: Vec<&str> = ev
        .iter()
        .filter(|e| e["type"] == "tool_result")
        .map(|e| e["call_id"].as_str().unwrap())
        .collect();
    let n = calls.len();
    calls.dedup();
    assert_eq!((n, calls.len()), (2, 2), "one result per tool call");
    assert!(
        count(&ev, "run_resumed") >= 1,
        "the restart is visible in the log"
    );
    let finished = ev.iter().find(|e| e["type"] == "run_finished").unwrap();
    assert_eq!(finished["stop_reason"], "end_turn");
    assert_eq!(finished["output"], "Refund issued.");
    assert_eq!(count(&ev, "approval_decided"), 1);
    let refunds = s.ledger()["refunds"].as_array().unwrap().clone();
    assert_eq!(
        refunds.len(),
        1,
        "the refund was paid exactly once: {refunds:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_mid_run_resumes_from_the_log_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    crash_and_resume(&format!(
        "sqlite://{}",
        dir.path().join("host.db").display()
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_mid_run_resumes_from_the_log_on_postgres() {
    let pg = Postgres::start();
    crash_and_resume(&pg.url).await;
}

/// The secret reaches the provider (the host adds it on the way out) and
/// nothing else: not one event, trace record or host log line, not the request
/// as the adapter built it (its debug log), not the store's files, not even
/// when the provider echoes the request's headers in its errors (a retried
/// one and a final one).
#[tokio::test(flavor = "multi_thread")]
async fn a_model_credential_appears_nowhere_but_on_the_wire_to_its_host() {
    tack_distribution::client::install_crypto();
    let secret = format!(
        "sk-live-{}/+{}",
        ulid::Ulid::generate().to_string().to_lowercase(),
        ulid::Ulid::generate()
    );
    let db = tempfile::tempdir().unwrap();
    let s = Setup::scripted(
        &format!("sqlite://{}", db.path().join("host.db").display()),
        Some(&secret),
        ECHOING_SCRIPT,
    )
    .await;
    let (builder, approver, user) = s.tokens.clone();
    let log_path = s.dir.path().join("serve.log");
    let host = s.serve_logging(Stdio::from(std::fs::File::create(&log_path).unwrap()));
    let (session, approval) = start_refund(&host, &builder, &user).await;
    call(
        reqwest::Method::POST,
        format!("{}/v1/approvals/{approval}", host.url),
        &approver,
        Some(json!({"decision": "approve"})),
    )
    .await;
    let ev = wait_for(&host, &session, &user, |ev| count(ev, "run_finished") == 1).await;
    let run = ev.iter().find(|e| e["type"] == "run_started").unwrap()["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, trace) = call(
        reqwest::Method::GET,
        format!("{}/v1/sessions/{session}/runs/{run}/trace", host.url),
        &user,
        None,
    )
    .await;
    let (st, failing) = call(
        reqwest::Method::POST,
        format!("{}/v1/sessions", host.url),
        &user,
        Some(json!({"agent": "refund-assistant", "input": "fail for good"})),
    )
    .await;
    assert_eq!(st, 201, "{failing}");
    let failing = failing["id"].as_str().unwrap().to_string();
    let failed = wait_for(&host, &failing, &user, |ev| count(ev, "run_finished") == 1).await;
    drop(host);

    // Positive controls: the echoes reached the events, scrubbed.
    let echoed = |events: &[Value], kind: &str, field: &str| -> String {
        let e = events.iter().find(|e| e["type"] == kind).unwrap();
        e[field].as_str().unwrap().to_string()
    };
    for text in [
        echoed(&ev, "model_retry", "error"),
        echoed(&failed, "error", "message"),
    ] {
        assert!(
            text.contains("authorization: [redacted] (base64 [redacted])"),
            "{text}"
        );
    }

    // Every provider request carried it, added by the host.
    let requests = s.model.requests();
    assert_eq!(requests.len(), 5);
    for r in &requests {
        let auth = r
            .headers
            .iter()
            .find(|(k, _)| k == "authorization")
            .map(|(_, v)| v.clone());
        assert_eq!(auth, Some(format!("Bearer {secret}")));
        assert!(!r.body.to_string().contains(&secret), "not in the body");
    }
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        log.contains("/chat/completions headers: content-type=application/json"),
        "the adapter's own request is logged: {log}"
    );

    let mut scanned = vec![
        ("events", serde_json::to_string(&ev).unwrap()),
        (
            "failed run's events",
            serde_json::to_string(&failed).unwrap(),
        ),
        ("trace", trace.to_string()),
        ("host log", log),
    ];
    for f in tack_tests::registries::files_under(db.path())
        .into_iter()
        .chain(tack_tests::registries::files_under(s.dir.path()))
    {
        scanned.push((
            "file",
            String::from_utf8_lossy(&std::fs::read(&f).unwrap()).into_owned(),
        ));
    }
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let forms = [
        secret.clone(),
        b64.encode(&secret),
        b64.encode(format!("Bearer {secret}")),
    ];
    for (what, text) in &scanned {
        for form in &forms {
            assert_eq!(
                text.matches(form.as_str()).count(),
                0,
                "the secret leaked into the {what} (as {form})"
            );
        }
    }
}

/// Many streams of a long log: each reads the log a page at a time as its
/// client takes events, so 100 streams of a 19 MiB log whose clients stop
/// reading after the first event keep the host under 256 MiB resident; every
/// stream gets its headers, the health check answers while they are open, and
/// one stream more than `streams-per-session` is refused.
#[tokio::test(flavor = "multi_thread")]
async fn many_streams_of_a_long_log_hold_pages_not_logs() {
    use futures_util::StreamExt;
    use tack_store::{NewEvent, SessionStatus};
    const BOUND_KIB: u64 = 256 * 1024;
    tack_distribution::client::install_crypto();
    let db = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", db.path().join("host.db").display());
    // The log, written straight into the store: 300 messages of 64 KiB.
    let store = tack_store::Store::open(&url).await.unwrap();
    let hello = json!({"text": "hello", "by": "una"}).to_string();
    let first = NewEvent {
        kind: "user_message",
        data: &hello,
        private: None,
    };
    let (session, _) = store
        .create_session_with("refund-assistant", 1, "una", first, SessionStatus::Idle)
        .await
        .unwrap();
    let long = json!({"text": "x".repeat(64 * 1024), "by": "una"}).to_string();
    for _ in 0..30 {
        let batch: Vec<NewEvent> = (0..10)
            .map(|_| NewEvent {
                kind: "user_message",
                data: &long,
                private: None,
            })
            .collect();
        store
            .append_batch(&session.id, &batch, None, None)
            .await
            .unwrap();
    }
    drop(store);
    let s = Setup::build(
        &url,
        None,
        SCRIPT,
        &format!("{UNSIGNED_TACK}[limits]\nstreams-per-session = 100\nstreams-per-token = 200\n"),
    )
    .await;
    let (_, _, user) = s.tokens.clone();
    let host = s.serve();
    let stream_url = format!("{}/v1/sessions/{}/stream", host.url, session.id);
    let http = reqwest::Client::new();
    let mut open = Vec::new();
    for _ in 0..100 {
        let r = http
            .get(&stream_url)
            .bearer_auth(&user)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let mut body = r.bytes_stream();
        let chunk = body.next().await.unwrap().unwrap();
        assert!(
            chunk.starts_with(b"id:"),
            "{:?}",
            &chunk[..chunk.len().min(80)]
        );
        open.push(body);
    }
    let r = http
        .get(&stream_url)
        .bearer_auth(&user)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    let refused: Value = r.json().await.unwrap();
    assert_eq!(refused["error"]["code"], "too_many_streams");
    let health = http
        .get(format!("{}/v1/health", host.url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);

    let peak = tack_tests::peak_rss_kib(host.child.id());
    eprintln!("host peak resident memory: {} MiB", peak / 1024);
    assert!(
        peak < BOUND_KIB,
        "the host peaked at {} MiB resident with 100 streams (bound {} MiB)",
        peak / 1024,
        BOUND_KIB / 1024
    );
    drop(open);
}

/// Clients that open connections and never finish a request cannot take the
/// API away: with 400 of them held open against a host limited to 256 file
/// descriptors, the health check is still answered (the host serves 64
/// connections at once and closes any that sends no complete head within a
/// second, so the rest wait their turn in the backlog).
#[tokio::test(flavor = "multi_thread")]
async fn half_open_connections_cannot_starve_the_api() {
    use tokio::io::AsyncWriteExt;
    tack_distribution::client::install_crypto();
    let db = tempfile::tempdir().unwrap();
    let s = Setup::build(
        &format!("sqlite://{}", db.path().join("host.db").display()),
        None,
        SCRIPT,
        &format!("{UNSIGNED_TACK}[limits]\nconnections = 64\nheader-timeout = \"1s\"\n"),
    )
    .await;
    let host = s.serve();
    let limited = Command::new("prlimit")
        .args(["--pid", &host.child.id().to_string(), "--nofile=256:256"])
        .status()
        .expect("run prlimit (util-linux)");
    assert!(limited.success());
    let addr = host.url.trim_start_matches("http://").to_string();
    let mut held = Vec::new();
    for _ in 0..400 {
        let mut c = tokio::net::TcpStream::connect(&addr).await.unwrap();
        c.write_all(b"GET /v1/health HTTP/1.1\r\nhost: x\r\n")
            .await
            .unwrap();
        held.push(c);
    }
    // A guard against hanging for ever, far above the few seconds it takes.
    let answered = tokio::time::timeout(
        Duration::from_secs(120),
        reqwest::get(format!("{}/v1/health", host.url)),
    )
    .await;
    match answered {
        Ok(Ok(r)) => assert_eq!(r.status(), 200),
        other => panic!("the health check was not answered: {other:?}"),
    }
    drop(held);
}

/// By default the host runs only code a trusted key signed: an agent whose
/// plugins are unsigned, in a namespace without a trust entry, is refused with
/// a message saying how to trust or opt out; with the namespace opted out it
/// runs, and each run carries a `warning` event naming the unsigned code. An
/// agent naming a registry the host does not use is refused at registration,
/// and a registry's own error text never reaches the API client.
#[tokio::test(flavor = "multi_thread")]
async fn unsigned_code_needs_an_opt_out_and_registries_are_the_configured_ones() {
    tack_distribution::client::install_crypto();
    let db = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", db.path().join("host.db").display());
    let strict = Setup::build(&url, None, SCRIPT, "").await;
    let (builder, _, user) = strict.tokens.clone();
    let host = strict.serve();
    let (st, v) = post(&host, "/v1/agents", &builder, json!({"yaml": AGENT})).await;
    assert_eq!(st, 201, "{v}");
    let (st, v) = post(
        &host,
        "/v1/sessions",
        &user,
        json!({"agent": "refund-assistant", "input": "refund 150"}),
    )
    .await;
    assert_eq!(st, 422, "{v}");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("no trust entry") && message.contains("require-signature = false"),
        "{message}"
    );

    // An address of the agent file's choosing: refused, naming the field.
    let elsewhere = AGENT.replace(
        "tack/payments@0.1.0",
        "127.0.0.1:18182/internal/admin@1.0.0",
    );
    let (st, v) = post(&host, "/v1/agents", &builder, json!({"yaml": elsewhere})).await;
    assert_eq!(st, 400, "{v}");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("tools[0]") && message.contains("does not use"),
        "{message}"
    );
    drop(host);

    // Opted out: it runs, and says so.
    let db = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", db.path().join("host.db").display());
    let s = Setup::with(&url, None).await;
    let (builder, _, user) = s.tokens.clone();
    let host = s.serve();
    let (session, _) = start_refund(&host, &builder, &user).await;
    let ev = wait_for(&host, &session, &user, |ev| count(ev, "warning") == 1).await;
    let warning = ev.iter().find(|e| e["type"] == "warning").unwrap();
    let text = warning["message"].as_str().unwrap();
    assert!(
        text.contains("tack/payments@0.1.0") && text.contains("no trusted key"),
        "{text}"
    );
    // A configured registry's error text stays in the host's log.
    let missing = AGENT.replace("tack/payments@0.1.0", "tack/payments@9.9.9");
    let (st, v) = post(&host, "/v1/agents", &builder, json!({"yaml": missing})).await;
    assert_eq!(st, 201, "{v}");
    let (st, v) = post(
        &host,
        "/v1/sessions",
        &user,
        json!({"agent": "refund-assistant", "input": "refund 150"}),
    )
    .await;
    assert_eq!(st, 422, "{v}");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("was not found in its registry"),
        "{message}"
    );
    assert!(!message.contains("MANIFEST_UNKNOWN"), "{message}");
}

/// `tack run` streams a session in the terminal; without a terminal it waits
/// for an approver, who uses `tack approvals`.
#[tokio::test(flavor = "multi_thread")]
async fn tack_run_streams_and_tack_approvals_decides() {
    tack_distribution::client::install_crypto();
    let db = tempfile::tempdir().unwrap();
    let s = Setup::new(&format!("sqlite://{}", db.path().join("host.db").display())).await;
    let (builder, approver, user) = s.tokens.clone();
    let host = s.serve();
    let agent_file = s.dir.path().join("agent.yaml");
    std::fs::write(&agent_file, AGENT).unwrap();

    let tack_run = |token: &str| {
        let mut c = command(s.dir.path(), &s.config, None);
        c.args(["run", agent_file.to_str().unwrap(), "refund 150"])
            .args(["--url", &host.url, "--token", token]);
        c
    };

    // A user may not register agents: the error says which roles may.
    let out = tack_run(&user).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("admin or builder"));

    let run = tack_run(&builder)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let approvals = |args: &[&str]| {
        command(s.dir.path(), &s.config, None)
            .args(["approvals"])
            .args(args)
            .args(["--url", &host.url, "--token", &approver])
            .output()
            .unwrap()
    };
    let mut id = String::new();
    for _ in 0..500 {
        let out = approvals(&["ls"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        if let Some(line) = String::from_utf8_lossy(&out.stdout).lines().next() {
            assert!(
                line.contains("issue_refund") && line.contains("$150.00"),
                "{line}"
            );
            id = line.split('\t').next().unwrap().to_string();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(id.starts_with("ap_"), "an approval appeared");
    assert_eq!(
        approvals(&["deny", &id]).status.code(),
        Some(2),
        "deny needs --reason"
    );
    let out = approvals(&["approve", &id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("Refund issued."), "{stdout}");
    assert!(
        stderr.contains("→ issue_refund") && stderr.contains("approval needed"),
        "{stderr}"
    );
    assert!(stderr.contains("finished: end_turn"), "{stderr}");
    assert_eq!(s.ledger()["refunds"].as_array().unwrap().len(), 1);
}

/// A code-mode agent whose one program reads a balance and issues two
/// refunds, each over $100 and so held for an approver.
const CODE_SCRIPT: &str = r#"
scenarios:
  - steps:
      - tool_calls:
          - name: run_code
            arguments:
              code: |
                const before = await tools.payments.read_balance({account: "acct_alice"});
                const a = await tools.payments.issue_refund({account: "acct_alice", amount_cents: 12000, reason: "lamp"});
                const b = await tools.payments.issue_refund({account: "acct_alice", amount_cents: 11000, reason: "mug"});
                return [before.balance_cents, a.refund.refund_id, b.refund.refund_id];
      - text: "Both refunds issued."
"#;

const CODE_AGENT: &str = "name: coder\ndescription: Refunds in code.\nmodel: scripted\ninstructions: Use code.\ntools:\n  - tack/payments@0.1.0\napproval-policy: refunds\ncode-mode: only\n";

/// `kill -9` while a program waits for its second approval: the host that
/// comes back runs the program again, its first refund's result comes from
/// the log, and no refund is paid twice.
#[tokio::test(flavor = "multi_thread")]
async fn sigkill_mid_program_replays_its_calls_and_pays_each_refund_once() {
    tack_distribution::client::install_crypto();
    let dir = tempfile::tempdir().unwrap();
    let storage = format!("sqlite://{}", dir.path().join("host.db").display());
    let s = Setup::scripted(&storage, None, CODE_SCRIPT).await;
    tack(
        s.dir.path(),
        &s.config,
        &[
            "publish",
            tack_tests::guest("tack_plugin_code_js").to_str().unwrap(),
            "tack/code-js@0.1.0",
        ],
    );
    let (builder, approver, user) = s.tokens.clone();
    let approve = |host: &Host, approval: String| {
        let url = format!("{}/v1/approvals/{approval}", host.url);
        let approver = approver.clone();
        async move {
            let (st, v) = call(
                reqwest::Method::POST,
                url,
                &approver,
                Some(json!({"decision": "approve"})),
            )
            .await;
            assert_eq!(st, 202, "{v}");
        }
    };
    let approvals = |ev: &[Value]| -> Vec<String> {
        ev.iter()
            .filter(|e| e["type"] == "approval_required")
            .map(|e| e["approval_id"].as_str().unwrap().to_string())
            .collect()
    };

    let mut a = s.serve();
    register(&a, &builder, CODE_AGENT).await;
    let session = start_session(&a, &user, "coder", "two refunds").await;
    let ev = wait_for(&a, &session, &user, |ev| {
        count(ev, "approval_required") == 1
    })
    .await;
    approve(&a, approvals(&ev)[0].clone()).await;
    let ev = wait_for(&a, &session, &user, |ev| {
        count(ev, "approval_required") == 2
    })
    .await;
    assert_eq!(s.ledger()["refunds"].as_array().unwrap().len(), 1);
    let waiting = approvals(&ev)[1].clone();
    a.child.kill().unwrap(); // SIGKILL
    a.child.wait().unwrap();

    let b = s.serve();
    approve(&b, waiting).await;
    let ev = wait_for(&b, &session, &user, |ev| count(ev, "run_finished") == 1).await;

    let refunds = s.ledger()["refunds"].as_array().unwrap().clone();
    assert_eq!(refunds.len(), 2, "each refund paid once: {refunds:?}");
    let program = ev
        .iter()
        .find(|e| e["type"] == "tool_call" && e["tool"] == "run_code")
        .unwrap()["call_id"]
        .as_str()
        .unwrap()
        .to_string();
    let nested: Vec<&str> = ev
        .iter()
        .filter(|e| e["type"] == "tool_result" && e["parent_call_id"] == program.as_str())
        .map(|e| e["call_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        nested,
        [
            format!("{program}.1"),
            format!("{program}.2"),
            format!("{program}.3")
        ],
        "one result per call of the program"
    );
    assert_eq!(
        count(&ev, "approval_required"),
        2,
        "no approval asked twice"
    );
    let result = ev
        .iter()
        .find(|e| e["type"] == "tool_result" && e["call_id"] == program.as_str())
        .unwrap();
    assert_eq!(result["ok"], true, "{result}");
    let value: Value = serde_json::from_str(result["content"].as_str().unwrap()).unwrap();
    assert_eq!(value[1], "rf_1");
    assert_eq!(value[2], "rf_2");
    assert!(
        value[0].is_i64(),
        "the replayed read is JSON again: {value}"
    );
}
