//! STIX benchmark: export of one entry of 1,000 indicators (what the TAXII server does
//! per page) and import of a bundle of 10,000 indicators.
//! `cargo bench -p threatmesh-node --bench stix`; objects/s is criterion's throughput.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::json;
use threatmesh_node::formats::Publisher;
use threatmesh_node::formats::stix;
use threatmesh_protocol::item::{Context, ExternalReference, Indicator, Item};
use threatmesh_protocol::{
    Body, Bundle, Distribution, Entry, Hash, Kind, PublicKey, Timestamp, Tlp, Value,
};

threatmesh_node::node_allocator!();

const EXPORTED: u32 = 1_000;
const IMPORTED: u32 = 10_000;

/// An entry of `count` ipv4 indicators, each with labels and a reference, like a feed.
fn entry(count: u32) -> Entry {
    let items = (0..count)
        .map(|n| {
            let value = Value::parse(
                Kind::Ipv4,
                &std::net::Ipv4Addr::from(0x0a00_0000 + n).to_string(),
            )
            .expect("valid address");
            let mut indicator = Indicator::new(value, Timestamp(1_700_000_000_000));
            indicator.labels = vec!["c2".into(), "malicious-activity".into()];
            indicator.context = Context {
                threat: Some("QakBot".into()),
                description: Some("C2 server seen in a spam wave".into()),
                external_references: vec![ExternalReference {
                    source: "CERT-FR".into(),
                    external_id: Some(format!("CERTFR-2024-ALE-{n}")),
                    url: None,
                }],
                ..Context::default()
            };
            Item::Indicator(indicator)
        })
        .collect();
    Entry {
        federation: Hash([1; 32]),
        author: PublicKey([2; 32]),
        seq: 1,
        prev: None,
        created: Timestamp(1_700_000_000_000),
        body: Body::Bundle(Bundle {
            tlp: Tlp::Green,
            distribution: Distribution::Federation,
            items,
        }),
    }
}

/// A STIX bundle of `count` indicator objects, as another platform would send it.
fn bundle(count: u32) -> Vec<u8> {
    let objects: Vec<_> = (0..count)
        .map(|n| {
            json!({
                "type": "indicator",
                "spec_version": "2.1",
                "id": format!("indicator--{:08x}-0000-4000-8000-000000000000", n),
                "created": "2024-01-01T00:00:00.000Z",
                "modified": "2024-01-01T00:00:00.000Z",
                "name": "C2 server",
                "indicator_types": ["malicious-activity"],
                "pattern": format!("[ipv4-addr:value = '{}']", std::net::Ipv4Addr::from(0x0a00_0000 + n)),
                "pattern_type": "stix",
                "valid_from": "2024-01-01T00:00:00Z",
                "object_marking_refs": ["marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb"],
            })
        })
        .collect();
    serde_json::to_vec(&json!({"type": "bundle", "id": "bundle--00000000-0000-4000-8000-000000000000", "objects": objects}))
        .expect("serialisable")
}

fn bench(c: &mut Criterion) {
    let publisher = Publisher {
        org: PublicKey([3; 32]),
        name: "CERT-FR".into(),
        country: "FR".into(),
    };
    let exported = entry(EXPORTED);
    let mut group = c.benchmark_group("stix");
    group.throughput(Throughput::Elements(u64::from(EXPORTED)));
    group.bench_function("export_entry_1000_indicators", |b| {
        b.iter(|| {
            stix::export_entry(
                &exported,
                &Hash([4; 32]),
                &publisher,
                stix::KeptIds::Namespaced,
            )
        })
    });
    let bytes = bundle(IMPORTED);
    group.throughput(Throughput::Elements(u64::from(IMPORTED)));
    group.sample_size(20);
    group.bench_function("import_10000_indicators", |b| {
        b.iter(|| stix::import(&bytes, Timestamp(1_700_000_000_000)).expect("a bundle"))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
