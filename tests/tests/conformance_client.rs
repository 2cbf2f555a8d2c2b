//! The official MCP conformance suite's client scenarios against tack's
//! gateway client (`mcp-conformance-client`, on `tack_mcp::Upstream`), for the
//! scenarios revisions 2025-11-25 and 2026-07-28 require (`--requirements`).
//! What the client knowingly does not do is listed, each entry with its
//! reason, in `tests/conformance/client-REVISION.yml`; the runner fails on any
//! other failure and on a listed entry that passes.

use std::process::Command;

#[test]
fn the_mcp_conformance_suite_passes_against_the_gateway_client() {
    let root = tack_tests::workspace_root();
    for revision in ["2025-11-25", "2026-07-28"] {
        let results = tempfile::tempdir().unwrap();
        let out = Command::new(tack_tests::node::node())
            .arg(tack_tests::node::package_file(
                "@modelcontextprotocol/conformance",
                "dist/index.js",
            ))
            .args(["client", "--requirements", revision, "--command"])
            .arg(env!("CARGO_BIN_EXE_mcp-conformance-client"))
            .arg("--expected-failures")
            .arg(root.join(format!("tests/conformance/client-{revision}.yml")))
            .arg("-o")
            .arg(results.path())
            .current_dir(results.path())
            .output()
            .expect("run the conformance suite");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let summary = stdout
            .rsplit_once("SUMMARY ===")
            .map_or(&*stdout, |(_, s)| s);
        assert!(
            out.status.success(),
            "revision {revision}: {summary}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
