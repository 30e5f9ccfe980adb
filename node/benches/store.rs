//! Store benchmark: durable ingest of 1,000,000 indicators in entries of 1,000, lookup
//! latency of known and unknown values, bytes on disk and resident memory.
//! `cargo bench -p threatmesh-node --bench store`. Settings, by environment variable:
//! `STORE_BENCH_INDICATORS` (default 1,000,000), `STORE_BENCH_CACHE_MIB` (sled's cache;
//! default the node's), `STORE_BENCH_WRITERS=0` (skip the four-writer run, which fills a
//! second store as large), `STORE_BENCH_DIR` (fill the store there and keep it, for
//! `--serve DIR` runs with other cache sizes).
//!
//! Every ingest waits for its batch to be on disk (group flush), as the node does. Entries
//! are signed a chunk at a time (so tens of millions fit in memory), outside the timed
//! part: signing is the publisher's cost, not the store's.
//! Resident memory is measured in a fresh process that opens the filled store and serves
//! lookups, so the benchmark's own copy of the entries does not count.

use std::path::Path;
use std::time::{Duration, Instant};

use threatmesh_node::store::{Options, Store};
use threatmesh_protocol::bundle::{Bundle, Distribution, Tlp};
use threatmesh_protocol::entry::{Body, FeedHead, SignedEntry};
use threatmesh_protocol::item::{Confidence, Context, Indicator, Item};
use threatmesh_protocol::testing::value;
use threatmesh_protocol::{Hash, PublicKey, SigningKey, Timestamp, Value};

threatmesh_node::node_allocator!();

const PER_ENTRY: u32 = 1_000;
const LOOKUPS: usize = 100_000;
const FEDERATION: Hash = Hash([0xfe; 32]);
const NOW: Timestamp = Timestamp(1_700_000_000_000);

/// `count` entries of writer `writer`'s feed after `head`, with the values from `first` on.
fn entries(writer: u8, first: u32, count: u32, mut head: Option<FeedHead>) -> Vec<SignedEntry> {
    let key = SigningKey::from_bytes(&[writer + 1; 32]);
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

/// Entries signed at a time: 500,000 indicators, about 700 MB in memory.
const CHUNK_ENTRIES: u32 = 500;

fn cache_bytes() -> u64 {
    std::env::var("STORE_BENCH_CACHE_MIB")
        .ok()
        .and_then(|mib| mib.parse::<u64>().ok())
        .map_or(threatmesh_node::store::DEFAULT_CACHE_BYTES, |mib| {
            mib * 1024 * 1024
        })
}

fn open(dir: &Path) -> Store {
    let options = Options {
        cache_bytes: cache_bytes(),
        ..Options::default()
    };
    Store::open(dir, &options).expect("store opens")
}

/// Signs and ingests `per_writer` entries for each of `writers` feeds (writer `w`'s values
/// from `w * per_writer * PER_ENTRY`), a chunk at a time, one thread per feed; returns the
/// time spent ingesting, and the bytes of the entries.
fn fill(store: &Store, writers: u8, per_writer: u32) -> (Duration, usize) {
    let mut heads: Vec<Option<FeedHead>> = vec![None; usize::from(writers)];
    let (mut elapsed, mut bytes) = (Duration::ZERO, 0);
    let mut done = 0;
    while done < per_writer {
        let count = CHUNK_ENTRIES.min(per_writer - done);
        let feeds: Vec<Vec<SignedEntry>> = (0..writers)
            .map(|writer| {
                let first = (u32::from(writer) * per_writer + done) * PER_ENTRY;
                let head = heads[usize::from(writer)].take();
                let feed = entries(writer, first, count, head);
                heads[usize::from(writer)] = feed.last().map(SignedEntry::head);
                feed
            })
            .collect();
        bytes += feeds
            .iter()
            .flatten()
            .map(|entry| entry.payload().len())
            .sum::<usize>();
        elapsed += ingest(store, &feeds);
        done += count;
    }
    (elapsed, bytes)
}

/// Ingests `feeds` with one thread per feed; returns the wall time.
fn ingest(store: &Store, feeds: &[Vec<SignedEntry>]) -> Duration {
    let start = Instant::now();
    std::thread::scope(|scope| {
        for feed in feeds {
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
    println!(
        "store benchmark: {total} indicators in {entry_count} entries of {PER_ENTRY}, sled cache {} MiB",
        cache_bytes() / 1048576
    );

    // One writer.
    let temporary = tempfile::tempdir().expect("temporary directory");
    let dir = std::env::var_os("STORE_BENCH_DIR")
        .map_or_else(|| temporary.path().to_path_buf(), std::path::PathBuf::from);
    let store = open(&dir);
    let (elapsed, payload_bytes) = fill(&store, 1, entry_count);
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
    let on_disk = dir_bytes(&dir);
    println!(
        "on disk: {:.1} MiB in the directory ({} bytes per indicator; sled reports {:.1} MiB); \
         entries' own size {:.1} MiB",
        on_disk as f64 / 1048576.0,
        on_disk / u64::from(total),
        stats.bytes_on_disk as f64 / 1048576.0,
        payload_bytes as f64 / 1048576.0,
    );
    println!(
        "this process after ingest: resident {} MiB, peak {} MiB (includes a chunk of signed entries)",
        status_kib("VmRSS:") / 1024,
        status_kib("VmHWM:") / 1024
    );
    drop(store);
    let exe = std::env::current_exe().expect("own path");
    let status = std::process::Command::new(exe)
        .arg("--serve")
        .arg(&dir)
        .env("STORE_BENCH_INDICATORS", total.to_string())
        .status()
        .expect("fresh process runs");
    assert!(status.success(), "fresh process failed");
    if std::env::var("STORE_BENCH_WRITERS").as_deref() == Ok("0") {
        return;
    }

    // Four writers, one feed each: concurrent ingests share flushes.
    let per_writer = entry_count / 4;
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = open(dir.path());
    let (elapsed, _) = fill(&store, 4, per_writer);
    let indicators = f64::from(per_writer * 4 * PER_ENTRY);
    println!(
        "durable ingest, 4 writers: {:.1} s, {:.0} indicators/s",
        elapsed.as_secs_f64(),
        indicators / elapsed.as_secs_f64()
    );
}
