//! Authorization: the bearer token flow standard clients follow, roles per
//! namespace, anonymous pull on and off, and attempts to get around them.

use reqwest::{Client, Method, StatusCode};
use serde_json::Value;
use tack_registry::{AuthConfig, Registry, Role};
use tack_registry_store::{Digest, Store};

struct Server {
    base: String,
    http: Client,
    dir: tempfile::TempDir,
}

impl Server {
    async fn start(anonymous_pull: bool) -> Server {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let registry =
            Registry::new(store, AuthConfig::tokens_in(dir.path(), anonymous_pull)).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(tack_registry::serve(listener, registry, Default::default()));
        Server {
            base,
            http: Client::new(),
            dir,
        }
    }

    fn token(&self, ns: &str, role: Role) -> String {
        tack_registry::auth::create_token(self.dir.path(), ns, role, None)
            .unwrap()
            .0
    }

    fn req(&self, method: Method, path: &str, bearer: Option<&str>) -> reqwest::RequestBuilder {
        let r = self.http.request(method, format!("{}{path}", self.base));
        match bearer {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    /// The status of a bodiless request.
    async fn status(&self, method: Method, path: &str, bearer: Option<&str>) -> StatusCode {
        self.req(method, path, bearer)
            .send()
            .await
            .unwrap()
            .status()
    }

    async fn push_blob(&self, repo: &str, data: &[u8], bearer: Option<&str>) -> reqwest::Response {
        let d = Digest::of(data);
        self.req(
            Method::POST,
            &format!("/v2/{repo}/blobs/uploads/?digest={d}"),
            bearer,
        )
        .body(data.to_vec())
        .send()
        .await
        .unwrap()
    }

    /// Push config + layer + manifest tagged `tag`; returns the manifest status.
    async fn push_artifact(&self, repo: &str, tag: &str, bearer: &str) -> StatusCode {
        let config = br#"{"architecture":"wasm","os":"wasip2"}"#;
        let layer = format!("component of {repo}");
        assert_eq!(
            self.push_blob(repo, config, Some(bearer)).await.status(),
            StatusCode::CREATED
        );
        assert_eq!(
            self.push_blob(repo, layer.as_bytes(), Some(bearer))
                .await
                .status(),
            StatusCode::CREATED
        );
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.wasm.config.v0+json", "digest": Digest::of(config).to_string(), "size": config.len()},
            "layers": [{"mediaType": "application/wasm", "digest": Digest::of(layer.as_bytes()).to_string(), "size": layer.len()}],
            "annotations": {"org.opencontainers.image.version": tag, "org.opencontainers.image.description": format!("{repo} tool")},
        });
        self.req(
            Method::PUT,
            &format!("/v2/{repo}/manifests/{tag}"),
            Some(bearer),
        )
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(manifest.to_string())
        .send()
        .await
        .unwrap()
        .status()
    }
}

async fn error(r: reqwest::Response) -> (StatusCode, String, String) {
    let status = r.status();
    let v: Value = r.json().await.unwrap();
    (
        status,
        v["errors"][0]["code"].as_str().unwrap_or("").to_string(),
        v["errors"][0]["message"].as_str().unwrap_or("").to_string(),
    )
}

#[tokio::test]
async fn the_token_flow_of_standard_clients() {
    let s = Server::start(false).await;
    let push = s.token("acme", Role::Push);
    // 1. The API check challenges a client without credentials.
    let r = s.req(Method::GET, "/v2/", None).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let challenge = r.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        challenge.starts_with("Bearer realm=\"http://"),
        "{challenge}"
    );
    assert!(
        challenge.contains("/token\",service=\"tack-registry\""),
        "{challenge}"
    );
    // 2. The realm issues an access token for Basic credentials (any user name).
    let t: Value = s
        .http
        .get(format!(
            "{}/token?service=tack-registry&scope=repository:acme/jq:pull,push",
            s.base
        ))
        .basic_auth("ci", Some(&push))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access = t["token"].as_str().unwrap().to_string();
    assert_eq!(t["access_token"], t["token"]);
    assert_ne!(
        access, push,
        "the registry token itself is never handed out"
    );
    // 3. The access token works as a bearer token.
    assert_eq!(
        s.push_artifact("acme/jq", "1.0.0", &access).await,
        StatusCode::CREATED
    );
    assert_eq!(
        s.status(Method::GET, "/v2/", Some(&access)).await,
        StatusCode::OK
    );
    // 4. A scope that needs more than the client has is challenged with that scope.
    let r = s
        .req(Method::POST, "/v2/acme/jq/blobs/uploads/", None)
        .send()
        .await
        .unwrap();
    let challenge = r.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        challenge.contains("scope=\"repository:acme/jq:pull,push\""),
        "{challenge}"
    );
    // 5. Wrong credentials are refused at the realm and at the API.
    let r = s
        .http
        .get(format!("{}/token", s.base))
        .basic_auth("ci", Some("tack_not_a_token"))
        .send()
        .await
        .unwrap();
    let (status, code, message) = error(r).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::UNAUTHORIZED, "UNAUTHORIZED")
    );
    assert!(message.contains("not a registry token"), "{message}");
    let r = s
        .req(Method::GET, "/v2/acme/jq/tags/list", Some("acc_forged"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn roles_are_per_namespace_and_ordered() {
    let s = Server::start(false).await;
    let acme_push = s.token("acme", Role::Push);
    let acme_pull = s.token("acme", Role::Pull);
    let zeta_admin = s.token("zeta", Role::Admin);
    assert_eq!(
        s.push_artifact("acme/jq", "1.0.0", &acme_push).await,
        StatusCode::CREATED
    );
    assert_eq!(
        s.push_artifact("zeta/x", "1.0.0", &zeta_admin).await,
        StatusCode::CREATED
    );

    // pull may read but not write.
    assert_eq!(
        s.status(Method::GET, "/v2/acme/jq/manifests/1.0.0", Some(&acme_pull))
            .await,
        StatusCode::OK
    );
    let (status, code, message) = error(s.push_blob("acme/jq", b"x", Some(&acme_pull)).await).await;
    assert_eq!((status, code.as_str()), (StatusCode::FORBIDDEN, "DENIED"));
    assert!(
        message.contains("has role pull on namespace `acme`"),
        "{message}"
    );
    assert!(
        message.contains("--namespace acme --role push"),
        "{message}"
    );
    // A namespace's token does not reach another namespace, whatever its role.
    assert_eq!(
        s.status(Method::GET, "/v2/zeta/x/tags/list", Some(&acme_push))
            .await,
        StatusCode::FORBIDDEN
    );
    let r = s.push_blob("acme/jq", b"y", Some(&zeta_admin)).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // Namespace prefixes are not namespaces: `acme` does not cover `acme-evil`.
    let r = s.push_blob("acme-evil/jq", b"z", Some(&acme_push)).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // Mounting reads from the source, which needs pull there.
    let d = Digest::of(br#"{"architecture":"wasm","os":"wasip2"}"#);
    assert_eq!(
        s.status(
            Method::POST,
            &format!("/v2/acme/jq/blobs/uploads/?mount={d}&from=zeta/x"),
            Some(&acme_push)
        )
        .await,
        StatusCode::FORBIDDEN
    );
    // Deleting needs admin.
    assert_eq!(
        s.status(
            Method::DELETE,
            "/v2/acme/jq/manifests/1.0.0",
            Some(&acme_push)
        )
        .await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        s.status(
            Method::DELETE,
            "/v2/zeta/x/manifests/1.0.0",
            Some(&zeta_admin)
        )
        .await,
        StatusCode::ACCEPTED
    );
}

#[tokio::test]
async fn listings_show_only_what_the_caller_may_pull() {
    let s = Server::start(false).await;
    let acme = s.token("acme", Role::Push);
    let zeta = s.token("zeta", Role::Push);
    s.push_artifact("acme/jq", "1.0.0", &acme).await;
    s.push_artifact("zeta/x", "1.0.0", &zeta).await;
    let r = s
        .req(Method::GET, "/v2/_catalog", Some(&acme))
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["repositories"], serde_json::json!(["acme/jq"]));
    let r = s
        .req(Method::GET, "/api/v1/packages", Some(&acme))
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    let names: Vec<&str> = v["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["acme/jq"]);
    // A package the caller may not pull looks exactly like one that does not exist.
    let hidden = error(
        s.req(Method::GET, "/api/v1/packages/zeta/x", Some(&acme))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let absent = error(
        s.req(Method::GET, "/api/v1/packages/zeta/y", Some(&acme))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(hidden.0, StatusCode::NOT_FOUND);
    assert_eq!((hidden.0, hidden.1), (absent.0, absent.1));
    // Without credentials and without anonymous pull, nothing is listed.
    let r = s
        .req(Method::GET, "/api/v1/packages", None)
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["packages"], serde_json::json!([]));
    assert_eq!(
        s.status(Method::GET, "/v2/acme/jq/manifests/1.0.0", None)
            .await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn anonymous_pull_when_allowed_and_never_anonymous_push() {
    let s = Server::start(true).await;
    let push = s.token("acme", Role::Push);
    s.push_artifact("acme/jq", "1.0.0", &push).await;
    // Anonymous token from the realm, as docker-style clients ask for it.
    let t: Value = s
        .http
        .get(format!("{}/token?scope=repository:acme/jq:pull", s.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let anon = t["token"].as_str().unwrap();
    assert_eq!(
        s.status(Method::GET, "/v2/acme/jq/manifests/1.0.0", Some(anon))
            .await,
        StatusCode::OK
    );
    assert_eq!(
        s.status(Method::GET, "/v2/acme/jq/tags/list", None).await,
        StatusCode::OK
    );
    let (status, _, message) = error(s.push_blob("acme/jq", b"x", Some(anon)).await).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(message.contains("authentication required"), "{message}");
    // The browse API is public too, with its search.
    let v: Value = s
        .http
        .get(format!("{}/api/v1/packages?q=ACME%20jq", s.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        v["packages"].as_array().unwrap().len(),
        0,
        "search is a substring match of the whole query"
    );
    let v: Value = s
        .http
        .get(format!("{}/api/v1/packages?q=JQ&kind=tool", s.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["packages"][0]["name"], "acme/jq");
    let r = s
        .http
        .get(format!("{}/api/v1/packages?kind=agent", s.base))
        .send()
        .await
        .unwrap();
    let (status, _, message) = error(r).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        message.contains("expected tool, skill, model, policy or code-runner"),
        "{message}"
    );
}

#[tokio::test]
async fn the_browse_index_pages_and_follows_pushes_and_deletes() {
    let s = Server::start(true).await;
    let admin = s.token("*", Role::Admin);
    for name in ["a/one", "b/two", "c/three"] {
        s.push_artifact(name, "1.0.0", &admin).await;
    }
    s.push_artifact("a/one", "1.10.0", &admin).await;
    s.push_artifact("a/one", "1.9.0", &admin).await;
    let v: Value = s
        .http
        .get(format!("{}/api/v1/packages?n=2", s.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["packages"].as_array().unwrap().len(), 2);
    assert_eq!(
        v["packages"][0]["latest"], "1.10.0",
        "semver order, not lexical"
    );
    let next = v["next"].as_str().unwrap();
    let v: Value = s
        .http
        .get(format!("{}{next}", s.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["packages"][0]["name"], "c/three");
    assert!(v["next"].is_null());
    let v: Value = s
        .http
        .get(format!("{}/api/v1/packages/a/one", s.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let versions: Vec<&str> = v["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_str().unwrap())
        .collect();
    assert_eq!(versions, ["1.10.0", "1.9.0", "1.0.0"]);
    assert_eq!(
        s.status(Method::DELETE, "/v2/c/three/manifests/1.0.0", Some(&admin))
            .await,
        StatusCode::ACCEPTED
    );
    let r = s
        .http
        .get(format!("{}/api/v1/packages/c/three", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

/// An upload session belongs to the repository and the token that started it:
/// a push token of another namespace, or another token of the same one, given
/// the session's id, cannot see it, add to it, finish it into a repository of
/// its own or cancel it; each is told the session is unknown.
#[tokio::test]
async fn upload_sessions_are_bound_to_their_repository_and_token() {
    let s = Server::start(false).await;
    let owner = s.token("acme", Role::Push);
    let colleague = s.token("acme", Role::Push);
    let stranger = s.token("evil", Role::Push);
    let r = s
        .req(Method::POST, "/v2/acme/tool/blobs/uploads/", Some(&owner))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let id = location.rsplit('/').next().unwrap().to_string();
    let data = b"the owner's layer";
    let r = s
        .req(Method::PATCH, &location, Some(&owner))
        .body(data.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let digest = Digest::of(data);

    let attempts = [
        (colleague.as_str(), location.clone()),
        (
            stranger.as_str(),
            format!("/v2/evil/tool/blobs/uploads/{id}"),
        ),
    ];
    for (token, path) in &attempts {
        for (method, query) in [
            (Method::GET, String::new()),
            (Method::PATCH, String::new()),
            (Method::PUT, format!("?digest={digest}")),
            (Method::DELETE, String::new()),
        ] {
            let r = s
                .req(method.clone(), &format!("{path}{query}"), Some(token))
                .body(if method == Method::PATCH {
                    b"more".to_vec()
                } else {
                    Vec::new()
                })
                .send()
                .await
                .unwrap();
            let (status, code, _) = error(r).await;
            assert_eq!(
                (status, code.as_str()),
                (StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN"),
                "{method} {path}"
            );
        }
    }
    assert_eq!(
        s.status(
            Method::HEAD,
            &format!("/v2/evil/tool/blobs/{digest}"),
            Some(&stranger)
        )
        .await,
        StatusCode::NOT_FOUND
    );
    // The owner's session is as it was, and finishes.
    let r = s
        .req(
            Method::PUT,
            &format!("{location}?digest={digest}"),
            Some(&owner),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(
        s.status(
            Method::HEAD,
            &format!("/v2/acme/tool/blobs/{digest}"),
            Some(&owner)
        )
        .await,
        StatusCode::OK
    );
}
