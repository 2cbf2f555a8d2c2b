//! API tokens and roles.
//!
//! A token is `tack_` and 64 hex digits (32 random bytes); the store keeps only
//! its SHA-256. Roles: `admin` (everything), `builder` (agents, sessions),
//! `approver` (read sessions, decide approvals), `user` (sessions: create, read,
//! message, answer, interrupt). A `user` reaches only the sessions it created
//! ([`Session`]). Who may decide an approval is the approval's own list of roles
//! (plus `admin`), checked by the engine.

use crate::error::ApiError;
use crate::routes::AppState;
use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::marker::PhantomData;
use tack_engine::{Principal, Role};
use tack_store::Store;

/// A new random token value.
pub fn new_token() -> String {
    let mut buf = [0u8; 32];
    getrandom::fill(&mut buf).expect("the OS random generator works");
    format!("tack_{}", hex::encode(buf))
}

/// The stored form of a token value.
pub fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Create (or replace) token `name` with `role`, accepted for `ttl` (`None`:
/// until revoked); returns the value, shown once.
pub async fn create_token(
    store: &Store,
    name: &str,
    role: Role,
    ttl: Option<std::time::Duration>,
) -> Result<String, String> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(format!(
            "`{name}` is not a token name: use letters, digits, `-`, `_` and `.`"
        ));
    }
    let expires_ms = ttl.map(|t| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        (now + t).as_millis().min(i64::MAX as u128) as i64
    });
    let token = new_token();
    store
        .put_api_token(name, role.as_str(), &hash(&token), expires_ms)
        .await
        .map_err(|e| e.to_string())?;
    Ok(token)
}

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Any valid token.
    Any,
    /// Write agents: admin, builder.
    Build,
    /// Start and talk to sessions: admin, builder, user.
    Session,
    /// See approvals: admin, approver.
    Approvals,
    /// Host administration (secrets, tokens): admin.
    Admin,
}

impl Need {
    /// Whether `role` has it.
    pub fn allows(self, role: Role) -> bool {
        use Role::*;
        match self {
            Need::Any => true,
            Need::Build => matches!(role, Admin | Builder),
            Need::Session => matches!(role, Admin | Builder | User),
            Need::Approvals => matches!(role, Admin | Approver),
            Need::Admin => role == Admin,
        }
    }

    /// The roles that have it, for error messages.
    pub fn roles(self) -> &'static str {
        match self {
            Need::Any => "any role",
            Need::Build => "admin or builder",
            Need::Session => "admin, builder or user",
            Need::Approvals => "admin or approver",
            Need::Admin => "admin",
        }
    }
}

/// The caller behind the request's bearer token, whatever their role.
pub(crate) async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Principal, ApiError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "send `Authorization: Bearer <token>`; create a token with `tack token create NAME --role ROLE`",
            )
        })?;
    let (name, role) = state
        .engine
        .store()
        .api_token(&hash(token))
        .await?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "the token is not valid (revoked, expired, or for another host)",
            )
        })?;
    let role = role.parse::<Role>().map_err(|e| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            format!("token `{name}` has a role this host does not know ({e}); create it again"),
        )
    })?;
    state.quotas.request(&name)?;
    Ok(Principal::new(&name, role))
}

/// `who`, if their role has `need`.
pub(crate) fn require(who: Principal, need: Need) -> Result<Principal, ApiError> {
    if need.allows(who.role) {
        return Ok(who);
    }
    Err(ApiError::new(
        StatusCode::FORBIDDEN,
        "forbidden",
        format!(
            "the `{}` role of token `{}` may not do this; it needs {}",
            who.role,
            who.name,
            need.roles()
        ),
    ))
}

/// A permission a route needs, as a type: a handler that takes `Caller<P>`
/// runs only for a caller whose role has `P::NEED`.
pub trait Permission {
    /// What it needs.
    const NEED: Need;
}

/// Any valid token.
pub struct AnyRole;
/// Writing agents.
pub struct Build;
/// Starting and talking to sessions.
pub struct Sessions;
/// Seeing approvals.
pub struct Approvals;
/// Host administration.
pub struct Admin;

impl Permission for AnyRole {
    const NEED: Need = Need::Any;
}
impl Permission for Build {
    const NEED: Need = Need::Build;
}
impl Permission for Sessions {
    const NEED: Need = Need::Session;
}
impl Permission for Approvals {
    const NEED: Need = Need::Approvals;
}
impl Permission for Admin {
    const NEED: Need = Need::Admin;
}

/// A session the caller reaches, named by the route's `{id}` (an extractor: 401
/// and 403 as [`Caller`], then 404 for a session that does not exist *or* that
/// the caller does not reach, with the same message, so a session id is no
/// oracle). Every route under `/v1/sessions/{id}` takes one: the reach rule is
/// [`Principal::reaches_session`], applied here only.
pub struct Session<P> {
    /// Who is calling.
    pub who: Principal,
    /// The session.
    pub session: tack_store::SessionRecord,
    _permission: PhantomData<P>,
}

impl<P: Permission> FromRequestParts<AppState> for Session<P> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Caller(who, _) = Caller::<P>::from_request_parts(parts, state).await?;
        let Path(params) = Path::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::bad_request(e.body_text()))?;
        let id = params
            .get("id")
            .ok_or_else(|| ApiError::bad_request("the route names no session"))?;
        let session = state.engine.session(id, &who).await?;
        Ok(Session {
            who,
            session,
            _permission: PhantomData,
        })
    }
}

/// The authenticated caller, whose role has permission `P` (an extractor:
/// 401 without a valid token, 403 for a role without `P`).
pub struct Caller<P>(pub Principal, pub(crate) PhantomData<P>);

impl<P: Permission> FromRequestParts<AppState> for Caller<P> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let who = authenticate(state, &parts.headers).await?;
        Ok(Caller(require(who, P::NEED)?, PhantomData))
    }
}
