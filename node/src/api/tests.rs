use axum::body::Body as HttpBody;
use axum::http::{Request as HttpRequest, StatusCode};
use http_body_util::BodyExt;
use threatmesh_protocol::charter::{Charter, Member, NodeCertificate, Roles, Status};
use threatmesh_protocol::{PublicKey, SignedCharter, SigningKey, Timestamp};
use tower::ServiceExt;

use super::*;
use crate::network;
use crate::store::Options;

const TOKEN: &str = "s3cret-token";

/// A one-member federation's node with its API router.
async fn node() -> (Router, Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &Options::default()).unwrap();
    let (steward, org, node) = (
        SigningKey::from_bytes(&[1; 32]),
        SigningKey::from_bytes(&[2; 32]),
        SigningKey::from_bytes(&[3; 32]),
    );
    let mut charter = SignedCharter::propose(Charter {
        federation: Hash::default(),
        name: "API test".into(),
        version: 1,
        previous: None,
        issued: Timestamp(1),
        stewards: vec![PublicKey::of(&steward)],
        threshold: 1,
        members: vec![Member {
            org: PublicKey::of(&org),
            name: "CERT-XX".into(),
            country: "XX".into(),
            roles: Roles {
                publish: true,
                read: true,
            },
            status: Status::Active,
            nodes: vec![NodeCertificate::issue(
                &org,
                PublicKey::of(&node),
                Timestamp(1),
                Timestamp(u64::MAX),
            )],
            cutoffs: vec![],
            addresses: vec![],
            encryption_key: Some(encryption().public_key()),
        }],
    })
    .unwrap();
    charter.sign(&steward);
    store.put_charter(&charter).unwrap();
    let config = network::Config {
        encryption_key: Some(encryption()),
        ..network::Config::default()
    };
    let (client, event_loop) = network::new(config, node, store.clone(), charter).unwrap();
    tokio::spawn(event_loop.run());
    let router = router(ApiState::new(store.clone(), client, vec![TOKEN.into()]));
    (router, store, dir)
}

/// The organisation's encryption key.
fn encryption() -> threatmesh_protocol::EncryptionSecret {
    threatmesh_protocol::EncryptionSecret::from_bytes([4; 32])
}

/// The organisation's id, in hex.
fn own_org() -> String {
    PublicKey::of(&SigningKey::from_bytes(&[2; 32])).to_string()
}

async fn call(
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

const PUBLISH: &str = r#"{"tlp": "green", "items": [
    {"type": "indicator", "kind": "ipv4", "value": "198.51.100[.]23", "valid_from": 1700000000000,
     "labels": ["c2"], "context": {"threat": "QakBot"}},
    {"type": "indicator", "kind": "domain", "value": "Evil.Example.", "valid_from": 1700000000000}
]}"#;

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
    assert_eq!(status["charter_version"], 1);
    assert_eq!(status["feeds"][0]["missing_below_highest"], 0);
    assert_eq!(status["feeds"][0]["lag"], 0);
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
    let mut served: Vec<String> = ROUTES.iter().map(|route| (*route).to_owned()).collect();
    served.sort();
    assert_eq!(documented, served);
    // And each route listed is really served: anything but 404/405.
    for route in ROUTES {
        let (method, path) = route.split_once(' ').unwrap();
        let path = path
            .replace("{kind}", "ipv4")
            .replace("{value}", "192.0.2.1");
        let (status, _) = call(&router, method, &path, Some(TOKEN), "{}").await;
        assert!(
            status != StatusCode::NOT_FOUND && status != StatusCode::METHOD_NOT_ALLOWED,
            "{route}: {status}"
        );
    }
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
