//! Compiled-code cache: native code for a component, keyed by the component's
//! sha256 and the engine's fingerprint.
//!
//! Invariants:
//! - A cache entry is only ever produced by this process's own compiler
//!   (`Component::serialize`); it is written to a temporary file and renamed into
//!   place, so a crash never leaves a half-written entry under a real name.
//! - The directory is created private (0700): loading an entry runs its native
//!   code, so whoever can write the directory can run code as tack.
//! - Entries are read into memory, never mapped, so truncating a file under a
//!   running host cannot crash it.
//! - The engine fingerprint covers the wasmtime version and every setting that
//!   changes generated code; an entry from another engine is never loaded.
//!   A corrupt or incompatible entry is recompiled and replaced.

use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Where a component's native code came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Already loaded by this runtime: the plugin it holds in memory.
    Memory,
    /// Loaded from the on-disk cache.
    Hit,
    /// Compiled now (and stored, if the cache is on).
    Compiled,
}

/// The on-disk cache of compiled components.
#[derive(Debug, Clone)]
pub struct CodeCache {
    dir: Option<PathBuf>,
}

impl CodeCache {
    /// A cache in `dir` (created if missing).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        CodeCache {
            dir: Some(dir.into()),
        }
    }

    /// No cache: always compile.
    pub fn disabled() -> Self {
        CodeCache { dir: None }
    }

    /// The cache directory, if on.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// The default location: `$TACK_CACHE_DIR`, else `$XDG_CACHE_HOME/tack/code`,
    /// else `~/.cache/tack/code`.
    pub fn default_dir() -> Option<PathBuf> {
        if let Some(d) = std::env::var_os("TACK_CACHE_DIR") {
            return Some(PathBuf::from(d));
        }
        let base = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
        Some(base.join("tack").join("code"))
    }

    /// Load native code for `bytes` (whose sha256 hex is `digest`), compiling on a miss.
    pub fn load(
        &self,
        engine: &Engine,
        digest: &str,
        bytes: &[u8],
    ) -> wasmtime::Result<(Component, CacheOutcome)> {
        let Some(dir) = &self.dir else {
            return Ok((Component::new(engine, bytes)?, CacheOutcome::Compiled));
        };
        let path = dir.join(format!("{digest}-{}.cwasm", engine_fingerprint(engine)));
        // Read the entry into memory rather than mapping the file: a mapped file
        // that someone truncates later would crash the process (SIGBUS).
        if let Ok(native) = std::fs::read(&path) {
            // SAFETY: entries are written only by `store` below from
            // `Component::serialize` of this engine configuration (the name includes
            // the engine fingerprint), into a directory private to this user;
            // wasmtime checks the header and engine compatibility before use.
            match unsafe { Component::deserialize(engine, &native) } {
                Ok(c) => return Ok((c, CacheOutcome::Hit)),
                Err(e) => {
                    tracing::warn!(path = %path.display(), "discarding unusable compiled-code cache entry: {e}")
                }
            }
        }
        let component = Component::new(engine, bytes)?;
        if let Err(e) = store(dir, &path, &component) {
            tracing::warn!(dir = %dir.display(), "cannot write compiled-code cache: {e}");
        }
        Ok((component, CacheOutcome::Compiled))
    }
}

fn store(dir: &Path, path: &Path, component: &Component) -> anyhow::Result<()> {
    create_private_dir(dir)?;
    let bytes = component.serialize()?;
    let mut tmp = tempfile_in(dir)?;
    std::io::Write::write_all(&mut tmp.1, &bytes)?;
    tmp.1.sync_all()?;
    std::fs::rename(&tmp.0, path)?;
    Ok(())
}

fn tempfile_in(dir: &Path) -> std::io::Result<(PathBuf, std::fs::File)> {
    let name = format!(
        ".tmp-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    );
    let name: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '.')
        .collect();
    let path = dir.join(name);
    let file = std::fs::File::create(&path)?;
    Ok((path, file))
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
    }
    #[cfg(not(unix))]
    {
        std::fs::create_dir_all(dir)
    }
}

/// A stable hex fingerprint of everything about `engine` that affects native code.
pub(crate) fn engine_fingerprint(engine: &Engine) -> String {
    struct ShaHasher(Sha256);
    impl Hasher for ShaHasher {
        fn finish(&self) -> u64 {
            0
        }
        fn write(&mut self, bytes: &[u8]) {
            self.0.update(bytes);
        }
    }
    let mut h = ShaHasher(Sha256::new());
    engine.precompile_compatibility_hash().hash(&mut h);
    hex::encode(&h.0.finalize()[..8])
}

/// The sha256 of `bytes`, as lowercase hex.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}
