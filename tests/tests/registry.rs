//! Publishing, signing, resolving and verifying artifacts against tack's registry
//! and Debian's docker-registry, and every refusal: tampered blob, tampered
//! manifest, unsigned, untrusted signer, tag moved since locked, push without role.

use std::path::{Path, PathBuf};
use tack_artifact::SigningKey;
use tack_capability::Grant;
use tack_distribution::{
    ArtifactCache, ArtifactRef, DistError, DistributionConfig, FetchOptions, Fetched, Fetcher,
    NoProgress, Published, Registries, Source, TrustPolicy,
};
use tack_registry::Role;
use tack_tests::registries::{DockerRegistry, TackRegistry, files_under, host_registries};
use tack_tests::{call, guest, one_json, runtime};

/// A host's view: registry credentials, a trust policy, an artifact cache, a lock.
struct Host {
    dir: tempfile::TempDir,
    registries: Registries,
    trust: TrustPolicy,
}

impl Host {
    fn new(registry: &str, token: Option<&str>, trust: TrustPolicy) -> Host {
        let dir = tempfile::tempdir().unwrap();
        // Made empty first, so "nothing kept" checks look at a real directory.
        std::fs::create_dir(dir.path().join("artifacts")).unwrap();
        Host {
            registries: host_registries(registry, token, dir.path()),
            dir,
            trust,
        }
    }

    fn cache_dir(&self) -> PathBuf {
        self.dir.path().join("artifacts")
    }

    fn lock(&self) -> PathBuf {
        self.dir.path().join("tack.lock")
    }

    fn fetcher(&self) -> Fetcher {
        Fetcher::new(
            self.registries.clone(),
            self.trust.clone(),
            ArtifactCache::new(self.cache_dir()),
            Some(self.lock()),
        )
    }

    async fn fetch(&self, r: &ArtifactRef) -> Result<Fetched, DistError> {
        self.fetcher()
            .fetch(r, &FetchOptions::default(), &NoProgress)
            .await
    }

    /// Nothing was cached and nothing was locked.
    fn assert_nothing_kept(&self) {
        assert_eq!(files_under(&self.cache_dir()), Vec::<PathBuf>::new());
        assert!(!self.lock().exists(), "the lock file was written");
    }
}

fn reference(host: &str, repo_tag: &str) -> ArtifactRef {
    ArtifactRef::parse(&format!("{host}/{repo_tag}"), None).unwrap()
}

async fn publish(
    host: &Host,
    r: &ArtifactRef,
    wasm: &Path,
    key: Option<&SigningKey>,
) -> Result<Published, DistError> {
    let artifact = tack_package::package(&runtime(), wasm).await.unwrap();
    tack_distribution::publish::publish(&host.registries, r, &artifact, key, &NoProgress).await
}

async fn run_jq(fetched: &Fetched) -> serde_json::Value {
    let plugin = runtime()
        .load(fetched.component.as_ref().expect("a component"))
        .unwrap();
    let sandbox = plugin.sandbox(&Grant::default()).unwrap();
    let out = call(
        &sandbox,
        "jq",
        serde_json::json!({"filter": ".a", "input": {"a": 1}}),
    )
    .await
    .unwrap();
    one_json(&out)
}

fn trust(ns: &str, key: &SigningKey) -> TrustPolicy {
    TrustPolicy::require(ns, vec![key.public_key()])
}

#[tokio::test(flavor = "multi_thread")]
async fn signed_plugin_runs_by_reference_from_tack_registry() {
    let reg = TackRegistry::start(true);
    let key = SigningKey::generate();
    let publisher = Host::new(
        &reg.host,
        Some(&reg.token("acme", Role::Push)),
        TrustPolicy::default(),
    );
    let r = reference(&reg.host, "acme/jq:0.1.0");
    let published = publish(&publisher, &r, &guest("tack_plugin_jq"), Some(&key))
        .await
        .unwrap();
    assert_eq!(published.signer, Some(key.public_key().fingerprint()));

    // The browse API lists it with its tools, schemas, and signer (anonymous pull).
    let http = reqwest::Client::new();
    let list: serde_json::Value = http
        .get(format!("{}/api/v1/packages?q=jq", reg.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let p = &list["packages"][0];
    assert_eq!(p["name"], "acme/jq");
    assert_eq!(p["kind"], "tool");
    assert_eq!(p["latest"], "0.1.0");
    assert_eq!(p["tools"], serde_json::json!(["jq"]));
    assert_eq!(p["signer"], key.public_key().fingerprint());
    let v: serde_json::Value = http
        .get(format!(
            "{}/api/v1/packages/acme/jq/versions/0.1.0",
            reg.url()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["digest"], published.digest);
    assert_eq!(
        v["tools"][0]["input-schema"]["properties"]["filter"]["type"],
        "string"
    );
    assert!(
        v["world"]["exports"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e.as_str().unwrap().starts_with("tack:plugin/tool")),
        "{v}"
    );
    assert_eq!(v["signature"]["status"], "signed");

    // A host that trusts the key pulls, verifies and runs it; then runs it from cache.
    let host = Host::new(&reg.host, None, trust("acme", &key));
    let fetched = host.fetch(&r).await.unwrap();
    assert_eq!(fetched.source, Source::Registry);
    assert_eq!(fetched.digest, published.digest);
    assert!(fetched.signature.as_ref().unwrap().trusted);
    assert_eq!(run_jq(&fetched).await, serde_json::json!(1));
    let again = host.fetch(&r).await.unwrap();
    assert_eq!(again.source, Source::Cache);
    let lock = tack_distribution::LockFile::load(&host.lock()).unwrap();
    assert_eq!(lock.get(&r.to_string()), Some(published.digest.as_str()));
}

#[tokio::test(flavor = "multi_thread")]
async fn signed_plugin_runs_by_reference_from_docker_registry() {
    let reg = DockerRegistry::start();
    let key = SigningKey::generate();
    let publisher = Host::new(&reg.host, None, TrustPolicy::default());
    let r = reference(&reg.host, "acme/jq:0.1.0");
    let published = publish(&publisher, &r, &guest("tack_plugin_jq"), Some(&key))
        .await
        .unwrap();
    let host = Host::new(&reg.host, None, trust("acme", &key));
    let fetched = host.fetch(&r).await.unwrap();
    assert_eq!(fetched.digest, published.digest);
    assert_eq!(
        fetched.signature.as_ref().unwrap().signer,
        key.public_key().fingerprint()
    );
    assert_eq!(run_jq(&fetched).await, serde_json::json!(1));
    // And `tack verify`'s check agrees.
    let (digest, signer) =
        tack_distribution::publish::verify(&host.registries, &r, &trust("acme", &key))
            .await
            .unwrap();
    assert_eq!(
        (digest, signer),
        (published.digest, key.public_key().fingerprint())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn basic_auth_registry_with_credentials_from_configuration() {
    let reg = DockerRegistry::start_with_basic_auth("ci", "s3cret-for-tests");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("password"), "s3cret-for-tests\n").unwrap();
    let text = format!(
        "[registries.\"{}\"]\nusername = \"ci\"\ntoken-file = \"password\"\n",
        reg.host
    );
    let config = DistributionConfig::from_toml(&text, &dir.path().join("tack.toml")).unwrap();
    let with_creds = Host {
        dir: tempfile::tempdir().unwrap(),
        registries: Registries::new(config),
        trust: TrustPolicy::default(),
    };
    let r = reference(&reg.host, "acme/jq:1.0.0");
    publish(&with_creds, &r, &guest("tack_plugin_jq"), None)
        .await
        .unwrap();
    let fetched = with_creds.fetch(&r).await.unwrap();
    assert_eq!(run_jq(&fetched).await, serde_json::json!(1));
    // Without the configured credentials the same registry refuses, and says where
    // credentials come from.
    let anonymous = Host::new(&reg.host, None, TrustPolicy::default());
    let e = anonymous.fetch(&r).await.unwrap_err();
    assert!(matches!(e, DistError::Denied { .. }), "{e}");
    anonymous.assert_nothing_kept();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cached_artifact_starts_with_no_registry_reachable() {
    let key = SigningKey::generate();
    let reg = TackRegistry::start(true);
    let r = reference(&reg.host, "acme/jq:0.1.0");
    let publisher = Host::new(
        &reg.host,
        Some(&reg.token("acme", Role::Push)),
        TrustPolicy::default(),
    );
    publish(&publisher, &r, &guest("tack_plugin_jq"), Some(&key))
        .await
        .unwrap();
    let host = Host::new(&reg.host, None, trust("acme", &key));
    host.fetch(&r).await.unwrap();
    drop(reg);
    let offline = host.fetch(&r).await.unwrap();
    assert_eq!(offline.source, Source::Offline);
    assert_eq!(run_jq(&offline).await, serde_json::json!(1));
    // The trust policy is applied again from the cache: another key refuses it.
    let other = SigningKey::generate();
    let strict = Host {
        trust: trust("acme", &other),
        ..host
    };
    let e = strict.fetch(&r).await.unwrap_err();
    assert!(matches!(e, DistError::UntrustedSigner { .. }), "{e}");
}

/// Publish jq signed by `key` to a fresh tack registry; return registry, ref, digest.
async fn published_jq(key: &SigningKey) -> (TackRegistry, ArtifactRef, String) {
    let reg = TackRegistry::start(true);
    let r = reference(&reg.host, "acme/jq:1.0.0");
    let publisher = Host::new(
        &reg.host,
        Some(&reg.token("acme", Role::Push)),
        TrustPolicy::default(),
    );
    let p = publish(&publisher, &r, &guest("tack_plugin_jq"), Some(key))
        .await
        .unwrap();
    (reg, r, p.digest)
}

fn store_blob(reg: &TackRegistry, digest: &str) -> PathBuf {
    let hex = digest.strip_prefix("sha256:").unwrap();
    reg.data.join("blobs/sha256").join(&hex[..2]).join(hex)
}

fn flip_last_byte(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x20;
    std::fs::write(path, bytes).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tampered_blob_is_refused_and_nothing_is_kept() {
    let key = SigningKey::generate();
    let (reg, r, digest) = published_jq(&key).await;
    let host = Host::new(&reg.host, None, trust("acme", &key));
    let manifest = tack_artifact::ImageManifest::from_slice(
        &std::fs::read(store_blob(&reg, &digest)).unwrap(),
    )
    .unwrap();
    let layer = &manifest.layers[0];
    flip_last_byte(&store_blob(&reg, &layer.digest));
    let e = host.fetch(&r).await.unwrap_err();
    match &e {
        DistError::TamperedBlob {
            reference,
            expected,
            ..
        } => {
            assert!(reference.starts_with(&r.to_string()), "{reference}");
            assert_eq!(expected, &layer.digest);
        }
        other => panic!("expected a tampered-blob refusal, got {other}"),
    }
    assert!(e.to_string().contains("does not match its digest"), "{e}");
    host.assert_nothing_kept();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tampered_manifest_is_refused_and_nothing_is_kept() {
    let key = SigningKey::generate();
    let (reg, r, digest) = published_jq(&key).await;
    let host = Host::new(&reg.host, None, trust("acme", &key));
    // Rewrite the stored manifest: same name (digest), different content.
    let path = store_blob(&reg, &digest);
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        text.replace("\"0.1.0\"", "\"6.6.6\"")
            .replace("1.0.0", "9.9.9"),
    )
    .unwrap();
    let e = host.fetch(&r).await.unwrap_err();
    assert!(matches!(e, DistError::TamperedManifest { .. }), "{e}");
    assert!(
        e.to_string().contains("manifest does not match its digest"),
        "{e}"
    );
    assert!(e.to_string().contains(&r.to_string()), "{e}");
    host.assert_nothing_kept();
}

#[tokio::test(flavor = "multi_thread")]
async fn unsigned_is_refused_where_a_signature_is_required() {
    let reg = TackRegistry::start(true);
    let r = reference(&reg.host, "acme/jq:1.0.0");
    let publisher = Host::new(
        &reg.host,
        Some(&reg.token("acme", Role::Push)),
        TrustPolicy::default(),
    );
    publish(&publisher, &r, &guest("tack_plugin_jq"), None)
        .await
        .unwrap();
    let host = Host::new(&reg.host, None, trust("acme", &SigningKey::generate()));
    let e = host.fetch(&r).await.unwrap_err();
    assert!(matches!(e, DistError::Unsigned { .. }), "{e}");
    assert!(e.to_string().contains("is not signed"), "{e}");
    assert!(e.to_string().contains("namespace `acme`"), "{e}");
    host.assert_nothing_kept();
    // Where no signature is required, the same artifact is accepted.
    let lax = Host::new(&reg.host, None, TrustPolicy::default());
    assert!(lax.fetch(&r).await.unwrap().signature.is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_signature_by_an_untrusted_key_is_refused() {
    let mallory = SigningKey::generate();
    let (reg, r, _) = published_jq(&mallory).await;
    let host = Host::new(&reg.host, None, trust("acme", &SigningKey::generate()));
    let e = host.fetch(&r).await.unwrap_err();
    match &e {
        DistError::UntrustedSigner { signers, .. } => {
            assert_eq!(signers, &vec![mallory.public_key().fingerprint()])
        }
        other => panic!("expected an untrusted-signer refusal, got {other}"),
    }
    assert!(
        e.to_string()
            .contains("not a trusted key for namespace `acme`"),
        "{e}"
    );
    host.assert_nothing_kept();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_forged_signature_is_refused() {
    let key = SigningKey::generate();
    let (reg, r, digest) = published_jq(&key).await;
    // Replace the signature manifest with one whose signature was made over other bytes.
    let publisher = Host::new(
        &reg.host,
        Some(&reg.token("acme", Role::Push)),
        TrustPolicy::default(),
    );
    let sig_ref = r.at_tag(&tack_artifact::signature_tag(&digest));
    let (bytes, _) = publisher.registries.manifest(&sig_ref).await.unwrap();
    let mut m = tack_artifact::ImageManifest::from_slice(&bytes).unwrap();
    m.layers[0].annotations.insert(
        tack_artifact::signature::SIGNATURE_ANNOTATION.into(),
        key.sign(b"something else"),
    );
    publisher
        .registries
        .push_manifest(&sig_ref, &m.to_bytes())
        .await
        .unwrap();
    let host = Host::new(&reg.host, None, trust("acme", &key));
    let e = host.fetch(&r).await.unwrap_err();
    assert!(matches!(e, DistError::BadSignature { .. }), "{e}");
    host.assert_nothing_kept();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tag_moved_since_locked_is_refused() {
    let key = SigningKey::generate();
    let (reg, r, first) = published_jq(&key).await;
    let host = Host::new(&reg.host, None, trust("acme", &key));
    host.fetch(&r).await.unwrap();
    // Someone republishes 1.0.0 with other content.
    let publisher = Host::new(
        &reg.host,
        Some(&reg.token("acme", Role::Push)),
        TrustPolicy::default(),
    );
    let moved = publish(&publisher, &r, &guest("tack_guest_echo"), Some(&key))
        .await
        .unwrap();
    assert_ne!(moved.digest, first);
    let cached_before = files_under(&host.cache_dir());
    let e = host.fetch(&r).await.unwrap_err();
    match &e {
        DistError::TagMoved { locked, now, .. } => {
            assert_eq!((locked, now), (&first, &moved.digest));
        }
        other => panic!("expected a tag-moved refusal, got {other}"),
    }
    assert!(
        e.to_string()
            .contains("the tag was moved since it was locked"),
        "{e}"
    );
    assert_eq!(
        files_under(&host.cache_dir()),
        cached_before,
        "the new content was cached"
    );
    // Updating the lock on purpose accepts the new digest.
    let updated = host
        .fetcher()
        .fetch(&r, &FetchOptions { update_lock: true }, &NoProgress)
        .await
        .unwrap();
    assert_eq!(updated.digest, moved.digest);
}

#[tokio::test(flavor = "multi_thread")]
async fn push_without_the_role_is_refused() {
    let reg = TackRegistry::start(true);
    let r = reference(&reg.host, "acme/jq:1.0.0");
    for (token, needle) in [
        (
            Some(reg.token("acme", Role::Pull)),
            "has role pull on namespace `acme`",
        ),
        (
            Some(reg.token("other", Role::Admin)),
            "has role admin on namespace `other`",
        ),
        (None, "authentication required"),
    ] {
        let publisher = Host::new(&reg.host, token.as_deref(), TrustPolicy::default());
        let e = publish(&publisher, &r, &guest("tack_plugin_jq"), None)
            .await
            .unwrap_err();
        assert!(matches!(e, DistError::Denied { .. }), "{e}");
        let text = e.to_string();
        assert!(text.contains(needle), "{text}");
        assert!(text.contains(&r.to_string()), "{text}");
    }
    // Nothing was stored: the catalog is empty.
    let store = tack_registry_store::Store::open(&reg.data).unwrap();
    assert!(store.catalog(None, None).unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_skill_travels_with_its_skill_md_and_its_tools() {
    let reg = TackRegistry::start(true);
    let key = SigningKey::generate();
    let publisher = Host::new(
        &reg.host,
        Some(&reg.token("acme", Role::Push)),
        TrustPolicy::default(),
    );
    let dir = tempfile::tempdir().unwrap();
    let skill = dir.path().join("json-shaping");
    std::fs::create_dir(&skill).unwrap();
    let text = "---\nname: json-shaping\ndescription: Reshape JSON with jq. Use when a tool returns more than the user needs.\n---\n# Shaping JSON\nPrefer one filter over many calls.\n";
    std::fs::write(skill.join("SKILL.md"), text).unwrap();
    std::fs::copy(guest("tack_plugin_jq"), skill.join("jq.wasm")).unwrap();
    let r = reference(&reg.host, "acme/json-shaping:1.0.0");
    publish(&publisher, &r, &skill, Some(&key)).await.unwrap();

    let host = Host::new(&reg.host, None, trust("acme", &key));
    let fetched = host.fetch(&r).await.unwrap();
    assert_eq!(fetched.skill.as_deref(), Some(text));
    assert_eq!(run_jq(&fetched).await, serde_json::json!(1));
    let meta = tack_artifact::PackageMetadata::read(&fetched.manifest, &fetched.config).unwrap();
    assert_eq!(meta.kind, tack_artifact::Kind::Skill);
    assert!(meta.description.starts_with("Reshape JSON"));
    assert_eq!(meta.tools[0].name, "jq");
    let v: serde_json::Value = reqwest::get(format!("{}/api/v1/packages?kind=skill", reg.url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["packages"][0]["name"], "acme/json-shaping");
    assert_eq!(v["packages"][0]["tools"], serde_json::json!(["jq"]));
}
