//! Engine errors, each mapping to one HTTP status in the API. Errors that wrap
//! another keep it as their `source()`, so a caller can look past the message.

/// Any error a component source, the runtime or the secret store returned.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why an engine operation was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The request is malformed or names something invalid (400).
    #[error("{0}")]
    Invalid(String),
    /// The agent file is malformed, holds something credential-shaped, or
    /// names what this host does not offer (400).
    #[error(transparent)]
    Agent(#[from] tack_agent::AgentError),
    /// The thing named does not exist (404).
    #[error("{0}")]
    NotFound(String),
    /// The state does not allow it (already decided, not waiting) (409).
    #[error("{0}")]
    Conflict(String),
    /// The caller's role may not do this (403).
    #[error("{0}")]
    Forbidden(String),
    /// The caller has used up a quota of the host's `[limits]` (429).
    #[error("{0}")]
    Quota(String),
    /// An agent's components or configuration cannot be resolved (422).
    #[error("{0}")]
    Resolve(String),
    /// Resolving an agent failed on what `context` names, because of `source`
    /// (a refused artifact, a component that does not load, a missing secret)
    /// (422).
    #[error("{context}: {source}")]
    ResolveFailed {
        /// What was being resolved (`tool plugin `acme/jq@0.1.0``).
        context: String,
        /// Why.
        source: BoxError,
    },
    /// The durable store failed (500/503).
    #[error("store: {0}")]
    Store(#[from] tack_store::StoreError),
}

impl EngineError {
    /// Resolving `context` failed because of `source`.
    pub(crate) fn resolving(context: impl Into<String>, source: impl Into<BoxError>) -> Self {
        EngineError::ResolveFailed {
            context: context.into(),
            source: source.into(),
        }
    }
}
