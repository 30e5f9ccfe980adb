//! MISP feed benchmark at 1,000,000 indicators (1,000 entries of 1,000): a poll with
//! nothing new (`If-None-Match`, answered 304), the manifest right after one new entry
//! arrived, `hashes.csv` in full, and the first manifest after a start (the feed index
//! built from the store). Requests go through the router in process, so the figures are
//! the node's own cost without the network. `cargo bench -p threatmesh-node --bench
//! misp_feed` (set `MISP_FEED_BENCH_ENTRIES` for a smaller store).

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use criterion::{Criterion, criterion_group, criterion_main};
use http_body_util::BodyExt;
use threatmesh_node::api::{ApiState, router};
use threatmesh_node::store::{Options, Store};
use threatmesh_protocol::item::{Indicator, Item};
use threatmesh_protocol::testing::{bench_charter, key};
use threatmesh_protocol::{Distribution, Kind, Timestamp, Tlp, Value};
use tower::ServiceExt;

mod support;

threatmesh_node::node_allocator!();

const PER_ENTRY: u32 = 1_000;
const TOKEN: &str = "bench-token-0123456789";

fn ip(n: u32) -> String {
    let [a, b, c, d] = n.to_be_bytes();
    format!("{}.{b}.{c}.{d}", a + 11)
}

fn items(first: u32, count: u32) -> Vec<Item> {
    (first..first + count)
        .map(|n| {
            let value = Value::parse(Kind::Ipv4, &ip(n)).expect("valid");
            Item::Indicator(Indicator::new(value, Timestamp(1)))
        })
        .collect()
}

/// GETs `path` through `app`, sending `etag` as `If-None-Match`: status, ETag, body size.
async fn get(app: &axum::Router, path: &str, etag: Option<&str>) -> (StatusCode, String, usize) {
    let mut request = Request::get(path).header("authorization", TOKEN);
    if let Some(etag) = etag {
        request = request.header("if-none-match", etag);
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).expect("request"))
        .await
        .expect("answer");
    let status = response.status();
    let tag = response
        .headers()
        .get("etag")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (status, tag, bytes.len())
}

fn bench(c: &mut Criterion) {
    let entries: u32 = std::env::var("MISP_FEED_BENCH_ENTRIES")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(1_000);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("temporary directory");
    let (org, node, steward) = (key(1), key(2), key(3));
    let charter = bench_charter(&org, &node, &steward);
    let store = Store::open(dir.path(), &Options::default()).expect("store");
    store.put_charter(&charter).expect("charter stored");
    let started = Instant::now();
    let (client, publisher) = runtime.block_on(async {
        let (client, publisher) = support::start(node, &store, charter);
        for entry in 0..entries {
            publisher
                .publish(
                    Tlp::Green,
                    Distribution::Federation,
                    items(entry * PER_ENTRY, PER_ENTRY),
                )
                .await
                .expect("published");
        }
        (client, publisher)
    });
    let stats = store.stats().expect("stats");
    println!(
        "node holds {} indicators in {} entries ({:.0} s to publish)",
        stats.records,
        stats.entries,
        started.elapsed().as_secs_f64()
    );
    let app = || {
        router(ApiState::new(
            store.clone(),
            client.clone(),
            publisher.clone(),
            vec![TOKEN.into()],
        ))
    };
    let served = app();

    let started = Instant::now();
    let (status, etag, bytes) = runtime.block_on(get(&served, "/misp/feed/manifest.json", None));
    assert_eq!(status, StatusCode::OK);
    println!(
        "first manifest after a start: {:.0} ms, {bytes} bytes (index built from the store)",
        started.elapsed().as_secs_f64() * 1e3
    );
    let (status, _, bytes) =
        runtime.block_on(get(&served, "/misp/feed/manifest.json", Some(&etag)));
    assert_eq!((status, bytes), (StatusCode::NOT_MODIFIED, 0));

    let mut group = c.benchmark_group("misp_feed");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    group.bench_function("poll with nothing new (304)", |b| {
        b.iter(|| {
            let (status, _, _) =
                runtime.block_on(get(&served, "/misp/feed/manifest.json", Some(&etag)));
            assert_eq!(status, StatusCode::NOT_MODIFIED);
        });
    });
    let mut next = entries * PER_ENTRY;
    group.bench_function("manifest after one new entry (catch-up and append)", |b| {
        b.iter_custom(|iterations| {
            let mut spent = Duration::ZERO;
            for _ in 0..iterations {
                runtime
                    .block_on(publisher.publish(
                        Tlp::Green,
                        Distribution::Federation,
                        items(next, 1),
                    ))
                    .expect("published");
                next += 1;
                let started = Instant::now();
                let (status, _, _) =
                    runtime.block_on(get(&served, "/misp/feed/manifest.json", None));
                spent += started.elapsed();
                assert_eq!(status, StatusCode::OK);
            }
            spent
        });
    });
    group.bench_function("hashes.csv in full", |b| {
        b.iter(|| {
            let (status, _, _) = runtime.block_on(get(&served, "/misp/feed/hashes.csv", None));
            assert_eq!(status, StatusCode::OK);
        });
    });
    group.sample_size(10);
    group.bench_function("first manifest after a start (index built)", |b| {
        b.iter_custom(|iterations| {
            let mut spent = Duration::ZERO;
            for _ in 0..iterations {
                let fresh = app();
                let started = Instant::now();
                let (status, _, _) =
                    runtime.block_on(get(&fresh, "/misp/feed/manifest.json", None));
                spent += started.elapsed();
                assert_eq!(status, StatusCode::OK);
            }
            spent
        });
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
