//! The shapes of tack's OCI artifacts, shared by the registry (which indexes them)
//! and the host (which publishes, pulls and verifies them).
//!
//! - [`layout`]: the wkg-compatible layout of a component artifact (config
//!   `application/vnd.wasm.config.v0+json`, one `application/wasm` layer,
//!   `org.opencontainers.image.*` annotations) plus tack's own annotations and
//!   metadata (kind, tools with their JSON Schemas, declared capabilities).
//! - [`skill`]: a skill's `SKILL.md` and the validation of its front matter.
//! - [`signature`]: cosign-compatible signatures: ECDSA P-256 keys in PEM, the
//!   simple-signing payload, and the `sha256-<hex>.sig` signature manifest.
//! - [`oci`]: the OCI image-manifest and descriptor shapes used by all of the above.
//! - [`reference`]: artifact references, `[registry/]repository(:tag | @version | @sha256:<hex>)`.

pub mod layout;
pub mod oci;
pub mod reference;
pub mod signature;
pub mod skill;

pub use layout::{
    ArtifactConfig, Kind, PackageMetadata, ToolInfo, WorldSummary, build_manifest, media_types,
};
pub use oci::{Descriptor, ImageManifest, sha256_digest};
pub use reference::{ArtifactRef, ReferenceError};
pub use signature::{
    PublicKey, SignatureError, SigningKey, SimpleSigning, VerifiedSignature, signature_tag,
};
pub use skill::{Skill, SkillError};
