#![allow(clippy::unwrap_used)]

use axum::Router;
use serde_json::Value as Json;

use super::super::router;
use super::super::tests::{
    TOKEN, call, collection_url, node_parts_listing, raw, stix_indicator, taxii,
};
use crate::warninglists::Warninglists;

/// A node checking against the default set, with its router.
fn node() -> (Router, tempfile::TempDir) {
    let (state, _store, dir, event_loop) = node_parts_listing(Warninglists::builtin());
    tokio::spawn(event_loop.run());
    (router(state), dir)
}

fn json(text: &str) -> Json {
    serde_json::from_str(text).unwrap()
}

fn indicator(kind: &str, value: &str) -> Json {
    serde_json::json!({"type": "indicator", "kind": kind, "value": value, "valid_from": 1_700_000_000_000u64})
}

async fn known(router: &Router, kind: &str, value: &str) -> (bool, Json) {
    let path = format!("/api/v1/indicators/{kind}/{value}");
    let (status, body) = call(router, "GET", &path, Some(TOKEN), "").await;
    assert_eq!(status, 200, "{body}");
    let answer = json(&body);
    (answer["known"] == true, answer["warninglists"].clone())
}

fn list_ids(lists: &Json) -> Vec<String> {
    lists
        .as_array()
        .unwrap()
        .iter()
        .map(|list| list["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn publish_holds_listed_indicators_back_and_publishes_the_rest() {
    let (router, _dir) = node();
    let request = serde_json::json!({"tlp": "green", "items": [
        indicator("ipv4", "8.8.8.8"),
        indicator("ipv4", "45.155.205.233"),
        indicator("md5", "d41d8cd98f00b204e9800998ecf8427e"),
    ]});
    let (status, body) = call(
        &router,
        "POST",
        "/api/v1/publish",
        Some(TOKEN),
        &request.to_string(),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let answer = json(&body);
    assert_eq!(answer["entries"].as_array().unwrap().len(), 1, "{body}");
    let held = answer["held_back"].as_array().unwrap();
    assert_eq!(held.len(), 2, "{body}");
    assert_eq!(held[0]["index"], 0);
    assert_eq!(held[0]["value"], "8.8.8.8");
    assert_eq!(held[0]["kind"], "ipv4");
    assert!(
        list_ids(&held[0]["warninglists"]).contains(&"public-dns-v4".to_owned()),
        "{body}"
    );
    assert!(
        held[0]["warninglists"][0]["name"]
            .as_str()
            .unwrap()
            .contains("DNS"),
        "{body}"
    );
    assert_eq!(held[1]["index"], 2);
    assert_eq!(list_ids(&held[1]["warninglists"]), ["empty-hashes"]);
    assert!(!known(&router, "ipv4", "8.8.8.8").await.0);
    assert!(known(&router, "ipv4", "45.155.205.233").await.0);
}

#[tokio::test]
async fn only_listed_indicators_publish_nothing_and_say_why() {
    let (router, _dir) = node();
    let request = serde_json::json!({"items": [indicator("domain", "example.com")]});
    let (status, body) = call(
        &router,
        "POST",
        "/api/v1/publish",
        Some(TOKEN),
        &request.to_string(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let answer = json(&body);
    assert!(answer["entries"].as_array().unwrap().is_empty(), "{body}");
    let ids = list_ids(&answer["held_back"][0]["warninglists"]);
    assert!(ids.contains(&"rfc6761".to_owned()), "{body}");
}

#[tokio::test]
async fn ignore_warninglists_publishes_them_in_the_body_or_the_query() {
    let (router, _dir) = node();
    let request =
        serde_json::json!({"items": [indicator("ipv4", "8.8.8.8")], "ignore_warninglists": true});
    let (status, body) = call(
        &router,
        "POST",
        "/api/v1/publish",
        Some(TOKEN),
        &request.to_string(),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert!(
        json(&body)["held_back"].as_array().unwrap().is_empty(),
        "{body}"
    );
    let request = serde_json::json!({"items": [indicator("ipv4", "192.168.1.1")]});
    let path = "/api/v1/publish?ignore_warninglists=true";
    let (status, body) = call(&router, "POST", path, Some(TOKEN), &request.to_string()).await;
    assert_eq!(status, 201, "{body}");
    // Published, and marked on lookup.
    let (is_known, lists) = known(&router, "ipv4", "8.8.8.8").await;
    assert!(is_known);
    assert!(
        list_ids(&lists).contains(&"public-dns-v4".to_owned()),
        "{lists}"
    );
    let (is_known, lists) = known(&router, "ipv4", "192.168.1.1").await;
    assert!(is_known);
    assert!(list_ids(&lists).contains(&"rfc1918".to_owned()), "{lists}");
}

#[tokio::test]
async fn lookups_mark_listed_values_known_or_not() {
    let (router, _dir) = node();
    let (is_known, lists) = known(&router, "ipv4", "1.0.0.1").await;
    assert!(!is_known);
    assert!(
        list_ids(&lists).contains(&"public-dns-v4".to_owned()),
        "{lists}"
    );
    let (_, lists) = known(&router, "ipv4", "45.155.205.233").await;
    assert!(list_ids(&lists).is_empty());
    let request = serde_json::json!({"items": [indicator("ipv4", "8.8.4.4"), indicator("ipv4", "45.155.205.233")], "ignore_warninglists": true});
    let (status, body) = call(
        &router,
        "POST",
        "/api/v1/publish",
        Some(TOKEN),
        &request.to_string(),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let lookup = serde_json::json!({"values": ["8.8.4.4", "45.155.205[.]233"]});
    let (status, body) = call(
        &router,
        "POST",
        "/api/v1/lookup",
        Some(TOKEN),
        &lookup.to_string(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let found = json(&body)["found"].as_array().unwrap().clone();
    assert_eq!(found.len(), 2, "{body}");
    for entry in found {
        let ids = list_ids(&entry["warninglists"]);
        match entry["value"]
            .as_str()
            .or(entry["value"]["value"].as_str())
            .unwrap()
        {
            "8.8.4.4" => assert!(ids.contains(&"public-dns-v4".to_owned()), "{ids:?}"),
            other => assert!(ids.is_empty(), "{other}: {ids:?}"),
        }
    }
}

#[tokio::test]
async fn import_holds_listed_indicators_back_also_on_a_dry_run() {
    let (router, _dir) = node();
    let bearer = format!("Bearer {TOKEN}");
    let headers = [
        ("authorization", bearer.as_str()),
        ("content-type", "text/csv"),
    ];
    let call = |router: &Router, _: &str, path: &str, _: Option<&str>, file: &'static str| {
        let (router, path) = (router.clone(), path.to_owned());
        async move { raw(&router, "POST", &path, &headers, file).await }
    };
    let file = "value\n45.155.205.233\n10.1.2.3\nc2.badness-4821.xyz\n";
    let (status, body) = call(
        &router,
        "POST",
        "/api/v1/import/csv?tlp=green&dry_run=true",
        Some(TOKEN),
        file,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let answer = json(&body);
    assert_eq!(answer["held_back"].as_array().unwrap().len(), 1, "{body}");
    let (status, body) = call(
        &router,
        "POST",
        "/api/v1/import/csv?tlp=green",
        Some(TOKEN),
        file,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let answer = json(&body);
    let held = answer["held_back"].as_array().unwrap();
    assert_eq!(held.len(), 1, "{body}");
    assert_eq!(held[0]["value"], "10.1.2.3");
    assert!(
        list_ids(&held[0]["warninglists"]).contains(&"rfc1918".to_owned()),
        "{body}"
    );
    assert_eq!(answer["published"][0]["items"], 2, "{body}");
    assert!(!known(&router, "ipv4", "10.1.2.3").await.0);
    assert!(known(&router, "domain", "c2.badness-4821.xyz").await.0);
    let path = "/api/v1/import/csv?tlp=green&ignore_warninglists=true";
    let (status, body) = call(&router, "POST", path, Some(TOKEN), file).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        json(&body)["held_back"].as_array().unwrap().is_empty(),
        "{body}"
    );
    assert!(known(&router, "ipv4", "10.1.2.3").await.0);
}

#[tokio::test]
async fn metrics_name_every_list_with_its_count() {
    let (router, _dir) = node();
    let (status, body) = call(&router, "GET", "/metrics", Some(TOKEN), "").await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("# TYPE threatmesh_warninglist_matches_total counter"),
        "{body}"
    );
    assert!(
        body.contains("threatmesh_warninglist_matches_total{list=\"rfc1918\"} 0\n"),
        "{body}"
    );
}

#[test]
fn metric_labels_are_escaped() {
    let text = super::render_metrics(&[("a\"b\\c".to_owned(), 3)]);
    assert!(text.contains("{list=\"a\\\"b\\\\c\"} 3\n"), "{text}");
}

#[tokio::test]
async fn taxii_marks_listed_indicators_and_holds_them_back_on_post() {
    let (router, _dir) = node();
    let request = serde_json::json!({"items": [indicator("ipv4", "8.8.8.8"), indicator("ipv4", "45.155.205.233")], "ignore_warninglists": true});
    let (status, body) = call(
        &router,
        "POST",
        "/api/v1/publish",
        Some(TOKEN),
        &request.to_string(),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let shared = collection_url(&router, false).await;
    let (status, _, page) = taxii(&router, "GET", &format!("{shared}objects/"), None).await;
    assert_eq!(status, 200, "{page}");
    let with = |address: &str| {
        page["objects"]
            .as_array()
            .unwrap()
            .iter()
            .find(|object| {
                object["pattern"]
                    .as_str()
                    .is_some_and(|p| p.contains(&format!("'{address}'")))
            })
            .unwrap()
            .clone()
    };
    let marked = with("8.8.8.8");
    let on = marked["x_threatmesh_warninglists"].as_array().unwrap();
    assert!(on.contains(&serde_json::json!("public-dns-v4")), "{marked}");
    assert!(
        with("45.155.205.233")
            .get("x_threatmesh_warninglists")
            .is_none()
    );

    // A POST of a listed indicator: that object fails, naming the list; the rest is taken.
    let own = collection_url(&router, true).await;
    let envelope = serde_json::json!({"objects": [
        stix_indicator(1, "8.8.4.4", "2026-01-01T00:00:00.000Z"),
        stix_indicator(2, "45.155.205.234", "2026-01-01T00:00:00.000Z"),
    ]});
    let (status, _, answer) =
        taxii(&router, "POST", &format!("{own}objects/"), Some(&envelope)).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["success_count"], 1, "{answer}");
    let failure = &answer["failures"][0];
    assert_eq!(failure["id"], envelope["objects"][0]["id"], "{answer}");
    assert!(
        failure["message"]
            .as_str()
            .unwrap()
            .contains("public-dns-v4"),
        "{answer}"
    );
    assert!(!known(&router, "ipv4", "8.8.4.4").await.0);
    assert!(known(&router, "ipv4", "45.155.205.234").await.0);
}

#[tokio::test]
async fn the_misp_feed_the_node_serves_tags_listed_values_as_the_export_does() {
    let (router, _dir) = node();
    let request = serde_json::json!({
        "items": [indicator("ipv4", "8.8.8.8"), indicator("ipv4", "45.155.205.233")],
        "ignore_warninglists": true,
    });
    let (status, body) = call(
        &router,
        "POST",
        "/api/v1/publish",
        Some(TOKEN),
        &request.to_string(),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let entry = json(&body)["entries"][0].as_str().unwrap().to_owned();
    let id: threatmesh_protocol::Hash = entry.parse().unwrap();
    let uuid = crate::formats::misp::event_uuid(id);
    let path = format!("/misp/feed/{uuid}.json");
    let (status, body) = call(&router, "GET", &path, Some(TOKEN), "").await;
    assert_eq!(status, 200, "{body}");
    let event = json(&body);
    let tags = |index: usize| -> Vec<String> {
        event["Event"]["Attribute"][index]["Tag"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|tag| tag["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(event["Event"]["Attribute"][0]["value"], "8.8.8.8");
    assert!(
        tags(0).contains(&crate::formats::marks::misp_tag("public-dns-v4")),
        "{body}"
    );
    assert_eq!(event["Event"]["Attribute"][1]["value"], "45.155.205.233");
    assert!(
        !tags(1).iter().any(|tag| tag.starts_with("warninglist:")),
        "{body}"
    );
}
