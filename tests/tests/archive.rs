//! Air-gap archives end to end: a node exports its entries and charters through its API,
//! a node with no network connection to it imports the file, and holds exactly the same
//! entries. Importing twice changes nothing; `since` and `organisation` select; a
//! foreign, truncated or altered archive stops at the byte at fault, keeping what
//! verified before it; an upload cut off mid-way can be run again.

#![allow(clippy::unwrap_used)] // tests unwrap what they built themselves

use std::collections::HashSet;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt as _;
use serde_json::Value as Json;
use threatmesh_node::api::{ApiState, router};
use threatmesh_protocol::archive::{Decoder, Encoder, Frame, Header};
use threatmesh_protocol::{Hash, Timestamp};
use threatmesh_tests::{API_TOKEN, TestNet, TestNode, http_get, wait_for};
use tower::ServiceExt as _;

const MEDIA_TYPE: &str = threatmesh_node::api::archive::MEDIA_TYPE;

fn api(node: &TestNode) -> axum::Router {
    router(ApiState::new(
        node.store.clone(),
        node.client.clone(),
        node.node().publisher().clone(),
        vec![API_TOKEN.into()],
    ))
}

/// `GET /api/v1/archive{query}`: the status and the body.
async fn export(node: &TestNode, query: &str) -> (StatusCode, Vec<u8>) {
    let request = Request::get(format!("/api/v1/archive{query}"))
        .header("authorization", format!("Bearer {API_TOKEN}"))
        .body(Body::empty())
        .unwrap();
    let response = api(node).oneshot(request).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, body.to_vec())
}

/// `POST /api/v1/archive` with `body`: the status and the report.
async fn import_with(node: &TestNode, body: Body) -> (StatusCode, Json) {
    let request = Request::post("/api/v1/archive")
        .header("authorization", format!("Bearer {API_TOKEN}"))
        .header("content-type", MEDIA_TYPE)
        .body(body)
        .unwrap();
    let response = api(node).oneshot(request).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap())
}

async fn import(node: &TestNode, archive: &[u8]) -> (StatusCode, Json) {
    import_with(node, Body::from(archive.to_vec())).await
}

/// The entry frames of an archive: each entry's id and the byte position of its frame,
/// and the archive's header.
fn entries_of(archive: &[u8]) -> (Header, Vec<(Hash, usize)>) {
    let mut decoder = Decoder::new();
    decoder.feed(archive);
    let mut header = None;
    let mut entries = Vec::new();
    while let Some(framed) = decoder.next_frame().unwrap() {
        match framed.frame {
            Frame::Header(read) => header = Some(read),
            Frame::Entry(payload) => {
                entries.push((
                    Hash::of(&payload),
                    usize::try_from(framed.position).unwrap(),
                ));
            }
            Frame::Charter(_) | Frame::Trailer(_) => {}
        }
    }
    decoder.finish().unwrap();
    (header.unwrap(), entries)
}

fn held(node: &TestNode) -> HashSet<Hash> {
    node.store
        .entries()
        .map(|entry| entry.unwrap().id())
        .collect()
}

/// A federation of three: node 0 holds entries of its own organisation and of member
/// 2's (received over the network) and a second charter version; node 1 has never been
/// connected to anyone.
struct Setup {
    net: TestNet,
    /// Member 2's entries, then node 0's first batch.
    before: Vec<Hash>,
    /// Node 0's second batch, published after `since`.
    after: Vec<Hash>,
    own: Vec<Hash>,
    others: Vec<Hash>,
    since: Timestamp,
}

async fn setup() -> Setup {
    let net = TestNet::start(3).await.unwrap();
    net.connect(2, 0).await.unwrap();
    net.wait_for_mesh_of(&[0, 2]).await;
    let charter = net
        .federation
        .successor(&net.federation.genesis, |charter| {
            charter.name = "Test federation, second version".into();
        });
    net.nodes[0].client.update_charter(charter).await.unwrap();
    let (a, c) = (&net.nodes[0], &net.nodes[2]);
    let others = publish(c, 0, 6).await;
    wait_for("node 0 to hold member 2's entries", || async {
        a.has_all(&others)
    })
    .await
    .unwrap();
    let first = publish(a, 100_000, 5).await;
    let since = a.client.now();
    wait_for("the clock to pass `since`", || async {
        a.client.now() > since
    })
    .await
    .unwrap();
    let after = publish(a, 200_000, 5).await;
    Setup {
        before: [others.clone(), first.clone()].concat(),
        own: [first, after.clone()].concat(),
        after,
        others,
        since,
        net,
    }
}

/// `entries` entries of 200 indicators each, from `first` on.
async fn publish(node: &TestNode, first: u32, entries: u32) -> Vec<Hash> {
    let mut ids = Vec::new();
    for entry in 0..entries {
        ids.extend(node.publish(first + entry * 200, 200).await.unwrap());
    }
    assert_eq!(ids.len(), entries as usize);
    ids
}

trait MeshOf {
    async fn wait_for_mesh_of(&self, nodes: &[usize]);
}

impl MeshOf for TestNet {
    async fn wait_for_mesh_of(&self, nodes: &[usize]) {
        for index in nodes {
            let node = &self.nodes[*index];
            wait_for("the gossip mesh", || async {
                !node
                    .client
                    .mesh_peers()
                    .await
                    .unwrap_or_default()
                    .is_empty()
            })
            .await
            .unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archive_carries_two_organisations_entries_to_a_node_with_no_network() {
    let setup = setup().await;
    let (a, b) = (&setup.net.nodes[0], &setup.net.nodes[1]);
    assert!(b.client.peers().await.unwrap().is_empty());
    let (status, archive) = export(a, "").await;
    assert_eq!(status, StatusCode::OK);
    let (header, entries) = entries_of(&archive);
    assert_eq!(header.federation, setup.net.federation.id());
    assert_eq!(header.organisation, Some(setup.net.federation.org(0)));
    let total = setup.before.len() + setup.after.len();
    assert_eq!(entries.len(), total);

    let (status, report) = import(b, &archive).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["complete"], true);
    assert_eq!(report["entries"]["new"], total);
    assert_eq!(report["entries"]["known"], 0);
    assert_eq!(report["entries"]["refused"], 0);
    // The genesis B holds; the second version is new and now in force.
    assert_eq!(report["charters"]["new"], 1);
    assert_eq!(report["charters"]["known"], 1);
    assert_eq!(b.client.charter().charter().version, 2);
    assert_eq!(report["bytes_verified"], archive.len());
    assert_eq!(held(b), held(a));
    assert!(b.has_all(&setup.own) && b.has_all(&setup.others));

    // Again: nothing new, nothing changes.
    let stats = b.store.stats().unwrap();
    let (status, report) = import(b, &archive).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["entries"]["new"], 0);
    assert_eq!(report["entries"]["known"], total);
    assert_eq!(report["charters"]["new"], 0);
    assert_eq!(report["charters"]["known"], 2);
    assert_eq!(b.store.stats().unwrap().entries, stats.entries);
    assert_eq!(b.store.stats().unwrap().records, stats.records);

    // Counted in the metrics.
    let address = b.api();
    let (_, metrics) = http_get(address, "/metrics").await.unwrap();
    assert!(
        metrics.contains("threatmesh_archive_imports_total{result=\"complete\"} 2"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_selects_by_since_and_by_organisation() {
    let setup = setup().await;
    let a = &setup.net.nodes[0];
    let ids = |archive: &[u8]| -> HashSet<Hash> {
        entries_of(archive)
            .1
            .into_iter()
            .map(|(id, _)| id)
            .collect()
    };

    let (status, archive) = export(a, &format!("?since={}", setup.since.0)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ids(&archive), setup.after.iter().copied().collect());
    assert_eq!(entries_of(&archive).0.since, Some(setup.since));

    // By the member's name in the charter, and by its id.
    let (_, archive) = export(a, "?organisation=org-2").await;
    assert_eq!(ids(&archive), setup.others.iter().copied().collect());
    let org = setup.net.federation.org(0);
    let (_, archive) = export(a, &format!("?organisation={org}")).await;
    assert_eq!(ids(&archive), setup.own.iter().copied().collect());
    assert_eq!(entries_of(&archive).0.organisations, vec![org]);
    let (_, archive) = export(a, &format!("?organisation=ORG-2&organisation={org}")).await;
    assert_eq!(ids(&archive).len(), setup.own.len() + setup.others.len());

    let (status, _) = export(a, "?organisation=nobody").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = export(a, "?since=yesterday").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archive_of_another_federation_is_refused_at_its_header() {
    let setup = setup().await;
    let (a, b) = (&setup.net.nodes[0], &setup.net.nodes[1]);
    let (_, archive) = export(a, "").await;
    // The same entries under a header naming another federation.
    let (mut header, _) = entries_of(&archive);
    header.federation = Hash([0x5a; 32]);
    let mut foreign = Vec::new();
    let mut encoder = Encoder::new(&header, &mut foreign).unwrap();
    let mut decoder = Decoder::new();
    decoder.feed(&archive);
    while let Some(framed) = decoder.next_frame().unwrap() {
        match framed.frame {
            Frame::Charter(payload) => encoder.charter(&payload, &mut foreign).unwrap(),
            Frame::Entry(payload) => encoder.entry(&payload, &mut foreign).unwrap(),
            Frame::Header(_) | Frame::Trailer(_) => {}
        }
    }
    encoder.finish(&mut foreign).unwrap();

    let before = b.store.stats().unwrap().entries;
    let (status, report) = import(b, &foreign).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(report["complete"], false);
    assert_eq!(report["fault"]["position"], 8, "{report}");
    let reason = report["fault"]["reason"].as_str().unwrap();
    assert!(reason.contains("another federation") || reason.contains("federation"));
    assert!(reason.contains(&Hash([0x5a; 32]).to_string()), "{reason}");
    assert_eq!(report["entries"]["new"], 0);
    assert_eq!(b.store.stats().unwrap().entries, before);
    assert_eq!(b.client.charter().charter().version, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_archive_keeps_the_entries_before_the_cut_and_none_after() {
    let setup = setup().await;
    let (a, b) = (&setup.net.nodes[0], &setup.net.nodes[1]);
    let (_, archive) = export(a, "").await;
    let (_, entries) = entries_of(&archive);
    let half = entries.len() / 2;
    // Inside the frame of entry `half`.
    let cut = entries[half].1 + 10;
    let (status, report) = import(b, &archive[..cut]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(report["complete"], false);
    assert_eq!(report["fault"]["position"], cut, "{report}");
    assert!(
        report["fault"]["reason"]
            .as_str()
            .unwrap()
            .contains("truncated")
    );
    assert_eq!(report["entries"]["new"], half);
    assert_eq!(report["bytes_verified"], entries[half].1);
    for (index, (id, _)) in entries.iter().enumerate() {
        assert_eq!(b.has(id), index < half, "entry {index}");
    }
    // The whole archive then completes: what was kept is known, the rest new.
    let (status, report) = import(b, &archive).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(report["entries"]["known"], half);
    assert_eq!(report["entries"]["new"], entries.len() - half);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn altered_byte_stops_the_import_at_its_frame() {
    let setup = setup().await;
    let (a, b) = (&setup.net.nodes[0], &setup.net.nodes[1]);
    let (_, archive) = export(a, "").await;
    let (_, entries) = entries_of(&archive);
    let third = entries.len() / 3;
    let mut altered = archive.clone();
    // A byte in the middle of entry `third`'s body.
    let at = entries[third].1 + (entries[third + 1].1 - entries[third].1) / 2;
    altered[at] ^= 0x01;
    let (status, report) = import(b, &altered).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(report["fault"]["position"], entries[third].1, "{report}");
    assert!(
        report["fault"]["reason"]
            .as_str()
            .unwrap()
            .contains("fails its check")
    );
    assert_eq!(report["entries"]["new"], third);
    for (index, (id, _)) in entries.iter().enumerate() {
        assert_eq!(b.has(id), index < third, "entry {index}");
    }
    let address = b.api();
    let (_, metrics) = http_get(address, "/metrics").await.unwrap();
    assert!(
        metrics.contains("threatmesh_archive_imports_total{result=\"refused\"} 1"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_cut_mid_way_can_be_run_again_and_completes() {
    let setup = setup().await;
    let (a, b) = (&setup.net.nodes[0], &setup.net.nodes[1]);
    let (_, archive) = export(a, "").await;
    let total = entries_of(&archive).1.len();
    let address = b.api();
    // A client that announces the whole archive, sends half and is killed.
    let head = format!(
        "POST /api/v1/archive HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {API_TOKEN}\r\n\
         Content-Type: {MEDIA_TYPE}\r\nContent-Length: {}\r\n\r\n",
        archive.len()
    );
    let half = archive[..archive.len() / 2].to_vec();
    tokio::task::spawn_blocking(move || {
        use std::io::Write as _;
        let mut stream = std::net::TcpStream::connect(address).unwrap();
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(&half).unwrap();
        stream.flush().unwrap();
    })
    .await
    .unwrap();
    wait_for("the node to count the cut import", || async {
        http_get(address, "/metrics")
            .await
            .is_ok_and(|(_, metrics)| {
                metrics.contains("threatmesh_archive_imports_total{result=\"cut\"} 1")
            })
    })
    .await
    .unwrap();
    let kept = b.store.stats().unwrap().entries;
    assert!(kept < total as u64);

    let (status, report) = import(b, &archive).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["entries"]["known"], kept);
    assert_eq!(report["entries"]["new"], total as u64 - kept);
    assert_eq!(held(b), held(a));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_token_may_export_but_not_import() {
    let setup = setup().await;
    let b = &setup.net.nodes[1];
    let state = ApiState::new(
        b.store.clone(),
        b.client.clone(),
        b.node().publisher().clone(),
        vec![API_TOKEN.into()],
    )
    .with_read_tokens(vec!["read-only-token-0123456789".into()]);
    let request = |method: &str| {
        Request::builder()
            .method(method)
            .uri("/api/v1/archive")
            .header("authorization", "Bearer read-only-token-0123456789")
            .header("content-type", MEDIA_TYPE)
            .body(Body::empty())
            .unwrap()
    };
    let response = router(state.clone()).oneshot(request("GET")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let response = router(state).oneshot(request("POST")).await.unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_entry_in_a_sound_archive_is_refused_by_id_and_reason_and_the_rest_stored() {
    let setup = setup().await;
    let (a, b) = (&setup.net.nodes[0], &setup.net.nodes[1]);
    let (_, archive) = export(a, "").await;
    // Re-encoded with the last byte of one entry (its signature) changed: every frame's
    // check is right, the entry's signature is not.
    let (header, _) = entries_of(&archive);
    let mut forged = Vec::new();
    let mut encoder = Encoder::new(&header, &mut forged).unwrap();
    let mut decoder = Decoder::new();
    decoder.feed(&archive);
    let (mut index, mut forged_entry) = (0, None);
    while let Some(framed) = decoder.next_frame().unwrap() {
        match framed.frame {
            Frame::Charter(payload) => encoder.charter(&payload, &mut forged).unwrap(),
            Frame::Entry(mut payload) => {
                if index == 3 {
                    *payload.last_mut().unwrap() ^= 0x01;
                    forged_entry = Some((Hash::of(&payload), forged.len()));
                }
                encoder.entry(&payload, &mut forged).unwrap();
                index += 1;
            }
            Frame::Header(_) | Frame::Trailer(_) => {}
        }
    }
    encoder.finish(&mut forged).unwrap();
    let (id, position) = forged_entry.unwrap();

    let (status, report) = import(b, &forged).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["complete"], true);
    assert_eq!(report["entries"]["refused"], 1);
    assert_eq!(report["entries"]["new"], index - 1);
    assert_eq!(report["entries"]["refused_by_reason"]["bad-signature"], 1);
    let refused = &report["entries"]["refused_entries"][0];
    assert_eq!(refused["id"], id.to_string());
    assert_eq!(refused["position"], position);
    assert_eq!(refused["reason"], "bad-signature");
    assert!(!b.has(&id));
}
