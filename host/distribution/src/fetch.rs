//! Resolve, pull, verify and cache: how a host obtains an artifact it will run.
//!
//! Order of checks, each before anything is stored or compiled:
//! 1. the reference resolves to a manifest digest (a digest reference needs no
//!    registry); a tag that now points elsewhere than `tack.lock` pins is refused;
//! 2. the manifest's bytes hash to that digest;
//! 3. the signature (`sha256-<hex>.sig`) verifies against a key the namespace trusts,
//!    when the trust policy requires one;
//! 4. the config and every layer hash to their descriptors' digests.
//!
//! Only then is the artifact written to the cache (atomically) and the lock updated.
//! A cached artifact is re-hashed on read and its stored signature re-checked against
//! the current trust policy. When the registry cannot be reached, a tag resolves
//! through the lock file or the cache's record of its last resolution.

use crate::cache::{ArtifactCache, CachedArtifact};
use crate::client::Registries;
use crate::config::TrustPolicy;
use crate::error::DistError;
use crate::lock::LockFile;
use crate::progress::Progress;
use base64_free::encode_payloads;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use tack_artifact::ArtifactRef;
use tack_artifact::signature::{self, SignatureError};
use tack_artifact::{ImageManifest, media_types};

/// What is known about an artifact's signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SignatureCheck {
    /// Fingerprint of the key that signed.
    pub signer: String,
    /// The repository the signer published to.
    pub identity: String,
    /// Whether the signer is trusted by the namespace's trust entry.
    pub trusted: bool,
}

/// Where a fetched artifact came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// Downloaded now.
    Registry,
    /// From the cache, the tag resolved online.
    Cache,
    /// From the cache, the registry unreachable.
    Offline,
}

/// A verified artifact, ready to compile.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The reference as given.
    pub reference: ArtifactRef,
    /// Its manifest digest.
    pub digest: String,
    /// Its manifest.
    pub manifest: ImageManifest,
    /// Its config bytes.
    pub config: Vec<u8>,
    /// Its component, if it has one.
    pub component: Option<Vec<u8>>,
    /// Its `SKILL.md`, if it is a skill.
    pub skill: Option<String>,
    /// Its signature, if signed.
    pub signature: Option<SignatureCheck>,
    /// Where it came from.
    pub source: Source,
}

/// Options of one fetch.
#[derive(Debug, Clone, Default)]
pub struct FetchOptions {
    /// Re-pin the reference in the lock file to what it resolves to now.
    pub update_lock: bool,
}

/// Obtains artifacts for a host.
pub struct Fetcher {
    registries: Registries,
    trust: TrustPolicy,
    cache: ArtifactCache,
    lock: Option<PathBuf>,
}

/// The signature manifest and its payloads, as fetched or cached.
pub(crate) struct SignatureMaterial {
    manifest: ImageManifest,
    payloads: BTreeMap<String, Vec<u8>>,
}

mod base64_free {
    //! Payloads are JSON text; they are stored as strings, not base64.
    use std::collections::BTreeMap;

    pub(super) fn encode_payloads(p: &BTreeMap<String, Vec<u8>>) -> BTreeMap<String, String> {
        p.iter()
            .map(|(k, v)| (k.clone(), String::from_utf8_lossy(v).into_owned()))
            .collect()
    }
}

impl Fetcher {
    /// A fetcher over `registries`, checking `trust`, caching in `cache`, pinning in
    /// the lock file `lock` (none: no pinning).
    pub fn new(
        registries: Registries,
        trust: TrustPolicy,
        cache: ArtifactCache,
        lock: Option<PathBuf>,
    ) -> Fetcher {
        Fetcher {
            registries,
            trust,
            cache,
            lock,
        }
    }

    /// The cache.
    pub fn cache(&self) -> &ArtifactCache {
        &self.cache
    }

    /// Resolve, verify and cache `r`.
    pub async fn fetch(
        &self,
        r: &ArtifactRef,
        options: &FetchOptions,
        progress: &dyn Progress,
    ) -> Result<Fetched, DistError> {
        let mut lock = match &self.lock {
            Some(p) => Some(LockFile::load(p).map_err(DistError::Usage)?),
            None => None,
        };
        let key = r.to_string();
        let locked = lock.as_ref().and_then(|l| l.get(&key)).map(str::to_string);
        let (digest, online) = match &r.digest {
            Some(d) => (d.clone(), true),
            None => match self.registries.resolve(r).await {
                Ok(now) => {
                    if let Some(locked) = &locked
                        && *locked != now
                        && !options.update_lock
                    {
                        return Err(DistError::TagMoved {
                            reference: key,
                            locked: locked.clone(),
                            now,
                            lock: self.lock.as_ref().expect("locked").display().to_string(),
                        });
                    }
                    (now, true)
                }
                Err(DistError::Unreachable {
                    registry,
                    reference,
                    cause,
                }) => match locked.clone().or_else(|| self.cache.lookup_ref(&key)) {
                    Some(d) if self.cache.contains(&d) => (d, false),
                    _ => {
                        return Err(DistError::Unreachable {
                            registry,
                            reference,
                            cause: format!("{cause} (and it is not in the artifact cache)"),
                        });
                    }
                },
                Err(e) => return Err(e),
            },
        };

        let fetched = match self.cache.get(&digest) {
            Some(cached) => self.use_cached(r, cached, online)?,
            None => self.download(r, &digest, progress).await?,
        };
        if r.digest.is_none() {
            self.cache
                .record_ref(&key, &digest)
                .map_err(|e| DistError::Io(format!("cannot record {key} in the cache: {e}")))?;
            if let Some(lock) = &mut lock
                && lock.get(&key) != Some(&digest)
            {
                lock.set(&key, &digest);
                lock.save().map_err(|e| {
                    DistError::Io(format!("cannot write {}: {e}", lock.path().display()))
                })?;
            }
        }
        Ok(fetched)
    }

    fn use_cached(
        &self,
        r: &ArtifactRef,
        c: CachedArtifact,
        online: bool,
    ) -> Result<Fetched, DistError> {
        let material = c.signature.as_ref().and_then(|v| {
            let manifest: ImageManifest =
                serde_json::from_value(v.get("manifest")?.clone()).ok()?;
            let payloads = v
                .get("payloads")?
                .as_object()?
                .iter()
                .map(|(k, p)| {
                    (
                        k.clone(),
                        p.as_str().unwrap_or_default().as_bytes().to_vec(),
                    )
                })
                .collect();
            Some(SignatureMaterial { manifest, payloads })
        });
        let signature = check_signature(&self.trust, r, &c.digest, material.as_ref())?;
        let manifest = ImageManifest::from_slice(&c.manifest)
            .map_err(|e| DistError::Io(format!("cached manifest of {r}: {e}")))?;
        Ok(Fetched {
            reference: r.clone(),
            digest: c.digest,
            manifest,
            config: c.config,
            component: c.component,
            skill: c.skill,
            signature,
            source: if online {
                Source::Cache
            } else {
                Source::Offline
            },
        })
    }

    async fn download(
        &self,
        r: &ArtifactRef,
        digest: &str,
        progress: &dyn Progress,
    ) -> Result<Fetched, DistError> {
        let at = r.at_digest(digest);
        let (bytes, _) = self.registries.manifest(&at).await?;
        let manifest = ImageManifest::from_slice(&bytes).map_err(|e| DistError::NotAnArtifact {
            reference: r.to_string(),
            reason: format!("its manifest is not an OCI image manifest ({e})"),
        })?;
        // Any config type is accepted (other tools write their own); what matters
        // is a wasm or SKILL.md layer, checked below.
        // The signature first: an untrusted artifact costs no layer download.
        let material = signature_material(&self.registries, r, digest).await?;
        let signature = check_signature(&self.trust, r, digest, material.as_ref())?;

        let config = self
            .registries
            .blob(&at, &manifest.config, "config", progress)
            .await?;
        let mut component = None;
        let mut skill = None;
        for layer in &manifest.layers {
            match layer.media_type.as_str() {
                t if media_types::is_wasm_layer(t) && component.is_none() => {
                    let what = format!("{} component", r.repository);
                    component = Some(self.registries.blob(&at, layer, &what, progress).await?);
                }
                media_types::SKILL_LAYER if skill.is_none() => {
                    let b = self
                        .registries
                        .blob(&at, layer, "SKILL.md", progress)
                        .await?;
                    skill = Some(String::from_utf8(b).map_err(|_| DistError::NotAnArtifact {
                        reference: r.to_string(),
                        reason: "its SKILL.md is not UTF-8".into(),
                    })?);
                }
                _ => {}
            }
        }
        if component.is_none() && skill.is_none() {
            return Err(DistError::NotAnArtifact {
                reference: r.to_string(),
                reason: format!(
                    "it has no `{}` or `{}` layer",
                    media_types::WASM_LAYER,
                    media_types::SKILL_LAYER
                ),
            });
        }
        let cached = CachedArtifact {
            digest: digest.to_string(),
            manifest: bytes,
            config: config.clone(),
            component: component.clone(),
            skill: skill.clone(),
            signature: material.map(|m| {
                serde_json::json!({
                    "manifest": m.manifest,
                    "payloads": encode_payloads(&m.payloads),
                })
            }),
        };
        self.cache
            .put(&cached)
            .map_err(|e| DistError::Io(format!("cannot cache {r}: {e}")))?;
        Ok(Fetched {
            reference: r.clone(),
            digest: digest.to_string(),
            manifest,
            config,
            component,
            skill,
            signature,
            source: Source::Registry,
        })
    }
}

/// The signature manifest of `digest` in `r`'s repository and its payloads, if any.
pub(crate) async fn signature_material(
    registries: &Registries,
    r: &ArtifactRef,
    digest: &str,
) -> Result<Option<SignatureMaterial>, DistError> {
    let tag = signature::signature_tag(digest);
    let Some((bytes, _)) = registries.optional_manifest(r, &tag).await? else {
        return Ok(None);
    };
    let at = r.at_tag(&tag);
    let manifest = ImageManifest::from_slice(&bytes).map_err(|e| DistError::BadSignature {
        reference: r.to_string(),
        digest: digest.to_string(),
        reason: format!("the signature manifest is not valid ({e})"),
    })?;
    let mut payloads = BTreeMap::new();
    for layer in signature::signature_layers(&manifest) {
        let p = registries
            .blob(
                &at,
                layer,
                "signature payload",
                &crate::progress::NoProgress,
            )
            .await?;
        payloads.insert(layer.digest.clone(), p);
    }
    Ok(Some(SignatureMaterial { manifest, payloads }))
}

/// Check `material` (the signatures of `digest`) against `trust`: a refusal when the
/// namespace requires a signature it lacks, else who signed and whether trusted.
pub(crate) fn check_signature(
    trust: &TrustPolicy,
    r: &ArtifactRef,
    digest: &str,
    material: Option<&SignatureMaterial>,
) -> Result<Option<SignatureCheck>, DistError> {
    let entry = trust.for_ref(r);
    if entry.is_none() && trust.require_by_default {
        return Err(DistError::NoTrustEntry {
            reference: r.to_string(),
            digest: digest.to_string(),
            namespace: r.namespace().to_string(),
        });
    }
    let required = entry.is_some_and(|(_, t)| t.require_signature);
    let Some(m) = material else {
        if required {
            return Err(DistError::Unsigned {
                reference: r.to_string(),
                digest: digest.to_string(),
                namespace: entry.expect("required").0.to_string(),
            });
        }
        return Ok(None);
    };
    let keys = entry
        .map(|(_, t)| t.keys.as_slice())
        .filter(|k| !k.is_empty());
    let outcome = signature::verify_manifest(&m.manifest, &m.payloads, digest, keys);
    match (outcome, required) {
        (Ok(v), _) => Ok(Some(SignatureCheck {
            signer: v.signer,
            identity: v.identity,
            trusted: keys.is_some(),
        })),
        (Err(SignatureError::Untrusted { signers }), true) => Err(DistError::UntrustedSigner {
            reference: r.to_string(),
            digest: digest.to_string(),
            signers,
            namespace: entry.expect("required").0.to_string(),
        }),
        (Err(e), true) => Err(DistError::BadSignature {
            reference: r.to_string(),
            digest: digest.to_string(),
            reason: e.to_string(),
        }),
        // Not required: report who signed, if anyone verifiably did.
        (Err(_), false) => Ok(
            signature::verify_manifest(&m.manifest, &m.payloads, digest, None)
                .ok()
                .map(|v| SignatureCheck {
                    signer: v.signer,
                    identity: v.identity,
                    trusted: false,
                }),
        ),
    }
}
