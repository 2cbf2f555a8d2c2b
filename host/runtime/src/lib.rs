//! tack's sandboxed plugin runtime.
//!
//! Every tool, model adapter and policy in tack is a WebAssembly component. This
//! crate loads them and runs each call in a fresh, capability-restricted instance:
//!
//! - [`Runtime`]: one wasmtime [`Engine`](wasmtime::Engine) per process (pooling
//!   allocator, copy-on-write memory images, epoch interruption), the linker with
//!   the host's imports, the compiled-code cache on disk ([`CodeCache`]) and an
//!   in-memory cache of pre-instantiated components keyed by digest.
//! - [`Plugin`]: one loaded component: digest, embedded [`Manifest`], WIT world,
//!   tool list, `InstancePre`.
//! - [`Sandbox`]: a plugin bound to its [`Capabilities`] (manifest ∩ grant);
//!   [`Sandbox::call`] validates the arguments against the tool's schema, then runs
//!   the call in a new `Store` with only what the policy allows, under memory, time,
//!   fuel, output and concurrency limits.
//!
//! - [`ModelAdapter`] / [`BoundAdapter::complete`]: model-adapter components
//!   (world `model-adapter`), their HTTP checked and given credentials by the host;
//!   an [`AdapterSession`] keeps one instance between one run's model calls.
//! - [`PolicyComponent::decide`]: policy components (world `policy`), run with
//!   nothing granted.
//! - [`CodeRunner::run`]: code-runner components (world `code-mode`): an
//!   agent's program, nothing granted, its tool calls run by the host
//!   ([`CodeTools`]) concurrently.
//!
//! What a guest may reach, and how limits surface as errors, is the contract in
//! `docs/capabilities.md`; [`CallError`] lists every way a call can fail.

mod bindings;
mod cache;
mod clock;
mod code;
mod egress;
mod error;
mod gate;
mod inspect;
mod model;
mod output;
mod plain;
mod plugin;
mod pool;
mod runtime;
mod scrub;
mod state;
mod types;
pub mod wit_json;
pub mod wit_schema;

pub use cache::{CacheOutcome, CodeCache};
pub use code::{CodeError, CodeFailure, CodeLimits, CodeOutput, CodeRunner, CodeTools};
pub use egress::{Credential, EgressEvent, Resolve, StaticResolver, SystemResolver};
pub use error::{ArgumentError, CallError, LoadError};
pub use gate::{ApprovalRequest, Decision, GateRequest, GrantScope, PolicyComponent};
pub use inspect::{
    WIT_DOCS_SECTION, WorldInfo, embed_manifest, embed_wit_docs, read_manifest, world_info,
};
pub use model::{
    AdapterSession, BoundAdapter, Completion, CompletionRequest, DeltaSink, Message, ModelAdapter,
    ModelError, ModelOutcome, ModelTools, Part, Role, StopReason, ToolCall, ToolResult, Usage,
};
pub use plain::SkippedExport;
pub use plugin::{CallOutcome, Plugin, Sandbox};
pub use runtime::{FileIo, Runtime, RuntimeConfig, is_local_disk, is_local_filesystem_type};
pub use scrub::{SCRUBBED, Scrubber};
pub use tack_capability::{Capabilities, Grant, Manifest};
pub use types::{
    Annotations, CallContext, Content, ErrorCode, LogLevel, LogRecord, ToolDescriptor, ToolError,
};
