//! API tokens and roles.
//!
//! A token is `tack_` and 43 random characters; the store keeps only its
//! SHA-256. Roles: `admin` (everything), `builder` (agents, sessions),
//! `approver` (read sessions, decide approvals), `user` (sessions: create, read,
//! message, answer, interrupt). Who may decide an approval is the approval's
//! own list of roles (plus `admin`), checked by the engine.

use sha2::{Digest, Sha256};
use tack_store::Store;

/// The roles, weakest first.
pub const ROLES: &[&str] = &["user", "approver", "builder", "admin"];

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

/// Create (or replace) token `name` with `role`; returns the value, shown once.
pub async fn create_token(store: &Store, name: &str, role: &str) -> Result<String, String> {
    if !ROLES.contains(&role) {
        return Err(format!(
            "`{role}` is not a role; use one of: {}",
            ROLES.join(", ")
        ));
    }
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(format!(
            "`{name}` is not a token name: use letters, digits, `-`, `_` and `.`"
        ));
    }
    let token = new_token();
    store
        .put_api_token(name, role, &hash(&token))
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
    pub fn allows(self, role: &str) -> bool {
        match self {
            Need::Any => true,
            Need::Build => matches!(role, "admin" | "builder"),
            Need::Session => matches!(role, "admin" | "builder" | "user"),
            Need::Approvals => matches!(role, "admin" | "approver"),
            Need::Admin => role == "admin",
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
