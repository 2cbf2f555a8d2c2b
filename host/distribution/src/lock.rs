//! `tack.lock`: each artifact reference pinned to the manifest digest it first
//! resolved to, so that a tag moved since then is detected rather than followed.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// One pinned reference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockEntry {
    /// The reference as resolved (`registry/repository:tag`).
    pub reference: String,
    /// The manifest digest it resolved to.
    pub digest: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct LockDoc {
    version: u32,
    #[serde(default, rename = "artifact")]
    artifacts: Vec<LockEntry>,
}

/// A lock file, loaded.
#[derive(Debug)]
pub struct LockFile {
    path: PathBuf,
    doc: LockDoc,
}

const HEADER: &str = "# tack.lock: written by tack. Each artifact reference is pinned to the manifest\n# digest it resolved to; a tag that moves is refused until the entry is updated\n# (`tack pull --update-lock REF`).\n";

impl LockFile {
    /// Load `path` (an absent file is an empty lock).
    pub fn load(path: &Path) -> Result<LockFile, String> {
        let doc = match std::fs::read_to_string(path) {
            Ok(text) => {
                let doc: LockDoc = toml::from_str(&text)
                    .map_err(|e| format!("{} is not a valid lock file: {e}", path.display()))?;
                if doc.version != 1 {
                    return Err(format!(
                        "{} has lock format version {}; this tack reads version 1",
                        path.display(),
                        doc.version
                    ));
                }
                doc
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => LockDoc {
                version: 1,
                artifacts: Vec::new(),
            },
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        Ok(LockFile {
            path: path.to_path_buf(),
            doc,
        })
    }

    /// Where the lock lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The digest `reference` is pinned to.
    pub fn get(&self, reference: &str) -> Option<&str> {
        self.doc
            .artifacts
            .iter()
            .find(|e| e.reference == reference)
            .map(|e| e.digest.as_str())
    }

    /// Pin `reference` to `digest`.
    pub fn set(&mut self, reference: &str, digest: &str) {
        match self
            .doc
            .artifacts
            .iter_mut()
            .find(|e| e.reference == reference)
        {
            Some(e) => e.digest = digest.to_string(),
            None => self.doc.artifacts.push(LockEntry {
                reference: reference.to_string(),
                digest: digest.to_string(),
            }),
        }
        self.doc
            .artifacts
            .sort_by(|a, b| a.reference.cmp(&b.reference));
    }

    /// The pinned entries.
    pub fn entries(&self) -> &[LockEntry] {
        &self.doc.artifacts
    }

    /// Write the lock atomically.
    pub fn save(&self) -> std::io::Result<()> {
        let body = toml::to_string(&self.doc).expect("a lock serializes");
        crate::cache::write_atomic(&self.path, format!("{HEADER}{body}").as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_round_trip_and_a_bad_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tack.lock");
        let mut lock = LockFile::load(&path).unwrap();
        assert!(lock.get("r/a:1.0.0").is_none());
        lock.set("r/a:1.0.0", "sha256:aa");
        lock.set("r/a:1.0.0", "sha256:bb");
        lock.save().unwrap();
        let again = LockFile::load(&path).unwrap();
        assert_eq!(again.get("r/a:1.0.0"), Some("sha256:bb"));
        assert_eq!(again.entries().len(), 1);
        std::fs::write(&path, "version = 9\n").unwrap();
        assert!(LockFile::load(&path).unwrap_err().contains("version 9"));
    }
}
