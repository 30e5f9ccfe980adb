//! Cost of sealing and opening a restricted entry of 1,000 indicators for 1, 10 and 100
//! recipient organisations: `cargo bench -p threatmesh-protocol --bench seal`.
//!
//! `seal` is what a publisher pays per entry (content encryption once, one HPKE key slot
//! per recipient), `open` what one recipient pays on ingest (one slot, the content, the
//! bundle's decode and validation), `seal_sign_open_entry` the whole round: seal, sign,
//! decode and verify the entry as a relay does, then open it as a recipient.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use threatmesh_protocol::bundle::{Bundle, Distribution, Tlp};
use threatmesh_protocol::entry::{Body, SignedEntry, UnverifiedEntry};
use threatmesh_protocol::seal::{EncryptionSecret, Recipient, SealContext, Sealed};
use threatmesh_protocol::testing::{FEDERATION, c2_indicator, key};
use threatmesh_protocol::{PublicKey, SigningKey, Timestamp};
const INDICATORS: u32 = 1_000;

/// Organisation `i`: its root key and X25519 secret, seeded.
fn org(i: usize) -> (PublicKey, EncryptionSecret) {
    let [.., a, b] = u32::try_from(i).expect("few orgs").to_be_bytes();
    let mut seed = [1u8; 32];
    seed[0] = a;
    seed[1] = b;
    let root = PublicKey::of(&SigningKey::from_bytes(&seed));
    let mut secret = [7u8; 32];
    secret[0] = a;
    secret[1] = b;
    (root, EncryptionSecret::from_bytes(secret))
}

fn bench_seal(c: &mut Criterion) {
    let author = key(1);
    let context = SealContext {
        federation: FEDERATION,
        author: PublicKey::of(&author),
        seq: 1,
    };
    let mut group = c.benchmark_group("seal_1000_indicators");
    group.throughput(Throughput::Elements(u64::from(INDICATORS)));
    for recipients in [1usize, 10, 100] {
        let orgs: Vec<(PublicKey, EncryptionSecret)> = (0..recipients).map(org).collect();
        let slots: Vec<Recipient> = orgs
            .iter()
            .map(|(root, secret)| Recipient {
                org: *root,
                encryption_key: secret.public_key(),
            })
            .collect();
        let bundle = Bundle {
            tlp: Tlp::Red,
            distribution: Distribution::Recipients(orgs.iter().map(|(root, _)| *root).collect()),
            items: (0..INDICATORS).map(c2_indicator).collect(),
        };
        let sealed = Sealed::seal(&bundle, &slots, &context, [9; 32]).expect("the bundle seals");
        let entry = SignedEntry::next(
            &author,
            FEDERATION,
            None,
            Timestamp(1_700_000_000_000),
            Body::Sealed(sealed.clone()),
        )
        .expect("a sealed entry of 1,000 indicators fits");
        println!(
            "sealed entry of {INDICATORS} indicators for {recipients} recipients: {} bytes",
            entry.payload().len()
        );
        // The last recipient: opening searches the slots.
        let (reader, secret) = orgs.last().expect("at least one recipient");

        group.bench_with_input(BenchmarkId::new("seal", recipients), &recipients, |b, _| {
            b.iter(|| Sealed::seal(black_box(&bundle), &slots, &context, [9; 32]))
        });
        group.bench_with_input(BenchmarkId::new("open", recipients), &recipients, |b, _| {
            b.iter(|| black_box(&sealed).open(&context, reader, secret))
        });
        group.bench_with_input(
            BenchmarkId::new("seal_sign_open_entry", recipients),
            &recipients,
            |b, _| {
                b.iter(|| {
                    let sealed =
                        Sealed::seal(&bundle, &slots, &context, [9; 32]).expect("the bundle seals");
                    let entry = SignedEntry::next(
                        &author,
                        FEDERATION,
                        None,
                        Timestamp(1_700_000_000_000),
                        Body::Sealed(sealed),
                    )
                    .expect("it fits");
                    let received = UnverifiedEntry::decode(entry.into_payload())
                        .expect("it decodes")
                        .verify()
                        .expect("it verifies");
                    let Body::Sealed(sealed) = &received.entry().body else {
                        unreachable!("sealed above")
                    };
                    sealed.open(&SealContext::of(received.entry()), reader, secret)
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, bench_seal);
criterion_main!(benches);
