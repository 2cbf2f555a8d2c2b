//! Everything that can stop a publish, sign, verify or fetch. Each refusal names
//! the artifact and the reason, and is its own variant so callers (and tests) can
//! tell them apart.

/// Why an operation on an artifact failed.
#[derive(Debug, thiserror::Error)]
pub enum DistError {
    /// The reference or the host configuration is not usable.
    #[error("{0}")]
    Usage(String),
    /// The registry could not be reached and nothing usable is cached.
    #[error("cannot reach registry {registry} for {reference}: {cause}")]
    Unreachable {
        /// Registry host.
        registry: String,
        /// The artifact.
        reference: String,
        /// The transport error.
        cause: String,
    },
    /// No such repository, tag or digest.
    #[error("{reference} was not found in its registry: {detail}")]
    NotFound {
        /// The artifact.
        reference: String,
        /// The registry's words.
        detail: String,
    },
    /// The registry refused the credentials or the role.
    #[error("{reference}: the registry refused access: {detail}")]
    Denied {
        /// The artifact.
        reference: String,
        /// The registry's words, and how to fix it.
        detail: String,
    },
    /// The manifest's bytes do not hash to the digest they were fetched under.
    #[error(
        "{reference}: the manifest does not match its digest (expected {expected}, got {actual}); it was changed after it was published"
    )]
    TamperedManifest {
        /// The artifact.
        reference: String,
        /// The digest it should have.
        expected: String,
        /// What its bytes hash to.
        actual: String,
    },
    /// A blob (config or layer) does not hash to its descriptor's digest.
    #[error(
        "{reference}: blob {expected} ({what}) does not match its digest (got {actual}); it was changed after it was published"
    )]
    TamperedBlob {
        /// The artifact.
        reference: String,
        /// Which blob.
        what: String,
        /// Its descriptor's digest.
        expected: String,
        /// What its bytes hash to.
        actual: String,
    },
    /// No signature, and the trust policy requires one.
    #[error(
        "{reference} ({digest}) is not signed, and the trust policy requires a signature for namespace `{namespace}`; sign it with `tack sign --key KEY {reference}`"
    )]
    Unsigned {
        /// The artifact.
        reference: String,
        /// Its manifest digest.
        digest: String,
        /// The trust entry that requires it.
        namespace: String,
    },
    /// The namespace has no trust entry, and the host requires signatures by
    /// default (`require-signatures = true`).
    #[error(
        "{reference} ({digest}) is in namespace `{namespace}`, which has no trust entry, and this \
         host requires signatures (`require-signatures = true`): add [trust.{namespace}] with the \
         publisher's keys = [\"….pub\"], or opt the namespace out with \
         [trust.{namespace}] require-signature = false"
    )]
    NoTrustEntry {
        /// The artifact.
        reference: String,
        /// Its manifest digest.
        digest: String,
        /// Its namespace.
        namespace: String,
    },
    /// Signed, but by keys the namespace does not trust.
    #[error(
        "{reference} ({digest}) is signed by {}, which is not a trusted key for namespace `{namespace}`; add the key to [trust.{namespace}] keys only if you trust its holder",
        signers.join(", ")
    )]
    UntrustedSigner {
        /// The artifact.
        reference: String,
        /// Its manifest digest.
        digest: String,
        /// Fingerprints of the keys that signed.
        signers: Vec<String>,
        /// The trust entry.
        namespace: String,
    },
    /// A signature is present but does not verify.
    #[error("{reference} ({digest}): the signature is not valid: {reason}")]
    BadSignature {
        /// The artifact.
        reference: String,
        /// Its manifest digest.
        digest: String,
        /// What is wrong.
        reason: String,
    },
    /// The tag points elsewhere than the lock file pins.
    #[error(
        "{reference} now resolves to {now}, but {lock} pins {locked}: the tag was moved since it was locked; if the change is expected, run `tack pull --update-lock {reference}`"
    )]
    TagMoved {
        /// The artifact.
        reference: String,
        /// The pinned digest.
        locked: String,
        /// What the tag points at now.
        now: String,
        /// The lock file.
        lock: String,
    },
    /// The manifest is not a tack artifact.
    #[error("{reference} is not a tack artifact: {reason}")]
    NotAnArtifact {
        /// The artifact.
        reference: String,
        /// What is wrong.
        reason: String,
    },
    /// Anything else the registry said.
    #[error("{reference}: {detail}")]
    Registry {
        /// The artifact.
        reference: String,
        /// The registry's words.
        detail: String,
    },
    /// Local storage (cache, lock file) failed.
    #[error("{0}")]
    Io(String),
}

impl DistError {
    /// What went wrong without anything a registry sent (its error bodies,
    /// its manifests' contents): the form to show a client of a service that
    /// fetched on its behalf. The full error belongs in the host's log.
    pub fn summary(&self) -> String {
        match self {
            DistError::Unreachable {
                registry,
                reference,
                ..
            } => format!("cannot reach registry {registry} for {reference}"),
            DistError::NotFound { reference, .. } => {
                format!("{reference} was not found in its registry")
            }
            DistError::Denied { reference, .. } => {
                format!("{reference}: the registry refused access")
            }
            DistError::NotAnArtifact { reference, .. } => {
                format!("{reference} is not a tack artifact")
            }
            DistError::Registry { reference, .. } => {
                format!("{reference}: the registry answered with an error")
            }
            DistError::Io(_) => "the host's artifact cache failed".into(),
            // Local facts only: digests, signers, the trust policy, the lock.
            other => other.to_string(),
        }
    }

    /// A short stable name of the variant (for JSON output and tests).
    pub fn kind(&self) -> &'static str {
        match self {
            DistError::Usage(_) => "usage",
            DistError::Unreachable { .. } => "unreachable",
            DistError::NotFound { .. } => "not-found",
            DistError::Denied { .. } => "denied",
            DistError::TamperedManifest { .. } => "tampered-manifest",
            DistError::TamperedBlob { .. } => "tampered-blob",
            DistError::Unsigned { .. } => "unsigned",
            DistError::NoTrustEntry { .. } => "no-trust-entry",
            DistError::UntrustedSigner { .. } => "untrusted-signer",
            DistError::BadSignature { .. } => "bad-signature",
            DistError::TagMoved { .. } => "tag-moved",
            DistError::NotAnArtifact { .. } => "not-an-artifact",
            DistError::Registry { .. } => "registry",
            DistError::Io(_) => "io",
        }
    }
}
