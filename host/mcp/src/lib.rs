//! tack and the Model Context Protocol, on the `rmcp` crate.
//!
//! [`client`]: upstream MCP servers the host connects to (`[mcp-servers.*]`),
//! with a clean environment for stdio servers and the annotation policy.
//!
//! [`server`]: a set of tack's tools (verified, sandboxed components, with the
//! host's central flags and grants) served to any MCP client. Each call runs in
//! a fresh sandbox. Annotations are tack's own after central flags, so a
//! client sees `destructiveHint` exactly where tack gates.

pub mod client;
pub mod server;

pub use client::{Upstream, UpstreamError, UpstreamResult, UpstreamTool};
pub use server::ToolServer;
