//! The artifact cache: verified artifacts by manifest digest, and the digest each
//! reference last resolved to (so a host can start with no registry reachable).
//!
//! Layout under the root (default `~/.cache/tack/artifacts`):
//! - `sha256/<hex>/`: `manifest.json`, `config.json`, `component.wasm` and/or
//!   `SKILL.md`, and `signature.json` (the signature manifest and payloads, kept so
//!   the signature is checked again against the trust policy of the day).
//! - `refs/<sha256 of reference>`: `reference\ndigest`.
//!
//! Only verified artifacts are written, each into a temporary directory renamed
//! into place, so a reader never sees half an entry and a refusal leaves nothing.
//! Reading re-hashes every file against the manifest.

use sha2::{Digest as _, Sha256};
use std::path::{Path, PathBuf};

/// Write `bytes` to `path` through a temporary file and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file"),
        random_suffix()
    ));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

fn random_suffix() -> String {
    let mut b = [0u8; 6];
    getrandom::fill(&mut b).expect("the OS random generator works");
    hex::encode(b)
}

/// A cached, previously verified artifact.
#[derive(Debug, Clone)]
pub struct CachedArtifact {
    /// Manifest digest.
    pub digest: String,
    /// Manifest bytes.
    pub manifest: Vec<u8>,
    /// Config bytes.
    pub config: Vec<u8>,
    /// The component, if the artifact has one.
    pub component: Option<Vec<u8>>,
    /// The `SKILL.md`, if the artifact is a skill.
    pub skill: Option<String>,
    /// The signature manifest and payloads, if it was signed.
    pub signature: Option<serde_json::Value>,
}

/// The cache.
#[derive(Debug, Clone)]
pub struct ArtifactCache {
    root: PathBuf,
}

impl ArtifactCache {
    /// A cache at `root`.
    pub fn new(root: impl Into<PathBuf>) -> ArtifactCache {
        ArtifactCache { root: root.into() }
    }

    /// `$TACK_ARTIFACT_DIR`, else `$XDG_CACHE_HOME/tack/artifacts`, else `~/.cache/tack/artifacts`.
    pub fn default_dir() -> Option<PathBuf> {
        if let Some(d) = std::env::var_os("TACK_ARTIFACT_DIR") {
            return Some(PathBuf::from(d));
        }
        let base = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
        Some(base.join("tack").join("artifacts"))
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn entry_dir(&self, digest: &str) -> Option<PathBuf> {
        let hex = digest.strip_prefix("sha256:")?;
        (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| self.root.join("sha256").join(hex))
    }

    fn ref_path(&self, reference: &str) -> PathBuf {
        self.root
            .join("refs")
            .join(hex::encode(Sha256::digest(reference.as_bytes())))
    }

    /// The digest `reference` last resolved to.
    pub fn lookup_ref(&self, reference: &str) -> Option<String> {
        let text = std::fs::read_to_string(self.ref_path(reference)).ok()?;
        let (r, d) = text.split_once('\n')?;
        (r == reference).then(|| d.trim().to_string())
    }

    /// Record that `reference` resolved to `digest`.
    pub fn record_ref(&self, reference: &str, digest: &str) -> std::io::Result<()> {
        write_atomic(
            &self.ref_path(reference),
            format!("{reference}\n{digest}\n").as_bytes(),
        )
    }

    /// Whether `digest` is cached (without verifying it).
    pub fn contains(&self, digest: &str) -> bool {
        self.entry_dir(digest)
            .is_some_and(|d| d.join("manifest.json").is_file())
    }

    /// The cached artifact `digest`, re-hashed; `None` if absent or damaged (a damaged
    /// entry is removed, so the next fetch replaces it).
    pub fn get(&self, digest: &str) -> Option<CachedArtifact> {
        let dir = self.entry_dir(digest)?;
        let read = |name: &str| std::fs::read(dir.join(name)).ok();
        let manifest = read("manifest.json")?;
        let check = || -> Option<CachedArtifact> {
            if tack_artifact::sha256_digest(&manifest) != digest {
                return None;
            }
            let m = tack_artifact::ImageManifest::from_slice(&manifest).ok()?;
            let config = read("config.json")?;
            if tack_artifact::sha256_digest(&config) != m.config.digest {
                return None;
            }
            let mut component = None;
            let mut skill = None;
            // The first wasm and the first SKILL.md layer, as the fetcher keeps them.
            for layer in &m.layers {
                let Some(name) = layer_file(&layer.media_type) else {
                    continue;
                };
                let taken = match name {
                    "component.wasm" => component.is_some(),
                    _ => skill.is_some(),
                };
                if taken {
                    continue;
                }
                let bytes = read(name)?;
                if tack_artifact::sha256_digest(&bytes) != layer.digest {
                    return None;
                }
                match name {
                    "component.wasm" => component = Some(bytes),
                    _ => skill = Some(String::from_utf8(bytes).ok()?),
                }
            }
            let signature = read("signature.json").and_then(|b| serde_json::from_slice(&b).ok());
            Some(CachedArtifact {
                digest: digest.to_string(),
                manifest: manifest.clone(),
                config,
                component,
                skill,
                signature,
            })
        };
        let found = check();
        if found.is_none() {
            tracing::warn!("cached artifact {digest} is damaged; removing it");
            let _ = std::fs::remove_dir_all(&dir);
        }
        found
    }

    /// Store a verified artifact (atomically: all files or none).
    pub fn put(&self, a: &CachedArtifact) -> std::io::Result<()> {
        let Some(dir) = self.entry_dir(&a.digest) else {
            return Err(std::io::Error::other(format!("bad digest {}", a.digest)));
        };
        if dir.join("manifest.json").is_file() {
            return Ok(());
        }
        let tmp = self.root.join("tmp").join(random_suffix());
        std::fs::create_dir_all(&tmp)?;
        let write = |name: &str, bytes: &[u8]| -> std::io::Result<()> {
            use std::io::Write;
            let mut f = std::fs::File::create(tmp.join(name))?;
            f.write_all(bytes)?;
            f.sync_all()
        };
        let result = (|| {
            write("manifest.json", &a.manifest)?;
            write("config.json", &a.config)?;
            if let Some(c) = &a.component {
                write("component.wasm", c)?;
            }
            if let Some(s) = &a.skill {
                write("SKILL.md", s.as_bytes())?;
            }
            if let Some(sig) = &a.signature {
                write("signature.json", &serde_json::to_vec(sig).expect("json"))?;
            }
            std::fs::create_dir_all(dir.parent().expect("entry dirs have a parent"))?;
            match std::fs::rename(&tmp, &dir) {
                Ok(()) => Ok(()),
                // Another process stored it first.
                Err(_) if dir.join("manifest.json").is_file() => Ok(()),
                Err(e) => Err(e),
            }
        })();
        let _ = std::fs::remove_dir_all(&tmp);
        result
    }

    /// Digests of every cached artifact.
    pub fn digests(&self) -> Vec<String> {
        let Ok(rd) = std::fs::read_dir(self.root.join("sha256")) else {
            return Vec::new();
        };
        rd.filter_map(Result::ok)
            .filter_map(|e| e.file_name().to_str().map(|h| format!("sha256:{h}")))
            .collect()
    }
}

/// The cache file name of a layer media type, or `None` if tack does not use it.
pub(crate) fn layer_file(media_type: &str) -> Option<&'static str> {
    use tack_artifact::media_types;
    if media_types::is_wasm_layer(media_type) {
        Some("component.wasm")
    } else if media_type == media_types::SKILL_LAYER {
        Some("SKILL.md")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tack_artifact::{Descriptor, ImageManifest, media_types};

    fn artifact() -> CachedArtifact {
        let config = b"{}".to_vec();
        let wasm = b"\0asm\x0d\0\x01\0".to_vec();
        let m = ImageManifest::new(
            Descriptor::of(media_types::WASM_CONFIG, &config),
            vec![
                Descriptor::of("application/x-unrelated", b"zzz"),
                Descriptor::of(media_types::WASM_LAYER, &wasm),
            ],
        );
        let manifest = m.to_bytes();
        CachedArtifact {
            digest: tack_artifact::sha256_digest(&manifest),
            manifest,
            config,
            component: Some(wasm),
            skill: None,
            signature: None,
        }
    }

    #[test]
    fn entries_round_trip_and_damage_is_detected_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ArtifactCache::new(dir.path());
        let a = artifact();
        assert!(cache.get(&a.digest).is_none());
        cache.put(&a).unwrap();
        let back = cache.get(&a.digest).unwrap();
        assert_eq!(back.component, a.component);
        cache.record_ref("r/x:1.0.0", &a.digest).unwrap();
        assert_eq!(cache.lookup_ref("r/x:1.0.0"), Some(a.digest.clone()));
        assert_eq!(cache.lookup_ref("r/x:2.0.0"), None);
        // Flip a byte of the cached component: the entry is refused and removed.
        let hex = a.digest.strip_prefix("sha256:").unwrap();
        let wasm = dir.path().join("sha256").join(hex).join("component.wasm");
        let mut bytes = std::fs::read(&wasm).unwrap();
        bytes[0] ^= 1;
        std::fs::write(&wasm, bytes).unwrap();
        assert!(cache.get(&a.digest).is_none());
        assert!(!cache.contains(&a.digest));
        assert!(
            cache.get("sha256:../../etc").is_none(),
            "digests are validated"
        );
    }
}
