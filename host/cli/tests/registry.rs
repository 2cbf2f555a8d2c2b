//! The registry workflow as a user runs it with the `tack` binary: serve, token,
//! keygen, publish (signed), ls/show, call by reference, verify, and refusals.

mod common;

use common::{ok, tack_with as tack};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use tack_tests::guest;
use tack_tests::registries::files_under;

struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Start `tack registry serve` on a free port; returns the process and host:port.
fn serve(dir: &Path) -> (Serve, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tack"))
        .args(["registry", "serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(dir.join("registry"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the registry");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let host = line
        .split("http://")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_string();
    (Serve(child), host)
}

#[test]
fn publish_signed_list_show_and_call_by_reference() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (_serve, host) = serve(d);
    let token = ok(&tack(
        d,
        &[],
        &[
            "registry",
            "token",
            "create",
            "--data",
            d.join("registry").to_str().unwrap(),
            "--namespace",
            "tack",
            "--role",
            "push",
        ],
    ));
    let token = token.trim();
    assert!(token.starts_with("tack_"), "{token}");
    let keygen = ok(&tack(d, &[], &["keygen", "--output", "publisher"]));
    assert!(keygen.contains("fingerprint  sha256:"), "{keygen}");
    let fingerprint = keygen
        .lines()
        .last()
        .unwrap()
        .split_whitespace()
        .last()
        .unwrap()
        .to_string();
    std::fs::write(
        d.join("tack.toml"),
        format!(
            "default-registry = \"{host}\"\n[registries.\"{host}\"]\ntoken-env = \"TACK_TEST_TOKEN\"\n[trust.tack]\nkeys = [\"publisher.pub\"]\n"
        ),
    )
    .unwrap();
    let config = d.join("tack.toml");
    let env = [
        ("TACK_CONFIG", config.to_str().unwrap()),
        ("TACK_TEST_TOKEN", token),
    ];
    let jq = guest("tack_plugin_jq");

    let out = ok(&tack(
        d,
        &env,
        &[
            "publish",
            jq.to_str().unwrap(),
            "tack/jq@0.1.0",
            "--sign-key",
            "publisher.key",
        ],
    ));
    assert!(out.contains(&format!("signed  {fingerprint}")), "{out}");
    assert!(out.contains("tools   jq"), "{out}");

    let ls = ok(&tack(d, &env, &["registry", "ls"]));
    let row = ls
        .lines()
        .find(|l| l.starts_with("tack/jq"))
        .unwrap_or_else(|| panic!("{ls}"));
    assert!(
        row.contains("tool") && row.contains("0.1.0") && row.contains("jq"),
        "{row}"
    );
    assert!(row.contains(&fingerprint[..19]), "{row}");
    let show = ok(&tack(d, &env, &["registry", "show", "tack/jq"]));
    assert!(show.contains("tool jq:"), "{show}");
    assert!(show.contains("\"filter\""), "the schema is shown: {show}");
    assert!(show.contains(&format!("signed by {fingerprint}")), "{show}");
    let search = ok(&tack(d, &env, &["registry", "search", "nothing-like-this"]));
    assert!(search.contains("no packages"), "{search}");

    // A fresh host (empty caches) runs it by reference: resolve, pull, verify, compile.
    let code = d.join("code");
    let out = ok(&tack(
        d,
        &env,
        &[
            "--cache-dir",
            code.to_str().unwrap(),
            "tool",
            "call",
            "tack/jq@0.1.0",
            "jq",
            "--args",
            r#"{"filter": ".a", "input": {"a": 1}}"#,
        ],
    ));
    assert_eq!(out.trim(), "1");
    assert!(
        std::fs::read_to_string(d.join("tack.lock"))
            .unwrap()
            .contains("tack/jq:0.1.0")
    );
    let verify = ok(&tack(
        d,
        &env,
        &["verify", "tack/jq@0.1.0", "--key", "publisher.pub"],
    ));
    assert!(
        verify.contains(&format!("signer  {fingerprint} (trusted)")),
        "{verify}"
    );

    // A host trusting another key refuses it and keeps nothing: no artifact, no code.
    let other = tempfile::tempdir().unwrap();
    let o = other.path();
    ok(&tack(o, &[], &["keygen", "--output", "someone-else"]));
    std::fs::write(
        o.join("tack.toml"),
        format!("[registries.\"{host}\"]\n[trust.tack]\nkeys = [\"someone-else.pub\"]\n"),
    )
    .unwrap();
    let strict = o.join("tack.toml");
    let code = o.join("code");
    // Both made empty first: finding nothing in them afterwards then means something.
    std::fs::create_dir(o.join("artifacts")).unwrap();
    std::fs::create_dir(&code).unwrap();
    let out = tack(
        o,
        &[("TACK_CONFIG", strict.to_str().unwrap())],
        &[
            "--cache-dir",
            code.to_str().unwrap(),
            "tool",
            "call",
            &format!("{host}/tack/jq@0.1.0"),
            "jq",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(6), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "is signed by {fingerprint}, which is not a trusted key for namespace `tack`"
        )),
        "{stderr}"
    );
    assert!(stderr.contains("[untrusted-signer]"), "{stderr}");
    assert!(files_under(&o.join("artifacts")).is_empty());
    assert!(files_under(&code).is_empty(), "something was compiled");
    assert!(!o.join("tack.lock").exists());
}

#[test]
fn publish_mistakes_get_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (_serve, host) = serve(d);
    let jq = guest("tack_plugin_jq");
    let jq = jq.to_str().unwrap();
    let cases: [(&[&str], i32, &str); 5] = [
        (
            &["publish", jq, "tack/jq@0.1.0"],
            2,
            "no default registry is configured",
        ),
        (
            &["publish", jq, &format!("{host}/tack/jq:latest")],
            2,
            "`latest` is not one",
        ),
        (
            &["publish", jq, &format!("{host}/Tack/jq@1.0.0")],
            2,
            "is not a repository name",
        ),
        (
            &["publish", jq, &format!("{host}/tack/jq@1.0.0")],
            6,
            "authentication required: push on tack/jq",
        ),
        (
            &["publish", "no-such.wasm", &format!("{host}/tack/jq@1.0.0")],
            4,
            "cannot read no-such.wasm",
        ),
    ];
    for (args, code, needle) in cases {
        let out = tack(d, &[], args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {stderr}");
        assert!(
            stderr.contains(needle),
            "{args:?}: expected `{needle}` in {stderr}"
        );
    }
    // A skill directory with a bad SKILL.md names the rule.
    let skill = d.join("refunds");
    std::fs::create_dir(&skill).unwrap();
    std::fs::write(
        skill.join("SKILL.md"),
        "---\nname: Refunds\ndescription: x\n---\n",
    )
    .unwrap();
    let out = tack(
        d,
        &[],
        &[
            "publish",
            skill.to_str().unwrap(),
            &format!("{host}/tack/refunds@1.0.0"),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("`name` `Refunds` contains `R`"), "{stderr}");
    // Keys are never overwritten.
    ok(&tack(d, &[], &["keygen", "--output", "k"]));
    let out = tack(d, &[], &["keygen", "--output", "k"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("refusing to overwrite"));
}

#[test]
fn publish_to_and_call_from_docker_registry() {
    let reg = tack_tests::registries::DockerRegistry::start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(&tack(d, &[], &["keygen", "--output", "acme"]));
    std::fs::write(
        d.join("tack.toml"),
        format!(
            "default-registry = \"{}\"\n[trust.acme]\nkeys = [\"acme.pub\"]\n",
            reg.host
        ),
    )
    .unwrap();
    let config = d.join("tack.toml");
    let env = [("TACK_CONFIG", config.to_str().unwrap())];
    let jq = guest("tack_plugin_jq");
    let out = ok(&tack(
        d,
        &env,
        &[
            "publish",
            jq.to_str().unwrap(),
            "acme/jq@0.2.0",
            "--sign-key",
            "acme.key",
        ],
    ));
    assert!(
        out.contains(&format!("published {}/acme/jq:0.2.0", reg.host)),
        "{out}"
    );
    let code = d.join("code");
    let out = ok(&tack(
        d,
        &env,
        &[
            "--cache-dir",
            code.to_str().unwrap(),
            "tool",
            "call",
            "acme/jq@0.2.0",
            "jq",
            "--args",
            r#"{"filter": "[.[] * 2]", "input": [1, 2]}"#,
        ],
    ));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v, serde_json::json!([2, 4]));
    let pull = ok(&tack(d, &env, &["pull", "acme/jq@0.2.0", "--json"]));
    let v: serde_json::Value = serde_json::from_str(&pull).unwrap();
    assert_eq!(v["source"], "cache");
    assert_eq!(v["signature"]["trusted"], true);
    assert_eq!(v["tools"], serde_json::json!(["jq"]));
}

/// A registry's memory does not grow with what it transfers: receiving a
/// 200 MiB blob in one request, serving it whole to five readers at once and a
/// range of it, and refusing five anonymous 100 MiB uploads (before reading
/// their bodies), the `tack registry serve` process peaks under 96 MiB resident.
#[tokio::test(flavor = "multi_thread")]
async fn the_registry_streams_blobs_in_bounded_memory() {
    use futures_util::StreamExt;
    use sha2::{Digest, Sha256};
    const MIB: usize = 1 << 20;
    const BOUND_KIB: u64 = 96 * 1024;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (serve, host) = serve(d);
    let pid = serve.0.id();
    let data = d.join("registry");
    let token = ok(&tack(
        d,
        &[],
        &[
            "registry",
            "token",
            "create",
            "--data",
            data.to_str().unwrap(),
            "--namespace",
            "big",
            "--role",
            "push",
        ],
    ));
    let token = token.trim().to_string();
    let chunk = bytes::Bytes::from((0..MIB).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
    let body = |mib: usize| {
        let chunk = chunk.clone();
        reqwest::Body::wrap_stream(futures_util::stream::iter(
            (0..mib).map(move |_| Ok::<_, std::io::Error>(chunk.clone())),
        ))
    };
    let mut hasher = Sha256::new();
    for _ in 0..200 {
        hasher.update(&chunk);
    }
    let digest = format!("sha256:{}", hex::encode(hasher.finalize()));
    tack_distribution::client::install_crypto();
    let http = reqwest::Client::new();
    let base = format!("http://{host}/v2/big/blob");
    let upload = format!("{base}/blobs/uploads/?digest={digest}");

    // Refused from the head: the bodies are never read. (The client may see
    // the connection closed before it has sent everything instead of the 401.)
    let anonymous = (0..5).map(|_| http.post(&upload).body(body(100)).send());
    for r in futures_util::future::join_all(anonymous)
        .await
        .into_iter()
        .flatten()
    {
        assert_eq!(r.status(), 401);
    }
    let r = http
        .post(&upload)
        .bearer_auth(&token)
        .body(body(200))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());

    let read = |range: Option<&'static str>| {
        let mut req = http
            .get(format!("{base}/blobs/{digest}"))
            .bearer_auth(&token);
        if let Some(range) = range {
            req = req.header("range", range);
        }
        async move {
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            let mut stream = r.bytes_stream();
            let (mut hasher, mut len, mut first) = (Sha256::new(), 0usize, Vec::new());
            while let Some(piece) = stream.next().await {
                let piece = piece.unwrap();
                if first.len() < 256 {
                    first.extend_from_slice(&piece[..piece.len().min(256 - first.len())]);
                }
                hasher.update(&piece);
                len += piece.len();
            }
            (
                status,
                len,
                format!("sha256:{}", hex::encode(hasher.finalize())),
                first,
            )
        }
    };
    let readers = futures_util::future::join_all((0..5).map(|_| read(None))).await;
    for (status, len, got, _) in readers {
        assert_eq!((status, len), (200, 200 * MIB));
        assert_eq!(got, digest);
    }
    let (status, len, _, first) = read(Some("bytes=300-555")).await;
    assert_eq!((status, len), (206, 256));
    assert_eq!(first, chunk[300..556]);

    let peak = tack_tests::peak_rss_kib(pid);
    eprintln!("registry peak resident memory: {} MiB", peak / 1024);
    assert!(
        peak < BOUND_KIB,
        "the registry peaked at {} MiB resident (bound {} MiB)",
        peak / 1024,
        BOUND_KIB / 1024
    );
}

/// `--no-auth` lets anyone push and delete, so it serves loopback only: on
/// any other address the server refuses to start, saying what to do.
#[test]
fn no_auth_refuses_to_listen_beyond_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = d.join("registry");
    let out = tack(
        d,
        &[],
        &[
            "registry",
            "serve",
            "--no-auth",
            "--listen",
            "0.0.0.0:0",
            "--data",
            data.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--no-auth") && err.contains("loopback only"),
        "{err}"
    );
    assert!(err.contains("help:"), "{err}");
}
