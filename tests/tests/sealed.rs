//! Restricted sharing end to end: a TLP:RED bundle for named recipients is relayed and
//! synced like any other entry, but only its recipients read it, through any interface.

#![allow(clippy::unwrap_used)] // tests unwrap what they built themselves

use threatmesh_protocol::charter::Member;
use threatmesh_protocol::entry::Body;
use threatmesh_protocol::seal::{OpenError, SealContext};
use threatmesh_protocol::{Distribution, EncryptionSecret, Kind, SignedEntry, Tlp, Value};
use threatmesh_tests::{TestNet, TestNode, epoch, http_get, indicators, wait_for};

fn ip(text: &str) -> Value {
    Value::parse(Kind::Ipv4, text).unwrap()
}

fn knows(node: &TestNode, value: &Value) -> bool {
    let lookup = node.store.lookup(value, epoch()).unwrap();
    !lookup.assertions.is_empty() || !lookup.sightings.is_empty()
}

fn entry(node: &TestNode, id: &threatmesh_protocol::Hash) -> SignedEntry {
    node.store.entry(id).unwrap().unwrap()
}

/// Star around C (node 0): A (1), B (2) and D (3) reach each other only through C.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn red_bundle_for_b_is_read_by_b_and_relayed_unread_by_c_and_d() {
    let net = TestNet::star(4).await.unwrap();
    let (c, a, b, d) = (&net.nodes[0], &net.nodes[1], &net.nodes[2], &net.nodes[3]);
    let org_b = net.federation.org(2);
    let ids = a
        .node()
        .publisher()
        .publish(
            Tlp::Red,
            Distribution::Recipients(vec![org_b]),
            indicators(0, 50),
        )
        .await
        .unwrap();
    assert_eq!(ids.len(), 1);
    net.wait_everywhere(&ids).await.unwrap();

    // Every node holds the same sealed entry; only A and B are named in it.
    let sealed = entry(c, &ids[0]);
    let Body::Sealed(body) = &sealed.entry().body else {
        panic!("a TLP:RED bundle travels sealed");
    };
    assert_eq!(body.orgs(), vec![net.federation.org(1), org_b]);
    for node in [a, b, d] {
        assert_eq!(entry(node, &ids[0]), sealed);
    }

    // B reads it: lookup, the readable bundle, its metrics.
    let value = ip("10.0.0.7");
    let found = b.store.lookup(&value, epoch()).unwrap();
    assert_eq!(found.assertions.len(), 1);
    assert_eq!(found.assertions[0].tlp, Tlp::Red);
    assert_eq!(found.assertions[0].org, net.federation.org(1));
    assert_eq!(
        b.store.readable(&sealed).unwrap().unwrap().items,
        indicators(0, 50)
    );
    assert_eq!(b.client.metrics().sealed_opened, 1);
    // So does A, its publisher.
    assert!(knows(a, &value));

    // C (a relay) and D (beyond it) hold it and read nothing of it.
    for node in [c, d] {
        assert!(!knows(node, &value));
        assert_eq!(node.store.readable(&sealed).unwrap(), None);
        assert_eq!(node.store.stats().unwrap().sealed, 1);
        assert_eq!(node.store.stats().unwrap().records, 0);
        let metrics = node.client.metrics();
        assert_eq!(metrics.sealed_opened, 0);
        assert_eq!(metrics.sealed_not_addressed, 1);
        assert_eq!(metrics.rejected_total(), 0);
    }
    // D got it through C: D's only peer is C.
    assert_eq!(d.client.peers().await.unwrap(), vec![c.client.peer_id()]);

    // Through the HTTP API: C's lookup and export show nothing of the content; B's do.
    let api_c = c.api();
    let api_b = b.api();
    let (status, answer) = http_get(api_c, "/api/v1/indicators/ipv4/10.0.0.7")
        .await
        .unwrap();
    assert_eq!(status, 200, "{answer}");
    assert!(answer.contains(r#""known":false"#), "{answer}");
    let (status, export) = http_get(api_c, "/api/v1/entries").await.unwrap();
    assert_eq!(status, 200, "{export}");
    assert!(export.contains(r#""sealed""#), "{export}");
    assert!(
        !export.contains("10.0.0."),
        "C's export leaks an indicator: {export}"
    );
    assert!(!export.contains(r#""opened""#), "{export}");
    let (_, metrics) = http_get(api_c, "/metrics").await.unwrap();
    assert!(
        metrics.contains("threatmesh_store_sealed_entries 1"),
        "{metrics}"
    );
    assert!(!metrics.contains("10.0.0."), "{metrics}");
    let (status, answer) = http_get(api_b, "/api/v1/indicators/ipv4/10.0.0.7")
        .await
        .unwrap();
    assert_eq!(status, 200, "{answer}");
    assert!(answer.contains(r#""known":true"#), "{answer}");
    let (_, export) = http_get(api_b, "/api/v1/entries").await.unwrap();
    assert!(export.contains(r#""opened""#), "{export}");
    assert!(export.contains("10.0.0.7"), "{export}");

    // Through TAXII: C's shared collection holds no object of the entry; B's has its
    // indicators.
    for (api, readable) in [(api_c, false), (api_b, true)] {
        let (status, collections) = http_get(api, "/taxii2/root/collections/").await.unwrap();
        assert_eq!(status, 200, "{collections}");
        let collections: serde_json::Value = serde_json::from_str(&collections).unwrap();
        let shared = collections["collections"]
            .as_array()
            .unwrap()
            .iter()
            .find(|collection| collection["can_write"] == false)
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let (status, objects) = http_get(
            api,
            &format!("/taxii2/root/collections/{shared}/objects/?match[type]=indicator"),
        )
        .await
        .unwrap();
        assert_eq!(status, 200, "{objects}");
        assert_eq!(objects.contains("10.0.0.7"), readable, "{objects}");
        if !readable {
            assert_eq!(objects.trim(), "{}", "C lists objects: {objects}");
        }
    }
}

/// A, B and C in a line. A newer charter removes C and rotates B's key: what A publishes
/// after it has no slot for C and a slot for B's new key only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recipient_removed_or_rekeyed_by_a_newer_charter_cannot_read_later_bundles() {
    let net = TestNet::line(3).await.unwrap();
    let (a, b, c) = (&net.nodes[0], &net.nodes[1], &net.nodes[2]);
    let (org_a, org_b, org_c) = (
        net.federation.org(0),
        net.federation.org(1),
        net.federation.org(2),
    );
    // Before: C is a recipient and reads it.
    let before = a
        .node()
        .publisher()
        .publish(
            Tlp::AmberStrict,
            Distribution::Recipients(vec![org_b, org_c]),
            indicators(0, 5),
        )
        .await
        .unwrap();
    net.wait_everywhere(&before).await.unwrap();
    assert!(knows(c, &ip("10.0.0.1")));
    assert!(knows(b, &ip("10.0.0.1")));

    // Version 2: C is gone, B has a new encryption key (B's node still runs the old one).
    let rotated = EncryptionSecret::from_bytes([0x77; 32]);
    let v2 = net
        .federation
        .successor(&net.federation.genesis, |charter| {
            charter
                .members
                .retain(|member: &Member| member.org != org_c);
            for member in &mut charter.members {
                if member.org == org_b {
                    member.encryption_key = Some(rotated.public_key());
                }
            }
        });
    a.client.update_charter(v2).await.unwrap();
    wait_for("B to apply version 2", || async {
        b.client.charter().charter().version == 2
    })
    .await
    .unwrap();

    // Naming C now is refused, with C named in the error.
    let error = a
        .node()
        .publisher()
        .publish(
            Tlp::Red,
            Distribution::Recipients(vec![org_b, org_c]),
            indicators(100, 5),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains(&org_c.to_string()), "{error}");
    assert!(error.contains("is not a member"), "{error}");

    let after = a
        .node()
        .publisher()
        .publish(
            Tlp::Red,
            Distribution::Recipients(vec![org_b]),
            indicators(200, 5),
        )
        .await
        .unwrap();
    let sealed = entry(a, &after[0]);
    let Body::Sealed(body) = &sealed.entry().body else {
        panic!("sealed");
    };
    assert_eq!(body.orgs(), vec![org_a, org_b]);
    let context = SealContext::of(sealed.entry());
    // C's key opens nothing: it has no slot.
    assert!(matches!(
        body.open(&context, &org_c, &net.federation.encryption[2]),
        Err(OpenError::NotARecipient(_))
    ));
    // B's old key no longer opens B's slot; the new one does.
    assert!(matches!(
        body.open(&context, &org_b, &net.federation.encryption[1]),
        Err(OpenError::KeySlot(_))
    ));
    assert_eq!(
        body.open(&context, &org_b, &rotated).unwrap().items,
        indicators(200, 5)
    );

    // B's node, still on its old key, stores and relays the entry but cannot read it, and
    // counts the failure; what it read before stays.
    wait_for("B to hold the new entry", || async { b.has_all(&after) })
        .await
        .unwrap();
    assert_eq!(b.client.metrics().sealed_open_failed, 1);
    assert!(!knows(b, &ip("10.0.0.200")));
    assert!(knows(b, &ip("10.0.0.1")));
    assert!(knows(a, &ip("10.0.0.200")));
    assert!(!knows(c, &ip("10.0.0.200")));
}

/// A and B in a line. A newer charter lists a new encryption key for B before B's node has
/// it: what A seals to the new key is stored unread at B. Once the key is added to B's
/// node, that entry is read, with no one sending it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bundle_sealed_to_a_key_the_node_gets_later_is_read_once_the_key_is_added() {
    let net = TestNet::line(2).await.unwrap();
    let (a, b) = (&net.nodes[0], &net.nodes[1]);
    let org_b = net.federation.org(1);
    let rotated = EncryptionSecret::from_bytes([0x78; 32]);
    let v2 = net
        .federation
        .successor(&net.federation.genesis, |charter| {
            for member in &mut charter.members {
                if member.org == org_b {
                    member.encryption_key = Some(rotated.public_key());
                }
            }
        });
    a.client.update_charter(v2).await.unwrap();
    wait_for("B to apply version 2", || async {
        b.client.charter().charter().version == 2
    })
    .await
    .unwrap();

    let ids = a
        .node()
        .publisher()
        .publish(
            Tlp::Red,
            Distribution::Recipients(vec![org_b]),
            indicators(300, 5),
        )
        .await
        .unwrap();
    wait_for("B to hold the entry", || async { b.has_all(&ids) })
        .await
        .unwrap();
    let value = ip("10.0.1.44");
    assert!(!knows(b, &value));
    assert_eq!(b.client.metrics().sealed_open_failed, 1);
    assert_eq!(b.store.stats().unwrap().unread, 1);

    assert!(b.client.add_encryption_key(rotated.clone()));
    assert!(!b.client.add_encryption_key(rotated));
    wait_for("B to read the entry with the key it got later", || async {
        knows(b, &value)
    })
    .await
    .unwrap();
    let sealed = entry(b, &ids[0]);
    assert_eq!(
        b.store.readable(&sealed).unwrap().unwrap().items,
        indicators(300, 5)
    );
    assert_eq!(b.store.stats().unwrap().unread, 0);
    assert_eq!(b.client.metrics().sealed_retry_opened, 1);
    // What B reads shows in its exports too.
    let api_b = b.api();
    let (_, export) = http_get(api_b, "/api/v1/entries").await.unwrap();
    assert!(export.contains(r#""opened""#), "{export}");
    assert!(export.contains("10.0.1.44"), "{export}");
    // Once: the entry moved to where it became readable, it is not listed twice.
    assert_eq!(export.matches(&ids[0].to_string()).count(), 1, "{export}");
}

/// A and B, not connected yet. A seals a bundle to B's key; then B's organisation rotates
/// to a new key, and only then does B's node fetch the entry (as a node that was offline
/// does). B still reads it: the node keeps its earlier key beside the new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bundle_sealed_to_the_earlier_key_still_opens_after_a_rotation() {
    let net = TestNet::start(2).await.unwrap();
    let (a, b) = (&net.nodes[0], &net.nodes[1]);
    let org_b = net.federation.org(1);
    let ids = a
        .node()
        .publisher()
        .publish(
            Tlp::Red,
            Distribution::Recipients(vec![org_b]),
            indicators(400, 5),
        )
        .await
        .unwrap();

    let rotated = EncryptionSecret::from_bytes([0x79; 32]);
    assert!(b.client.add_encryption_key(rotated.clone()));
    assert_eq!(
        b.client.encryption_keys(),
        vec![
            net.federation.encryption[1].public_key(),
            rotated.public_key()
        ]
    );

    net.connect(0, 1).await.unwrap();
    wait_for("B to fetch the entry", || async { b.has_all(&ids) })
        .await
        .unwrap();
    let value = ip("10.0.1.144");
    assert!(
        knows(b, &value),
        "an entry sealed to B's earlier key does not open"
    );
    assert_eq!(b.client.metrics().sealed_opened, 1);
    assert_eq!(b.client.metrics().sealed_open_failed, 0);
    assert_eq!(b.store.stats().unwrap().unread, 0);
}
