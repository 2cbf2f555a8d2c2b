//! Artifact references: `[registry/]repository(:tag | @version | @sha256:<hex>)`.

use std::fmt;

/// A parsed artifact reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ArtifactRef {
    /// Registry host (and port): `localhost:5050`, `ghcr.io`.
    pub registry: String,
    /// Repository path: `tack/jq`.
    pub repository: String,
    /// Tag (a semver version for tack artifacts), if the reference has one.
    pub tag: Option<String>,
    /// Manifest digest, if the reference pins one.
    pub digest: Option<String>,
}

/// Why a reference did not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("`{input}` is not an artifact reference: {reason}")]
pub struct ReferenceError {
    /// What was given.
    pub input: String,
    /// What is wrong, and the expected shape.
    pub reason: String,
}

fn looks_like_registry(first: &str) -> bool {
    first.contains('.') || first.contains(':') || first == "localhost"
}

impl ArtifactRef {
    /// Parse `input`; a reference without a registry uses `default_registry`.
    pub fn parse(
        input: &str,
        default_registry: Option<&str>,
    ) -> Result<ArtifactRef, ReferenceError> {
        let err = |reason: &str| ReferenceError {
            input: input.to_string(),
            reason: format!(
                "{reason}; expected [REGISTRY/]NAMESPACE/NAME@VERSION (or :TAG, or @sha256:DIGEST), \
                 e.g. localhost:5050/acme/jq@0.1.0"
            ),
        };
        let (rest, digest) = match input.split_once("@sha256:") {
            Some((r, hex)) => {
                if hex.len() != 64
                    || !hex
                        .bytes()
                        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
                {
                    return Err(err("the digest is not 64 lowercase hex characters"));
                }
                (r, Some(format!("sha256:{hex}")))
            }
            None => (input, None),
        };
        let (path, tag) = if digest.is_none() {
            if let Some((p, v)) = rest.rsplit_once('@') {
                (p, Some(v.to_string()))
            } else {
                match rest.rsplit_once(':') {
                    // A colon after the last `/` is a tag; before it, a registry port.
                    Some((p, t)) if !t.contains('/') => (p, Some(t.to_string())),
                    _ => (rest, None),
                }
            }
        } else {
            (rest, None)
        };
        if tag.is_none() && digest.is_none() {
            return Err(err("it names no version, tag or digest"));
        }
        if let Some(t) = &tag {
            let ok = !t.is_empty()
                && t.len() <= 128
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-+".contains(&b));
            if !ok {
                return Err(err(&format!("`{t}` is not a valid tag")));
            }
        }
        let (registry, repository) = match path.split_once('/') {
            Some((first, repo)) if looks_like_registry(first) => {
                (first.to_string(), repo.to_string())
            }
            _ => match default_registry {
                Some(r) => (r.to_string(), path.to_string()),
                None => {
                    return Err(err(
                        "it names no registry and no default registry is configured \
                         (set `default-registry` in the host configuration or TACK_REGISTRY)",
                    ));
                }
            },
        };
        let valid_repo = !repository.is_empty()
            && repository.split('/').all(|c| {
                !c.is_empty()
                    && c.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b)
                    })
            });
        if !valid_repo {
            return Err(err(&format!(
                "`{repository}` is not a repository name (lowercase letters, digits, `.`, `_`, `-`, separated by `/`)"
            )));
        }
        Ok(ArtifactRef {
            registry,
            repository,
            // `@v1.2.3` and `@1.2.3` name the same version tag.
            tag: tag.map(|t| match t.strip_prefix('v') {
                Some(v) if semver::Version::parse(v).is_ok() => v.to_string(),
                _ => t,
            }),
            digest,
        })
    }

    /// The namespace (first path component of the repository).
    pub fn namespace(&self) -> &str {
        self.repository
            .split('/')
            .next()
            .unwrap_or(&self.repository)
    }

    /// `registry/repository`.
    pub fn repository_url(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The same repository at `digest`.
    pub fn at_digest(&self, digest: &str) -> ArtifactRef {
        ArtifactRef {
            digest: Some(digest.to_string()),
            ..self.clone()
        }
    }

    /// The same repository at `tag`.
    pub fn at_tag(&self, tag: &str) -> ArtifactRef {
        ArtifactRef {
            tag: Some(tag.to_string()),
            digest: None,
            ..self.clone()
        }
    }
}

impl fmt::Display for ArtifactRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        match (&self.tag, &self.digest) {
            (Some(t), None) => write!(f, ":{t}"),
            (None, Some(d)) => write!(f, "@{d}"),
            (Some(t), Some(d)) => write!(f, ":{t}@{d}"),
            (None, None) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_accepted_shapes() {
        let r = ArtifactRef::parse("localhost:5050/acme/jq@0.1.0", None).unwrap();
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str()),
            ("localhost:5050", "acme/jq")
        );
        assert_eq!(r.tag.as_deref(), Some("0.1.0"));
        let r = ArtifactRef::parse("acme/jq:0.1.0", Some("reg.example")).unwrap();
        assert_eq!(r.to_string(), "reg.example/acme/jq:0.1.0");
        assert_eq!(r.namespace(), "acme");
        let hex = "a".repeat(64);
        let r = ArtifactRef::parse(&format!("ghcr.io/acme/jq@sha256:{hex}"), None).unwrap();
        assert_eq!(r.digest, Some(format!("sha256:{hex}")));
        assert_eq!(
            ArtifactRef::parse("localhost/x@v2.0.0", None)
                .unwrap()
                .tag
                .as_deref(),
            Some("2.0.0")
        );
    }

    #[test]
    fn bad_references_say_what_is_wrong() {
        let e = |s: &str| ArtifactRef::parse(s, None).unwrap_err().to_string();
        assert!(e("localhost:5050/acme/jq").contains("no version"));
        assert!(e("acme/jq@1.0.0").contains("no default registry"));
        assert!(e("localhost:5050/Acme/jq@1.0.0").contains("not a repository name"));
        assert!(e("localhost:5050/acme/jq@sha256:xyz").contains("64 lowercase hex"));
        assert!(e("localhost:5050/acme/jq@1 0").contains("not a valid tag"));
    }
}
