//! `tack code run` and `tack code declarations` against a toolset of the
//! host configuration or a registered agent: a program calls a plugin's
//! tools (two at once with `Promise.all`), filters their results and returns
//! only what it needs; a destructive tool is refused outside a run; an
//! agent's code-limits hold; a failing program exits with its failure named.

mod common;

use common::*;
use serde_json::{Value, json};
use tack_tests::guest;

const UNSIGNED_TACK: &str = "[trust.tack]\nrequire-signature = false\n";

#[tokio::test(flavor = "multi_thread")]
async fn a_program_runs_against_a_toolsets_tools() {
    let extra = format!(
        "{UNSIGNED_TACK}\n[toolsets.ops]\ntools = [\"tack/jq@0.1.0\", \"tack/payments@0.1.0\"]\n"
    );
    let s = Setup::build("sqlite://host.db", None, "scenarios: []", &extra).await;
    let d = s.dir.path();
    for (file, reference) in [
        ("tack_plugin_jq", "tack/jq@0.1.0"),
        ("tack_plugin_code_js", "tack/code-js@0.1.0"),
    ] {
        tack(
            d,
            &s.config,
            &["publish", guest(file).to_str().unwrap(), reference],
        );
    }

    let declarations = tack(d, &s.config, &["code", "declarations", "ops"]);
    assert!(
        declarations.starts_with("declare const tools: {")
            && declarations.contains("  payments: {")
            && declarations.contains("read_balance(args: {"),
        "{declarations}"
    );

    let program = d.join("program.js");
    let run_program = || {
        command(d, &s.config, None)
            .args(["code", "run", "ops"])
            .arg(&program)
            .output()
            .unwrap()
    };
    std::fs::write(
        &program,
        r#"
        const [picked, balance] = await Promise.all([
          tools.jq.jq({ filter: "[.[] | select(. > 2)]", input: [1, 2, 3, 4] }),
          tools.payments.read_balance({ account: "acct_alice" }),
        ]);
        let refused;
        try {
          await tools.payments.issue_refund({ account: "acct_alice", amount_cents: 100, reason: "x" });
        } catch (e) { refused = e.code; }
        console.log("balance read");
        return { picked, cents: balance.balance_cents, refused };
        "#,
    )
    .unwrap();
    let out = run_program();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v,
        json!({"picked": [3, 4], "cents": 12500, "refused": "permission_denied"})
    );
    assert!(stderr.contains("balance read"), "{stderr}");
    assert_eq!(
        s.ledger()["refunds"],
        json!([]),
        "nothing was paid outside a run"
    );

    std::fs::write(&program, "console.log('about to fail');\nnull.x;").unwrap();
    let out = run_program();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("about to fail")
            && stderr.contains("the program failed (exception): TypeError"),
        "{stderr}"
    );
}

/// `tack code run AGENT`: the agent's tools as its runs resolve them, under
/// its `code-limits`; its destructive tools are refused outside a run.
#[tokio::test(flavor = "multi_thread")]
async fn a_program_runs_against_a_registered_agents_tools() {
    tack_distribution::client::install_crypto();
    let s = Setup::build("sqlite://host.db", None, "scenarios: []", UNSIGNED_TACK).await;
    let d = s.dir.path();
    tack(
        d,
        &s.config,
        &[
            "publish",
            guest("tack_plugin_code_js").to_str().unwrap(),
            "tack/code-js@0.1.0",
        ],
    );
    let (builder, _, _) = s.tokens.clone();
    {
        let host = s.serve();
        register(
            &host,
            &builder,
            "name: coder\ndescription: Refunds in code.\nmodel: scripted\n\
             tools:\n  - tack/payments@0.1.0\ncode-mode: only\n\
             code-limits:\n  max-tool-calls: 2\n",
        )
        .await;
    }
    let run = |target: &str, program: &str| {
        let path = d.join("program.js");
        std::fs::write(&path, program).unwrap();
        command(d, &s.config, None)
            .args(["code", "run", target])
            .arg(&path)
            .output()
            .unwrap()
    };

    let out = run(
        "coder",
        r#"const b = await tools.payments.read_balance({ account: "acct_alice" });
        let refused;
        try {
          await tools.payments.issue_refund({ account: "acct_alice", amount_cents: 100, reason: "x" });
        } catch (e) { refused = e.code; }
        return [b.balance_cents, refused];"#,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v, json!([12500, "permission_denied"]));
    assert_eq!(s.ledger()["refunds"], json!([]));

    // The agent's limit of two calls holds; a flag may raise it.
    let three = r#"await Promise.all([1, 2, 3].map(() =>
        tools.payments.read_balance({ account: "acct_alice" }))); return "ok";"#;
    let out = run("agent:coder@1", three);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("(too_many_calls)"), "{stderr}");
    let out = command(d, &s.config, None)
        .args(["code", "run", "coder", "-", "--max-tool-calls", "3"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(three.as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "\"ok\"");

    let declarations = tack(d, &s.config, &["code", "declarations", "agent:coder"]);
    assert!(
        declarations.contains("issue_refund(args: {"),
        "{declarations}"
    );
    let out = run("nobody", "return 1;");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("`nobody` is neither a toolset of the host configuration (toolsets: none) nor an agent registered on this host"),
        "{stderr}"
    );
}
