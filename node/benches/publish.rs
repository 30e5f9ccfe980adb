//! Publishing benchmark: entries published through a one-node `network::Client`, by 1 and
//! by 16 concurrent publishers, each call returning once its entry is on disk.
//! `cargo bench -p threatmesh-node --bench publish` (set `PUBLISH_BENCH_ENTRIES` for a
//! shorter or longer run; default 200 entries of 1,000 indicators per round, and five
//! times as many of 10).
//!
//! Entries of 1,000 ipv4 indicators are what imports publish: storing one (its index
//! records) costs more than its fsync on a fast disk. Entries of 10 are what a SOC
//! publishes by hand or from a detection pipeline: their cost is the fsync, which
//! concurrent publishers can share. The node has no peers, so gossip costs one command to
//! the event loop and nothing on the wire. The store is on the disk of the temporary
//! directory, with its real fsyncs.

use std::time::Instant;

use threatmesh_node::store::{Options, Store};
use threatmesh_protocol::item::{Indicator, Item};
use threatmesh_protocol::testing::{bench_charter, key};
use threatmesh_protocol::{Distribution, Kind, PublicKey, Timestamp, Tlp, Value};

mod support;

threatmesh_node::node_allocator!();

/// Entry `n`'s indicators: `per_entry` ipv4 addresses no other entry uses.
fn items(n: u32, per_entry: u32) -> Vec<Item> {
    (n * per_entry..(n + 1) * per_entry)
        .map(|i| {
            let [a, b, c, d] = i.to_be_bytes();
            let value = Value::parse(Kind::Ipv4, &format!("{}.{b}.{c}.{d}", a + 11))
                .expect("a valid ipv4 address");
            Item::Indicator(Indicator::new(value, Timestamp(1)))
        })
        .collect()
}

/// Publishes `entries` entries of `per_entry` indicators from `publishers` concurrent tasks
/// on a fresh node; returns entries per second and the store's flushes.
fn round(
    runtime: &tokio::runtime::Runtime,
    publishers: u32,
    entries: u32,
    per_entry: u32,
) -> (f64, u64) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (org, node, steward) = (key(1), key(2), key(3));
    let charter = bench_charter(&org, &node, &steward);
    let store = Store::open(dir.path(), &Options::default()).expect("store");
    store.put_charter(&charter).expect("charter stored");
    // Built before timing starts: building values is the caller's cost.
    let mut work: Vec<Vec<Vec<Item>>> = (0..publishers).map(|_| Vec::new()).collect();
    for n in 0..entries {
        work[(n % publishers) as usize].push(items(n, per_entry));
    }
    let flushes_before = store.flushes();
    let elapsed = runtime.block_on(async {
        let (_, publisher) = support::start(node, &store, charter);
        let start = Instant::now();
        let tasks: Vec<_> = work
            .into_iter()
            .map(|calls| {
                let publisher = publisher.clone();
                tokio::spawn(async move {
                    for items in calls {
                        publisher
                            .publish(Tlp::Green, Distribution::Federation, items)
                            .await
                            .expect("published");
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("publisher task");
        }
        start.elapsed()
    });
    let feed = store
        .feed(&PublicKey::of(&key(2)))
        .expect("feed read")
        .expect("the feed exists");
    assert_eq!(
        (feed.contiguous, feed.highest),
        (u64::from(entries), u64::from(entries)),
        "every entry is in the feed, with no gap"
    );
    (
        f64::from(entries) / elapsed.as_secs_f64(),
        store.flushes() - flushes_before,
    )
}

fn main() {
    let entries: u32 = std::env::var("PUBLISH_BENCH_ENTRIES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(200);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    for (per_entry, entries) in [(1_000, entries), (10, entries * 5)] {
        println!("{entries} entries of {per_entry} ipv4 indicators per round:");
        for publishers in [1, 16] {
            let (rate, flushes) = round(&runtime, publishers, entries, per_entry);
            println!(
                "  {publishers:>2} concurrent publisher(s): {rate:.1} entries/s \
                 ({:.0} indicators/s), {flushes} fsyncs",
                rate * f64::from(per_entry)
            );
        }
    }
}
