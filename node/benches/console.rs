//! Web console benchmark: how long each page takes to answer on a node holding 1,000,000
//! indicators, and a search of 1,000 pasted values. `cargo bench -p threatmesh-node
//! --bench console`.
//!
//! The node under test is the real router on real HTTP over loopback, as a browser
//! reaches it (a session cookie, form posts with the page's form token), with the node's
//! defaults (the TAXII indexer is not running: the console does not use it). The store
//! holds 100 entries of 10,000 ipv4 indicators; Recent's filter by kind matches every
//! entry, and its filter by TLP matches none, so it reads until its time budget ends.
//! Each page is asked once (cold: the time is printed) and then 50 times; the figures are
//! the median and the 95th percentile of the time to the whole body.

use std::time::{Duration, Instant};

use threatmesh_node::api::{ApiState, router, serve};
use threatmesh_node::store::{Options, Store};
use threatmesh_protocol::item::{Indicator, Item};
use threatmesh_protocol::testing::{bench_charter, key};
use threatmesh_protocol::{Distribution, Kind, Timestamp, Tlp, Value};

mod support;

threatmesh_node::node_allocator!();

const ENTRIES: u32 = 100;
const PER_ENTRY: u32 = 10_000;
const SEARCHED: u32 = 1_000;
const ROUNDS: usize = 50;
const TOKEN: &str = "bench-token-0123456789";

fn ip(n: u32) -> String {
    let [a, b, c, d] = n.to_be_bytes();
    format!("{}.{b}.{c}.{d}", 10 + a)
}

/// Median and 95th percentile, in ms.
fn spread(mut times: Vec<Duration>) -> (f64, f64) {
    times.sort();
    let at = |fraction: f64| {
        let index = ((times.len() as f64 - 1.0) * fraction).round() as usize;
        times[index].as_secs_f64() * 1000.0
    };
    (at(0.5), at(0.95))
}

/// The page's form token.
fn csrf(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").expect("a form token") + 19;
    page[at..at + 64].to_owned()
}

fn main() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("temporary directory");
    let (org, node, steward) = (key(1), key(2), key(3));
    let charter = bench_charter(&org, &node, &steward);
    let store = Store::open(dir.path(), &Options::default()).expect("store");
    store.put_charter(&charter).expect("charter stored");
    let started = Instant::now();
    let base = runtime.block_on(async {
        let (client, publisher) = support::start(node, &store, charter);
        for entry in 0..ENTRIES {
            let items: Vec<Item> = (0..PER_ENTRY)
                .map(|n| {
                    let value =
                        Value::parse(Kind::Ipv4, &ip(entry * PER_ENTRY + n)).expect("valid");
                    Item::Indicator(Indicator::new(value, Timestamp(1)))
                })
                .collect();
            publisher
                .publish(Tlp::Green, Distribution::Federation, items)
                .await
                .expect("published");
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("listen");
        let address = listener.local_addr().expect("address");
        let state = ApiState::new(store.clone(), client, publisher, vec![TOKEN.into()]);
        tokio::spawn(threatmesh_node::api::keep_console_activity(state.clone()));
        tokio::spawn(serve(listener, router(state), std::future::pending()));
        format!("http://{address}")
    });
    let stats = store.stats().expect("stats");
    println!(
        "node holds {} indicators in {} entries ({:.0} s to publish)",
        stats.records,
        stats.entries,
        started.elapsed().as_secs_f64()
    );

    let agent: ureq::Agent = ureq::Agent::config_builder()
        .max_redirects(0)
        .http_status_as_error(false)
        .build()
        .into();
    let signed_in = agent
        .post(&format!("{base}/ui/signin"))
        .content_type("application/x-www-form-urlencoded")
        .send(format!("token={TOKEN}"))
        .expect("sign-in");
    let cookie = signed_in
        .headers()
        .get("set-cookie")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .expect("a session cookie")
        .to_owned();
    let get = |path: &str| {
        let started = Instant::now();
        let mut response = agent
            .get(&format!("{base}{path}"))
            .header("Cookie", &cookie)
            .call()
            .expect("page");
        assert_eq!(response.status(), 200, "{path}");
        let body = response.body_mut().read_to_string().expect("body");
        (started.elapsed(), body)
    };
    let form = csrf(&get("/ui/search").1);
    for path in [
        "/ui/overview",
        "/ui/search",
        "/ui/recent",
        "/ui/recent?kind=ipv4",
        "/ui/recent?tlp=red",
        "/ui/publish",
        "/ui/activity",
    ] {
        // The first answer is cold: Recent decodes the entries it has not summarised.
        let (first, _) = get(path);
        let times: Vec<Duration> = (0..ROUNDS).map(|_| get(path).0).collect();
        let (p50, p95) = spread(times);
        println!(
            "GET {path}: first {:.1} ms, then p50 {p50:.1} ms, p95 {p95:.1} ms",
            first.as_secs_f64() * 1000.0
        );
    }

    // A search of 1,000 values, half held: one per line, as pasted.
    let pasted: String = (0..SEARCHED)
        .map(|n| {
            if n % 2 == 0 {
                ip(n * 997 % (ENTRIES * PER_ENTRY))
            } else {
                format!("192.0.2.{}", n % 250)
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let body = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("csrf", &form)
        .append_pair("values", &pasted)
        .finish();
    let search = || {
        let started = Instant::now();
        let mut response = agent
            .post(&format!("{base}/ui/search"))
            .header("Cookie", &cookie)
            .content_type("application/x-www-form-urlencoded")
            .send(body.as_str())
            .expect("search");
        assert_eq!(response.status(), 200);
        let page = response.body_mut().read_to_string().expect("body");
        (started.elapsed(), page)
    };
    let (_, page) = search();
    assert_eq!(
        page.matches("class=\"result\"").count(),
        (SEARCHED / 2) as usize,
        "half the values are held"
    );
    let times: Vec<Duration> = (0..10).map(|_| search().0).collect();
    let (p50, p95) = spread(times);
    println!("POST /ui/search of {SEARCHED} values: p50 {p50:.1} ms, p95 {p95:.1} ms");
    let times: Vec<Duration> = (0..10)
        .map(|_| get("/ui/search/export?format=csv").0)
        .collect();
    let (p50, p95) = spread(times);
    println!("GET /ui/search/export?format=csv of that result: p50 {p50:.1} ms, p95 {p95:.1} ms");
}
