//! Every way loading a plugin or calling a tool can fail.
//!
//! Each variant's message says what happened and, where the operator can act, what
//! to change. A [`CallError`] never means the host is damaged: the store of the
//! failed call is dropped and the next call starts clean.

use std::time::Duration;
use tack_capability::{ByteSize, CapabilityError};

/// Why a component could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// Path as given.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The bytes are not a WebAssembly component (maybe a core module).
    #[error("{0}")]
    NotAComponent(String),
    /// The component does not export `tack:plugin/tool` or imports something the host does not provide.
    #[error("{0}")]
    Incompatible(String),
    /// The embedded manifest is invalid.
    #[error("invalid manifest in the component: {0}")]
    Manifest(#[from] CapabilityError),
    /// Compilation failed.
    #[error("cannot compile the component: {0}")]
    Compile(String),
}

/// One way the arguments fail the tool's input schema.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ArgumentError {
    /// JSON Pointer of the offending value (`""` for the whole object).
    pub pointer: String,
    /// What is wrong.
    pub message: String,
}

/// Why a call did not produce a tool result.
///
/// A tool that runs and reports an error returns `Ok` with a
/// [`ToolError`](crate::ToolError) in its outcome; these are failures of the call
/// itself: bad arguments, or a sandbox limit the guest hit.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// No tool of that name.
    #[error("the plugin has no tool named `{name}`; it offers: {}", available.join(", "))]
    UnknownTool {
        /// Name asked for.
        name: String,
        /// Names the plugin offers.
        available: Vec<String>,
    },
    /// The arguments are not JSON.
    #[error("arguments are not valid JSON: {0}")]
    ArgumentsNotJson(String),
    /// The arguments fail the tool's input schema.
    #[error("arguments do not match the input schema of `{tool}`:\n{}", errors.iter().map(|e| format!("  - at `{}`: {}", if e.pointer.is_empty() { "/" } else { &e.pointer }, e.message)).collect::<Vec<_>>().join("\n"))]
    InvalidArguments {
        /// Tool name.
        tool: String,
        /// Each violation.
        errors: Vec<ArgumentError>,
    },
    /// The call ran past its wall-time limit.
    #[error("the call exceeded its time limit of {}ms and was stopped (raise it with `--timeout`)", limit.as_millis())]
    Timeout {
        /// The limit.
        limit: Duration,
    },
    /// The guest tried to use more memory than allowed.
    #[error(
        "the plugin exceeded its memory limit of {limit} and was stopped (raise it with `--memory`)"
    )]
    MemoryLimit {
        /// The limit.
        limit: ByteSize,
    },
    /// The guest ran out of fuel.
    #[error(
        "the plugin used up its fuel budget of {limit} and was stopped (raise it with `--fuel`)"
    )]
    FuelExhausted {
        /// The budget.
        limit: u64,
    },
    /// Unbounded recursion.
    #[error("the plugin overflowed its stack (unbounded recursion?) and was stopped")]
    StackOverflow,
    /// The result is larger than allowed.
    #[error(
        "the plugin returned {size} bytes, more than its output limit of {limit} (raise it with `--max-output`)"
    )]
    OutputTooLarge {
        /// Bytes returned.
        size: u64,
        /// The limit.
        limit: ByteSize,
    },
    /// The guest panicked or aborted.
    #[error("the plugin panicked: {message}")]
    Panic {
        /// The panic message from the guest's stderr, if it printed one.
        message: String,
    },
    /// Another trap (out-of-bounds access, division by zero, …).
    #[error("the plugin trapped: {0}")]
    Trap(String),
    /// Too many calls of this plugin are running.
    #[error("{max} calls of this plugin are already running and none finished within {}ms (raise `max-concurrency`)", waited.as_millis())]
    Busy {
        /// The concurrency limit.
        max: u32,
        /// How long the call waited for a slot.
        waited: Duration,
    },
    /// The runtime's instance pool is full (all plugins together).
    #[error(
        "the runtime is at capacity: {0} (raise the runtime's `max_instances`, or lower plugins' `max-concurrency`)"
    )]
    AtCapacity(String),
    /// The plugin broke the contract (bad JSON content, bad tool list).
    #[error("the plugin broke the tool contract: {0}")]
    Contract(String),
    /// The sandbox could not be set up (e.g. a granted directory vanished).
    #[error("cannot set up the sandbox: {0}")]
    Setup(String),
}

impl CallError {
    /// A short machine-readable name of the failure (`timeout`, `memory-limit`, …).
    pub fn kind(&self) -> &'static str {
        match self {
            CallError::UnknownTool { .. } => "unknown-tool",
            CallError::ArgumentsNotJson(_) => "arguments-not-json",
            CallError::InvalidArguments { .. } => "invalid-arguments",
            CallError::Timeout { .. } => "timeout",
            CallError::MemoryLimit { .. } => "memory-limit",
            CallError::FuelExhausted { .. } => "fuel-exhausted",
            CallError::StackOverflow => "stack-overflow",
            CallError::OutputTooLarge { .. } => "output-too-large",
            CallError::Panic { .. } => "panic",
            CallError::Trap(_) => "trap",
            CallError::Busy { .. } => "busy",
            CallError::AtCapacity(_) => "at-capacity",
            CallError::Contract(_) => "contract",
            CallError::Setup(_) => "setup",
        }
    }
}
