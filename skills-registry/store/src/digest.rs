//! `sha256:<hex>` content digests.

use crate::StoreError;
use sha2::{Digest as _, Sha256};
use std::fmt;
use std::str::FromStr;

/// A validated sha256 content digest, `sha256:` + 64 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    hex: String,
}

impl Digest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Digest {
            hex: hex::encode(Sha256::digest(bytes)),
        }
    }

    pub(crate) fn from_hasher(h: Sha256) -> Self {
        Digest {
            hex: hex::encode(h.finalize()),
        }
    }

    /// The 64 hex digits.
    pub fn hex(&self) -> &str {
        &self.hex
    }
}

impl FromStr for Digest {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let hex = s
            .strip_prefix("sha256:")
            .ok_or_else(|| StoreError::InvalidDigest(s.to_string()))?;
        if hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            Ok(Digest {
                hex: hex.to_string(),
            })
        } else {
            Err(StoreError::InvalidDigest(s.to_string()))
        }
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_only_canonical_sha256() {
        let d = Digest::of(b"hello");
        assert_eq!(
            d.to_string(),
            "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert_eq!(d.to_string().parse::<Digest>().unwrap(), d);
        for bad in [
            "sha256:2CF24DBA5FB0A30E26E83B2AC5B9E29E1B161E5C1FA7425E73043362938B9824",
            "sha256:abc",
            "sha512:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",
            "sha256:../../../../etc/passwd0000000000000000000000000000000000000000",
        ] {
            assert!(
                matches!(bad.parse::<Digest>(), Err(StoreError::InvalidDigest(_))),
                "{bad}"
            );
        }
    }
}
