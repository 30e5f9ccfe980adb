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
//! failures. The API depends on the store and the network [`Client`] only.
//!
//! The MISP feed under `/misp/feed/` (`misp_feed`) authenticates on its own: it also
//! takes MISP's bare `Authorization: <token>` and feed tokens (`api.feed_tokens`), which
//! every other route refuses 403.

pub mod archive;
mod exchange;
mod guard;
mod misp_feed;
mod peers;
mod prometheus;
pub mod ready;
pub mod taxii;
mod ui;
mod warninglists;

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, MatchedPath, Path, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use threatmesh_protocol::bundle::{Distribution, Tlp};
use threatmesh_protocol::item::Item;
use threatmesh_protocol::{Hash, Kind, PublicKey, Value};

pub use guard::ApiLimits;
pub use misp_feed::FeedToken;

use crate::network::{Client, ClientError};
use crate::store::{FeedState, Lookup, Space, Stats, Store, StoreError};

/// The OpenAPI 3.0 description of these routes.
pub const OPENAPI: &str = include_str!("openapi.json");

/// Every route but TAXII's ([`taxii::ROUTES`]), as the OpenAPI document names it, and
/// whether it writes. Each entry has to say which, so no route is added without deciding
/// whether a read token may use it; a route the router serves but no list names counts as
/// a write. Tests keep the list in step with the document and with the router, and try a
/// read token and a full one on every route.
pub const ROUTES: [Route; 21] = [
    Route::read("GET /healthz"),
    Route::read("GET /readyz"),
    Route::read("GET /api/v1/openapi.json"),
    Route::write("POST /api/v1/publish"),
    Route::write("POST /api/v1/import/{format}"),
    Route::read("GET /api/v1/indicators/{kind}/{value}"),
    // A question: POST only because a list of 100,000 values does not fit in a URL.
    Route::read("POST /api/v1/lookup"),
    Route::read("GET /api/v1/feeds"),
    Route::read("GET /api/v1/entries"),
    Route::read("GET /api/v1/status"),
    Route::read("GET /api/v1/charter"),
    Route::write("POST /api/v1/charter"),
    Route::read("GET /api/v1/peers/blocked"),
    Route::write("POST /api/v1/peers/blocked"),
    Route::write("DELETE /api/v1/peers/blocked/{peer_id}"),
    Route::read("GET /metrics"),
    // An export reads; an import stores what verifies.
    Route::read("GET /api/v1/archive"),
    Route::write("POST /api/v1/archive"),
    // The MISP feed (`misp_feed`), which feed tokens read too.
    Route::read("GET /misp/feed/manifest.json"),
    Route::read("GET /misp/feed/hashes.csv"),
    Route::read("GET /misp/feed/{event}"),
];

/// A route as the OpenAPI document names it, and whether a read token may use it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// `METHOD /path`, the path as the router spells it (`{name}` for a segment).
    pub name: &'static str,
    /// Whether it changes what the node holds or does (publishes, imports, replaces the
    /// charter, blocks or lifts a peer): a read token is refused it, 403.
    pub writes: bool,
}

impl Route {
    /// A route that only reads.
    pub const fn read(name: &'static str) -> Route {
        Route {
            name,
            writes: false,
        }
    }

    /// A route that writes.
    pub const fn write(name: &'static str) -> Route {
        Route { name, writes: true }
    }
}

/// Whether the route a request matched (`method`, and `matched` as the router spells the
/// path) writes. Decided by route, not by method: a bulk lookup is a POST that reads.
/// A route no list names, or a request without a matched route, counts as a write, so
/// forgetting a route closes it to read tokens rather than opening a write to them.
fn writes(method: &Method, matched: Option<&str>) -> bool {
    let Some(matched) = matched else {
        return true;
    };
    // axum serves HEAD with the GET route of the path.
    let method = if method == Method::HEAD {
        "GET"
    } else {
        method.as_str()
    };
    ROUTES
        .iter()
        .chain(taxii::ROUTES.iter())
        .find(|route| route.name.split_once(' ') == Some((method, matched)))
        .is_none_or(|route| route.writes)
}

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

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct ApiState {
    store: Store,
    client: Client,
    tokens: Arc<Vec<String>>,
    read_tokens: Arc<Vec<String>>,
    taxii: Arc<taxii::Shared>,
    auth: Arc<guard::AuthLimiter>,
    limits: ApiLimits,
    console: Arc<ui::Console>,
    misp_feed: Arc<misp_feed::Feed>,
}

impl ApiState {
    /// The API over `store` and `client`, accepting any of `tokens` for everything.
    pub fn new(store: Store, client: Client, tokens: Vec<String>) -> ApiState {
        let taxii = Arc::new(taxii::Shared::new());
        let limits = ApiLimits::default();
        ApiState {
            store,
            client,
            tokens: Arc::new(tokens),
            read_tokens: Arc::new(Vec::new()),
            taxii,
            auth: Arc::new(guard::AuthLimiter::new(&limits)),
            limits,
            console: Arc::new(ui::Console::default()),
            misp_feed: Arc::new(misp_feed::Feed::default()),
        }
    }

    /// The same API with `limits` instead of the defaults.
    pub fn with_limits(self, limits: ApiLimits) -> ApiState {
        ApiState {
            auth: Arc::new(guard::AuthLimiter::new(&limits)),
            limits,
            ..self
        }
    }

    /// The same API also accepting `tokens` as read tokens: each reads everything a full
    /// token reads, and every route that writes refuses it (403).
    pub fn with_read_tokens(self, tokens: Vec<String>) -> ApiState {
        ApiState {
            read_tokens: Arc::new(tokens),
            ..self
        }
    }

    /// The same API also accepting `tokens` as feed tokens: each reads the MISP feed
    /// (`/misp/feed/`) only, up to its TLP ceiling.
    pub fn with_feed_tokens(self, tokens: Vec<FeedToken>) -> ApiState {
        ApiState {
            misp_feed: Arc::new(misp_feed::Feed::new(tokens)),
            ..self
        }
    }

    /// What `presented` may do, or `None` when it is no configured token. It is compared
    /// with every token of both kinds in constant time, so timing tells nothing of their
    /// contents (`subtle` does let a length differing from every token's show). A token
    /// in both lists (the configuration refuses that) may read only.
    pub(crate) fn access(&self, presented: &str) -> Option<Access> {
        let matches = |tokens: &[String]| {
            tokens.iter().fold(subtle::Choice::from(0), |found, token| {
                found | token.as_bytes().ct_eq(presented.as_bytes())
            })
        };
        // Both lists in full before either result is looked at.
        let (full, read) = (matches(&self.tokens), matches(&self.read_tokens));
        if bool::from(read) {
            Some(Access::Read)
        } else if bool::from(full) {
            Some(Access::Write)
        } else {
            None
        }
    }
}

/// Keeps the TAXII object index up with the store in the background (see
/// `taxii::keep_indexed`); spawn it beside [`serve`]. Runs until the runtime stops.
pub async fn keep_taxii_index(state: ApiState) {
    taxii::keep_indexed(state).await;
}

/// Keeps the web console's record of the last hour (the Activity page's charts and the
/// peers' connection history); spawn it beside [`serve`]. Runs until the node stops.
pub async fn keep_console_activity(state: ApiState) {
    ui::keep_sampling(state).await;
}

/// Keeps the MISP feed's index up with the store in the background (see `misp_feed`), so
/// a MISP's first poll after a start is answered at once; spawn it beside [`serve`] on a
/// node that serves a MISP. Runs until the runtime stops.
pub async fn keep_misp_feed_index(state: ApiState) {
    misp_feed::keep_indexed(state).await;
}

/// The API's routes.
pub fn router(state: ApiState) -> Router {
    let protected = Router::new()
        .route("/api/v1/publish", post(publish))
        .route("/api/v1/import/{format}", post(exchange::import))
        .route("/api/v1/indicators/{kind}/{value}", get(lookup_one))
        .route("/api/v1/lookup", post(lookup_many))
        .route("/api/v1/feeds", get(feeds))
        .route("/api/v1/entries", get(entries))
        .route("/api/v1/status", get(status))
        .route("/api/v1/charter", get(charter).post(push_charter))
        .route("/api/v1/peers/blocked", get(peers::list).post(peers::block))
        .route(
            "/api/v1/peers/blocked/{peer_id}",
            axum::routing::delete(peers::unblock),
        )
        .route("/metrics", get(metrics))
        // Archives stream: the body limit is the decoder's, frame by frame.
        .route(
            "/api/v1/archive",
            get(archive::export)
                .post(archive::import)
                .layer(axum::extract::DefaultBodyLimit::disable()),
        )
        .merge(taxii::routes())
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            authenticate,
        ));
    // Outermost: a request over the concurrency cap is answered before any other work.
    let permits = Arc::new(tokio::sync::Semaphore::new(
        state.limits.max_concurrent_requests.max(1),
    ));
    let auth = Arc::clone(&state.auth);
    let screen = Arc::clone(&state.auth);
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready::readyz))
        .route(
            "/api/v1/openapi.json",
            get(|| async { ([(header::CONTENT_TYPE, "application/json")], OPENAPI) }),
        )
        .merge(protected)
        .merge(misp_feed::routes(&state))
        // The web console authenticates by session, not by bearer token.
        .merge(ui::routes())
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        // Before authentication: a hostile page's request is refused without counting
        // against the client's failure window.
        .layer(axum::middleware::from_fn(move |request, next| {
            screen_browsers(Arc::clone(&screen), request, next)
        }))
        .layer(axum::middleware::from_fn(move |request, next| {
            limit_concurrency(Arc::clone(&permits), Arc::clone(&auth), request, next)
        }))
        .with_state(state)
}

/// Serves `request` if fewer than the cap are being served; 503 at once otherwise, rather
/// than queueing work without bound.
async fn limit_concurrency(
    permits: Arc<tokio::sync::Semaphore>,
    counters: Arc<guard::AuthLimiter>,
    request: Request,
    next: Next,
) -> Response {
    let Ok(_permit) = permits.try_acquire_owned() else {
        counters.overloaded();
        let mut response = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many requests being served: try again shortly",
        )
        .into_response();
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
        return response;
    };
    next.run(request).await
}

/// Refuses what only a browser led by another site's page sends: a request whose
/// `Origin` is not the API's own (403), and a write whose media type is not one its route
/// reads (415; a form can send only `application/x-www-form-urlencoded`,
/// `multipart/form-data` and `text/plain` without the browser asking first). See
/// [`guard`].
async fn screen_browsers(
    counters: Arc<guard::AuthLimiter>,
    request: Request,
    next: Next,
) -> Response {
    let taxii = request.uri().path().starts_with(taxii::DISCOVERY_PATH);
    if let Some(origin) = guard::foreign_origin(request.headers()) {
        counters.foreign_origin();
        let message = format!(
            "requests from another origin's page ({origin:?}) are refused: the API serves \
             the organisation's own tools, which send no Origin"
        );
        return if taxii {
            taxii::TaxiiError::new(StatusCode::FORBIDDEN, "Forbidden", message).into_response()
        } else {
            ApiError::new(StatusCode::FORBIDDEN, message).into_response()
        };
    }
    if request.method() == axum::http::Method::POST
        && let Some(reason) = guard::refused_media_type(request.uri().path(), request.headers())
    {
        counters.refused_media_type();
        return ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, reason).into_response();
    }
    next.run(request).await
}

/// The address a request came from, as the network's per-address limits count it (an
/// IPv6 client's /64); requests handed to the router without one (tests calling it in
/// process) share one made-up address.
fn client_address(request: &Request) -> IpAddr {
    request
        .extensions()
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED), |info| {
            crate::network::limited_ip(info.0.ip())
        })
}

/// Serves `router` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // With each connection's address, which the failed-authentication limit goes by.
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

/// An error answer: a status and a message naming the problem.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
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
struct Body<T>(T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Body<T>, ApiError> {
        let Json(value) = Json::<T>::from_request(request, state).await?;
        Ok(Body(value))
    }
}

/// Lets a request through with a right token, its [`Access`] in its extensions; refuses
/// a missing or wrong token (401, counted towards the client's failure limit when wrong),
/// any request of a client over that limit (429), and a read token on a route that writes
/// (403).
async fn authenticate(
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

/// A publish request: items with their marking and audience.
#[derive(Debug, Deserialize)]
struct PublishRequest {
    #[serde(default = "default_tlp")]
    tlp: Tlp,
    #[serde(default)]
    distribution: Distribution,
    items: Vec<Item>,
    /// Publish indicators on a warninglist too, instead of holding them back.
    #[serde(default)]
    ignore_warninglists: bool,
}

/// Publish options that may also come in the query string.
#[derive(Debug, Default, Deserialize)]
struct PublishQuery {
    #[serde(default)]
    ignore_warninglists: bool,
}

fn default_tlp() -> Tlp {
    Tlp::Amber
}

#[derive(Debug, Serialize)]
struct Published {
    entries: Vec<Hash>,
    /// Indicators not published because their value is on a warninglist.
    held_back: Vec<warninglists::HeldBack>,
}

async fn publish(
    State(state): State<ApiState>,
    axum::extract::Query(query): axum::extract::Query<PublishQuery>,
    Body(request): Body<PublishRequest>,
) -> Result<(StatusCode, Json<Published>), ApiError> {
    if request.items.is_empty() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "items: nothing to publish",
        ));
    }
    for (index, item) in request.items.iter().enumerate() {
        item.validate().map_err(|error| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("items[{index}] ({}): {error}", item.value()),
            )
        })?;
    }
    let (items, held_back) = warninglists::hold_back(
        state.client.warninglists(),
        request.items,
        request.ignore_warninglists || query.ignore_warninglists,
        0,
    );
    if items.is_empty() {
        // Everything was on a warninglist: nothing published, and the report says why.
        let entries = Vec::new();
        return Ok((StatusCode::OK, Json(Published { entries, held_back })));
    }
    let entries = state
        .client
        .publish(request.tlp, request.distribution, items)
        .await?;
    Ok((StatusCode::CREATED, Json(Published { entries, held_back })))
}

/// A lookup answer: what the store holds about one value.
#[derive(Debug, Serialize)]
struct Answer {
    known: bool,
    #[serde(flatten)]
    lookup: Lookup,
    /// The warninglists the value is on.
    warninglists: Vec<warninglists::ListMatch>,
}

async fn lookup_one(
    State(state): State<ApiState>,
    Path((kind, text)): Path<(String, String)>,
) -> Result<Json<Answer>, ApiError> {
    let kind: Kind = kind
        .parse()
        .map_err(|error| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, format!("{error}")))?;
    let value = Value::parse(kind, &text)
        .map_err(|error| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, error.to_string()))?;
    let on = warninglists::lists_of(state.client.warninglists(), &value);
    let (store, now) = (state.store.clone(), state.client.now());
    let lookup = blocking(move || store.lookup(&value, now)).await??;
    Ok(Json(Answer {
        known: !lookup.assertions.is_empty() || !lookup.sightings.is_empty(),
        lookup,
        warninglists: on,
    }))
}

/// A bulk lookup: values as bare strings (kind detected, defanged accepted) or as
/// `{"kind": ..., "value": ...}`.
#[derive(Debug, Deserialize)]
struct LookupRequest {
    values: Vec<LookupValue>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum LookupValue {
    Bare(String),
    Typed { kind: Kind, value: String },
}

#[derive(Debug, Serialize)]
struct LookupAnswer {
    /// How many values were asked about.
    asked: usize,
    /// The values something is known about.
    found: Vec<Marked>,
    /// Values that are not valid indicators, with why.
    invalid: Vec<Invalid>,
}

/// A value found, with the warninglists it is on.
#[derive(Debug, Serialize)]
struct Marked {
    #[serde(flatten)]
    lookup: Lookup,
    warninglists: Vec<warninglists::ListMatch>,
}

#[derive(Debug, Serialize)]
struct Invalid {
    index: usize,
    input: String,
    reason: String,
}

async fn lookup_many(
    State(state): State<ApiState>,
    Body(request): Body<LookupRequest>,
) -> Result<Json<LookupAnswer>, ApiError> {
    let asked = request.values.len();
    if asked > MAX_LOOKUP_VALUES {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("{asked} values, at most {MAX_LOOKUP_VALUES} per request"),
        ));
    }
    let mut values = Vec::with_capacity(asked);
    let mut invalid = Vec::new();
    for (index, entry) in request.values.into_iter().enumerate() {
        let parsed = match &entry {
            LookupValue::Bare(text) => Value::detect(text),
            LookupValue::Typed { kind, value } => Value::parse(*kind, value),
        };
        match parsed {
            Ok(value) => values.push(value),
            Err(error) => invalid.push(Invalid {
                index,
                input: error.input.clone(),
                reason: error.to_string(),
            }),
        }
    }
    let (store, now) = (state.store.clone(), state.client.now());
    let found = blocking(move || store.lookup_many(&values, now))
        .await??
        .into_iter()
        .map(|lookup| Marked {
            warninglists: warninglists::lists_of(state.client.warninglists(), &lookup.value),
            lookup,
        })
        .collect();
    Ok(Json(LookupAnswer {
        asked,
        found,
        invalid,
    }))
}

/// A charter file as the stewards' tools write it: the charter and its signatures.
#[derive(Debug, Serialize, Deserialize)]
pub struct CharterFile {
    /// The charter.
    pub charter: threatmesh_protocol::Charter,
    /// The steward signatures collected.
    #[serde(default)]
    pub signatures: Vec<threatmesh_protocol::charter::StewardSignature>,
}

impl CharterFile {
    /// The charter with its signatures, ready to verify. Its signed bytes are re-derived
    /// from the charter, so a signature made over anything else will not verify.
    pub fn into_signed(
        self,
    ) -> Result<threatmesh_protocol::SignedCharter, threatmesh_protocol::charter::CharterError>
    {
        let raw = threatmesh_protocol::charter::RawCharter {
            charter: threatmesh_protocol::wire::encode_signed(
                threatmesh_protocol::charter::CHARTER_DOMAIN,
                &self.charter,
            ),
            signatures: self.signatures,
        };
        threatmesh_protocol::SignedCharter::decode(raw)
    }

    /// The file form of `charter`.
    pub fn of(charter: &threatmesh_protocol::SignedCharter) -> CharterFile {
        CharterFile {
            charter: charter.charter().clone(),
            signatures: charter.signatures().to_vec(),
        }
    }
}

async fn charter(State(state): State<ApiState>) -> Json<CharterFile> {
    Json(CharterFile::of(&state.client.charter()))
}

/// Hands the node a charter: verified against the charter it names among those the node
/// holds, stored, applied if it is then in force, gossiped.
async fn push_charter(
    State(state): State<ApiState>,
    Body(file): Body<CharterFile>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let charter = file
        .into_signed()
        .map_err(|error| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, error.to_string()))?;
    let version = charter.charter().version;
    state
        .client
        .update_charter(charter)
        .await
        .map_err(|error| match error {
            ClientError::Charter(reason) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, reason.to_string())
            }
            other => ApiError::from(other),
        })?;
    Ok(Json(serde_json::json!({ "version": version })))
}

/// Most entries one page of `/api/v1/entries` returns. An entry can hold 10,000 items, so
/// a page stays in the tens of megabytes of JSON.
pub const MAX_ENTRIES_PAGE: usize = 100;

#[derive(Debug, Deserialize)]
struct EntriesQuery {
    /// The cursor from the previous page.
    cursor: Option<String>,
    /// Entries per page, at most [`MAX_ENTRIES_PAGE`].
    limit: Option<usize>,
}

/// One entry as the export shows it.
#[derive(Debug, Serialize)]
struct ExportedEntry {
    id: Hash,
    added: threatmesh_protocol::Timestamp,
    /// The entry's size as it travels (its gossip payload), in bytes.
    bytes: usize,
    #[serde(flatten)]
    entry: threatmesh_protocol::Entry,
    /// For a sealed entry addressed to this node's organisation, the bundle it read;
    /// absent otherwise (the sealed body above is all a non-recipient sees).
    #[serde(skip_serializing_if = "Option::is_none")]
    opened: Option<threatmesh_protocol::Bundle>,
}

#[derive(Debug, Serialize)]
struct EntriesPage {
    entries: Vec<ExportedEntry>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<String>,
    /// Entries held in all, for progress.
    total: u64,
}

/// Every entry this node holds, in the order it accepted them, page by page.
async fn entries(
    State(state): State<ApiState>,
    axum::extract::Query(query): axum::extract::Query<EntriesQuery>,
) -> Result<Json<EntriesPage>, ApiError> {
    let limit = query
        .limit
        .unwrap_or(MAX_ENTRIES_PAGE)
        .clamp(1, MAX_ENTRIES_PAGE);
    let cursor = query
        .cursor
        .map(|text| {
            threatmesh_protocol::crypto::hex_decode::<17>(&text)
                .map_err(|error| ApiError::new(StatusCode::BAD_REQUEST, format!("cursor: {error}")))
        })
        .transpose()?;
    let store = state.store.clone();
    let (page, next, total) = blocking(move || {
        let page = store.added_page(cursor.as_ref().map(|c| &c[..]), limit)?;
        let entries = page
            .entries
            .into_iter()
            .map(|(added, entry)| {
                let sealed = matches!(
                    entry.entry().body,
                    threatmesh_protocol::entry::Body::Sealed(_)
                );
                let opened = if sealed {
                    store.opened(&entry.id())?
                } else {
                    None
                };
                Ok(ExportedEntry {
                    id: entry.id(),
                    added,
                    bytes: entry.payload().len(),
                    entry: entry.entry().clone(),
                    opened,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok::<_, StoreError>((entries, page.next, store.stats()?.entries))
    })
    .await??;
    Ok(Json(EntriesPage {
        entries: page,
        next: next.map(|cursor| threatmesh_protocol::crypto::hex_encode(&cursor)),
        total,
    }))
}

async fn feeds(State(state): State<ApiState>) -> Result<Json<Vec<FeedState>>, ApiError> {
    let store = state.store.clone();
    Ok(Json(blocking(move || store.feeds()).await??))
}

/// The node's state at a glance.
#[derive(Debug, Serialize)]
struct Status {
    peer_id: String,
    /// The organisation this node serves (its charter member's key), `null` when the
    /// charter does not name the node. Exports write that organisation's kept STIX ids
    /// as they are.
    organisation: Option<PublicKey>,
    federation: Hash,
    charter_version: u64,
    peers: usize,
    /// Links the node holds at most once it has pruned (its `network.target_peers`).
    peers_target: usize,
    /// Below this many links the node dials more members.
    peers_low: usize,
    /// Counts and sizes; `null` when the store cannot be read (see `store_error`).
    store: Option<Stats>,
    /// Why the store could not be read, if it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    store_error: Option<String>,
    /// Free space and whether writes are accepted.
    disk: Space,
    feeds: Vec<FeedLag>,
    network: crate::network::Snapshot,
}

/// A feed and how far this node is behind on it.
#[derive(Debug, Serialize)]
struct FeedLag {
    #[serde(flatten)]
    feed: FeedState,
    /// Entries missing below the highest one held (gaps still to fetch).
    missing_below_highest: u64,
    /// The highest seq a peer has shown this node, if any.
    advertised: Option<u64>,
    /// Entries this node still lacks up to what peers have shown: the lag.
    lag: u64,
}

async fn status(State(state): State<ApiState>) -> Result<Json<Status>, ApiError> {
    let peers = state.client.peers().await?.len();
    let charter = state.client.charter();
    let store = state.store.clone();
    let reading = blocking(move || StoreReading::of(&store)).await?;
    let network = state.client.metrics();
    let (stats, feeds, store_error) = match reading.read {
        Ok((stats, feeds)) => (Some(stats), feeds, None),
        Err(error) => (None, Vec::new(), Some(error)),
    };
    let feeds = feeds
        .into_iter()
        .map(|feed| {
            let advertised = network.advertised.get(&feed.author).copied();
            FeedLag {
                missing_below_highest: feed.highest.saturating_sub(feed.contiguous),
                lag: advertised.unwrap_or(0).saturating_sub(feed.contiguous),
                advertised,
                feed,
            }
        })
        .collect();
    Ok(Json(Status {
        peer_id: state.client.peer_id().to_string(),
        organisation: charter
            .charter()
            .node(&state.client.node_key())
            .map(|(member, _)| member.org),
        federation: charter.federation(),
        charter_version: charter.charter().version,
        peers,
        peers_target: state.client.peers_target(),
        peers_low: state.client.peers_low(),
        store: stats,
        store_error,
        disk: reading.disk,
        feeds,
        network,
    }))
}

/// What status and metrics read of the store. After a failed write some reads fail (see
/// `store::Store::recover`); status and metrics then still answer, with the disk's state
/// and the error, because that is when an operator needs them.
struct StoreReading {
    /// Counts and feeds, or why they could not be read.
    read: Result<(Stats, Vec<FeedState>), String>,
    disk: Space,
}

impl StoreReading {
    fn of(store: &Store) -> StoreReading {
        StoreReading {
            read: store
                .stats()
                .and_then(|stats| Ok((stats, store.feeds()?)))
                .map_err(|error| error.to_string()),
            disk: store.space(),
        }
    }
}

async fn metrics(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let peers = state.client.peers().await?.len();
    let store = state.store.clone();
    let reading = blocking(move || StoreReading::of(&store)).await?;
    let mut text = prometheus::render(
        &state.client.metrics(),
        &state.auth.counters(),
        reading.read.as_ref().ok().map(|(stats, _)| stats),
        &reading.disk,
        reading
            .read
            .as_ref()
            .ok()
            .map(|(_, feeds)| feeds.as_slice()),
        peers,
    ) + &warninglists::render_metrics(&state.client.warninglist_matches());
    state.client.archive_counters().render(&mut text);
    state.misp_feed.render_metrics(&mut text);
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

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
