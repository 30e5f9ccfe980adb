//! A node whose own clock is hours wrong: it blames nobody, says so, and loses nothing
//! once the clock is fixed.

#![allow(clippy::unwrap_used)] // tests unwrap what they built themselves

use std::time::Duration;

use threatmesh_node::network::{self, Clock, Rejection};
use threatmesh_protocol::Hash;
use threatmesh_tests::{
    Federation, TestNet, TestNode, http_get, init_logging, test_config, wait_for,
};

const HOURS_3: i64 = 3 * 3_600_000;

/// Three members' nodes, all connected, each with its own clock (`offsets`, in ms) and a
/// sync round every second, so catching up needs nobody to ask for it.
async fn three_nodes(offsets: [i64; 3]) -> (TestNet, Vec<Clock>) {
    init_logging();
    let federation = Federation::new(3);
    let clocks: Vec<Clock> = offsets
        .iter()
        .map(|offset| Clock::skewed(*offset))
        .collect();
    let mut nodes = Vec::new();
    for (index, clock) in clocks.iter().enumerate() {
        let config = network::Config {
            clock: clock.clone(),
            sync_interval: Duration::from_secs(1),
            ..test_config()
        };
        let key = federation.nodes[index].clone();
        nodes.push(
            TestNode::start(key, federation.genesis.clone(), config)
                .await
                .unwrap(),
        );
    }
    let net = TestNet { federation, nodes };
    net.connect(0, 1).await.unwrap();
    net.connect(2, 0).await.unwrap();
    net.connect(2, 1).await.unwrap();
    net.wait_for_mesh().await.unwrap();
    (net, clocks)
}

/// Whether `node` holds none of `ids`.
fn holds_none(node: &TestNode, ids: &[Hash]) -> bool {
    ids.iter().all(|id| !node.has(id))
}

/// Every node still connected to every other, and nobody banned or blocked.
async fn nobody_blamed(net: &TestNet) {
    for node in &net.nodes {
        let metrics = node.client.metrics();
        assert_eq!(metrics.peers_banned, 0, "{metrics:?}");
        assert!(node.client.blocked_peers().await.unwrap().is_empty());
        assert_eq!(node.client.peers().await.unwrap().len(), 2);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_clock_is_hours_behind_blames_nobody_reports_it_and_catches_up_once_fixed() {
    let (net, clocks) = three_nodes([0, 0, -HOURS_3]).await;
    let (a, b, late) = (&net.nodes[0], &net.nodes[1], &net.nodes[2]);
    let api = late.api();
    let mut ids = Vec::new();
    for batch in 0..3 {
        ids.extend(a.publish(batch * 10, 10).await.unwrap());
        ids.extend(b.publish(1_000 + batch * 10, 10).await.unwrap());
    }
    wait_for("the honest nodes to hold each other's entries", || async {
        a.has_all(&ids) && b.has_all(&ids)
    })
    .await
    .unwrap();

    // The late node refuses them all as from the future, and works out why.
    wait_for("the late node to suspect its clock", || async {
        late.client.metrics().clock.witnesses.len() == 2
    })
    .await
    .unwrap();
    let metrics = late.client.metrics();
    let offset = metrics.clock.suspected_offset_secs.unwrap();
    assert!(
        (-3 * 3600 - 600..=-3 * 3600 + 600).contains(&offset),
        "{offset}"
    );
    assert_eq!(metrics.clock.witnesses, {
        let mut orgs = vec![net.federation.org(0), net.federation.org(1)];
        orgs.sort();
        orgs
    });
    assert!(
        metrics.rejected(Rejection::FromTheFuture) >= 2,
        "{metrics:?}"
    );
    assert_eq!(
        metrics.rejected_total(),
        metrics.rejected(Rejection::FromTheFuture)
    );
    assert!(holds_none(late, &ids));
    // The honest nodes see nothing wrong with their clocks.
    assert_eq!(a.client.metrics().clock.suspected_offset_secs, None);
    assert_eq!(b.client.metrics().clock.suspected_offset_secs, None);

    // The status and the metrics say so.
    let (code, body) = http_get(api, "/api/v1/status").await.unwrap();
    assert_eq!(code, 200, "{body}");
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        status["network"]["clock"]["suspected_offset_secs"],
        serde_json::json!(offset),
        "{body}"
    );
    assert_eq!(
        status["network"]["clock"]["witnesses"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    let (code, text) = http_get(api, "/metrics").await.unwrap();
    assert_eq!(code, 200);
    let gauge = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(&format!("{name} ")))
            .and_then(|value| value.parse::<i64>().ok())
    };
    let shown = gauge("threatmesh_clock_suspected_offset_seconds").unwrap();
    assert!(shown <= -3 * 3600 + 600, "{text}");
    assert_eq!(gauge("threatmesh_clock_skew_witnesses"), Some(2));

    // Several sync rounds of refusals later, still nobody is blamed.
    let rejected = late.client.metrics().rejected(Rejection::FromTheFuture);
    wait_for("more sync rounds", || async {
        late.client.metrics().rejected(Rejection::FromTheFuture) >= rejected + 6
    })
    .await
    .unwrap();
    nobody_blamed(&net).await;
    assert!(holds_none(late, &ids));

    // The operator fixes the clock: sync brings every entry, nobody publishes again.
    clocks[2].set_offset_ms(0);
    wait_for("the late node to catch up", || async { late.has_all(&ids) })
        .await
        .unwrap();
    let metrics = late.client.metrics();
    assert_eq!(metrics.clock.suspected_offset_secs, None, "{metrics:?}");
    assert!(metrics.clock.witnesses.is_empty());
    let (_, text) = http_get(api, "/metrics").await.unwrap();
    assert!(
        text.lines()
            .any(|line| line == "threatmesh_clock_suspected_offset_seconds 0"),
        "{text}"
    );
    nobody_blamed(&net).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_clock_is_hours_ahead_is_refused_not_blamed_and_can_tell_from_fresh_gossip() {
    let (net, clocks) = three_nodes([0, 0, HOURS_3]).await;
    let (a, b, early) = (&net.nodes[0], &net.nodes[1], &net.nodes[2]);

    // What the early node publishes is dated three hours ahead: refused everywhere.
    let early_ids = early.publish(0, 10).await.unwrap();
    wait_for("both others to refuse the early entry", || async {
        a.client.metrics().rejected(Rejection::FromTheFuture) >= 1
            && b.client.metrics().rejected(Rejection::FromTheFuture) >= 1
    })
    .await
    .unwrap();
    assert!(holds_none(a, &early_ids) && holds_none(b, &early_ids));
    // One organisation ahead of the others is its clock, not theirs.
    assert_eq!(a.client.metrics().clock.suspected_offset_secs, None);
    assert_eq!(b.client.metrics().clock.suspected_offset_secs, None);

    // Fresh entries of the others look three hours old to it: that it can see.
    let mut ids = a.publish(100, 10).await.unwrap();
    ids.extend(b.publish(200, 10).await.unwrap());
    wait_for("the early node to hold them", || async {
        early.has_all(&ids)
    })
    .await
    .unwrap();
    wait_for("the early node to suspect its clock", || async {
        early.client.metrics().clock.witnesses.len() == 2
    })
    .await
    .unwrap();
    let offset = early.client.metrics().clock.suspected_offset_secs.unwrap();
    assert!(
        (3 * 3600 - 600..=3 * 3600 + 600).contains(&offset),
        "{offset}"
    );
    nobody_blamed(&net).await;

    // Fixed: the suspicion goes at once, judged by the clock as it is now.
    clocks[2].set_offset_ms(0);
    assert_eq!(early.client.metrics().clock.suspected_offset_secs, None);

    // What it published while ahead stays refused until the others' clocks pass its
    // dates. Three hours later (every clock moved on), sync fetches it: nothing is lost.
    assert!(holds_none(a, &early_ids));
    for clock in &clocks {
        clock.set_offset_ms(HOURS_3);
    }
    net.wait_everywhere(&early_ids).await.unwrap();
    nobody_blamed(&net).await;
}
