//! Tags: a repository's names for manifest digests.

use crate::{Digest, RepoName, Store, StoreError, Tag};
use std::fs;
use std::io;
use std::path::PathBuf;

impl Store {
    fn tags_dir(&self, repo: &RepoName) -> PathBuf {
        let mut dir = self.root().join("repositories");
        for c in repo.components() {
            dir.push(c);
        }
        dir.join("_tags")
    }

    /// Point `tag` of `repo` at `digest` (atomically replacing any earlier target).
    pub fn set_tag(&self, repo: &RepoName, tag: &Tag, digest: &Digest) -> Result<(), StoreError> {
        let path = self.tags_dir(repo).join(tag.as_str());
        self.write_atomic(&path, digest.to_string().as_bytes())
    }

    /// The digest `tag` points at, if the tag exists.
    pub fn tag(&self, repo: &RepoName, tag: &Tag) -> Result<Option<Digest>, StoreError> {
        match fs::read_to_string(self.tags_dir(repo).join(tag.as_str())) {
            Ok(text) => Ok(Some(text.trim().parse()?)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Remove a tag; returns whether it existed.
    pub fn delete_tag(&self, repo: &RepoName, tag: &Tag) -> Result<bool, StoreError> {
        match fs::remove_file(self.tags_dir(repo).join(tag.as_str())) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// The tags of `repo` in lexical order, at most `n` of them, starting after
    /// `last` (exclusive), as the distribution spec's tag listing pages them.
    pub fn tags(
        &self,
        repo: &RepoName,
        last: Option<&str>,
        n: Option<usize>,
    ) -> Result<Vec<Tag>, StoreError> {
        let mut tags: Vec<Tag> = match fs::read_dir(self.tags_dir(repo)) {
            Ok(rd) => rd
                .filter_map(Result::ok)
                .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
                .collect(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        tags.sort();
        let start = match last {
            Some(last) => tags.partition_point(|t| t.as_str() <= last),
            None => 0,
        };
        let end = n.map_or(tags.len(), |n| (start + n).min(tags.len()));
        Ok(tags[start..end.max(start)].to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_point_move_page_and_delete() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let repo: RepoName = "acme/tools/jq".parse().unwrap();
        let other: RepoName = "acme/tools".parse().unwrap();
        let (a, b) = (Digest::of(b"a"), Digest::of(b"b"));
        for t in ["1.0.0", "1.1.0", "2.0.0", "latest"] {
            s.set_tag(&repo, &t.parse().unwrap(), &a).unwrap();
        }
        s.set_tag(&other, &"x".parse().unwrap(), &b).unwrap();
        let latest: Tag = "latest".parse().unwrap();
        assert_eq!(s.tag(&repo, &latest).unwrap(), Some(a.clone()));
        s.set_tag(&repo, &latest, &b).unwrap();
        assert_eq!(s.tag(&repo, &latest).unwrap(), Some(b.clone()));

        let names = |v: Vec<Tag>| v.into_iter().map(|t| t.to_string()).collect::<Vec<_>>();
        assert_eq!(
            names(s.tags(&repo, None, None).unwrap()),
            ["1.0.0", "1.1.0", "2.0.0", "latest"]
        );
        assert_eq!(
            names(s.tags(&repo, None, Some(2)).unwrap()),
            ["1.0.0", "1.1.0"]
        );
        assert_eq!(
            names(s.tags(&repo, Some("1.1.0"), Some(2)).unwrap()),
            ["2.0.0", "latest"]
        );
        assert_eq!(
            names(s.tags(&repo, Some("latest"), Some(2)).unwrap()),
            Vec::<String>::new()
        );
        // A nested repository's tags are its own.
        assert_eq!(names(s.tags(&other, None, None).unwrap()), ["x"]);
        assert!(
            s.tags(&"nobody/here".parse().unwrap(), None, None)
                .unwrap()
                .is_empty()
        );

        assert!(s.delete_tag(&repo, &latest).unwrap());
        assert!(!s.delete_tag(&repo, &latest).unwrap());
        assert_eq!(s.tag(&repo, &latest).unwrap(), None);
    }
}
