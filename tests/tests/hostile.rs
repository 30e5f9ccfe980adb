//! Misbehaving members, revoked members and entries at the size limit.

#![allow(clippy::unwrap_used)] // tests unwrap what they built themselves

use threatmesh_node::network::Rejection;
use threatmesh_protocol::charter::{FeedCutoff, Status};
use threatmesh_protocol::entry::{Body, RawEntry, SignedEntry};
use threatmesh_protocol::wire::{self, MAX_GOSSIP_BYTES, Message};
use threatmesh_protocol::{Bundle, Distribution, PublicKey, Timestamp, Tlp};
use threatmesh_tests::{RawPeer, TestNet, indicators, test_config, wait_for};

/// The wall clock, as the protocol counts time.
fn now() -> Timestamp {
    let elapsed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    Timestamp(u64::try_from(elapsed.as_millis()).unwrap())
}

/// A well-formed entry by `key` whose signature was damaged: it decodes, then fails.
fn forged_entry(net: &TestNet, key: &threatmesh_protocol::SigningKey, first: u32) -> Vec<u8> {
    let body = Body::Bundle(Bundle {
        tlp: Tlp::Green,
        distribution: Distribution::Federation,
        items: indicators(first, 5),
    });
    let entry = SignedEntry::next(
        key,
        net.federation.id(),
        None,
        Timestamp(1_700_000_000_000),
        body,
    )
    .unwrap();
    let Message::Entry(mut raw) = wire::decode_gossip(entry.payload()).unwrap() else {
        panic!("not an entry");
    };
    raw.signature.0[0] ^= 1;
    wire::encode(&Message::Entry(RawEntry {
        signed: raw.signed,
        signature: raw.signature,
    }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_sending_forged_malformed_or_oversized_entries_is_banned_and_nothing_is_stored() {
    let mut config = test_config();
    config.rejects_before_ban = 4;
    // Member 2 runs no node: the hostile peer holds its key.
    let net = TestNet::start_some(3, 2, config).await.unwrap();
    net.connect(1, 0).await.unwrap();
    let victim = &net.nodes[0];
    let hostile_key = net.federation.nodes[2].clone();
    let mut hostile = RawPeer::new(&hostile_key, net.federation.id()).unwrap();
    hostile.connect(victim).await.unwrap();

    let mut oversized = wire::encode(&Message::Entry(RawEntry {
        signed: vec![7; MAX_GOSSIP_BYTES],
        signature: threatmesh_protocol::Signature([0; 64]),
    }));
    oversized.truncate(MAX_GOSSIP_BYTES + 1000);
    let payloads = vec![
        forged_entry(&net, &hostile_key, 0),
        b"\x01not a message at all".to_vec(),
        oversized,
        forged_entry(&net, &hostile_key, 100),
        b"\x09from a future wire version".to_vec(),
    ];
    for payload in payloads {
        hostile.publish(payload).unwrap();
    }
    let victim_id = victim.client.peer_id();
    hostile
        .drive_until("the victim to drop the hostile peer", |event| {
            matches!(
                event,
                libp2p::swarm::SwarmEvent::ConnectionClosed { peer_id, num_established: 0, .. }
                    if *peer_id == victim_id
            )
        })
        .await
        .unwrap();

    let metrics = victim.client.metrics();
    assert_eq!(metrics.peers_banned, 1);
    assert!(
        metrics.rejected(Rejection::BadSignature) >= 1,
        "{metrics:?}"
    );
    assert!(metrics.rejected(Rejection::Malformed) >= 2, "{metrics:?}");
    assert_eq!(
        victim.store.stats().unwrap().entries,
        0,
        "nothing it sent is stored"
    );
    assert_eq!(
        net.nodes[1].store.stats().unwrap().entries,
        0,
        "nor relayed"
    );

    // A banned peer cannot come back for now...
    assert!(!hostile.try_connect(victim).await.unwrap());
    // ...while honest traffic still flows.
    let ids = net.nodes[1].publish(0, 10).await.unwrap();
    wait_for("the honest entry", || async { victim.has_all(&ids) })
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_member_is_disconnected_and_its_later_entries_are_refused() {
    // Member 3 runs no node: its key serves the relay below.
    let net = TestNet::start_some(4, 3, test_config()).await.unwrap();
    net.connect(1, 0).await.unwrap();
    net.connect(2, 0).await.unwrap();
    net.connect(2, 1).await.unwrap();
    net.wait_for_mesh().await.unwrap();
    let (hub, other, revoked) = (&net.nodes[0], &net.nodes[1], &net.nodes[2]);
    let mut published = Vec::new();
    for batch in 0..3 {
        published.extend(revoked.publish(batch * 10, 10).await.unwrap());
    }
    net.wait_everywhere(&published).await.unwrap();

    // The stewards revoke member 2: its feed ends at the entries already published.
    let author = PublicKey::of(&revoked.key);
    let head = revoked
        .store
        .heads()
        .unwrap()
        .into_iter()
        .find(|h| h.author == author)
        .unwrap();
    let since = Timestamp(
        u64::try_from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis(),
        )
        .unwrap(),
    );
    let charter = net
        .federation
        .successor(&net.federation.genesis, |charter| {
            charter.members[2].status = Status::Revoked { since };
            charter.members[2].cutoffs = vec![FeedCutoff {
                node: author,
                last_seq: head.seq,
                last_id: Some(head.id),
            }];
        });
    hub.client.update_charter(charter).await.unwrap();
    wait_for("the other member to apply the new charter", || async {
        other.client.charter().charter().version == 2
    })
    .await
    .unwrap();
    let revoked_id = revoked.client.peer_id();
    wait_for("every member to drop the revoked node", || async {
        !hub.client.peers().await.unwrap().contains(&revoked_id)
            && !other.client.peers().await.unwrap().contains(&revoked_id)
    })
    .await
    .unwrap();

    // An entry the revoked node signs afterwards, carried by a member that relays it.
    let later = SignedEntry::next(
        &revoked.key,
        net.federation.id(),
        Some(&head),
        Timestamp(since.0 + 1),
        Body::Bundle(Bundle {
            tlp: Tlp::Green,
            distribution: Distribution::Federation,
            items: indicators(900, 3),
        }),
    )
    .unwrap();
    for node in [hub, other] {
        let before = node.client.metrics().rejected(Rejection::NotAuthorised);
        let mut relay = RawPeer::new(&net.federation.nodes[3], net.federation.id()).unwrap();
        relay.connect(node).await.unwrap();
        relay.publish(later.payload().to_vec()).unwrap();
        wait_for("the relayed entry to be refused", || async {
            node.client.metrics().rejected(Rejection::NotAuthorised) > before
        })
        .await
        .unwrap();
        assert!(!node.has(&later.id()));
        // Entries within the cutoff stay.
        assert!(node.has_all(&published));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_at_the_gossip_limit_arrive_and_the_connection_keeps_working() {
    let net = TestNet::line(2).await.unwrap();
    // 130 indicators with 4,000-byte descriptions: more than one entry holds, so the
    // first entry is filled to just under the limit.
    let items: Vec<_> = indicators(0, 130)
        .into_iter()
        .map(|mut item| {
            if let threatmesh_protocol::Item::Indicator(indicator) = &mut item {
                indicator.context.description = Some("d".repeat(4_000));
            }
            item
        })
        .collect();
    let ids = net.nodes[0]
        .client
        .publish(Tlp::Green, Distribution::Federation, items)
        .await
        .unwrap();
    assert!(ids.len() >= 2);
    net.wait_everywhere(&ids).await.unwrap();
    let largest = ids
        .iter()
        .map(|id| {
            net.nodes[1]
                .store
                .entry(id)
                .unwrap()
                .unwrap()
                .payload()
                .len()
        })
        .max()
        .unwrap();
    assert!(
        largest > MAX_GOSSIP_BYTES - 8 * 1024 && largest <= MAX_GOSSIP_BYTES,
        "largest entry {largest} bytes"
    );
    // The connection still carries the next message.
    let more = net.nodes[0].publish(1_000, 5).await.unwrap();
    net.wait_everywhere(&more).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn honest_peer_holding_entries_past_a_cutoff_is_not_banned() {
    let mut config = test_config();
    config.rejects_before_ban = 2;
    let net = TestNet::start_with(3, config).await.unwrap();
    net.connect(1, 0).await.unwrap();
    // Member 1 publishes 12 entries; node 0 holds them all.
    let mut ids = Vec::new();
    for batch in 0..12 {
        ids.extend(net.nodes[1].publish(batch * 10, 10).await.unwrap());
    }
    wait_for("node 0 to hold member 1's feed", || async {
        net.nodes[0].has_all(&ids)
    })
    .await
    .unwrap();
    // The stewards revoke member 1 with its feed cut after the second entry.
    let second = net.nodes[0].store.entry(&ids[1]).unwrap().unwrap();
    let author = PublicKey::of(&net.nodes[1].key);
    let charter = net
        .federation
        .successor(&net.federation.genesis, |charter| {
            charter.members[1].status = Status::Revoked { since: now() };
            charter.members[1].cutoffs = vec![FeedCutoff {
                node: author,
                last_seq: 2,
                last_id: Some(second.id()),
            }];
        });
    net.nodes[0].client.update_charter(charter).await.unwrap();
    // Node 2 joins with the new charter and syncs from node 0, which still holds all 12.
    net.nodes[2]
        .client
        .update_charter(net.nodes[0].client.charter().as_ref().clone())
        .await
        .unwrap();
    net.connect(2, 0).await.unwrap();
    wait_for("node 2 to fetch what the cutoff keeps", || async {
        net.nodes[2].has_all(&ids[..2])
    })
    .await
    .unwrap();
    net.nodes[2].client.sync_now().await.unwrap();
    wait_for(
        "node 2 to stay connected through a second round",
        || async { net.nodes[2].client.metrics().fetched_entries >= 2 },
    )
    .await
    .unwrap();
    assert_eq!(net.nodes[2].client.metrics().peers_banned, 0);
    assert!(
        net.nodes[2]
            .client
            .peers()
            .await
            .unwrap()
            .contains(&net.nodes[0].client.peer_id())
    );
    assert!(!ids[2..].iter().any(|id| net.nodes[2].has(id)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_is_disconnected_when_its_certificate_runs_out() {
    let net = TestNet::line(2).await.unwrap();
    // A newer charter gives node 1 a certificate that ends two seconds from now.
    let node = PublicKey::of(&net.nodes[1].key);
    let ends = Timestamp(now().0 + 2_000);
    let org = &net.federation.orgs[1];
    let charter = net
        .federation
        .successor(&net.federation.genesis, |charter| {
            charter.members[1].nodes = vec![threatmesh_protocol::NodeCertificate::issue(
                org,
                node,
                threatmesh_tests::epoch(),
                ends,
            )];
        });
    net.nodes[0].client.update_charter(charter).await.unwrap();
    let gone = net.nodes[1].client.peer_id();
    assert!(net.nodes[0].client.peers().await.unwrap().contains(&gone));
    wait_for("the expired node to be dropped", || async {
        !net.nodes[0].client.peers().await.unwrap().contains(&gone)
    })
    .await
    .unwrap();
    assert!(now() >= ends);
}
