//! tack and the Model Context Protocol, on the `rmcp` crate.
//!
//! [`server`]: a set of tack's tools (verified, sandboxed components, with the
//! host's central flags and grants) served to any MCP client. Each call runs in
//! a fresh sandbox. Annotations are tack's own after central flags, so a
//! client sees `destructiveHint` exactly where tack gates.

pub mod server;

pub use server::ToolServer;
