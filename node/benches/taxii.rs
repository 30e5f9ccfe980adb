//! TAXII 2.1 server benchmark, server side: POST ingest, paging a whole collection, and
//! single-object lookup, each over real HTTP on loopback from one client thread, with a
//! collection of 10,000 and then 100,000 indicators. `cargo bench -p threatmesh-node
//! --bench taxii` (set `TAXII_BENCH_SIZES`, sizes in increasing order separated by
//! commas, e.g. `10000,100000,1000000`, to measure at other sizes, and
//! `TAXII_BENCH_LOOKUPS` for another number of lookups than 500).
//!
//! The client is Rust (ureq and serde_json), so the figures are the server's plus a fast
//! client's parsing; `scripts/bench-taxii.py` measures the same through Python against
//! medallion. Paging and lookup should not slow down as the collection grows: compare the
//! two sizes.

use std::time::{Duration, Instant};

use threatmesh_node::api::{ApiState, router, serve};
use threatmesh_node::store::{Options, Store};
use threatmesh_protocol::testing::{bench_charter, key};

mod support;

threatmesh_node::node_allocator!();

const TOKEN: &str = "bench-token-0123456789";
const TAXII: &str = "application/taxii+json;version=2.1";
/// Objects per POST and per page.
const BATCH: u32 = 1000;
/// Objects paged through at each size at least, in whole passes over the collection.
const PAGED_AT_LEAST: u32 = 200_000;

fn stix_id(n: u32) -> String {
    format!("indicator--00000000-0000-4000-8000-{n:012}")
}

fn indicator(n: u32) -> serde_json::Value {
    let [_, b, c, d] = n.to_be_bytes();
    serde_json::json!({
        "type": "indicator", "spec_version": "2.1", "id": stix_id(n),
        "created": "2026-01-01T00:00:00.000Z", "modified": "2026-01-01T00:00:00.000Z",
        "pattern": format!("[ipv4-addr:value = '77.{b}.{c}.{d}']"), "pattern_type": "stix",
        "valid_from": "2026-01-01T00:00:00Z", "indicator_types": ["malicious-activity"],
    })
}

fn percentile(sorted: &[Duration], fraction: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * fraction).round() as usize;
    sorted[index].as_secs_f64() * 1000.0
}

struct Client {
    agent: ureq::Agent,
    auth: String,
    own: String,
    shared: String,
}

impl Client {
    fn get(&self, url: &str) -> serde_json::Value {
        let mut response = self
            .agent
            .get(url)
            .header("Authorization", &self.auth)
            .header("Accept", TAXII)
            .call()
            .expect("GET");
        response
            .body_mut()
            .with_config()
            .limit(1 << 30)
            .read_json()
            .expect("JSON")
    }

    fn post(&self, objects: Vec<serde_json::Value>) {
        let body = serde_json::json!({ "objects": objects }).to_string();
        let mut response = self
            .agent
            .post(&format!("{}objects/", self.own))
            .header("Authorization", &self.auth)
            .header("Accept", TAXII)
            .header("Content-Type", TAXII)
            .send(body.as_bytes())
            .expect("POST");
        let status: serde_json::Value = response.body_mut().read_json().expect("status");
        assert_eq!(status["failure_count"], 0, "{status}");
    }
}

fn main() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("temporary directory");
    let (org, node, steward) = (key(1), key(2), key(3));
    let charter = bench_charter(&org, &node, &steward);
    let store = Store::open(dir.path(), &Options::default()).expect("store");
    store.put_charter(&charter).expect("charter stored");
    let api = runtime.block_on(async {
        let (client, publisher) = support::start(node, &store, charter);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("listen");
        let address = listener.local_addr().expect("address");
        let app = router(ApiState::new(
            store.clone(),
            client,
            publisher,
            vec![TOKEN.into()],
        ));
        tokio::spawn(serve(listener, app, std::future::pending()));
        format!("http://{address}")
    });
    let agent: ureq::Agent = ureq::Agent::config_builder().build().into();
    let mut client = Client {
        agent,
        auth: format!("Bearer {TOKEN}"),
        own: String::new(),
        shared: String::new(),
    };
    let collections = client.get(&format!("{api}/taxii2/root/collections/"));
    for collection in collections["collections"].as_array().expect("collections") {
        let url = format!(
            "{api}/taxii2/root/collections/{}/",
            collection["id"].as_str().expect("id")
        );
        if collection["can_write"] == true {
            client.own = url;
        } else {
            client.shared = url;
        }
    }

    let sizes: Vec<u32> = std::env::var("TAXII_BENCH_SIZES")
        .ok()
        .map(|sizes| {
            sizes
                .split(',')
                .map(|size| size.trim().parse().expect("TAXII_BENCH_SIZES: numbers"))
                .collect()
        })
        .unwrap_or_else(|| vec![10_000, 100_000]);
    let lookups: u32 = std::env::var("TAXII_BENCH_LOOKUPS")
        .ok()
        .map(|lookups| {
            lookups
                .trim()
                .parse()
                .expect("TAXII_BENCH_LOOKUPS: a number")
        })
        .unwrap_or(500);
    let mut held = 0u32;
    for size in sizes {
        let before = held;
        let started = Instant::now();
        while held < size {
            client.post((held..held + BATCH).map(indicator).collect());
            held += BATCH;
        }
        let ingest = started.elapsed();
        let added = size - before;

        // The first read after ingest indexes the new entries; measured apart.
        let started = Instant::now();
        client.get(&format!("{}objects/?limit=1", client.shared));
        let indexing = started.elapsed();

        // A small collection is paged through several times, so that its rate is not
        // taken from a tenth of a second.
        let passes = (PAGED_AT_LEAST / size).max(1);
        let started = Instant::now();
        let mut listed = 0usize;
        for _ in 0..passes {
            let mut next: Option<String> = None;
            loop {
                let url = match &next {
                    Some(next) => format!("{}objects/?limit={BATCH}&next={next}", client.shared),
                    None => format!("{}objects/?limit={BATCH}", client.shared),
                };
                let page = client.get(&url);
                listed += page["objects"].as_array().map_or(0, Vec::len);
                match page["next"].as_str() {
                    Some(cursor) if page["more"] == true => next = Some(cursor.to_owned()),
                    _ => break,
                }
            }
        }
        let paging = started.elapsed();

        let mut latencies = Vec::new();
        for n in 0..lookups {
            let id = stix_id(n.wrapping_mul(7919) % size);
            let started = Instant::now();
            let answer = client.get(&format!("{}objects/{id}/", client.shared));
            latencies.push(started.elapsed());
            assert_eq!(answer["objects"][0]["id"], id);
        }
        latencies.sort();
        println!(
            "{size} objects: POST ingest {:.0} objects/s; first read indexes {added} in {:.0} ms; \
             paging {listed} objects ({passes} passes) in pages of {BATCH}: {:.0} objects/s; \
             lookup by id p50 {:.2} ms, p99 {:.2} ms",
            f64::from(added) / ingest.as_secs_f64(),
            indexing.as_secs_f64() * 1000.0,
            listed as f64 / paging.as_secs_f64(),
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99),
        );
    }
}
