//! A MISP feed served by the node, under `/misp/feed/`: what MISP's "Add feed" (source
//! format "MISP Feed") fetches on its schedule, with the content `threatmesh export
//! --format misp` writes to a folder.
//!
//! - `manifest.json`: every event's uuid with its organisation, tag, info, date and
//!   timestamp. MISP reads it first and fetches only the events it has not seen, or that
//!   have a newer timestamp.
//! - `<event uuid>.json`: one event per entry. Entries are immutable once signed, so an
//!   event file never changes and a MISP fetches each exactly once; an event per day per
//!   organisation would change all day and be fetched again, whole, after every publish.
//! - `hashes.csv`: `<md5 of value>,<event uuid>` per attribute, for MISP's cache.
//!
//! Polls are cheap: `manifest.json` and `hashes.csv` carry an `ETag` and a
//! `Last-Modified` from the number of events at or below the request's TLP ceiling and
//! the arrival of the newest one, and a request whose `If-None-Match` (or, without it,
//! `If-Modified-Since`) still matches gets 304 with an empty body. Both come from an
//! in-memory index ([`index`]) that follows the store's added-time log, so a poll with
//! nothing new reads one key of the store.
//!
//! Authentication is by header, as MISP's feed settings can send one: `Authorization:
//! <token>` (MISP's own style, a bare token) or `Authorization: Bearer <token>`. Full and
//! read API tokens read the whole feed; feed tokens (`api.feed_tokens`) read only these
//! routes, and only entries at or below their TLP ceiling. `?tlp=` narrows a request's
//! ceiling, never widens it. Failures count towards the client's failure window as
//! everywhere in the API (see `guard`).

mod index;
mod validators;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use subtle::ConstantTimeEq;
use threatmesh_protocol::bundle::Tlp;
use uuid::Uuid;

use super::{ApiError, ApiState, blocking, guard};
use crate::formats::Publisher;
use crate::formats::misp;
use crate::store::StoreError;
use validators::{conditions, etag, http_date};

/// Where the feed is served; MISP's feed URL is the node's address followed by this.
pub(crate) const PATH: &str = "/misp/feed/";

/// A token that reads the MISP feed only, up to a TLP ceiling (`api.feed_tokens`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedToken {
    /// The token, as MISP sends it.
    pub token: String,
    /// The strictest marking it may read: TLP:GREEN reads CLEAR and GREEN.
    pub tlp: Tlp,
}

/// The file a feed request asks for, as metrics count it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum File {
    Manifest,
    Event,
    Hashes,
    /// Anything else under the feed's path (answered 404).
    Other,
}

impl File {
    fn of(path: &str) -> File {
        let name = path
            .strip_prefix(PATH)
            .unwrap_or_default()
            .trim_start_matches('/');
        match name {
            "manifest.json" => File::Manifest,
            "hashes.csv" => File::Hashes,
            _ if name.ends_with(".json") => File::Event,
            _ => File::Other,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            File::Manifest => "manifest",
            File::Event => "event",
            File::Hashes => "hashes",
            File::Other => "other",
        }
    }
}

/// Why a feed request was refused before it was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Refusal {
    /// No `Authorization` header.
    Missing,
    /// A token no list holds.
    Wrong,
    /// A client over its failed-authentication limit.
    Throttled,
    /// `?tlp=` above the token's ceiling.
    AboveCeiling,
}

impl Refusal {
    fn as_str(self) -> &'static str {
        match self {
            Refusal::Missing => "missing",
            Refusal::Wrong => "wrong",
            Refusal::Throttled => "throttled",
            Refusal::AboveCeiling => "above_ceiling",
        }
    }
}

/// The feed's state, shared by every request: its tokens, its index and its counters.
#[derive(Debug, Default)]
pub(crate) struct Feed {
    tokens: Vec<FeedToken>,
    index: Mutex<index::Index>,
    /// Requests answered, by file and status.
    answered: Mutex<BTreeMap<(File, u16), u64>>,
    /// Requests refused, by why.
    refused: Mutex<BTreeMap<Refusal, u64>>,
    /// Feed tokens presented to the rest of the API (refused 403).
    elsewhere: std::sync::atomic::AtomicU64,
}

/// The TLP ceiling a request's token gives it, in the request's extensions.
#[derive(Debug, Clone, Copy)]
struct Ceiling(Tlp);

impl Feed {
    /// A feed that also accepts `tokens`.
    pub(crate) fn new(tokens: Vec<FeedToken>) -> Feed {
        Feed {
            tokens,
            ..Feed::default()
        }
    }

    /// The ceiling of `presented` if it is a feed token. Compared with every feed token
    /// in constant time, as the API's tokens are.
    pub(crate) fn ceiling_of(&self, presented: &str) -> Option<Tlp> {
        let mut found: Option<Tlp> = None;
        for token in &self.tokens {
            if bool::from(token.token.as_bytes().ct_eq(presented.as_bytes())) {
                found = Some(token.tlp);
            }
        }
        found
    }

    /// Counts a feed token refused on a route outside the feed.
    pub(crate) fn refused_elsewhere(&self) {
        self.elsewhere
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    fn index(&self) -> std::sync::MutexGuard<'_, index::Index> {
        // A panic while catching up leaves at worst an event without its hashes: the
        // index stays usable.
        self.index
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn count<K: Ord>(map: &Mutex<BTreeMap<K, u64>>, key: K) {
        *map.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(key)
            .or_default() += 1;
    }

    /// The feed's lines for `/metrics`, in Prometheus' text format.
    pub(crate) fn render_metrics(&self, out: &mut String) {
        use std::fmt::Write as _;
        let answered = self
            .answered
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let _ = writeln!(
            out,
            "# HELP threatmesh_misp_feed_requests_total MISP feed requests answered, by file and status.\n\
             # TYPE threatmesh_misp_feed_requests_total counter"
        );
        for ((file, status), count) in &answered {
            let _ = writeln!(
                out,
                "threatmesh_misp_feed_requests_total{{file=\"{}\",status=\"{status}\"}} {count}",
                file.as_str()
            );
        }
        let not_modified: u64 = answered
            .iter()
            .filter(|((_, status), _)| *status == 304)
            .map(|(_, count)| count)
            .sum();
        let _ = writeln!(
            out,
            "# HELP threatmesh_misp_feed_not_modified_total MISP feed polls answered 304: nothing new since the client's copy.\n\
             # TYPE threatmesh_misp_feed_not_modified_total counter\n\
             threatmesh_misp_feed_not_modified_total {not_modified}"
        );
        let refused = self
            .refused
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let _ = writeln!(
            out,
            "# HELP threatmesh_misp_feed_auth_refused_total MISP feed requests refused before reading, by reason.\n\
             # TYPE threatmesh_misp_feed_auth_refused_total counter"
        );
        for reason in [
            Refusal::Missing,
            Refusal::Wrong,
            Refusal::Throttled,
            Refusal::AboveCeiling,
        ] {
            let _ = writeln!(
                out,
                "threatmesh_misp_feed_auth_refused_total{{reason=\"{}\"}} {}",
                reason.as_str(),
                refused.get(&reason).copied().unwrap_or(0)
            );
        }
        let _ = writeln!(
            out,
            "# HELP threatmesh_misp_feed_token_refused_elsewhere_total Feed tokens presented to API routes outside /misp/feed/ (refused 403).\n\
             # TYPE threatmesh_misp_feed_token_refused_elsewhere_total counter\n\
             threatmesh_misp_feed_token_refused_elsewhere_total {}",
            self.elsewhere.load(std::sync::atomic::Ordering::Relaxed)
        );
    }
}

/// How often the background catch-up ([`keep_indexed`]) looks for new entries.
const BACKGROUND_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// Keeps the feed index up with the store, so that the first poll after a start does not
/// wait while the index is built (about 2 s at a million indicators) and each poll finds
/// at most two seconds of entries to add. Requests still catch up with whatever is left
/// before they answer. Runs until the runtime stops.
pub(super) async fn keep_indexed(state: ApiState) {
    let mut every = tokio::time::interval(BACKGROUND_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut reported = false;
    loop {
        every.tick().await;
        match with_index(&state, |_| ()).await {
            Ok(()) => reported = false,
            Err(error) if !reported => {
                tracing::warn!(?error, "indexing the MISP feed failed; trying again later");
                reported = true;
            }
            Err(_) => {}
        }
    }
}

/// The feed's routes, with their own authentication (feed tokens, bare tokens) and
/// counting. One route takes every name under the path, so that a feed URL configured
/// with a trailing slash, to which MISP appends `/manifest.json`, works too.
pub(super) fn routes(state: &ApiState) -> Router<ApiState> {
    Router::new()
        .route("/misp/feed/{*file}", get(serve))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            authenticate,
        ))
        .layer(axum::middleware::from_fn_with_state(state.clone(), count))
}

/// Counts every answer by file and status.
async fn count(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let file = File::of(request.uri().path());
    let response = next.run(request).await;
    Feed::count(
        &state.misp_feed.answered,
        (file, response.status().as_u16()),
    );
    response
}

/// The token in an `Authorization` header: `Bearer <token>`, or the bare token MISP
/// sends. `None` when there is none, or the header is not text.
fn presented_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let token = match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
        _ => value,
    };
    (!token.is_empty()).then_some(token)
}

/// Lets a request through with a full, read or feed token, its [`Ceiling`] in its
/// extensions; refuses a missing or wrong one (401, a wrong one counted towards the
/// client's failure limit) and any request of a client over that limit (429).
async fn authenticate(State(state): State<ApiState>, mut request: Request, next: Next) -> Response {
    let feed = &state.misp_feed;
    let client = super::client_address(&request);
    let now = tokio::time::Instant::now();
    if let Err(wait) = state.auth.check(client, now) {
        Feed::count(&feed.refused, Refusal::Throttled);
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        let mut response = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!("too many failed authentications from {client}: try again in {secs} s"),
        )
        .into_response();
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        return response;
    }
    let Some(presented) = presented_token(request.headers()) else {
        Feed::count(&feed.refused, Refusal::Missing);
        state.auth.failed(client, guard::Failure::Missing, now);
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            "missing credentials: send the token as `Authorization: <token>` (MISP's feed \
             header) or `Authorization: Bearer <token>`",
        )
        .into_response();
    };
    // Every list is compared in full before any result is looked at.
    let (api, feed_ceiling) = (state.access(presented), feed.ceiling_of(presented));
    let ceiling = match (api, feed_ceiling) {
        (Some(_), _) => Tlp::Red,
        (None, Some(ceiling)) => ceiling,
        (None, None) => {
            Feed::count(&feed.refused, Refusal::Wrong);
            state.auth.failed(client, guard::Failure::Wrong, now);
            return ApiError::new(StatusCode::UNAUTHORIZED, "wrong token").into_response();
        }
    };
    request.extensions_mut().insert(Ceiling(ceiling));
    next.run(request).await
}

#[derive(Debug, serde::Deserialize)]
struct FeedQuery {
    /// Narrows the token's TLP ceiling for this request.
    tlp: Option<String>,
}

/// Answers one feed file.
async fn serve(
    State(state): State<ApiState>,
    Extension(Ceiling(token_ceiling)): Extension<Ceiling>,
    Path(file): Path<String>,
    query: Result<axum::extract::Query<FeedQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let axum::extract::Query(query) =
        query.map_err(|rejection| ApiError::new(StatusCode::BAD_REQUEST, rejection.body_text()))?;
    let ceiling = match query.tlp.as_deref() {
        None => token_ceiling,
        Some(text) => {
            let asked: Tlp = text
                .parse()
                .map_err(|error| ApiError::new(StatusCode::BAD_REQUEST, format!("tlp: {error}")))?;
            if asked > token_ceiling {
                Feed::count(&state.misp_feed.refused, Refusal::AboveCeiling);
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    format!(
                        "tlp={asked} is above this token's ceiling, {token_ceiling}: ?tlp= \
                         narrows what a token reads, never widens it"
                    ),
                ));
            }
            asked
        }
    };
    // `{*file}` keeps the slash a feed URL with a trailing one adds.
    let name = file.trim_start_matches('/').to_owned();
    match File::of(&format!("{PATH}{name}")) {
        File::Manifest => listing(&state, ceiling, &headers, Listing::Manifest).await,
        File::Hashes => listing(&state, ceiling, &headers, Listing::Hashes).await,
        File::Event => event(&state, ceiling, &headers, &name).await,
        File::Other => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!(
                "{PATH}{name}: the feed serves manifest.json, hashes.csv and <event uuid>.json"
            ),
        )),
    }
}

/// The two files that list the whole feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Listing {
    Manifest,
    Hashes,
}

/// Catches the index up with the store (off the async threads) and runs `read` on it.
async fn with_index<T: Send + 'static>(
    state: &ApiState,
    read: impl FnOnce(&mut index::Index) -> T + Send + 'static,
) -> Result<T, ApiError> {
    let (store, charter, feed) = (
        state.store.clone(),
        state.client.charter(),
        Arc::clone(&state.misp_feed),
    );
    blocking(move || {
        let mut index = feed.index();
        index.catch_up(&store, charter.charter())?;
        Ok::<_, StoreError>(read(&mut index))
    })
    .await?
    .map_err(ApiError::from)
}

/// `manifest.json` or `hashes.csv` at `ceiling`, or 304 when the client's copy is
/// current.
async fn listing(
    state: &ApiState,
    ceiling: Tlp,
    headers: &HeaderMap,
    listing: Listing,
) -> Result<Response, ApiError> {
    let now = state.client.now();
    let validators = conditions(headers);
    let answer = with_index(state, move |index| {
        let version = index.version(ceiling);
        let tag = etag(listing, ceiling, version);
        if validators.still_current(&tag, version) {
            return (tag, version, None);
        }
        let body = match listing {
            Listing::Manifest => index.manifest(ceiling),
            Listing::Hashes => index.hashes_csv(ceiling),
        };
        (tag, version, Some(body))
    })
    .await?;
    let (tag, version, body) = answer;
    let mut response = match body {
        None => StatusCode::NOT_MODIFIED.into_response(),
        Some(body) => {
            let media_type = match listing {
                Listing::Manifest => "application/json",
                Listing::Hashes => "text/csv; charset=utf-8",
            };
            ([(header::CONTENT_TYPE, media_type)], body).into_response()
        }
    };
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&tag) {
        headers.insert(header::ETAG, value);
    }
    // Revalidate on every poll: the answer changes whenever something new arrives.
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-cache"),
    );
    if version.events > 0 {
        // An entry may still arrive within the second of the newest: a client told that
        // second could miss it when it asks "modified since?". So never name the current
        // second; a later answer names it once it is over.
        let seconds = (version.newest_added.as_millis() / 1000)
            .min((now.as_millis() / 1000).saturating_sub(1));
        if let Some(value) = http_date(seconds).and_then(|text| HeaderValue::from_str(&text).ok()) {
            headers.insert(header::LAST_MODIFIED, value);
        }
    }
    Ok(response)
}

/// One event's file, `{"Event": {...}}`.
async fn event(
    state: &ApiState,
    ceiling: Tlp,
    headers: &HeaderMap,
    name: &str,
) -> Result<Response, ApiError> {
    let not_found = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no MISP event {name} in this feed (at this token's TLP ceiling)"),
        )
    };
    let uuid = name
        .strip_suffix(".json")
        .and_then(|text| Uuid::parse_str(text).ok())
        .ok_or_else(not_found)?;
    let tag = format!("\"{}\"", uuid.hyphenated());
    let entry = with_index(state, move |index| index.entry_of(&uuid, ceiling))
        .await?
        .ok_or_else(not_found)?;
    let cache = |mut response: Response| {
        let headers = response.headers_mut();
        if let Ok(value) = HeaderValue::from_str(&tag) {
            headers.insert(header::ETAG, value);
        }
        // An event is an entry, which never changes once signed.
        headers.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("private, max-age=31536000, immutable"),
        );
        response
    };
    if conditions(headers)
        .none_match
        .is_some_and(|tags| tags.iter().any(|sent| sent == "*" || sent == &tag))
    {
        return Ok(cache(StatusCode::NOT_MODIFIED.into_response()));
    }
    let (store, charter) = (state.store.clone(), state.client.charter());
    let warninglists = std::sync::Arc::clone(state.client.warninglists());
    let file = blocking(move || {
        let Some(signed) = store.entry(&entry)? else {
            return Ok(None);
        };
        let opened = match signed.entry().body {
            threatmesh_protocol::Body::Sealed(_) => store.opened(&entry)?,
            threatmesh_protocol::Body::Bundle(_) => None,
        };
        let Some(readable) = crate::formats::readable_entry(signed.entry(), opened) else {
            return Ok(None);
        };
        let publisher = Publisher::exporting(charter.charter(), &readable.author);
        // Marked as `threatmesh export --format misp` marks it.
        let mut file = misp::event_file(&readable, entry, &publisher);
        if let Some(file) = &mut file {
            crate::formats::marks::mark_misp_event(file, &readable, &warninglists);
        }
        Ok::<_, StoreError>(file)
    })
    .await??
    .ok_or_else(not_found)?;
    Ok(cache(
        (
            [(header::CONTENT_TYPE, "application/json")],
            file.to_string(),
        )
            .into_response(),
    ))
}

#[cfg(test)]
mod tests;
