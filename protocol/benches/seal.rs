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
use threatmesh_protocol::item::{Confidence, Context, Indicator, Item};
use threatmesh_protocol::seal::{EncryptionSecret, Recipient, SealContext, Sealed};
use threatmesh_protocol::{Hash, Kind, PublicKey, SigningKey, Timestamp, Value};

const FEDERATION: Hash = Hash([0xfe; 32]);
const INDICATORS: u32 = 1_000;

/// Indicator `n`: ipv4, domain, url and sha256 in turn, with the context a C2 feed has.
fn indicator(n: u32) -> Item {
    let [a, b, c, d] = n.to_be_bytes();
    let value = match n % 4 {
        0 => Value::parse(Kind::Ipv4, &format!("{}.{b}.{c}.{d}", a.max(1) + 10)),
        1 => Value::parse(Kind::Domain, &format!("c2-{n}.bad-example.com")),
        2 => Value::parse(
            Kind::Url,
            &format!("http://dl-{n}.example.net/gate.php?id={n}"),
        ),
        _ => Value::parse(
            Kind::Sha256,
            &format!("{:064x}", u128::from(n) * 0x9e37_79b9),
        ),
    }
    .expect("benchmark values are valid");
    Item::Indicator(Indicator {
        value,
        confidence: Confidence::new(80).expect("80 is a confidence"),
        valid_from: Timestamp(1_700_000_000_000),
        valid_until: Some(Timestamp(1_700_000_000_000 + 30 * 86_400_000)),
        labels: vec!["c2".into(), "botnet".into()],
        context: Context {
            threat: Some("QakBot".into()),
            kill_chain_phase: Some("command-and-control".into()),
            ..Context::default()
        },
    })
}

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
    let author = SigningKey::from_bytes(&[1; 32]);
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
            items: (0..INDICATORS).map(indicator).collect(),
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
