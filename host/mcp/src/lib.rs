//! tack and the Model Context Protocol, on the `rmcp` crate.
//!
//! [`client`]: upstream MCP servers the host connects to (`[mcp-servers.*]`),
//! with a clean environment for stdio servers and the annotation policy.
//!
//! [`gateway`]: those servers as tool sources for agents (the engine's
//! `ToolServers`): one shared connection per server, schema checks, timeouts,
//! results mapped to tool content and cut to size.
//!
//! [`oauth`]: OAuth 2.1 tokens for upstream servers that take them, sealed
//! in the store, for the host or for each session user.
//!
//! [`server`]: a set of tack's tools (verified, sandboxed components, with the
//! host's central flags and grants) served to any MCP client. Each call runs in
//! a fresh sandbox. Annotations are tack's own after central flags, so a
//! client sees `destructiveHint` exactly where tack gates.

pub mod client;
mod elicit;
pub mod gateway;
pub mod http;
pub mod oauth;
pub mod server;

pub use client::{Upstream, UpstreamError, UpstreamResult, UpstreamTool};
pub use gateway::Gateway;
pub use http::HttpToolset;
pub use oauth::{Login, Subject};
pub use server::ToolServer;
pub use tack_engine::remote::{Asker, Nobody};
