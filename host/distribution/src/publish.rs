//! Publishing, signing and verifying artifacts in a registry.

use crate::client::Registries;
use crate::config::TrustPolicy;
use crate::error::DistError;
use crate::progress::Progress;
use std::collections::BTreeMap;
use tack_artifact::ArtifactRef;
use tack_artifact::signature;
use tack_artifact::{ArtifactConfig, Descriptor, ImageManifest, SigningKey, build_manifest};

/// An artifact ready to publish: config, layers with their bytes, and annotations.
#[derive(Debug, Clone)]
pub struct Artifact {
    /// The config.
    pub config: ArtifactConfig,
    /// Layers, in order, with their bytes.
    pub layers: Vec<(Descriptor, Vec<u8>)>,
    /// `org.opencontainers.image.description`.
    pub description: String,
    /// More manifest annotations (source, licenses, …).
    pub annotations: BTreeMap<String, String>,
}

/// What a publish did.
#[derive(Debug, Clone)]
pub struct Published {
    /// The manifest digest.
    pub digest: String,
    /// Fingerprint of the signing key, when signed.
    pub signer: Option<String>,
    /// Total bytes of config and layers.
    pub size: u64,
}

/// The semver version a publish reference's tag must be.
pub fn version_of(r: &ArtifactRef) -> Result<semver::Version, DistError> {
    let tag = r.tag.as_deref().ok_or_else(|| {
        DistError::Usage(format!(
            "{r}: publish to a version tag, e.g. {}@0.1.0",
            r.repository_url()
        ))
    })?;
    semver::Version::parse(tag).map_err(|e| {
        DistError::Usage(format!(
            "{r}: tack artifacts are tagged with their semver version, and `{tag}` is not one ({e})"
        ))
    })
}

/// Push `artifact` to `r` (whose tag is its version), then sign it with `key`.
pub async fn publish(
    registries: &Registries,
    r: &ArtifactRef,
    artifact: &Artifact,
    key: Option<&SigningKey>,
    progress: &dyn Progress,
) -> Result<Published, DistError> {
    let version = version_of(r)?;
    let mut config = artifact.config.clone();
    config.layer_digests = artifact
        .layers
        .iter()
        .map(|(d, _)| d.digest.clone())
        .collect();
    let config_bytes = config.to_bytes();
    let layers: Vec<Descriptor> = artifact.layers.iter().map(|(d, _)| d.clone()).collect();
    let manifest = build_manifest(
        &config,
        &config_bytes,
        layers,
        &version,
        &artifact.description,
        artifact.annotations.clone(),
    );
    registries
        .push_blob(r, &manifest.config, &config_bytes, "config", progress)
        .await?;
    for (desc, bytes) in &artifact.layers {
        let what = desc
            .annotations
            .get(tack_artifact::layout::annotations::TITLE)
            .cloned()
            .unwrap_or_else(|| desc.media_type.clone());
        registries
            .push_blob(r, desc, bytes, &what, progress)
            .await?;
    }
    let bytes = manifest.to_bytes();
    let digest = registries.push_manifest(r, &bytes).await?;
    let signer = match key {
        Some(key) => Some(
            sign(registries, &r.at_digest(&digest), key, progress)
                .await?
                .1,
        ),
        None => None,
    };
    Ok(Published {
        digest,
        signer,
        size: manifest.config.size + manifest.layers.iter().map(|l| l.size).sum::<u64>(),
    })
}

/// Sign the manifest `r` names with `key`: a simple-signing payload under the
/// `sha256-<hex>.sig` tag, with `subject` set so the referrers API lists it.
/// Returns the signed digest and the signer's fingerprint.
pub async fn sign(
    registries: &Registries,
    r: &ArtifactRef,
    key: &SigningKey,
    progress: &dyn Progress,
) -> Result<(String, String), DistError> {
    let (bytes, digest) = registries.manifest(r).await?;
    let media_type = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|v| {
            v.get("mediaType")
                .and_then(|m| m.as_str())
                .map(str::to_string)
        })
        .unwrap_or_else(|| tack_artifact::oci::IMAGE_MANIFEST.to_string());
    let subject = Descriptor {
        media_type,
        digest: digest.clone(),
        size: bytes.len() as u64,
        annotations: BTreeMap::new(),
        artifact_type: None,
    };
    let tag = signature::signature_tag(&digest);
    let existing = match registries.optional_manifest(r, &tag).await? {
        Some((b, _)) => ImageManifest::from_slice(&b).ok(),
        None => None,
    };
    let (manifest, blobs) =
        signature::signature_manifest(subject, existing.as_ref(), &r.repository_url(), key);
    let sig_ref = r.at_tag(&tag);
    for (desc, bytes) in &blobs {
        registries
            .push_blob(&sig_ref, desc, bytes, "signature", progress)
            .await?;
    }
    registries
        .push_manifest(&sig_ref, &manifest.to_bytes())
        .await?;
    Ok((digest, key.public_key().fingerprint()))
}

/// Check the signature of what `r` names against `trust`, without downloading layers;
/// a signature is required whatever the policy says. Returns the digest and the
/// trusted signer's fingerprint.
pub async fn verify(
    registries: &Registries,
    r: &ArtifactRef,
    trust: &TrustPolicy,
) -> Result<(String, String), DistError> {
    let (_, digest) = registries.manifest(r).await?;
    let Some((ns, entry)) = trust.for_ref(r).filter(|(_, t)| !t.keys.is_empty()) else {
        return Err(DistError::Usage(format!(
            "no trusted keys for namespace `{}`: pass --key KEY.pub or add [trust.{}] keys to the host configuration",
            r.namespace(),
            r.namespace()
        )));
    };
    let strict = TrustPolicy::require(ns, entry.keys.clone());
    let material = crate::fetch::signature_material(registries, r, &digest).await?;
    match crate::fetch::check_signature(&strict, r, &digest, material.as_ref())? {
        Some(check) => Ok((digest, check.signer)),
        None => unreachable!("a required signature is either checked or refused"),
    }
}
