//! The official MCP conformance suite against tack.

mod common;

use common::*;
use std::process::Command;

#[tokio::test(flavor = "multi_thread")]
async fn probe() {
    tack_distribution::client::install_crypto();
    let extra = format!("{UNSIGNED_TACK}\n[toolsets.support]\ntools = [\"tack/payments@0.1.0\"]\n");
    let s = Setup::build("sqlite://host.db", None, "scenarios: []", &extra).await;
    let (_, _, user) = s.tokens.clone();
    let host = s.serve();
    let addr: std::net::SocketAddr = host.url.trim_start_matches("http://").parse().unwrap();
    let proxy = tack_tests::BearerProxy::start(addr, &user).await;
    let url = format!("http://{}/mcp/support", proxy.addr);
    let out = tokio::task::spawn_blocking(move || {
        Command::new(tack_tests::node::node())
            .arg(tack_tests::node::package_file(
                "@modelcontextprotocol/conformance",
                "dist/index.js",
            ))
            .args([
                "server",
                "--url",
                &url,
                "-o",
                "/tmp/confout",
                "--spec-version",
                &std::env::var("SPEC").unwrap(),
            ])
            .current_dir(std::env::temp_dir())
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    println!("{}", String::from_utf8_lossy(&out.stdout));
    println!("{}", String::from_utf8_lossy(&out.stderr));
}
