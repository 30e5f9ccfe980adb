//! HTTP API benchmark: bulk lookup of 10,000 values, single lookup latency, and the
//! resident memory of an idle node. `cargo bench -p threatmesh-node --bench api`.
//!
//! The node under test holds 100,000 ipv4 indicators. Requests go over real HTTP on
//! loopback from one client thread, so the figures include request encoding and parsing
//! on both sides. Idle memory is measured on the real `threatmesh` binary.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use threatmesh_test_support::process::Launch;

use threatmesh_node::api::{ApiState, router, serve};
use threatmesh_node::store::{Options, Store};
use threatmesh_protocol::item::{Indicator, Item};
use threatmesh_protocol::testing::{bench_charter, ipv4, key};
use threatmesh_protocol::{Distribution, Kind, Timestamp, Tlp, Value};

mod support;

threatmesh_node::node_allocator!();

const HELD: u32 = 100_000;
const BULK: u32 = 10_000;
const TOKEN: &str = "bench-token-0123456789";

fn percentile(sorted: &[Duration], fraction: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * fraction).round() as usize;
    sorted[index].as_secs_f64() * 1e6
}

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("temporary directory");
    let (org, node, steward) = (key(1), key(2), key(3));
    let charter = bench_charter(&org, &node, &steward);
    let store = Store::open(dir.path(), &Options::default()).expect("store");
    store.put_charter(&charter).expect("charter stored");
    let api = runtime.block_on(async {
        let (client, publisher) = support::start(node, &store, charter);
        let items: Vec<Item> = (0..HELD)
            .map(|n| {
                let value = Value::parse(Kind::Ipv4, &ipv4(n)).expect("valid");
                Item::Indicator(Indicator::new(value, Timestamp(1)))
            })
            .collect();
        publisher
            .publish(Tlp::Green, Distribution::Federation, items)
            .await
            .expect("published");
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
    println!(
        "node holds {} indicators",
        store.stats().expect("stats").records
    );

    let agent: ureq::Agent = ureq::Agent::config_builder().build().into();
    let auth = format!("Bearer {TOKEN}");
    // Half known, half unknown.
    let values: Vec<String> = (0..BULK)
        .map(|n| {
            if n % 2 == 0 {
                ipv4(n * 7 % HELD)
            } else {
                ipv4(HELD + n)
            }
        })
        .collect();
    let body = serde_json::json!({ "values": values });
    let rounds = 20;
    let started = Instant::now();
    for _ in 0..rounds {
        let mut response = agent
            .post(&format!("{api}/api/v1/lookup"))
            .header("Authorization", &auth)
            .send_json(&body)
            .expect("bulk lookup");
        let answer: serde_json::Value = response.body_mut().read_json().expect("json");
        assert_eq!(
            answer["found"].as_array().map(Vec::len),
            Some((BULK / 2) as usize)
        );
    }
    let elapsed = started.elapsed();
    println!(
        "bulk lookup of {BULK} values over HTTP: {:.1} ms per request, {:.0} values/s",
        elapsed.as_secs_f64() * 1000.0 / f64::from(rounds),
        f64::from(BULK * rounds) / elapsed.as_secs_f64()
    );

    let mut latencies = Vec::new();
    for n in 0..2_000u32 {
        let url = format!("{api}/api/v1/indicators/ipv4/{}", ipv4(n * 13 % HELD));
        let started = Instant::now();
        let mut response = agent
            .get(&url)
            .header("Authorization", &auth)
            .call()
            .expect("lookup");
        let _ = response.body_mut().read_to_string().expect("body");
        latencies.push(started.elapsed());
    }
    latencies.sort();
    println!(
        "single lookup over HTTP (keep-alive): p50 {:.0} µs, p99 {:.0} µs",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99)
    );
    drop(runtime);

    idle_memory().context("measuring an idle node's memory")
}

/// Starts the real binary with an empty store and reports its resident memory once idle.
fn idle_memory() -> anyhow::Result<()> {
    let binary = env!("CARGO_BIN_EXE_threatmesh");
    let dir = tempfile::tempdir().expect("temporary directory");
    let run = |args: &[&str]| {
        let output = Command::new(binary)
            .current_dir(dir.path())
            .args(args)
            .output()
            .expect("runs");
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    run(&["key", "new", "steward.key"]);
    run(&[
        "init",
        "--dir",
        "n",
        "--org-name",
        "CERT-N",
        "--country",
        "XX",
        "--api-listen",
        "127.0.0.1:0",
        "--listen",
        "/ip4/127.0.0.1/tcp/0",
    ]);
    run(&[
        "charter",
        "new",
        "--name",
        "idle",
        "--steward",
        "steward.key",
        "--member",
        "n/member.json",
        "--out",
        "genesis.json",
    ]);
    run(&["charter", "sign", "--key", "steward.key", "genesis.json"]);
    let federation = run(&["charter", "verify", "genesis.json"])
        .lines()
        .find_map(|line| line.strip_prefix("federation: ").map(str::to_owned))
        .expect("federation id");
    // A node that never serves, or dies while settling, is an error, not "0 MiB".
    let mut node = Launch::new(binary, dir.path(), "n", &federation)
        .start()
        .context("starting the idle node")?;
    // Let start-up work settle before measuring.
    std::thread::sleep(Duration::from_secs(3));
    if let Some(status) = node.child.try_wait()? {
        bail!("the idle node exited with {status} while settling");
    }
    let pid = node.child.id();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let field = |name: &str| {
        status
            .lines()
            .find(|line| line.starts_with(name))
            .and_then(|line| line.split_whitespace().nth(1))
            .and_then(|kib| kib.parse::<u64>().ok())
            .with_context(|| format!("no {name} in /proc/{pid}/status"))
    };
    println!(
        "idle node (real binary, empty store): resident {} MiB, peak {} MiB",
        field("VmRSS:")? / 1024,
        field("VmHWM:")? / 1024
    );
    Ok(())
}
