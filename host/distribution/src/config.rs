//! Registries, their credentials, and the trust policy, from the host configuration.
//!
//! ```toml
//! default-registry = "localhost:5050"
//! require-signatures = true       # the default: a namespace without a trust entry
//!                                 # needs one to run anything (or an opt-out)
//!
//! [registries."localhost:5050"]
//! insecure = true                 # plain HTTP (the default for loopback hosts)
//! token-env = "TACK_REGISTRY_TOKEN"   # or token-file = "…"; username = "…" (optional)
//!
//! [trust.acme]                    # the namespace: first component of repository names
//! keys = ["keys/acme.pub"]        # relative to the configuration file
//! require-signature = true        # the default
//!
//! [trust."*"]                     # every namespace without its own entry
//! require-signature = false
//! ```
//!
//! The host resolves references only through the registries named here (the
//! default registry and the `[registries.*]` entries).
//!
//! Credentials come only from here (an environment variable or a file the entry
//! names), never from a reference. Other top-level tables are left to other parts
//! of tack's host configuration.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tack_artifact::ArtifactRef;
use tack_artifact::PublicKey;

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// How to reach one registry.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RegistryConfig {
    /// Plain HTTP instead of HTTPS. Default: true for loopback hosts, false otherwise.
    pub insecure: Option<bool>,
    /// User name for Basic auth at the token endpoint (default `tack`).
    pub username: Option<String>,
    /// Environment variable holding the token or password.
    pub token_env: Option<String>,
    /// File holding the token or password.
    pub token_file: Option<PathBuf>,
}

/// The trust entry of one namespace.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct TrustEntry {
    /// Public key files (PEM) whose signatures are accepted.
    #[serde(default)]
    pub keys: Vec<PathBuf>,
    /// Whether an artifact of this namespace must carry a signature by one of `keys`.
    #[serde(default = "yes")]
    pub require_signature: bool,
}

fn yes() -> bool {
    true
}

/// The distribution part of the host configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct DistributionConfig {
    /// Registry for references that name none.
    pub default_registry: Option<String>,
    /// Whether artifacts of a namespace without a trust entry (and no `*`
    /// entry) must be signed by a trusted key, which such a namespace has none
    /// of: they are refused until it gets an entry. Default: true.
    #[serde(default = "yes")]
    pub require_signatures: bool,
    /// Per-registry settings, by `host[:port]`.
    #[serde(default)]
    pub registries: BTreeMap<String, RegistryConfig>,
    /// Trust policy, by namespace (`*` for the rest).
    #[serde(default)]
    pub trust: BTreeMap<String, TrustEntry>,
    /// Where paths in the file are relative to.
    #[serde(skip)]
    pub base_dir: PathBuf,
}

impl Default for DistributionConfig {
    fn default() -> Self {
        DistributionConfig {
            default_registry: None,
            require_signatures: true,
            registries: BTreeMap::new(),
            trust: BTreeMap::new(),
            base_dir: PathBuf::new(),
        }
    }
}

impl DistributionConfig {
    /// Whether the host resolves references through `registry` (`host[:port]`):
    /// only its default registry and those with a `[registries.*]` entry.
    pub fn allows_registry(&self, registry: &str) -> bool {
        self.default_registry.as_deref() == Some(registry) || self.registries.contains_key(registry)
    }

    /// The registries the host resolves references through, for messages.
    pub fn allowed_registries(&self) -> Vec<String> {
        let mut all: Vec<String> = self.default_registry.iter().cloned().collect();
        all.extend(
            self.registries
                .keys()
                .filter(|r| !all.contains(r))
                .cloned()
                .collect::<Vec<_>>(),
        );
        all
    }

    /// Parse the TOML of a host configuration file at `path`.
    pub fn from_toml(text: &str, path: &Path) -> Result<DistributionConfig, ConfigError> {
        let mut c: DistributionConfig =
            toml::from_str(text).map_err(|e| ConfigError(format!("{}: {e}", path.display())))?;
        c.base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Ok(c)
    }

    /// Read a host configuration file.
    pub fn load(path: &Path) -> Result<DistributionConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError(format!(
                "cannot read host configuration {}: {e}",
                path.display()
            ))
        })?;
        DistributionConfig::from_toml(&text, path)
    }

    /// The settings of `registry` (defaults if it has no entry).
    pub fn registry(&self, registry: &str) -> RegistryConfig {
        self.registries.get(registry).cloned().unwrap_or_default()
    }

    /// Whether `registry` is reached over plain HTTP.
    pub fn insecure(&self, registry: &str) -> bool {
        self.registry(registry).insecure.unwrap_or_else(|| {
            let host = registry.rsplit_once(':').map_or(registry, |(h, _)| h);
            host == "localhost" || host.starts_with("127.") || host == "[::1]"
        })
    }

    /// The credentials for `registry`, if configured: (user, secret).
    pub fn credentials(&self, registry: &str) -> Result<Option<(String, String)>, ConfigError> {
        let r = self.registry(registry);
        let user = r.username.clone().unwrap_or_else(|| "tack".into());
        if let Some(var) = &r.token_env {
            return match std::env::var(var) {
                Ok(v) if !v.is_empty() => Ok(Some((user, v))),
                _ => Err(ConfigError(format!(
                    "registry {registry} takes its token from ${var}, which is not set"
                ))),
            };
        }
        if let Some(file) = &r.token_file {
            let path = self.base_dir.join(file);
            let text = std::fs::read_to_string(&path).map_err(|e| {
                ConfigError(format!(
                    "registry {registry} takes its token from {}: {e}",
                    path.display()
                ))
            })?;
            return Ok(Some((user, text.trim().to_string())));
        }
        Ok(None)
    }

    /// Load the trust policy (reading every key file).
    pub fn trust_policy(&self) -> Result<TrustPolicy, ConfigError> {
        let mut namespaces = BTreeMap::new();
        for (ns, entry) in &self.trust {
            let mut keys = Vec::new();
            for k in &entry.keys {
                let path = self.base_dir.join(k);
                let pem = std::fs::read_to_string(&path).map_err(|e| {
                    ConfigError(format!(
                        "trust.{ns}: cannot read key {}: {e}",
                        path.display()
                    ))
                })?;
                let key = PublicKey::from_pem(&pem)
                    .map_err(|e| ConfigError(format!("trust.{ns}: {}: {e}", path.display())))?;
                keys.push(key);
            }
            if entry.require_signature && keys.is_empty() {
                return Err(ConfigError(format!(
                    "trust.{ns} requires signatures but lists no keys: add `keys = [\"…pub\"]` \
                     or set `require-signature = false`"
                )));
            }
            namespaces.insert(
                ns.clone(),
                NamespaceTrust {
                    keys,
                    require_signature: entry.require_signature,
                },
            );
        }
        Ok(TrustPolicy {
            namespaces,
            require_by_default: self.require_signatures,
        })
    }
}

/// Trusted keys of one namespace.
#[derive(Debug, Clone)]
pub struct NamespaceTrust {
    /// Accepted signers.
    pub keys: Vec<PublicKey>,
    /// Whether a signature is required.
    pub require_signature: bool,
}

/// Which keys each namespace trusts, and whether it requires a signature.
#[derive(Debug, Clone, Default)]
pub struct TrustPolicy {
    /// By namespace; `*` applies to the rest.
    pub namespaces: BTreeMap<String, NamespaceTrust>,
    /// Whether a namespace no entry covers must be signed by a trusted key (so
    /// is refused: it has none).
    pub require_by_default: bool,
}

impl TrustPolicy {
    /// A policy requiring `keys` for `namespace`.
    pub fn require(namespace: &str, keys: Vec<PublicKey>) -> TrustPolicy {
        let mut namespaces = BTreeMap::new();
        namespaces.insert(
            namespace.to_string(),
            NamespaceTrust {
                keys,
                require_signature: true,
            },
        );
        TrustPolicy {
            namespaces,
            require_by_default: false,
        }
    }

    /// The entry governing `reference` (its namespace's, else `*`'s), with its name.
    pub fn for_ref(&self, reference: &ArtifactRef) -> Option<(&str, &NamespaceTrust)> {
        let ns = reference.namespace();
        self.namespaces
            .get_key_value(ns)
            .or_else(|| self.namespaces.get_key_value("*"))
            .map(|(k, v)| (k.as_str(), v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trust_and_registries_parse_and_missing_keys_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let key = tack_artifact::SigningKey::generate();
        std::fs::write(dir.path().join("acme.pub"), key.public_key().to_pem()).unwrap();
        let path = dir.path().join("tack.toml");
        let c = DistributionConfig::from_toml(
            "default-registry = \"reg.example\"\n[registries.\"reg.example\"]\ntoken-env = \"TACK_TEST_UNSET_VAR\"\n[trust.acme]\nkeys = [\"acme.pub\"]\n[trust.\"*\"]\nrequire-signature = false\n[agents]\nother = 1\n",
            &path,
        )
        .unwrap();
        let policy = c.trust_policy().unwrap();
        let r = ArtifactRef::parse("reg.example/acme/jq@1.0.0", None).unwrap();
        let (ns, t) = policy.for_ref(&r).unwrap();
        assert_eq!((ns, t.keys.len(), t.require_signature), ("acme", 1, true));
        let other = ArtifactRef::parse("reg.example/zeta/jq@1.0.0", None).unwrap();
        assert!(!policy.for_ref(&other).unwrap().1.require_signature);
        let e = c.credentials("reg.example").unwrap_err().to_string();
        assert!(e.contains("$TACK_TEST_UNSET_VAR"), "{e}");
        assert!(c.insecure("localhost:5050") && !c.insecure("reg.example"));
        let bad = DistributionConfig::from_toml("[trust.acme]\n", &path).unwrap();
        assert!(
            bad.trust_policy()
                .unwrap_err()
                .to_string()
                .contains("lists no keys")
        );
        let typo = DistributionConfig::from_toml("[trust.acme]\nkey = []\n", &path);
        assert!(
            typo.unwrap_err()
                .to_string()
                .contains("unknown field `key`")
        );
    }
}
