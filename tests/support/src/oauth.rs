//! An OAuth 2.1 authorization server and a protected MCP endpoint on one
//! loopback port, for the gateway's token handling (login, refresh, per-user
//! tokens). The endpoint `/mcp` takes only bearer tokens this server issued
//! and still holds valid, and forwards the request (without the token) to an
//! upstream MCP server.
//!
//! It follows the specification's discovery chain: a 401 names the
//! protected-resource metadata, which names this authorization server, whose
//! metadata offers dynamic registration, PKCE (S256 only) and refresh
//! tokens. `/authorize` approves at once, as whichever user
//! [`OAuthServer::approve_as`] set, and redirects with the code, so a test
//! plays the browser by following one redirect. Codes check their PKCE
//! verifier, redirect address and `resource`.
//!
//! Expiry is explicit, not timed: [`OAuthServer::expire_access_tokens`] makes
//! every access token issued so far invalid, as if its time ran out.

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

type Body = BoxBody<Bytes, hyper::Error>;

/// The server; it stops with the runtime it was started in.
pub struct OAuthServer {
    /// Address it listens on.
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    user: String,
    next: u64,
    /// code -> (user, code_challenge, redirect_uri, resource)
    codes: HashMap<String, (String, String, String, String)>,
    /// access token -> (user, valid)
    access: HashMap<String, (String, bool)>,
    /// refresh token -> user
    refresh: HashMap<String, String>,
    /// Every token issued, in order.
    issued: Vec<String>,
    /// What happened, in order, for assertions.
    log: Vec<String>,
}

impl OAuthServer {
    /// Start it, protecting the MCP server at `upstream` (streamable HTTP,
    /// path `upstream_path`).
    pub async fn start(upstream: SocketAddr, upstream_path: &str) -> OAuthServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let state = Arc::new(Mutex::new(State {
            user: "alice".into(),
            ..State::default()
        }));
        let shared = state.clone();
        let upstream_path: Arc<str> = upstream_path.into();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = shared.clone();
                let upstream_path = upstream_path.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<Incoming>| {
                        let state = state.clone();
                        let upstream_path = upstream_path.clone();
                        async move {
                            Ok::<_, hyper::Error>(
                                handle(addr, upstream, &upstream_path, &state, req).await,
                            )
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        OAuthServer { addr, state }
    }

    /// The protected MCP endpoint's address.
    pub fn url(&self) -> String {
        format!("http://{}/mcp", self.addr)
    }

    /// Approve the authorizations that follow as `user`.
    pub fn approve_as(&self, user: &str) {
        self.state.lock().unwrap().user = user.to_string();
    }

    /// Make every access token issued so far invalid (refresh tokens stay
    /// good).
    pub fn expire_access_tokens(&self) {
        for (_, valid) in self.state.lock().unwrap().access.values_mut() {
            *valid = false;
        }
    }

    /// What happened so far: `register`, `authorize USER`, `token
    /// authorization_code USER`, `token refresh_token USER`, `mcp USER` (a
    /// request let through) and `mcp 401` (one refused).
    pub fn log(&self) -> Vec<String> {
        self.state.lock().unwrap().log.clone()
    }

    /// Every token (access and refresh) issued so far.
    pub fn tokens(&self) -> Vec<String> {
        self.state.lock().unwrap().issued.clone()
    }
}

fn full(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(
            Full::new(body.into())
                .map_err(|never| match never {})
                .boxed(),
        )
        .expect("a response")
}

fn json_response(status: StatusCode, v: Value) -> Response<Body> {
    full(status, "application/json", v.to_string())
}

fn form(body: &[u8]) -> HashMap<String, String> {
    url_pairs(std::str::from_utf8(body).unwrap_or_default())
}

fn url_pairs(query: &str) -> HashMap<String, String> {
    query
        .split('&')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

fn decode(s: &str) -> String {
    let s = s.replace('+', " ");
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn handle(
    addr: SocketAddr,
    upstream: SocketAddr,
    upstream_path: &str,
    state: &Mutex<State>,
    req: Request<Incoming>,
) -> Response<Body> {
    let base = format!("http://{addr}");
    let path = req.uri().path().to_string();
    let query = url_pairs(req.uri().query().unwrap_or_default());
    match path.as_str() {
        "/.well-known/oauth-protected-resource/mcp" | "/.well-known/oauth-protected-resource" => {
            json_response(
                StatusCode::OK,
                json!({"resource": format!("{base}/mcp"), "authorization_servers": [base]}),
            )
        }
        "/.well-known/oauth-authorization-server" => json_response(
            StatusCode::OK,
            json!({
                "issuer": base,
                "authorization_endpoint": format!("{base}/authorize"),
                "token_endpoint": format!("{base}/token"),
                "registration_endpoint": format!("{base}/register"),
                "response_types_supported": ["code"],
                "grant_types_supported": ["authorization_code", "refresh_token"],
                "code_challenge_methods_supported": ["S256"],
                "token_endpoint_auth_methods_supported": ["none"],
            }),
        ),
        "/register" => {
            let body = req.into_body().collect().await.map(|b| b.to_bytes());
            let request: Value = body
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or_default();
            let mut s = state.lock().unwrap();
            s.next += 1;
            s.log.push("register".into());
            json_response(
                StatusCode::CREATED,
                json!({"client_id": format!("client-{}", s.next),
                       "redirect_uris": request["redirect_uris"]}),
            )
        }
        "/authorize" => {
            let (Some(challenge), Some(redirect), Some(state_param)) = (
                query.get("code_challenge"),
                query.get("redirect_uri"),
                query.get("state"),
            ) else {
                return full(StatusCode::BAD_REQUEST, "text/plain", "missing parameters");
            };
            if query.get("code_challenge_method").map(String::as_str) != Some("S256") {
                return full(StatusCode::BAD_REQUEST, "text/plain", "S256 only");
            }
            let resource = query.get("resource").cloned().unwrap_or_default();
            let mut s = state.lock().unwrap();
            s.next += 1;
            let code = format!("code-{}", s.next);
            let user = s.user.clone();
            s.log.push(format!("authorize {user}"));
            s.codes.insert(
                code.clone(),
                (user, challenge.clone(), redirect.clone(), resource),
            );
            let sep = if redirect.contains('?') { '&' } else { '?' };
            Response::builder()
                .status(StatusCode::FOUND)
                .header(
                    "location",
                    format!("{redirect}{sep}code={code}&state={state_param}&iss={base}"),
                )
                .body(Full::new(Bytes::new()).map_err(|n| match n {}).boxed())
                .expect("a response")
        }
        "/token" => {
            let body = req.into_body().collect().await.map(|b| b.to_bytes());
            let f = form(&body.unwrap_or_default());
            let mut s = state.lock().unwrap();
            let bad = |why: &str| {
                json_response(
                    StatusCode::BAD_REQUEST,
                    json!({"error": "invalid_grant", "error_description": why}),
                )
            };
            let user = match f.get("grant_type").map(String::as_str) {
                Some("authorization_code") => {
                    let Some((user, challenge, redirect, resource)) =
                        f.get("code").and_then(|c| s.codes.remove(c))
                    else {
                        return bad("unknown code");
                    };
                    let verifier = f.get("code_verifier").cloned().unwrap_or_default();
                    let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD
                        .encode(Sha256::digest(verifier.as_bytes()));
                    if computed != challenge {
                        return bad("the PKCE verifier does not match");
                    }
                    if f.get("redirect_uri") != Some(&redirect) {
                        return bad("redirect_uri differs");
                    }
                    if f.get("resource") != Some(&resource) {
                        return bad("resource differs");
                    }
                    s.log.push(format!("token authorization_code {user}"));
                    user
                }
                Some("refresh_token") => {
                    let Some(user) = f.get("refresh_token").and_then(|r| s.refresh.remove(r))
                    else {
                        return bad("unknown refresh token");
                    };
                    s.log.push(format!("token refresh_token {user}"));
                    user
                }
                _ => return bad("unsupported grant"),
            };
            s.next += 1;
            let n = s.next;
            let access = format!("at-{user}-{n}-{:x}", rand_bits());
            let refresh = format!("rt-{user}-{n}-{:x}", rand_bits());
            s.issued.extend([access.clone(), refresh.clone()]);
            s.access.insert(access.clone(), (user.clone(), true));
            s.refresh.insert(refresh.clone(), user);
            json_response(
                StatusCode::OK,
                json!({"access_token": access, "token_type": "Bearer",
                       "expires_in": 3600, "refresh_token": refresh}),
            )
        }
        "/mcp" => {
            let token = req
                .headers()
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(str::to_string);
            let user = {
                let mut s = state.lock().unwrap();
                let user = token
                    .and_then(|t| s.access.get(&t).cloned())
                    .and_then(|(user, valid)| valid.then_some(user));
                s.log
                    .push(format!("mcp {}", user.as_deref().unwrap_or("401")));
                user
            };
            if user.is_none() {
                return Response::builder()
                    .status(StatusCode::UNAUTHORIZED)
                    .header(
                        "www-authenticate",
                        format!(
                            "Bearer error=\"invalid_token\", resource_metadata=\"{base}/.well-known/oauth-protected-resource/mcp\""
                        ),
                    )
                    .body(Full::new(Bytes::new()).map_err(|n| match n {}).boxed())
                    .expect("a response");
            }
            forward(upstream, upstream_path, req).await
        }
        _ => full(StatusCode::NOT_FOUND, "text/plain", "not found"),
    }
}

fn rand_bits() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::SystemTime::now())
}

/// `req`, without its token, to the upstream MCP server.
async fn forward(upstream: SocketAddr, path: &str, req: Request<Incoming>) -> Response<Body> {
    let (mut parts, body) = req.into_parts();
    parts.headers.remove("authorization");
    parts.headers.insert(
        "host",
        upstream.to_string().parse().expect("a header value"),
    );
    let query = parts
        .uri
        .query()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    parts.uri = format!("{path}{query}").parse().expect("a path");
    let req = Request::from_parts(parts, body);
    let result = async {
        let stream = tokio::net::TcpStream::connect(upstream).await?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(sender.send_request(req).await?)
    }
    .await;
    match result {
        Ok(r) => r.map(|b| b.boxed()),
        Err(e) => full(StatusCode::BAD_GATEWAY, "text/plain", e.to_string()),
    }
}
