use std::sync::Arc;

use axum::Router;
use axum::body::Body as HttpBody;
use axum::http::{HeaderMap, Method, Request as HttpRequest, StatusCode, header};
use http_body_util::BodyExt;
use threatmesh_protocol::bundle::{Distribution, Tlp};
use threatmesh_protocol::charter::{Charter, Member};
use threatmesh_protocol::item::Item;
use threatmesh_protocol::testing::key;
use threatmesh_protocol::{Kind, PublicKey, SignedCharter, Timestamp};
use tower::ServiceExt;

use super::router::writes;
use super::*;
use crate::formats::stix;
use crate::network;
use crate::store::{Options, Store};

pub(super) const TOKEN: &str = "s3cret-token";

/// A one-member federation's node with its API router.
pub(super) async fn node() -> (Router, Store, tempfile::TempDir) {
    node_with(ApiLimits::default()).await
}

/// [`node`] with other API limits.
async fn node_with(limits: ApiLimits) -> (Router, Store, tempfile::TempDir) {
    let (state, store, dir) = node_state().await;
    (router(state.with_limits(limits)), store, dir)
}

/// A one-member federation's node with its API state.
pub(super) async fn node_state() -> (ApiState, Store, tempfile::TempDir) {
    let (state, store, dir, event_loop) = node_parts();
    tokio::spawn(event_loop.run());
    (state, store, dir)
}

/// [`node_state`] with its network event loop not started: the caller runs it, or not.
/// No warninglists: these tests publish documentation addresses (RFC 5737), which the
/// default lists hold back; the warninglist tests (`api/warninglists/tests.rs`) turn
/// them on with [`node_parts_listing`].
fn node_parts() -> (ApiState, Store, tempfile::TempDir, network::EventLoop) {
    node_parts_listing(crate::warninglists::Warninglists::none())
}

/// [`node_parts`] checking values against `warninglists`.
pub(crate) fn node_parts_listing(
    warninglists: Arc<crate::warninglists::Warninglists>,
) -> (ApiState, Store, tempfile::TempDir, network::EventLoop) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &Options::default()).unwrap();
    let (steward, org, node) = (key(1), key(2), key(3));
    let mut member = Member::founding(
        &org,
        "CERT-XX",
        "XX",
        PublicKey::of(&node),
        Timestamp(1),
        Timestamp(u64::MAX),
    );
    member.encryption_key = Some(encryption().public_key());
    let charter =
        SignedCharter::genesis_by(&steward, "API test", Timestamp(1), vec![member]).unwrap();
    store.put_charter(&charter).unwrap();
    let config = network::Config {
        encryption_keys: vec![encryption()],
        warninglists,
        ..network::Config::default()
    };
    let (client, event_loop) = network::new(config, node.clone(), store.clone(), charter).unwrap();
    let publisher = crate::publish::Publisher::new(node, store.clone(), client.clone());
    let state = ApiState::new(store.clone(), client, publisher, vec![TOKEN.into()]);
    (state, store, dir, event_loop)
}

/// The organisation's encryption key.
fn encryption() -> threatmesh_protocol::EncryptionSecret {
    threatmesh_protocol::EncryptionSecret::from_bytes([4; 32])
}

/// The organisation's id, in hex.
pub(super) fn own_org() -> String {
    PublicKey::of(&key(2)).to_string()
}

pub(super) async fn call(
    router: &Router,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> (StatusCode, String) {
    let mut request = HttpRequest::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json");
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let response = router
        .clone()
        .oneshot(request.body(HttpBody::from(body.to_owned())).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

pub(super) const PUBLISH: &str = r#"{"tlp": "green", "items": [
    {"type": "indicator", "kind": "ipv4", "value": "198.51.100[.]23", "valid_from": 1700000000000,
     "labels": ["c2"], "context": {"threat": "QakBot"}},
    {"type": "indicator", "kind": "domain", "value": "Evil.Example.", "valid_from": 1700000000000}
]}"#;

/// The conditions `/readyz` names as failing, and its status.
async fn readiness(router: &Router) -> (StatusCode, Vec<String>) {
    let (status, body) = call(router, "GET", "/readyz", None, "").await;
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["ready"], status == StatusCode::OK, "{body}");
    let failing = body["failing"]
        .as_array()
        .unwrap()
        .iter()
        .map(|failing| {
            assert!(!failing["reason"].as_str().unwrap().is_empty(), "{body}");
            failing["condition"].as_str().unwrap().to_owned()
        })
        .collect();
    (status, failing)
}

#[tokio::test]
async fn a_node_whose_event_loop_does_not_answer_is_alive_but_not_ready() {
    // The event loop is built but never run: requests to it are never answered, as with a
    // loop stuck on something.
    let (state, _store, _dir, event_loop) = node_parts();
    let router = router(state);
    let (status, body) = call(&router, "GET", "/healthz", None, "").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "ok\n"));
    let (status, failing) = readiness(&router).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(failing, [ready::condition::EVENT_LOOP_NOT_ANSWERING]);
    // A loop that has stopped altogether is not ready either.
    drop(event_loop);
    let (status, failing) = readiness(&router).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(failing, [ready::condition::EVENT_LOOP_NOT_ANSWERING]);
}

#[tokio::test]
async fn a_node_without_members_or_with_a_full_disk_is_not_ready() {
    // The federation has one member: no other member's node can be connected.
    let (router, store, _dir) = node().await;
    let (status, failing) = readiness(&router).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(failing, [ready::condition::NO_MEMBER_CONNECTED]);
    // The disk falls under the reserve: the store refuses writes, and says so.
    store.set_reserve(u64::MAX);
    let (status, failing) = readiness(&router).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        failing,
        [
            ready::condition::STORE_REFUSES_WRITES,
            ready::condition::NO_MEMBER_CONNECTED
        ]
    );
}

#[tokio::test]
async fn health_needs_no_token() {
    let (router, _store, _dir) = node().await;
    let (status, body) = call(&router, "GET", "/healthz", None, "").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "ok\n"));
}

#[tokio::test]
async fn missing_or_wrong_token_is_refused_and_nothing_is_stored() {
    let (router, store, _dir) = node().await;
    for token in [
        None,
        Some("wrong"),
        Some("s3cret-token-but-longer"),
        Some(""),
    ] {
        let (status, body) = call(&router, "POST", "/api/v1/publish", token, PUBLISH).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{token:?}: {body}");
        assert!(body.contains("bearer token"), "{body}");
    }
    let (status, _) = call(&router, "GET", "/metrics", None, "").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(store.stats().unwrap().entries, 0);
}

#[tokio::test]
async fn malformed_json_is_a_400_that_names_the_problem() {
    let (router, store, _dir) = node().await;
    let (status, body) = call(
        &router,
        "POST",
        "/api/v1/publish",
        Some(TOKEN),
        r#"{"items": ["#,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("EOF") || body.contains("syntax"), "{body}");
    assert_eq!(store.stats().unwrap().entries, 0);
}

#[tokio::test]
async fn invalid_indicator_is_a_422_that_names_the_value_and_why() {
    let (router, store, _dir) = node().await;
    let bad = r#"{"items": [{"type": "indicator", "kind": "ipv4", "value": "300.1.2.3",
        "valid_from": 1700000000000}]}"#;
    let (status, body) = call(&router, "POST", "/api/v1/publish", Some(TOKEN), bad).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body.contains("300.1.2.3"), "{body}");
    assert!(body.contains("out of range"), "{body}");
    let unknown_kind = r#"{"items": [{"type": "indicator", "kind": "ipv5", "value": "x",
        "valid_from": 1}]}"#;
    let (status, body) = call(
        &router,
        "POST",
        "/api/v1/publish",
        Some(TOKEN),
        unknown_kind,
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body.contains("ipv5"), "{body}");
    let restricted = r#"{"tlp": "red", "items": [{"type": "indicator", "kind": "ipv4",
        "value": "192.0.2.1", "valid_from": 1}]}"#;
    let (status, body) = call(&router, "POST", "/api/v1/publish", Some(TOKEN), restricted).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body.contains("sealed"), "{body}");
    assert_eq!(store.stats().unwrap().entries, 0);
}

#[tokio::test]
async fn published_indicators_are_found_one_by_one_and_in_bulk() {
    let (router, store, _dir) = node().await;
    let (status, body) = call(&router, "POST", "/api/v1/publish", Some(TOKEN), PUBLISH).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let published: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(published["entries"].as_array().unwrap().len(), 1);
    assert_eq!(store.stats().unwrap().records, 2);

    let (status, body) = call(
        &router,
        "GET",
        "/api/v1/indicators/ipv4/198.51.100.23",
        Some(TOKEN),
        "",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["known"], true);
    assert_eq!(answer["assertions"][0]["context"]["threat"], "QakBot");
    assert_eq!(answer["assertions"][0]["state"]["state"], "active");

    let (_, body) = call(
        &router,
        "GET",
        "/api/v1/indicators/ipv4/192.0.2.99",
        Some(TOKEN),
        "",
    )
    .await;
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["known"],
        false
    );

    let bulk = r#"{"values": ["evil.example", "hxxp://nowhere[.]example/x", "192.0.2.99",
        {"kind": "ipv4", "value": "198.51.100.23"}, "not a value at all!"]}"#;
    let (status, body) = call(&router, "POST", "/api/v1/lookup", Some(TOKEN), bulk).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["asked"], 5);
    let found: Vec<&str> = answer["found"]
        .as_array()
        .unwrap()
        .iter()
        .map(|lookup| lookup["value"]["value"].as_str().unwrap())
        .collect();
    assert_eq!(found, vec!["evil.example", "198.51.100.23"]);
    assert_eq!(answer["invalid"][0]["index"], 4);
}

#[tokio::test]
async fn bulk_lookup_over_the_limit_is_refused() {
    let (router, _store, _dir) = node().await;
    let values = vec!["192.0.2.1"; MAX_LOOKUP_VALUES + 1];
    let body = serde_json::json!({ "values": values }).to_string();
    let (status, body) = call(&router, "POST", "/api/v1/lookup", Some(TOKEN), &body).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
}

#[tokio::test]
async fn metrics_and_status_report_the_store_and_the_network() {
    let (router, _store, _dir) = node().await;
    call(&router, "POST", "/api/v1/publish", Some(TOKEN), PUBLISH).await;
    let (status, text) = call(&router, "GET", "/metrics", Some(TOKEN), "").await;
    assert_eq!(status, StatusCode::OK);
    assert!(text.contains("threatmesh_store_entries 1\n"), "{text}");
    assert!(text.contains("threatmesh_store_records 2\n"), "{text}");
    assert!(
        text.contains("threatmesh_entries_rejected_total{reason=\"bad-signature\"} 0\n"),
        "{text}"
    );
    assert!(text.contains("# TYPE threatmesh_peers gauge"), "{text}");
    // No peer connected: no byte on the wire yet, and each direction has its sample.
    for direction in ["in", "out"] {
        for name in [
            "transport_bytes_total",
            "sync_bytes_total",
            "identify_total",
        ] {
            let sample = format!("threatmesh_{name}{{direction=\"{direction}\"}} 0\n");
            assert!(text.contains(&sample), "{sample} in {text}");
        }
    }
    assert!(text.contains("threatmesh_pings_total 0\n"), "{text}");
    assert!(
        text.contains("threatmesh_ingest_seconds_bucket{le=\"+Inf\"} 0\n"),
        "{text}"
    );
    assert!(
        text.contains("threatmesh_ingest_seconds_count 0\n"),
        "{text}"
    );
    let (status, body) = call(&router, "GET", "/api/v1/status", Some(TOKEN), "").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status["store"]["entries"], 1);
    assert_eq!(status["organisation"], own_org());
    assert_eq!(status["charter_version"], 1);
    assert_eq!(status["feeds"][0]["missing_below_highest"], 0);
    assert_eq!(status["feeds"][0]["lag"], 0);
    assert_eq!(status["network"]["transport_bytes_sent"], 0);
    assert!(
        text.contains("# TYPE threatmesh_feed_lag_entries gauge"),
        "{text}"
    );
}

#[tokio::test]
async fn openapi_document_describes_every_route_and_only_those() {
    let (router, _store, _dir) = node().await;
    let (status, body) = call(&router, "GET", "/api/v1/openapi.json", None, "").await;
    assert_eq!(status, StatusCode::OK);
    let document: serde_json::Value = serde_json::from_str(&body).unwrap();
    let mut documented = Vec::new();
    for (path, methods) in document["paths"].as_object().unwrap() {
        for method in methods.as_object().unwrap().keys() {
            documented.push(format!("{} {path}", method.to_uppercase()));
        }
    }
    documented.sort();
    let mut served: Vec<String> = ROUTES
        .iter()
        .chain(taxii::ROUTES.iter())
        .map(|route| route.name.to_owned())
        .collect();
    served.sort();
    assert_eq!(documented, served);
    // A write's 403 says a read token gets it; a read's does not.
    for route in ROUTES.iter().chain(taxii::ROUTES.iter()) {
        let (method, path) = route.name.split_once(' ').unwrap();
        let forbidden = &document["paths"][path][method.to_lowercase()]["responses"]["403"];
        let forbidden = match forbidden["$ref"].as_str() {
            Some(reference) => {
                let name = reference.rsplit('/').next().unwrap();
                &document["components"]["responses"][name]
            }
            None => forbidden,
        };
        let description = forbidden["description"].as_str().unwrap();
        assert_eq!(
            description.contains("read token"),
            route.writes,
            "{}: {description}",
            route.name
        );
    }
    // And each route listed is really served: anything but the router's 404 or 405 (a
    // TAXII "no such object" 404 is an answer, and says so in a TAXII error body).
    for route in ROUTES.iter().chain(taxii::ROUTES.iter()) {
        let route = route.name;
        let (method, path) = route.split_once(' ').unwrap();
        let path = path
            .replace("{kind}", "ipv4")
            .replace("{value}", "192.0.2.1")
            .replace("{format}", "csv")
            .replace("{collection}", "c")
            .replace(
                "{object}",
                "indicator--00000000-0000-4000-8000-000000000000",
            )
            .replace("{status}", "s")
            .replace("{event}", "00000000-0000-4000-8000-000000000000.json");
        let (status, body) = call(&router, method, &path, Some(TOKEN), "{}").await;
        // So is the MISP feed's "no such event".
        let answered_404 = status == StatusCode::NOT_FOUND
            && (body.contains("http_status") || body.contains("no MISP event"));
        assert!(
            (status != StatusCode::NOT_FOUND || answered_404)
                && status != StatusCode::METHOD_NOT_ALLOWED,
            "{route}: {status}"
        );
    }
}

/// A TAXII request: basic auth with the token as password, TAXII media types.
pub(super) async fn taxii(
    router: &Router,
    method: &str,
    path: &str,
    body: Option<&serde_json::Value>,
) -> (StatusCode, HeaderMap, serde_json::Value) {
    use base64::Engine as _;
    let credentials = base64::engine::general_purpose::STANDARD.encode(format!("tool:{TOKEN}"));
    let request = HttpRequest::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Basic {credentials}"))
        .header("accept", taxii::TAXII_MEDIA_TYPE)
        .header("content-type", taxii::TAXII_MEDIA_TYPE)
        .body(HttpBody::from(
            body.map(ToString::to_string).unwrap_or_default(),
        ))
        .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let (status, headers) = (response.status(), response.headers().clone());
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    (status, headers, json)
}

/// The URL of collection `own` (writable) or shared.
pub(super) async fn collection_url(router: &Router, writable: bool) -> String {
    let (status, _, answer) = taxii(router, "GET", "/taxii2/root/collections/", None).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let collection = answer["collections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|collection| collection["can_write"] == writable)
        .unwrap();
    format!(
        "/taxii2/root/collections/{}/",
        collection["id"].as_str().unwrap()
    )
}

pub(super) fn stix_indicator(id: u32, address: &str, modified: &str) -> serde_json::Value {
    serde_json::json!({
        "type": "indicator", "spec_version": "2.1",
        "id": format!("indicator--00000000-0000-4000-8000-{id:012}"),
        "created": "2026-01-01T00:00:00.000Z", "modified": modified,
        "pattern": format!("[ipv4-addr:value = '{address}']"), "pattern_type": "stix",
        "valid_from": "2026-01-01T00:00:00Z",
    })
}

#[tokio::test]
async fn taxii_discovery_root_and_collections_answer_in_taxii_media_type() {
    let (router, _store, _dir) = node().await;
    let (status, headers, discovery) = taxii(&router, "GET", "/taxii2/", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], taxii::TAXII_MEDIA_TYPE);
    assert!(
        discovery["api_roots"][0]
            .as_str()
            .unwrap()
            .ends_with("/taxii2/root/"),
        "{discovery}"
    );
    let (status, _, root) = taxii(&router, "GET", "/taxii2/root/", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(root["versions"][0], taxii::TAXII_MEDIA_TYPE);
    assert_eq!(root["max_content_length"], MAX_BODY_BYTES);
    let (_, _, collections) = taxii(&router, "GET", "/taxii2/root/collections/", None).await;
    let collections = collections["collections"].as_array().unwrap();
    assert_eq!(collections.len(), 2);
    assert_eq!(
        collections
            .iter()
            .filter(|collection| collection["can_write"] == true)
            .count(),
        1
    );
    let own = collection_url(&router, true).await;
    let (status, _, one) = taxii(&router, "GET", &own, None).await;
    assert_eq!(
        (status, one["can_write"].clone()),
        (StatusCode::OK, true.into())
    );
    let (status, _, missing) = taxii(&router, "GET", "/taxii2/root/collections/nope/", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(missing["http_status"], "404");
}

#[tokio::test]
async fn taxii_refuses_wrong_credentials_and_media_types() {
    let (router, store, _dir) = node().await;
    let request = |auth: Option<&str>, accept: &str, method: &str, content_type: &str| {
        let mut builder = HttpRequest::builder()
            .method(method)
            .uri("/taxii2/")
            .header("accept", accept)
            .header("content-type", content_type);
        if let Some(auth) = auth {
            builder = builder.header("authorization", auth);
        }
        builder.body(HttpBody::empty()).unwrap()
    };
    use base64::Engine as _;
    let basic = |password: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("u:{password}"))
        )
    };
    for auth in [None, Some(basic("wrong")), Some("Basic !!!".to_owned())] {
        let response = router
            .clone()
            .oneshot(request(auth.as_deref(), taxii::TAXII_MEDIA_TYPE, "GET", ""))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{auth:?}");
        let challenges: Vec<_> = response
            .headers()
            .get_all("www-authenticate")
            .iter()
            .collect();
        assert!(
            challenges
                .iter()
                .any(|c| c.to_str().unwrap().starts_with("Basic"))
        );
        assert_eq!(response.headers()["content-type"], taxii::TAXII_MEDIA_TYPE);
    }
    let token = basic(TOKEN);
    let bearer = format!("Bearer {TOKEN}");
    for auth in [&token, &bearer] {
        let response = router
            .clone()
            .oneshot(request(Some(auth), taxii::TAXII_MEDIA_TYPE, "GET", ""))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    let response = router
        .clone()
        .oneshot(request(Some(&token), "application/json", "GET", ""))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_ACCEPTABLE);
    let own = collection_url(&router, true).await;
    let response = router
        .clone()
        .oneshot(
            HttpRequest::builder()
                .method("POST")
                .uri(format!("{own}objects/"))
                .header("authorization", &token)
                .header("content-type", "application/json")
                .body(HttpBody::from(r#"{"objects": []}"#))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(store.stats().unwrap().entries, 0);
}

#[tokio::test]
async fn taxii_post_publishes_and_objects_page_filter_and_look_up() {
    let (router, _store, _dir) = node().await;
    let own = collection_url(&router, true).await;
    let shared = collection_url(&router, false).await;
    let mut objects: Vec<serde_json::Value> = (1..=5)
        .map(|n| stix_indicator(n, &format!("203.0.113.{n}"), "2026-01-01T00:00:00.000Z"))
        .collect();
    // One broken object: it fails alone, the five others are published.
    objects.push(serde_json::json!({
        "type": "indicator", "spec_version": "2.1",
        "id": "indicator--00000000-0000-4000-8000-000000000099",
        "created": "2026-01-01T00:00:00.000Z", "modified": "2026-01-01T00:00:00.000Z",
        "pattern": "[ipv4-addr:value = '203.0.113.9'", "pattern_type": "stix",
        "valid_from": "2026-01-01T00:00:00Z",
    }));
    let envelope = serde_json::json!({ "objects": objects });
    let (status, _, answer) =
        taxii(&router, "POST", &format!("{own}objects/"), Some(&envelope)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(answer["status"], "complete");
    assert_eq!(
        (
            answer["success_count"].clone(),
            answer["failure_count"].clone()
        ),
        (5.into(), 1.into()),
        "{answer}"
    );
    assert_eq!(
        answer["failures"][0]["id"],
        "indicator--00000000-0000-4000-8000-000000000099"
    );
    let status_path = format!("/taxii2/root/status/{}/", answer["id"].as_str().unwrap());
    let (status, _, again) = taxii(&router, "GET", &status_path, None).await;
    assert_eq!((status, again), (StatusCode::OK, answer));

    // Writing to the shared collection is refused.
    let (status, _, _) = taxii(
        &router,
        "POST",
        &format!("{shared}objects/"),
        Some(&envelope),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Page the shared collection two at a time: every object once, in both listings.
    for listing in ["objects", "manifest"] {
        let mut seen = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let path = match &next {
                Some(next) => format!("{shared}{listing}/?limit=2&next={next}"),
                None => format!("{shared}{listing}/?limit=2"),
            };
            let (status, headers, page) = taxii(&router, "GET", &path, None).await;
            assert_eq!(status, StatusCode::OK, "{page}");
            assert!(headers.contains_key("x-taxii-date-added-first"));
            let listed = page["objects"].as_array().unwrap();
            assert!(listed.len() <= 2);
            seen.extend(
                listed
                    .iter()
                    .map(|object| object["id"].as_str().unwrap().to_owned()),
            );
            if page["more"] == true {
                next = Some(page["next"].as_str().unwrap().to_owned());
            } else {
                break;
            }
        }
        let unique: std::collections::BTreeSet<_> = seen.iter().collect();
        assert_eq!(unique.len(), seen.len(), "{listing}: {seen:?}");
        for n in 1..=5 {
            let id = format!("indicator--00000000-0000-4000-8000-{n:012}");
            assert!(seen.contains(&id), "{listing}: {id} missing from {seen:?}");
        }
        assert!(seen.iter().any(|id| id.starts_with("identity--")));
        assert!(seen.iter().any(|id| id.starts_with("marking-definition--")));
    }

    // Filters.
    let (_, _, indicators) = taxii(
        &router,
        "GET",
        &format!("{shared}objects/?match[type]=indicator"),
        None,
    )
    .await;
    assert_eq!(indicators["objects"].as_array().unwrap().len(), 5);
    let id = "indicator--00000000-0000-4000-8000-000000000003";
    let (_, _, one) = taxii(
        &router,
        "GET",
        &format!("{shared}objects/?match[id]={id}"),
        None,
    )
    .await;
    assert_eq!(one["objects"].as_array().unwrap().len(), 1);
    assert_eq!(
        one["objects"][0]["pattern"],
        "[ipv4-addr:value = '203.0.113.3']"
    );
    let (status, _, by_path) = taxii(&router, "GET", &format!("{own}objects/{id}/"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(by_path["objects"], one["objects"]);
    let (status, _, versions) = taxii(
        &router,
        "GET",
        &format!("{own}objects/{id}/versions/"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(versions["versions"].as_array().unwrap().len(), 1);
    let (status, _, _) = taxii(
        &router,
        "GET",
        &format!("{own}objects/indicator--00000000-0000-4000-8000-000000000099/"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    for bad in ["next=garbage", "limit=0", "added_after=yesterday"] {
        let (status, _, error) =
            taxii(&router, "GET", &format!("{shared}objects/?{bad}"), None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {error}");
        assert!(error["description"].as_str().is_some());
    }
    // Nothing was added after now.
    let (status, _, empty) = taxii(
        &router,
        "GET",
        &format!("{shared}objects/?added_after=2999-01-01T00:00:00Z"),
        None,
    )
    .await;
    assert_eq!((status, empty), (StatusCode::OK, serde_json::json!({})));
}

#[tokio::test]
async fn taxii_serves_every_version_and_lists_only_the_last_by_default() {
    let (router, _store, _dir) = node().await;
    let own = collection_url(&router, true).await;
    let id = "indicator--00000000-0000-4000-8000-000000000001";
    // The same indicator published twice: each publication is a version, dated by the
    // entry that carries it.
    for _ in 0..2 {
        let envelope = serde_json::json!({
            "objects": [stix_indicator(1, "203.0.113.1", "2026-01-01T00:00:00.000Z")]
        });
        let (status, _, answer) =
            taxii(&router, "POST", &format!("{own}objects/"), Some(&envelope)).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
        // Entries a millisecond apart at least, so the versions differ.
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    let (_, _, versions) = taxii(
        &router,
        "GET",
        &format!("{own}objects/{id}/versions/"),
        None,
    )
    .await;
    let versions = versions["versions"].as_array().unwrap().clone();
    assert_eq!(versions.len(), 2, "{versions:?}");
    assert!(versions[0].as_str() < versions[1].as_str());
    let (_, _, last) = taxii(&router, "GET", &format!("{own}objects/{id}/"), None).await;
    assert_eq!(last["objects"][0]["modified"], versions[1]);
    let (_, _, first) = taxii(
        &router,
        "GET",
        &format!("{own}objects/{id}/?match[version]=first"),
        None,
    )
    .await;
    assert_eq!(first["objects"][0]["modified"], versions[0]);
    let (_, _, all) = taxii(
        &router,
        "GET",
        &format!("{own}objects/{id}/?match[version]=all"),
        None,
    )
    .await;
    assert_eq!(all["objects"].as_array().unwrap().len(), 2);
    // The values of match[version] are ORed.
    let (_, _, ends) = taxii(
        &router,
        "GET",
        &format!("{own}objects/{id}/?match[version]=first,last"),
        None,
    )
    .await;
    assert_eq!(ends["objects"].as_array().unwrap().len(), 2);
    // One object's versions page like any list.
    let (_, _, page) = taxii(
        &router,
        "GET",
        &format!("{own}objects/{id}/?match[version]=all&limit=1"),
        None,
    )
    .await;
    assert_eq!(page["more"], true, "{page}");
    assert_eq!(page["objects"].as_array().unwrap().len(), 1);
    let next = page["next"].as_str().unwrap();
    let (_, _, rest) = taxii(
        &router,
        "GET",
        &format!("{own}objects/{id}/?match[version]=all&limit=1&next={next}"),
        None,
    )
    .await;
    assert_eq!(rest["more"], false, "{rest}");
    assert_eq!(rest["objects"][0]["modified"], versions[1]);
    // No STIX 2.0 objects here.
    let (_, _, none) = taxii(
        &router,
        "GET",
        &format!("{own}objects/?match[spec_version]=2.0"),
        None,
    )
    .await;
    assert_eq!(none, serde_json::json!({}));
    let (_, _, listed) = taxii(
        &router,
        "GET",
        &format!("{own}objects/?match[type]=indicator"),
        None,
    )
    .await;
    let listed = listed["objects"].as_array().unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["modified"], versions[1]);
    let (_, _, every) = taxii(
        &router,
        "GET",
        &format!("{own}objects/?match[type]=indicator&match[version]=all"),
        None,
    )
    .await;
    assert_eq!(every["objects"].as_array().unwrap().len(), 2);
}

fn peer_id(seed: u8) -> String {
    libp2p::identity::Keypair::ed25519_from_bytes([seed; 32])
        .unwrap()
        .public()
        .to_peer_id()
        .to_string()
}

#[tokio::test]
async fn operator_blocks_list_and_lifts_peers() {
    let (router, _store, _dir) = node().await;
    let list = |router: Router| async move {
        let (status, body) = call(&router, "GET", "/api/v1/peers/blocked", Some(TOKEN), "").await;
        assert_eq!(status, StatusCode::OK);
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["blocked"].clone()
    };
    assert_eq!(list(router.clone()).await, serde_json::json!([]));
    let (status, _) = call(&router, "GET", "/api/v1/peers/blocked", None, "").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let (a, b) = (peer_id(9), peer_id(10));
    let request = |peer: &str, seconds: Option<u64>| {
        serde_json::json!({ "peer_id": peer, "seconds": seconds }).to_string()
    };
    let (status, body) = call(
        &router,
        "POST",
        "/api/v1/peers/blocked",
        Some(TOKEN),
        &request(&a, Some(60)),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, _) = call(
        &router,
        "POST",
        "/api/v1/peers/blocked",
        Some(TOKEN),
        &request(&b, None),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let blocked = list(router.clone()).await;
    let entry = |peer: &str| {
        blocked
            .as_array()
            .unwrap()
            .iter()
            .find(|entry| entry["peer_id"] == peer)
            .cloned()
            .unwrap()
    };
    assert_eq!(blocked.as_array().unwrap().len(), 2);
    assert_eq!(entry(&a)["reason"], "operator");
    let left = entry(&a)["remaining_seconds"].as_u64().unwrap();
    assert!((1..=60).contains(&left), "{left}");
    assert!(entry(&b).get("remaining_seconds").is_none(), "{blocked}");

    let path = format!("/api/v1/peers/blocked/{a}");
    let (status, _) = call(&router, "DELETE", &path, Some(TOKEN), "").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = call(&router, "DELETE", &path, Some(TOKEN), "").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let blocked = list(router.clone()).await;
    assert_eq!(blocked.as_array().unwrap().len(), 1);
    assert_eq!(blocked[0]["peer_id"], b);
}

#[tokio::test]
async fn block_requests_that_make_no_sense_are_refused() {
    let (router, _store, _dir) = node().await;
    let own = peer_id(3); // the node's own key
    for (body, why) in [
        (r#"{"peer_id": "not-a-peer"}"#.to_owned(), "bad peer id"),
        (
            format!(r#"{{"peer_id": "{}", "seconds": 0}}"#, peer_id(9)),
            "zero seconds",
        ),
        (
            format!(
                r#"{{"peer_id": "{}", "seconds": 999999999999}}"#,
                peer_id(9)
            ),
            "too long",
        ),
        (format!(r#"{{"peer_id": "{own}"}}"#), "itself"),
    ] {
        let (status, answer) =
            call(&router, "POST", "/api/v1/peers/blocked", Some(TOKEN), &body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{why}: {answer}");
    }
    let (status, _) = call(
        &router,
        "DELETE",
        "/api/v1/peers/blocked/not-a-peer",
        Some(TOKEN),
        "",
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (_, body) = call(&router, "GET", "/api/v1/peers/blocked", Some(TOKEN), "").await;
    assert_eq!(body, r#"{"blocked":[]}"#);
}

#[tokio::test]
async fn taxii_lists_an_object_shared_by_entries_once_and_finds_it_by_id() {
    let (router, _store, _dir) = node().await;
    let own = collection_url(&router, true).await;
    // Two publications of indicators of the same malware: the malware object is in both
    // entries' exports, the same version.
    for n in 1..=2u32 {
        let envelope = serde_json::json!({ "objects": [
            stix_indicator(n, &format!("203.0.113.{n}"), "2026-01-01T00:00:00.000Z"),
            { "type": "malware", "spec_version": "2.1",
              "id": "malware--00000000-0000-4000-8000-0000000000aa",
              "created": "2026-01-01T00:00:00.000Z", "modified": "2026-01-01T00:00:00.000Z",
              "name": "QakBot", "is_family": true },
            { "type": "relationship", "spec_version": "2.1",
              "id": format!("relationship--00000000-0000-4000-8000-0000000000b{n}"),
              "created": "2026-01-01T00:00:00.000Z", "modified": "2026-01-01T00:00:00.000Z",
              "relationship_type": "indicates",
              "source_ref": format!("indicator--00000000-0000-4000-8000-{n:012}"),
              "target_ref": "malware--00000000-0000-4000-8000-0000000000aa" },
        ]});
        let (status, _, answer) =
            taxii(&router, "POST", &format!("{own}objects/"), Some(&envelope)).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    }
    let (_, _, malware) = taxii(
        &router,
        "GET",
        &format!("{own}objects/?match[type]=malware"),
        None,
    )
    .await;
    let malware = malware["objects"].as_array().unwrap().clone();
    assert_eq!(malware.len(), 1, "{malware:?}");
    assert_eq!(malware[0]["name"], "QakBot");
    let id = malware[0]["id"].as_str().unwrap();
    let (status, _, found) = taxii(&router, "GET", &format!("{own}objects/{id}/"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(found["objects"].as_array().unwrap().len(), 1);
    assert_eq!(found["objects"][0], malware[0]);
    let (_, _, versions) = taxii(
        &router,
        "GET",
        &format!("{own}objects/{id}/versions/"),
        None,
    )
    .await;
    assert_eq!(versions["versions"].as_array().unwrap().len(), 1);
    // Each indicator indicates it.
    let (_, _, relationships) = taxii(
        &router,
        "GET",
        &format!("{own}objects/?match[type]=relationship"),
        None,
    )
    .await;
    let relationships = relationships["objects"].as_array().unwrap();
    assert_eq!(relationships.len(), 2, "{relationships:?}");
    assert!(relationships.iter().all(|r| r["target_ref"] == id));
}

#[tokio::test]
async fn restricted_content_in_the_clear_is_refused_with_a_clear_message() {
    let (router, store, _dir) = node().await;
    for tlp in ["red", "amber+strict"] {
        let body = format!(
            r#"{{"tlp": "{tlp}", "items": [{{"type": "indicator", "kind": "ipv4", "value": "203.0.113.9", "valid_from": 1700000000000}}]}}"#
        );
        let (status, answer) = call(&router, "POST", "/api/v1/publish", Some(TOKEN), &body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
        assert!(answer.contains("name its recipients"), "{answer}");
        assert!(answer.contains("in the clear"), "{answer}");
    }
    // A recipient that is not a member.
    let body = format!(
        r#"{{"tlp": "red", "distribution": {{"recipients": ["{}"]}}, "items": [{{"type": "indicator", "kind": "ipv4", "value": "203.0.113.9", "valid_from": 1700000000000}}]}}"#,
        "ab".repeat(32)
    );
    let (status, answer) = call(&router, "POST", "/api/v1/publish", Some(TOKEN), &body).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert!(answer.contains("is not a member"), "{answer}");
    assert_eq!(store.stats().unwrap().entries, 0, "nothing was published");
}

#[tokio::test]
async fn red_content_for_named_recipients_is_sealed_and_readable_by_the_publisher() {
    let (router, store, _dir) = node().await;
    let body = format!(
        r#"{{"tlp": "red", "distribution": {{"recipients": ["{}"]}}, "items": [{{"type": "indicator", "kind": "ipv4", "value": "203.0.113.9", "valid_from": 1700000000000}}]}}"#,
        own_org()
    );
    let (status, answer) = call(&router, "POST", "/api/v1/publish", Some(TOKEN), &body).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_eq!(store.stats().unwrap().sealed, 1);
    let (status, answer) = call(
        &router,
        "GET",
        "/api/v1/indicators/ipv4/203.0.113.9",
        Some(TOKEN),
        "",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert!(answer.contains(r#""known":true"#), "{answer}");
    assert!(answer.contains(r#""tlp":"red""#), "{answer}");
    let (status, answer) = call(&router, "GET", "/api/v1/entries", Some(TOKEN), "").await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let page: serde_json::Value = serde_json::from_str(&answer).unwrap();
    let entry = &page["entries"][0];
    assert!(
        entry["body"]["sealed"]["ciphertext"].is_string(),
        "{answer}"
    );
    assert_eq!(entry["body"]["sealed"]["slots"][0]["org"], own_org());
    assert_eq!(
        entry["opened"]["items"][0]["value"], "203.0.113.9",
        "{answer}"
    );
    let (_, metrics) = call(&router, "GET", "/metrics", Some(TOKEN), "").await;
    assert!(
        metrics.contains("threatmesh_store_sealed_entries 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn taxii_page_reads_a_bounded_number_of_entries_and_says_where_to_go_on() {
    let (router, _store, _dir) = node().await;
    let shared = collection_url(&router, false).await;
    for n in 0..(taxii::MAX_ROWS_PER_PAGE + 10) {
        let body = format!(
            r#"{{"tlp": "green", "items": [{{"type": "indicator", "kind": "ipv4", "value": "10.1.{}.{}", "valid_from": 1700000000000}}]}}"#,
            n / 256,
            n % 256
        );
        let (status, answer) = call(&router, "POST", "/api/v1/publish", Some(TOKEN), &body).await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
    }
    // Nothing matches: the first page stops at its budget, empty, and says go on; the
    // next one ends the listing.
    let (status, _, first) = taxii(
        &router,
        "GET",
        &format!("{shared}objects/?match[type]=campaign"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(first["more"], true, "{first}");
    assert!(first.get("objects").is_none(), "{first}");
    let next = first["next"].as_str().unwrap();
    let (_, _, second) = taxii(
        &router,
        "GET",
        &format!("{shared}objects/?match[type]=campaign&next={next}"),
        None,
    )
    .await;
    assert_eq!(second, serde_json::json!({}));
    // Without the filter every indicator is listed once across the pages.
    let mut seen = std::collections::BTreeSet::new();
    let mut next: Option<String> = None;
    loop {
        let path = match &next {
            Some(next) => format!("{shared}objects/?match[type]=indicator&limit=100&next={next}"),
            None => format!("{shared}objects/?match[type]=indicator&limit=100"),
        };
        let (_, _, page) = taxii(&router, "GET", &path, None).await;
        for object in page["objects"].as_array().into_iter().flatten() {
            assert!(seen.insert(object["id"].as_str().unwrap().to_owned()));
        }
        match page["next"].as_str() {
            Some(cursor) => next = Some(cursor.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), taxii::MAX_ROWS_PER_PAGE + 10);
}

#[tokio::test]
async fn full_disk_is_a_507_that_says_so_and_reads_and_status_go_on() {
    let (router, store, _dir) = node().await;
    let (status, body) = call(&router, "POST", "/api/v1/publish", Some(TOKEN), PUBLISH).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let free = store.space().free_bytes.unwrap();
    store.set_reserve(free.saturating_mul(2));

    let (status, body) = call(&router, "POST", "/api/v1/publish", Some(TOKEN), PUBLISH).await;
    assert_eq!(status, StatusCode::INSUFFICIENT_STORAGE, "{body}");
    assert!(
        body.contains("writes are refused until space is freed"),
        "{body}"
    );
    let (status, body) = call(
        &router,
        "GET",
        "/api/v1/indicators/ipv4/198.51.100.23",
        Some(TOKEN),
        "",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains(r#""known":true"#), "{body}");
    let (status, body) = call(&router, "GET", "/api/v1/status", Some(TOKEN), "").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let status_json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status_json["disk"]["writes_refused_full"], 1, "{body}");
    let (_, metrics) = call(&router, "GET", "/metrics", Some(TOKEN), "").await;
    assert!(
        metrics.contains("threatmesh_store_writes_refused_total{reason=\"disk-full\"} 1\n"),
        "{metrics}"
    );

    store.set_reserve(1);
    let (status, body) = call(&router, "POST", "/api/v1/publish", Some(TOKEN), PUBLISH).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

#[tokio::test]
async fn taxii_index_catches_up_in_the_background_without_a_request() {
    let (state, store, _dir) = node_state().await;
    let router = router(state.clone());
    for _ in 0..3 {
        let (status, body) = call(&router, "POST", "/api/v1/publish", Some(TOKEN), PUBLISH).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let newest = store.last_added_key().unwrap().unwrap();
    let own = PublicKey::of(&key(2));
    let index = crate::store::ObjectIndex::new(&store, Some(own), Arc::default());
    let reached = || index.reached().unwrap();
    assert_eq!(reached(), None, "nothing indexed before the indexer runs");

    let indexer = tokio::spawn(keep_taxii_index(state));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while reached().as_ref() != Some(&newest) {
        assert!(
            std::time::Instant::now() < deadline,
            "the index never caught up"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // And it follows later entries, still without a request.
    let (status, body) = call(&router, "POST", "/api/v1/publish", Some(TOKEN), PUBLISH).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let newest = store.last_added_key().unwrap().unwrap();
    while reached().as_ref() != Some(&newest) {
        assert!(
            std::time::Instant::now() < deadline,
            "the index stopped following"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    indexer.abort();
}

/// The value of `name` in Prometheus text `metrics`.
fn sample(metrics: &str, name: &str) -> Option<u64> {
    metrics.lines().find_map(|line| {
        line.strip_prefix(name)
            .and_then(|rest| rest.strip_prefix(' '))
            .and_then(|value| value.parse().ok())
    })
}

#[tokio::test]
async fn failed_authentications_are_counted_by_reason_in_metrics() {
    let (router, _store, _dir) = node().await;
    for token in [
        None,
        Some("wrong-token-number-one"),
        Some("wrong-token-number-two"),
    ] {
        let (status, _) = call(&router, "GET", "/api/v1/feeds", token, "").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let (status, metrics) = call(&router, "GET", "/metrics", Some(TOKEN), "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        sample(
            &metrics,
            "threatmesh_api_auth_failures_total{reason=\"missing\"}"
        ),
        Some(1),
        "{metrics}"
    );
    assert_eq!(
        sample(
            &metrics,
            "threatmesh_api_auth_failures_total{reason=\"wrong\"}"
        ),
        Some(2)
    );
    assert_eq!(
        sample(&metrics, "threatmesh_api_auth_throttled_total"),
        Some(0)
    );
    assert_eq!(sample(&metrics, "threatmesh_api_overloaded_total"), Some(0));
}

#[tokio::test]
async fn guessing_tokens_gets_429_until_the_window_ends_even_with_the_right_token() {
    let (router, store, _dir) = node_with(ApiLimits {
        max_auth_failures: 3,
        auth_failure_window: std::time::Duration::from_secs(3600),
        ..ApiLimits::default()
    })
    .await;
    for guess in 0..3 {
        let token = format!("guess-number-{guess}");
        let (status, _) = call(&router, "POST", "/api/v1/publish", Some(&token), PUBLISH).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    for token in ["guess-number-3", TOKEN] {
        let request = HttpRequest::post("/api/v1/publish")
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {token}"))
            .body(HttpBody::from(PUBLISH))
            .unwrap();
        let response = router.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS, "{token}");
        let wait: u64 = response.headers()[header::RETRY_AFTER]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=3600).contains(&wait), "Retry-After: {wait}");
    }
    // TAXII clients get a TAXII error.
    let request = HttpRequest::get("/taxii2/")
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(HttpBody::empty())
        .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(store.stats().unwrap().entries, 0, "nothing published");
    // The health check needs no token and is not throttled.
    let (status, _) = call(&router, "GET", "/healthz", None, "").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn requests_without_credentials_never_lock_the_right_token_out() {
    // Any web page can make a browser on the node's machine send such requests (an
    // image, a form); were they counted, the page would keep the organisation's own
    // tools in 429.
    let (router, _store, _dir) = node_with(ApiLimits {
        max_auth_failures: 3,
        auth_failure_window: std::time::Duration::from_secs(3600),
        ..ApiLimits::default()
    })
    .await;
    for _ in 0..20 {
        let (status, _) = call(&router, "GET", "/api/v1/feeds", None, "").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        // Basic credentials a browser cached for /taxii2/, sent elsewhere.
        let request = HttpRequest::get("/api/v1/feeds")
            .header("authorization", basic_auth(TOKEN))
            .body(HttpBody::empty())
            .unwrap();
        let response = router.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    let (status, body) = call(&router, "POST", "/api/v1/publish", Some(TOKEN), PUBLISH).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, metrics) = call(&router, "GET", "/metrics", Some(TOKEN), "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        sample(
            &metrics,
            "threatmesh_api_auth_failures_total{reason=\"missing\"}"
        ),
        Some(40),
        "{metrics}"
    );
    assert_eq!(
        sample(&metrics, "threatmesh_api_auth_throttled_total"),
        Some(0)
    );
}

#[tokio::test]
async fn the_failure_limit_goes_by_the_client_address_over_real_connections() {
    let (router, _store, _dir) = node_with(ApiLimits {
        max_auth_failures: 2,
        ..ApiLimits::default()
    })
    .await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(serve(listener, router, std::future::pending()));
    let get = move |token: &'static str| {
        tokio::task::spawn_blocking(move || {
            use std::io::{Read as _, Write as _};
            let mut stream = std::net::TcpStream::connect(address).unwrap();
            stream
                .set_read_timeout(Some(std::time::Duration::from_secs(30)))
                .unwrap();
            write!(
                stream,
                "GET /api/v1/feeds HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
            )
            .unwrap();
            let mut response = String::new();
            stream.read_to_string(&mut response).unwrap();
            response
        })
    };
    assert!(
        get("wrong-token-one")
            .await
            .unwrap()
            .starts_with("HTTP/1.1 401")
    );
    assert!(get(TOKEN).await.unwrap().starts_with("HTTP/1.1 200"));
    assert!(
        get("wrong-token-two")
            .await
            .unwrap()
            .starts_with("HTTP/1.1 401")
    );
    let throttled = get(TOKEN).await.unwrap();
    assert!(throttled.starts_with("HTTP/1.1 429"), "{throttled}");
    assert!(
        throttled.to_ascii_lowercase().contains("\r\nretry-after: "),
        "{throttled}"
    );
    assert!(throttled.contains("127.0.0.1"), "{throttled}");
}

#[tokio::test]
async fn requests_over_the_concurrency_cap_get_503_at_once() {
    use futures::SinkExt;

    let (router, _store, _dir) = node_with(ApiLimits {
        max_concurrent_requests: 1,
        ..ApiLimits::default()
    })
    .await;
    // A publish whose body never ends holds the only slot.
    let (mut body, chunks) = futures::channel::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(1);
    let request = HttpRequest::post("/api/v1/publish")
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(HttpBody::from_stream(chunks))
        .unwrap();
    let held = tokio::spawn(router.clone().oneshot(request));
    body.send(Ok(b"{\"items\": [".to_vec())).await.unwrap();
    // Once the handler reads the body, the slot is taken.
    let mut refused = None;
    for _ in 0..200 {
        let request = HttpRequest::get("/healthz")
            .body(HttpBody::empty())
            .unwrap();
        let response = router.clone().oneshot(request).await.unwrap();
        if response.status() == StatusCode::SERVICE_UNAVAILABLE {
            refused = Some(response);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let refused = refused.expect("a second request refused while the first is served");
    assert_eq!(refused.headers()[header::RETRY_AFTER], "1");
    // The first ends (a body that is not JSON): the slot frees.
    drop(body);
    let response = held.await.unwrap().unwrap();
    assert!(response.status().is_client_error(), "{}", response.status());
    let (status, metrics) = call(&router, "GET", "/metrics", Some(TOKEN), "").await;
    assert_eq!(status, StatusCode::OK);
    assert!(sample(&metrics, "threatmesh_api_overloaded_total").unwrap() >= 1);
}

/// A request as a browser sends it: `headers` as given, the body as it is.
pub(super) async fn raw(
    router: &Router,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (StatusCode, String) {
    let mut request = HttpRequest::builder().method(method).uri(path);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = router
        .clone()
        .oneshot(request.body(HttpBody::from(body.to_owned())).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

fn basic_auth(password: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("analyst:{password}"))
    )
}

#[tokio::test]
async fn a_hostile_page_cannot_make_a_browser_publish() {
    // The analyst's browser once opened /taxii2/ and keeps the basic credentials for the
    // node; a page on another site then posts a form to the import route. The browser adds
    // the cached credentials and, as for every cross-site POST, the page's Origin.
    let (router, store, _dir) = node().await;
    let basic = basic_auth(TOKEN);
    let form = [
        ("host", "127.0.0.1:8080"),
        ("origin", "https://attacker.example"),
        ("authorization", basic.as_str()),
        ("content-type", "text/plain"),
    ];
    let (status, body) = raw(
        &router,
        "POST",
        "/api/v1/import/csv?tlp=clear",
        &form,
        "198.51.100.66\n",
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body.contains("another origin"), "{body}");
    // Without the Origin (an older browser, a privacy extension stripping it), the form's
    // media type and the cached basic credentials are refused each on their own.
    let (status, body) = raw(
        &router,
        "POST",
        "/api/v1/import/csv?tlp=clear",
        &form[..1]
            .iter()
            .chain(&form[2..])
            .copied()
            .collect::<Vec<_>>(),
        "198.51.100.66\n",
    )
    .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{body}");
    let (status, body) = raw(
        &router,
        "POST",
        "/api/v1/import/csv?tlp=clear",
        &[
            ("authorization", basic.as_str()),
            ("content-type", "text/csv"),
        ],
        "198.51.100.66\n",
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(body.contains("Bearer"), "{body}");
    assert_eq!(store.stats().unwrap().entries, 0, "nothing was published");

    // The organisation's own tools still import: bearer token, the file's media type, no
    // Origin (or the API's own).
    let bearer = format!("Bearer {TOKEN}");
    for origin in [None, Some("http://127.0.0.1:8080")] {
        let mut headers = vec![
            ("host", "127.0.0.1:8080"),
            ("authorization", bearer.as_str()),
            ("content-type", "text/csv; charset=utf-8"),
        ];
        headers.extend(origin.map(|origin| ("origin", origin)));
        let (status, body) = raw(
            &router,
            "POST",
            "/api/v1/import/csv?tlp=clear",
            &headers,
            "198.51.100.66\n",
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{origin:?}: {body}");
    }
    assert!(store.stats().unwrap().entries > 0);
    let (_, metrics) = call(&router, "GET", "/metrics", Some(TOKEN), "").await;
    assert_eq!(
        sample(
            &metrics,
            "threatmesh_api_browser_refused_total{reason=\"foreign-origin\"}"
        ),
        Some(1),
        "{metrics}"
    );
    assert_eq!(
        sample(
            &metrics,
            "threatmesh_api_browser_refused_total{reason=\"media-type\"}"
        ),
        Some(1),
        "{metrics}"
    );
}

/// The time now, as entries carry it.
fn now() -> Timestamp {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    Timestamp(u64::try_from(since.as_millis()).unwrap())
}

/// Another member's entry, received from the network: organisation key seed
/// `org_seed`, created at `created`, asserting each (address, kept STIX id).
fn foreign_entry(
    store: &Store,
    org_seed: u8,
    created: Timestamp,
    indicators: &[(&str, Option<&str>)],
) -> PublicKey {
    use threatmesh_protocol::item::Indicator;
    let org = PublicKey::of(&key(org_seed));
    let node = key(org_seed.wrapping_add(1));
    let items = indicators
        .iter()
        .map(|(address, kept)| {
            let value = threatmesh_protocol::Value::parse(Kind::Ipv4, address).unwrap();
            let mut indicator = Indicator::new(value, created);
            indicator.context.stix_id = kept.map(str::to_owned);
            Item::Indicator(indicator)
        })
        .collect();
    let bundle = threatmesh_protocol::Bundle {
        tlp: Tlp::Green,
        distribution: Distribution::Federation,
        items,
    };
    let federation = store.latest_charter().unwrap().unwrap().federation();
    let entry = threatmesh_protocol::SignedEntry::next(
        &node,
        federation,
        None,
        created,
        threatmesh_protocol::Body::Bundle(bundle),
    )
    .unwrap();
    store.ingest(&entry, org, now()).unwrap();
    org
}

/// The version filters of TAXII's object routes: none, last, first, all.
const VERSION_FILTERS: [&str; 4] = [
    "",
    "?match[version]=last",
    "?match[version]=first",
    "?match[version]=all",
];

/// The indicators a TAXII GET of `url` lists, sorted (see [`listed_indicators`]); the
/// answer must be 200.
async fn indicators_at(router: &Router, url: &str) -> Vec<(String, String, String)> {
    let (status, _, answer) = taxii(router, "GET", url, None).await;
    assert_eq!(status, StatusCode::OK, "{url}: {answer}");
    let mut listed = listed_indicators(&answer);
    listed.sort();
    listed
}

/// The indicators TAXII `answer` holds, as (id, pattern, creator).
fn listed_indicators(answer: &serde_json::Value) -> Vec<(String, String, String)> {
    answer["objects"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter(|object| object["type"] == "indicator")
        .map(|object| {
            let text = |field: &str| object[field].as_str().unwrap_or_default().to_owned();
            (text("id"), text("pattern"), text("created_by_ref"))
        })
        .collect()
}

#[tokio::test]
async fn a_member_cannot_replace_another_organisations_objects_in_taxii() {
    let (router, store, _dir) = node().await;
    let own = PublicKey::of(&key(2));
    let a = stix::identity_id(&own);
    let shared = collection_url(&router, false).await;
    // This node's organisation, A, publishes one object with its own STIX id (over
    // TAXII) and one without (its id is derived from A and the value).
    let envelope = serde_json::json!({
        "objects": [stix_indicator(1, "203.0.113.1", "2026-01-01T00:00:00.000Z")]
    });
    let own_collection = collection_url(&router, true).await;
    let (status, _, answer) = taxii(
        &router,
        "POST",
        &format!("{own_collection}objects/"),
        Some(&envelope),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    let kept = "indicator--00000000-0000-4000-8000-000000000001";
    let (status, body) = call(&router, "POST", "/api/v1/publish", Some(TOKEN), PUBLISH).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let derived = stix::indicator_id(
        &own,
        &threatmesh_protocol::Value::parse(Kind::Ipv4, "198.51.100.23").unwrap(),
    );
    let a_objects = [
        (kept, "[ipv4-addr:value = '203.0.113.1']"),
        (derived.as_str(), "[ipv4-addr:value = '198.51.100.23']"),
    ];
    // Member B then publishes its own values under both of A's ids, a minute later, so
    // that its objects would be the newest versions of them.
    let org_b = foreign_entry(
        &store,
        20,
        Timestamp(now().as_millis() + 60_000),
        &[
            ("192.0.2.66", Some(kept)),
            ("192.0.2.67", Some(derived.as_str())),
        ],
    );
    let b = stix::identity_id(&org_b);

    // Each of A's ids names A's object and nothing else, whichever version is asked for.
    for (id, pattern) in a_objects {
        let expected = vec![(id.to_owned(), pattern.to_owned(), a.clone())];
        for filter in VERSION_FILTERS {
            let listed = indicators_at(&router, &format!("{shared}objects/{id}/{filter}")).await;
            assert_eq!(listed, expected, "{id}{filter}");
        }
        let listed = indicators_at(
            &router,
            &format!("{shared}objects/?match[id]={id}&match[version]=all"),
        )
        .await;
        assert_eq!(listed, expected, "match[id]={id}");
        let (_, _, versions) = taxii(
            &router,
            "GET",
            &format!("{shared}objects/{id}/versions/"),
            None,
        )
        .await;
        assert_eq!(versions["versions"].as_array().map(Vec::len), Some(1));
    }
    // The collection lists A's objects unchanged, and B's under ids of B's own.
    for filter in ["", "&match[version]=first", "&match[version]=all"] {
        let (_, _, answer) = taxii(
            &router,
            "GET",
            &format!("{shared}objects/?match[type]=indicator{filter}"),
            None,
        )
        .await;
        let listed = listed_indicators(&answer);
        // A's three (PUBLISH holds a domain too) and B's two.
        assert_eq!(listed.len(), 5, "{filter}: {listed:?}");
        for (id, pattern) in a_objects {
            assert!(
                listed.contains(&(id.to_owned(), pattern.to_owned(), a.clone())),
                "{filter}: A's {id} missing from {listed:?}"
            );
        }
        let from_b: Vec<_> = listed.iter().filter(|(_, _, by)| *by == b).collect();
        assert_eq!(from_b.len(), 2, "{filter}: {listed:?}");
        for (id, pattern, _) in from_b {
            assert!(id != kept && *id != derived, "B took A's id: {listed:?}");
            assert!(pattern.contains("192.0.2.6"), "{pattern}");
            // And B's object is found under its own id.
            let (status, _, found) =
                taxii(&router, "GET", &format!("{shared}objects/{id}/"), None).await;
            assert_eq!(status, StatusCode::OK, "{found}");
            assert_eq!(
                listed_indicators(&found),
                vec![(id.clone(), pattern.clone(), b.clone())]
            );
        }
    }
    let (_, _, manifest) = taxii(
        &router,
        "GET",
        &format!("{shared}manifest/?match[type]=indicator"),
        None,
    )
    .await;
    let ids: Vec<&str> = manifest["objects"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|record| record["id"].as_str())
        .collect();
    assert_eq!(ids.len(), 5, "{manifest}");
    assert_eq!(ids.iter().filter(|id| **id == kept).count(), 1);
    assert_eq!(ids.iter().filter(|id| **id == derived).count(), 1);
}

#[tokio::test]
async fn two_organisations_objects_under_one_id_stay_apart_in_taxii() {
    let (router, store, _dir) = node().await;
    let own = PublicKey::of(&key(2));
    let a = stix::identity_id(&own);
    let shared = collection_url(&router, false).await;
    // Member B publishes a value; its object's id is derived from B and the value.
    let org_b = foreign_entry(
        &store,
        20,
        Timestamp(now().as_millis() - 60_000),
        &[("192.0.2.80", None)],
    );
    let b = stix::identity_id(&org_b);
    let id = stix::indicator_id(
        &org_b,
        &threatmesh_protocol::Value::parse(Kind::Ipv4, "192.0.2.80").unwrap(),
    );
    // This node's own organisation publishes another value under that very id (its own
    // node exports its kept ids as they are): two objects now share one id here.
    let mut object = stix_indicator(80, "203.0.113.80", "2026-01-01T00:00:00.000Z");
    object["id"] = id.clone().into();
    let own_collection = collection_url(&router, true).await;
    let (status, _, answer) = taxii(
        &router,
        "POST",
        &format!("{own_collection}objects/"),
        Some(&serde_json::json!({ "objects": [object] })),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(answer["success_count"], 1, "{answer}");
    let both = [
        (id.clone(), "[ipv4-addr:value = '192.0.2.80']".to_owned(), b),
        (
            id.clone(),
            "[ipv4-addr:value = '203.0.113.80']".to_owned(),
            a,
        ),
    ];
    let mut expected = both.to_vec();
    expected.sort();
    // Neither hides the other: each is its own object, with its own first and last.
    for filter in VERSION_FILTERS {
        let listed = indicators_at(&router, &format!("{shared}objects/{id}/{filter}")).await;
        assert_eq!(listed, expected, "{filter}");
        let url = format!(
            "{shared}objects/?match[type]=indicator{}",
            filter.replace('?', "&")
        );
        assert_eq!(
            indicators_at(&router, &url).await,
            expected,
            "listing {filter}"
        );
    }
    let (_, _, versions) = taxii(
        &router,
        "GET",
        &format!("{shared}objects/{id}/versions/"),
        None,
    )
    .await;
    assert_eq!(
        versions["versions"].as_array().map(Vec::len),
        Some(2),
        "{versions}"
    );
    let (_, _, manifest) = taxii(
        &router,
        "GET",
        &format!("{shared}manifest/?match[type]=indicator"),
        None,
    )
    .await;
    assert_eq!(
        manifest["objects"].as_array().map(Vec::len),
        Some(2),
        "{manifest}"
    );
}

#[tokio::test]
async fn every_write_takes_only_its_media_types_and_no_foreign_origin() {
    let (router, _store, _dir) = node().await;
    let bearer = format!("Bearer {TOKEN}");
    // What a form (or a script without asking the server first) can send.
    let simple = [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        None,
    ];
    let writes: [(&str, &[&str]); 7] = [
        ("/api/v1/publish", &["application/json"]),
        ("/api/v1/lookup", &["application/json"]),
        ("/api/v1/charter", &["application/json"]),
        ("/api/v1/peers/blocked", &["application/json"]),
        (
            "/api/v1/import/stix",
            &["application/stix+json;version=2.1", "application/json"],
        ),
        ("/api/v1/import/misp", &["application/json"]),
        ("/api/v1/import/csv", &["text/csv"]),
    ];
    for (path, accepted) in writes {
        for media_type in simple {
            let mut headers = vec![("authorization", bearer.as_str())];
            headers.extend(media_type.map(|media_type| ("content-type", media_type)));
            let (status, body) = raw(&router, "POST", path, &headers, "{}").await;
            assert_eq!(
                status,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "{path} {media_type:?}: {body}"
            );
        }
        for media_type in accepted {
            let headers = [
                ("authorization", bearer.as_str()),
                ("content-type", *media_type),
            ];
            // The body is not what the route wants; the media type is, so the answer
            // is about the body.
            let (status, body) = raw(&router, "POST", path, &headers, "{").await;
            assert_ne!(
                status,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "{path} {media_type}: {body}"
            );
        }
    }
    // A foreign Origin is refused on every route, reads and deletes too, TAXII's as well.
    let peer = peer_id(9);
    let unblock = format!("/api/v1/peers/blocked/{peer}");
    for (method, path) in [
        ("GET", "/api/v1/status"),
        ("DELETE", unblock.as_str()),
        ("GET", "/taxii2/"),
    ] {
        for origin in ["http://attacker.example", "null", "http://127.0.0.1:8081"] {
            let headers = [
                ("host", "127.0.0.1:8080"),
                ("origin", origin),
                ("authorization", bearer.as_str()),
                ("accept", "application/taxii+json;version=2.1"),
            ];
            let (status, body) = raw(&router, method, path, &headers, "").await;
            assert_eq!(
                status,
                StatusCode::FORBIDDEN,
                "{method} {path} {origin}: {body}"
            );
        }
    }
    // TAXII clients keep basic auth.
    let basic = basic_auth(TOKEN);
    let (status, body) = raw(
        &router,
        "GET",
        "/taxii2/",
        &[
            ("authorization", basic.as_str()),
            ("accept", "application/taxii+json;version=2.1"),
        ],
        "",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn an_index_of_an_older_layout_is_dropped_and_rebuilt() {
    let (router, store, _dir) = node().await;
    let (status, body) = call(&router, "POST", "/api/v1/publish", Some(TOKEN), PUBLISH).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // The first layout's tree, keyed by id alone, as an older node left it.
    store
        .write_beside(
            "taxii-objects",
            &[
                (
                    &b"indicator--00000000-0000-4000-8000-000000000001\0"[..],
                    &[][..],
                ),
                (&b"\xffprogress"[..], &[0xff; 17][..]),
            ],
        )
        .unwrap();
    let shared = collection_url(&router, false).await;
    let (status, _, answer) = taxii(
        &router,
        "GET",
        &format!("{shared}objects/?match[type]=indicator"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(listed_indicators(&answer).len(), 2, "{answer}");
    assert!(store.is_beside_empty("taxii-objects").unwrap());
}

/// A read token of the node [`node_reading`] builds.
const READ_TOKEN: &str = "read-only-token-of-the-console";

/// [`node_with`], also taking [`READ_TOKEN`] as a read token.
async fn node_reading(limits: ApiLimits) -> (Router, Store, tempfile::TempDir) {
    let (state, store, dir) = node_state().await;
    let state = state
        .with_read_tokens(vec![READ_TOKEN.into()])
        .with_limits(limits);
    (router(state), store, dir)
}

/// The node's charter again as version 2, signed by its steward: a push that takes.
async fn next_charter(router: &Router) -> String {
    let (status, body) = call(router, "GET", "/api/v1/charter", Some(TOKEN), "").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let current = serde_json::from_str::<CharterFile>(&body)
        .unwrap()
        .into_signed()
        .unwrap();
    let mut next = SignedCharter::propose(Charter {
        federation: current.federation(),
        version: 2,
        previous: Some(current.id()),
        issued: Timestamp(2),
        ..current.charter().clone()
    })
    .unwrap();
    next.sign(&key(1));
    serde_json::to_string(&CharterFile::of(&next)).unwrap()
}

/// A request that does what `route` is for on the node [`node_reading`] builds: a write
/// that takes with a full token (`blocked` is a peer blocked already, `own` the path of
/// the own collection, `charter` a charter push that takes), or a read that answers.
/// Returns the path, the media type and the body.
fn example(route: &str, own: &str, blocked: &str, charter: &str) -> (String, String, String) {
    let (method, path) = route.split_once(' ').unwrap();
    let path = path
        .replace("{kind}", "ipv4")
        .replace("{value}", "198.51.100.23")
        .replace("{format}", "csv")
        .replace("{peer_id}", blocked)
        .replace("/taxii2/root/collections/{collection}/", own)
        .replace(
            "{object}",
            "indicator--00000000-0000-4000-8000-000000000000",
        )
        .replace("{status}", "s")
        .replace("{event}", "00000000-0000-4000-8000-000000000000.json");
    let json = |body: String| (path.clone(), "application/json".to_owned(), body);
    match route {
        "POST /api/v1/publish" => json(PUBLISH.to_owned()),
        "POST /api/v1/import/{format}" => (
            format!("{path}?tlp=clear"),
            "text/csv".to_owned(),
            "198.51.100.66\n".to_owned(),
        ),
        "POST /api/v1/lookup" => json(r#"{"values": ["198.51.100.23"]}"#.to_owned()),
        "POST /api/v1/charter" => json(charter.to_owned()),
        "POST /api/v1/peers/blocked" => {
            json(serde_json::json!({ "peer_id": peer_id(9) }).to_string())
        }
        "POST /taxii2/root/collections/{collection}/objects/" => (
            path.clone(),
            taxii::TAXII_MEDIA_TYPE.to_owned(),
            serde_json::json!({
                "objects": [stix_indicator(1, "198.51.100.77", "2026-01-02T00:00:00.000Z")]
            })
            .to_string(),
        ),
        // Binary: `send_example` sends the node's own export instead of this body.
        "POST /api/v1/archive" => (path.clone(), archive::MEDIA_TYPE.to_owned(), String::new()),
        _ if method == "GET" || method == "DELETE" => json(String::new()),
        _ => panic!("{route}: no example request; add one here"),
    }
}

/// `route` sent as [`example`] makes it, with `token` as a bearer token.
async fn send_example(
    router: &Router,
    route: &str,
    token: &str,
    (own, blocked, charter): (&str, &str, &str),
) -> (StatusCode, String) {
    let (path, media_type, body) = example(route, own, blocked, charter);
    let bearer = format!("Bearer {token}");
    let headers = [
        ("authorization", bearer.as_str()),
        ("content-type", media_type.as_str()),
        (
            "accept",
            "application/taxii+json;version=2.1, application/json",
        ),
    ];
    let method = route.split_once(' ').unwrap().0;
    if route == "POST /api/v1/archive" {
        // An archive is not text: the node's own export, sent back (it takes, storing
        // nothing new).
        let export = HttpRequest::get("/api/v1/archive")
            .header("authorization", format!("Bearer {TOKEN}"))
            .body(HttpBody::empty())
            .unwrap();
        let export = router.clone().oneshot(export).await.unwrap();
        let archive = export.into_body().collect().await.unwrap().to_bytes();
        let mut request = HttpRequest::post(&path);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let response = router
            .clone()
            .oneshot(request.body(HttpBody::from(archive)).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        return (status, String::from_utf8_lossy(&bytes).into_owned());
    }
    raw(router, method, &path, &headers, &body).await
}

/// What the writes change: entries held, charter version, peers blocked.
async fn written(router: &Router, store: &Store) -> (u64, u64, String) {
    let (_, status) = call(router, "GET", "/api/v1/status", Some(TOKEN), "").await;
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    let (_, blocked) = call(router, "GET", "/api/v1/peers/blocked", Some(TOKEN), "").await;
    (
        store.stats().unwrap().entries,
        status["charter_version"].as_u64().unwrap(),
        blocked,
    )
}

#[tokio::test]
async fn every_write_route_refuses_a_read_token_and_every_read_route_takes_it() {
    let (router, store, _dir) = node_reading(ApiLimits::default()).await;
    let all: Vec<Route> = ROUTES.iter().chain(taxii::ROUTES.iter()).copied().collect();
    // Decided by route, not by method, but a route other than a GET that reads is the
    // exception and is named here on purpose.
    let reads_by_post = ["POST /api/v1/lookup"];
    for route in &all {
        let get = route.name.starts_with("GET ");
        assert_eq!(
            route.writes,
            !get && !reads_by_post.contains(&route.name),
            "{}: is it a write?",
            route.name
        );
    }
    let own = collection_url(&router, true).await;
    let blocked = peer_id(10);
    let block = serde_json::json!({ "peer_id": blocked }).to_string();
    let (status, _) = call(
        &router,
        "POST",
        "/api/v1/peers/blocked",
        Some(TOKEN),
        &block,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let charter = next_charter(&router).await;
    let context = (own.as_str(), blocked.as_str(), charter.as_str());
    let before = written(&router, &store).await;

    for route in &all {
        let (status, body) = send_example(&router, route.name, READ_TOKEN, context).await;
        if route.writes {
            assert_eq!(status, StatusCode::FORBIDDEN, "{}: {body}", route.name);
            assert!(body.contains("this token may read only"), "{body}");
        } else {
            // A TAXII "no such object" 404 is an answer, as is the MISP feed's "no such
            // event"; the router's 404 is not.
            let answered_404 = status == StatusCode::NOT_FOUND
                && (body.contains("http_status") || body.contains("no MISP event"));
            assert!(
                !matches!(
                    status,
                    StatusCode::UNAUTHORIZED
                        | StatusCode::FORBIDDEN
                        | StatusCode::METHOD_NOT_ALLOWED
                ) && (status != StatusCode::NOT_FOUND || answered_404),
                "{}: {status} {body}",
                route.name
            );
        }
    }
    assert_eq!(
        written(&router, &store).await,
        before,
        "nothing was written"
    );
    let writes = all.iter().filter(|route| route.writes).count();
    let (_, metrics) = call(&router, "GET", "/metrics", Some(READ_TOKEN), "").await;
    assert_eq!(
        sample(&metrics, "threatmesh_api_read_only_refused_total"),
        Some(writes as u64),
        "{metrics}"
    );
    assert_eq!(
        sample(
            &metrics,
            "threatmesh_api_auth_failures_total{reason=\"wrong\"}"
        ),
        Some(0)
    );

    // The same requests with a full token do write: the refusals above were of real
    // writes.
    for route in all.iter().filter(|route| route.writes) {
        let (status, body) = send_example(&router, route.name, TOKEN, context).await;
        assert!(status.is_success(), "{}: {status} {body}", route.name);
    }
    let after = written(&router, &store).await;
    assert!(after.0 > before.0, "entries: {before:?} then {after:?}");
    assert_eq!(after.1, 2, "the charter push took");
    assert!(!after.2.contains(&blocked), "{}", after.2);
    assert!(after.2.contains(&peer_id(9)), "{}", after.2);
}

#[tokio::test]
async fn a_read_token_reads_what_a_full_token_reads() {
    let (router, _store, _dir) = node_reading(ApiLimits::default()).await;
    let (status, body) = call(&router, "POST", "/api/v1/publish", Some(TOKEN), PUBLISH).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    for (method, path, body) in [
        ("GET", "/api/v1/status", ""),
        ("GET", "/api/v1/feeds", ""),
        ("GET", "/api/v1/entries", ""),
        ("GET", "/api/v1/indicators/ipv4/198.51.100.23", ""),
        ("POST", "/api/v1/lookup", r#"{"values": ["198.51.100.23"]}"#),
        ("GET", "/api/v1/charter", ""),
        ("GET", "/api/v1/peers/blocked", ""),
    ] {
        let full = call(&router, method, path, Some(TOKEN), body).await;
        let read = call(&router, method, path, Some(READ_TOKEN), body).await;
        assert_eq!(full.0, StatusCode::OK, "{path}: {}", full.1);
        if path == "/api/v1/status" {
            // Its network counters move between two calls.
            let store = |body: &str| {
                serde_json::from_str::<serde_json::Value>(body).unwrap()["store"].clone()
            };
            assert_eq!((read.0, store(&read.1)), (full.0, store(&full.1)));
        } else {
            assert_eq!(read, full, "{method} {path}");
        }
    }
    let (status, metrics) = call(&router, "GET", "/metrics", Some(READ_TOKEN), "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(sample(&metrics, "threatmesh_store_entries"), Some(1));
    // TAXII, as a TAXII client sends it: the read token as the basic-auth password.
    let own = collection_url(&router, true).await;
    let taxii_read = |path: String| {
        let router = router.clone();
        async move {
            let request = HttpRequest::get(&path)
                .header("authorization", basic_auth(READ_TOKEN))
                .header("accept", taxii::TAXII_MEDIA_TYPE)
                .body(HttpBody::empty())
                .unwrap();
            let response = router.oneshot(request).await.unwrap();
            let status = response.status();
            let bytes = response.into_body().collect().await.unwrap().to_bytes();
            let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(status, StatusCode::OK, "{path}: {body}");
            body
        }
    };
    let objects = taxii_read(format!("{own}objects/?match[type]=indicator")).await;
    assert_eq!(listed_indicators(&objects).len(), 2, "{objects}");
    let manifest = taxii_read(format!("{own}manifest/?match[type]=indicator")).await;
    assert_eq!(manifest["objects"].as_array().map(Vec::len), Some(2));
    // TAXII's can_write is the requester's: no collection is writable with a read token.
    let collections = taxii_read("/taxii2/root/collections/".to_owned()).await;
    let collections = collections["collections"].as_array().unwrap();
    assert_eq!(collections.len(), 2);
    assert!(
        collections
            .iter()
            .all(|collection| collection["can_write"] == false),
        "{collections:?}"
    );
    assert_eq!(taxii_read(own.clone()).await["can_write"], false);
    let (_, _, one) = taxii(&router, "GET", &own, None).await;
    assert_eq!(one["can_write"], true, "a full token may write to own");
}

#[tokio::test]
async fn a_read_token_is_refused_a_write_in_a_taxii_error_and_nothing_is_published() {
    let (router, store, _dir) = node_reading(ApiLimits::default()).await;
    let own = collection_url(&router, true).await;
    let envelope = serde_json::json!({
        "objects": [stix_indicator(1, "198.51.100.77", "2026-01-02T00:00:00.000Z")]
    })
    .to_string();
    let (status, body) = raw(
        &router,
        "POST",
        &format!("{own}objects/"),
        &[
            ("authorization", basic_auth(READ_TOKEN).as_str()),
            ("accept", taxii::TAXII_MEDIA_TYPE),
            ("content-type", taxii::TAXII_MEDIA_TYPE),
        ],
        &envelope,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["http_status"], "403", "{body}");
    assert!(
        body["description"].as_str().unwrap().starts_with(
            "this token may read only: POST /taxii2/root/collections/{collection}/objects/"
        ),
        "{body}"
    );
    assert_eq!(store.stats().unwrap().entries, 0);
}

#[tokio::test]
async fn wrong_tokens_throttle_both_kinds_and_read_only_refusals_do_not() {
    let (router, store, _dir) = node_reading(ApiLimits {
        max_auth_failures: 3,
        auth_failure_window: std::time::Duration::from_secs(3600),
        ..ApiLimits::default()
    })
    .await;
    // A read token refused a write many times is no guess: the client is not throttled.
    for _ in 0..10 {
        let (status, _) = call(
            &router,
            "POST",
            "/api/v1/publish",
            Some(READ_TOKEN),
            PUBLISH,
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }
    let (status, _) = call(&router, "GET", "/api/v1/feeds", Some(READ_TOKEN), "").await;
    assert_eq!(status, StatusCode::OK);
    // Nor is a token one character off a read token anything but a wrong token.
    let near = format!("{}x", &READ_TOKEN[..READ_TOKEN.len() - 1]);
    for guess in [near.as_str(), "guess-number-1", "guess-number-2"] {
        let (status, body) = call(&router, "GET", "/api/v1/feeds", Some(guess), "").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{guess}: {body}");
    }
    for token in [READ_TOKEN, TOKEN] {
        let (status, _) = call(&router, "GET", "/api/v1/feeds", Some(token), "").await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{token}");
    }
    assert_eq!(store.stats().unwrap().entries, 0);
}

#[tokio::test]
async fn a_token_is_told_apart_by_its_kind() {
    let (state, _store, _dir) = node_state().await;
    assert_eq!(state.access(TOKEN), Some(Access::Write));
    assert_eq!(state.access(READ_TOKEN), None);
    let state = state.with_read_tokens(vec![READ_TOKEN.into()]);
    assert_eq!(state.access(TOKEN), Some(Access::Write));
    assert_eq!(state.access(READ_TOKEN), Some(Access::Read));
    for wrong in ["", "read-only-token", "s3cret-token ", "S3CRET-TOKEN"] {
        assert_eq!(state.access(wrong), None, "{wrong:?}");
    }
    // Listed as both (the configuration refuses that): the narrower.
    let state = state.with_read_tokens(vec![TOKEN.into()]);
    assert_eq!(state.access(TOKEN), Some(Access::Read));
}

#[test]
fn routes_no_list_names_count_as_writes() {
    assert!(!writes(&Method::GET, Some("/api/v1/status")));
    assert!(!writes(&Method::HEAD, Some("/api/v1/status")));
    assert!(!writes(&Method::POST, Some("/api/v1/lookup")));
    assert!(writes(&Method::POST, Some("/api/v1/publish")));
    assert!(writes(&Method::PUT, Some("/api/v1/status")));
    assert!(writes(&Method::GET, Some("/api/v1/not-yet-listed")));
    assert!(writes(&Method::GET, None));
}
