//! Costs of one entry of 1,000 indicators: sign, encode, decode, verify; and ed25519 batch
//! verification of 100 such entries. `cargo bench -p threatmesh-protocol`.
//!
//! The indicators look like a real C2 feed: a threat name, labels, a kill-chain phase and
//! a validity window (about 100 bytes each on the wire). The main entry mixes ipv4,
//! domain, url and sha256 values in equal parts; `decode_and_verify_by_kind` shows each
//! kind alone, since re-validating values on receipt costs more for some kinds than others.

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use threatmesh_protocol::Timestamp;
use threatmesh_protocol::bundle::{Bundle, Distribution, Tlp};
use threatmesh_protocol::entry::{Body, SignedEntry, UnverifiedEntry, verify_batch};
use threatmesh_protocol::testing::{FEDERATION, c2_indicator, c2_indicator_of, key};
use threatmesh_protocol::wire::{self, MAX_GOSSIP_BYTES, Message};

const INDICATORS: u32 = 1_000;

fn body() -> Body {
    Body::Bundle(Bundle {
        tlp: Tlp::Green,
        distribution: Distribution::Federation,
        items: (0..INDICATORS).map(c2_indicator).collect(),
    })
}

fn entry_for(seed: u8) -> SignedEntry {
    SignedEntry::next(
        &key(seed),
        FEDERATION,
        None,
        Timestamp(1_700_000_000_000),
        body(),
    )
    .expect("a 1,000-indicator entry fits")
}

fn bench_entry(c: &mut Criterion) {
    let key = key(1);
    let signed = entry_for(1);
    let payload = signed.payload().to_vec();
    println!(
        "entry of {INDICATORS} indicators: {} bytes ({} per indicator)",
        payload.len(),
        payload.len() / INDICATORS as usize
    );

    let mut group = c.benchmark_group("entry_1000_indicators");
    group.throughput(Throughput::Elements(u64::from(INDICATORS)));
    group.bench_function("sign", |b| {
        b.iter_batched(
            body,
            |body| SignedEntry::next(&key, FEDERATION, None, Timestamp(1_700_000_000_000), body),
            BatchSize::SmallInput,
        )
    });
    let Ok(Message::Entry(raw)) = wire::decode(&payload, MAX_GOSSIP_BYTES) else {
        panic!("benchmark entry does not decode");
    };
    let message = Message::Entry(raw);
    group.bench_function("encode", |b| b.iter(|| wire::encode(black_box(&message))));
    group.bench_function("decode", |b| {
        b.iter_batched(
            || payload.clone(),
            UnverifiedEntry::decode,
            BatchSize::SmallInput,
        )
    });
    group.bench_function("verify", |b| {
        b.iter_batched(
            || UnverifiedEntry::decode(payload.clone()).expect("decodes"),
            UnverifiedEntry::verify,
            BatchSize::SmallInput,
        )
    });
    group.bench_function("decode_and_verify", |b| {
        b.iter_batched(|| payload.clone(), SignedEntry::open, BatchSize::SmallInput)
    });
    group.finish();

    // Receiving re-validates every value, and what that costs depends on the kind.
    let mut group = c.benchmark_group("decode_and_verify_by_kind");
    group.throughput(Throughput::Elements(u64::from(INDICATORS)));
    for (kind, name) in [(0, "ipv4"), (1, "domain"), (2, "url"), (3, "sha256")] {
        let body = Body::Bundle(Bundle {
            tlp: Tlp::Green,
            distribution: Distribution::Federation,
            items: (0..INDICATORS).map(|n| c2_indicator_of(kind, n)).collect(),
        });
        let payload = SignedEntry::next(&key, FEDERATION, None, Timestamp(1_700_000_000_000), body)
            .expect("a 1,000-indicator entry fits")
            .into_payload();
        group.bench_function(name, |b| {
            b.iter_batched(|| payload.clone(), SignedEntry::open, BatchSize::SmallInput)
        });
    }
    group.finish();

    let entries: Vec<UnverifiedEntry> = (0..100u8)
        .map(|seed| UnverifiedEntry::decode(entry_for(seed).into_payload()).expect("decodes"))
        .collect();
    let mut group = c.benchmark_group("batch_100_entries");
    group.throughput(Throughput::Elements(100 * u64::from(INDICATORS)));
    group.sample_size(20);
    group.bench_function("verify_batch", |b| {
        b.iter(|| verify_batch(black_box(&entries)))
    });
    group.bench_function("verify_one_by_one", |b| {
        b.iter_batched(
            || entries.clone(),
            |entries| {
                entries
                    .into_iter()
                    .map(UnverifiedEntry::verify)
                    .collect::<Result<Vec<_>, _>>()
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench_entry);
criterion_main!(benches);
