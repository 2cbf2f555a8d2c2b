//! Who is calling: a token's name and its role.

use std::fmt;
use std::str::FromStr;

/// What a caller may do. The API decides which routes each role reaches; the
/// engine decides who may approve (the approval's own roles, plus `admin`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Start and talk to sessions.
    User,
    /// Read sessions and decide approvals.
    Approver,
    /// Register agents, and what a user does.
    Builder,
    /// Everything, including secrets and tokens.
    Admin,
}

impl Role {
    /// Every role, weakest first.
    pub const ALL: [Role; 4] = [Role::User, Role::Approver, Role::Builder, Role::Admin];

    /// The role's name (`user`, `approver`, `builder`, `admin`).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Approver => "approver",
            Role::Builder => "builder",
            Role::Admin => "admin",
        }
    }

    /// The roles' names, for messages (`user, approver, builder, admin`).
    pub fn names() -> String {
        Role::ALL.map(Role::as_str).join(", ")
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not a role.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a role; use one of: {roles}", roles = Role::names())]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(s: &str) -> Result<Role, UnknownRole> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownRole(s.to_string()))
    }
}

/// Who is calling, as the API authenticated them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Token name.
    pub name: String,
    /// The token's role.
    pub role: Role,
}

impl Principal {
    /// A principal named `name` with `role`.
    pub fn new(name: &str, role: Role) -> Self {
        Principal {
            name: name.into(),
            role,
        }
    }

    /// Whether this caller reaches a session that `owner` created (`None`: a
    /// session from before tack recorded owners). A `user` reaches only its own
    /// sessions; `approver`, `builder` and `admin` reach every session. This is
    /// the one place the rule lives: a team scope belongs here.
    pub fn reaches_session(&self, owner: Option<&str>) -> bool {
        self.role != Role::User || owner == Some(self.name.as_str())
    }

    /// Whose sessions this caller lists: `Some(name)` for a `user` (its own),
    /// `None` (every session) for the roles that reach every session.
    pub fn session_owner_scope(&self) -> Option<&str> {
        (self.role == Role::User).then_some(self.name.as_str())
    }

    /// Whether this caller may publish a version of an agent whose name `owner`
    /// owns (`None`: no recorded owner): its owner may, and an admin.
    pub fn may_publish(&self, owner: Option<&str>) -> bool {
        self.role == Role::Admin || owner == Some(self.name.as_str())
    }

    /// Whether this caller may decide an approval that lists `approvers`.
    pub fn may_approve(&self, approvers: &[String]) -> bool {
        self.role == Role::Admin || approvers.iter().any(|r| r == self.role.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_round_trip_and_unknown_ones_name_the_choices() {
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>(), Ok(r));
        }
        let e = "root".parse::<Role>().unwrap_err().to_string();
        assert_eq!(
            e,
            "`root` is not a role; use one of: user, approver, builder, admin"
        );
        assert!("Admin".parse::<Role>().is_err(), "names are lower case");
    }

    #[test]
    fn users_reach_their_own_sessions_and_other_roles_every_session() {
        let ann = Principal::new("ann", Role::User);
        assert!(ann.reaches_session(Some("ann")));
        assert!(!ann.reaches_session(Some("bob")));
        assert!(
            !ann.reaches_session(None),
            "an ownerless session is no user's"
        );
        for role in [Role::Approver, Role::Builder, Role::Admin] {
            let p = Principal::new("carl", role);
            assert!(p.reaches_session(Some("ann")) && p.reaches_session(None));
        }
    }

    #[test]
    fn an_agent_is_published_by_its_owner_or_an_admin() {
        let bob = Principal::new("bob", Role::Builder);
        assert!(bob.may_publish(Some("bob")));
        assert!(!bob.may_publish(Some("ann")));
        assert!(!bob.may_publish(None), "an ownerless name needs an admin");
        assert!(Principal::new("root", Role::Admin).may_publish(Some("ann")));
        assert!(Principal::new("root", Role::Admin).may_publish(None));
    }

    #[test]
    fn admins_and_listed_roles_may_approve() {
        let listed = vec!["approver".to_string(), "finance".to_string()];
        assert!(Principal::new("a", Role::Admin).may_approve(&[]));
        assert!(Principal::new("b", Role::Approver).may_approve(&listed));
        assert!(!Principal::new("c", Role::Builder).may_approve(&listed));
        assert!(!Principal::new("d", Role::User).may_approve(&listed));
    }
}
