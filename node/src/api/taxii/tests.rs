//! Tests of the read path's paging: a listing read in pages of any size is the same
//! objects, byte for byte, as the listing read whole.

#![allow(clippy::unwrap_used)]

use crate::api::tests::{collection_url, node, stix_indicator, taxii};
use axum::http::StatusCode;

/// Every object of `listing` (`objects` or `manifest`) of `collection`, reading pages of
/// `limit`.
async fn read_all(
    router: &axum::Router,
    collection: &str,
    listing: &str,
    limit: usize,
) -> Vec<serde_json::Value> {
    let mut read = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let path = match &next {
            Some(next) => format!("{collection}{listing}/?limit={limit}&next={next}"),
            None => format!("{collection}{listing}/?limit={limit}"),
        };
        let (status, _, page) = taxii(router, "GET", &path, None).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let objects = page["objects"].as_array().cloned().unwrap_or_default();
        assert!(objects.len() <= limit);
        read.extend(objects);
        match page["next"].as_str() {
            Some(cursor) if page["more"] == true => next = Some(cursor.to_owned()),
            _ => return read,
        }
    }
}

/// The relationship "indicator `n` (of [`stix_indicator`]) indicates `target`".
fn indicates(n: u32, target: &str) -> serde_json::Value {
    serde_json::json!({
        "type": "relationship", "spec_version": "2.1",
        "id": format!("relationship--00000000-0000-4000-8000-{n:012}"),
        "created": "2026-01-01T00:00:00.000Z", "modified": "2026-01-01T00:00:00.000Z",
        "relationship_type": "indicates",
        "source_ref": format!("indicator--00000000-0000-4000-8000-{n:012}"),
        "target_ref": target,
    })
}

#[tokio::test]
async fn pages_of_any_size_list_the_same_objects_as_one_page() {
    let (router, _store, _dir) = node().await;
    let own = collection_url(&router, true).await;
    let shared = collection_url(&router, false).await;
    // Two entries whose indicators name malware and campaigns, some several times, so an
    // entry's objects are not one per item and a page can end anywhere among them.
    for entry in 0..2u32 {
        let mut objects = Vec::new();
        for n in 1..=5u32 {
            let id = entry * 10 + n;
            objects.push(stix_indicator(
                id,
                &format!("203.0.113.{id}"),
                "2026-01-01T00:00:00.000Z",
            ));
            let (kind, target) = if n % 2 == 0 {
                (
                    "malware",
                    format!("malware--00000000-0000-4000-8000-0000000000a{}", n % 4),
                )
            } else {
                (
                    "campaign",
                    "campaign--00000000-0000-4000-8000-0000000000c1".to_owned(),
                )
            };
            if n == 1 || n == 2 || n == 4 {
                objects.push(serde_json::json!({
                    "type": kind, "spec_version": "2.1", "id": target,
                    "created": "2026-01-01T00:00:00.000Z",
                    "modified": "2026-01-01T00:00:00.000Z",
                    "name": format!("{kind} {n}"), "is_family": true,
                }));
            }
            objects.push(indicates(id, &target));
        }
        let envelope = serde_json::json!({ "objects": objects });
        let (status, _, answer) =
            taxii(&router, "POST", &format!("{own}objects/"), Some(&envelope)).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
        assert_eq!(answer["failure_count"], 0, "{answer}");
    }
    for listing in ["objects", "manifest"] {
        let whole = read_all(&router, &shared, listing, 1000).await;
        let kinds = |kind: &str| {
            whole
                .iter()
                .filter(|object| object["id"].as_str().unwrap().starts_with(kind))
                .count()
        };
        assert_eq!(kinds("indicator--"), 10, "{whole:?}");
        assert!(
            kinds("malware--") >= 1 && kinds("campaign--") >= 1,
            "{whole:?}"
        );
        assert!(kinds("relationship--") >= 10, "{whole:?}");
        for limit in [1, 2, 3, 7] {
            let paged = read_all(&router, &shared, listing, limit).await;
            let ids = |objects: &[serde_json::Value]| -> Vec<String> {
                objects
                    .iter()
                    .map(|object| object["id"].to_string())
                    .collect()
            };
            assert_eq!(ids(&paged), ids(&whole), "{listing} in pages of {limit}");
            assert!(paged == whole, "{listing} in pages of {limit}");
        }
    }
}

#[tokio::test]
async fn every_listed_object_is_found_by_id_as_listed() {
    let (router, _store, _dir) = node().await;
    let own = collection_url(&router, true).await;
    let shared = collection_url(&router, false).await;
    // One entry with an object of each kind a lookup exports from one item: indicators
    // naming malware (some the same one), a campaign, a revoked indicator, and a
    // sighting of an indicator the same entry asserts (which points at that indicator's
    // id, so it is exported from the whole entry).
    let mut objects = Vec::new();
    for n in 1..=6u32 {
        let mut indicator =
            stix_indicator(n, &format!("198.51.100.{n}"), "2026-01-01T00:00:00.000Z");
        if n == 5 {
            indicator["revoked"] = serde_json::json!(true);
        }
        objects.push(indicator);
        let target = if n % 3 == 0 {
            "campaign--00000000-0000-4000-8000-0000000000c1".to_owned()
        } else {
            format!("malware--00000000-0000-4000-8000-0000000000a{}", n % 2)
        };
        objects.push(indicates(n, &target));
    }
    for (kind, id) in [
        ("malware", "malware--00000000-0000-4000-8000-0000000000a0"),
        ("malware", "malware--00000000-0000-4000-8000-0000000000a1"),
        ("campaign", "campaign--00000000-0000-4000-8000-0000000000c1"),
    ] {
        objects.push(serde_json::json!({
            "type": kind, "spec_version": "2.1", "id": id,
            "created": "2026-01-01T00:00:00.000Z", "modified": "2026-01-01T00:00:00.000Z",
            "name": format!("{kind} {id}"), "is_family": true,
        }));
    }
    objects.push(serde_json::json!({
        "type": "sighting", "spec_version": "2.1",
        "id": "sighting--00000000-0000-4000-8000-000000000001",
        "created": "2026-01-02T00:00:00.000Z", "modified": "2026-01-02T00:00:00.000Z",
        "sighting_of_ref": "indicator--00000000-0000-4000-8000-000000000002",
        "count": 4,
        "first_seen": "2026-01-01T00:00:00Z", "last_seen": "2026-01-02T00:00:00Z",
    }));
    let envelope = serde_json::json!({ "objects": objects });
    let (status, _, answer) =
        taxii(&router, "POST", &format!("{own}objects/"), Some(&envelope)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(answer["failure_count"], 0, "{answer}");

    let listed = read_all(&router, &shared, "objects", 1000).await;
    let of_kind = |prefix: &str| {
        listed
            .iter()
            .filter(|object| object["id"].as_str().unwrap().starts_with(prefix))
            .count()
    };
    for prefix in [
        "indicator--",
        "malware--",
        "campaign--",
        "relationship--",
        "sighting--",
    ] {
        assert!(of_kind(prefix) >= 1, "no {prefix} in {listed:?}");
    }
    for object in &listed {
        let id = object["id"].as_str().unwrap();
        let (status, _, found) = taxii(
            &router,
            "GET",
            &format!("{shared}objects/{id}/?match[version]=all"),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{id}: {found}");
        let found = found["objects"].as_array().cloned().unwrap_or_default();
        assert!(
            found.iter().any(|version| version == object),
            "{id} listed as {object} but looked up as {found:?}"
        );
    }
}
