//! The node's local HTTP API: what an organisation's own tools (SIEM, firewall, scripts)
//! use to publish and to ask "do we know these values?".
//!
//! Every route but `/healthz`, `/readyz` and the OpenAPI document needs a bearer token
//! from the configuration (TAXII's also take it as a basic-auth password), compared in
//! constant time. A token is full (`api.tokens`) or read-only (`api.read_tokens`, for
//! dashboards and the web console): [`ROUTES`] and [`taxii::ROUTES`] say which routes
//! write, and those refuse a read token. The `Access` a request was granted rides in its
//! extensions for the handlers. Errors come from one [`ApiError`] type that maps to status
//! codes in one place: 400 for a body that is not JSON, 401 for a missing or wrong token,
//! 403 for a request from another origin's page or a write with a read token, 413 for a
//! body or value list over the limit, 415 for a write of the wrong media type, 422 for
//! JSON that breaks a rule (it names the value and why), 500/503 for the node's own
//! failures. The API depends on the store and the network [`Client`](crate::network::Client) only.
//!
//! The MISP feed under `/misp/feed/` (`misp_feed`) authenticates on its own: it also
//! takes MISP's bare `Authorization: <token>` and feed tokens (`api.feed_tokens`), which
//! every other route refuses 403.

pub mod archive;
mod auth;
mod charter;
mod entries;
mod error;
mod exchange;
mod guard;
mod lookup;
mod misp_feed;
mod peers;
mod prometheus;
mod publish;
pub mod ready;
mod router;
mod state;
mod status;
pub mod taxii;
mod ui;
mod warninglists;

pub use charter::CharterFile;
pub use entries::MAX_ENTRIES_PAGE;
pub use error::ApiError;
pub use guard::ApiLimits;
pub use misp_feed::FeedToken;
pub use router::{ROUTES, Route, router, serve};
pub use state::{ApiState, keep_console_activity, keep_misp_feed_index, keep_taxii_index};

use axum::http::StatusCode;
// For the handlers below: one JSON body reader, one status mapping, one reading of the
// store for status, metrics and the console.
use error::Body;
pub(crate) use error::store_status;
use router::client_address;
use status::StoreReading;

/// The OpenAPI 3.0 description of these routes.
pub const OPENAPI: &str = include_str!("openapi.json");

/// What an authenticated request may do, by the kind of token it presented. Handlers
/// find it in the request's extensions (`Extension<Access>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// A read token (`api.read_tokens`): every route that writes refuses it.
    Read,
    /// A full token (`api.tokens`): reads and writes.
    Write,
}

/// Largest request body: a bulk lookup of 100,000 values or a publish of tens of thousands
/// of indicators fits.
pub const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;
/// Most values one bulk lookup may ask about.
pub const MAX_LOOKUP_VALUES: usize = 100_000;

/// Runs store work off the async threads, in the request's span (the node's).
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(work))
        .await
        .map_err(|error| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, error.to_string()))
}

#[cfg(test)]
mod tests;
