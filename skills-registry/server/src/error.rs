//! Errors in the distribution spec's JSON shape.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tack_registry_store::StoreError;

/// An API error: HTTP status, spec error code, and a message saying what was wrong.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Spec error code, e.g. `BLOB_UNKNOWN`.
    pub code: &'static str,
    /// Human-readable message.
    pub message: String,
}

impl ApiError {
    /// An error with `status`, `code` and `message`.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        let (status, code) = match &e {
            StoreError::InvalidDigest(_) | StoreError::DigestMismatch { .. } => {
                (StatusCode::BAD_REQUEST, "DIGEST_INVALID")
            }
            StoreError::InvalidName(_) => (StatusCode::BAD_REQUEST, "NAME_INVALID"),
            StoreError::InvalidTag(_) => (StatusCode::BAD_REQUEST, "MANIFEST_INVALID"),
            StoreError::BlobUnknown(_) => (StatusCode::NOT_FOUND, "BLOB_UNKNOWN"),
            StoreError::UploadUnknown(_) => (StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN"),
            StoreError::RangeMismatch { .. } => {
                (StatusCode::RANGE_NOT_SATISFIABLE, "BLOB_UPLOAD_INVALID")
            }
            // The request body's own failures (see `routes::body_reader`).
            StoreError::Io(e) if e.kind() == std::io::ErrorKind::FileTooLarge => {
                (StatusCode::PAYLOAD_TOO_LARGE, "SIZE_INVALID")
            }
            StoreError::Io(e) if e.kind() == std::io::ErrorKind::ConnectionAborted => {
                (StatusCode::BAD_REQUEST, "BLOB_UPLOAD_INVALID")
            }
            StoreError::Io(_) => (StatusCode::INTERNAL_SERVER_ERROR, "UNKNOWN"),
        };
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!("registry storage error: {e}");
        }
        ApiError::new(status, code, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "errors": [{ "code": self.code, "message": self.message }]
        });
        (self.status, axum::Json(body)).into_response()
    }
}
