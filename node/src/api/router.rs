//! The routes: which handler serves which path, whether a route writes (so a read token is
//! refused it), and the layers every request passes first (concurrency cap, browser
//! screening, authentication).

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use super::auth::authenticate;
use super::charter::{charter, push_charter};
use super::entries::{entries, feeds};
use super::lookup::{lookup_many, lookup_one};
use super::publish::publish;
use super::status::{metrics, status};
use super::{
    ApiError, ApiState, MAX_BODY_BYTES, OPENAPI, archive, exchange, guard, misp_feed, peers, ready,
    taxii, ui,
};

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
pub(super) fn writes(method: &Method, matched: Option<&str>) -> bool {
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
pub(super) fn client_address(request: &Request) -> IpAddr {
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
