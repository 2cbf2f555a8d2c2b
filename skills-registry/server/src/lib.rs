//! tack's registry server: the OCI Distribution Spec v1.1 API, token auth with a
//! role per namespace, and a JSON browse API over an index of tack artifacts.
//!
//! Distribution endpoints (all under `/v2/`): the API check; blobs (HEAD, GET with
//! `Range`, DELETE); uploads (monolithic `POST ?digest=`, chunked `POST`/`PATCH`/`PUT`,
//! status `GET`, cancel `DELETE`, cross-repository `POST ?mount=&from=`); manifests
//! (PUT/GET/HEAD/DELETE by tag or digest, with referenced blobs checked and
//! `subject` recorded for the referrers API); tag listing and the catalog with
//! `n`/`last` paging and `Link` headers; referrers with `artifactType` filtering.
//! Errors use the spec's codes in its JSON error body.
//!
//! [`auth`]: registry tokens, roles, the `/token` endpoint. [`browse`]: `/api/v1/`
//! (documented in docs/registry.md), served from [`index::Index`].
//!
//! Storage is [`tack_registry_store::Store`]: every byte is verified against its
//! digest before it becomes visible. A request is authenticated and authorized
//! from its head before any of its body is read; uploads stream to disk while
//! they are hashed (up to [`MAX_BODY`] per request) and blobs stream from disk,
//! so a transfer holds a few buffers, whatever the blob's size. An upload
//! session belongs to the repository and the token that started it.

pub mod auth;
mod browse;
mod error;
pub mod index;
mod routes;

pub use auth::{AuthConfig, Role};
pub use error::ApiError;
pub use routes::router;

use std::sync::Arc;
use tack_registry_store::{Store, StoreError};
use tokio::net::TcpListener;

/// Largest request body accepted (a monolithic upload or a chunk; streamed,
/// never held in memory).
pub const MAX_BODY: usize = 512 * 1024 * 1024;

/// Largest manifest accepted, as the distribution spec suggests.
pub const MAX_MANIFEST: usize = 4 * 1024 * 1024;

/// A registry: its store, access policy and browse index.
pub struct Registry {
    store: Store,
    auth: auth::Auth,
    index: index::Index,
}

impl Registry {
    /// A registry over `store` with access policy `auth`; builds the browse index.
    pub fn new(store: Store, auth: AuthConfig) -> Result<Arc<Registry>, StoreError> {
        let index = index::Index::build(&store)?;
        Ok(Arc::new(Registry {
            store,
            auth: auth::Auth::new(auth),
            index,
        }))
    }

    /// A registry where everyone may do everything (tests, loopback-only use).
    pub fn unauthenticated(store: Store) -> Result<Arc<Registry>, StoreError> {
        Registry::new(store, AuthConfig::disabled())
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The browse index.
    pub fn index(&self) -> &index::Index {
        &self.index
    }
}

/// Serve `registry` on `listener` until the task is dropped, within `limits`
/// on connections and header time ([`tack_serve::Limits::default`] unless the
/// operator says otherwise).
pub async fn serve(
    listener: TcpListener,
    registry: Arc<Registry>,
    limits: tack_serve::Limits,
) -> std::io::Result<()> {
    tack_serve::serve(listener, router(registry), limits).await
}
