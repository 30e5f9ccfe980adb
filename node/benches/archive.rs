//! Air-gap archive benchmark: export and import of 1,000,000 indicators (1,000 entries of
//! 1,000), each over real HTTP on loopback, as `threatmesh archive export` and `import`
//! run them. `cargo bench -p threatmesh-node --bench archive` (set
//! `ARCHIVE_BENCH_INDICATORS` for a smaller run, `ARCHIVE_BENCH_RUNS` for more runs).
//!
//! The exporting node's store is filled before timing starts (entries signed, then
//! ingested). Each export streams the whole archive to the client, which keeps it in
//! memory. Each import goes to a fresh node whose store is empty: every charter and entry
//! is decoded, verified and stored, durably, before the report comes back. A second
//! import of the same archive into the same node (everything already known) is timed too.

use std::time::{Duration, Instant};

use threatmesh_node::api::{ApiState, router, serve};
use threatmesh_node::network;
use threatmesh_node::publish::Publisher;
use threatmesh_node::store::{Options, Store};
use threatmesh_protocol::archive::{Decoder, Frame};
use threatmesh_protocol::bundle::{Bundle, Distribution, Tlp};
use threatmesh_protocol::charter::NodeCertificate;
use threatmesh_protocol::entry::{Body, SignedEntry};
use threatmesh_protocol::item::{Confidence, Context, Indicator, Item};
use threatmesh_protocol::testing::{bench_charter, key, value};
use threatmesh_protocol::{PublicKey, SignedCharter, SigningKey, Timestamp};

threatmesh_node::node_allocator!();

const PER_ENTRY: u32 = 1_000;
const TOKEN: &str = "bench-token-0123456789";
const NOW: Timestamp = Timestamp(1_700_000_000_000);

fn entries(key: &SigningKey, charter: &SignedCharter, count: u32) -> Vec<SignedEntry> {
    let mut head = None;
    (0..count)
        .map(|index| {
            let start = index * PER_ENTRY;
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
            let entry = SignedEntry::next(key, charter.federation(), head.as_ref(), NOW, body)
                .expect("a 1,000-indicator entry fits");
            head = Some(entry.head());
            entry
        })
        .collect()
}

/// A node over a fresh store, its API served on loopback; the API's URL. The store's
/// directory lives as long as the runtime's tasks use it: the caller keeps it.
fn node(
    runtime: &tokio::runtime::Runtime,
    key: SigningKey,
    charter: &SignedCharter,
    dir: &std::path::Path,
) -> (Store, String) {
    let store = Store::open(dir, &Options::default()).expect("store");
    store.put_charter(charter).expect("charter stored");
    let url = runtime.block_on(async {
        let (client, event_loop) = network::new(
            network::Config::default(),
            key.clone(),
            store.clone(),
            charter.clone(),
        )
        .expect("network");
        let publisher = Publisher::new(key, store.clone(), client.clone());
        tokio::spawn(event_loop.run());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        let state = ApiState::new(store.clone(), client, publisher, vec![TOKEN.into()]);
        tokio::spawn(serve(listener, router(state), std::future::pending()));
        format!("http://{address}")
    });
    (store, url)
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

fn export(url: &str) -> Vec<u8> {
    let response = agent()
        .get(&format!("{url}/api/v1/archive"))
        .header("Authorization", &format!("Bearer {TOKEN}"))
        .call()
        .expect("export answered");
    assert!(response.status().is_success());
    response
        .into_body()
        .into_with_config()
        .limit(u64::MAX)
        .read_to_vec()
        .expect("archive read")
}

fn import(url: &str, archive: &[u8]) -> serde_json::Value {
    let response = agent()
        .post(&format!("{url}/api/v1/archive"))
        .header("Authorization", &format!("Bearer {TOKEN}"))
        .header("Content-Type", threatmesh_node::api::archive::MEDIA_TYPE)
        .send(archive)
        .expect("import answered");
    let text = response.into_body().read_to_string().expect("report read");
    serde_json::from_str(&text).expect("a JSON report")
}

fn summary(times: &mut [Duration]) -> String {
    times.sort();
    format!(
        "min {:.2} s, median {:.2} s, max {:.2} s ({} runs)",
        times[0].as_secs_f64(),
        times[times.len() / 2].as_secs_f64(),
        times[times.len() - 1].as_secs_f64(),
        times.len()
    )
}

fn main() {
    let indicators: u32 = std::env::var("ARCHIVE_BENCH_INDICATORS")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(1_000_000);
    let runs: usize = std::env::var("ARCHIVE_BENCH_RUNS")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(3);
    let count = indicators.div_ceil(PER_ENTRY);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let (org, exporter, steward) = (key(1), key(2), key(3));
    let importers: Vec<SigningKey> = (0..runs)
        .map(|run| SigningKey::from_bytes(&[10 + run as u8; 32]))
        .collect();
    // One member whose nodes are the exporter and every importer.
    let mut charter = bench_charter(&org, &exporter, &steward).charter().clone();
    for key in &importers {
        charter.members[0].nodes.push(NodeCertificate::issue(
            &org,
            PublicKey::of(key),
            Timestamp(1),
            Timestamp(u64::MAX),
        ));
    }
    let mut charter = SignedCharter::propose(charter).expect("valid charter");
    charter.sign(&steward);

    let dir = tempfile::tempdir().expect("temporary directory");
    let (store, url) = node(&runtime, exporter.clone(), &charter, dir.path());
    let signed = entries(&exporter, &charter, count);
    for entry in &signed {
        store
            .ingest(entry, PublicKey::of(&org), NOW)
            .expect("ingest succeeds");
    }
    drop(signed);
    println!(
        "archive: {} indicators in {count} entries of {PER_ENTRY}",
        u64::from(count) * u64::from(PER_ENTRY)
    );

    let mut export_times = Vec::new();
    let mut archive = Vec::new();
    for _ in 0..runs {
        let start = Instant::now();
        archive = export(&url);
        export_times.push(start.elapsed());
    }
    let mut decoder = Decoder::new();
    decoder.feed(&archive);
    let mut frames = 0;
    while let Some(framed) = decoder.next_frame().expect("a sound archive") {
        frames += usize::from(matches!(framed.frame, Frame::Entry(_)));
    }
    decoder.finish().expect("a whole archive");
    assert_eq!(frames, count as usize);
    println!(
        "export: {} ({:.1} MB)",
        summary(&mut export_times),
        archive.len() as f64 / 1e6
    );

    let mut import_times = Vec::new();
    let mut again_times = Vec::new();
    let mut dirs = Vec::new();
    for key in importers {
        let dir = tempfile::tempdir().expect("temporary directory");
        let (store, url) = node(&runtime, key, &charter, dir.path());
        let start = Instant::now();
        let report = import(&url, &archive);
        import_times.push(start.elapsed());
        assert_eq!(report["complete"], true, "{report}");
        assert_eq!(report["entries"]["new"], u64::from(count), "{report}");
        let start = Instant::now();
        let report = import(&url, &archive);
        again_times.push(start.elapsed());
        assert_eq!(report["entries"]["known"], u64::from(count), "{report}");
        assert_eq!(
            store.stats().expect("stats").entries,
            u64::from(count),
            "every entry stored"
        );
        dirs.push(dir);
    }
    println!("import into an empty node: {}", summary(&mut import_times));
    println!("import again (all known): {}", summary(&mut again_times));
}
