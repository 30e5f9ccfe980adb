//! Content negotiation: TAXII 2.1 answers in its own media type, and refuses a request
//! whose `Accept` (406) or, for a POST, `Content-Type` (415) is not TAXII 2.1.

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::Value as Json;

use super::TaxiiError;

/// The TAXII 2.1 media type, of every answer and of POSTed envelopes.
pub const TAXII_MEDIA_TYPE: &str = "application/taxii+json;version=2.1";
/// The media type of the objects in a collection.
pub const STIX_MEDIA_TYPE: &str = "application/stix+json;version=2.1";
pub(super) fn taxii_json(status: StatusCode, body: &Json) -> Response {
    taxii_body(status, body.to_string())
}

/// An answer of JSON already written.
pub(super) fn taxii_body(status: StatusCode, json: String) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(TAXII_MEDIA_TYPE),
        )],
        json,
    )
        .into_response()
}

/// Whether a media type (with its parameters) is TAXII 2.1 JSON. A missing version
/// parameter means the newest, 2.1.
fn is_taxii(media_type: &str) -> bool {
    let mut parts = media_type.split(';').map(str::trim);
    let essence = parts.next().unwrap_or_default();
    if !essence.eq_ignore_ascii_case("application/taxii+json") {
        return false;
    }
    parts.all(|parameter| match parameter.split_once('=') {
        Some((name, value)) if name.trim().eq_ignore_ascii_case("version") => {
            value.trim().trim_matches('"') == "2.1"
        }
        _ => true,
    })
}

/// Whether an `Accept` header lets the client take TAXII 2.1 JSON.
fn accepts_taxii(accept: &str) -> bool {
    accept.split(',').any(|range| {
        let range = range.trim();
        let essence = range.split(';').next().unwrap_or_default().trim();
        essence == "*/*" || essence.eq_ignore_ascii_case("application/*") || is_taxii(range)
    })
}

/// Refuses requests whose `Accept` (406) or, for POSTs, `Content-Type` (415) is not TAXII
/// 2.1, as the specification requires.
pub(super) async fn negotiate(headers: HeaderMap, request: Request, next: Next) -> Response {
    if let Some(accept) = headers.get(header::ACCEPT) {
        let accept = accept.to_str().unwrap_or_default();
        if !accepts_taxii(accept) {
            return TaxiiError::new(
                StatusCode::NOT_ACCEPTABLE,
                "Not acceptable",
                format!("this server answers {TAXII_MEDIA_TYPE}, not {accept:?}"),
            )
            .into_response();
        }
    }
    if request.method() == axum::http::Method::POST {
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default();
        if !is_taxii(content_type) {
            return TaxiiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Unsupported media type",
                format!("POST a TAXII envelope as {TAXII_MEDIA_TYPE}, not {content_type:?}"),
            )
            .into_response();
        }
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types() {
        assert!(is_taxii("application/taxii+json;version=2.1"));
        assert!(is_taxii("application/taxii+json; version=2.1"));
        assert!(is_taxii("application/taxii+json"));
        assert!(!is_taxii("application/taxii+json;version=2.0"));
        assert!(!is_taxii("application/json"));
        assert!(accepts_taxii("application/json, */*;q=0.1"));
        assert!(accepts_taxii("application/taxii+json;version=2.1"));
        assert!(!accepts_taxii("application/json"));
        assert!(!accepts_taxii("application/taxii+json;version=2.0"));
    }
}
