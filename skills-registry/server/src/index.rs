//! The browse index: every tack artifact (a manifest with the wkg config type under
//! a semver tag) with its metadata and signature status, kept in memory, built once
//! at start and refreshed per repository whenever a manifest or tag there changes.
//! Browse requests read only this index, never the blobs.

use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::RwLock;
use tack_artifact::signature;
use tack_artifact::{ImageManifest, Kind, PackageMetadata};
use tack_registry_store::{Digest, Reference, RepoName, Store, StoreError, Tag};

/// Signature status of one version, as far as the registry can tell.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SignatureStatus {
    /// `signed` (a signature that verifies against the key it records) or `unsigned`.
    pub status: &'static str,
    /// Fingerprint of the signing key, when signed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signer: Option<String>,
    /// The repository the signer published to, when signed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// Why a present signature manifest did not verify.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// One indexed version.
#[derive(Debug, Clone, Serialize)]
pub struct VersionEntry {
    /// Manifest digest.
    pub digest: String,
    /// Metadata from the manifest and config.
    #[serde(flatten)]
    pub meta: PackageMetadata,
    /// Signature status.
    pub signature: SignatureStatus,
}

/// One indexed package (repository).
#[derive(Debug, Clone, Serialize)]
pub struct Package {
    /// Repository name.
    pub name: String,
    /// Versions, newest first.
    pub versions: Vec<VersionEntry>,
}

impl Package {
    /// The newest version.
    pub fn latest(&self) -> &VersionEntry {
        &self.versions[0]
    }
}

/// The index.
#[derive(Default)]
pub struct Index {
    packages: RwLock<BTreeMap<String, Package>>,
}

impl Index {
    /// Build the index of everything in `store`.
    pub fn build(store: &Store) -> Result<Index, StoreError> {
        let index = Index::default();
        for repo in store.catalog(None, None)? {
            index.refresh(store, &repo)?;
        }
        Ok(index)
    }

    /// Re-read `repo`'s tags (after a push or delete there).
    pub fn refresh(&self, store: &Store, repo: &RepoName) -> Result<(), StoreError> {
        let mut versions = Vec::new();
        for tag in store.tags(repo, None, None)? {
            let Ok(version) = semver::Version::parse(tag.as_str()) else {
                continue;
            };
            let Some(m) = store.manifest(repo, &Reference::Tag(tag.clone()))? else {
                continue;
            };
            let Ok(manifest) = ImageManifest::from_slice(&m.bytes) else {
                continue;
            };
            let Ok(config_digest) = manifest.config.digest.parse::<Digest>() else {
                continue;
            };
            let config = match store.read_blob(&config_digest) {
                Ok(c) => c,
                Err(StoreError::BlobUnknown(_)) => continue,
                Err(e) => return Err(e),
            };
            let Some(mut meta) = PackageMetadata::read(&manifest, &config) else {
                continue;
            };
            meta.version = version.to_string();
            let signature = signature_status(store, repo, &m.digest)?;
            versions.push((
                version,
                VersionEntry {
                    digest: m.digest.to_string(),
                    meta,
                    signature,
                },
            ));
        }
        versions.sort_by(|a, b| b.0.cmp(&a.0));
        let mut packages = self.packages.write().unwrap();
        if versions.is_empty() {
            packages.remove(repo.as_str());
        } else {
            packages.insert(
                repo.to_string(),
                Package {
                    name: repo.to_string(),
                    versions: versions.into_iter().map(|(_, v)| v).collect(),
                },
            );
        }
        Ok(())
    }

    /// One package.
    pub fn package(&self, name: &str) -> Option<Package> {
        self.packages.read().unwrap().get(name).cloned()
    }

    /// Packages after `last` (by name) matching `query` (case-insensitive, in name,
    /// description or tool names) and `kind`, for which `visible` holds, at most `n`.
    pub fn list(
        &self,
        query: Option<&str>,
        kind: Option<Kind>,
        last: Option<&str>,
        n: usize,
        visible: impl Fn(&str) -> bool,
    ) -> (Vec<Package>, bool) {
        let query = query.map(str::to_lowercase);
        let packages = self.packages.read().unwrap();
        let range = match last {
            Some(l) => {
                packages.range::<str, _>((std::ops::Bound::Excluded(l), std::ops::Bound::Unbounded))
            }
            None => packages.range::<str, _>(..),
        };
        let mut out = Vec::new();
        for (name, p) in range {
            let latest = p.latest();
            if kind.is_some_and(|k| latest.meta.kind != k) || !visible(name) {
                continue;
            }
            if let Some(q) = &query {
                let hit = name.to_lowercase().contains(q)
                    || latest.meta.description.to_lowercase().contains(q)
                    || latest
                        .meta
                        .tools
                        .iter()
                        .any(|t| t.name.to_lowercase().contains(q));
                if !hit {
                    continue;
                }
            }
            if out.len() == n {
                return (out, true);
            }
            out.push(p.clone());
        }
        (out, false)
    }
}

fn signature_status(
    store: &Store,
    repo: &RepoName,
    digest: &Digest,
) -> Result<SignatureStatus, StoreError> {
    let unsigned = SignatureStatus {
        status: "unsigned",
        signer: None,
        identity: None,
        problem: None,
    };
    let Ok(tag) = signature::signature_tag(&digest.to_string()).parse::<Tag>() else {
        return Ok(unsigned);
    };
    let Some(sig) = store.manifest(repo, &Reference::Tag(tag))? else {
        return Ok(unsigned);
    };
    let Ok(manifest) = ImageManifest::from_slice(&sig.bytes) else {
        return Ok(SignatureStatus {
            problem: Some("the signature manifest is not valid JSON".into()),
            ..unsigned
        });
    };
    let mut payloads = std::collections::BTreeMap::new();
    for d in signature::signature_layers(&manifest) {
        if let Ok(Ok(p)) = d.digest.parse::<Digest>().map(|dg| store.read_blob(&dg)) {
            payloads.insert(d.digest.clone(), p);
        }
    }
    Ok(
        match signature::verify_manifest(&manifest, &payloads, &digest.to_string(), None) {
            Ok(v) => SignatureStatus {
                status: "signed",
                signer: Some(v.signer),
                identity: Some(v.identity),
                problem: None,
            },
            Err(e) => SignatureStatus {
                problem: Some(e.to_string()),
                ..unsigned
            },
        },
    )
}
