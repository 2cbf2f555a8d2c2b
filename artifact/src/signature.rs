//! cosign-compatible signatures.
//!
//! A signature is an ECDSA P-256 / SHA-256 signature (ASN.1 DER, base64) over a
//! *simple-signing payload* that binds the signed manifest's digest. The payload is
//! a layer (`application/vnd.dev.cosign.simplesigning.v1+json`) of a signature
//! manifest, the signature its `dev.cosignproject.cosign/signature` annotation.
//! The signature manifest is tagged `sha256-<hex>.sig` in the signed artifact's
//! repository (which works on every registry) and names the signed manifest as its
//! `subject` (so registries with the referrers API list it too).
//!
//! Keys are PEM: private keys PKCS#8 (`PRIVATE KEY`), public keys SPKI (`PUBLIC KEY`,
//! the format of `cosign.pub`). tack also records the signer's public key in the
//! `dev.tack.signature/public-key` layer annotation, so a registry can say *who*
//! signed; whether that key is *trusted* is decided by each host's trust policy.

use crate::oci::{Descriptor, IMAGE_MANIFEST, ImageManifest, sha256_digest};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use p256::ecdsa::signature::{Signer as _, Verifier as _};
use p256::ecdsa::{Signature, SigningKey as EcSigningKey, VerifyingKey};
use p256::pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, LineEnding,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use std::fmt;

/// Media type of a simple-signing payload layer.
pub const SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// Artifact type of a signature manifest (cosign's OCI 1.1 mode).
pub const SIGNATURE_ARTIFACT: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";
/// Layer annotation holding the base64 signature.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// Layer annotation holding the signer's public key (PEM).
pub const PUBLIC_KEY_ANNOTATION: &str = "dev.tack.signature/public-key";
const CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";
const SIGNATURE_TYPE: &str = "cosign container image signature";

/// The tag under which the signatures of `digest` are stored: `sha256-<hex>.sig`.
pub fn signature_tag(digest: &str) -> String {
    format!("{}.sig", digest.replacen(':', "-", 1))
}

/// Why a signature was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum SignatureError {
    /// A key file could not be read.
    #[error("{0}")]
    Key(String),
    /// Signed, but by none of the trusted keys.
    #[error("signed by {}, which is not a trusted key", signers.join(", "))]
    Untrusted {
        /// Fingerprints of the keys that did sign (valid signatures).
        signers: Vec<String>,
    },
    /// No valid signature at all (malformed, for another digest, or not matching any key).
    #[error("{0}")]
    Invalid(String),
}

/// An ECDSA P-256 private key.
pub struct SigningKey(EcSigningKey);

impl SigningKey {
    /// A new random key from the operating system's generator.
    pub fn generate() -> SigningKey {
        SigningKey(EcSigningKey::random(&mut rand_core::OsRng))
    }

    /// Read an unencrypted PKCS#8 private key in PEM (a `PRIVATE KEY` block).
    pub fn from_pem(pem: &str) -> Result<SigningKey, SignatureError> {
        EcSigningKey::from_pkcs8_pem(pem).map(SigningKey).map_err(|e| {
            SignatureError::Key(format!(
                "not an unencrypted PKCS#8 ECDSA P-256 private key ({e}); create one with `tack keygen`"
            ))
        })
    }

    /// The key as PKCS#8 PEM.
    pub fn to_pem(&self) -> String {
        self.0
            .to_pkcs8_pem(LineEnding::LF)
            .expect("a P-256 key encodes")
            .to_string()
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(*self.0.verifying_key())
    }

    /// Sign `payload`: base64 of the ASN.1 DER ECDSA signature, as cosign stores it.
    pub fn sign(&self, payload: &[u8]) -> String {
        let sig: Signature = self.0.sign(payload);
        B64.encode(sig.to_der().as_bytes())
    }
}

/// An ECDSA P-256 public key.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

impl PublicKey {
    /// Read an SPKI PEM public key (`-----BEGIN PUBLIC KEY-----`, as in `cosign.pub`).
    pub fn from_pem(pem: &str) -> Result<PublicKey, SignatureError> {
        VerifyingKey::from_public_key_pem(pem.trim())
            .map(PublicKey)
            .map_err(|e| {
                SignatureError::Key(format!(
                    "not an ECDSA P-256 public key in PEM ({e}); `tack keygen` writes one as <name>.pub"
                ))
            })
    }

    /// The key as SPKI PEM.
    pub fn to_pem(&self) -> String {
        self.0
            .to_public_key_pem(LineEnding::LF)
            .expect("a P-256 key encodes")
    }

    /// `sha256:<hex>` of the key's DER encoding: how tack names a signer.
    pub fn fingerprint(&self) -> String {
        let der = self.0.to_public_key_der().expect("a P-256 key encodes");
        format!("sha256:{}", hex::encode(Sha256::digest(der.as_bytes())))
    }

    /// Whether `signature` (base64 DER) is this key's signature of `payload`.
    pub fn verifies(&self, payload: &[u8], signature: &str) -> bool {
        let Ok(der) = B64.decode(signature.trim()) else {
            return false;
        };
        let Ok(sig) = Signature::from_der(&der) else {
            return false;
        };
        self.0.verify(payload, &sig).is_ok()
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.fingerprint())
    }
}

/// The simple-signing payload (the format cosign signs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimpleSigning {
    /// The bound facts.
    pub critical: Critical,
    /// Unsigned-by-convention extra data (signed all the same).
    #[serde(default)]
    pub optional: Value,
}

/// The `critical` part of a simple-signing payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Critical {
    /// The repository the artifact was signed as.
    pub identity: Identity,
    /// The manifest digest.
    pub image: Image,
    /// Always `cosign container image signature`.
    #[serde(rename = "type")]
    pub kind: String,
}

/// `critical.identity`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Identity {
    /// `registry/repository` the signer published to.
    #[serde(rename = "docker-reference")]
    pub docker_reference: String,
}

/// `critical.image`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Image {
    /// `sha256:<hex>` of the signed manifest.
    #[serde(rename = "docker-manifest-digest")]
    pub docker_manifest_digest: String,
}

impl SimpleSigning {
    /// The payload binding `digest`, signed as `docker_reference`.
    pub fn new(docker_reference: &str, digest: &str) -> SimpleSigning {
        SimpleSigning {
            critical: Critical {
                identity: Identity {
                    docker_reference: docker_reference.to_string(),
                },
                image: Image {
                    docker_manifest_digest: digest.to_string(),
                },
                kind: SIGNATURE_TYPE.to_string(),
            },
            optional: Value::Null,
        }
    }

    /// The payload's bytes (what is signed).
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a payload serializes")
    }
}

/// A signature that verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifiedSignature {
    /// Fingerprint of the key that verified it.
    pub signer: String,
    /// The repository the signer published to.
    pub identity: String,
}

/// One signature layer of a signature manifest: descriptor and payload bytes.
pub struct SignatureLayer<'a> {
    /// The layer's descriptor (with the signature annotations).
    pub descriptor: &'a Descriptor,
    /// The payload blob, as fetched.
    pub payload: &'a [u8],
}

/// The simple-signing layers of a signature manifest.
pub fn signature_layers(manifest: &ImageManifest) -> Vec<&Descriptor> {
    manifest
        .layers
        .iter()
        .filter(|l| l.media_type == SIMPLE_SIGNING)
        .collect()
}

/// Check the signatures of `subject_digest` against `trusted` keys. With `trusted`
/// set to `None` every layer is checked against the public key it carries (what a
/// registry can tell: who signed, not whether to trust them).
pub fn verify(
    layers: &[SignatureLayer<'_>],
    subject_digest: &str,
    trusted: Option<&[PublicKey]>,
) -> Result<VerifiedSignature, SignatureError> {
    let mut self_signed = Vec::new();
    let mut problems = Vec::new();
    for layer in layers {
        if sha256_digest(layer.payload) != layer.descriptor.digest {
            problems.push("a payload does not match its digest".to_string());
            continue;
        }
        let payload: SimpleSigning = match serde_json::from_slice(layer.payload) {
            Ok(p) => p,
            Err(e) => {
                problems.push(format!("a payload is not a simple-signing document ({e})"));
                continue;
            }
        };
        if payload.critical.image.docker_manifest_digest != subject_digest {
            problems.push(format!(
                "a payload signs {} instead",
                payload.critical.image.docker_manifest_digest
            ));
            continue;
        }
        let Some(sig) = layer.descriptor.annotations.get(SIGNATURE_ANNOTATION) else {
            problems.push(format!("a layer has no {SIGNATURE_ANNOTATION} annotation"));
            continue;
        };
        let identity = payload.critical.identity.docker_reference.clone();
        if let Some(keys) = trusted
            && let Some(key) = keys.iter().find(|k| k.verifies(layer.payload, sig))
        {
            return Ok(VerifiedSignature {
                signer: key.fingerprint(),
                identity,
            });
        }
        let embedded = layer
            .descriptor
            .annotations
            .get(PUBLIC_KEY_ANNOTATION)
            .and_then(|pem| PublicKey::from_pem(pem).ok());
        match embedded {
            Some(key) if key.verifies(layer.payload, sig) => {
                if trusted.is_none() {
                    return Ok(VerifiedSignature {
                        signer: key.fingerprint(),
                        identity,
                    });
                }
                self_signed.push(key.fingerprint());
            }
            Some(_) => problems.push("a signature does not match its recorded key".into()),
            None if trusted.is_some() => {
                problems.push("a signature matches none of the trusted keys".into())
            }
            None => problems.push("a signature records no public key".into()),
        }
    }
    if !self_signed.is_empty() {
        return Err(SignatureError::Untrusted {
            signers: self_signed,
        });
    }
    if problems.is_empty() {
        problems.push("the signature manifest has no simple-signing layer".into());
    }
    problems.dedup();
    Err(SignatureError::Invalid(problems.join("; ")))
}

/// [`verify`] over the simple-signing layers of a signature manifest, with their
/// payloads fetched into `payloads` (by digest; a missing payload fails its layer).
pub fn verify_manifest(
    manifest: &ImageManifest,
    payloads: &std::collections::BTreeMap<String, Vec<u8>>,
    subject_digest: &str,
    trusted: Option<&[PublicKey]>,
) -> Result<VerifiedSignature, SignatureError> {
    let layers: Vec<SignatureLayer<'_>> = signature_layers(manifest)
        .into_iter()
        .map(|d| SignatureLayer {
            descriptor: d,
            payload: payloads.get(&d.digest).map_or(&[][..], Vec::as_slice),
        })
        .collect();
    verify(&layers, subject_digest, trusted)
}

/// The signature manifest for `subject` with one more signature, plus the blobs to
/// push before it (config and payload). Signatures already in `existing` are kept;
/// signing twice with the same key replaces that key's signature.
pub fn signature_manifest(
    subject: Descriptor,
    existing: Option<&ImageManifest>,
    docker_reference: &str,
    key: &SigningKey,
) -> (ImageManifest, Vec<(Descriptor, Vec<u8>)>) {
    let payload = SimpleSigning::new(docker_reference, &subject.digest).to_bytes();
    let public_pem = key.public_key().to_pem();
    let mut layer = Descriptor::of(SIMPLE_SIGNING, &payload);
    layer
        .annotations
        .insert(SIGNATURE_ANNOTATION.into(), key.sign(&payload));
    layer
        .annotations
        .insert(PUBLIC_KEY_ANNOTATION.into(), public_pem.clone());
    let mut layers: Vec<Descriptor> = existing
        .map(|m| {
            m.layers
                .iter()
                .filter(|l| l.annotations.get(PUBLIC_KEY_ANNOTATION) != Some(&public_pem))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    layers.push(layer);
    let diff_ids: Vec<&str> = layers.iter().map(|l| l.digest.as_str()).collect();
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "",
        "config": {},
        "created": "0001-01-01T00:00:00Z",
        "history": [{"created": "0001-01-01T00:00:00Z"}],
        "os": "",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .expect("config serializes");
    let config_desc = Descriptor::of(CONFIG_MEDIA_TYPE, &config);
    let mut manifest = ImageManifest::new(config_desc.clone(), layers);
    manifest.media_type = Some(IMAGE_MANIFEST.into());
    manifest.artifact_type = Some(SIGNATURE_ARTIFACT.into());
    manifest.subject = Some(Descriptor {
        annotations: Default::default(),
        artifact_type: None,
        ..subject
    });
    let blobs = vec![
        (config_desc, config),
        (Descriptor::of(SIMPLE_SIGNING, &payload), payload),
    ];
    (manifest, blobs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subject() -> Descriptor {
        Descriptor::of(IMAGE_MANIFEST, b"{\"schemaVersion\":2}")
    }

    fn layers_of<'a>(
        m: &'a ImageManifest,
        blobs: &'a [(String, Vec<u8>)],
    ) -> Vec<SignatureLayer<'a>> {
        signature_layers(m)
            .into_iter()
            .map(|d| SignatureLayer {
                descriptor: d,
                payload: &blobs.iter().find(|(k, _)| *k == d.digest).unwrap().1,
            })
            .collect()
    }

    fn blob_map(blobs: &[(Descriptor, Vec<u8>)]) -> Vec<(String, Vec<u8>)> {
        blobs
            .iter()
            .map(|(d, b)| (d.digest.clone(), b.clone()))
            .collect()
    }

    #[test]
    fn keys_round_trip_through_pem() {
        let key = SigningKey::generate();
        let again = SigningKey::from_pem(&key.to_pem()).unwrap();
        assert_eq!(key.public_key(), again.public_key());
        let public = PublicKey::from_pem(&key.public_key().to_pem()).unwrap();
        assert_eq!(public.fingerprint(), key.public_key().fingerprint());
        assert!(SigningKey::from_pem("nope").is_err());
        assert!(PublicKey::from_pem(&key.to_pem()).is_err());
    }

    #[test]
    fn a_trusted_key_verifies_and_others_are_named() {
        let alice = SigningKey::generate();
        let mallory = SigningKey::generate();
        let s = subject();
        let (m, blobs) = signature_manifest(s.clone(), None, "reg/acme/jq", &alice);
        assert_eq!(m.subject.as_ref().unwrap().digest, s.digest);
        let blobs = blob_map(&blobs);
        let layers = layers_of(&m, &blobs);
        let ok = verify(&layers, &s.digest, Some(&[alice.public_key()])).unwrap();
        assert_eq!(ok.signer, alice.public_key().fingerprint());
        match verify(&layers, &s.digest, Some(&[mallory.public_key()])) {
            Err(SignatureError::Untrusted { signers }) => {
                assert_eq!(signers, vec![alice.public_key().fingerprint()])
            }
            other => panic!("{other:?}"),
        }
        // The registry's view: who signed.
        assert_eq!(verify(&layers, &s.digest, None).unwrap().signer, ok.signer);
    }

    #[test]
    fn a_signature_for_another_digest_or_a_forged_one_is_refused() {
        let alice = SigningKey::generate();
        let s = subject();
        let (m, blobs) = signature_manifest(s.clone(), None, "reg/acme/jq", &alice);
        let blobs = blob_map(&blobs);
        let other = sha256_digest(b"other");
        let e = verify(&layers_of(&m, &blobs), &other, Some(&[alice.public_key()])).unwrap_err();
        assert!(e.to_string().contains("signs sha256:"), "{e}");
        // Swap in a signature made over different bytes.
        let mut forged = m.clone();
        forged.layers[0]
            .annotations
            .insert(SIGNATURE_ANNOTATION.into(), alice.sign(b"something else"));
        let e = verify(
            &layers_of(&forged, &blobs),
            &s.digest,
            Some(&[alice.public_key()]),
        )
        .unwrap_err();
        assert!(matches!(e, SignatureError::Invalid(_)), "{e}");
    }

    #[test]
    fn signing_again_adds_a_signer_and_replaces_the_same_one() {
        let alice = SigningKey::generate();
        let bob = SigningKey::generate();
        let s = subject();
        let (m1, _) = signature_manifest(s.clone(), None, "r", &alice);
        let (m2, _) = signature_manifest(s.clone(), Some(&m1), "r", &bob);
        assert_eq!(m2.layers.len(), 2);
        let (m3, _) = signature_manifest(s, Some(&m2), "r", &alice);
        assert_eq!(m3.layers.len(), 2);
        assert_eq!(signature_tag("sha256:ab"), "sha256-ab.sig");
    }
}
