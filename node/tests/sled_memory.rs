//! How much heap a store holds as it grows. A check: writing entries does not grow the
//! heap beyond the page cache (sled's replaced tree nodes are freed as the store writes,
//! `store/reclaim.rs`). A measurement: the heap against the configured page cache (`cache_bytes`, the node's `cache_mib`). It writes entries of ten
//! indicators with 4,000-byte descriptions (about 40 KB each, the flood test's entries)
//! and prints the live heap above the freshly opened store every 500 entries, counted by
//! a global allocator of this test binary.
//!
//! `THREATMESH_SLED_CACHE_MIB=4 cargo test -p threatmesh-node --test sled_memory --
//! --ignored --nocapture` (default 128 MiB, 4,000 entries; `THREATMESH_SLED_ENTRIES` to
//! change the count). The figures are in docs/SECURITY.md.

#![allow(clippy::unwrap_used)] // tests unwrap what they built themselves

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use threatmesh_node::store::{Options, Store};
use threatmesh_protocol::bundle::{Bundle, Distribution, Tlp};
use threatmesh_protocol::entry::{Body, SignedEntry};
use threatmesh_protocol::item::{Indicator, Item};
use threatmesh_protocol::{Hash, Kind, PublicKey, SigningKey, Timestamp, Value};

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

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name).map_or(default, |value| value.parse().unwrap())
}

#[test]
#[ignore = "a measurement that prints figures: run with --ignored --nocapture"]
fn store_heap_against_its_page_cache() {
    let cache_mib = setting("THREATMESH_SLED_CACHE_MIB", 128);
    let entries = setting("THREATMESH_SLED_ENTRIES", 4_000);
    let dir = tempfile::tempdir().unwrap();
    let base = LIVE.load(Ordering::Relaxed);
    let options = Options {
        cache_bytes: cache_mib << 20,
        ..Options::default()
    };
    let store = Store::open(dir.path(), &options).unwrap();
    let opened = LIVE.load(Ordering::Relaxed);
    eprintln!(
        "cache {cache_mib} MiB: the opened store holds {} MB",
        (opened - base) / 1_000_000
    );
    let key = SigningKey::from_bytes(&[7; 32]);
    let mut head = None;
    let mut payload = 0;
    for seq in 1..=entries {
        let items = (0..10u64)
            .map(|n| {
                let text = format!("10.{}.{}.{n}", seq / 250, seq % 250);
                let mut indicator =
                    Indicator::new(Value::parse(Kind::Ipv4, &text).unwrap(), Timestamp(seq));
                indicator.context.description = Some("d".repeat(4_000));
                Item::Indicator(indicator)
            })
            .collect();
        let body = Body::Bundle(Bundle {
            tlp: Tlp::Green,
            distribution: Distribution::Federation,
            items,
        });
        let entry =
            SignedEntry::next(&key, Hash([1; 32]), head.as_ref(), Timestamp(seq), body).unwrap();
        payload += entry.payload().len();
        store
            .ingest(&entry, PublicKey([1; 32]), Timestamp(seq))
            .unwrap();
        head = Some(entry.head());
        if seq % 500 == 0 {
            let live = LIVE.load(Ordering::Relaxed).saturating_sub(opened);
            eprintln!(
                "cache {cache_mib} MiB: {seq} entries, {} MB of payload stored, heap above \
                 the opened store {} MB",
                payload / 1_000_000,
                live / 1_000_000
            );
        }
    }
}

/// An entry of `count` IPv4 indicators numbered from `first`.
fn addresses(first: u64, count: u64) -> Vec<Item> {
    (first..first + count)
        .map(|n| {
            let text = format!("10.{}.{}.{}", n >> 16 & 255, n >> 8 & 255, n & 255);
            Item::Indicator(Indicator::new(
                Value::parse(Kind::Ipv4, &text).unwrap(),
                Timestamp(n),
            ))
        })
        .collect()
}

#[test]
fn heap_stays_put_while_entries_are_written() {
    const PER_ENTRY: u64 = 1000;
    const WARM: u64 = 50;
    const MORE: u64 = 150;
    let dir = tempfile::tempdir().unwrap();
    let options = Options {
        cache_bytes: 4 << 20,
        ..Options::default()
    };
    let store = Store::open(dir.path(), &options).unwrap();
    let key = SigningKey::from_bytes(&[7; 32]);
    let mut head = None;
    let mut warm = 0;
    for seq in 1..=WARM + MORE {
        let body = Body::Bundle(Bundle {
            tlp: Tlp::Green,
            distribution: Distribution::Federation,
            items: addresses(seq * PER_ENTRY, PER_ENTRY),
        });
        let entry =
            SignedEntry::next(&key, Hash([1; 32]), head.as_ref(), Timestamp(seq), body).unwrap();
        store
            .ingest(&entry, PublicKey([1; 32]), Timestamp(seq))
            .unwrap();
        head = Some(entry.head());
        if seq == WARM {
            warm = LIVE.load(Ordering::Relaxed);
        }
    }
    let grown = LIVE.load(Ordering::Relaxed).saturating_sub(warm);
    eprintln!("heap grew {grown} bytes over {MORE} entries of {PER_ENTRY} indicators");
    // Without the store freeing sled's garbage this grows by 120 to 200 MB (800 bytes or
    // more an indicator); with it, by what the 4 MiB page cache still takes in (a few MB).
    assert!(
        grown < 32_000_000,
        "the heap grew {grown} bytes while {} indicators were written",
        MORE * PER_ENTRY
    );
}
