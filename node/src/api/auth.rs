//! Authentication: the token a request presents (bearer, or basic auth for TAXII), what it
//! may do, and the refusals (401, 403, 429) with the failure counting behind them.

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::router::{client_address, writes};
use super::{Access, ApiError, ApiState, guard, misp_feed, taxii};

/// Lets a request through with a right token, its [`Access`] in its extensions; refuses
/// a missing or wrong token (401, counted towards the client's failure limit when wrong),
/// any request of a client over that limit (429), and a read token on a route that writes
/// (403).
pub(super) async fn authenticate(
    State(state): State<ApiState>,
    headers: HeaderMap,
    mut request: Request,
    next: Next,
) -> Response {
    let taxii = request.uri().path().starts_with(taxii::DISCOVERY_PATH);
    let answer = |status: StatusCode, title: &'static str, message: String| {
        if taxii {
            taxii::TaxiiError::new(status, title, message).into_response()
        } else {
            ApiError::new(status, message).into_response()
        }
    };
    let client = client_address(&request);
    let now = tokio::time::Instant::now();
    // A client that failed too often waits out its window, whatever it presents now:
    // otherwise a guessing loop would learn from which answer changes.
    if let Err(wait) = state.auth.check(client, now) {
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        let mut response = answer(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many requests",
            format!("too many failed authentications from {client}: try again in {secs} s"),
        );
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from(secs));
        return response;
    }
    let refuse = |failure: guard::Failure, message: &str| {
        state.auth.failed(client, failure, now);
        answer(StatusCode::UNAUTHORIZED, "Unauthorized", message.to_owned())
    };
    let presented = match presented_token(&headers) {
        Some(Presented::Bearer(token)) => token,
        // TAXII clients speak basic auth. Elsewhere it is refused: a browser sends basic
        // credentials it cached on its own, a bearer token only when a script of the
        // page adds it.
        Some(Presented::Basic(token)) if taxii => token,
        Some(Presented::Basic(_)) => {
            return refuse(
                guard::Failure::Missing,
                "basic auth is taken on /taxii2/ only: send Authorization: Bearer <token>",
            );
        }
        None if taxii => {
            return refuse(
                guard::Failure::Missing,
                "missing credentials: send a bearer token, or basic auth with the token as password",
            );
        }
        None => {
            return refuse(
                guard::Failure::Missing,
                "missing credentials: send a bearer token (Authorization: Bearer <token>)",
            );
        }
    };
    let Some(access) = state.access(&presented) else {
        // A feed token is a right token on the wrong route: refused, not counted as a
        // guess.
        if state.misp_feed.ceiling_of(&presented).is_some() {
            state.misp_feed.refused_elsewhere();
            return answer(
                StatusCode::FORBIDDEN,
                "Feed token",
                format!("this token reads the MISP feed ({}) only", misp_feed::PATH),
            );
        }
        return refuse(
            guard::Failure::Wrong,
            "wrong bearer token (or basic-auth password)",
        );
    };
    let matched = request
        .extensions()
        .get::<MatchedPath>()
        .map(MatchedPath::as_str);
    // A right token on a route it may not use: refused, but not a failed
    // authentication, so the client's failure window is left alone.
    if access == Access::Read && writes(request.method(), matched) {
        state.auth.refused_read_only();
        let route = format!(
            "{} {}",
            request.method(),
            matched.unwrap_or(request.uri().path())
        );
        return answer(
            StatusCode::FORBIDDEN,
            "Read-only token",
            format!(
                "this token may read only: {route} writes, which takes a token from api.tokens"
            ),
        );
    }
    request.extensions_mut().insert(access);
    next.run(request).await
}

/// A token as a request presents it.
enum Presented {
    /// `Authorization: Bearer <token>`.
    Bearer(String),
    /// `Basic` credentials whose password is the token (TAXII clients speak basic auth;
    /// the user name is not checked).
    Basic(String),
}

/// The token a request presents, if any can be read.
fn presented_token(headers: &HeaderMap) -> Option<Presented> {
    use base64::Engine as _;
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, credentials) = value.split_once(' ')?;
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some(Presented::Bearer(credentials.trim().to_owned()));
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(credentials.trim())
            .ok()?;
        let decoded = String::from_utf8(decoded).ok()?;
        let (_user, password) = decoded.split_once(':')?;
        return Some(Presented::Basic(password.to_owned()));
    }
    None
}
