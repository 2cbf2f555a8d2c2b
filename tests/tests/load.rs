//! Loading components: refusals with reasons, and the two caches.

use tack_runtime::{CacheOutcome, CodeCache, LoadError, Runtime, RuntimeConfig};

fn runtime(cache: CodeCache) -> Runtime {
    Runtime::new(RuntimeConfig {
        cache,
        ..RuntimeConfig::default()
    })
    .unwrap()
}

fn jq_bytes() -> Vec<u8> {
    std::fs::read(tack_tests::guest("tack_plugin_jq")).unwrap()
}

#[test]
fn refuses_what_is_not_a_tool_component() {
    let rt = runtime(CodeCache::disabled());
    let err = rt.load(b"\0asm\x01\0\0\0").err().unwrap();
    assert!(matches!(err, LoadError::NotAComponent(_)), "{err}");
    assert!(err.to_string().contains("core WebAssembly module"), "{err}");

    let err = rt.load(b"#!/bin/sh\necho hi\n").err().unwrap();
    assert!(err.to_string().contains("bad magic number"), "{err}");

    // An empty (valid) component exports nothing.
    let err = rt.load(b"\0asm\x0d\0\x01\0").err().unwrap();
    assert!(matches!(err, LoadError::Incompatible(_)), "{err}");
    assert!(
        err.to_string()
            .contains("does not export `tack:plugin/tool`"),
        "{err}"
    );

    // A truncated component fails to decode rather than crash.
    let bytes = jq_bytes();
    let err = rt.load(&bytes[..bytes.len() / 2]).err().unwrap();
    assert!(matches!(err, LoadError::NotAComponent(_)), "{err}");
}

#[test]
fn compiled_code_is_cached_by_digest_and_engine() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = jq_bytes();

    let first = runtime(CodeCache::new(dir.path())).load(&bytes).unwrap();
    assert_eq!(first.cache_outcome(), CacheOutcome::Compiled);
    let entries: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    let name = entries[0].to_string_lossy().into_owned();
    assert!(
        name.starts_with(first.digest().trim_start_matches("sha256:")),
        "{name}"
    );
    assert!(name.ends_with(".cwasm"));

    // A new runtime (a new process, in effect) loads native code from disk.
    let rt = runtime(CodeCache::new(dir.path()));
    let second = rt.load(&bytes).unwrap();
    assert_eq!(second.cache_outcome(), CacheOutcome::Hit);
    // The same runtime hands out the plugin it holds in memory: with the native
    // code gone from disk, loading again neither compiles nor writes anything.
    let path = dir.path().join(&name);
    std::fs::remove_file(&path).unwrap();
    assert_eq!(
        rt.load(&bytes).unwrap().cache_outcome(),
        CacheOutcome::Memory
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);

    // A corrupt entry is replaced, not trusted.
    std::fs::write(&path, b"garbage").unwrap();
    let third = runtime(CodeCache::new(dir.path())).load(&bytes).unwrap();
    assert_eq!(third.cache_outcome(), CacheOutcome::Compiled);
    assert!(std::fs::metadata(&path).unwrap().len() > 1000);

    // An engine with other settings (fuel metering) does not reuse the entry.
    let fuel = Runtime::new(RuntimeConfig {
        cache: CodeCache::new(dir.path()),
        fuel: true,
        ..RuntimeConfig::default()
    })
    .unwrap();
    assert_eq!(
        fuel.load(&bytes).unwrap().cache_outcome(),
        CacheOutcome::Compiled
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
}

#[test]
fn reads_the_embedded_manifest() {
    let bytes = std::fs::read(tack_tests::guest("tack_plugin_payments")).unwrap();
    let manifest = tack_runtime::read_manifest(&bytes)
        .unwrap()
        .expect("payments embeds a manifest");
    assert_eq!(manifest.plugin.name, "payments");
    assert_eq!(manifest.capabilities.dirs[0].guest, "/state");
    assert!(manifest.capabilities.wall_clock);
    assert!(
        tack_runtime::read_manifest(b"\0asm\x0d\0\x01\0")
            .unwrap()
            .is_none()
    );
}
