//! The store root, blobs and resumable uploads.

use crate::{Digest, RepoName, StoreError};
use sha2::{Digest as _, Sha256};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// The id of a resumable upload session (a ULID).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UploadId(String);

impl UploadId {
    /// Parse an id from a URL; only ULIDs are accepted, so an id never names a path.
    pub fn parse(s: &str) -> Result<Self, StoreError> {
        match ulid::Ulid::from_string(s) {
            Ok(u) => Ok(UploadId(u.to_string())),
            Err(_) => Err(StoreError::UploadUnknown(s.to_string())),
        }
    }

    /// The id as text (for the `Location` of an upload).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Whom an upload session belongs to: the repository it was started in and
/// the subject (the token) that started it. Every later use of the session
/// names both, and a session of another repository or subject is unknown to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadOwner {
    /// The repository.
    pub repo: RepoName,
    /// Who started it (a token's id, or `anonymous` where auth is off).
    pub subject: String,
}

impl UploadOwner {
    /// As recorded next to the session (`<repo>\n<subject>`).
    fn record(&self) -> String {
        format!("{}\n{}", self.repo, self.subject)
    }
}

/// The registry's storage under one root directory. See the crate docs for the
/// layout and invariants.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// Open (creating if needed) a store at `root`, removing monolithic writes
    /// that a crash left behind.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let root = root.into();
        for dir in ["blobs/sha256", "uploads", "repositories"] {
            fs::create_dir_all(root.join(dir))?;
        }
        for entry in fs::read_dir(root.join("uploads"))? {
            let entry = entry?;
            if entry.file_name().to_string_lossy().starts_with("put-") {
                fs::remove_file(entry.path())?;
            }
        }
        Ok(Store { root })
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn blob_path(&self, digest: &Digest) -> PathBuf {
        let hex = digest.hex();
        self.root.join("blobs/sha256").join(&hex[..2]).join(hex)
    }

    fn upload_path(&self, id: &UploadId) -> PathBuf {
        self.root.join("uploads").join(&id.0)
    }

    fn owner_path(&self, id: &UploadId) -> PathBuf {
        self.root.join("uploads").join(format!("{}.owner", id.0))
    }

    /// Session `id` if it belongs to `owner`; otherwise, as for a session that
    /// does not exist, `UploadUnknown` (an id tells nothing about others').
    fn owned(&self, id: &UploadId, owner: &UploadOwner) -> Result<PathBuf, StoreError> {
        match fs::read_to_string(self.owner_path(id)) {
            Ok(recorded) if recorded == owner.record() => Ok(self.upload_path(id)),
            Ok(_) => Err(StoreError::UploadUnknown(id.0.clone())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(StoreError::UploadUnknown(id.0.clone()))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Remove session `id`'s bytes and its owner record.
    fn remove_upload(&self, id: &UploadId) -> Result<(), StoreError> {
        for path in [self.upload_path(id), self.owner_path(id)] {
            match fs::remove_file(path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Size of a stored blob, or `None` if absent.
    pub fn blob_size(&self, digest: &Digest) -> Result<Option<u64>, StoreError> {
        match fs::metadata(self.blob_path(digest)) {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Open a stored blob for reading.
    pub fn open_blob(&self, digest: &Digest) -> Result<File, StoreError> {
        File::open(self.blob_path(digest)).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => StoreError::BlobUnknown(digest.clone()),
            _ => e.into(),
        })
    }

    /// Read a whole stored blob.
    pub fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>, StoreError> {
        let mut out = Vec::new();
        self.open_blob(digest)?.read_to_end(&mut out)?;
        Ok(out)
    }

    /// Store `data` as the blob `expected`, verifying the digest while writing.
    /// Returns the size. A mismatch stores nothing.
    pub fn put_blob(&self, expected: &Digest, mut data: impl Read) -> Result<u64, StoreError> {
        let tmp = self
            .root
            .join("uploads")
            .join(format!("put-{}", ulid::Ulid::generate()));
        let result = (|| {
            let mut file = File::create(&tmp)?;
            let mut hasher = Sha256::new();
            let mut buf = vec![0u8; 64 * 1024];
            let mut size = 0u64;
            loop {
                let n = data.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
                file.write_all(&buf[..n])?;
                size += n as u64;
            }
            let actual = Digest::from_hasher(hasher);
            if actual != *expected {
                return Err(StoreError::DigestMismatch {
                    expected: expected.clone(),
                    actual,
                });
            }
            file.sync_all()?;
            self.install(&tmp, expected)?;
            Ok(size)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    /// Move a verified temporary file into place as blob `digest`.
    fn install(&self, tmp: &Path, digest: &Digest) -> Result<(), StoreError> {
        let dest = self.blob_path(digest);
        let dir = dest.parent().expect("blob paths have a parent");
        fs::create_dir_all(dir)?;
        if dest.exists() {
            // Same digest, same bytes: keep the existing file.
            fs::remove_file(tmp)?;
            return Ok(());
        }
        fs::rename(tmp, &dest)?;
        sync_dir(dir)?;
        Ok(())
    }

    /// Delete a blob. Deleting an absent blob is `BlobUnknown`.
    pub fn delete_blob(&self, digest: &Digest) -> Result<(), StoreError> {
        fs::remove_file(self.blob_path(digest)).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => StoreError::BlobUnknown(digest.clone()),
            _ => e.into(),
        })
    }

    /// Start a resumable upload session for `owner`.
    pub fn start_upload(&self, owner: &UploadOwner) -> Result<UploadId, StoreError> {
        let id = UploadId(ulid::Ulid::generate().to_string());
        // The owner first: a session without one is unknown to everyone.
        self.write_atomic(&self.owner_path(&id), owner.record().as_bytes())?;
        File::create(self.upload_path(&id))?;
        Ok(id)
    }

    /// Bytes received so far by `owner`'s upload session `id`.
    pub fn upload_size(&self, id: &UploadId, owner: &UploadOwner) -> Result<u64, StoreError> {
        let path = self.owned(id, owner)?;
        match fs::metadata(path) {
            Ok(m) => Ok(m.len()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(StoreError::UploadUnknown(id.0.clone()))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Append a chunk that starts at byte `offset` (which must be the current
    /// size; `None`: wherever the session ends), streamed from `data`. Returns
    /// the new size.
    pub fn append_upload(
        &self,
        id: &UploadId,
        owner: &UploadOwner,
        offset: Option<u64>,
        mut data: impl Read,
    ) -> Result<u64, StoreError> {
        let size = self.upload_size(id, owner)?;
        if let Some(offset) = offset
            && offset != size
        {
            return Err(StoreError::RangeMismatch {
                expected: size,
                got: offset,
            });
        }
        let mut file = OpenOptions::new().append(true).open(self.upload_path(id))?;
        let written = io::copy(&mut data, &mut file);
        // What arrived before a failure stays: the client resumes after it.
        file.sync_data()?;
        Ok(size + written?)
    }

    /// Finish `owner`'s upload `id`: the content must hash to `expected`. On
    /// success the blob is stored; on a mismatch the session and its bytes are
    /// removed.
    pub fn finish_upload(
        &self,
        id: &UploadId,
        owner: &UploadOwner,
        expected: &Digest,
    ) -> Result<u64, StoreError> {
        let path = self.owned(id, owner)?;
        let mut file = File::open(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => StoreError::UploadUnknown(id.0.clone()),
            _ => StoreError::Io(e),
        })?;
        let mut hasher = Sha256::new();
        let size = io::copy(&mut file, &mut hasher)?;
        let actual = Digest::from_hasher(hasher);
        if actual != *expected {
            self.remove_upload(id)?;
            return Err(StoreError::DigestMismatch {
                expected: expected.clone(),
                actual,
            });
        }
        file.sync_all()?;
        drop(file);
        self.install(&path, expected)?;
        self.remove_upload(id)?;
        Ok(size)
    }

    /// Abandon `owner`'s upload session `id`.
    pub fn cancel_upload(&self, id: &UploadId, owner: &UploadOwner) -> Result<(), StoreError> {
        self.owned(id, owner)?;
        self.remove_upload(id)
    }

    /// Write `bytes` to `path` atomically (temp file, fsync, rename, fsync dir).
    pub(crate) fn write_atomic(&self, path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
        let dir = path.parent().expect("store paths have a parent");
        fs::create_dir_all(dir)?;
        let tmp = self
            .root
            .join("uploads")
            .join(format!("put-{}", ulid::Ulid::generate()));
        let result = (|| {
            let mut f = File::create(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()?;
            fs::rename(&tmp, path)?;
            sync_dir(dir)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        Ok(result?)
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        (dir, store)
    }

    fn files_under(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    out.push(p);
                }
            }
        }
        out.sort();
        out
    }

    #[test]
    fn put_get_delete_round_trip() {
        let (_d, s) = store();
        let data = b"a wasm component, say";
        let digest = Digest::of(data);
        assert_eq!(s.blob_size(&digest).unwrap(), None);
        assert_eq!(s.put_blob(&digest, &data[..]).unwrap(), data.len() as u64);
        assert_eq!(s.blob_size(&digest).unwrap(), Some(data.len() as u64));
        assert_eq!(s.read_blob(&digest).unwrap(), data);
        // Idempotent.
        s.put_blob(&digest, &data[..]).unwrap();
        s.delete_blob(&digest).unwrap();
        assert!(matches!(
            s.delete_blob(&digest),
            Err(StoreError::BlobUnknown(_))
        ));
        assert!(matches!(
            s.open_blob(&digest),
            Err(StoreError::BlobUnknown(_))
        ));
    }

    #[test]
    fn a_digest_mismatch_leaves_nothing_behind() {
        let (d, s) = store();
        let claimed = Digest::of(b"what the client says");
        let err = s.put_blob(&claimed, &b"what it sends"[..]).unwrap_err();
        match &err {
            StoreError::DigestMismatch { expected, actual } => {
                assert_eq!(expected, &claimed);
                assert_eq!(actual, &Digest::of(b"what it sends"));
            }
            other => panic!("{other}"),
        }
        assert_eq!(files_under(d.path()), Vec::<PathBuf>::new());
        assert_eq!(s.blob_size(&claimed).unwrap(), None);
    }

    fn owner(repo: &str, subject: &str) -> UploadOwner {
        UploadOwner {
            repo: repo.parse().unwrap(),
            subject: subject.into(),
        }
    }

    #[test]
    fn chunked_uploads_check_offsets_and_digests() {
        let (d, s) = store();
        let o = &owner("acme/tool", "t1");
        let id = s.start_upload(o).unwrap();
        assert_eq!(s.append_upload(&id, o, Some(0), &b"hello "[..]).unwrap(), 6);
        let err = s.append_upload(&id, o, Some(3), &b"world"[..]).unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::RangeMismatch {
                    expected: 6,
                    got: 3
                }
            ),
            "{err}"
        );
        assert_eq!(s.append_upload(&id, o, None, &b"world"[..]).unwrap(), 11);

        // Resumable after a restart.
        let s = Store::open(d.path()).unwrap();
        assert_eq!(s.upload_size(&id, o).unwrap(), 11);
        let digest = Digest::of(b"hello world");
        assert_eq!(s.finish_upload(&id, o, &digest).unwrap(), 11);
        assert_eq!(s.read_blob(&digest).unwrap(), b"hello world");
        assert!(matches!(
            s.upload_size(&id, o),
            Err(StoreError::UploadUnknown(_))
        ));

        // A wrong digest at the end discards the session and stores nothing.
        let id = s.start_upload(o).unwrap();
        s.append_upload(&id, o, Some(0), &b"tampered"[..]).unwrap();
        let claimed = Digest::of(b"original");
        assert!(matches!(
            s.finish_upload(&id, o, &claimed),
            Err(StoreError::DigestMismatch { .. })
        ));
        assert_eq!(s.blob_size(&claimed).unwrap(), None);
        assert!(matches!(
            s.upload_size(&id, o),
            Err(StoreError::UploadUnknown(_))
        ));
        assert_eq!(
            files_under(&d.path().join("uploads")),
            Vec::<PathBuf>::new()
        );
    }

    /// An upload session is unknown to every other repository and subject:
    /// they cannot read its size, add to it, finish it into their repository or
    /// cancel it, and trying leaves it as it was.
    #[test]
    fn an_upload_belongs_to_its_repository_and_subject() {
        let (_d, s) = store();
        let o = &owner("acme/tool", "t1");
        let id = s.start_upload(o).unwrap();
        s.append_upload(&id, o, Some(0), &b"secret bytes"[..])
            .unwrap();
        let digest = Digest::of(b"secret bytes");
        for other in [
            owner("evil/tool", "t1"),
            owner("acme/tool", "t2"),
            owner("evil/x", "t2"),
        ] {
            let unknown = |r: Result<u64, StoreError>| {
                assert!(matches!(r, Err(StoreError::UploadUnknown(_))), "{other:?}")
            };
            unknown(s.upload_size(&id, &other));
            unknown(s.append_upload(&id, &other, None, &b"more"[..]));
            unknown(s.finish_upload(&id, &other, &digest));
            unknown(s.cancel_upload(&id, &other).map(|()| 0));
        }
        assert_eq!(s.blob_size(&digest).unwrap(), None);
        assert_eq!(s.upload_size(&id, o).unwrap(), 12);
        assert_eq!(s.finish_upload(&id, o, &digest).unwrap(), 12);
    }

    #[test]
    fn leftovers_of_a_crash_are_cleaned_and_never_visible() {
        let (d, s) = store();
        // A monolithic write that died before its rename.
        let torn = d.path().join("uploads/put-01HZZZZZZZZZZZZZZZZZZZZZZZ");
        fs::write(&torn, b"half a blo").unwrap();
        let s2 = Store::open(d.path()).unwrap();
        assert!(!torn.exists());
        assert_eq!(s2.blob_size(&Digest::of(b"half a blob")).unwrap(), None);
        drop(s);
    }

    #[test]
    fn upload_ids_cannot_name_paths() {
        assert!(UploadId::parse("../../blobs/sha256/x").is_err());
        assert!(UploadId::parse("01ARZ3NDEKTSV4RRFFQ69G5FAV").is_ok());
    }
}
