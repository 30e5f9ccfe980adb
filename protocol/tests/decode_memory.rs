//! Decoding hostile bytes never allocates much more than `DECODE_LIMIT_BYTES`.
//!
//! This test binary installs a counting global allocator, so it holds a single test: other
//! tests running on other threads would disturb the count.

#![allow(clippy::unwrap_used)] // tests unwrap what they built themselves

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use threatmesh_protocol::charter::SignedCharter;
use threatmesh_protocol::entry::UnverifiedEntry;
use threatmesh_protocol::wire::{self, DECODE_LIMIT_BYTES, MAX_MESSAGE_BYTES, Message};

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

#[allow(unsafe_code)]
// SAFETY: forwards every call to the system allocator unchanged; only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let now = CURRENT.fetch_add(layout.size(), Ordering::SeqCst) + layout.size();
        PEAK.fetch_max(now, Ordering::SeqCst);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        CURRENT.fetch_sub(layout.size(), Ordering::SeqCst);
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Decodes `bytes` every way a node does and returns the peak allocation above the start.
fn peak_while_decoding(bytes: &[u8]) -> usize {
    let base = CURRENT.load(Ordering::SeqCst);
    PEAK.store(base, Ordering::SeqCst);
    if let Ok(Message::Charter(raw)) = wire::decode(bytes, MAX_MESSAGE_BYTES) {
        let _ = SignedCharter::decode(raw);
    }
    let _ = UnverifiedEntry::decode(bytes.to_vec());
    PEAK.load(Ordering::SeqCst) - base
}

fn varint_u64(value: u64) -> Vec<u8> {
    let mut bytes = vec![253];
    bytes.extend_from_slice(&value.to_le_bytes());
    bytes
}

#[test]
fn hostile_length_prefixes_stay_within_the_decode_limit() {
    let bound = |input: usize| 2 * DECODE_LIMIT_BYTES + 3 * input + 64 * 1024;
    let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();

    // Message::Entry whose signed bytes claim 2^60 bytes.
    let mut entry = vec![wire::WIRE_VERSION, 0];
    entry.extend(varint_u64(1 << 60));
    cases.push(("huge entry bytes", entry));

    // Response::Range claiming 2^40 payloads (each a Vec<u8>).
    let mut range = vec![wire::WIRE_VERSION, 3, 1];
    range.extend(varint_u64(1 << 40));
    cases.push(("huge range", range));

    // Response::Range claiming as many payloads as the limit allows, each empty: the
    // worst case of a container claim that is released element by element.
    let mut many = vec![wire::WIRE_VERSION, 3, 1];
    let count = DECODE_LIMIT_BYTES / 24 - 1;
    many.extend(varint_u64(count as u64));
    many.extend(std::iter::repeat_n(0u8, count.min(MAX_MESSAGE_BYTES - 32)));
    cases.push(("many empty payloads", many));

    // Response::Heads claiming 2^50 heads.
    let mut heads = vec![wire::WIRE_VERSION, 3, 0];
    heads.extend(varint_u64(1 << 50));
    cases.push(("huge heads", heads));

    // Message::Charter whose signature list claims 2^32 entries after a short charter.
    let mut charter = vec![wire::WIRE_VERSION, 1, 0];
    charter.extend(varint_u64(1 << 32));
    cases.push(("huge signature list", charter));

    // An entry whose inner signed bytes claim a huge item list.
    let mut signed = threatmesh_protocol::entry::ENTRY_DOMAIN.as_bytes().to_vec();
    signed.extend_from_slice(&[2; 32]); // federation
    signed.extend_from_slice(&[1; 32]); // author
    signed.push(1); // seq
    signed.push(0); // prev: None
    signed.push(1); // created
    signed.push(0); // Body::Bundle
    signed.push(1); // tlp
    signed.push(0); // distribution
    signed.extend(varint_u64(1 << 45)); // items
    let raw = threatmesh_protocol::entry::RawEntry {
        signed,
        signature: threatmesh_protocol::Signature([0; 64]),
    };
    cases.push(("huge item list", wire::encode(&Message::Entry(raw))));

    for (name, bytes) in &cases {
        let peak = peak_while_decoding(bytes);
        assert!(
            peak <= bound(bytes.len()),
            "{name}: {peak} bytes allocated for {} input bytes",
            bytes.len()
        );
    }

    // Random bytes of every small length, deterministic.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for len in 0..2_000usize {
        let mut bytes = Vec::with_capacity(len);
        for _ in 0..len {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            bytes.push(state.to_le_bytes()[0]);
        }
        if let Some(first) = bytes.first_mut() {
            *first = wire::WIRE_VERSION;
        }
        let peak = peak_while_decoding(&bytes);
        assert!(peak <= bound(len), "random input of {len} bytes: {peak}");
    }
}
