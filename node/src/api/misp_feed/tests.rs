//! The MISP feed through the router: authentication (bare and bearer tokens, feed tokens
//! kept to the feed), TLP ceilings and `?tlp=`, validators and 304s, unknown events,
//! HEAD, metrics, and the configuration of feed tokens.

#![allow(clippy::unwrap_used)]

use axum::Router;
use axum::body::Body as HttpBody;
use axum::http::{HeaderMap, Request as HttpRequest, StatusCode};
use http_body_util::BodyExt;
use threatmesh_protocol::bundle::Tlp;
use tower::ServiceExt;

use super::FeedToken;
use crate::api::tests::{TOKEN, call, node_state, own_org};
use crate::api::{ApiState, router};

const GREEN_FEED: &str = "feed-token-for-our-misp-green";
const READ: &str = "read-token-of-the-dashboard";

/// A node whose API also takes a read token and a feed token with ceiling GREEN.
async fn feed_node() -> (Router, ApiState, crate::store::Store, tempfile::TempDir) {
    let (state, store, dir) = node_state().await;
    let state = state
        .with_read_tokens(vec![READ.into()])
        .with_feed_tokens(vec![FeedToken {
            token: GREEN_FEED.into(),
            tlp: Tlp::Green,
        }]);
    (router(state.clone()), state, store, dir)
}

/// `method path` with `headers`: status, response headers, body.
async fn send(
    router: &Router,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, HeaderMap, String) {
    let mut request = HttpRequest::builder().method(method).uri(path);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = router
        .clone()
        .oneshot(request.body(HttpBody::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        headers,
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

/// GETs `path` with `Authorization: <authorization>`.
async fn get(router: &Router, path: &str, authorization: &str) -> (StatusCode, HeaderMap, String) {
    send(router, "GET", path, &[("authorization", authorization)]).await
}

/// Publishes one indicator `value` (an ipv4 address) marked `tlp`: the entry's id.
async fn publish(router: &Router, tlp: &str, value: &str) -> String {
    let distribution = if matches!(tlp, "red" | "amber+strict") {
        serde_json::json!({ "recipients": [own_org()] })
    } else {
        serde_json::json!("federation")
    };
    let body = serde_json::json!({
        "tlp": tlp,
        "distribution": distribution,
        "items": [{"type": "indicator", "kind": "ipv4", "value": value,
                   "valid_from": 1_700_000_000_000_u64}],
    });
    let (status, answer) = call(
        router,
        "POST",
        "/api/v1/publish",
        Some(TOKEN),
        &body.to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
    answer["entries"][0].as_str().unwrap().to_owned()
}

fn event_uuid(entry: &str) -> String {
    let id: threatmesh_protocol::Hash = entry.parse().unwrap();
    crate::formats::misp::event_uuid(id).to_string()
}

/// The manifest's event uuids.
fn manifest_uuids(body: &str) -> Vec<String> {
    let manifest: serde_json::Value = serde_json::from_str(body).unwrap();
    let mut uuids: Vec<String> = manifest.as_object().unwrap().keys().cloned().collect();
    uuids.sort();
    uuids
}

fn sorted(mut uuids: Vec<String>) -> Vec<String> {
    uuids.sort();
    uuids
}

async fn metrics(router: &Router) -> String {
    let (status, text) = call(router, "GET", "/metrics", Some(TOKEN), "").await;
    assert_eq!(status, StatusCode::OK);
    text
}

#[tokio::test]
async fn bare_and_bearer_tokens_read_the_feed_and_missing_or_wrong_ones_are_refused_and_counted() {
    let (router, _state, _store, _dir) = feed_node().await;
    let entry = publish(&router, "green", "198.51.100.1").await;
    for authorization in [
        TOKEN.to_owned(),
        format!("Bearer {TOKEN}"),
        format!("bearer {READ}"),
        READ.to_owned(),
        GREEN_FEED.to_owned(),
        format!("Bearer {GREEN_FEED}"),
    ] {
        let (status, _, body) = get(&router, "/misp/feed/manifest.json", &authorization).await;
        assert_eq!(status, StatusCode::OK, "{authorization}: {body}");
        assert_eq!(manifest_uuids(&body), [event_uuid(&entry)]);
    }
    let (status, headers, body) = send(&router, "GET", "/misp/feed/manifest.json", &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(body.contains("Authorization: <token>"), "{body}");
    assert!(headers.contains_key("www-authenticate"));
    let (status, _, body) = get(&router, "/misp/feed/manifest.json", "not-a-token-at-all").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, _, _) = get(&router, "/misp/feed/hashes.csv", "Bearer wrong-token-here").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let text = metrics(&router).await;
    for line in [
        "threatmesh_misp_feed_requests_total{file=\"manifest\",status=\"200\"} 6",
        "threatmesh_misp_feed_requests_total{file=\"manifest\",status=\"401\"} 2",
        "threatmesh_misp_feed_requests_total{file=\"hashes\",status=\"401\"} 1",
        "threatmesh_misp_feed_auth_refused_total{reason=\"missing\"} 1",
        "threatmesh_misp_feed_auth_refused_total{reason=\"wrong\"} 2",
        // Counted as the rest of the API counts them, too.
        "threatmesh_api_auth_failures_total{reason=\"wrong\"} 2",
    ] {
        assert!(text.contains(line), "{line} missing from:\n{text}");
    }
}

#[tokio::test]
async fn a_feed_token_reads_the_feed_and_nothing_else() {
    let (router, _state, store, _dir) = feed_node().await;
    let before = store.stats().unwrap().entries;
    for (method, path) in [
        ("GET", "/api/v1/status"),
        ("GET", "/metrics"),
        ("GET", "/api/v1/entries"),
        ("GET", "/taxii2/"),
        ("POST", "/api/v1/publish"),
    ] {
        let (status, _, body) = send(
            &router,
            method,
            path,
            &[
                ("authorization", &format!("Bearer {GREEN_FEED}")),
                ("content-type", "application/json"),
                ("accept", "application/taxii+json;version=2.1"),
            ],
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {body}");
        assert!(body.contains("MISP feed"), "{body}");
    }
    assert_eq!(store.stats().unwrap().entries, before, "nothing published");
    let text = metrics(&router).await;
    assert!(
        text.contains("threatmesh_misp_feed_token_refused_elsewhere_total 5"),
        "{text}"
    );
    // A right token on the wrong route is not a guess: no failure is counted.
    assert!(
        text.contains("threatmesh_misp_feed_auth_refused_total{reason=\"wrong\"} 0"),
        "{text}"
    );
}

#[tokio::test]
async fn a_feed_token_reads_up_to_its_ceiling_and_tlp_narrows_but_never_widens() {
    let (router, _state, _store, _dir) = feed_node().await;
    let clear = event_uuid(&publish(&router, "clear", "198.51.100.1").await);
    let green = event_uuid(&publish(&router, "green", "198.51.100.2").await);
    let amber = event_uuid(&publish(&router, "amber", "198.51.100.3").await);
    // Sealed to this organisation, opened by this node.
    let red = event_uuid(&publish(&router, "red", "198.51.100.4").await);

    let manifest = |path: &'static str, token: &'static str| {
        let router = router.clone();
        async move {
            let (status, _, body) = get(&router, path, token).await;
            assert_eq!(status, StatusCode::OK, "{path}: {body}");
            manifest_uuids(&body)
        }
    };
    assert_eq!(
        manifest("/misp/feed/manifest.json", TOKEN).await,
        sorted(vec![
            clear.clone(),
            green.clone(),
            amber.clone(),
            red.clone()
        ])
    );
    assert_eq!(
        manifest("/misp/feed/manifest.json", GREEN_FEED).await,
        sorted(vec![clear.clone(), green.clone()])
    );
    assert_eq!(
        manifest("/misp/feed/manifest.json?tlp=clear", GREEN_FEED).await,
        std::slice::from_ref(&clear)
    );
    assert_eq!(
        manifest("/misp/feed/manifest.json?tlp=TLP:AMBER", TOKEN).await,
        sorted(vec![clear.clone(), green.clone(), amber.clone()])
    );
    let (status, _, body) = get(&router, "/misp/feed/manifest.json?tlp=amber", GREEN_FEED).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body.contains("never widens"), "{body}");
    let (status, _, body) = get(&router, "/misp/feed/manifest.json?tlp=purple", TOKEN).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("purple"), "{body}");

    // Event files and hashes.csv keep to the same ceiling.
    let (status, _, body) = get(&router, &format!("/misp/feed/{green}.json"), GREEN_FEED).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for hidden in [&amber, &red] {
        let (status, _, body) =
            get(&router, &format!("/misp/feed/{hidden}.json"), GREEN_FEED).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    }
    let (status, _, body) = get(&router, &format!("/misp/feed/{red}.json"), TOKEN).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let event: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(event["Event"]["Tag"][0]["name"], "tlp:red");
    assert_eq!(event["Event"]["Attribute"][0]["value"], "198.51.100.4");
    let (_, _, hashes) = get(&router, "/misp/feed/hashes.csv", GREEN_FEED).await;
    let events: Vec<&str> = hashes
        .lines()
        .map(|line| line.split_once(',').unwrap().1)
        .collect();
    assert_eq!(events, [clear.as_str(), green.as_str()]);
    let (_, _, hashes) = get(&router, "/misp/feed/hashes.csv", TOKEN).await;
    assert_eq!(hashes.lines().count(), 4);
    let text = metrics(&router).await;
    assert!(
        text.contains("threatmesh_misp_feed_auth_refused_total{reason=\"above_ceiling\"} 1"),
        "{text}"
    );
}

#[tokio::test]
async fn an_unchanged_feed_answers_304_and_a_publish_changes_its_validators() {
    let (router, _state, _store, _dir) = feed_node().await;
    let first = event_uuid(&publish(&router, "green", "198.51.100.1").await);
    let (status, headers, body) = get(&router, "/misp/feed/manifest.json", TOKEN).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(manifest_uuids(&body), std::slice::from_ref(&first));
    let etag = headers["etag"].to_str().unwrap().to_owned();
    assert!(headers.contains_key("last-modified"));

    for (name, value) in [
        ("if-none-match", etag.as_str()),
        ("if-none-match", &format!("W/{etag}")),
        ("if-none-match", &format!("\"other\", {etag}")),
        ("if-modified-since", "Fri, 31 Dec 9999 23:59:59 GMT"),
    ] {
        let (status, headers, body) = send(
            &router,
            "GET",
            "/misp/feed/manifest.json",
            &[("authorization", TOKEN), (name, value)],
        )
        .await;
        assert_eq!(status, StatusCode::NOT_MODIFIED, "{name}: {value}");
        assert!(body.is_empty());
        assert_eq!(headers["etag"], etag.as_str());
    }
    // A copy from before the newest event, or another ceiling's, is not current.
    for (name, value) in [
        ("if-modified-since", "Sat, 01 Jan 2000 00:00:00 GMT"),
        ("if-none-match", "\"manifest-clear-0-0\""),
    ] {
        let (status, _, _) = send(
            &router,
            "GET",
            "/misp/feed/manifest.json",
            &[("authorization", TOKEN), (name, value)],
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{name}: {value}");
    }
    // The green token's manifest is another file, with its own tag.
    let (_, green_headers, _) = get(&router, "/misp/feed/manifest.json", GREEN_FEED).await;
    assert_ne!(green_headers["etag"], etag.as_str());

    let second = event_uuid(&publish(&router, "green", "198.51.100.2").await);
    let (status, headers, body) = send(
        &router,
        "GET",
        "/misp/feed/manifest.json",
        &[("authorization", TOKEN), ("if-none-match", &etag)],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(manifest_uuids(&body), sorted(vec![first, second]));
    assert_ne!(headers["etag"], etag.as_str());

    // hashes.csv the same way.
    let (status, headers, _) = get(&router, "/misp/feed/hashes.csv", TOKEN).await;
    assert_eq!(status, StatusCode::OK);
    let tag = headers["etag"].to_str().unwrap().to_owned();
    let (status, _, body) = send(
        &router,
        "GET",
        "/misp/feed/hashes.csv",
        &[("authorization", TOKEN), ("if-none-match", &tag)],
    )
    .await;
    assert_eq!((status, body.as_str()), (StatusCode::NOT_MODIFIED, ""));
    // A red entry the green token cannot see leaves its manifest as it was.
    let (_, before, _) = get(&router, "/misp/feed/manifest.json", GREEN_FEED).await;
    publish(&router, "red", "198.51.100.9").await;
    let (status, _, _) = send(
        &router,
        "GET",
        "/misp/feed/manifest.json",
        &[
            ("authorization", GREEN_FEED),
            ("if-none-match", before["etag"].to_str().unwrap()),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    let text = metrics(&router).await;
    assert!(
        text.contains("threatmesh_misp_feed_not_modified_total 6"),
        "{text}"
    );
}

#[tokio::test]
async fn events_unknown_names_and_head_requests() {
    let (router, state, _store, _dir) = feed_node().await;
    let entry = publish(&router, "green", "198.51.100.1").await;
    let uuid = event_uuid(&entry);
    let (status, headers, body) = get(&router, &format!("/misp/feed/{uuid}.json"), TOKEN).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(headers["content-type"], "application/json");
    let event: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(event["Event"]["uuid"], uuid.as_str());
    // The same file `threatmesh export --format misp` writes.
    let id: threatmesh_protocol::Hash = entry.parse().unwrap();
    let signed = state.store.entry(&id).unwrap().unwrap();
    let publisher = crate::formats::Publisher::exporting(
        state.client.charter().charter(),
        &signed.entry().author,
    );
    let feed = crate::formats::misp::export_feed([(signed.entry(), id, &publisher)]);
    assert_eq!(event, feed.events[0].1);
    let (_, _, manifest) = get(&router, "/misp/feed/manifest.json", TOKEN).await;
    let manifest: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    assert_eq!(manifest, feed.manifest);
    let (_, _, hashes) = get(&router, "/misp/feed/hashes.csv", TOKEN).await;
    assert_eq!(hashes, format!("{}\n", feed.hashes.join("\n")));

    // An event never changes: its tag is its uuid.
    let (status, _, body) = send(
        &router,
        "GET",
        &format!("/misp/feed/{uuid}.json"),
        &[
            ("authorization", TOKEN),
            ("if-none-match", &format!("\"{uuid}\"")),
        ],
    )
    .await;
    assert_eq!((status, body.as_str()), (StatusCode::NOT_MODIFIED, ""));

    for path in [
        "/misp/feed/00000000-0000-4000-8000-000000000000.json".to_owned(),
        "/misp/feed/not-a-uuid.json".to_owned(),
        "/misp/feed/feed.xml".to_owned(),
        format!("/misp/feed/{uuid}"),
    ] {
        let (status, headers, body) = get(&router, &path, TOKEN).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
        assert_eq!(headers["content-type"], "application/json");
        let error: serde_json::Value = serde_json::from_str(&body).unwrap();
        let error = error["error"].as_str().unwrap();
        assert!(
            error.contains("no MISP event") || error.contains("the feed serves manifest.json"),
            "{body}"
        );
    }

    // HEAD answers as GET does, without the body.
    for path in [
        "/misp/feed/manifest.json".to_owned(),
        "/misp/feed/hashes.csv".to_owned(),
        format!("/misp/feed/{uuid}.json"),
    ] {
        let (status, headers, body) =
            send(&router, "HEAD", &path, &[("authorization", TOKEN)]).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert!(headers.contains_key("etag"), "{path}");
        assert!(body.is_empty(), "{path}");
    }
    // A feed URL with a trailing slash, to which MISP appends `/manifest.json`.
    let (status, _, body) = get(&router, "/misp/feed//manifest.json", TOKEN).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(manifest_uuids(&body), [uuid]);
}

#[test]
fn feed_tokens_in_the_configuration_are_checked() {
    use std::path::Path;

    use crate::config::{Config, FeedTokenSection};

    let mut config = Config::default();
    config.node.federation = Some(threatmesh_protocol::Hash::default().to_string());
    config.api.tokens = vec!["a-full-token-of-the-api".into()];
    config.api.read_tokens = vec!["a-read-token-of-the-api".into()];
    let feed = |token: &str, tlp: &str| FeedTokenSection {
        token: token.into(),
        tlp: tlp.into(),
    };
    config.api.feed_tokens = vec![
        feed("misp-of-the-soc-token", "TLP:GREEN"),
        feed("misp-of-the-partners", "white"),
    ];
    let valid = config.validate(Path::new("/x")).unwrap();
    assert_eq!(
        valid.feed_tokens,
        [
            FeedToken {
                token: "misp-of-the-soc-token".into(),
                tlp: Tlp::Green
            },
            FeedToken {
                token: "misp-of-the-partners".into(),
                tlp: Tlp::Clear
            },
        ]
    );
    for (tokens, expected) in [
        (
            vec![feed("", "green")],
            "feed token 1 (counting from 1) has 0 characters",
        ),
        (vec![feed("short", "green")], "has 5 characters"),
        (
            vec![feed("misp-of-the-soc-token", "purple")],
            "feed token 1 (counting from 1): tlp: unknown TLP marking \"purple\"",
        ),
        (
            vec![feed("a-read-token-of-the-api", "green")],
            "also in api.tokens or api.read_tokens",
        ),
        (
            vec![feed("a-full-token-of-the-api", "red")],
            "also in api.tokens or api.read_tokens",
        ),
        (
            vec![
                feed("misp-of-the-soc-token", "green"),
                feed("misp-of-the-soc-token", "red"),
            ],
            "feed token 2 (counting from 1) is listed twice",
        ),
    ] {
        config.api.feed_tokens = tokens;
        let error = config.validate(Path::new("/x")).unwrap_err().to_string();
        assert!(error.contains("api.feed_tokens"), "{error}");
        assert!(error.contains(expected), "{error}");
    }
    // The template shows the setting, commented, in a shape that parses.
    let template =
        crate::config::template(&"t".repeat(32), "127.0.0.1:8080", "/ip4/0.0.0.0/tcp/4001");
    let line = "# feed_tokens = [{ token = \"...\", tlp = \"green\" }]";
    assert!(template.contains(line), "{template}");
    let uncommented = template.replace(
        line,
        "feed_tokens = [{ token = \"misp-of-the-soc-token\", tlp = \"green\" }]",
    );
    let parsed: Config = toml::from_str(&uncommented).unwrap();
    assert_eq!(parsed.api.feed_tokens[0].tlp, "green");
}

#[tokio::test]
async fn the_background_catch_up_indexes_what_arrives_without_a_request() {
    let (router, state, _store, _dir) = feed_node().await;
    publish(&router, "green", "198.51.100.1").await;
    publish(&router, "amber", "198.51.100.2").await;
    let indexed = |state: &ApiState| state.misp_feed.index().version(Tlp::Red).events;
    assert_eq!(indexed(&state), 0, "nothing asked for the feed yet");
    let task = tokio::spawn(super::keep_indexed(state.clone()));
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while indexed(&state) < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the background catch-up did not index the two entries"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // And it follows what arrives later (its next turn is within two seconds).
    publish(&router, "clear", "198.51.100.3").await;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while indexed(&state) < 3 {
        assert!(tokio::time::Instant::now() < deadline, "not followed");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    task.abort();
}
