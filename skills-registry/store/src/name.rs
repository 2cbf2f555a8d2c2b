//! Repository names and tags, validated against the distribution-spec grammars.

use crate::StoreError;
use std::fmt;
use std::str::FromStr;

/// A repository name: `/`-separated components of `[a-z0-9]+` joined by `.`, `_`,
/// `__` or runs of `-` (e.g. `acme/tools/jq`), at most 255 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RepoName(String);

impl RepoName {
    /// The components, for building a path under the root.
    pub(crate) fn components(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        // A separator: `.`, `_`, `__` or one or more `-`, between alphanumerics.
        let start = i;
        match b[i] {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if i < b.len() && b[i] == b'_' {
                    i += 1;
                }
            }
            b'-' => {
                while i < b.len() && b[i] == b'-' {
                    i += 1;
                }
            }
            _ => return false,
        }
        if i == start || i >= b.len() || !alnum(b[i]) {
            return false;
        }
    }
    true
}

impl FromStr for RepoName {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() <= 255 && s.split('/').all(valid_component) {
            Ok(RepoName(s.to_string()))
        } else {
            Err(StoreError::InvalidName(s.to_string()))
        }
    }
}

impl fmt::Display for RepoName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A tag: `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(String);

impl Tag {
    /// The tag as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Tag {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let b = s.as_bytes();
        let first_ok = b
            .first()
            .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_');
        let rest_ok = b
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'));
        if first_ok && rest_ok && b.len() <= 128 {
            Ok(Tag(s.to_string()))
        } else {
            Err(StoreError::InvalidTag(s.to_string()))
        }
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_distribution_grammar() {
        for ok in [
            "jq",
            "acme/tools/jq",
            "a.b_c__d---e/f0",
            "library/ubuntu",
            "x/y.z",
        ] {
            assert!(ok.parse::<RepoName>().is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Acme/jq",
            "acme//jq",
            "/jq",
            "jq/",
            "../etc",
            "acme/../jq",
            "a___b",
            "a_-b",
            "-a",
            "a-",
            "a.",
            ".a",
            "a b",
            "a/_tags",
        ] {
            assert!(bad.parse::<RepoName>().is_err(), "{bad}");
        }
        assert!("a".repeat(256).parse::<RepoName>().is_err());
    }

    #[test]
    fn tags_follow_the_distribution_grammar() {
        for ok in ["latest", "1.2.3", "v1.0.0-rc.1", "_x", "sha256-abc.sig"] {
            assert!(ok.parse::<Tag>().is_ok(), "{ok}");
        }
        for bad in ["", ".hidden", "-x", "a/b", "a:b", "..", &"x".repeat(129)] {
            assert!(bad.parse::<Tag>().is_err(), "{bad}");
        }
    }
}
