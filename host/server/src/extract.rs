//! The request body and query as handlers take them: axum's extractors, with
//! their rejections (a body over the limit, a malformed query) answered in the
//! API's JSON error shape instead of plain text.

use crate::error::ApiError;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

/// Most bytes of a request body (an agent file, a user event, a secret).
pub(crate) const MAX_BODY: usize = 2 * 1024 * 1024;

/// The whole request body, at most [`MAX_BODY`] bytes.
pub(crate) struct Body(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        Bytes::from_request(req, state)
            .await
            .map(Body)
            .map_err(|r| {
                if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "payload_too_large",
                        format!("the request body is larger than the {MAX_BODY}-byte limit"),
                    )
                } else {
                    ApiError::new(r.status(), "invalid_request", r.body_text())
                }
            })
    }
}

/// The query string, parsed as `T`.
pub(crate) struct Params<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(t)| Params(t))
            .map_err(|r| {
                ApiError::bad_request(format!(
                    "the query string is not valid: {}",
                    crate::error::clip(&r.body_text())
                ))
            })
    }
}
