//! The registry over real HTTP on loopback, following the distribution-spec
//! conformance workflows: push, pull, content discovery, content management.

use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};
use tack_registry_store::{Digest, Store};

struct Registry {
    base: String,
    http: Client,
    _dir: tempfile::TempDir,
}

impl Registry {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(tack_registry::serve(
            listener,
            tack_registry::Registry::unauthenticated(store).unwrap(),
            Default::default(),
        ));
        // reqwest is built without a default TLS provider in this workspace.
        let _ = rustls::crypto::ring::default_provider().install_default();
        Registry {
            base,
            http: Client::new(),
            _dir: dir,
        }
    }

    fn req(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let url = if path.starts_with("http") {
            path.to_string()
        } else {
            format!("{}{path}", self.base)
        };
        self.http.request(method, url)
    }

    async fn push_blob(&self, repo: &str, data: &[u8]) -> Digest {
        let d = Digest::of(data);
        let r = self
            .req(
                Method::POST,
                &format!("/v2/{repo}/blobs/uploads/?digest={d}"),
            )
            .body(data.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        d
    }

    async fn push_manifest(
        &self,
        repo: &str,
        reference: &str,
        manifest: &Value,
    ) -> reqwest::Response {
        self.req(Method::PUT, &format!("/v2/{repo}/manifests/{reference}"))
            .header("content-type", "application/vnd.oci.image.manifest.v1+json")
            .body(manifest.to_string())
            .send()
            .await
            .unwrap()
    }
}

async fn error_code(r: reqwest::Response) -> String {
    let body: Value = r.json().await.unwrap();
    body["errors"][0]["code"].as_str().unwrap().to_string()
}

fn wasm_manifest(config: &Digest, layer: &Digest, layer_size: usize) -> Value {
    json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": { "mediaType": "application/vnd.wasm.config.v0+json", "digest": config.to_string(), "size": 2 },
        "layers": [{ "mediaType": "application/wasm", "digest": layer.to_string(), "size": layer_size }],
        "annotations": { "org.opencontainers.image.version": "1.0.0" }
    })
}

#[tokio::test]
async fn push_then_pull_by_tag_and_digest() {
    let reg = Registry::start().await;
    let r = reg.req(Method::GET, "/v2/").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    let layer = b"\0asm component bytes".to_vec();
    let config = reg.push_blob("acme/jq", b"{}").await;
    let layer_digest = reg.push_blob("acme/jq", &layer).await;
    let manifest = wasm_manifest(&config, &layer_digest, layer.len());
    let r = reg.push_manifest("acme/jq", "1.0.0", &manifest).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let digest = r.headers()["docker-content-digest"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(
        digest,
        Digest::of(manifest.to_string().as_bytes()).to_string()
    );
    assert_eq!(
        r.headers()["location"],
        format!("/v2/acme/jq/manifests/{digest}").as_str()
    );

    for reference in ["1.0.0", digest.as_str()] {
        let r = reg
            .req(Method::GET, &format!("/v2/acme/jq/manifests/{reference}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(
            r.headers()["content-type"],
            "application/vnd.oci.image.manifest.v1+json"
        );
        assert_eq!(r.headers()["docker-content-digest"], digest.as_str());
        assert_eq!(r.text().await.unwrap(), manifest.to_string());
        let r = reg
            .req(Method::HEAD, &format!("/v2/acme/jq/manifests/{reference}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(
            r.headers()["content-length"],
            manifest.to_string().len().to_string().as_str()
        );
    }

    let r = reg
        .req(Method::GET, &format!("/v2/acme/jq/blobs/{layer_digest}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.bytes().await.unwrap().to_vec(), layer);
    let r = reg
        .req(Method::GET, &format!("/v2/acme/jq/blobs/{layer_digest}"))
        .header("range", "bytes=1-4")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        r.headers()["content-range"],
        format!("bytes 1-4/{}", layer.len()).as_str()
    );
    assert_eq!(r.bytes().await.unwrap().to_vec(), layer[1..=4].to_vec());
    let r = reg
        .req(Method::HEAD, &format!("/v2/acme/jq/blobs/{layer_digest}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["content-length"],
        layer.len().to_string().as_str()
    );

    // The manifest is not visible from another repository.
    let r = reg
        .req(Method::GET, &format!("/v2/other/repo/manifests/{digest}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(error_code(r).await, "MANIFEST_UNKNOWN");
}

#[tokio::test]
async fn chunked_upload_with_resume_and_digest_check() {
    let reg = Registry::start().await;
    let r = reg
        .req(Method::POST, "/v2/acme/big/blobs/uploads/")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let location = r.headers()["location"].to_str().unwrap().to_string();

    let r = reg
        .req(Method::PATCH, &location)
        .header("content-range", "0-4")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(r.headers()["range"], "0-4");

    // A chunk that does not continue where the upload ends is refused with 416.
    let r = reg
        .req(Method::PATCH, &location)
        .header("content-range", "2-6")
        .body("xxxxx")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(error_code(r).await, "BLOB_UPLOAD_INVALID");

    let r = reg.req(Method::GET, &location).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(r.headers()["range"], "0-4");

    let digest = Digest::of(b"hello world");
    let r = reg
        .req(Method::PUT, &format!("{location}?digest={digest}"))
        .body(" world")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(
        r.headers()["docker-content-digest"],
        digest.to_string().as_str()
    );
    let r = reg
        .req(Method::GET, &format!("/v2/acme/big/blobs/{digest}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "hello world");
}

#[tokio::test]
async fn tampered_uploads_are_refused_and_leave_nothing() {
    let reg = Registry::start().await;
    let claimed = Digest::of(b"the real component");
    let r = reg
        .req(
            Method::POST,
            &format!("/v2/acme/jq/blobs/uploads/?digest={claimed}"),
        )
        .body("a tampered component")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(r).await, "DIGEST_INVALID");
    let r = reg
        .req(Method::HEAD, &format!("/v2/acme/jq/blobs/{claimed}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // A manifest pushed by digest must hash to it.
    let config = reg.push_blob("acme/jq", b"{}").await;
    let manifest = wasm_manifest(&config, &config, 2);
    let wrong = Digest::of(b"not this manifest");
    let r = reg
        .push_manifest("acme/jq", &wrong.to_string(), &manifest)
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(r).await, "DIGEST_INVALID");

    // A manifest referencing a missing blob is refused.
    let missing = Digest::of(b"never pushed");
    let r = reg
        .push_manifest("acme/jq", "1.0.0", &wasm_manifest(&config, &missing, 5))
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(r).await, "MANIFEST_BLOB_UNKNOWN");
    let r = reg
        .req(Method::GET, "/v2/acme/jq/tags/list")
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["tags"], json!([]));

    // Bad names and digests get their codes.
    let r = reg
        .req(Method::GET, "/v2/Acme/jq/tags/list")
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(r).await, "NAME_INVALID");
    let r = reg
        .req(Method::GET, "/v2/acme/jq/blobs/sha256:zz")
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(r).await, "DIGEST_INVALID");
}

#[tokio::test]
async fn discovery_tags_catalog_and_referrers() {
    let reg = Registry::start().await;
    let config = reg.push_blob("acme/jq", b"{}").await;
    let mut subject = None;
    for (i, v) in ["1.0.0", "1.1.0", "2.0.0"].iter().enumerate() {
        let layer = reg
            .push_blob("acme/jq", format!("layer {i}").as_bytes())
            .await;
        let r = reg
            .push_manifest("acme/jq", v, &wasm_manifest(&config, &layer, 7))
            .await;
        assert_eq!(r.status(), StatusCode::CREATED);
        subject = Some(
            r.headers()["docker-content-digest"]
                .to_str()
                .unwrap()
                .to_string(),
        );
    }
    // Blobs belong to the repositories they were pushed or mounted to: a manifest
    // in another repository cannot reference them, nor can it read them.
    let r = reg
        .push_manifest("zeta/tool", "1.0.0", &wasm_manifest(&config, &config, 2))
        .await;
    assert_eq!(error_code(r).await, "MANIFEST_BLOB_UNKNOWN");
    let r = reg
        .req(Method::GET, &format!("/v2/zeta/tool/blobs/{config}"))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(r).await, "BLOB_UNKNOWN");
    let r = reg
        .req(
            Method::POST,
            &format!("/v2/zeta/tool/blobs/uploads/?mount={config}&from=acme/jq"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = reg
        .push_manifest("zeta/tool", "1.0.0", &wasm_manifest(&config, &config, 2))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);

    let r = reg
        .req(Method::GET, "/v2/acme/jq/tags/list?n=2")
        .send()
        .await
        .unwrap();
    let link = r.headers()["link"].to_str().unwrap().to_string();
    assert_eq!(link, "</v2/acme/jq/tags/list?n=2&last=1.1.0>; rel=\"next\"");
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"name": "acme/jq", "tags": ["1.0.0", "1.1.0"]})
    );
    let r = reg
        .req(Method::GET, "/v2/acme/jq/tags/list?n=2&last=1.1.0")
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("link").is_none());
    assert_eq!(r.json::<Value>().await.unwrap()["tags"], json!(["2.0.0"]));

    let r = reg.req(Method::GET, "/v2/_catalog").send().await.unwrap();
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"repositories": ["acme/jq", "zeta/tool"]})
    );

    // A signature artifact that refers to 2.0.0.
    let subject = subject.unwrap();
    let sig_layer = reg.push_blob("acme/jq", b"signature").await;
    let sig = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": "application/vnd.dev.cosign.simplesigning.v1+json",
        "config": { "mediaType": "application/vnd.oci.empty.v1+json", "digest": config.to_string(), "size": 2 },
        "layers": [{ "mediaType": "application/vnd.dev.cosign.simplesigning.v1+json", "digest": sig_layer.to_string(), "size": 9 }],
        "subject": { "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": subject, "size": 1 }
    });
    let r = reg.push_manifest("acme/jq", "sha256-sig", &sig).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(r.headers()["oci-subject"], subject.as_str());

    let r = reg
        .req(Method::GET, &format!("/v2/acme/jq/referrers/{subject}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["content-type"],
        "application/vnd.oci.image.index.v1+json"
    );
    let index: Value = r.json().await.unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 1);
    assert_eq!(
        index["manifests"][0]["artifactType"],
        "application/vnd.dev.cosign.simplesigning.v1+json"
    );
    let r = reg
        .req(
            Method::GET,
            &format!("/v2/acme/jq/referrers/{subject}?artifactType=application/other"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["oci-filters-applied"], "artifactType");
    assert_eq!(r.json::<Value>().await.unwrap()["manifests"], json!([]));
}

#[tokio::test]
async fn content_management_deletes_tags_manifests_and_blobs() {
    let reg = Registry::start().await;
    let config = reg.push_blob("acme/jq", b"{}").await;
    let r = reg
        .push_manifest("acme/jq", "1.0.0", &wasm_manifest(&config, &config, 2))
        .await;
    let digest = r.headers()["docker-content-digest"]
        .to_str()
        .unwrap()
        .to_string();

    let r = reg
        .req(Method::DELETE, "/v2/acme/jq/manifests/1.0.0")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let r = reg
        .req(Method::GET, "/v2/acme/jq/manifests/1.0.0")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // Still there by digest until deleted by digest.
    let r = reg
        .req(Method::GET, &format!("/v2/acme/jq/manifests/{digest}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = reg
        .req(Method::DELETE, &format!("/v2/acme/jq/manifests/{digest}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let r = reg
        .req(Method::GET, &format!("/v2/acme/jq/manifests/{digest}"))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(r).await, "MANIFEST_UNKNOWN");

    let r = reg
        .req(Method::DELETE, &format!("/v2/acme/jq/blobs/{config}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let r = reg
        .req(Method::GET, &format!("/v2/acme/jq/blobs/{config}"))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(r).await, "BLOB_UNKNOWN");

    // Cancelled uploads are gone.
    let r = reg
        .req(Method::POST, "/v2/acme/jq/blobs/uploads/")
        .send()
        .await
        .unwrap();
    let location = r.headers()["location"].to_str().unwrap().to_string();
    assert_eq!(
        reg.req(Method::DELETE, &location)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NO_CONTENT
    );
    let r = reg.req(Method::GET, &location).send().await.unwrap();
    assert_eq!(error_code(r).await, "BLOB_UPLOAD_UNKNOWN");
}
