//! Store benchmark: durable ingest of 1,000,000 indicators in entries of 1,000, lookup
//! latency of known and unknown values, bytes on disk and resident memory.
//! `cargo bench -p threatmesh-node --bench store` (set `STORE_BENCH_INDICATORS` for a
//! smaller run).
//!
//! Every ingest waits for its batch to be on disk (group flush), as the node does. Entries
//! are signed before timing starts: signing is the publisher's cost, not the store's.
//! Resident memory is measured in a fresh process that opens the filled store and serves
//! lookups, so the benchmark's own copy of the entries does not count.

use std::path::Path;
use std::time::{Duration, Instant};

use threatmesh_node::store::{Options, Store};
use threatmesh_protocol::bundle::{Bundle, Distribution, Tlp};
use threatmesh_protocol::entry::{Body, SignedEntry};
use threatmesh_protocol::item::{Confidence, Context, Indicator, Item};
use threatmesh_protocol::testing::value;
use threatmesh_protocol::{Hash, PublicKey, SigningKey, Timestamp, Value};

const PER_ENTRY: u32 = 1_000;
const LOOKUPS: usize = 100_000;
const FEDERATION: Hash = Hash([0xfe; 32]);
const NOW: Timestamp = Timestamp(1_700_000_000_000);

fn entries(writer: u8, first: u32, count: u32) -> Vec<SignedEntry> {
    let key = SigningKey::from_bytes(&[writer + 1; 32]);
    let mut head = None;
    (0..count)
        .map(|index| {
            let start = first + index * PER_ENTRY;
            let items = (start..start + PER_ENTRY)
                .map(|n| {
                    Item::Indicator(Indicator {
                        value: value(n),
                        confidence: Confidence::new(80).expect("80 is a confidence"),
                        valid_from: NOW,
                        valid_until: None,
                        labels: vec!["c2".into()],
                        context: Context {
                            threat: Some("QakBot".into()),
                            ..Context::default()
                        },
                    })
                })
                .collect();
            let body = Body::Bundle(Bundle {
                tlp: Tlp::Green,
                distribution: Distribution::Federation,
                items,
            });
            let entry = SignedEntry::next(&key, FEDERATION, head.as_ref(), NOW, body)
                .expect("a 1,000-indicator entry fits");
            head = Some(entry.head());
            entry
        })
        .collect()
}

fn open(dir: &Path) -> Store {
    Store::open(dir, &Options::default()).expect("store opens")
}

/// Ingests `feeds` with one thread per feed; returns the wall time.
fn ingest(store: &Store, feeds: Vec<Vec<SignedEntry>>) -> Duration {
    let start = Instant::now();
    std::thread::scope(|scope| {
        for feed in &feeds {
            scope.spawn(move || {
                for entry in feed {
                    store
                        .ingest(entry, PublicKey([1; 32]), NOW)
                        .expect("ingest succeeds");
                }
            });
        }
    });
    start.elapsed()
}

fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * fraction).round() as usize;
    sorted[index]
}

fn lookups(store: &Store, values: &[Value]) -> String {
    let mut latencies: Vec<Duration> = values
        .iter()
        .map(|value| {
            let start = Instant::now();
            let found = store.lookup(value, NOW).expect("lookup succeeds");
            let elapsed = start.elapsed();
            std::hint::black_box(found);
            elapsed
        })
        .collect();
    latencies.sort();
    format!(
        "p50 {:.1} µs, p99 {:.1} µs, max {:.1} µs",
        percentile(&latencies, 0.50).as_secs_f64() * 1e6,
        percentile(&latencies, 0.99).as_secs_f64() * 1e6,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e6
    )
}

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with(field))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|kib| kib.parse().ok())
        })
        .unwrap_or(0)
}

fn dir_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        let Ok(read) = std::fs::read_dir(&path) else {
            continue;
        };
        for entry in read.flatten() {
            match entry.metadata() {
                Ok(meta) if meta.is_dir() => stack.push(entry.path()),
                Ok(meta) => total += meta.len(),
                Err(_) => {}
            }
        }
    }
    total
}

/// The fresh-process half: open the filled store, serve lookups, report memory.
fn serve_and_report_memory(dir: &Path, total: u32) {
    let before = status_kib("VmRSS:");
    let store = open(dir);
    let values: Vec<Value> = (0..LOOKUPS as u32)
        .map(|i| value(i.wrapping_mul(7919) % total))
        .collect();
    let cold = lookups(&store, &values);
    let warm = lookups(&store, &values);
    println!(
        "fresh process, store opened and {LOOKUPS} lookups served twice: resident {} MiB \
         (process before opening: {} MiB); known-value lookups, first pass (cold cache) \
         {cold} (sled's cache empty, the OS page cache still warm from the ingest); \
         second pass {warm}",
        status_kib("VmRSS:") / 1024,
        before / 1024
    );
}

fn main() {
    let mut args = std::env::args().skip(1);
    let total: u32 = std::env::var("STORE_BENCH_INDICATORS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    if args.next().as_deref() == Some("--serve") {
        let dir = args.next().expect("--serve DIR");
        serve_and_report_memory(Path::new(&dir), total);
        return;
    }
    let entry_count = total / PER_ENTRY;
    println!("store benchmark: {total} indicators in {entry_count} entries of {PER_ENTRY}");

    let started = Instant::now();
    let one_feed = entries(0, 0, entry_count);
    let payload_bytes: usize = one_feed.iter().map(|entry| entry.payload().len()).sum();
    println!(
        "signed the entries in {:.1} s (not timed below)",
        started.elapsed().as_secs_f64()
    );

    // One writer.
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = open(dir.path());
    let elapsed = ingest(&store, vec![one_feed]);
    println!(
        "durable ingest, 1 writer: {:.1} s, {:.0} indicators/s, {:.1} ms per entry",
        elapsed.as_secs_f64(),
        f64::from(total) / elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1000.0 / f64::from(entry_count)
    );

    let known: Vec<Value> = (0..LOOKUPS as u32)
        .map(|i| value(i.wrapping_mul(7919) % total))
        .collect();
    let unknown: Vec<Value> = (0..LOOKUPS as u32).map(|i| value(total + i)).collect();
    println!("lookup, known value: {}", lookups(&store, &known));
    println!("lookup, unknown value: {}", lookups(&store, &unknown));
    let stats = store.stats().expect("stats");
    store.flush().expect("flush");
    let on_disk = dir_bytes(dir.path());
    println!(
        "on disk: {:.1} MiB in the directory ({} bytes per indicator; sled reports {:.1} MiB); \
         entries' own size {:.1} MiB",
        on_disk as f64 / 1048576.0,
        on_disk / u64::from(total),
        stats.bytes_on_disk as f64 / 1048576.0,
        payload_bytes as f64 / 1048576.0,
    );
    println!(
        "this process after ingest: resident {} MiB, peak {} MiB (includes the signed entries held for the benchmark)",
        status_kib("VmRSS:") / 1024,
        status_kib("VmHWM:") / 1024
    );
    drop(store);
    let exe = std::env::current_exe().expect("own path");
    let status = std::process::Command::new(exe)
        .arg("--serve")
        .arg(dir.path())
        .env("STORE_BENCH_INDICATORS", total.to_string())
        .status()
        .expect("fresh process runs");
    assert!(status.success(), "fresh process failed");

    // Four writers, one feed each: concurrent ingests share flushes.
    let per_writer = entry_count / 4;
    let feeds: Vec<Vec<SignedEntry>> = (0..4u8)
        .map(|writer| {
            entries(
                writer,
                u32::from(writer) * per_writer * PER_ENTRY,
                per_writer,
            )
        })
        .collect();
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = open(dir.path());
    let elapsed = ingest(&store, feeds);
    let indicators = f64::from(per_writer * 4 * PER_ENTRY);
    println!(
        "durable ingest, 4 writers: {:.1} s, {:.0} indicators/s",
        elapsed.as_secs_f64(),
        indicators / elapsed.as_secs_f64()
    );
}
