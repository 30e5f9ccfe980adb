//! The mesh end to end: real nodes on loopback, in this process.

#![allow(clippy::unwrap_used)] // tests unwrap what they built themselves

use threatmesh_node::network;
use threatmesh_tests::{Federation, TestNet, TestNode, test_config, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entry_reaches_the_other_of_two_nodes() {
    let net = TestNet::line(2).await.unwrap();
    let ids = net.nodes[0].publish(0, 100).await.unwrap();
    net.wait_everywhere(&ids).await.unwrap();
    let found = net.nodes[1]
        .store
        .lookup(
            &threatmesh_protocol::Value::parse(threatmesh_protocol::Kind::Ipv4, "10.0.0.7")
                .unwrap(),
            threatmesh_tests::epoch(),
        )
        .unwrap();
    assert_eq!(found.assertions.len(), 1);
    // The receiving node timed the entry's ingest.
    let metrics = net.nodes[1].client.metrics();
    assert_eq!(metrics.ingest_buckets.iter().sum::<u64>(), metrics.accepted);
    assert_eq!(
        found.assertions[0].org,
        threatmesh_protocol::PublicKey::of(&net.federation.orgs[0])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn indicator_reaches_every_node_in_a_line() {
    let net = TestNet::line(5).await.unwrap();
    let ids = net.nodes[0].publish(0, 1_000).await.unwrap();
    net.wait_everywhere(&ids).await.unwrap();
    // And from the other end.
    let ids = net.nodes[4].publish(5_000, 10).await.unwrap();
    net.wait_everywhere(&ids).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn indicator_reaches_every_node_in_a_star() {
    let net = TestNet::star(5).await.unwrap();
    // From a leaf: through the hub to the other leaves.
    let ids = net.nodes[3].publish(0, 500).await.unwrap();
    net.wait_everywhere(&ids).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_node_catches_up_without_fetching_anything_twice() {
    let net = TestNet::start(3).await.unwrap();
    net.connect(0, 1).await.unwrap();
    let mut ids = Vec::new();
    for batch in 0..10 {
        ids.extend(net.nodes[0].publish(batch * 1_000, 1_000).await.unwrap());
    }
    assert_eq!(ids.len(), 10, "1,000 ipv4 indicators fit one entry");
    wait_for("node 1 to hold everything", || async {
        net.nodes[1].has_all(&ids)
    })
    .await
    .unwrap();

    // Node 2 was offline all along; it joins through node 1.
    net.connect(2, 1).await.unwrap();
    let late = &net.nodes[2];
    wait_for("the late node to catch up", || async { late.has_all(&ids) })
        .await
        .unwrap();
    let metrics = late.client.metrics();
    assert_eq!(
        metrics.fetched_entries, 10,
        "every entry fetched exactly once"
    );
    let bytes: usize = ids
        .iter()
        .map(|id| late.store.entry(id).unwrap().unwrap().payload().len())
        .sum();
    assert_eq!(metrics.fetched_bytes, bytes as u64);
    assert_eq!(metrics.duplicates, 0);
    assert_eq!(metrics.rejected_total(), 0);
    let stats = late.store.stats().unwrap();
    assert_eq!(stats.records, 10_000);
    // It knows how far the feed goes, and that it is no longer behind.
    let author = threatmesh_protocol::PublicKey::of(&net.nodes[0].key);
    assert_eq!(metrics.advertised.get(&author), Some(&10));
    let feed = late.store.feed(&author).unwrap().unwrap();
    assert_eq!(feed.contiguous, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_outside_the_charter_cannot_connect_and_receives_nothing() {
    let net = TestNet::line(2).await.unwrap();
    let outsider_key = threatmesh_protocol::testing::key(0x11);
    let mut outsider = threatmesh_tests::RawPeer::new(&outsider_key, net.federation.id()).unwrap();
    // The member refuses it as soon as the handshake names it: no subscription, no data.
    assert!(!outsider.try_connect(&net.nodes[0]).await.unwrap());
    assert!(!outsider.is_connected(&net.nodes[0].client.peer_id()));
    let ids = net.nodes[0].publish(0, 10).await.unwrap();
    net.wait_everywhere(&ids).await.unwrap();
    let peers = net.nodes[0].client.peers().await.unwrap();
    assert_eq!(peers, vec![net.nodes[1].client.peer_id()]);
    // The refusal is counted, for operators to see.
    wait_for("the member to count the refusal", || async {
        net.nodes[0].client.metrics().refused_not_in_charter >= 1
    })
    .await
    .unwrap();
    // A node outside the charter, running the real code, gets nothing either.
    let node = TestNode::start(outsider_key, net.federation.genesis.clone(), test_config())
        .await
        .unwrap();
    node.client
        .dial(net.nodes[0].address.clone())
        .await
        .unwrap();
    node.client.sync_now().await.unwrap();
    assert_eq!(node.store.stats().unwrap().entries, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_converge_after_healing() {
    // Nodes beyond the healed link learn the other side's entries by anti-entropy.
    let mut config = test_config();
    config.sync_interval = std::time::Duration::from_secs(1);
    let net = TestNet::start_with(4, config).await.unwrap();
    net.connect(0, 1).await.unwrap();
    net.connect(2, 3).await.unwrap();
    let left = net.nodes[0].publish(0, 300).await.unwrap();
    let right = net.nodes[3].publish(10_000, 300).await.unwrap();
    wait_for("each side to share its own entries", || async {
        net.nodes[1].has_all(&left) && net.nodes[2].has_all(&right)
    })
    .await
    .unwrap();
    assert!(!net.nodes[2].has_all(&left) && !net.nodes[1].has_all(&right));

    net.connect(1, 2).await.unwrap();
    let all: Vec<_> = left.iter().chain(&right).copied().collect();
    net.wait_everywhere(&all).await.unwrap();
    let stores: Vec<u64> = net
        .nodes
        .iter()
        .map(|node| node.store.stats().unwrap().entries)
        .collect();
    assert!(stores.iter().all(|entries| *entries == stores[0]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_dials_its_bootstrap_peer_and_catches_up() {
    let federation = Federation::new(2);
    let first = TestNode::start(
        federation.nodes[0].clone(),
        federation.genesis.clone(),
        test_config(),
    )
    .await
    .unwrap();
    let ids = first.publish(0, 2_500).await.unwrap();
    let mut config = test_config();
    config.bootstrap = vec![first.address.clone()];
    let joiner = TestNode::start(
        federation.nodes[1].clone(),
        federation.genesis.clone(),
        config,
    )
    .await
    .unwrap();
    wait_for("the joiner to catch up", || async { joiner.has_all(&ids) })
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_several_charters_behind_catches_up_in_one_round() {
    let net = TestNet::start(3).await.unwrap();
    net.connect(1, 0).await.unwrap();
    // Two new versions while node 2 is away: each renames the federation.
    let mut charter = net.federation.genesis.clone();
    for version in 2..=3 {
        charter = net
            .federation
            .successor(&charter, |c| c.name = format!("Version {version}"));
        net.nodes[0]
            .client
            .update_charter(charter.clone())
            .await
            .unwrap();
    }
    wait_for("node 1 to reach version 3", || async {
        net.nodes[1].client.charter().charter().version == 3
    })
    .await
    .unwrap();
    // Node 2 connects; its next heads round is a minute away, so only the sync on
    // connect can bring it both versions.
    net.connect(2, 0).await.unwrap();
    wait_for("node 2 to reach version 3", || async {
        net.nodes[2].client.charter().charter().version == 3
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rival_charters_of_one_version_resolve_to_the_same_one_everywhere() {
    // The steward signs two different version-2 charters. Each node starts with one in
    // force, so neither was ever gossiped: only charter sync can bring them together.
    let federation = Federation::new(2);
    let genesis = &federation.genesis;
    let a = federation.successor(genesis, |c| c.name = "Rival A".into());
    let b = federation.successor(genesis, |c| c.name = "Rival B".into());
    let winner = if a.supersedes(&b) { a.id() } else { b.id() };
    let mut nodes = Vec::new();
    for (key, rival) in federation.nodes.iter().zip([&a, &b]) {
        let charters = vec![genesis.clone(), rival.clone()];
        nodes.push(
            TestNode::start_with_charters(key.clone(), charters, test_config())
                .await
                .unwrap(),
        );
    }
    assert_ne!(
        nodes[0].client.charter().id(),
        nodes[1].client.charter().id()
    );
    threatmesh_tests::connect(&nodes[0], &nodes[1])
        .await
        .unwrap();
    wait_for("both nodes to settle on the same charter", || async {
        nodes
            .iter()
            .all(|node| node.client.charter().id() == winner)
    })
    .await
    .unwrap();
    // It is also the one each node keeps for its next start.
    for node in &nodes {
        assert_eq!(node.store.latest_charter().unwrap().unwrap().id(), winner);
    }
}

/// A steward signs a rival of version 2 with a smaller id than the honest one, so it wins
/// the tie, and a node meets it only after the honest version 2. The honest version 3 then
/// reaches that node by gossip from a relay that never took the rival. Every node must end
/// on version 3, and no node may hold the honest relay's charter against it: one refusal
/// bans here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_rival_charter_neither_forks_the_federation_nor_bans_the_honest_relay() {
    let federation = Federation::new(3);
    let genesis = &federation.genesis;
    let honest = federation.successor(genesis, |c| c.name = "Honest".into());
    let rival = (0..)
        .map(|n| federation.successor(genesis, |c| c.name = format!("Rival {n}")))
        .find(|rival| rival.id() < honest.id())
        .unwrap();
    let next = federation.successor(&honest, |c| c.name = "Honest, version 3".into());
    let config = network::Config {
        rejects_before_ban: 1,
        ..test_config()
    };
    let start = |index: usize, charters: Vec<threatmesh_protocol::SignedCharter>| {
        TestNode::start_with_charters(federation.nodes[index].clone(), charters, config.clone())
    };
    let victim = start(0, vec![genesis.clone(), honest.clone()])
        .await
        .unwrap();
    let relay = start(1, vec![genesis.clone(), honest.clone()])
        .await
        .unwrap();
    let rival_holder = start(2, vec![genesis.clone(), rival.clone()])
        .await
        .unwrap();
    let nodes = [&victim, &relay, &rival_holder];

    threatmesh_tests::connect(&victim, &relay).await.unwrap();
    // The rival arrives late, by sync from the node that holds it.
    threatmesh_tests::connect(&rival_holder, &victim)
        .await
        .unwrap();
    wait_for(
        "the victim to take the rival, which wins the tie",
        || async { victim.client.charter().id() == rival.id() },
    )
    .await
    .unwrap();
    wait_for("the victim's gossip mesh", || async {
        let mesh = victim.client.mesh_peers().await.unwrap_or_default();
        mesh.contains(&relay.client.peer_id()) && mesh.contains(&rival_holder.client.peer_id())
    })
    .await
    .unwrap();

    relay.client.update_charter(next.clone()).await.unwrap();
    wait_for("every node to end on the honest version 3", || async {
        nodes
            .iter()
            .all(|node| node.client.charter().id() == next.id())
    })
    .await
    .unwrap();
    for (index, node) in nodes.iter().enumerate() {
        assert_eq!(
            node.client.blocked_peers().await.unwrap(),
            vec![],
            "node {index} blocked a peer"
        );
        let metrics = node.client.metrics();
        assert_eq!(metrics.peers_banned, 0, "node {index} banned a peer");
        assert_eq!(
            metrics.rejected(network::Rejection::BadCharter),
            0,
            "node {index} refused a valid charter"
        );
        // The one it keeps for its next start, too.
        assert_eq!(
            node.store.latest_charter().unwrap().unwrap().id(),
            next.id()
        );
    }
    assert!(
        victim
            .client
            .peers()
            .await
            .unwrap()
            .contains(&relay.client.peer_id())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocked_peers_exchange_nothing_and_sync_once_unblocked() {
    let net = TestNet::line(2).await.unwrap();
    let (a, b) = (&net.nodes[0], &net.nodes[1]);
    let b_id = b.client.peer_id();
    a.client.block_peer(b_id, None).await.unwrap();
    wait_for("the block to close the connection", || async {
        a.client.peers().await.unwrap().is_empty() && b.client.peers().await.unwrap().is_empty()
    })
    .await
    .unwrap();
    let blocked = a.client.blocked_peers().await.unwrap();
    assert_eq!(blocked.len(), 1);
    assert_eq!(blocked[0].peer, b_id);
    assert_eq!(blocked[0].reason, network::BlockReason::Operator);
    assert_eq!(blocked[0].remaining, None);

    let ids = b.publish(0, 200).await.unwrap();
    // b tries to reach a (and would sync on connecting): refused at the handshake.
    b.client.dial(a.address.clone()).await.unwrap();
    wait_for("a to refuse b", || async {
        a.client.metrics().refused_blocked >= 1
    })
    .await
    .unwrap();
    b.client.sync_now().await.unwrap();
    assert!(a.client.peers().await.unwrap().is_empty());
    assert!(ids.iter().all(|id| !a.has(id)));
    assert_eq!(a.client.metrics().accepted, 0);

    assert!(a.client.unblock_peer(b_id).await.unwrap());
    assert!(!a.client.unblock_peer(b_id).await.unwrap());
    assert!(a.client.blocked_peers().await.unwrap().is_empty());
    wait_for("a to catch up once b is unblocked", || async {
        a.has_all(&ids)
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_for_a_time_ends_by_itself() {
    let net = TestNet::line(2).await.unwrap();
    let (a, b) = (&net.nodes[0], &net.nodes[1]);
    a.client
        .block_peer(b.client.peer_id(), Some(std::time::Duration::from_secs(1)))
        .await
        .unwrap();
    wait_for("the block to close the connection", || async {
        a.client.peers().await.unwrap().is_empty()
    })
    .await
    .unwrap();
    let ids = b.publish(0, 50).await.unwrap();
    // When the block ends, a redials b and fetches what it missed.
    wait_for("a to catch up after the block ends", || async {
        a.has_all(&ids)
    })
    .await
    .unwrap();
    assert!(a.client.blocked_peers().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_federation_holds_a_bounded_peer_set_and_every_entry_reaches_everyone() {
    // 24 members, each keeping 8 links: every node learns every earlier node's address at
    // start (as a charter would list them), yet none holds more than its target once
    // surplus links are pruned, and gossip still reaches every member.
    const MEMBERS: u8 = 24;
    let federation = Federation::new(MEMBERS);
    let mut config = test_config();
    config.target_peers = 8;
    config.peer_hold = std::time::Duration::from_millis(500);
    // No rotation during the test: a rotated link is a ninth until it is pruned.
    config.peer_rotation = std::time::Duration::from_secs(3600);
    let low = 6;
    let mut nodes: Vec<TestNode> = Vec::new();
    for (index, key) in federation.nodes.iter().enumerate() {
        let mut config = config.clone();
        config.bootstrap = nodes.iter().map(|node| node.address.clone()).collect();
        config.encryption_keys = vec![federation.encryption[index].clone()];
        let node = TestNode::start(key.clone(), federation.genesis.clone(), config)
            .await
            .unwrap();
        nodes.push(node);
    }
    wait_for(
        "every node to hold between low and target links",
        || async {
            for node in &nodes {
                let peers = node.client.peers().await.unwrap_or_default().len();
                if !(low..=8).contains(&peers) {
                    return false;
                }
            }
            true
        },
    )
    .await
    .unwrap();
    // The first node had no address to dial: everything it holds came to it.
    let ids = nodes[0].publish(0, 100).await.unwrap();
    let last = nodes.len() - 1;
    let more = nodes[last].publish(1_000, 100).await.unwrap();
    for (index, node) in nodes.iter().enumerate() {
        wait_for(&format!("node {index} to hold both entries"), || async {
            node.has_all(&ids) && node.has_all(&more)
        })
        .await
        .unwrap();
    }
    // A link just made is not pruned until it has settled (`peer_book`), so a node that
    // was dialled a moment ago may hold one over the target for a few seconds: the bound
    // is what the node comes back to, and it must.
    for (index, node) in nodes.iter().enumerate() {
        wait_for(&format!("node {index} to hold at most 8 links"), || async {
            node.client
                .peers()
                .await
                .is_ok_and(|peers| peers.len() <= 8)
        })
        .await
        .unwrap();
    }
    let pruned: u64 = nodes
        .iter()
        .map(|node| node.client.metrics().peers_pruned)
        .sum();
    assert!(
        pruned > 0,
        "later nodes dial earlier ones past their target"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_step_peers_reconcile_with_one_request_and_fetch_nothing() {
    let mut config = test_config();
    config.sync_interval = std::time::Duration::from_millis(200);
    let net = TestNet::start_with(3, config).await.unwrap();
    net.connect(0, 1).await.unwrap();
    net.connect(1, 2).await.unwrap();
    net.wait_for_mesh().await.unwrap();
    let ids = net.nodes[0].publish(0, 100).await.unwrap();
    net.wait_everywhere(&ids).await.unwrap();
    // A round that started while the entry was still on its way may fetch it: let those
    // finish before counting.
    let settled: Vec<u64> = net
        .nodes
        .iter()
        .map(|n| n.client.metrics().reconcile_requests + 3)
        .collect();
    wait_for("rounds begun after the entry arrived", || async {
        net.nodes
            .iter()
            .zip(&settled)
            .all(|(node, settled)| node.client.metrics().reconcile_requests >= *settled)
    })
    .await
    .unwrap();
    let before: Vec<_> = net.nodes.iter().map(|n| n.client.metrics()).collect();
    // Several rounds pass: each is one reconcile request per peer asked, and nothing is
    // fetched or struck, since the three hold the same.
    wait_for("a few anti-entropy rounds", || async {
        net.nodes.iter().zip(&before).all(|(node, before)| {
            node.client.metrics().reconcile_requests >= before.reconcile_requests + 5
        })
    })
    .await
    .unwrap();
    for (node, before) in net.nodes.iter().zip(&before) {
        let after = node.client.metrics();
        assert_eq!(after.fetched_entries, before.fetched_entries);
        assert_eq!(after.sync_failures, 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_missed_entries_finds_them_by_reconciliation_alone() {
    // Node 2 joins after node 0 published, through node 1, and nothing is gossiped again:
    // reconciliation with its peer is how it learns what it lacks.
    let mut config = test_config();
    config.sync_interval = std::time::Duration::from_millis(300);
    let net = TestNet::start_with(3, config).await.unwrap();
    net.connect(0, 1).await.unwrap();
    let mut ids = Vec::new();
    for batch in 0..5 {
        ids.extend(net.nodes[0].publish(batch * 100, 100).await.unwrap());
    }
    wait_for("node 1 to hold everything", || async {
        net.nodes[1].has_all(&ids)
    })
    .await
    .unwrap();
    net.connect(2, 1).await.unwrap();
    wait_for("node 2 to catch up", || async {
        net.nodes[2].has_all(&ids)
    })
    .await
    .unwrap();
    let metrics = net.nodes[2].client.metrics();
    assert_eq!(metrics.fetched_entries, ids.len() as u64);
    assert!(metrics.reconcile_requests >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_publishes_make_one_unbroken_feed_that_reaches_the_peer() {
    let net = TestNet::line(2).await.unwrap();
    let publisher = &net.nodes[0];
    // 16 callers at once, 4 calls each: they share flushes, and their entries must still
    // follow each other in one feed.
    let calls = (0..16u32).map(|caller| async move {
        let mut ids = Vec::new();
        for call in 0..4 {
            let first = (caller * 4 + call) * 10;
            ids.extend(publisher.publish(first, 10).await?);
        }
        anyhow::Ok(ids)
    });
    let ids: Vec<_> = tokio::time::timeout(
        threatmesh_tests::TIMEOUT,
        futures::future::try_join_all(calls),
    )
    .await
    .unwrap()
    .unwrap()
    .into_iter()
    .flatten()
    .collect();
    assert_eq!(ids.len(), 64);
    net.wait_everywhere(&ids).await.unwrap();

    let author = threatmesh_protocol::PublicKey::of(&publisher.key);
    for (index, node) in net.nodes.iter().enumerate() {
        let feed = node.store.feed(&author).unwrap().unwrap();
        assert_eq!(
            (feed.contiguous, feed.highest, feed.equivocated),
            (64, 64, false),
            "node {index}: one feed from 1 to 64, no gap, no fork"
        );
        let range = node.store.range(&author, 1, 64, usize::MAX).unwrap();
        let mut previous = None;
        for (seq, payload) in (1..).zip(range.payloads) {
            let entry = threatmesh_protocol::entry::SignedEntry::open(payload).unwrap();
            assert_eq!(entry.entry().seq, seq);
            assert_eq!(entry.entry().prev, previous, "node {index}: seq {seq}");
            previous = Some(entry.id());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_on_the_wire_are_counted_at_both_ends() {
    let net = TestNet::line(2).await.unwrap();
    let ids = net.nodes[0].publish(0, 100).await.unwrap();
    net.wait_everywhere(&ids).await.unwrap();
    let (a, b) = (&net.nodes[0].client, &net.nodes[1].client);
    // One connection between them: once nothing is in flight, what one end sent is what
    // the other received, for the connection as for the sync frames on it.
    wait_for("both ends to agree on the bytes", || async {
        let (a, b) = (a.metrics(), b.metrics());
        a.transport_bytes_sent == b.transport_bytes_received
            && b.transport_bytes_sent == a.transport_bytes_received
            && a.sync_bytes_sent == b.sync_bytes_received
            && b.sync_bytes_sent == a.sync_bytes_received
            && a.identify_received == b.identify_sent
            && b.identify_received == a.identify_sent
    })
    .await
    .unwrap();
    let metrics = a.metrics();
    let payload = net.nodes[0]
        .store
        .entry(&ids[0])
        .unwrap()
        .unwrap()
        .payload()
        .len() as u64;
    // The entry went out by gossip, inside Noise and yamux frames.
    assert!(metrics.transport_bytes_sent > payload, "{metrics:?}");
    // Each reconciled its feed heads with the other on connecting.
    assert!(metrics.sync_bytes_sent > 0, "{metrics:?}");
    assert!(metrics.sync_bytes_received > 0, "{metrics:?}");
    assert!(
        metrics.transport_bytes_received > metrics.sync_bytes_received,
        "{metrics:?}"
    );
    assert!(metrics.identify_received >= 1, "{metrics:?}");
    // A public key, an address, a dozen protocol names: a few hundred bytes.
    assert!(
        metrics.identify_received_bytes > 100 * metrics.identify_received,
        "{metrics:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recent_entries_fetched_across_a_healed_link_are_gossiped_on_to_the_far_side() {
    // Anti-entropy rounds are a minute apart here (test_config): only the reconciliation of
    // the healed link, and gossip after it, can carry the entries in time.
    let net = TestNet::start(4).await.unwrap();
    net.connect(0, 1).await.unwrap();
    net.connect(2, 3).await.unwrap();
    let left = net.nodes[0].publish(0, 200).await.unwrap();
    let right = net.nodes[3].publish(10_000, 200).await.unwrap();
    wait_for("each side to share its own entries", || async {
        net.nodes[1].has_all(&left) && net.nodes[2].has_all(&right)
    })
    .await
    .unwrap();
    net.wait_for_mesh().await.unwrap();

    net.connect(1, 2).await.unwrap();
    let all: Vec<_> = left.iter().chain(&right).copied().collect();
    net.wait_everywhere(&all).await.unwrap();
    let regossiped =
        net.nodes[1].client.metrics().regossiped + net.nodes[2].client.metrics().regossiped;
    assert!(regossiped >= 2, "{regossiped} entries gossiped again");
    // The far ends got them by gossip, not by a sync of their own.
    assert_eq!(net.nodes[0].client.metrics().fetched_entries, 0);
    assert_eq!(net.nodes[3].client.metrics().fetched_entries, 0);
}
