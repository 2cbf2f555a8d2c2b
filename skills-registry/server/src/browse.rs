//! The browse API (`/api/v1/`), documented in docs/registry.md. Every answer comes
//! from the in-memory [`crate::index::Index`]; listings show only packages the
//! caller may pull.

use crate::auth::Principal;
use crate::index::{Package, VersionEntry};
use crate::{ApiError, Registry};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::collections::HashMap;
use tack_artifact::Kind;

const DEFAULT_PAGE: usize = 50;
const MAX_PAGE: usize = 1000;

fn not_found(message: String) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "NAME_UNKNOWN", message)
}

fn bad(message: String) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "UNSUPPORTED", message)
}

fn summary(p: &Package) -> Value {
    let latest = p.latest();
    json!({
        "name": p.name,
        "kind": latest.meta.kind,
        "latest": latest.meta.version,
        "description": latest.meta.description,
        "signed": latest.signature.status == "signed",
        "signer": latest.signature.signer,
        "tools": latest.meta.tools.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
        "versions": p.versions.len(),
    })
}

fn version(v: &VersionEntry) -> Value {
    serde_json::to_value(v).expect("entries serialize")
}

/// Answer a browse request for `rest` (the path after `/api/v1/`).
pub(crate) fn handle(
    registry: &Registry,
    principal: &Option<Principal>,
    rest: &str,
    params: &HashMap<String, String>,
) -> Result<Response, ApiError> {
    let auth = &registry.auth;
    if rest == "packages" || rest == "packages/" {
        let kind = params
            .get("kind")
            .map(|k| k.parse::<Kind>())
            .transpose()
            .map_err(bad)?;
        let n = match params.get("n") {
            Some(n) => n
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=MAX_PAGE).contains(n))
                .ok_or_else(|| bad(format!("`n={n}` is not a page size from 1 to {MAX_PAGE}")))?,
            None => DEFAULT_PAGE,
        };
        let q = params
            .get("q")
            .map(String::as_str)
            .filter(|q| !q.is_empty());
        let (packages, more) =
            registry
                .index
                .list(q, kind, params.get("last").map(String::as_str), n, |name| {
                    auth.can_pull(principal, name)
                });
        let next = match (more, packages.last()) {
            (true, Some(last)) => {
                let mut url = format!("/api/v1/packages?n={n}&last={}", last.name);
                if let Some(q) = q {
                    url.push_str(&format!("&q={}", encode(q)));
                }
                if let Some(k) = kind {
                    url.push_str(&format!("&kind={k}"));
                }
                Some(url)
            }
            _ => None,
        };
        let body = json!({
            "packages": packages.iter().map(summary).collect::<Vec<_>>(),
            "next": next,
        });
        let mut r = (StatusCode::OK, axum::Json(body)).into_response();
        if let Some(next) = next
            && let Ok(v) = format!("<{next}>; rel=\"next\"").parse()
        {
            r.headers_mut().insert(header::LINK, v);
        }
        return Ok(r);
    }
    let Some(path) = rest.strip_prefix("packages/") else {
        return Err(not_found(format!(
            "no browse endpoint /api/v1/{rest}; see docs/registry.md"
        )));
    };
    let (name, wanted) = match path.rfind("/versions/") {
        Some(i) => (&path[..i], Some(&path[i + 10..])),
        None => (path, None),
    };
    let unknown = || not_found(format!("no package `{name}` in this registry"));
    if !auth.can_pull(principal, name) {
        return Err(unknown());
    }
    let package = registry.index.package(name).ok_or_else(unknown)?;
    let body = match wanted {
        None => {
            let mut s = summary(&package);
            s["versions"] = Value::Array(package.versions.iter().map(version).collect());
            s
        }
        Some(v) => {
            let entry = package
                .versions
                .iter()
                .find(|e| e.meta.version == v)
                .ok_or_else(|| not_found(format!("package `{name}` has no version `{v}`")))?;
            let mut body = version(entry);
            body["name"] = json!(name);
            body
        }
    };
    Ok((StatusCode::OK, axum::Json(body)).into_response())
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
