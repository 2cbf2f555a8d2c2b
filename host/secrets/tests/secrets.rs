//! Secrets on SQLite and on PostgreSQL: sealed at rest, rotated by set, bound to their
//! names, unreadable under another master key, never shown by Debug.

use tack_secrets::{MasterKey, SecretError, Secrets, open, seal};
use tack_store::Store;
use tack_test_support::{Postgres, files_under};

fn value() -> Vec<u8> {
    // Generated per run: nothing key-shaped lives in the source.
    let mut v = b"test-credential-".to_vec();
    v.extend(MasterKey::generate().to_hex().as_bytes());
    v
}

/// The revealed value of secret `name` (which must exist).
async fn revealed(secrets: &Secrets, name: &str) -> Vec<u8> {
    secrets
        .reveal(name)
        .await
        .unwrap()
        .unwrap()
        .expose()
        .to_vec()
}

/// Set, rotate, reveal and misuse a secret on the store at `url`; the values
/// it held, the rotated-away one first.
async fn exercise(url: &str) -> [Vec<u8>; 2] {
    let store = Store::open(url).await.unwrap();
    let key = MasterKey::generate();
    let secrets = Secrets::new(store.clone(), MasterKey::from_hex(&key.to_hex()).unwrap());
    let v1 = value();
    assert_eq!(secrets.set("OPENAI_API_KEY", &v1).await.unwrap(), 1);
    assert_eq!(revealed(&secrets, "OPENAI_API_KEY").await, v1);
    // Rotation by one set.
    let v2 = value();
    assert_eq!(secrets.set("OPENAI_API_KEY", &v2).await.unwrap(), 2);
    assert_eq!(revealed(&secrets, "OPENAI_API_KEY").await, v2);
    assert!(secrets.reveal("MISSING").await.unwrap().is_none());
    assert_eq!(
        secrets.list().await.unwrap(),
        [("OPENAI_API_KEY".to_string(), 2)]
    );
    // At rest only the sealed form exists.
    let (sealed, _) = store.secret("OPENAI_API_KEY").await.unwrap().unwrap();
    assert!(!sealed.contains(&String::from_utf8_lossy(&v2).to_string()));
    // Another master key cannot open it; it says so.
    let other = Secrets::new(store.clone(), MasterKey::generate());
    let e = other.reveal("OPENAI_API_KEY").await.unwrap_err();
    assert!(matches!(e, SecretError::CannotOpen(_)), "{e}");
    // A sealed value copied under another name does not open there.
    store.put_secret("STOLEN", &sealed).await.unwrap();
    assert!(matches!(
        secrets.reveal("STOLEN").await,
        Err(SecretError::CannotOpen(_))
    ));
    // Debug never shows values.
    let shown = format!(
        "{:?} {:?}",
        secrets.reveal("OPENAI_API_KEY").await.unwrap(),
        key
    );
    assert!(
        !shown.contains(&String::from_utf8_lossy(&v2).to_string())
            && !shown.contains(&*key.to_hex())
    );
    // Bad input is refused with the rule.
    assert!(matches!(
        secrets.set("has space", b"x").await,
        Err(SecretError::BadName(_))
    ));
    assert!(matches!(
        secrets.set("EMPTY", b"").await,
        Err(SecretError::Empty(_))
    ));
    [v1, v2]
}

/// No file under `dir` holds either value in clear, while the secret's name
/// (stored in clear) is found: the search sees the data.
fn only_sealed_on_disk(dir: &std::path::Path, values: &[Vec<u8>]) {
    let holds = |bytes: &[u8], needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
    let mut name_seen = false;
    for f in files_under(dir) {
        let bytes = std::fs::read(&f).unwrap();
        name_seen |= holds(&bytes, b"OPENAI_API_KEY");
        for (i, v) in values.iter().enumerate() {
            assert!(
                !holds(&bytes, v),
                "{} holds value {} of the secret in clear",
                f.display(),
                i + 1
            );
        }
    }
    assert!(
        name_seen,
        "no file under {} holds the secret's name",
        dir.display()
    );
}

#[tokio::test]
async fn sqlite_holds_only_sealed_values() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("tack.db").display());
    let values = exercise(&url).await;
    // The store's connection closes on its own thread once dropped, folding
    // the WAL into the database and removing it: scan after that, not while
    // files vanish.
    let wal = dir.path().join("tack.db-wal");
    for _ in 0..2000 {
        if !wal.exists() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    // No file of the database holds either value in clear.
    only_sealed_on_disk(dir.path(), &values);
}

#[tokio::test]
async fn postgres_holds_only_sealed_values() {
    let pg = Postgres::start();
    let values = exercise(&pg.url).await;
    // Neither the WAL nor the tables (written out by a checkpoint) hold
    // either value in clear.
    pg.checkpoint();
    only_sealed_on_disk(pg.data_dir(), &values);
}

#[test]
fn tampering_and_bad_keys_are_refused() {
    let key = MasterKey::generate();
    let sealed = seal(&key, "N", b"value");
    assert_eq!(open(&key, "N", &sealed).unwrap().expose(), b"value");
    let mut flipped = sealed.clone().into_bytes();
    let last = flipped.len() - 1;
    flipped[last] = if flipped[last] == b'0' { b'1' } else { b'0' };
    assert!(open(&key, "N", &String::from_utf8(flipped).unwrap()).is_err());
    assert!(open(&key, "N", "garbage").is_err());
    assert_ne!(seal(&key, "N", b"value"), sealed, "a fresh nonce per seal");
    let e = MasterKey::from_hex("abc").unwrap_err().to_string();
    assert!(e.contains("64 hex characters"), "{e}");
    assert!(MasterKey::from_hex(&"zz".repeat(32)).is_err());
}
