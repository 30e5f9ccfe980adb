//! Warninglist benchmark: values checked per second against the default set, and what
//! counting matches costs ingest.
//! `cargo bench -p threatmesh-node --bench warninglists`.
//!
//! `match`: 10,000 values in a mix like a federation's traffic (ipv4 about 40%, domain 25%,
//! url 15%, sha256 15%, md5 and ipv6 the rest; one in twenty on a list), each checked against
//! the default set (17 lists, about 80,000 entries, 62,000 of them resolver addresses).
//!
//! `ingest`: what a node's ingest worker does with an entry of 1,000 such indicators
//! from a peer (decode, signature check, store, wait for the flush), without and with
//! counting the entry's values on the warninglists, as the worker does once the entry
//! is stored (`network/ingest.rs`). The goal is under 10% apart. The two runs include
//! fsyncs, whose noise can exceed the difference: `counting alone` times just the
//! counting of one entry, to set against an entry's ingest time.

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use threatmesh_node::store::{Options, Store};
use threatmesh_node::warninglists::{Counts, Warninglists};
use threatmesh_protocol::bundle::{Bundle, Distribution, Tlp};
use threatmesh_protocol::entry::{Body, SignedEntry};
use threatmesh_protocol::item::{Indicator, Item};
use threatmesh_protocol::testing::key;
use threatmesh_protocol::{Hash, Kind, PublicKey, Timestamp, Value};

threatmesh_node::node_allocator!();

const VALUES: u32 = 10_000;
const PER_ENTRY: u32 = 1_000;
const NOW: Timestamp = Timestamp(1_700_000_000_000);

/// Value `n` of the mix; every twentieth is one the default lists hold.
fn value(n: u32) -> Value {
    let [a, b, c, d] = n.to_be_bytes();
    let (kind, text) = match n % 20 {
        0 => match n / 20 % 4 {
            0 => (Kind::Ipv4, "8.8.8.8".to_owned()),
            1 => (Kind::Ipv4, format!("192.168.{c}.{d}")),
            2 => (Kind::Domain, "example.com".to_owned()),
            _ => (Kind::Md5, "d41d8cd98f00b204e9800998ecf8427e".to_owned()),
        },
        1..=7 => (Kind::Ipv4, format!("{}.{b}.{c}.{d}", 45 + a % 50)),
        8..=12 => (Kind::Domain, format!("cdn-{n}.update-check{}.xyz", n % 97)),
        13..=15 => (
            Kind::Url,
            format!("http://dl-{n}.badness.net/gate.php?id={d}"),
        ),
        16..=18 => (
            Kind::Sha256,
            format!("{:064x}", u128::from(n) * 0x9e37_79b9_7f4a),
        ),
        _ if n % 40 == 19 => (Kind::Md5, format!("{:032x}", u128::from(n) * 0x9e37_79b9)),
        _ => (Kind::Ipv6, format!("2a0{}:{b:x}{c:x}::{d:x}", a % 9 + 1)),
    };
    Value::parse(kind, &text).expect("benchmark values are valid")
}

fn matching(c: &mut Criterion) {
    let lists = Warninglists::builtin();
    let values: Vec<Value> = (0..VALUES).map(value).collect();
    let on = values
        .iter()
        .filter(|v| !lists.matches(v).is_empty())
        .count();
    println!("{on} of {VALUES} values are on a default list");
    let mut group = c.benchmark_group("warninglists");
    group.throughput(Throughput::Elements(u64::from(VALUES)));
    group.measurement_time(Duration::from_secs(3));
    group.bench_function("match", |b| {
        b.iter(|| {
            values
                .iter()
                .map(|value| lists.matches(value).len())
                .sum::<usize>()
        });
    });
    group.finish();
}

/// `count` entries of `PER_ENTRY` indicators of the mix, signed in one feed.
fn entries(count: u64, first: u32) -> Vec<Vec<u8>> {
    let key = key(5);
    let mut head = None;
    (0..count)
        .map(|index| {
            let start = first + index as u32 * PER_ENTRY;
            let items = (start..start + PER_ENTRY)
                .map(|n| Item::Indicator(Indicator::new(value(n), NOW)))
                .collect();
            let body = Body::Bundle(Bundle {
                tlp: Tlp::Green,
                distribution: Distribution::Federation,
                items,
            });
            let entry = SignedEntry::next(&key, Hash([0xfe; 32]), head.as_ref(), NOW, body)
                .expect("an entry of 1,000 indicators fits");
            head = Some(entry.head());
            entry.into_payload()
        })
        .collect()
}

/// Ingests `iters` fresh entries into a fresh store, counting warninglist matches when
/// `counts` is given; the time of the ingest alone.
fn ingest(iters: u64, counts: Option<&Counts>) -> Duration {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = Store::open(dir.path(), &Options::default()).expect("store opens");
    let payloads = entries(iters, 0);
    let start = Instant::now();
    for payload in payloads {
        let entry = SignedEntry::open(payload).expect("a valid entry");
        store
            .ingest(&entry, PublicKey([1; 32]), NOW)
            .expect("ingest succeeds");
        if let (Some(counts), Body::Bundle(bundle)) = (counts, &entry.entry().body) {
            for item in &bundle.items {
                if let Item::Indicator(indicator) = item {
                    counts.count(&indicator.value);
                }
            }
        }
    }
    start.elapsed()
}

fn ingesting(c: &mut Criterion) {
    let counts = Counts::new(Warninglists::builtin());
    let mut group = c.benchmark_group("ingest");
    group.throughput(Throughput::Elements(u64::from(PER_ENTRY)));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(8));
    group.bench_function("lists off", |b| b.iter_custom(|iters| ingest(iters, None)));
    group.bench_function("lists on", |b| {
        b.iter_custom(|iters| ingest(iters, Some(&counts)));
    });
    group.finish();
    // The counting alone, per entry: the difference above, without the noise of the
    // store's fsyncs (other processes share the disk and the cores).
    let entry = SignedEntry::open(entries(1, 0).remove(0)).expect("a valid entry");
    let mut group = c.benchmark_group("ingest");
    group.throughput(Throughput::Elements(u64::from(PER_ENTRY)));
    group.measurement_time(Duration::from_secs(3));
    group.bench_function("counting alone", |b| {
        b.iter(|| {
            if let Body::Bundle(bundle) = &entry.entry().body {
                for item in &bundle.items {
                    if let Item::Indicator(indicator) = item {
                        counts.count(&indicator.value);
                    }
                }
            }
        });
    });
    group.finish();
}

criterion_group!(benches, matching, ingesting);
criterion_main!(benches);
