//! Storage for tack's OCI registry.
//!
//! Everything the registry serves lives under one root directory:
//!
//! ```text
//! root/
//!   blobs/sha256/<first two hex>/<hex>      content, immutable, named by its sha256
//!   uploads/<id>                             resumable upload sessions (chunked pushes)
//!   uploads/<id>.owner                       the repository and subject a session belongs to
//!   uploads/put-<id>                         monolithic writes in flight
//!   repositories/<name>/_tags/<tag>          a tag: the text of a manifest digest
//!   repositories/<name>/_manifests/<hex>     membership of a manifest; holds its media type
//!   repositories/<name>/_referrers/<subject hex>/<hex>   a referrer's descriptor
//! ```
//!
//! Invariants:
//! - A blob is visible under its digest only if its bytes hash to that digest: every
//!   write is hashed while it happens and compared before it is renamed into place;
//!   a mismatch removes the temporary file and leaves nothing behind.
//! - Every visible file appears by `rename` after `fsync`, so a crash mid-write leaves
//!   either the old state or the new one, never a torn file. Leftover monolithic temp
//!   files are removed on [`Store::open`]; upload sessions survive restarts (the OCI
//!   spec lets clients resume them).
//! - Names, tags and digests are validated against the distribution-spec grammars
//!   before they touch a path, so no input can address a file outside the root.

mod blobs;
mod digest;
mod manifests;
mod name;
mod tags;

pub use blobs::{Store, UploadId, UploadOwner};
pub use digest::Digest;
pub use manifests::{Reference, StoredManifest};
pub use name::{RepoName, Tag};

/// What went wrong in the store. Each maps to one distribution-spec error code.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A digest string is malformed or uses an algorithm other than sha256 (`DIGEST_INVALID`).
    #[error("invalid digest `{0}`: expected `sha256:` followed by 64 lowercase hex digits")]
    InvalidDigest(String),
    /// Uploaded content does not hash to the digest the client named (`DIGEST_INVALID`).
    #[error("content does not match digest {expected}: it hashes to {actual}")]
    DigestMismatch {
        /// The digest the client claimed.
        expected: Digest,
        /// What the content hashes to.
        actual: Digest,
    },
    /// A repository name breaks the distribution-spec grammar (`NAME_INVALID`).
    #[error("invalid repository name `{0}`: use lowercase path components like `acme/tools/jq`")]
    InvalidName(String),
    /// A tag breaks the grammar (`TAG_INVALID`/`MANIFEST_INVALID`).
    #[error(
        "invalid tag `{0}`: up to 128 characters of letters, digits, `_`, `.` and `-`, not starting with `.` or `-`"
    )]
    InvalidTag(String),
    /// No blob with that digest (`BLOB_UNKNOWN`).
    #[error("blob {0} is not in the registry")]
    BlobUnknown(Digest),
    /// No such upload session (`BLOB_UPLOAD_UNKNOWN`).
    #[error("upload session `{0}` is unknown or finished")]
    UploadUnknown(String),
    /// A chunk does not start where the upload ends (`BLOB_UPLOAD_INVALID`, 416).
    #[error(
        "chunk starts at byte {got} but the upload has {expected} bytes; resume from {expected}"
    )]
    RangeMismatch {
        /// Bytes the session holds.
        expected: u64,
        /// Where the chunk claimed to start.
        got: u64,
    },
    /// An I/O error under the root.
    #[error("storage error: {0}")]
    Io(#[from] std::io::Error),
}
