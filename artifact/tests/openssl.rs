//! tack's keys and signatures are the standard ones cosign uses (PKCS#8 and
//! SPKI PEM files, ECDSA P-256 over SHA-256, base64 of the DER signature), so
//! they cross with OpenSSL, an implementation tack shares no code with, both
//! ways: keys either one wrote, signatures either one made.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use std::path::Path;
use std::process::Command;
use tack_artifact::{PublicKey, SigningKey, SimpleSigning};

/// Run `openssl args` in `dir`: whether it succeeded, and what it printed.
fn openssl(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run openssl (Debian package openssl)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let (success, text) = openssl(dir, args);
    assert!(success, "openssl {args:?}: {text}");
    text
}

fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap()
}

#[test]
fn keys_written_by_openssl_read_in_tack_and_the_other_way() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let p256 = ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"];
    ok(d, &[&["genpkey"], &p256[..], &["-out", "o.key"]].concat());
    ok(d, &["pkey", "-in", "o.key", "-pubout", "-out", "o.pub"]);
    let theirs = SigningKey::from_pem(&read(d, "o.key")).unwrap();
    assert_eq!(
        theirs.public_key(),
        PublicKey::from_pem(&read(d, "o.pub")).unwrap(),
        "tack derives the public key OpenSSL wrote"
    );

    let ours = SigningKey::generate();
    std::fs::write(d.join("t.key"), ours.to_pem()).unwrap();
    ok(d, &["pkey", "-in", "t.key", "-pubout", "-out", "t.pub"]);
    assert_eq!(read(d, "t.pub"), ours.public_key().to_pem());

    // A key of another kind is refused with the way to make a right one.
    ok(d, &["genpkey", "-algorithm", "ED25519", "-out", "ed.key"]);
    let e = SigningKey::from_pem(&read(d, "ed.key")).err().unwrap();
    assert!(e.to_string().contains("tack keygen"), "{e}");
}

#[test]
fn signatures_made_by_either_verify_in_the_other() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let key = SigningKey::generate();
    std::fs::write(d.join("k.key"), key.to_pem()).unwrap();
    std::fs::write(d.join("k.pub"), key.public_key().to_pem()).unwrap();
    let payload = SimpleSigning::new("registry.example/acme/jq:1.0.0", "sha256:00ff").to_bytes();
    let tampered = [&payload[..], b" "].concat();
    std::fs::write(d.join("payload"), &payload).unwrap();
    std::fs::write(d.join("tampered"), &tampered).unwrap();

    // tack signs; OpenSSL verifies the payload and refuses a changed one.
    std::fs::write(d.join("tack.sig"), B64.decode(key.sign(&payload)).unwrap()).unwrap();
    let verify = |file: &str| {
        openssl(
            d,
            &[
                "dgst",
                "-sha256",
                "-verify",
                "k.pub",
                "-signature",
                "tack.sig",
                file,
            ],
        )
    };
    let (verified, text) = verify("payload");
    assert!(verified && text.contains("Verified OK"), "{text}");
    let (verified, text) = verify("tampered");
    assert!(!verified, "OpenSSL accepted a changed payload: {text}");

    // OpenSSL signs; tack verifies the payload and refuses a changed one.
    ok(
        d,
        &[
            "dgst",
            "-sha256",
            "-sign",
            "k.key",
            "-out",
            "openssl.sig",
            "payload",
        ],
    );
    let signature = B64.encode(std::fs::read(d.join("openssl.sig")).unwrap());
    assert!(key.public_key().verifies(&payload, &signature));
    assert!(!key.public_key().verifies(&tampered, &signature));
    let stranger = SigningKey::generate().public_key();
    assert!(!stranger.verifies(&payload, &signature));
}
