//! The analyst's console: the node in a web browser, under `/ui/` on the API's address.
//!
//! Pages are rendered on the server with [`maud`]: HTML written as Rust, checked when the
//! node is compiled, with every interpolated value escaped unless a template says
//! otherwise, so what members publish (values, labels, descriptions, names) reaches the
//! page as text, never as markup. That is the reason for maud over a template language
//! read at run time: no template files to ship or get wrong, no escaping to forget. The
//! one stylesheet and the one small script are embedded in the binary and served from
//! `/ui/assets/`; there is no build step, no CDN and nothing fetched at run time, since
//! nodes may run on networks with no Internet. Every page works without the script (it
//! only shows the recipients box when the marking needs one).
//!
//! Sign-in exchanges an API token for a session ([`session`]); the API's failure
//! throttling applies to it as to the API. Every form posts the session's form token,
//! checked before anything else, on top of the `SameSite=Strict` cookie and the API's
//! refusal of requests whose `Origin` is another site's. Pages carry a strict
//! Content-Security-Policy (scripts and styles from the node only, no framing). A session
//! opened with a read token sees every page but cannot publish or import.

mod activity;
mod pages;
mod publish;
mod search;
pub(crate) mod session;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::Markup;
use subtle::ConstantTimeEq;
use tokio::time::Instant;

pub(crate) use activity::keep_sampling;

use super::{Access, ApiState, guard};
use session::{Session, Sessions};

/// What the console keeps beside the API's state.
#[derive(Debug, Default)]
pub(crate) struct Console {
    pub(crate) sessions: Sessions,
    pub(crate) activity: Arc<activity::Activity>,
    /// Summaries of the entries Recent has shown.
    pub(crate) summaries: Arc<pages::Summaries>,
}

/// The console's routes, all under `/ui/`.
pub(super) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/ui", get(|| async { Redirect::to("/ui/overview") }))
        .route("/ui/", get(|| async { Redirect::to("/ui/overview") }))
        .route("/ui/signin", get(pages::signin_page).post(sign_in))
        .route("/ui/signout", post(sign_out))
        .route("/ui/overview", get(pages::overview))
        .route("/ui/search", get(search::page).post(search::search))
        .route("/ui/search/export", get(search::export))
        .route("/ui/recent", get(pages::recent))
        .route("/ui/publish", get(publish::page).post(publish::publish))
        .route("/ui/import/confirm", post(publish::confirm))
        .route("/ui/activity", get(pages::activity))
        .route("/ui/assets/console.css", get(stylesheet))
        .route("/ui/assets/console.js", get(script))
        // Forms are read up to this; the upload below keeps the API's import limit.
        .layer(axum::extract::DefaultBodyLimit::max(pages::MAX_FORM_BYTES))
        .route("/ui/import", post(publish::import))
        .layer(axum::middleware::from_fn(page_headers))
}

/// Headers every console answer carries: what a browser may load and run on the page
/// (the node's own stylesheet and script, nothing inline, nothing framed), that nothing
/// is to be cached or sniffed, and that addresses go to no other site as referrer.
async fn page_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // `same-origin`, not `no-referrer`: under `no-referrer` a browser sends `Origin: null`
    // on the console's own form posts, which the API refuses as another site's.
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

const STYLESHEET: &str = include_str!("assets/console.css");
const SCRIPT: &str = include_str!("assets/console.js");

async fn stylesheet() -> Response {
    asset("text/css; charset=utf-8", STYLESHEET)
}

async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

fn asset(media_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, media_type),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        body,
    )
        .into_response()
}

/// A signed-in request: the session and its id.
#[derive(Debug, Clone)]
pub(crate) struct SignedIn {
    pub(crate) id: String,
    pub(crate) session: Session,
}

impl SignedIn {
    /// The session of a request, if it carries one that is open.
    pub(crate) fn of(state: &ApiState, headers: &HeaderMap) -> Option<SignedIn> {
        let id = session::cookie_of(headers)?;
        let session = state.console.sessions.get(&id, Instant::now())?;
        Some(SignedIn { id, session })
    }

    /// Whether this session may publish and import.
    pub(crate) fn may_write(&self) -> bool {
        self.session.access == Access::Write
    }
}

/// Why a console request was not served.
#[derive(Debug)]
pub(crate) enum Refusal {
    /// No open session: sign in first.
    SignIn,
    /// The form's token is not the session's: a stale page or another site's form.
    BadForm,
    /// The session's token may read only.
    ReadOnly,
    /// A page that cannot be served, with a status and a message for the analyst.
    Page(StatusCode, String),
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::SignIn => Redirect::to("/ui/signin").into_response(),
            Refusal::BadForm => pages::error_page(
                StatusCode::FORBIDDEN,
                "This form has expired or did not come from this console. Reload the page \
                 and send it again.",
            ),
            Refusal::ReadOnly => pages::error_page(
                StatusCode::FORBIDDEN,
                "This session was opened with a read-only token: it can look everything up \
                 but cannot publish or import. Sign in with a full token to publish.",
            ),
            Refusal::Page(status, message) => pages::error_page(status, &message),
        }
    }
}

impl From<super::ApiError> for Refusal {
    fn from(error: super::ApiError) -> Refusal {
        Refusal::Page(error.status, error.message)
    }
}

impl From<crate::store::StoreError> for Refusal {
    fn from(error: crate::store::StoreError) -> Refusal {
        super::ApiError::from(error).into()
    }
}

/// The session of a page request, or a redirect to sign-in.
pub(crate) fn signed_in(state: &ApiState, headers: &HeaderMap) -> Result<SignedIn, Refusal> {
    SignedIn::of(state, headers).ok_or(Refusal::SignIn)
}

/// The session of a form post whose `csrf` field must match it.
pub(crate) fn form_of(
    state: &ApiState,
    headers: &HeaderMap,
    fields: &Fields,
) -> Result<SignedIn, Refusal> {
    let signed_in = signed_in(state, headers)?;
    if !signed_in
        .session
        .csrf_matches(fields.get("csrf").unwrap_or_default())
    {
        return Err(Refusal::BadForm);
    }
    Ok(signed_in)
}

/// The fields of an `application/x-www-form-urlencoded` body, in order, repeats kept
/// (the recipients' checkboxes).
#[derive(Debug, Default, Clone)]
pub(crate) struct Fields(Vec<(String, String)>);

impl Fields {
    pub(crate) fn parse(body: &[u8]) -> Fields {
        Fields(
            url::form_urlencoded::parse(body)
                .map(|(name, value)| (name.into_owned(), value.into_owned()))
                .collect(),
        )
    }

    /// The first value of `name`.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(field, _)| field == name)
            .map(|(_, value)| value.as_str())
    }

    /// Every value of `name`.
    pub(crate) fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(field, _)| field == name)
            .map(|(_, value)| value.as_str())
    }
}

/// Signs in: the token of the form, checked like the API's (and throttled the same way),
/// becomes a session cookie. A sign-in that carries a publish form its session lost
/// returns to that form, filled in as it was.
async fn sign_in(State(state): State<ApiState>, request: Request) -> Response {
    let client = super::client_address(&request);
    let secure = served_over_tls(request.headers());
    let form_cookie = session::named_cookie(request.headers(), session::SIGNIN_COOKIE);
    let Ok(body) = axum::body::to_bytes(request.into_body(), pages::MAX_FORM_BYTES).await else {
        return pages::error_page(StatusCode::PAYLOAD_TOO_LARGE, "The form is too large.");
    };
    let fields = Fields::parse(&body);
    let carried = publish::Draft::carried(&fields);
    // The form's token must be the one its page set in the sign-in cookie: a form another
    // site posts cannot know it.
    let form_matches = form_cookie.is_some_and(|expected| {
        bool::from(
            expected
                .as_bytes()
                .ct_eq(fields.get("csrf").unwrap_or_default().as_bytes()),
        )
    });
    if !form_matches {
        return pages::signin(
            StatusCode::FORBIDDEN,
            Some("This sign-in form has expired or did not come from this console: sign in again."),
            carried.as_ref(),
            secure,
        );
    }
    let now = Instant::now();
    if let Err(wait) = state.auth.check(client, now) {
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        return pages::signin(
            StatusCode::TOO_MANY_REQUESTS,
            Some(&format!(
                "Too many failed sign-ins from this address: try again in {secs} s."
            )),
            carried.as_ref(),
            secure,
        );
    }
    let token = fields.get("token").unwrap_or_default().trim();
    if token.is_empty() {
        state.auth.failed(client, guard::Failure::Missing, now);
        return pages::signin(
            StatusCode::UNAUTHORIZED,
            Some("Enter the node's API token."),
            carried.as_ref(),
            secure,
        );
    }
    let Some(access) = state.access(token) else {
        state.auth.failed(client, guard::Failure::Wrong, now);
        return pages::signin(
            StatusCode::UNAUTHORIZED,
            Some("That token is not one this node accepts."),
            carried.as_ref(),
            secure,
        );
    };
    let (id, session) = match state.console.sessions.start(access, now) {
        Ok(opened) => opened,
        Err(error) => {
            tracing::error!(%error, "console: no randomness for a session id");
            return pages::error_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "The node could not open a session.",
            );
        }
    };
    let cookie = format!(
        "{}={id}; Path=/ui; HttpOnly; SameSite=Strict{}",
        session::COOKIE,
        if secure { "; Secure" } else { "" }
    );
    drop(session);
    // A publish form carried through sign-in goes back to the Publish page, filled in.
    let mut response = match carried {
        Some(draft) if access == Access::Write => {
            state.console.sessions.update(&id, |session| {
                session.draft = Some(Arc::new(draft));
            });
            Redirect::to("/ui/publish").into_response()
        }
        _ => Redirect::to("/ui/overview").into_response(),
    };
    match HeaderValue::from_str(&cookie) {
        Ok(value) => {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
        Err(error) => {
            tracing::error!(%error, "console: session cookie");
        }
    }
    response
}

/// Ends the session and returns to sign-in.
async fn sign_out(State(state): State<ApiState>, headers: HeaderMap, body: String) -> Response {
    let fields = Fields::parse(body.as_bytes());
    match form_of(&state, &headers, &fields) {
        Ok(signed_in) => state.console.sessions.end(&signed_in.id),
        Err(Refusal::SignIn) => {}
        Err(refusal) => return refusal.into_response(),
    }
    let mut response = Redirect::to("/ui/signin").into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        HeaderValue::from_static(
            "threatmesh_session=; Path=/ui; Max-Age=0; HttpOnly; SameSite=Strict",
        ),
    );
    response
}

/// Whether the browser reached the node over TLS (a TLS-terminating proxy in front of
/// it says so), so the cookie is marked `Secure`.
pub(crate) fn served_over_tls(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|value| value.to_str().ok())
        .is_some_and(|proto| proto.eq_ignore_ascii_case("https"))
}

/// The name of organisation `org` in `charter`, or its key's start.
pub(crate) fn org_name(
    charter: &threatmesh_protocol::SignedCharter,
    org: &threatmesh_protocol::PublicKey,
) -> String {
    charter
        .charter()
        .members
        .iter()
        .find(|member| member.org == *org)
        .map_or_else(
            || format!("{}…", &org.to_string()[..12]),
            |member| member.name.clone(),
        )
}

/// The name of the organisation that certified node `author`, or the key's start.
pub(crate) fn author_name(
    charter: &threatmesh_protocol::SignedCharter,
    author: &threatmesh_protocol::PublicKey,
) -> String {
    charter
        .charter()
        .members
        .iter()
        .find(|member| member.nodes.iter().any(|cert| cert.node == *author))
        .map_or_else(
            || format!("{}…", &author.to_string()[..12]),
            |member| member.name.clone(),
        )
}

/// Renders `markup` as a page answer.
pub(crate) fn html(status: StatusCode, markup: Markup) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        markup.into_string(),
    )
        .into_response()
}

#[cfg(test)]
mod tests;
