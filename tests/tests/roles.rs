//! The charter's roles: a member whose organisation may not read (`roles.read` false) is
//! sent no entries, by gossip or by sync, while what it publishes still reaches the
//! federation.

#![allow(clippy::unwrap_used)] // tests unwrap what they built themselves

use std::time::Duration;

use libp2p::request_response::{Event, Message as Exchange};
use libp2p::swarm::SwarmEvent;
use threatmesh_protocol::reconcile::{HeadSet, KeyRange};
use threatmesh_protocol::wire::{self, MAX_MESSAGE_BYTES, Message, Request, Response};
use threatmesh_protocol::{Hash, PublicKey};
use threatmesh_tests::{
    Federation, RawPeer, RawSyncPeer, TestNet, TestNode, connect, init_logging, test_config,
    wait_for,
};

/// A federation of `members` whose charter in force (version 2) takes the read role from
/// the members `publish_only`, with nodes running for the first `running` members.
async fn with_publish_only(members: u8, running: u8, publish_only: &[usize]) -> TestNet {
    init_logging();
    let federation = Federation::new(members);
    let charter = federation.successor(&federation.genesis, |charter| {
        for index in publish_only {
            charter.members[*index].roles.read = false;
        }
    });
    let mut nodes = Vec::new();
    for (key, encryption) in federation
        .nodes
        .iter()
        .zip(&federation.encryption)
        .take(usize::from(running))
    {
        let config = threatmesh_node::network::Config {
            encryption_keys: vec![encryption.clone()],
            ..test_config()
        };
        let charters = vec![federation.genesis.clone(), charter.clone()];
        nodes.push(
            TestNode::start_with_charters(key.clone(), charters, config)
                .await
                .unwrap(),
        );
    }
    TestNet { federation, nodes }
}

/// Waits until nodes `a` and `b` have each other in their gossip mesh.
async fn wait_for_mesh_between(a: &TestNode, b: &TestNode) {
    let (a_id, b_id) = (a.client.peer_id(), b.client.peer_id());
    wait_for("the two readers' gossip mesh", || async {
        a.client
            .mesh_peers()
            .await
            .unwrap_or_default()
            .contains(&b_id)
            && b.client
                .mesh_peers()
                .await
                .unwrap_or_default()
                .contains(&a_id)
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_only_member_is_sent_no_entries_and_its_own_still_reach_the_federation() {
    let net = with_publish_only(3, 3, &[2]).await;
    let (first, second, publisher) = (&net.nodes[0], &net.nodes[1], &net.nodes[2]);
    connect(publisher, first).await.unwrap();
    connect(publisher, second).await.unwrap();
    connect(second, first).await.unwrap();
    wait_for_mesh_between(first, second).await;
    // The publish-only member is in nobody's mesh: nothing is forwarded to it.
    let publisher_id = publisher.client.peer_id();
    for reader in [first, second] {
        let mesh = reader.client.mesh_peers().await.unwrap();
        assert!(!mesh.contains(&publisher_id), "{mesh:?}");
    }

    // What it publishes reaches both readers.
    let own = publisher.publish(0, 10).await.unwrap();
    wait_for(
        "the publish-only member's entries at both readers",
        || async { first.has_all(&own) && second.has_all(&own) },
    )
    .await
    .unwrap();

    // A reader's entries reach the other reader, by gossip, and not the publish-only
    // member; nor does it get them by asking (its reconciliation with both readers is
    // answered without heads).
    let clear = first.publish(100, 10).await.unwrap();
    wait_for("the reader's entries at the other reader", || async {
        second.has_all(&clear)
    })
    .await
    .unwrap();
    publisher.client.sync_now().await.unwrap();
    wait_for(
        "the publish-only member to reconcile with both readers, or to hold the entries",
        || async {
            clear.iter().any(|id| publisher.has(id))
                || (first.client.metrics().sync_withheld >= 1
                    && second.client.metrics().sync_withheld >= 1)
        },
    )
    .await
    .unwrap();
    let held: Vec<&Hash> = clear.iter().filter(|id| publisher.has(id)).collect();
    assert!(held.is_empty(), "the publish-only member holds {held:?}");
    let stats = publisher.store.stats().unwrap();
    assert_eq!(stats.entries, own.len() as u64, "only its own entries");
    // It is not held against anyone.
    for node in &net.nodes {
        assert_eq!(node.client.metrics().peers_banned, 0);
    }
    assert_eq!(publisher.client.peers().await.unwrap().len(), 2);
}

/// The response to a raw sync request, decoded.
fn response(bytes: &[u8]) -> Response {
    match wire::decode(bytes, MAX_MESSAGE_BYTES).unwrap() {
        Message::Response(response) => response,
        other => panic!("not a response: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_only_member_asking_directly_gets_no_entries_nor_heads() {
    // Members 2 and 3 may publish and not read; they run no node: raw peers hold their
    // keys, one speaking gossipsub, one the sync protocol.
    let net = with_publish_only(4, 2, &[2, 3]).await;
    let (victim, reader) = (&net.nodes[0], &net.nodes[1]);
    connect(reader, victim).await.unwrap();
    wait_for_mesh_between(victim, reader).await;
    let before = victim.publish(0, 10).await.unwrap();
    wait_for("the entries at the reader", || async {
        reader.has_all(&before)
    })
    .await
    .unwrap();

    // Gossip: subscribed to the federation's topic, it is sent nothing the node publishes
    // or relays.
    let mut listener = RawPeer::new(&net.federation.nodes[2], net.federation.id()).unwrap();
    listener.connect(victim).await.unwrap();
    // Heartbeats first, so the victim has taken the listener's subscription and would have
    // grafted it into its mesh, were it a reader: what follows is then a real test.
    listener.drive_for(Duration::from_secs(2)).await;
    let after = reader.publish(100, 10).await.unwrap();
    listener
        .drive_while_waiting_for("the reader's entries at the victim", || {
            victim.has_all(&after)
        })
        .await
        .unwrap();
    // Some heartbeats more, for gossip (IHAVE) to go out.
    listener.drive_for(Duration::from_secs(1)).await;
    assert!(
        listener.received.is_empty(),
        "{} gossip messages reached a member that may not read",
        listener.received.len()
    );

    // Sync: every request that would reveal an entry or a feed head.
    let refusal = wire::encode(&Message::Response(Response::Refused("no".into())));
    let mut asker = RawSyncPeer::new(&net.federation.nodes[3], refusal).unwrap();
    asker.connect(victim).await.unwrap();
    let federation = net.federation.id();
    let requests = [
        Request::Heads { federation },
        Request::Range {
            federation,
            author: PublicKey::of(&victim.key),
            from_seq: 1,
            to_seq: u64::MAX,
            limit_bytes: 1 << 20,
        },
        Request::Reconcile {
            federation,
            ranges: vec![HeadSet::default().summary(KeyRange::ALL)],
        },
        Request::Charters {
            federation,
            after_version: 0,
        },
    ];
    let served_before = victim.client.metrics().served_entries;
    let mut answers = Vec::new();
    for request in requests {
        asker.request(victim, wire::encode(&Message::Request(request)));
        asker
            .drive_until("the victim's answer", |event| match event {
                SwarmEvent::Behaviour(Event::Message {
                    message:
                        Exchange::Response {
                            response: bytes, ..
                        },
                    ..
                }) => {
                    answers.push(response(bytes));
                    true
                }
                _ => false,
            })
            .await
            .unwrap();
    }
    let [heads, range, reconcile, charters] = answers.try_into().unwrap();
    assert!(matches!(heads, Response::Refused(_)), "{heads:?}");
    assert!(matches!(range, Response::Refused(_)), "{range:?}");
    let charter = victim.client.charter();
    assert_eq!(
        reconcile,
        Response::Reconcile {
            charter_version: 2,
            charter_id: charter.id(),
            parts: Vec::new(),
        },
        "the charter only, no heads"
    );
    // Charters are for every member: a publish-only node must learn of newer ones.
    assert!(
        matches!(&charters, Response::Charters(list) if list.len() == 2),
        "{charters:?}"
    );
    let metrics = victim.client.metrics();
    assert_eq!(metrics.sync_withheld, 3, "{metrics:?}");
    assert_eq!(metrics.served_entries, served_before, "{metrics:?}");
    assert_eq!(metrics.peers_banned, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_whose_read_role_is_withdrawn_is_sent_nothing_more_until_it_is_given_back() {
    let net = TestNet::start(3).await.unwrap();
    let (first, second, member) = (&net.nodes[0], &net.nodes[1], &net.nodes[2]);
    net.connect(1, 0).await.unwrap();
    net.connect(2, 0).await.unwrap();
    net.connect(2, 1).await.unwrap();
    net.wait_for_mesh().await.unwrap();
    let early = first.publish(0, 10).await.unwrap();
    net.wait_everywhere(&early).await.unwrap();

    // A newer charter takes the read role away while the member is connected to both.
    let withdrawn = net
        .federation
        .successor(&net.federation.genesis, |charter| {
            charter.members[2].roles.read = false;
        });
    first
        .client
        .update_charter(withdrawn.clone())
        .await
        .unwrap();
    wait_for("the other reader to apply the charter", || async {
        second.client.charter().charter().version == 2
    })
    .await
    .unwrap();
    // It may connect again (it still publishes), and does.
    wait_for("the member to be connected to both again", || async {
        member.client.peers().await.unwrap_or_default().len() == 2
    })
    .await
    .unwrap();
    let late = first.publish(100, 10).await.unwrap();
    wait_for("the entries at the other reader", || async {
        second.has_all(&late)
    })
    .await
    .unwrap();
    let withheld = |node: &TestNode| node.client.metrics().sync_withheld;
    let before = (withheld(first), withheld(second));
    member.client.sync_now().await.unwrap();
    wait_for(
        "the member to reconcile with both readers, or to hold the entries",
        || async {
            late.iter().any(|id| member.has(id))
                || (withheld(first) > before.0 && withheld(second) > before.1)
        },
    )
    .await
    .unwrap();
    assert!(
        late.iter().all(|id| !member.has(id)),
        "a member that may no longer read got entries published after"
    );
    // What it publishes still arrives.
    let own = member.publish(200, 10).await.unwrap();
    wait_for("the member's entries at both readers", || async {
        first.has_all(&own) && second.has_all(&own)
    })
    .await
    .unwrap();

    // The role given back: it catches up by sync.
    let restored = net.federation.successor(&withdrawn, |charter| {
        charter.members[2].roles.read = true;
    });
    first.client.update_charter(restored).await.unwrap();
    wait_for("the other reader to apply the charter", || async {
        second.client.charter().charter().version == 3
    })
    .await
    .unwrap();
    member.client.sync_now().await.unwrap();
    wait_for("the member to catch up", || async { member.has_all(&late) })
        .await
        .unwrap();
}
