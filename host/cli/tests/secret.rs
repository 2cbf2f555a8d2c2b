//! `tack secret` as a user runs it: the value only on stdin, sealed at rest,
//! rotated by set, listed by name only.

use std::io::Write;
use std::process::{Command, Output, Stdio};
use tack_tests::registries::files_under;

fn tack(envs: &[(&str, &str)], args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tack"))
        .env_remove("TACK_MASTER_KEY")
        .env_remove("TACK_MASTER_KEY_FILE")
        .env_remove("TACK_CONFIG")
        .envs(envs.iter().copied())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run tack");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn secrets_are_set_from_stdin_sealed_and_listed_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let key = tack(&[], &["secret", "master-key"], b"");
    let key = String::from_utf8(key.stdout).unwrap().trim().to_string();
    assert_eq!(key.len(), 64);
    let url = format!("sqlite://{}", dir.path().join("tack.db").display());
    let env = [("TACK_MASTER_KEY", key.as_str())];
    let value = format!("value-{}", &key[..24]);

    let out = tack(
        &env,
        &["secret", "set", "DEMO_KEY", "--storage", &url],
        format!("{value}\n").as_bytes(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("version 1"));
    let out = tack(
        &env,
        &["secret", "set", "DEMO_KEY", "--storage", &url],
        b"rotated\n",
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("version 2"));
    let ls = tack(&env, &["secret", "ls", "--storage", &url], b"");
    assert_eq!(String::from_utf8_lossy(&ls.stdout), "DEMO_KEY\tv2\n");
    for f in files_under(dir.path()) {
        let bytes = std::fs::read(&f).unwrap();
        for v in [value.as_bytes(), b"rotated".as_slice()] {
            assert!(
                !bytes.windows(v.len()).any(|w| w == v),
                "{} holds a value",
                f.display()
            );
        }
    }
    // Mistakes get their reason.
    let out = tack(&[], &["secret", "set", "X", "--storage", &url], b"v");
    assert_eq!(out.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no master key"));
    let out = tack(
        &env,
        &["secret", "set", "bad name", "--storage", &url],
        b"v",
    );
    assert_eq!(out.status.code(), Some(2));
    let out = tack(&env, &["secret", "set", "EMPTY", "--storage", &url], b"\n");
    assert!(String::from_utf8_lossy(&out.stderr).contains("would be empty"));
    let out = tack(&env, &["secret", "ls"], b"");
    assert!(String::from_utf8_lossy(&out.stderr).contains("pass --storage URL or --config FILE"));
}

/// API tokens: one with an expiry is listed with it, a revoked one is gone,
/// and revoking a token that does not exist says so.
#[test]
fn tokens_expire_and_are_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("tack.db").display());
    let ok = |args: &[&str]| {
        let out = tack(&[], args, b"");
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    ok(&[
        "token",
        "create",
        "ci",
        "--role",
        "builder",
        "--expires",
        "90d",
        "--storage",
        &url,
    ]);
    ok(&[
        "token",
        "create",
        "una",
        "--role",
        "user",
        "--storage",
        &url,
    ]);
    let listed = ok(&["token", "ls", "--storage", &url]);
    let lines: Vec<&str> = listed.lines().collect();
    assert_eq!(lines.len(), 2, "{listed}");
    assert!(lines[0].starts_with("ci\tbuilder\texpires 20"), "{listed}");
    assert_eq!(lines[1], "una\tuser\tno expiry");
    ok(&["token", "revoke", "ci", "--storage", &url]);
    let listed = ok(&["token", "ls", "--storage", &url]);
    assert_eq!(listed, "una\tuser\tno expiry\n");
    let out = tack(&[], &["token", "revoke", "ci", "--storage", &url], b"");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no API token `ci`") && err.contains("tack token ls"),
        "{err}"
    );
}
