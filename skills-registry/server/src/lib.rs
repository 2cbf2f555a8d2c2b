//! tack's OCI Distribution Spec v1.1 registry server.
//!
//! Endpoints (all under `/v2/`): the API check; blobs (HEAD, GET with `Range`,
//! DELETE); uploads (monolithic `POST ?digest=`, chunked `POST`/`PATCH`/`PUT`,
//! status `GET`, cancel `DELETE`, cross-repository `POST ?mount=&from=`); manifests
//! (PUT/GET/HEAD/DELETE by tag or digest, with referenced blobs checked and
//! `subject` recorded for the referrers API); tag listing and the catalog with
//! `n`/`last` paging and `Link` headers; referrers with `artifactType` filtering.
//! Errors use the spec's codes in its JSON error body.
//!
//! Storage is [`tack_registry_store::Store`]: every byte is verified against its
//! digest before it becomes visible. Not yet here: token auth and roles, the browse
//! API, streaming bodies (request bodies are buffered, up to [`MAX_BODY`]).

mod error;
mod routes;

pub use error::ApiError;
pub use routes::router;

use tack_registry_store::Store;
use tokio::net::TcpListener;

/// Largest request body accepted (a monolithic upload, a chunk or a manifest).
pub const MAX_BODY: usize = 512 * 1024 * 1024;

/// Largest manifest accepted, as the distribution spec suggests.
pub const MAX_MANIFEST: usize = 4 * 1024 * 1024;

/// Serve the registry on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, store: Store) -> std::io::Result<()> {
    axum::serve(listener, router(store)).await
}
