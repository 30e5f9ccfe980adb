//! A node flooded by a member keeps its memory bounded and still carries honest traffic.
//!
//! This test binary installs a counting global allocator (live bytes of every thread: the
//! nodes, the flooding peer, the test), so it holds a single test. The flood is several
//! times larger than the bound: rounds of 500 valid entries of about 40 KB each, from a
//! member sending far over its rate limits; the node must refuse what it cannot take
//! instead of queueing it, so memory must stop growing with the flood.

#![allow(clippy::unwrap_used)] // tests unwrap what they built themselves

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use threatmesh_protocol::entry::{Body, SignedEntry};
use threatmesh_protocol::{Bundle, Distribution, Item, Timestamp, Tlp};
use threatmesh_tests::{RawPeer, TestNet, indicators, test_config, wait_for};

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

#[allow(unsafe_code)]
// SAFETY: forwards every call to the system allocator unchanged; only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const ROUNDS: usize = 6;
const PER_ROUND: u64 = 500;
/// How much live memory may grow from the end of the first round to the end of the last,
/// while five more rounds (about 100 MB of entries) arrive. Measured: about 75 MB, most of
/// it in the first three rounds; what holds it (inside libp2p, it seems) is not yet known.
const BOUND_BYTES: usize = 96 * 1024 * 1024;
/// How much it may grow over the last two rounds (about 40 MB of entries): by then it
/// must have stopped growing with the flood.
const LAST_ROUNDS_BOUND_BYTES: usize = 16 * 1024 * 1024;

fn now() -> Timestamp {
    let elapsed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    Timestamp(u64::try_from(elapsed.as_millis()).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flooded_node_keeps_memory_bounded_and_honest_traffic_flowing() {
    let mut config = test_config();
    // What passes is stored and cached for good (twice: the victim forwards it to the
    // honest node), which is not what this test measures: let little through.
    config.peer_messages_per_sec = 2;
    config.peer_message_burst = 5;
    // Member 2 runs no node: the flooding peer holds its key.
    let net = TestNet::start_some(3, 2, config).await.unwrap();
    net.connect(1, 0).await.unwrap();
    net.wait_for_mesh().await.unwrap();
    let victim = &net.nodes[0];
    let key = net.federation.nodes[2].clone();
    let mut flooder = RawPeer::new(&key, net.federation.id()).unwrap();
    flooder.connect(victim).await.unwrap();

    // Ten indicators with 4,000-byte descriptions: about 40 KB an entry.
    let items: Vec<Item> = indicators(0, 10)
        .into_iter()
        .map(|mut item| {
            if let Item::Indicator(indicator) = &mut item {
                indicator.context.description = Some("d".repeat(4_000));
            }
            item
        })
        .collect();
    let mut head = None;
    let mut live_after_round = Vec::new();
    let mut honest = Vec::new();
    let mut flood_bytes = 0;
    for round in 0..ROUNDS {
        for _ in 0..PER_ROUND {
            let body = Body::Bundle(Bundle {
                tlp: Tlp::Green,
                distribution: Distribution::Federation,
                items: items.clone(),
            });
            let entry =
                SignedEntry::next(&key, net.federation.id(), head.as_ref(), now(), body).unwrap();
            head = Some(entry.head());
            flood_bytes += entry.payload().len();
            flooder.publish(entry.into_payload()).unwrap();
        }
        let first = u32::try_from(round).unwrap() * 10;
        honest.extend(net.nodes[1].publish(first, 10).await.unwrap());
        let expected = PER_ROUND * (round as u64 + 1);
        flooder
            .drive_while_waiting_for("the round to be taken or refused", || {
                let metrics = victim.client.metrics();
                let flood_seen = (metrics.throttled_messages
                    + metrics.accepted
                    + metrics.duplicates
                    + metrics.queue_full)
                    .saturating_sub(honest.len() as u64);
                flood_seen >= expected && victim.has_all(&honest)
            })
            .await
            .unwrap();
        live_after_round.push(LIVE.load(Ordering::Relaxed));
    }

    let metrics = victim.client.metrics();
    assert!(metrics.throttled_messages > 0, "{metrics:?}");
    let growth = live_after_round[ROUNDS - 1].saturating_sub(live_after_round[0]);
    eprintln!(
        "flood of {} MB: live memory after each round (MB) {:?}, growth {} MB",
        flood_bytes / 1_000_000,
        live_after_round
            .iter()
            .map(|bytes| bytes / 1_000_000)
            .collect::<Vec<_>>(),
        growth / 1_000_000
    );
    assert!(
        flood_bytes > BOUND_BYTES,
        "the flood must be larger than the bound"
    );
    let last_rounds = live_after_round[ROUNDS - 1].saturating_sub(live_after_round[ROUNDS - 3]);
    assert!(
        last_rounds < LAST_ROUNDS_BOUND_BYTES,
        "live memory still grew {last_rounds} bytes over the last two rounds: {live_after_round:?}"
    );
    assert!(
        growth < BOUND_BYTES,
        "live memory grew {growth} bytes over {} rounds: {live_after_round:?}",
        ROUNDS - 1
    );
    // Honest traffic got through every round; one more entry still does.
    let last = net.nodes[1].publish(1_000, 5).await.unwrap();
    wait_for("the last honest entry", || async { victim.has_all(&last) })
        .await
        .unwrap();
}
