//! tack's side of OCI registries: publish, sign, resolve, pull, verify, lock and
//! cache artifacts, against any registry that follows the distribution spec.
//!
//! - [`config`]: registries, credentials and the trust policy from the host configuration.
//! - [`client`]: oci-client per registry, every byte checked against its digest.
//! - [`publish`]: push an artifact, sign it (cosign-compatible), verify a signature.
//! - [`fetch`]: resolve → lock check → manifest → signature → layers → cache.
//! - [`cache`], [`lock`]: the artifact cache and `tack.lock`.
//! - [`error`]: one variant per refusal, each naming the artifact and the reason.

pub mod cache;
pub mod client;
pub mod config;
pub mod error;
pub mod fetch;
pub mod lock;
pub mod progress;
pub mod publish;

pub use cache::ArtifactCache;
pub use client::Registries;
pub use config::{DistributionConfig, TrustPolicy};
pub use error::DistError;
pub use fetch::{FetchOptions, Fetched, Fetcher, SignatureCheck, Source};
pub use lock::LockFile;
pub use progress::{NoProgress, Progress, Transfer};
pub use publish::{Artifact, Published};
pub use tack_artifact::{ArtifactRef, ReferenceError};
