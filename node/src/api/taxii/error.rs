//! [`TaxiiError`]: TAXII's error message resource with its HTTP status, and how store and
//! API errors become one.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::media::taxii_json;
use crate::store::StoreError;

/// A TAXII error message resource with its HTTP status.
#[derive(Debug)]
pub(crate) struct TaxiiError {
    status: StatusCode,
    title: &'static str,
    description: String,
}

impl TaxiiError {
    pub(crate) fn new(
        status: StatusCode,
        title: &'static str,
        description: impl Into<String>,
    ) -> TaxiiError {
        TaxiiError {
            status,
            title,
            description: description.into(),
        }
    }

    pub(super) fn not_found(what: impl Into<String>) -> TaxiiError {
        TaxiiError::new(StatusCode::NOT_FOUND, "Not found", what)
    }

    pub(super) fn bad_request(what: impl Into<String>) -> TaxiiError {
        TaxiiError::new(StatusCode::BAD_REQUEST, "Bad request", what)
    }
}

impl IntoResponse for TaxiiError {
    fn into_response(self) -> Response {
        let body = json!({
            "title": self.title,
            "description": self.description,
            "http_status": self.status.as_u16().to_string(),
        });
        let mut response = taxii_json(self.status, &body);
        if self.status == StatusCode::UNAUTHORIZED {
            let headers = response.headers_mut();
            headers.append(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"threatmesh\""),
            );
            headers.append(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<StoreError> for TaxiiError {
    fn from(error: StoreError) -> TaxiiError {
        let status = crate::api::store_status(&error);
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(%error, "store failed while serving TAXII");
        }
        TaxiiError::new(status, "Storage failure", error.to_string())
    }
}

impl From<crate::api::ApiError> for TaxiiError {
    fn from(error: crate::api::ApiError) -> TaxiiError {
        TaxiiError::new(error.status, "Request failed", error.message)
    }
}
