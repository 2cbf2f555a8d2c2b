//! Secrets at rest. A secret's value is sealed with XChaCha20-Poly1305 under the
//! host's 32-byte master key, with a fresh random nonce per write and the secret's
//! name as associated data (a sealed value moved under another name does not open).
//! Only sealed values reach the durable store; setting a secret again rotates it
//! (a new version). Values are readable only inside the host ([`Secrets::reveal`]),
//! which injects them into outgoing requests; nothing offers them back to users.
//!
//! The master key comes from `TACK_MASTER_KEY` (64 hex characters) or the file
//! named by `TACK_MASTER_KEY_FILE`; `tack secret master-key` prints a new one.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use std::fmt;
use tack_store::Store;
use zeroize::Zeroizing;

/// Why a secret operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// No master key configured.
    #[error(
        "no master key: set TACK_MASTER_KEY (64 hex characters) or TACK_MASTER_KEY_FILE; create one with `tack secret master-key`"
    )]
    NoKey,
    /// The master key is malformed.
    #[error(
        "the master key {0}: it must be 64 hex characters (32 bytes); create one with `tack secret master-key`"
    )]
    BadKey(String),
    /// The sealed value does not open with this key (another key, or altered).
    #[error(
        "cannot open secret `{0}`: it was sealed under another master key, or its stored record was altered"
    )]
    CannotOpen(String),
    /// The name breaks the naming rule.
    #[error("`{0}` is not a secret name: use 1-64 letters, digits, `_`, `-` or `.`")]
    BadName(String),
    /// An empty value.
    #[error("secret `{0}` would be empty; pass its value on stdin")]
    Empty(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] tack_store::StoreError),
}

/// The host's master key.
#[derive(Clone)]
pub struct MasterKey(Zeroizing<[u8; 32]>);

impl MasterKey {
    /// A new random key.
    pub fn generate() -> MasterKey {
        let mut k = Zeroizing::new([0u8; 32]);
        getrandom::fill(&mut k[..]).expect("the OS random generator works");
        MasterKey(k)
    }

    /// Read 64 hex characters.
    pub fn from_hex(text: &str) -> Result<MasterKey, SecretError> {
        let text = text.trim();
        let bytes = Zeroizing::new(
            hex::decode(text).map_err(|_| SecretError::BadKey("is not hexadecimal".into()))?,
        );
        let arr: [u8; 32] = bytes[..]
            .try_into()
            .map_err(|_| SecretError::BadKey(format!("has {} bytes", bytes.len())))?;
        Ok(MasterKey(Zeroizing::new(arr)))
    }

    /// The key as 64 hex characters.
    pub fn to_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(hex::encode(&self.0[..]))
    }

    /// From `TACK_MASTER_KEY` or the file named by `TACK_MASTER_KEY_FILE`.
    pub fn from_env() -> Result<MasterKey, SecretError> {
        if let Ok(v) = std::env::var("TACK_MASTER_KEY")
            && !v.is_empty()
        {
            return MasterKey::from_hex(&v);
        }
        if let Ok(path) = std::env::var("TACK_MASTER_KEY_FILE") {
            let text =
                Zeroizing::new(std::fs::read_to_string(&path).map_err(|e| {
                    SecretError::BadKey(format!("file {path} cannot be read ({e})"))
                })?);
            return MasterKey::from_hex(&text);
        }
        Err(SecretError::NoKey)
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new((&*self.0).into())
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

/// A revealed secret value; its `Debug` never shows it and it is wiped on drop.
pub struct SecretValue(Zeroizing<Vec<u8>>);

impl SecretValue {
    /// The bytes, for injection into a request.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretValue(<{} bytes redacted>)", self.0.len())
    }
}

const FORMAT: &str = "xc20p1";

fn aad(name: &str) -> Vec<u8> {
    format!("tack-secret:{FORMAT}:{name}").into_bytes()
}

/// Seal `value` as secret `name`: `xc20p1:<nonce hex>:<ciphertext hex>`.
pub fn seal(key: &MasterKey, name: &str, value: &[u8]) -> String {
    let mut nonce = [0u8; 24];
    getrandom::fill(&mut nonce).expect("the OS random generator works");
    let aad = aad(name);
    let ct = key
        .cipher()
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: value,
                aad: &aad,
            },
        )
        .expect("encryption of a bounded value cannot fail");
    format!("{FORMAT}:{}:{}", hex::encode(nonce), hex::encode(ct))
}

/// Open a value sealed as secret `name`.
pub fn open(key: &MasterKey, name: &str, sealed: &str) -> Result<SecretValue, SecretError> {
    let cannot = || SecretError::CannotOpen(name.to_string());
    let mut parts = sealed.splitn(3, ':');
    let (Some(FORMAT), Some(nonce), Some(ct)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(cannot());
    };
    let nonce = hex::decode(nonce)
        .ok()
        .filter(|n| n.len() == 24)
        .ok_or_else(cannot)?;
    let ct = hex::decode(ct).map_err(|_| cannot())?;
    let aad = aad(name);
    key.cipher()
        .decrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: &ct,
                aad: &aad,
            },
        )
        .map(|v| SecretValue(Zeroizing::new(v)))
        .map_err(|_| cannot())
}

fn check_name(name: &str) -> Result<(), SecretError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(SecretError::BadName(name.to_string()))
    }
}

/// The host's secrets: sealed in the durable store under the master key.
#[derive(Clone)]
pub struct Secrets {
    store: Store,
    key: MasterKey,
}

impl Secrets {
    /// Secrets in `store` under `key`.
    pub fn new(store: Store, key: MasterKey) -> Secrets {
        Secrets { store, key }
    }

    /// Set (or rotate) secret `name`; returns its new version.
    pub async fn set(&self, name: &str, value: &[u8]) -> Result<u32, SecretError> {
        check_name(name)?;
        if value.is_empty() {
            return Err(SecretError::Empty(name.to_string()));
        }
        let sealed = seal(&self.key, name, value);
        Ok(self.store.put_secret(name, &sealed).await?)
    }

    /// The value of secret `name`, for the host's own use (injection).
    pub async fn reveal(&self, name: &str) -> Result<Option<SecretValue>, SecretError> {
        match self.store.secret(name).await? {
            Some((sealed, _)) => open(&self.key, name, &sealed).map(Some),
            None => Ok(None),
        }
    }

    /// Forget secret `name`; whether there was one.
    pub async fn remove(&self, name: &str) -> Result<bool, SecretError> {
        Ok(self.store.delete_secret(name).await?)
    }

    /// Names and versions (never values).
    pub async fn list(&self) -> Result<Vec<(String, u32)>, SecretError> {
        Ok(self.store.secret_names().await?)
    }
}
