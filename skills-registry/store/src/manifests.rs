//! Manifests, repository membership, referrers and the catalog.
//!
//! A manifest's bytes are stored as a blob (so they are content-addressed and
//! verified like any blob); a link file `repositories/<name>/_manifests/<hex>` makes
//! it part of a repository and records its media type. A manifest is served from a
//! repository only through such a link, so pushing to one repository never exposes
//! content in another.

use crate::{Digest, RepoName, Store, StoreError, Tag};
use std::fs;
use std::io;
use std::path::PathBuf;

/// A manifest reference: a tag or a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    /// By tag, e.g. `1.2.0`.
    Tag(Tag),
    /// By digest.
    Digest(Digest),
}

impl std::str::FromStr for Reference {
    type Err = StoreError;

    /// `sha256:…` is a digest, anything else must be a valid tag.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.contains(':') {
            Ok(Reference::Digest(s.parse()?))
        } else {
            Ok(Reference::Tag(s.parse()?))
        }
    }
}

/// A stored manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredManifest {
    /// Its digest.
    pub digest: Digest,
    /// Its media type, as pushed.
    pub media_type: String,
    /// Its bytes, exactly as pushed.
    pub bytes: Vec<u8>,
}

impl Store {
    fn repo_dir(&self, repo: &RepoName) -> PathBuf {
        let mut dir = self.root().join("repositories");
        for c in repo.components() {
            dir.push(c);
        }
        dir
    }

    fn link_path(&self, repo: &RepoName, digest: &Digest) -> PathBuf {
        self.repo_dir(repo).join("_manifests").join(digest.hex())
    }

    /// Store a manifest in `repo` under `reference`. When the reference is a
    /// digest, the bytes must hash to it. Returns the manifest's digest.
    pub fn put_manifest(
        &self,
        repo: &RepoName,
        reference: &Reference,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<Digest, StoreError> {
        let digest = Digest::of(bytes);
        if let Reference::Digest(claimed) = reference
            && *claimed != digest
        {
            return Err(StoreError::DigestMismatch {
                expected: claimed.clone(),
                actual: digest,
            });
        }
        self.put_blob(&digest, bytes)?;
        self.write_atomic(&self.link_path(repo, &digest), media_type.as_bytes())?;
        if let Reference::Tag(tag) = reference {
            self.set_tag(repo, tag, &digest)?;
        }
        Ok(digest)
    }

    /// Resolve a reference in `repo` to its digest, if the repository has it.
    pub fn resolve(
        &self,
        repo: &RepoName,
        reference: &Reference,
    ) -> Result<Option<Digest>, StoreError> {
        let digest = match reference {
            Reference::Tag(tag) => match self.tag(repo, tag)? {
                Some(d) => d,
                None => return Ok(None),
            },
            Reference::Digest(d) => d.clone(),
        };
        Ok(self.link_path(repo, &digest).exists().then_some(digest))
    }

    /// The manifest `reference` names in `repo`, if any.
    pub fn manifest(
        &self,
        repo: &RepoName,
        reference: &Reference,
    ) -> Result<Option<StoredManifest>, StoreError> {
        let Some(digest) = self.resolve(repo, reference)? else {
            return Ok(None);
        };
        let media_type = match fs::read_to_string(self.link_path(repo, &digest)) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let bytes = self.read_blob(&digest)?;
        Ok(Some(StoredManifest {
            digest,
            media_type,
            bytes,
        }))
    }

    fn blob_link_path(&self, repo: &RepoName, digest: &Digest) -> PathBuf {
        self.repo_dir(repo).join("_layers").join(digest.hex())
    }

    /// Make blob `digest` (already stored) part of `repo`: it was uploaded or
    /// mounted there. Blobs are stored once per registry, but served through a
    /// repository only when linked to it, so a pull grant on one namespace never
    /// reads another namespace's content by guessing digests.
    pub fn link_blob(&self, repo: &RepoName, digest: &Digest) -> Result<(), StoreError> {
        if self.blob_size(digest)?.is_none() {
            return Err(StoreError::BlobUnknown(digest.clone()));
        }
        self.write_atomic(&self.blob_link_path(repo, digest), b"")
    }

    /// The size of blob `digest` if `repo` has it (a linked blob or a manifest).
    pub fn repo_blob_size(
        &self,
        repo: &RepoName,
        digest: &Digest,
    ) -> Result<Option<u64>, StoreError> {
        let linked =
            self.blob_link_path(repo, digest).is_file() || self.link_path(repo, digest).is_file();
        if !linked {
            return Ok(None);
        }
        self.blob_size(digest)
    }

    /// Remove blob `digest` from `repo`. Returns whether the repository had it.
    /// The bytes stay until garbage collection (other repositories may share them).
    pub fn unlink_blob(&self, repo: &RepoName, digest: &Digest) -> Result<bool, StoreError> {
        match fs::remove_file(self.blob_link_path(repo, digest)) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Remove a manifest from `repo`, with the tags that point at it. Returns
    /// whether the repository had it. The bytes stay until garbage collection.
    pub fn delete_manifest(&self, repo: &RepoName, digest: &Digest) -> Result<bool, StoreError> {
        match fs::remove_file(self.link_path(repo, digest)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e.into()),
        }
        for tag in self.tags(repo, None, None)? {
            if self.tag(repo, &tag)?.as_ref() == Some(digest) {
                self.delete_tag(repo, &tag)?;
            }
        }
        Ok(true)
    }

    /// Record that manifest `referrer` (described by the OCI descriptor JSON
    /// `descriptor`) refers to `subject` in `repo`.
    pub fn add_referrer(
        &self,
        repo: &RepoName,
        subject: &Digest,
        referrer: &Digest,
        descriptor: &[u8],
    ) -> Result<(), StoreError> {
        let path = self
            .repo_dir(repo)
            .join("_referrers")
            .join(subject.hex())
            .join(referrer.hex());
        self.write_atomic(&path, descriptor)
    }

    /// The descriptors of manifests in `repo` that refer to `subject`, ordered by
    /// referrer digest, leaving out referrers whose manifest was deleted.
    pub fn referrers(&self, repo: &RepoName, subject: &Digest) -> Result<Vec<Vec<u8>>, StoreError> {
        let dir = self.repo_dir(repo).join("_referrers").join(subject.hex());
        let mut entries: Vec<(String, PathBuf)> = match fs::read_dir(&dir) {
            Ok(rd) => rd
                .filter_map(Result::ok)
                .filter_map(|e| e.file_name().to_str().map(|n| (n.to_string(), e.path())))
                .collect(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        entries.sort();
        let mut out = Vec::new();
        for (hex, path) in entries {
            let Ok(referrer) = format!("sha256:{hex}").parse::<Digest>() else {
                continue;
            };
            if self.link_path(repo, &referrer).exists() {
                out.push(fs::read(path)?);
            }
        }
        Ok(out)
    }

    /// Repository names with at least one manifest, in lexical order, paged like tags.
    pub fn catalog(
        &self,
        last: Option<&str>,
        n: Option<usize>,
    ) -> Result<Vec<RepoName>, StoreError> {
        let mut names = Vec::new();
        let mut stack = vec![(self.root().join("repositories"), String::new())];
        while let Some((dir, prefix)) = stack.pop() {
            for entry in fs::read_dir(&dir)? {
                let entry = entry?;
                let name = entry.file_name().to_string_lossy().into_owned();
                if !entry.file_type()?.is_dir() || name.starts_with('_') {
                    continue;
                }
                let full = if prefix.is_empty() {
                    name
                } else {
                    format!("{prefix}/{name}")
                };
                let has_manifests = fs::read_dir(entry.path().join("_manifests"))
                    .map(|mut rd| rd.next().is_some())
                    .unwrap_or(false);
                if has_manifests && let Ok(repo) = full.parse::<RepoName>() {
                    names.push(repo);
                }
                stack.push((entry.path(), full));
            }
        }
        names.sort();
        let start = last.map_or(0, |l| names.partition_point(|r| r.as_str() <= l));
        let end = n.map_or(names.len(), |n| (start + n).min(names.len()));
        Ok(names[start..end.max(start)].to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (tempfile::TempDir, Store, RepoName) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        (dir, s, "acme/jq".parse().unwrap())
    }

    const MT: &str = "application/vnd.oci.image.manifest.v1+json";

    #[test]
    fn manifests_by_tag_and_digest_are_scoped_to_their_repository() {
        let (_d, s, repo) = setup();
        let bytes = br#"{"schemaVersion":2}"#;
        let tag: Reference = "1.0.0".parse().unwrap();
        let digest = s.put_manifest(&repo, &tag, MT, bytes).unwrap();
        assert_eq!(digest, Digest::of(bytes));
        let m = s.manifest(&repo, &tag).unwrap().unwrap();
        assert_eq!(
            (m.digest.clone(), m.media_type.as_str(), m.bytes.as_slice()),
            (digest.clone(), MT, &bytes[..])
        );
        let by_digest = Reference::Digest(digest.clone());
        assert_eq!(s.manifest(&repo, &by_digest).unwrap().unwrap().bytes, bytes);
        // Another repository does not see it, though the bytes are stored once.
        let other: RepoName = "evil/peek".parse().unwrap();
        assert_eq!(s.manifest(&other, &by_digest).unwrap(), None);
    }

    #[test]
    fn a_digest_reference_must_match_the_bytes() {
        let (_d, s, repo) = setup();
        let claimed = Reference::Digest(Digest::of(b"something else"));
        let err = s.put_manifest(&repo, &claimed, MT, b"{}").unwrap_err();
        assert!(matches!(err, StoreError::DigestMismatch { .. }), "{err}");
        assert_eq!(s.catalog(None, None).unwrap(), Vec::<RepoName>::new());
    }

    #[test]
    fn deleting_a_manifest_removes_its_tags_and_referrer_entries() {
        let (_d, s, repo) = setup();
        let subject = s
            .put_manifest(&repo, &"1.0.0".parse().unwrap(), MT, b"{\"a\":1}")
            .unwrap();
        s.set_tag(&repo, &"latest".parse().unwrap(), &subject)
            .unwrap();
        let sig = s
            .put_manifest(&repo, &"sha256-sig".parse().unwrap(), MT, b"{\"sig\":1}")
            .unwrap();
        s.add_referrer(&repo, &subject, &sig, b"{\"digest\":\"sig\"}")
            .unwrap();
        assert_eq!(
            s.referrers(&repo, &subject).unwrap(),
            vec![b"{\"digest\":\"sig\"}".to_vec()]
        );

        assert!(s.delete_manifest(&repo, &subject).unwrap());
        assert!(!s.delete_manifest(&repo, &subject).unwrap());
        assert!(s.tag(&repo, &"latest".parse().unwrap()).unwrap().is_none());
        assert!(s.tag(&repo, &"1.0.0".parse().unwrap()).unwrap().is_none());
        assert!(
            s.tag(&repo, &"sha256-sig".parse().unwrap())
                .unwrap()
                .is_some()
        );

        s.delete_manifest(&repo, &sig).unwrap();
        assert!(s.referrers(&repo, &subject).unwrap().is_empty());
    }

    #[test]
    fn catalog_lists_repositories_with_manifests_in_order() {
        let (_d, s, _) = setup();
        for name in ["b/tool", "a/tool", "a/tool/nested", "c"] {
            s.put_manifest(
                &name.parse().unwrap(),
                &"v1".parse().unwrap(),
                MT,
                name.as_bytes(),
            )
            .unwrap();
        }
        // A repository with only tags pointing nowhere is not listed.
        s.set_tag(
            &"d/empty".parse().unwrap(),
            &"x".parse().unwrap(),
            &Digest::of(b"x"),
        )
        .unwrap();
        let names = |v: Vec<RepoName>| v.into_iter().map(|r| r.to_string()).collect::<Vec<_>>();
        assert_eq!(
            names(s.catalog(None, None).unwrap()),
            ["a/tool", "a/tool/nested", "b/tool", "c"]
        );
        assert_eq!(
            names(s.catalog(Some("a/tool/nested"), Some(1)).unwrap()),
            ["b/tool"]
        );
    }

    #[test]
    fn references_parse_as_tag_or_digest() {
        assert!(matches!(
            "1.0.0".parse::<Reference>().unwrap(),
            Reference::Tag(_)
        ));
        assert!(matches!(
            Digest::of(b"x").to_string().parse::<Reference>().unwrap(),
            Reference::Digest(_)
        ));
        assert!("sha256:nothex".parse::<Reference>().is_err());
        assert!("../x".parse::<Reference>().is_err());
    }
}
