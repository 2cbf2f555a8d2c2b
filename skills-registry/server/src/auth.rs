//! Who may do what: registry tokens with a role per namespace, and the bearer
//! token flow that docker-style clients, oras and oci-client follow.
//!
//! - An operator creates a *registry token* (`tack registry token create --namespace
//!   acme --role push`). Only its SHA-256 is stored, in `<data>/tokens.json`.
//! - A client that gets `401` with `WWW-Authenticate: Bearer realm=…/token` asks the
//!   realm for an *access token*, sending the registry token as the password of HTTP
//!   Basic auth (any user name), or nothing for anonymous pull. Access tokens are
//!   random, held in memory, and expire after [`ACCESS_TOKEN_TTL`].
//! - A registry token is also accepted directly, as `Bearer` or Basic password.
//!
//! The namespace of a repository is its first path component (`acme` for
//! `acme/tools/jq`). Roles are ordered: `pull` < `push` < `admin`; a grant on
//! namespace `*` covers every namespace. Deleting needs `admin`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

/// How long an access token from the token endpoint stays valid.
pub const ACCESS_TOKEN_TTL: Duration = Duration::from_secs(300);

/// What a grant allows, in increasing order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read manifests, blobs, tags, referrers and the browse API.
    Pull,
    /// `pull`, and upload blobs and manifests.
    Push,
    /// `push`, and delete.
    Admin,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Pull => "pull",
            Role::Push => "push",
            Role::Admin => "admin",
        })
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Role, String> {
        match s {
            "pull" => Ok(Role::Pull),
            "push" => Ok(Role::Push),
            "admin" => Ok(Role::Admin),
            other => Err(format!(
                "unknown role `{other}`: expected pull, push or admin"
            )),
        }
    }
}

/// One stored registry token (its secret is not stored, only the hash).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenRecord {
    /// Public identifier, shown in messages (`tk_…`).
    pub id: String,
    /// The namespace it grants, or `*`.
    pub namespace: String,
    /// The role it grants there.
    pub role: Role,
    /// Hex SHA-256 of the secret.
    pub sha256: String,
    /// Creation time, seconds since the Unix epoch.
    pub created: u64,
    /// Operator's note.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// Who is asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// No credentials.
    Anonymous,
    /// A registry token.
    Token {
        /// Its id.
        id: String,
        /// Its namespace (or `*`).
        namespace: String,
        /// Its role.
        role: Role,
    },
}

impl Principal {
    /// Who this is, as upload sessions record it: `token:<id>`, or `anonymous`.
    pub fn subject(&self) -> String {
        match self {
            Principal::Anonymous => "anonymous".into(),
            Principal::Token { id, .. } => format!("token:{id}"),
        }
    }

    fn grants(&self, namespace: &str, needed: Role) -> bool {
        match self {
            Principal::Anonymous => false,
            Principal::Token {
                namespace: ns,
                role,
                ..
            } => (ns == "*" || ns == namespace) && *role >= needed,
        }
    }
}

/// The namespace of a repository: its first path component.
pub fn namespace_of(repo: &str) -> &str {
    repo.split('/').next().unwrap_or(repo)
}

fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).expect("the OS random generator works");
    hex::encode(buf)
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The token file of a registry data directory.
pub fn tokens_path(data_dir: &Path) -> PathBuf {
    data_dir.join("tokens.json")
}

/// Create a registry token in `data_dir`, returning its secret (shown once) and record.
pub fn create_token(
    data_dir: &Path,
    namespace: &str,
    role: Role,
    description: Option<String>,
) -> std::io::Result<(String, TokenRecord)> {
    if namespace != "*"
        && (namespace.is_empty()
            || !namespace
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c)))
    {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!(
                "`{namespace}` is not a namespace: use the first component of repository names \
                 (lowercase letters, digits, `.`, `_`, `-`), or `*` for all"
            ),
        ));
    }
    std::fs::create_dir_all(data_dir)?;
    let path = tokens_path(data_dir);
    // Two `token create` at once must not lose one: read-modify-write under a lock.
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(data_dir.join("tokens.lock"))?;
    lock.lock()?;
    let mut records = read_tokens(&path)?;
    let secret = format!("tack_{}", random_hex(24));
    let record = TokenRecord {
        id: format!("tk_{}", random_hex(6)),
        namespace: namespace.to_string(),
        role,
        sha256: hash(&secret),
        created: now_secs(),
        description,
    };
    records.push(record.clone());
    let json = serde_json::to_vec_pretty(&records).expect("records serialize");
    let tmp = path.with_extension(format!("tmp{}", random_hex(4)));
    {
        use std::io::Write;
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut f = opts.open(&tmp)?;
        f.write_all(&json)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, &path)?;
    Ok((secret, record))
}

/// The tokens stored at `path` (none if the file does not exist).
pub fn read_tokens(path: &Path) -> std::io::Result<Vec<TokenRecord>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{} is not a token file: {e}", path.display()),
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// The registry's access policy.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// Whether requests must authenticate at all. Off: everyone may do everything
    /// (tests, single-user embedded use on loopback).
    pub enabled: bool,
    /// Whether requests without credentials may pull.
    pub anonymous_pull: bool,
    /// Where the token file lives.
    pub tokens_file: PathBuf,
    /// The `service` named in challenges.
    pub service: String,
    /// The token endpoint's absolute URL in challenges; default
    /// `http://<Host header>/token` (set it when the registry is behind TLS or a proxy).
    pub realm: Option<String>,
}

impl AuthConfig {
    /// No authentication: everyone may do everything (tests, loopback-only use).
    pub fn disabled() -> AuthConfig {
        AuthConfig {
            enabled: false,
            anonymous_pull: true,
            tokens_file: PathBuf::new(),
            service: "tack-registry".into(),
            realm: None,
        }
    }

    /// Tokens from `<data_dir>/tokens.json`, anonymous pull as given.
    pub fn tokens_in(data_dir: &Path, anonymous_pull: bool) -> AuthConfig {
        AuthConfig {
            enabled: true,
            anonymous_pull,
            tokens_file: tokens_path(data_dir),
            service: "tack-registry".into(),
            realm: None,
        }
    }
}

/// The access decision machinery: token file (re-read when it changes) and the
/// access tokens issued by the token endpoint.
pub struct Auth {
    config: AuthConfig,
    tokens: Mutex<(Option<SystemTime>, Vec<TokenRecord>)>,
    issued: Mutex<HashMap<String, (Principal, Instant)>>,
}

/// Why a request was not allowed.
pub enum Denied {
    /// No or unusable credentials: answer 401 with a challenge.
    Unauthenticated(String),
    /// Valid credentials without the role: answer 403.
    Forbidden(String),
}

impl Auth {
    /// Access control per `config`.
    pub fn new(config: AuthConfig) -> Auth {
        Auth {
            config,
            tokens: Mutex::new((None, Vec::new())),
            issued: Mutex::new(HashMap::new()),
        }
    }

    /// The policy.
    pub fn config(&self) -> &AuthConfig {
        &self.config
    }

    fn lookup_registry_token(&self, secret: &str) -> Option<Principal> {
        let mtime = std::fs::metadata(&self.config.tokens_file)
            .and_then(|m| m.modified())
            .ok();
        let mut cache = self.tokens.lock().unwrap();
        if cache.0 != mtime || mtime.is_none() {
            match read_tokens(&self.config.tokens_file) {
                Ok(records) => *cache = (mtime, records),
                Err(e) => tracing::error!("cannot read registry tokens: {e}"),
            }
        }
        let h = hash(secret);
        cache
            .1
            .iter()
            .find(|r| r.sha256 == h)
            .map(|r| Principal::Token {
                id: r.id.clone(),
                namespace: r.namespace.clone(),
                role: r.role,
            })
    }

    /// Who the `Authorization` header value says is asking. `Ok(None)` means no
    /// credentials were sent; `Err` means credentials that are not valid.
    pub fn authenticate(&self, authorization: Option<&str>) -> Result<Option<Principal>, String> {
        let Some(value) = authorization else {
            return Ok(None);
        };
        let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
        let rest = rest.trim();
        if scheme.eq_ignore_ascii_case("bearer") {
            if let Some((p, expiry)) = self.issued.lock().unwrap().get(rest).cloned() {
                if expiry > Instant::now() {
                    return Ok(Some(p));
                }
                return Err(
                    "the access token has expired; request a new one from the token endpoint"
                        .into(),
                );
            }
            return self.lookup_registry_token(rest).map(Some).ok_or_else(|| {
                "the bearer token is not a registry or access token known here".into()
            });
        }
        if scheme.eq_ignore_ascii_case("basic") {
            let decoded = B64
                .decode(rest)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or("the Basic credentials are not base64 of `user:token`")?;
            let (_, password) = decoded.split_once(':').unwrap_or(("", &decoded));
            if password.is_empty() {
                return Ok(None);
            }
            return self
                .lookup_registry_token(password)
                .map(Some)
                .ok_or_else(|| {
                    "the password is not a registry token known here; create one with \
                 `tack registry token create`"
                        .into()
                });
        }
        Err(format!("unsupported authorization scheme `{scheme}`"))
    }

    /// Issue an access token for `principal` (the token endpoint).
    pub fn issue(&self, principal: Principal) -> String {
        let token = format!("acc_{}", random_hex(24));
        let mut issued = self.issued.lock().unwrap();
        let now = Instant::now();
        issued.retain(|_, (_, exp)| *exp > now);
        issued.insert(token.clone(), (principal, now + ACCESS_TOKEN_TTL));
        token
    }

    /// Whether `principal` may act with `role` on `repo`.
    pub fn check(
        &self,
        principal: &Option<Principal>,
        repo: &str,
        needed: Role,
    ) -> Result<(), Denied> {
        if !self.config.enabled {
            return Ok(());
        }
        let ns = namespace_of(repo);
        let fix = format!(
            "create a token with `tack registry token create --namespace {ns} --role {needed}`"
        );
        match principal {
            Some(
                p @ Principal::Token {
                    id,
                    namespace,
                    role,
                },
            ) => {
                if p.grants(ns, needed) || (self.config.anonymous_pull && needed == Role::Pull) {
                    Ok(())
                } else {
                    Err(Denied::Forbidden(format!(
                        "token {id} has role {role} on namespace `{namespace}`; {needed} on \
                         {repo} needs role {needed} on namespace `{ns}`: {fix}"
                    )))
                }
            }
            Some(Principal::Anonymous) | None => {
                if self.config.anonymous_pull && needed == Role::Pull {
                    Ok(())
                } else {
                    Err(Denied::Unauthenticated(format!(
                        "authentication required: {needed} on {repo} needs a token with role \
                         {needed} on namespace `{ns}`; {fix}"
                    )))
                }
            }
        }
    }

    /// Whether `principal` may pull from `repo` (for filtering listings).
    pub fn can_pull(&self, principal: &Option<Principal>, repo: &str) -> bool {
        self.check(principal, repo, Role::Pull).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(dir: &Path, anonymous_pull: bool) -> Auth {
        Auth::new(AuthConfig {
            enabled: true,
            anonymous_pull,
            tokens_file: tokens_path(dir),
            service: "test".into(),
            realm: None,
        })
    }

    #[test]
    fn roles_are_scoped_to_their_namespace_and_ordered() {
        let dir = tempfile::tempdir().unwrap();
        let (push, _) = create_token(dir.path(), "acme", Role::Push, None).unwrap();
        let a = auth(dir.path(), false);
        let p = a.authenticate(Some(&format!("Bearer {push}"))).unwrap();
        assert!(a.check(&p, "acme/jq", Role::Pull).is_ok());
        assert!(a.check(&p, "acme/jq", Role::Push).is_ok());
        assert!(matches!(
            a.check(&p, "acme/jq", Role::Admin),
            Err(Denied::Forbidden(_))
        ));
        assert!(matches!(
            a.check(&p, "acmex/jq", Role::Pull),
            Err(Denied::Forbidden(_))
        ));
        assert!(matches!(
            a.check(&None, "acme/jq", Role::Pull),
            Err(Denied::Unauthenticated(_))
        ));
        let basic = B64.encode(format!("anyone:{push}"));
        assert_eq!(a.authenticate(Some(&format!("Basic {basic}"))).unwrap(), p);
        assert!(a.authenticate(Some("Bearer tack_0000")).is_err());
        // Stored hashed: the secret is nowhere in the file.
        let file = std::fs::read_to_string(tokens_path(dir.path())).unwrap();
        assert!(!file.contains(&push));
    }

    #[test]
    fn concurrent_creates_keep_every_token() {
        let dir = tempfile::tempdir().unwrap();
        let secrets: Vec<String> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    scope.spawn(|| {
                        create_token(dir.path(), "acme", Role::Pull, None)
                            .unwrap()
                            .0
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let a = auth(dir.path(), false);
        for s in &secrets {
            assert!(
                a.authenticate(Some(&format!("Bearer {s}")))
                    .unwrap()
                    .is_some()
            );
        }
        assert_eq!(read_tokens(&tokens_path(dir.path())).unwrap().len(), 8);
    }

    #[test]
    fn issued_tokens_carry_the_principal_and_new_tokens_are_seen_without_restart() {
        let dir = tempfile::tempdir().unwrap();
        let a = auth(dir.path(), true);
        assert!(a.check(&None, "acme/jq", Role::Pull).is_ok());
        assert!(a.check(&None, "acme/jq", Role::Push).is_err());
        let (admin, _) = create_token(dir.path(), "*", Role::Admin, None).unwrap();
        let p = a
            .authenticate(Some(&format!("Bearer {admin}")))
            .unwrap()
            .unwrap();
        let access = a.issue(p.clone());
        assert_eq!(
            a.authenticate(Some(&format!("Bearer {access}"))).unwrap(),
            Some(p)
        );
        assert!(create_token(dir.path(), "Acme!", Role::Pull, None).is_err());
    }
}
