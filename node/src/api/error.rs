//! Error answers: [`ApiError`], a status and a message, and the one place that maps store,
//! client and JSON failures to HTTP status codes.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::network::ClientError;
use crate::store::StoreError;

/// An error answer: a status and a message naming the problem.
#[derive(Debug)]
pub struct ApiError {
    pub(super) status: StatusCode,
    pub(super) message: String,
}

impl ApiError {
    pub(super) fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        #[derive(Serialize)]
        struct Body {
            error: String,
        }
        let mut response = (
            self.status,
            Json(Body {
                error: self.message,
            }),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> ApiError {
        let status = store_status(&error);
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(%error, "store failed while serving the API");
        }
        ApiError::new(status, format!("storage: {error}"))
    }
}

/// The HTTP status for a store failure: a full disk is 507 (the request was fine and may
/// be sent again once space is freed), a store that refuses writes after a failure is
/// 503, anything else 500. The store logs the first two itself, once.
pub(crate) fn store_status(error: &StoreError) -> StatusCode {
    match error {
        StoreError::DiskFull { .. } => StatusCode::INSUFFICIENT_STORAGE,
        StoreError::Poisoned => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<ClientError> for ApiError {
    fn from(error: ClientError) -> ApiError {
        let status = match &error {
            ClientError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ClientError::NodeStopped => StatusCode::SERVICE_UNAVAILABLE,
            ClientError::Store(error) => store_status(error),
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, error.to_string())
    }
}

/// A refused publish is the caller's (422), a node that may not publish is 403, a store
/// failure as `store_status` says, the network as [`ClientError`]s are; a publishing
/// task that failed is this node's bug, 500.
impl From<crate::publish::Error> for ApiError {
    fn from(error: crate::publish::Error) -> ApiError {
        use crate::publish::Error;
        let error = match error {
            Error::Network(error) => return ApiError::from(error),
            error => error,
        };
        let status = match &error {
            refused if refused.is_refused() => StatusCode::UNPROCESSABLE_ENTITY,
            Error::NotAuthorised(_) => StatusCode::FORBIDDEN,
            Error::Store(error) => store_status(error),
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, error.to_string())
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> ApiError {
        // axum tells syntax errors (400) from shape and value errors (422), with a message
        // that names the field and, for indicator values, the value and why.
        ApiError::new(rejection.status(), rejection.body_text())
    }
}

/// `Json` whose rejections are [`ApiError`]s.
pub(super) struct Body<T>(pub(super) T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Body<T>, ApiError> {
        let Json(value) = Json::<T>::from_request(request, state).await?;
        Ok(Body(value))
    }
}
