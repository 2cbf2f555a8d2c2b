//! Why a store operation failed.

use crate::db::DbError;
use serde_json::Value;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL names no supported database.
    #[error(
        "storage URL `{0}` is not supported: use sqlite://PATH or postgres://USER@HOST[:PORT]/DB"
    )]
    Url(String),
    /// The database said no.
    #[error("storage: {0}")]
    Db(#[from] DbError),
    /// A stored JSON document did not parse.
    #[error("storage: corrupt JSON in {what}: {message}")]
    Corrupt {
        /// Which record.
        what: String,
        /// The parse error.
        message: String,
    },
    /// The named session does not exist.
    #[error("no session `{0}`")]
    NoSession(String),
    /// The database was migrated by a newer tack than this one.
    #[error(
        "storage: the database has schema version {found}, but this tack knows versions up to \
         {known}: a newer tack upgraded it. Run that tack (or a later one), or restore a backup \
         taken before the upgrade; this tack changes nothing in it"
    )]
    NewerSchema {
        /// The database's version.
        found: i64,
        /// The newest version this build knows.
        known: i64,
    },
}

pub(crate) type Result<T> = std::result::Result<T, StoreError>;

/// Parse a stored JSON document; `what` names the record in the error.
pub(crate) fn json(text: &str, what: impl Into<String>) -> Result<Value> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt {
        what: what.into(),
        message: e.to_string(),
    })
}
