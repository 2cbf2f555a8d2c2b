//! OAuth 2.1 for upstream MCP servers (`[mcp-servers.NAME.oauth]`), on rmcp's
//! authorization client: protected-resource and authorization-server
//! discovery, client registration (pre-registered, client metadata document,
//! or dynamic), PKCE, the `resource` indicator, and refreshing a token before
//! it expires (or once when the server rejects it).
//!
//! **Tokens are sealed in the store** like any secret, under the master key,
//! one record per server and subject (the host, or one user:
//! [`credential_name`]), so they survive restarts and never touch the
//! configuration. A refresh rewrites the record; refreshes of one record are
//! serialized within a host.
//!
//! A [`Login`] is one authorization in progress: its address goes to a person
//! (`tack mcp login` prints it; a per-user server's run emits it in an
//! `mcp_auth_required` event), and the address the browser is sent back to
//! finishes it.

use crate::client::UpstreamError;
use rmcp::transport::auth::{
    AuthError, AuthorizationManager, AuthorizationRequest, AuthorizationSession,
    CredentialRefreshGuard, CredentialStore, OAuthClientConfig, OAuthState, StoredCredentials,
    WWWAuthenticateParams,
};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, LazyLock};
use tack_config::McpServerConfig;
use tack_secrets::Secrets;

/// Whose token a credential record holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject<'a> {
    /// The host's own (`delegation = "host"`).
    Host,
    /// One session user's (`delegation = "per-user"`), by token name.
    User(&'a str),
}

/// The secret name a server's OAuth credentials are sealed under:
/// `mcp-oauth.SERVER` for the host, `mcp-oauth.SERVER.HASH` for a user (a
/// digest of the user's name, so any name fits the secret-name rules). A
/// server name that does not fit them is replaced by its digest too.
pub fn credential_name(server: &str, subject: Subject<'_>) -> String {
    let fits = server.len() <= 32
        && server
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-".contains(c));
    let server = if fits {
        server.to_string()
    } else {
        digest(server)
    };
    match subject {
        Subject::Host => format!("mcp-oauth.{server}"),
        Subject::User(user) => format!("mcp-oauth.{server}.{}", digest(user)),
    }
}

fn digest(text: &str) -> String {
    hex::encode(&Sha256::digest(text.as_bytes())[..8])
}

/// Credentials in a sealed secret.
struct SealedStore {
    secrets: Secrets,
    name: String,
}

/// One lock per credential record, so two refreshes in this host do not both
/// spend the same refresh token.
static REFRESHING: LazyLock<std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>> =
    LazyLock::new(Default::default);

fn store_error(e: impl std::fmt::Display) -> AuthError {
    AuthError::CredentialStoreError(e.to_string())
}

#[async_trait::async_trait]
impl CredentialStore for SealedStore {
    async fn load(&self) -> Result<Option<StoredCredentials>, AuthError> {
        match self.secrets.reveal(&self.name).await.map_err(store_error)? {
            None => Ok(None),
            Some(v) => serde_json::from_slice(v.expose()).map(Some).map_err(|e| {
                store_error(format!(
                    "the credentials sealed as `{}` cannot be read ({e}); log in again",
                    self.name
                ))
            }),
        }
    }

    async fn save(&self, credentials: StoredCredentials) -> Result<(), AuthError> {
        let text = zeroize::Zeroizing::new(serde_json::to_vec(&credentials).map_err(store_error)?);
        self.secrets
            .set(&self.name, &text)
            .await
            .map(drop)
            .map_err(store_error)
    }

    async fn clear(&self) -> Result<(), AuthError> {
        self.secrets
            .remove(&self.name)
            .await
            .map(drop)
            .map_err(store_error)
    }

    async fn acquire_refresh_guard(&self) -> Result<Option<CredentialRefreshGuard>, AuthError> {
        let lock = REFRESHING
            .lock()
            .expect("the refresh locks")
            .entry(self.name.clone())
            .or_default()
            .clone();
        Ok(Some(CredentialRefreshGuard::new(lock.lock_owned().await)))
    }
}

/// The pieces of server `server`'s configuration OAuth needs.
fn oauth_parts<'c>(
    server: &str,
    config: &'c McpServerConfig,
) -> Result<(&'c str, &'c tack_config::McpOAuthConfig), UpstreamError> {
    match (&config.url, &config.oauth) {
        (Some(url), Some(oauth)) => Ok((url, oauth)),
        _ => Err(UpstreamError::Config {
            server: server.to_string(),
            message: "OAuth needs an HTTP server (`url`) with an `[mcp-servers.NAME.oauth]` table"
                .into(),
        }),
    }
}

fn auth_error(server: &str, what: &str, e: AuthError) -> UpstreamError {
    UpstreamError::Authorization {
        server: server.to_string(),
        challenge: None,
        message: format!("{what}: {e}"),
    }
}

/// An authorization manager for `server` whose credentials live in sealed
/// secret [`credential_name`]`(server, subject)`; with the credentials
/// already there loaded (`Ok((manager, false))` when there are none).
pub(crate) async fn manager(
    server: &str,
    config: &McpServerConfig,
    secrets: Option<&Secrets>,
    subject: Subject<'_>,
) -> Result<(AuthorizationManager, bool), UpstreamError> {
    let (url, oauth) = oauth_parts(server, config)?;
    let secrets = secrets.ok_or_else(|| UpstreamError::Config {
        server: server.to_string(),
        message: "OAuth tokens are sealed in the store, and this host has no master key \
                  (set TACK_MASTER_KEY)"
            .into(),
    })?;
    let mut manager = AuthorizationManager::new(url)
        .await
        .map_err(|e| auth_error(server, "the server's address cannot be used", e))?;
    manager.set_credential_store(SealedStore {
        secrets: secrets.clone(),
        name: credential_name(server, subject),
    });
    let found = manager
        .initialize_from_store()
        .await
        .map_err(|e| auth_error(server, "the stored credentials cannot be used", e))?;
    // A pre-registered confidential client refreshes with its secret, which
    // the stored credentials do not hold.
    if found && let (Some(id), Some(secret)) = (&oauth.client_id, &oauth.client_secret) {
        let secret =
            crate::client::reveal_text(server, Some(secrets), secret, "oauth.client-secret")
                .await?;
        let client = OAuthClientConfig::new(id.clone(), "http://127.0.0.1/")
            .with_client_secret(secret.as_str());
        manager
            .configure_client(client)
            .map_err(|e| auth_error(server, "the client cannot be configured", e))?;
    }
    Ok((manager, found))
}

/// One authorization of `server` in progress.
pub struct Login {
    server: String,
    session: AuthorizationSession,
}

impl Login {
    /// Start authorizing `server` for `subject`: discover its authorization
    /// server (from `challenge`, a `WWW-Authenticate` value, when there is
    /// one), register or name the client, and make the address a person
    /// opens. The authorization server sends the browser on to
    /// `redirect_uri` with the code.
    pub async fn begin(
        server: &str,
        config: &McpServerConfig,
        secrets: Option<&Secrets>,
        subject: Subject<'_>,
        redirect_uri: &str,
        challenge: Option<&str>,
    ) -> Result<Login, UpstreamError> {
        let (url, oauth) = oauth_parts(server, config)?;
        let (manager, _) = manager(server, config, secrets, subject).await?;
        // A step-up (a token without the scope a request needs) asks for the
        // scopes granted before as well as the one the server names.
        let mut scopes = oauth.scopes.clone();
        if scopes.is_empty()
            && let Some(challenge) = challenge
            && let Ok(base) = url::Url::parse(url)
            && let params = WWWAuthenticateParams::parse(challenge, &base)
            && params.is_insufficient_scope()
            && let Some(wanted) = params.scope
            && let Some(secrets) = secrets
        {
            let store = SealedStore {
                secrets: secrets.clone(),
                name: credential_name(server, subject),
            };
            let granted = store.load().await.ok().flatten();
            scopes = granted.map(|c| c.granted_scopes).unwrap_or_default();
            for s in wanted.split_whitespace() {
                if !scopes.iter().any(|g| g == s) {
                    scopes.push(s.to_string());
                }
            }
        }
        let mut request = AuthorizationRequest::new(redirect_uri).with_client_name("tack");
        if let Some(id) = &oauth.client_id {
            request = request.with_preregistered_client(id.clone());
        }
        if let Some(secret) = &oauth.client_secret {
            let secret =
                crate::client::reveal_text(server, secrets, secret, "oauth.client-secret").await?;
            request = request.with_client_secret(secret.as_str());
        }
        if let Some(url) = &oauth.client_metadata_url {
            request = request.with_client_metadata_url(url.clone());
        }
        if !scopes.is_empty() {
            request = request.with_scopes(scopes);
        }
        if let Some(challenge) = challenge {
            request = request.with_challenge(challenge);
        }
        let mut state = OAuthState::Unauthorized(manager);
        state
            .start_authorization(request)
            .await
            .map_err(|e| auth_error(server, "authorization could not start", e))?;
        let OAuthState::Session(session) = state else {
            unreachable!("a started authorization is a session")
        };
        Ok(Login {
            server: server.to_string(),
            session,
        })
    }

    /// The address to open in a browser.
    pub fn url(&self) -> &str {
        self.session.get_authorization_url()
    }

    /// The CSRF `state` the authorization server hands back with the code,
    /// which identifies this login.
    pub fn state(&self) -> Option<String> {
        url::Url::parse(self.url()).ok().and_then(|u| {
            u.query_pairs()
                .find(|(k, _)| k == "state")
                .map(|(_, v)| v.into_owned())
        })
    }

    /// Finish with the address the browser was sent back to (its `code`,
    /// `state` and `iss` are checked and the code exchanged); the tokens are
    /// sealed in the store.
    pub async fn finish(&self, callback_url: &str) -> Result<(), UpstreamError> {
        self.session
            .handle_callback_url(callback_url)
            .await
            .map(drop)
            .map_err(|e| auth_error(&self.server, "the authorization did not complete", e))
    }
}
