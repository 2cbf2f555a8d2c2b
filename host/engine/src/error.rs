//! Engine errors, each mapping to one HTTP status in the API.

/// Why an engine operation was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The request is malformed or names something invalid (400).
    #[error("{0}")]
    Invalid(String),
    /// The thing named does not exist (404).
    #[error("{0}")]
    NotFound(String),
    /// The state does not allow it (already decided, not waiting) (409).
    #[error("{0}")]
    Conflict(String),
    /// The caller's role may not do this (403).
    #[error("{0}")]
    Forbidden(String),
    /// An agent's components or configuration cannot be resolved (422).
    #[error("{0}")]
    Resolve(String),
    /// The durable store failed (500/503).
    #[error("store: {0}")]
    Store(#[from] tack_store::StoreError),
}
