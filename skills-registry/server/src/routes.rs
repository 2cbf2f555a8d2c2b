//! Request routing: repository names contain `/`, so the path after `/v2/` is
//! split at the last endpoint marker (`/blobs/uploads/`, `/blobs/`, `/manifests/`,
//! `/tags/list`, `/referrers/`) rather than matched by a router pattern.

use crate::auth::{Denied, Principal, Role};
use crate::{ApiError, MAX_BODY, MAX_MANIFEST, Registry, browse};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::io::{self, Read};
use std::sync::Arc;
use tack_registry_store::{Digest, Reference, RepoName, Store, StoreError, UploadId, UploadOwner};

type Result<T> = std::result::Result<T, ApiError>;

/// The registry's router: the distribution API under `/v2/`, the token endpoint at
/// `/token`, and the browse API under `/api/v1/`.
pub fn router(registry: Arc<Registry>) -> Router {
    Router::new().fallback(dispatch).with_state(registry)
}

/// What a request addresses.
enum Target {
    Base,
    Catalog,
    Uploads(RepoName, Option<String>),
    Blob(RepoName, String),
    Manifest(RepoName, String),
    Tags(RepoName),
    Referrers(RepoName, String),
}

fn parse_target(path: &str) -> Result<Target> {
    let rest = match path.strip_prefix("/v2") {
        Some("") | Some("/") => return Ok(Target::Base),
        Some(r) if r.starts_with('/') => &r[1..],
        _ => return Err(not_found(path)),
    };
    if rest == "_catalog" {
        return Ok(Target::Catalog);
    }
    let name = |n: &str| n.parse::<RepoName>().map_err(ApiError::from);
    if let Some(n) = rest
        .strip_suffix("/blobs/uploads")
        .or_else(|| rest.strip_suffix("/blobs/uploads/"))
    {
        return Ok(Target::Uploads(name(n)?, None));
    }
    if let Some(i) = rest.rfind("/blobs/uploads/") {
        return Ok(Target::Uploads(
            name(&rest[..i])?,
            Some(rest[i + 15..].to_string()),
        ));
    }
    if let Some(i) = rest.rfind("/blobs/") {
        return Ok(Target::Blob(name(&rest[..i])?, rest[i + 7..].to_string()));
    }
    if let Some(i) = rest.rfind("/manifests/") {
        return Ok(Target::Manifest(
            name(&rest[..i])?,
            rest[i + 11..].to_string(),
        ));
    }
    if let Some(n) = rest.strip_suffix("/tags/list") {
        return Ok(Target::Tags(name(n)?));
    }
    if let Some(i) = rest.rfind("/referrers/") {
        return Ok(Target::Referrers(
            name(&rest[..i])?,
            rest[i + 11..].to_string(),
        ));
    }
    Err(not_found(path))
}

fn not_found(path: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "NAME_UNKNOWN",
        format!("no registry endpoint at {path}"),
    )
}

fn unsupported(method: &Method) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "UNSUPPORTED",
        format!("{method} is not supported on this endpoint"),
    )
}

/// The query parameters the endpoints read.
#[derive(Default)]
struct Params {
    digest: Option<String>,
    mount: Option<String>,
    from: Option<String>,
    n: Option<usize>,
    last: Option<String>,
    artifact_type: Option<String>,
}

/// Every request: authenticate and authorize from the head alone, then
/// dispatch. The body is read only by the endpoint that takes one, after that,
/// and streamed: a request refused is refused before any of its body is read.
async fn dispatch(
    State(registry): State<Arc<Registry>>,
    Query(params): Query<HashMap<String, String>>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let (method, uri, headers) = (parts.method, parts.uri, parts.headers);
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let principal = match registry.auth.authenticate(authorization) {
        Ok(p) => p,
        Err(message) => return challenge(&registry, &headers, None, message),
    };
    let path = uri.path();
    if path == "/token" {
        return token(&registry, principal, &params);
    }
    if let Some(rest) = path.strip_prefix("/api/v1/") {
        return match browse::handle(&registry, &principal, rest, &params) {
            Ok(r) => r,
            Err(e) => e.into_response(),
        };
    }
    let params = Params {
        digest: params.get("digest").cloned(),
        mount: params.get("mount").cloned(),
        from: params.get("from").cloned(),
        n: params.get("n").and_then(|n| n.parse().ok()),
        last: params.get("last").cloned(),
        artifact_type: params.get("artifactType").cloned(),
    };
    let target = match parse_target(path) {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    if let Err(denied) = authorize(&registry, &principal, &target, &method, &params) {
        return match denied {
            Denied::Unauthenticated(m) => {
                let scope = target_scope(&target, &method);
                challenge(&registry, &headers, scope, m)
            }
            Denied::Forbidden(m) => {
                ApiError::new(StatusCode::FORBIDDEN, "DENIED", m).into_response()
            }
        };
    }
    let changed = match (&target, &method) {
        (Target::Manifest(repo, _), &Method::PUT | &Method::DELETE) => Some(repo.clone()),
        _ => None,
    };
    let response = match handle(&registry, &principal, target, method, params, headers, body).await
    {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    if let Some(repo) = changed
        && response.status().is_success()
    {
        let reg = registry.clone();
        let refreshed =
            tokio::task::spawn_blocking(move || reg.index.refresh(&reg.store, &repo)).await;
        if let Ok(Err(e)) | Err(e) = refreshed.map_err(|e| StoreError::Io(std::io::Error::other(e)))
        {
            tracing::error!("browse index refresh failed: {e}");
        }
    }
    response
}

/// The repository and role a request needs.
fn needs(target: &Target, method: &Method) -> Option<(RepoName, Role)> {
    let write = |m: &Method| match *m {
        Method::GET | Method::HEAD => Role::Pull,
        Method::DELETE => Role::Admin,
        _ => Role::Push,
    };
    match target {
        Target::Base | Target::Catalog => None,
        Target::Uploads(r, _) => Some((r.clone(), Role::Push)),
        Target::Blob(r, _) | Target::Manifest(r, _) => Some((r.clone(), write(method))),
        Target::Tags(r) | Target::Referrers(r, _) => Some((r.clone(), Role::Pull)),
    }
}

fn target_scope(target: &Target, method: &Method) -> Option<String> {
    needs(target, method).map(|(repo, role)| {
        let actions = match role {
            Role::Pull => "pull",
            Role::Push => "pull,push",
            Role::Admin => "pull,push,delete",
        };
        format!("repository:{repo}:{actions}")
    })
}

fn authorize(
    registry: &Registry,
    principal: &Option<Principal>,
    target: &Target,
    method: &Method,
    params: &Params,
) -> std::result::Result<(), Denied> {
    let auth = &registry.auth;
    if !auth.config().enabled {
        return Ok(());
    }
    match needs(target, method) {
        None => match principal {
            // `/v2/` answers 401 without credentials, so clients start the token flow.
            None => Err(Denied::Unauthenticated(
                "authentication required: get an access token from the token endpoint".into(),
            )),
            Some(_) => Ok(()),
        },
        Some((repo, role)) => {
            auth.check(principal, repo.as_str(), role)?;
            // Mounting reads from the source repository.
            if let (Target::Uploads(..), Some(from)) = (target, &params.from) {
                auth.check(principal, from, Role::Pull)?;
            }
            Ok(())
        }
    }
}

/// `401` with the `WWW-Authenticate: Bearer` challenge that starts the token flow.
fn challenge(
    registry: &Registry,
    headers: &HeaderMap,
    scope: Option<String>,
    message: String,
) -> Response {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let config = registry.auth.config();
    let realm = config
        .realm
        .clone()
        .unwrap_or_else(|| format!("http://{host}/token"));
    let mut value = format!("Bearer realm=\"{realm}\",service=\"{}\"", config.service);
    if let Some(scope) = scope {
        value.push_str(&format!(",scope=\"{scope}\""));
    }
    let mut r = ApiError::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", message).into_response();
    r.headers_mut()
        .insert(header::WWW_AUTHENTICATE, header_value(&value));
    r
}

/// The token endpoint: an access token for whoever the credentials name (or an
/// anonymous one). What it may do is checked per request, so the requested scope
/// is not narrowed here.
fn token(
    registry: &Registry,
    principal: Option<Principal>,
    params: &HashMap<String, String>,
) -> Response {
    let _ = params;
    let principal = principal.unwrap_or(Principal::Anonymous);
    let token = registry.auth.issue(principal);
    let ttl = crate::auth::ACCESS_TOKEN_TTL.as_secs();
    json_response(
        StatusCode::OK,
        json!({ "token": token, "access_token": token, "expires_in": ttl }),
    )
}

/// Run blocking storage work off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> std::result::Result<T, StoreError> + Send + 'static,
) -> Result<T> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(ApiError::from),
        Err(e) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "UNKNOWN",
            e.to_string(),
        )),
    }
}

/// The request body as a blocking reader for the store (used on a blocking
/// thread): chunks are read as the store consumes them, so a transfer holds a
/// few buffers, not the body. Past [`MAX_BODY`] bytes it fails with
/// `FileTooLarge` (answered 413); a body cut off fails with
/// `ConnectionAborted` (400).
fn body_reader(body: Body) -> impl Read + Send + 'static {
    let mut seen = 0usize;
    let chunks = body.into_data_stream().map(move |chunk| {
        let chunk = chunk.map_err(|e| {
            io::Error::new(
                io::ErrorKind::ConnectionAborted,
                format!("the request body was cut off: {e}"),
            )
        })?;
        seen += chunk.len();
        if seen > MAX_BODY {
            return Err(io::Error::new(
                io::ErrorKind::FileTooLarge,
                format!(
                    "the request body is larger than the {MAX_BODY}-byte limit; \
                     push large blobs in chunks (PATCH)"
                ),
            ));
        }
        Ok(chunk)
    });
    tokio_util::io::SyncIoBridge::new(tokio_util::io::StreamReader::new(chunks))
}

/// The whole body, when it is at most `limit` bytes (manifests).
async fn small_body(body: Body, limit: usize, what: &str) -> Result<Bytes> {
    axum::body::to_bytes(body, limit).await.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "SIZE_INVALID",
            format!("the {what} is larger than the {limit}-byte limit (or was cut off)"),
        )
    })
}

/// Whom an upload in `repo` belongs to, for the caller `principal`.
fn upload_owner(repo: &RepoName, principal: &Option<Principal>) -> UploadOwner {
    UploadOwner {
        repo: repo.clone(),
        subject: principal
            .as_ref()
            .map_or_else(|| "anonymous".into(), Principal::subject),
    }
}

async fn handle(
    registry: &Arc<Registry>,
    principal: &Option<Principal>,
    target: Target,
    method: Method,
    p: Params,
    headers: HeaderMap,
    body: Body,
) -> Result<Response> {
    let store = registry.store.clone();
    match (target, &method) {
        (Target::Base, &Method::GET | &Method::HEAD) => {
            Ok(json_response(StatusCode::OK, json!({})))
        }
        (Target::Catalog, &Method::GET) => {
            let reg = registry.clone();
            let principal = principal.clone();
            catalog(store, p, move |name| reg.auth.can_pull(&principal, name)).await
        }
        (Target::Blob(repo, d), m) => blob(store, m, repo, &d, &headers).await,
        (Target::Uploads(repo, None), &Method::POST) => {
            let owner = upload_owner(&repo, principal);
            start_upload(store, owner, p, body).await
        }
        (Target::Uploads(repo, Some(id)), m) => {
            let owner = upload_owner(&repo, principal);
            upload(store, m, owner, &id, p, &headers, body).await
        }
        (Target::Manifest(repo, r), m) => manifest(store, m, repo, &r, &headers, body).await,
        (Target::Tags(repo), &Method::GET) => tags(store, repo, p).await,
        (Target::Referrers(repo, d), &Method::GET) => referrers(store, repo, &d, p).await,
        (_, m) => Err(unsupported(m)),
    }
}

fn json_response(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

fn header_value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

fn with_headers(status: StatusCode, pairs: &[(&'static str, String)], body: Bytes) -> Response {
    let mut r = (status, body).into_response();
    for (k, v) in pairs {
        r.headers_mut().insert(*k, header_value(v));
    }
    r
}

async fn blob(
    store: Store,
    method: &Method,
    repo: RepoName,
    digest: &str,
    headers: &HeaderMap,
) -> Result<Response> {
    // Blobs are stored once for the whole registry (content-addressed) and served
    // through a repository only when linked to it (uploaded, mounted or a manifest).
    let digest: Digest = digest.parse()?;
    let (s, r, d) = (store.clone(), repo.clone(), digest.clone());
    let size = blocking(move || s.repo_blob_size(&r, &d)).await?;
    let Some(size) = size else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "BLOB_UNKNOWN",
            format!("{repo} has no blob {digest}"),
        ));
    };
    match *method {
        Method::HEAD => {
            let mut r = with_headers(
                StatusCode::OK,
                &[
                    ("docker-content-digest", digest.to_string()),
                    ("content-type", "application/octet-stream".into()),
                ],
                Bytes::new(),
            );
            r.headers_mut()
                .insert(header::CONTENT_LENGTH, header_value(&size.to_string()));
            Ok(r)
        }
        Method::GET => {
            let mut pairs = vec![
                ("docker-content-digest", digest.to_string()),
                ("content-type", "application/octet-stream".to_string()),
            ];
            let (status, start, len) =
                match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
                    Some(range) => {
                        let (start, end) = parse_range(range, size).ok_or_else(|| {
                            ApiError::new(
                                StatusCode::RANGE_NOT_SATISFIABLE,
                                "BLOB_UNKNOWN",
                                format!("range `{range}` is not within the blob's {size} bytes"),
                            )
                        })?;
                        pairs.push(("content-range", format!("bytes {start}-{end}/{size}")));
                        (StatusCode::PARTIAL_CONTENT, start, end - start + 1)
                    }
                    None => (StatusCode::OK, 0, size),
                };
            let d = digest.clone();
            let file = blocking(move || store.open_blob(&d)).await?;
            let mut r = (status, stream_file(file, start, len).await?).into_response();
            for (k, v) in &pairs {
                r.headers_mut().insert(*k, header_value(v));
            }
            r.headers_mut()
                .insert(header::CONTENT_LENGTH, header_value(&len.to_string()));
            Ok(r)
        }
        Method::DELETE => {
            blocking(move || store.unlink_blob(&repo, &digest)).await?;
            Ok(StatusCode::ACCEPTED.into_response())
        }
        ref m => Err(unsupported(m)),
    }
}

/// A body of `len` bytes of `file` from byte `start`, read as the client takes
/// them (one buffer per transfer, never the blob).
async fn stream_file(file: std::fs::File, start: u64, len: u64) -> Result<Body> {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let mut file = tokio::fs::File::from_std(file);
    file.seek(io::SeekFrom::Start(start))
        .await
        .map_err(StoreError::Io)?;
    let reader = file.take(len);
    Ok(Body::from_stream(
        tokio_util::io::ReaderStream::with_capacity(reader, 64 * 1024),
    ))
}

/// `bytes=a-b`, `bytes=a-`, `bytes=-n` within `len`; inclusive bounds.
fn parse_range(range: &str, len: u64) -> Option<(u64, u64)> {
    let spec = range.strip_prefix("bytes=")?;
    let (a, b) = spec.split_once('-')?;
    let (start, end) = match (a.trim(), b.trim()) {
        ("", n) => {
            let n: u64 = n.parse().ok()?;
            (len.checked_sub(n)?, len.checked_sub(1)?)
        }
        (a, "") => (a.parse().ok()?, len.checked_sub(1)?),
        (a, b) => (
            a.parse().ok()?,
            b.parse::<u64>().ok()?.min(len.checked_sub(1)?),
        ),
    };
    (start <= end && end < len).then_some((start, end))
}

fn upload_location(repo: &RepoName, id: &UploadId) -> String {
    format!("/v2/{repo}/blobs/uploads/{}", id.as_str())
}

fn blob_created(repo: &RepoName, digest: &Digest) -> Response {
    with_headers(
        StatusCode::CREATED,
        &[
            ("location", format!("/v2/{repo}/blobs/{digest}")),
            ("docker-content-digest", digest.to_string()),
        ],
        Bytes::new(),
    )
}

async fn start_upload(store: Store, owner: UploadOwner, p: Params, body: Body) -> Result<Response> {
    let repo = owner.repo.clone();
    if let Some(mount) = &p.mount {
        let digest: Digest = mount.parse()?;
        if let Some(from) = &p.from {
            // Mount only from a repository that has the blob (and that the caller
            // may pull from, checked before dispatch).
            let from: RepoName = from.parse()?;
            let (d, s, r) = (digest.clone(), store.clone(), repo.clone());
            let mounted = blocking(move || {
                if s.repo_blob_size(&from, &d)?.is_some() {
                    s.link_blob(&r, &d)?;
                    Ok(true)
                } else {
                    Ok(false)
                }
            })
            .await?;
            if mounted {
                return Ok(blob_created(&repo, &digest));
            }
        }
        // Not mountable: fall through to a new session, as the spec allows.
    }
    if let Some(d) = &p.digest {
        let digest: Digest = d.parse()?;
        let (dd, r) = (digest.clone(), repo.clone());
        let data = body_reader(body);
        blocking(move || {
            store.put_blob(&dd, data)?;
            store.link_blob(&r, &dd)
        })
        .await?;
        return Ok(blob_created(&repo, &digest));
    }
    let id = blocking(move || store.start_upload(&owner)).await?;
    Ok(with_headers(
        StatusCode::ACCEPTED,
        &[
            ("location", upload_location(&repo, &id)),
            ("docker-upload-uuid", id.as_str().to_string()),
            ("range", "0-0".into()),
        ],
        Bytes::new(),
    ))
}

fn progress(repo: &RepoName, id: &UploadId, size: u64, status: StatusCode) -> Response {
    let range = if size == 0 {
        "0-0".to_string()
    } else {
        format!("0-{}", size - 1)
    };
    with_headers(
        status,
        &[
            ("location", upload_location(repo, id)),
            ("docker-upload-uuid", id.as_str().to_string()),
            ("range", range),
        ],
        Bytes::new(),
    )
}

async fn upload(
    store: Store,
    method: &Method,
    owner: UploadOwner,
    id: &str,
    p: Params,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response> {
    let id = UploadId::parse(id)?;
    let repo = owner.repo.clone();
    match *method {
        Method::GET => {
            let i = id.clone();
            let size = blocking(move || store.upload_size(&i, &owner)).await?;
            Ok(progress(&repo, &id, size, StatusCode::NO_CONTENT))
        }
        Method::PATCH => {
            let start = match headers
                .get(header::CONTENT_RANGE)
                .and_then(|v| v.to_str().ok())
            {
                Some(r) => Some(
                    r.trim_start_matches("bytes ")
                        .split('-')
                        .next()
                        .and_then(|s| s.trim().parse::<u64>().ok())
                        .ok_or_else(|| {
                            ApiError::new(
                                StatusCode::BAD_REQUEST,
                                "BLOB_UPLOAD_INVALID",
                                format!("Content-Range `{r}` is not `<start>-<end>`"),
                            )
                        })?,
                ),
                None => None,
            };
            let i = id.clone();
            let data = body_reader(body);
            let size = blocking(move || store.append_upload(&i, &owner, start, data)).await?;
            Ok(progress(&repo, &id, size, StatusCode::ACCEPTED))
        }
        Method::PUT => {
            let digest: Digest = p
                .digest
                .as_deref()
                .ok_or_else(|| {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "DIGEST_INVALID",
                        "closing an upload needs `?digest=sha256:…`",
                    )
                })?
                .parse()?;
            let (i, d, r) = (id.clone(), digest.clone(), repo.clone());
            let data = body_reader(body);
            blocking(move || {
                store.append_upload(&i, &owner, None, data)?;
                store.finish_upload(&i, &owner, &d)?;
                store.link_blob(&r, &d)
            })
            .await?;
            Ok(blob_created(&repo, &digest))
        }
        Method::DELETE => {
            blocking(move || store.cancel_upload(&id, &owner)).await?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        ref m => Err(unsupported(m)),
    }
}

fn manifest_invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "MANIFEST_INVALID", message)
}

async fn manifest(
    store: Store,
    method: &Method,
    repo: RepoName,
    reference: &str,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response> {
    let reference: Reference = reference.parse()?;
    match *method {
        Method::GET | Method::HEAD => {
            let (s, r, rf) = (store, repo.clone(), reference.clone());
            let m = blocking(move || s.manifest(&r, &rf))
                .await?
                .ok_or_else(|| {
                    ApiError::new(
                        StatusCode::NOT_FOUND,
                        "MANIFEST_UNKNOWN",
                        format!("{repo} has no manifest {}", describe(&reference)),
                    )
                })?;
            let len = m.bytes.len();
            let body = if *method == Method::HEAD {
                Bytes::new()
            } else {
                Bytes::from(m.bytes)
            };
            let mut r = with_headers(
                StatusCode::OK,
                &[
                    ("content-type", m.media_type),
                    ("docker-content-digest", m.digest.to_string()),
                ],
                body,
            );
            r.headers_mut()
                .insert(header::CONTENT_LENGTH, header_value(&len.to_string()));
            Ok(r)
        }
        Method::PUT => {
            let body = small_body(body, MAX_MANIFEST, "manifest").await?;
            put_manifest(store, repo, reference, headers, body).await
        }
        Method::DELETE => {
            let (s, r) = (store, repo.clone());
            let existed = match &reference {
                Reference::Tag(t) => {
                    let t = t.clone();
                    blocking(move || s.delete_tag(&r, &t)).await?
                }
                Reference::Digest(d) => {
                    let d = d.clone();
                    blocking(move || s.delete_manifest(&r, &d)).await?
                }
            };
            if existed {
                Ok(StatusCode::ACCEPTED.into_response())
            } else {
                Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    "MANIFEST_UNKNOWN",
                    format!("{repo} has no manifest {}", describe(&reference)),
                ))
            }
        }
        ref m => Err(unsupported(m)),
    }
}

fn describe(r: &Reference) -> String {
    match r {
        Reference::Tag(t) => format!("tagged `{t}`"),
        Reference::Digest(d) => d.to_string(),
    }
}

async fn put_manifest(
    store: Store,
    repo: RepoName,
    reference: Reference,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response> {
    if body.len() > MAX_MANIFEST {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "SIZE_INVALID",
            format!(
                "manifest of {} bytes is larger than the {MAX_MANIFEST}-byte limit",
                body.len()
            ),
        ));
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.split(';').next().unwrap_or(s).trim().to_string());
    let doc: Value = serde_json::from_slice(&body)
        .map_err(|e| manifest_invalid(format!("manifest is not JSON: {e}")))?;
    let declared = doc
        .get("mediaType")
        .and_then(Value::as_str)
        .map(str::to_string);
    let media_type = match (&content_type, &declared) {
        (Some(ct), Some(mt)) if ct != mt => {
            return Err(manifest_invalid(format!(
                "Content-Type `{ct}` differs from the manifest's mediaType `{mt}`"
            )));
        }
        (Some(ct), _) => ct.clone(),
        (None, Some(mt)) => mt.clone(),
        (None, None) => {
            return Err(manifest_invalid(
                "no Content-Type header and no mediaType in the manifest",
            ));
        }
    };

    // Everything the manifest references must already be here.
    let mut blobs = Vec::new();
    if let Some(cfg) = doc.get("config") {
        blobs.push(descriptor_digest(cfg, "config")?);
    }
    blobs.extend(list_digests(&doc, "layers")?);
    let children = list_digests(&doc, "manifests")?;
    let subject = doc
        .get("subject")
        .map(|s| descriptor_digest(s, "subject"))
        .transpose()?;
    let artifact_type = doc
        .get("artifactType")
        .and_then(Value::as_str)
        .or_else(|| doc.pointer("/config/mediaType").and_then(Value::as_str))
        .map(str::to_string);
    let annotations = doc.get("annotations").cloned();

    let (s, r) = (store, repo.clone());
    let size = body.len();
    let mt = media_type.clone();
    let digest = blocking(move || {
        for d in &blobs {
            if s.repo_blob_size(&r, d)?.is_none() {
                return Err(StoreError::BlobUnknown(d.clone()));
            }
        }
        for d in &children {
            if s.resolve(&r, &Reference::Digest(d.clone()))?.is_none() {
                return Err(StoreError::BlobUnknown(d.clone()));
            }
        }
        let digest = s.put_manifest(&r, &reference, &mt, &body)?;
        if let Some(subject) = &subject {
            let mut desc = json!({ "mediaType": mt, "digest": digest.to_string(), "size": size });
            if let Some(at) = &artifact_type {
                desc["artifactType"] = json!(at);
            }
            if let Some(a) = &annotations {
                desc["annotations"] = a.clone();
            }
            s.add_referrer(&r, subject, &digest, desc.to_string().as_bytes())?;
        }
        Ok((digest, subject))
    })
    .await
    .map_err(|e| match e.code {
        "BLOB_UNKNOWN" => ApiError::new(
            StatusCode::BAD_REQUEST,
            "MANIFEST_BLOB_UNKNOWN",
            format!(
                "the manifest references content this repository lacks: {}",
                e.message
            ),
        ),
        _ => e,
    })?;
    let (digest, subject) = digest;
    let mut pairs = vec![
        ("location", format!("/v2/{repo}/manifests/{digest}")),
        ("docker-content-digest", digest.to_string()),
    ];
    if let Some(subject) = subject {
        pairs.push(("oci-subject", subject.to_string()));
    }
    Ok(with_headers(StatusCode::CREATED, &pairs, Bytes::new()))
}

/// The digests of the descriptors in the array `field` (absent means none).
fn list_digests(doc: &Value, field: &str) -> Result<Vec<Digest>> {
    let items = doc
        .get(field)
        .and_then(Value::as_array)
        .into_iter()
        .flatten();
    items
        .enumerate()
        .map(|(i, d)| descriptor_digest(d, &format!("{field}[{i}]")))
        .collect()
}

fn descriptor_digest(desc: &Value, what: &str) -> Result<Digest> {
    let d = desc
        .get("digest")
        .and_then(Value::as_str)
        .ok_or_else(|| manifest_invalid(format!("{what} has no digest")))?;
    d.parse()
        .map_err(|_| manifest_invalid(format!("{what} has an invalid digest `{d}`")))
}

fn next_link(path: &str, n: usize, last: &str) -> String {
    format!("<{path}?n={n}&last={last}>; rel=\"next\"")
}

/// A listing page: `names` were fetched with `n + 1` entries so that the presence of
/// a next page is known; answer with at most `n` and a `Link` to the rest.
fn page(
    mut names: Vec<String>,
    n: Option<usize>,
    path: &str,
    body: impl FnOnce(&[String]) -> Value,
) -> Response {
    let more = n.is_some_and(|n| names.len() > n);
    if let Some(n) = n {
        names.truncate(n);
    }
    let mut r = json_response(StatusCode::OK, body(&names));
    if let (true, Some(n), Some(last)) = (more, n, names.last()) {
        r.headers_mut()
            .insert(header::LINK, header_value(&next_link(path, n, last)));
    }
    r
}

async fn tags(store: Store, repo: RepoName, p: Params) -> Result<Response> {
    let (r, last, n) = (repo.clone(), p.last.clone(), p.n);
    let tags = blocking(move || store.tags(&r, last.as_deref(), n.map(|n| n + 1))).await?;
    let names = tags.iter().map(|t| t.to_string()).collect();
    let path = format!("/v2/{repo}/tags/list");
    Ok(page(
        names,
        n,
        &path,
        |names| json!({ "name": repo.to_string(), "tags": names }),
    ))
}

async fn catalog(store: Store, p: Params, visible: impl Fn(&str) -> bool) -> Result<Response> {
    let last = p.last.clone();
    let n = p.n;
    let repos = blocking(move || store.catalog(last.as_deref(), None)).await?;
    let mut names: Vec<String> = repos
        .iter()
        .map(|r| r.to_string())
        .filter(|r| visible(r))
        .collect();
    if let Some(n) = n {
        names.truncate(n + 1);
    }
    Ok(page(
        names,
        n,
        "/v2/_catalog",
        |names| json!({ "repositories": names }),
    ))
}

async fn referrers(store: Store, repo: RepoName, subject: &str, p: Params) -> Result<Response> {
    let subject: Digest = subject.parse()?;
    let descs = blocking(move || store.referrers(&repo, &subject)).await?;
    let mut manifests: Vec<Value> = descs
        .iter()
        .filter_map(|d| serde_json::from_slice(d).ok())
        .collect();
    let filtered = p.artifact_type.is_some();
    if let Some(at) = &p.artifact_type {
        manifests.retain(|m| m.get("artifactType").and_then(Value::as_str) == Some(at));
    }
    let index = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": manifests,
    });
    let mut r = (StatusCode::OK, Bytes::from(index.to_string())).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/vnd.oci.image.index.v1+json"),
    );
    if filtered {
        r.headers_mut().insert(
            "oci-filters-applied",
            HeaderValue::from_static("artifactType"),
        );
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_within_bounds() {
        assert_eq!(parse_range("bytes=0-3", 10), Some((0, 3)));
        assert_eq!(parse_range("bytes=5-", 10), Some((5, 9)));
        assert_eq!(parse_range("bytes=-3", 10), Some((7, 9)));
        assert_eq!(parse_range("bytes=8-100", 10), Some((8, 9)));
        assert_eq!(parse_range("bytes=10-12", 10), None);
        assert_eq!(parse_range("bytes=4-2", 10), None);
        assert_eq!(parse_range("items=0-1", 10), None);
    }

    #[test]
    fn paths_split_at_the_last_marker() {
        assert!(matches!(parse_target("/v2/").unwrap(), Target::Base));
        assert!(matches!(
            parse_target("/v2/_catalog").unwrap(),
            Target::Catalog
        ));
        match parse_target("/v2/acme/blobs/tool/blobs/sha256:abc").unwrap() {
            Target::Blob(r, d) => {
                assert_eq!((r.as_str(), d.as_str()), ("acme/blobs/tool", "sha256:abc"))
            }
            _ => panic!(),
        }
        match parse_target("/v2/a/b/manifests/1.0").unwrap() {
            Target::Manifest(r, t) => assert_eq!((r.as_str(), t.as_str()), ("a/b", "1.0")),
            _ => panic!(),
        }
        assert!(matches!(
            parse_target("/v2/a/blobs/uploads/").unwrap(),
            Target::Uploads(_, None)
        ));
        assert!(matches!(
            parse_target("/v2/a/tags/list").unwrap(),
            Target::Tags(_)
        ));
        assert_eq!(
            parse_target("/v2/A/tags/list").err().unwrap().code,
            "NAME_INVALID"
        );
        assert_eq!(
            parse_target("/v2/../x/tags/list").err().unwrap().code,
            "NAME_INVALID"
        );
    }
}
