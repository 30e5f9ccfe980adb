//! Format conversion benchmark: CSV import of 100,000 lines, MISP import of one event of
//! 10,000 attributes, MISP feed export of 10 entries of 1,000 indicators.
//! `cargo bench -p threatmesh-node --bench formats`; criterion reports the elements (lines,
//! attributes, indicators) per second.

#![allow(clippy::expect_used)] // the benchmark builds its own input

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::json;
use threatmesh_node::formats::Publisher;
use threatmesh_node::formats::csv::{self, CsvOptions};
use threatmesh_node::formats::misp::{self, MispOptions};
use threatmesh_protocol::bundle::{Bundle, Distribution, Tlp};
use threatmesh_protocol::entry::{Body, SignedEntry};
use threatmesh_protocol::item::{Indicator, Item};
use threatmesh_protocol::testing::key;
use threatmesh_protocol::{Hash, Kind, PublicKey, Timestamp, Value};

threatmesh_node::node_allocator!();

const NOW: Timestamp = Timestamp(1_700_000_000_000);
const CSV_LINES: usize = 100_000;
const MISP_ATTRIBUTES: usize = 10_000;
const EXPORT_ENTRIES: usize = 10;
const EXPORT_PER_ENTRY: usize = 1_000;

/// Line `n` of a mixed list: ipv4, defanged domain, defanged url and sha256 in turn.
fn line(n: usize) -> String {
    match n % 4 {
        0 => format!("10.{}.{}.{}", (n >> 16) & 255, (n >> 8) & 255, n & 255),
        1 => format!("c2-{n}.bad-example[.]com"),
        2 => format!("hxxp://dl-{n}.example[.]net/gate.php"),
        _ => format!("{:064x}", (n as u128) * 0x9e37_79b9),
    }
}

fn csv_import(c: &mut Criterion) {
    let mut text = String::from("# benchmark list\n");
    for n in 0..CSV_LINES {
        text.push_str(&line(n));
        text.push('\n');
    }
    let mut group = c.benchmark_group("csv");
    group.sample_size(10);
    group.throughput(Throughput::Elements(CSV_LINES as u64));
    group.bench_function("import 100,000 lines", |b| {
        b.iter(|| {
            let import = csv::import(black_box(text.as_bytes()), NOW, &CsvOptions::default())
                .expect("the list is within limits");
            assert_eq!(import.report.indicators, CSV_LINES);
        });
    });
    group.finish();
}

fn misp_import(c: &mut Criterion) {
    let types = ["ip-dst", "domain", "url", "sha256"];
    let attributes: Vec<_> = (0..MISP_ATTRIBUTES)
        .map(|n| {
            json!({
                "uuid": format!("00000000-0000-4000-8000-{n:012}"),
                "type": types[n % 4],
                "category": "Network activity",
                "to_ids": true,
                "timestamp": "1700000000",
                "value": line(n).replace("[.]", ".").replace("hxxp", "http"),
            })
        })
        .collect();
    let event = json!({"Event": {
        "info": "benchmark event", "uuid": "11111111-1111-4111-8111-111111111111",
        "Tag": [{"name": "tlp:green"}], "Attribute": attributes,
    }})
    .to_string();
    let mut group = c.benchmark_group("misp");
    group.sample_size(10);
    group.throughput(Throughput::Elements(MISP_ATTRIBUTES as u64));
    group.bench_function("import 10,000 attributes", |b| {
        b.iter(|| {
            let import = misp::import(black_box(event.as_bytes()), NOW, &MispOptions::default())
                .expect("the event is valid");
            assert_eq!(import.report.indicators, MISP_ATTRIBUTES);
        });
    });
    group.finish();
}

fn misp_export(c: &mut Criterion) {
    let key = key(1);
    let mut entries: Vec<SignedEntry> = Vec::new();
    for e in 0..EXPORT_ENTRIES {
        let items = (0..EXPORT_PER_ENTRY)
            .map(|i| {
                let n = e * EXPORT_PER_ENTRY + i;
                let kind = [Kind::Ipv4, Kind::Domain, Kind::Url, Kind::Sha256][n % 4];
                let value = Value::parse(kind, &line(n)).expect("benchmark values are valid");
                Item::Indicator(Indicator::new(value, NOW))
            })
            .collect();
        let bundle = Bundle {
            tlp: Tlp::Green,
            distribution: Distribution::Federation,
            items,
        };
        let head = entries.last().map(SignedEntry::head);
        let entry = SignedEntry::next(
            &key,
            Hash([0xfe; 32]),
            head.as_ref(),
            NOW,
            Body::Bundle(bundle),
        )
        .expect("benchmark entries sign");
        entries.push(entry);
    }
    let publisher = Publisher {
        org: PublicKey([2; 32]),
        name: "CERT-FR".to_owned(),
        country: "FR".to_owned(),
    };
    let mut group = c.benchmark_group("misp");
    group.sample_size(10);
    group.throughput(Throughput::Elements(
        (EXPORT_ENTRIES * EXPORT_PER_ENTRY) as u64,
    ));
    group.bench_function("export 10 entries of 1,000 indicators", |b| {
        b.iter(|| {
            let feed = misp::export_feed(
                entries
                    .iter()
                    .map(|signed| (signed.entry(), signed.id(), &publisher)),
            );
            assert_eq!(feed.events.len(), EXPORT_ENTRIES);
            black_box(feed)
        });
    });
    group.finish();
}

criterion_group!(benches, csv_import, misp_import, misp_export);
criterion_main!(benches);
