//! Talking to OCI registries (any that follow the distribution spec: tack's, CNCF
//! distribution, ghcr.io, …) through oci-client, with credentials from the host
//! configuration and every byte checked against its digest.

use crate::config::DistributionConfig;
use crate::error::DistError;
use crate::progress::{Progress, Transfer};
use bytes::Bytes;
use futures_util::StreamExt;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::manifest::OciDescriptor;
use oci_client::secrets::RegistryAuth;
use sha2::{Digest as _, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Once};
use tack_artifact::ArtifactRef;
use tack_artifact::Descriptor;
use tack_artifact::oci::IMAGE_MANIFEST;

const ACCEPT: &[&str] = &[
    IMAGE_MANIFEST,
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];

/// Connections to registries, one oci-client per registry host.
#[derive(Clone)]
pub struct Registries {
    config: Arc<DistributionConfig>,
    clients: Arc<Mutex<HashMap<String, Arc<oci_client::Client>>>>,
}

/// Install the process-wide TLS crypto provider (ring) that reqwest and oci-client use.
/// Idempotent; every constructor here calls it.
pub fn install_crypto() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

impl Registries {
    /// Registries as `config` describes them.
    pub fn new(config: DistributionConfig) -> Registries {
        install_crypto();
        Registries {
            config: Arc::new(config),
            clients: Arc::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &DistributionConfig {
        &self.config
    }

    fn client(&self, registry: &str) -> Arc<oci_client::Client> {
        let mut clients = self.clients.lock().unwrap();
        clients
            .entry(registry.to_string())
            .or_insert_with(|| {
                let protocol = if self.config.insecure(registry) {
                    ClientProtocol::Http
                } else {
                    ClientProtocol::Https
                };
                Arc::new(oci_client::Client::new(ClientConfig {
                    protocol,
                    user_agent: concat!("tack/", env!("CARGO_PKG_VERSION")),
                    connect_timeout: Some(std::time::Duration::from_secs(5)),
                    read_timeout: Some(std::time::Duration::from_secs(60)),
                    platform_resolver: None,
                    ..Default::default()
                }))
            })
            .clone()
    }

    fn auth(&self, registry: &str) -> Result<RegistryAuth, DistError> {
        Ok(
            match self
                .config
                .credentials(registry)
                .map_err(|e| DistError::Usage(e.0))?
            {
                Some((user, secret)) => RegistryAuth::Basic(user, secret),
                None => RegistryAuth::Anonymous,
            },
        )
    }

    /// Translate an oci-client error about `r` into a [`DistError`].
    fn classify(&self, r: &ArtifactRef, e: OciDistributionError) -> DistError {
        let reference = r.to_string();
        let configured = self.config.registries.contains_key(&r.registry);
        let credential_hint = if configured {
            String::new()
        } else {
            format!(
                "; no credentials are configured for {}: add [registries.\"{}\"] with token-env or token-file to the host configuration",
                r.registry, r.registry
            )
        };
        match e {
            OciDistributionError::RequestError(e) => DistError::Unreachable {
                registry: r.registry.clone(),
                reference,
                cause: error_chain(&e),
            },
            OciDistributionError::UnauthorizedError { .. } => DistError::Denied {
                reference,
                detail: format!("401 unauthorized{credential_hint}"),
            },
            OciDistributionError::AuthenticationFailure(reason) => DistError::Denied {
                reference,
                detail: format!(
                    "the token endpoint refused the credentials: {}",
                    reason.trim()
                ),
            },
            OciDistributionError::RegistryError { envelope, .. } => {
                let message = envelope
                    .errors
                    .iter()
                    .map(|e| e.message.clone())
                    .collect::<Vec<_>>()
                    .join("; ");
                let code = envelope.errors.first().map(|e| &e.code);
                match code {
                    Some(
                        OciErrorCode::ManifestUnknown
                        | OciErrorCode::NameUnknown
                        | OciErrorCode::BlobUnknown,
                    ) => DistError::NotFound {
                        reference,
                        detail: message,
                    },
                    Some(OciErrorCode::Denied) => DistError::Denied {
                        reference,
                        detail: message,
                    },
                    Some(OciErrorCode::Unauthorized) => DistError::Denied {
                        reference,
                        detail: format!("{message}{credential_hint}"),
                    },
                    _ => DistError::Registry {
                        reference,
                        detail: message,
                    },
                }
            }
            OciDistributionError::ServerError { code, message, .. } => {
                // Some endpoints report the spec's error envelope as plain text.
                let detail = serde_json::from_str::<serde_json::Value>(&message)
                    .ok()
                    .and_then(|v| {
                        let msgs: Vec<String> = v["errors"]
                            .as_array()?
                            .iter()
                            .filter_map(|e| e["message"].as_str().map(str::to_string))
                            .collect();
                        (!msgs.is_empty()).then(|| msgs.join("; "))
                    })
                    .unwrap_or_else(|| message.trim().to_string());
                match code {
                    404 => DistError::NotFound { reference, detail },
                    401 => DistError::Denied {
                        reference,
                        detail: format!("{detail}{credential_hint}"),
                    },
                    403 => DistError::Denied { reference, detail },
                    _ => DistError::Registry {
                        reference,
                        detail: format!("HTTP {code}: {detail}"),
                    },
                }
            }
            OciDistributionError::ImageManifestNotFoundError(m) => DistError::NotFound {
                reference,
                detail: m,
            },
            OciDistributionError::DigestError(d) => DistError::TamperedManifest {
                reference,
                expected: r
                    .digest
                    .clone()
                    .unwrap_or_else(|| "the registry's digest header".into()),
                actual: d.to_string(),
            },
            other => DistError::Registry {
                reference,
                detail: other.to_string(),
            },
        }
    }

    /// The manifest digest `r` names (a HEAD request; `r`'s own digest if it pins one).
    pub async fn resolve(&self, r: &ArtifactRef) -> Result<String, DistError> {
        let auth = self.auth(&r.registry)?;
        self.client(&r.registry)
            .fetch_manifest_digest(&oci_ref(r), &auth)
            .await
            .map_err(|e| self.classify(r, e))
    }

    /// The manifest `r` names and its digest, verified: when `r` pins a digest the
    /// bytes must hash to it.
    pub async fn manifest(&self, r: &ArtifactRef) -> Result<(Vec<u8>, String), DistError> {
        let auth = self.auth(&r.registry)?;
        let (bytes, header) = self
            .client(&r.registry)
            .pull_manifest_raw(&oci_ref(r), &auth, ACCEPT)
            .await
            .map_err(|e| self.classify(r, e))?;
        let actual = tack_artifact::sha256_digest(&bytes);
        let expected = r.digest.clone().unwrap_or(header);
        if actual != expected {
            return Err(DistError::TamperedManifest {
                reference: r.to_string(),
                expected,
                actual,
            });
        }
        Ok((bytes.to_vec(), actual))
    }

    /// The manifest at tag `tag` of `r`'s repository, or `None` if there is none.
    pub async fn optional_manifest(
        &self,
        r: &ArtifactRef,
        tag: &str,
    ) -> Result<Option<(Vec<u8>, String)>, DistError> {
        match self.manifest(&r.at_tag(tag)).await {
            Ok(m) => Ok(Some(m)),
            Err(DistError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Download blob `desc` of `r`'s repository, checking size and digest.
    pub async fn blob(
        &self,
        r: &ArtifactRef,
        desc: &Descriptor,
        what: &str,
        progress: &dyn Progress,
    ) -> Result<Vec<u8>, DistError> {
        let auth = self.auth(&r.registry)?;
        let client = self.client(&r.registry);
        client.store_auth_if_needed(&r.registry, &auth).await;
        let oci_desc = OciDescriptor {
            media_type: desc.media_type.clone(),
            digest: desc.digest.clone(),
            size: desc.size as i64,
            ..Default::default()
        };
        let reference = r.at_digest(r.digest.as_deref().unwrap_or(&desc.digest));
        let mut stream = client
            .pull_blob_stream(&oci_ref(&reference), &oci_desc)
            .await
            .map_err(|e| self.classify(r, e))?;
        let bar = progress.start(Transfer::Download, what, desc.size);
        let mut hasher = Sha256::new();
        let mut out = Vec::with_capacity(desc.size.min(64 << 20) as usize);
        let mut failure = None;
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(c) => {
                    hasher.update(&c);
                    out.extend_from_slice(&c);
                    bar.advance(c.len() as u64);
                    if out.len() as u64 > desc.size {
                        break;
                    }
                }
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        bar.finish();
        let actual = format!("sha256:{}", hex::encode(hasher.finalize()));
        if actual == desc.digest && out.len() as u64 == desc.size {
            return Ok(out);
        }
        match failure {
            // A transfer cut short is a network problem, not tampering.
            Some(e) if (out.len() as u64) < desc.size => Err(DistError::Unreachable {
                registry: r.registry.clone(),
                reference: r.to_string(),
                cause: format!("download of {what} was interrupted: {e}"),
            }),
            _ => Err(DistError::TamperedBlob {
                reference: r.to_string(),
                what: what.to_string(),
                expected: desc.digest.clone(),
                actual,
            }),
        }
    }

    /// The client for `r`'s registry, authorized to push to `r`'s repository.
    async fn push_session(
        &self,
        r: &ArtifactRef,
    ) -> Result<(Arc<oci_client::Client>, oci_client::Reference), DistError> {
        let auth = self.auth(&r.registry)?;
        let client = self.client(&r.registry);
        let oci = oci_ref(r);
        client
            .auth(&oci, &auth, oci_client::RegistryOperation::Push)
            .await
            .map_err(|e| self.classify(r, e))?;
        Ok((client, oci))
    }

    /// Upload `bytes` to `r`'s repository (skipped when the registry has it).
    pub async fn push_blob(
        &self,
        r: &ArtifactRef,
        desc: &Descriptor,
        bytes: &[u8],
        what: &str,
        progress: &dyn Progress,
    ) -> Result<(), DistError> {
        let (client, oci) = self.push_session(r).await?;
        if client
            .blob_exists(&oci, &desc.digest)
            .await
            .map_err(|e| self.classify(r, e))?
        {
            return Ok(());
        }
        let bar = progress.start(Transfer::Upload, what, desc.size);
        const CHUNK: usize = 256 * 1024;
        let chunks: Vec<Bytes> = bytes.chunks(CHUNK).map(Bytes::copy_from_slice).collect();
        let bar2 = bar.clone();
        let stream = futures_util::stream::iter(chunks).map(move |c| {
            bar2.advance(c.len() as u64);
            Ok(c)
        });
        let pushed = client
            .push_blob_stream(&oci, stream, &desc.digest, Some(desc.size))
            .await;
        bar.finish();
        pushed.map(|_| ()).map_err(|e| self.classify(r, e))
    }

    /// Upload a manifest under `r`'s tag (or digest); returns the registry's digest.
    pub async fn push_manifest(&self, r: &ArtifactRef, bytes: &[u8]) -> Result<String, DistError> {
        let (client, oci) = self.push_session(r).await?;
        client
            .push_manifest_raw(&oci, bytes.to_vec(), http_header(IMAGE_MANIFEST))
            .await
            .map_err(|e| self.classify(r, e))?;
        Ok(tack_artifact::sha256_digest(bytes))
    }
}

fn http_header(v: &'static str) -> http::HeaderValue {
    http::HeaderValue::from_static(v)
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

/// The oci-client form of `r` (its digest wins over its tag).
fn oci_ref(r: &ArtifactRef) -> oci_client::Reference {
    match (&r.digest, &r.tag) {
        (Some(d), _) => {
            oci_client::Reference::with_digest(r.registry.clone(), r.repository.clone(), d.clone())
        }
        (None, Some(t)) => {
            oci_client::Reference::with_tag(r.registry.clone(), r.repository.clone(), t.clone())
        }
        (None, None) => unreachable!("a reference has a tag or a digest"),
    }
}
