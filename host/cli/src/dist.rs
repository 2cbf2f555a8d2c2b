//! What the registry-facing commands share: the host configuration, the artifact
//! fetcher, progress bars, and turning a file-or-reference argument into bytes.

use crate::Globals;
use crate::report::{self, EXIT_UNUSABLE, EXIT_USAGE, Failure};
use futures_util::future::BoxFuture;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use tack_distribution::{
    ArtifactCache, ArtifactRef, DistError, DistributionConfig, FetchOptions, Fetched, Fetcher,
    NoProgress, Progress, Registries, Transfer, TrustPolicy,
};
use tack_engine::{Artifact, ComponentSource, SourceError};

/// Exit code: an artifact could not be obtained or was refused.
pub(crate) const EXIT_ARTIFACT: u8 = 6;

/// The host configuration and registry connections.
pub(crate) struct Dist {
    pub(crate) config: DistributionConfig,
    config_path: Option<PathBuf>,
    pub(crate) registries: Registries,
}

impl Dist {
    pub(crate) fn load(g: &Globals) -> Result<Dist, Failure> {
        let config = match &g.config {
            Some(path) => DistributionConfig::load(path).map_err(|e| {
                Failure::new(EXIT_UNUSABLE, e.0)
                    .help("the host configuration format is in docs/registry.md")
            })?,
            None => DistributionConfig::default(),
        };
        Ok(Dist {
            registries: Registries::new(config.clone()),
            config,
            config_path: g.config.clone(),
        })
    }

    /// `$TACK_REGISTRY`, else the configuration's `default-registry`.
    pub(crate) fn default_registry(&self) -> Option<String> {
        std::env::var("TACK_REGISTRY")
            .ok()
            .filter(|r| !r.is_empty())
            .or_else(|| self.config.default_registry.clone())
    }

    pub(crate) fn parse_ref(&self, s: &str) -> Result<ArtifactRef, Failure> {
        ArtifactRef::parse(s, self.default_registry().as_deref())
            .map_err(|e| Failure::new(EXIT_USAGE, e.to_string()))
    }

    pub(crate) fn trust(&self) -> Result<TrustPolicy, Failure> {
        self.config.trust_policy().map_err(|e| {
            Failure::new(EXIT_UNUSABLE, e.0).help("the trust policy format is in docs/registry.md")
        })
    }

    pub(crate) fn fetcher(&self, g: &Globals) -> Result<Fetcher, Failure> {
        let cache_dir = g
            .artifact_dir
            .clone()
            .or_else(ArtifactCache::default_dir)
            .ok_or_else(|| {
                Failure::new(
                    EXIT_UNUSABLE,
                    "no artifact cache directory: HOME is not set",
                )
                .help("pass --artifact-dir DIR or set TACK_ARTIFACT_DIR")
            })?;
        let lock = g.lock.clone().or_else(|| {
            self.config_path
                .as_ref()
                .map(|c| c.with_file_name("tack.lock"))
        });
        Ok(Fetcher::new(
            self.registries.clone(),
            self.trust()?,
            ArtifactCache::new(cache_dir),
            lock,
        ))
    }
}

/// A refusal or transfer failure, with its exit code and a hint.
pub(crate) fn failure(e: DistError) -> Failure {
    let help = match &e {
        DistError::Unreachable { .. } => Some(
            "check that the registry runs and the address is right; an artifact pulled once \
             is used from the cache when its registry is down",
        ),
        DistError::Denied { detail, .. } if !detail.contains("has role") => Some(
            "give the host credentials in its configuration: [registries.\"HOST\"] token-env = \"VAR\" \
             (see docs/registry.md)",
        ),
        DistError::NotFound { .. } => Some("list what the registry has with `tack registry ls`"),
        DistError::TamperedBlob { .. } | DistError::TamperedManifest { .. } => Some(
            "nothing was cached or run; report it to the registry's operator and publish again",
        ),
        _ => None,
    };
    let code = match e {
        DistError::Usage(_) => EXIT_USAGE,
        DistError::Io(_) => EXIT_UNUSABLE,
        _ => EXIT_ARTIFACT,
    };
    let f = Failure::new(code, format!("{e} [{}]", e.kind()));
    match help {
        Some(h) => f.help(h),
        None => f,
    }
}

/// indicatif bars on a terminal, nothing otherwise.
pub(crate) struct Bars(MultiProgress);

impl Bars {
    pub(crate) fn new() -> Bars {
        let target = if std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        Bars(MultiProgress::with_draw_target(target))
    }
}

struct Bar(ProgressBar);

impl tack_distribution::progress::Bar for Bar {
    fn advance(&self, n: u64) {
        self.0.inc(n);
    }
    fn finish(&self) {
        self.0.finish();
    }
}

impl Progress for Bars {
    fn start(
        &self,
        direction: Transfer,
        what: &str,
        total: u64,
    ) -> Arc<dyn tack_distribution::progress::Bar> {
        let bar = self.0.add(ProgressBar::new(total));
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix:>9} {msg:30!} [{bar:30}] {bytes:>10}/{total_bytes:10} {bytes_per_sec}",
            )
            .expect("template parses")
            .progress_chars("=> "),
        );
        bar.set_prefix(match direction {
            Transfer::Upload => "upload",
            Transfer::Download => "download",
        });
        bar.set_message(what.to_string());
        Arc::new(Bar(bar))
    }
}

/// A component given as a file path or a registry reference.
pub(crate) struct Loaded {
    pub(crate) bytes: Vec<u8>,
    pub(crate) label: String,
    pub(crate) fetched: Option<Fetched>,
}

/// Read `target` as a file if it exists, else resolve it as a reference (verified
/// against the trust policy before a byte is returned).
pub(crate) async fn component(g: &Globals, target: &str) -> Result<Loaded, Failure> {
    let path = PathBuf::from(target);
    let looks_like_ref = target.contains('@') || (target.contains(':') && !path.exists());
    if path.exists() || !looks_like_ref {
        let bytes = std::fs::read(&path).map_err(|e| {
            Failure::new(EXIT_UNUSABLE, format!("cannot read {target}: {e}")).help(
                "pass a .wasm file, or a registry reference such as localhost:5050/tack/jq@0.1.0",
            )
        })?;
        return Ok(Loaded {
            bytes,
            label: target.to_string(),
            fetched: None,
        });
    }
    let dist = Dist::load(g)?;
    let r = dist.parse_ref(target)?;
    let fetcher = dist.fetcher(g)?;
    let fetched = fetcher
        .fetch(&r, &FetchOptions::default(), &Bars::new())
        .await
        .map_err(failure)?;
    let Some(bytes) = fetched.component.clone() else {
        return Err(Failure::new(
            EXIT_UNUSABLE,
            format!("{r} is a skill without a component: it has no tools to load"),
        ));
    };
    match &fetched.signature {
        Some(s) if s.trusted => {}
        Some(s) => report::note(&format!(
            "{r} is signed by {} but no trust entry covers namespace `{}`",
            s.signer,
            r.namespace()
        )),
        None => report::note(&format!(
            "{r} is not signed and no trust entry requires it (namespace `{}`)",
            r.namespace()
        )),
    }
    Ok(Loaded {
        bytes,
        label: r.to_string(),
        fetched: Some(fetched),
    })
}

/// The engine's components from OCI registries, through the verifying
/// [`Fetcher`] (signatures against the trust policy, digests, lock file, cache).
pub(crate) struct RegistrySource {
    fetcher: Fetcher,
    config: DistributionConfig,
}

impl RegistrySource {
    /// A source over `fetcher`, resolving references only through the
    /// registries `config` names (those without one use its default registry).
    pub(crate) fn new(fetcher: Fetcher, config: DistributionConfig) -> Self {
        RegistrySource { fetcher, config }
    }
}

impl ComponentSource for RegistrySource {
    fn fetch<'a>(&'a self, reference: &'a str) -> BoxFuture<'a, Result<Artifact, SourceError>> {
        Box::pin(async move {
            let r = ArtifactRef::parse(reference, self.config.default_registry.as_deref())
                .map_err(|e| SourceError::Refused(Box::new(e)))?;
            // Only through the registries the operator configured: an agent
            // file must not make the host fetch from an address of its choosing.
            if !self.config.allows_registry(&r.registry) {
                return Err(SourceError::Refused(
                    format!(
                        "`{reference}` is on registry `{}`, which this host does not use (it \
                         resolves references through: {})",
                        r.registry,
                        self.config.allowed_registries().join(", ")
                    )
                    .into(),
                ));
            }
            let f = self
                .fetcher
                .fetch(&r, &FetchOptions::default(), &NoProgress)
                .await
                .map_err(|e| {
                    // What the registry said goes to the host's log; the
                    // client that asked for a session gets the summary.
                    tracing::warn!("fetching {reference}: {e}");
                    SourceError::Refused(e.summary().into())
                })?;
            Ok(Artifact {
                digest: f.digest,
                component: f.component,
                skill: f.skill,
                signer: f.signature.filter(|s| s.trusted).map(|s| s.signer),
            })
        })
    }
}
