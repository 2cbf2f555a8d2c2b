//! The official MCP conformance suite (`@modelcontextprotocol/conformance`,
//! installed by `scripts/test` under `tests/node`) against `tack serve`'s
//! `/mcp`: the server scenarios each protocol revision requires, run with
//! `--requirements` for 2025-11-25 (sessions) and 2026-07-28 (stateless).
//! The fixture tools the scenarios call come from a test component
//! (`tests/guests/conformance`) served as a toolset. What tack knowingly does
//! not support is listed, each with its reason, in
//! `tests/conformance/server-REVISION.yml`; the runner fails on any other
//! failure, and on a listed one that passes.

mod common;

use common::*;
use std::process::Command;

/// The runner's verdict for revision `revision` against `url`.
async fn conformance_server(url: String, revision: &'static str) -> std::process::Output {
    tokio::task::spawn_blocking(move || {
        let root = tack_tests::workspace_root();
        let baseline = root.join(format!("tests/conformance/server-{revision}.yml"));
        let results = tempfile::tempdir().unwrap();
        Command::new(tack_tests::node::node())
            .arg(tack_tests::node::package_file(
                "@modelcontextprotocol/conformance",
                "dist/index.js",
            ))
            .args(["server", "--url", &url, "--requirements", revision])
            .arg("--expected-failures")
            .arg(baseline)
            .arg("-o")
            .arg(results.path())
            .current_dir(results.path())
            .output()
            .expect("run the conformance suite")
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_mcp_conformance_suite_passes_against_mcp_in_both_revisions() {
    tack_distribution::client::install_crypto();
    let extra =
        format!("{UNSIGNED_TACK}\n[toolsets.conformance]\ntools = [\"tack/conformance@0.1.0\"]\n");
    let s = Setup::build("sqlite://host.db", None, "scenarios: []", &extra).await;
    common::tack(
        s.dir.path(),
        &s.config,
        &[
            "publish",
            tack_tests::guest("tack_guest_conformance")
                .to_str()
                .unwrap(),
            "tack/conformance@0.1.0",
        ],
    );
    let (_, _, user) = s.tokens.clone();
    let host = s.serve();
    let addr: std::net::SocketAddr = host.url.trim_start_matches("http://").parse().unwrap();
    // The runner cannot send headers of its own; the proxy adds the token and
    // passes everything else (Host, Origin) through.
    let proxy = tack_tests::BearerProxy::start(addr, &user).await;
    let url = format!("http://{}/mcp/conformance", proxy.addr);
    for revision in ["2025-11-25", "2026-07-28"] {
        let out = conformance_server(url.clone(), revision).await;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let summary = stdout
            .rsplit_once("=== SUMMARY ===")
            .map_or(&*stdout, |(_, s)| s);
        assert!(
            out.status.success(),
            "revision {revision}: {summary}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
