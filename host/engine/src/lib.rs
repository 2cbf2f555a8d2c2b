//! tack's agent engine: the governed loop around a model.
//!
//! - [`Engine`]: agents (registered, versioned, resolved against the host),
//!   sessions and their runners, and the operations the sessions API exposes.
//! - The session log ([`events`]) is the source of truth; [`state`] folds it,
//!   and the [`runner`] does what the state says is next: model call (with
//!   retries and budget checks), gate ([`approval`]), tool calls in parallel
//!   (with idempotency records), waits for approvers and answers.
//! - [`components`]: where components come from ([`ComponentSource`]) and what
//!   an agent resolves to (adapter bound to its endpoint and credential, tools
//!   with central flags and grants, skills, approval policy).
//! - [`remote`]: tools outside tack (upstream MCP servers) reached through the
//!   host's gateway ([`ToolServers`]), gated and logged like any tool.
//! - [`direct`]: approvals for tool calls from outside a run (MCP clients of
//!   tack's toolsets), held in memory while the caller waits.
//! - [`trace`]: per-step trace records, projected from the log.

pub mod approval;
pub mod builtin;
pub mod clock;
pub mod code;
mod code_run;
pub mod components;
pub mod direct;
mod engine;
pub mod error;
pub mod events;
mod log;
mod principal;
pub mod redact;
pub mod remote;
mod runner;
pub mod state;
pub mod trace;

pub use clock::{Clock, SystemClock};
pub use components::{Artifact, ComponentSource, LocalSource, SourceError};
pub use engine::{Delta, Engine, EngineConfig, RetryPolicy, SessionHandle};
pub use error::EngineError;
pub use events::{ApprovalStatus, EventData, LoggedEvent, RunStop, Scope, Status, Verdict};
pub use principal::{Principal, Role, UnknownRole};
pub use remote::{RemoteEntry, RemoteError, RemoteTool, ToolServers};
pub use trace::TraceRecord;
