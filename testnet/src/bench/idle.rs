//! Idle: what a federation costs each node when nobody publishes.
//!
//! `up` starts the federation and nothing is published. After `--settle-seconds` (the
//! connections, their first sync rounds and identify exchanges are behind it), each node
//! is read twice, `--window-seconds` apart (40 unless given): its status (peers, byte
//! counters) and its process in `/proc` (CPU time as `utime + stime` in clock ticks,
//! resident memory). From the differences, per node:
//!
//! - bytes per second in and out on its peer connections, above TCP: everything the node
//!   exchanged, Noise, yamux and protocol negotiation included (the node's own counters,
//!   exact);
//! - CPU milliseconds per second of its process (resolution: one clock tick over the
//!   window, 0.25 ms/s for 40 s at the usual 100 ticks a second);
//! - peers held, sampled at the start and the end of the window;
//! - where the bytes went: the sync protocol's frames (counted by the node, exact); ping
//!   and identify (counted by their events, bytes estimated: a ping carries 32 bytes each
//!   way and every peer pings this node as often as it pings them; an identify message
//!   sent is taken to be as large as the ones received, the nodes running the same
//!   software); and the rest, which is gossipsub (control messages only, at rest) plus
//!   the framing of every protocol (negotiation, yamux headers and window updates, Noise).
//!
//! Each measure is summarised over the nodes as mean, median and max. Reading a node's
//! status costs it a little CPU, twice per window; the testnet's own CPU is not counted.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use serde::Serialize;
use serde_json::Value;
use threatmesh_node::network::PING_PAYLOAD_BYTES;

use super::{BenchArgs, report};
use crate::{Node, get, up};

/// How long the measurement lasts unless `--window-seconds` says otherwise: long enough
/// for a few rounds of every periodic exchange (sync every 10 s, pings every 15 s).
const WINDOW_SECONDS: u64 = 40;

/// One node read at one moment.
struct Reading {
    at: Instant,
    /// `utime + stime` of its process, in clock ticks.
    cpu_ticks: u64,
    rss_bytes: u64,
    peers: u64,
    /// The `network` object of its status: the counters.
    network: Value,
}

/// Bytes per second one way and the other.
#[derive(Debug, Clone, Copy, Serialize)]
struct Flow {
    in_per_second: f64,
    out_per_second: f64,
}

/// What one node cost over the window.
#[derive(Debug, Serialize)]
struct NodeIdle {
    name: String,
    /// The window as this node was read (start to end reading).
    seconds: f64,
    /// Everything on its peer connections, above TCP.
    transport: Flow,
    cpu_ms_per_second: f64,
    peers_start: u64,
    peers_end: u64,
    rss_mib: f64,
    /// Sync protocol frames (exact).
    sync: Flow,
    /// Ping payloads (estimated from the pings this node sent).
    ping: Flow,
    /// Identify messages (estimated from their count and the size of those received).
    identify: Flow,
    /// The rest of the transport's bytes: gossipsub and every protocol's framing.
    rest: Flow,
    /// Pings this node sent and had answered in the window.
    pings: u64,
    /// Identify messages received and sent in the window.
    identify_received: u64,
    identify_sent: u64,
}

/// One measure over the nodes.
#[derive(Debug, Serialize)]
struct Measure {
    name: &'static str,
    unit: &'static str,
    mean: f64,
    median: f64,
    max: f64,
}

#[derive(Debug, Serialize)]
struct Report {
    scenario: &'static str,
    nodes: usize,
    settle_seconds: u64,
    window_seconds: u64,
    clock_ticks_per_second: u64,
    measures: Vec<Measure>,
    per_node: Vec<NodeIdle>,
}

pub(super) fn run(args: &BenchArgs) -> Result<()> {
    if args.up.nodes < 2 {
        bail!("idle needs at least 2 nodes");
    }
    let window_seconds = args.window_seconds.unwrap_or(WINDOW_SECONDS);
    if window_seconds == 0 {
        bail!("--window-seconds: at least 1");
    }
    let ticks_per_second = getconf("CLK_TCK", 100);
    let page_bytes = getconf("PAGESIZE", 4096);
    let testnet = up(&args.up)?;
    let nodes = &testnet.nodes;
    println!(
        "nothing published: settling for {} s, then measuring for {window_seconds} s",
        args.settle_seconds
    );
    std::thread::sleep(Duration::from_secs(args.settle_seconds));
    let start = read_all(nodes, page_bytes)?;
    std::thread::sleep(Duration::from_secs(window_seconds));
    let end = read_all(nodes, page_bytes)?;
    let per_node = nodes
        .iter()
        .zip(start.iter().zip(&end))
        .map(|(node, (start, end))| measure(node, start, end, ticks_per_second))
        .collect::<Result<Vec<_>>>()?;
    let report = Report {
        scenario: "idle",
        nodes: nodes.len(),
        settle_seconds: args.settle_seconds,
        window_seconds,
        clock_ticks_per_second: ticks_per_second,
        measures: measures(&per_node),
        per_node,
    };
    let folder = super::folder(args);
    report::write(&folder, "idle", &report, &markdown(&report))?;
    let find = |name: &str| report.measures.iter().find(|measure| measure.name == name);
    if let (Some(bytes_in), Some(bytes_out), Some(cpu), Some(peers)) = (
        find("in"),
        find("out"),
        find("CPU"),
        find("peers (start and end)"),
    ) {
        println!(
            "idle, {} nodes, {window_seconds} s: per node (mean) {:.2} KiB/s in, {:.2} KiB/s out, \
             {:.2} ms/s CPU, {:.1} peers",
            report.nodes, bytes_in.mean, bytes_out.mean, cpu.mean, peers.mean
        );
    }
    println!("report in {}", folder.display());
    Ok(())
}

/// Every node read once, in order.
fn read_all(nodes: &[Node], page_bytes: u64) -> Result<Vec<Reading>> {
    nodes.iter().map(|node| read(node, page_bytes)).collect()
}

fn read(node: &Node, page_bytes: u64) -> Result<Reading> {
    let status = get(node, "/api/v1/status")?;
    let path = format!("/proc/{}/stat", node.child.id());
    let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    // Field 2, the command name, is in parentheses and may hold spaces: count the fields
    // after its closing one, which is field 3.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let field = |number: usize| -> Result<u64> {
        fields
            .get(number - 3)
            .and_then(|field| field.parse().ok())
            .with_context(|| format!("field {number} of {path}"))
    };
    Ok(Reading {
        at: Instant::now(),
        cpu_ticks: field(14)? + field(15)?,
        rss_bytes: field(24)? * page_bytes,
        peers: status["peers"].as_u64().context("status without peers")?,
        network: status["network"].clone(),
    })
}

/// The counter `name` of a status's `network` object.
fn counter(network: &Value, name: &str) -> Result<u64> {
    network[name]
        .as_u64()
        .with_context(|| format!("status without network.{name}: a node older than the bench"))
}

fn measure(node: &Node, start: &Reading, end: &Reading, ticks_per_second: u64) -> Result<NodeIdle> {
    let seconds = end.at.duration_since(start.at).as_secs_f64();
    let delta = |name: &str| -> Result<u64> {
        Ok(counter(&end.network, name)?.saturating_sub(counter(&start.network, name)?))
    };
    let per_second = |bytes: f64| bytes / seconds;
    let flow = |received: f64, sent: f64| Flow {
        in_per_second: per_second(received),
        out_per_second: per_second(sent),
    };
    let transport = (
        delta("transport_bytes_received")? as f64,
        delta("transport_bytes_sent")? as f64,
    );
    let sync = (
        delta("sync_bytes_received")? as f64,
        delta("sync_bytes_sent")? as f64,
    );
    let pings = delta("pings")?;
    // This node's pings and their answers, and as many pings from peers and our answers.
    let ping = (2 * pings * PING_PAYLOAD_BYTES) as f64;
    let (identify_received, identify_sent) = (delta("identify_received")?, delta("identify_sent")?);
    // A message sent is taken to be the mean size of all those received so far.
    let received_ever = counter(&end.network, "identify_received")?;
    let mean_identify =
        counter(&end.network, "identify_received_bytes")? as f64 / received_ever.max(1) as f64;
    let identify = (
        delta("identify_received_bytes")? as f64,
        identify_sent as f64 * mean_identify,
    );
    let rest = (
        (transport.0 - sync.0 - ping - identify.0).max(0.0),
        (transport.1 - sync.1 - ping - identify.1).max(0.0),
    );
    let ticks = end.cpu_ticks.saturating_sub(start.cpu_ticks);
    Ok(NodeIdle {
        name: node.name.clone(),
        seconds,
        transport: flow(transport.0, transport.1),
        cpu_ms_per_second: ticks as f64 * 1000.0 / ticks_per_second as f64 / seconds,
        peers_start: start.peers,
        peers_end: end.peers,
        rss_mib: end.rss_bytes as f64 / 1_048_576.0,
        sync: flow(sync.0, sync.1),
        ping: flow(ping, ping),
        identify: flow(identify.0, identify.1),
        rest: flow(rest.0, rest.1),
        pings,
        identify_received,
        identify_sent,
    })
}

/// Every measure of the report, over the nodes.
fn measures(nodes: &[NodeIdle]) -> Vec<Measure> {
    let kib = |pick: fn(&NodeIdle) -> f64| -> Vec<f64> {
        nodes.iter().map(|node| pick(node) / 1024.0).collect()
    };
    let plain = |pick: fn(&NodeIdle) -> f64| -> Vec<f64> { nodes.iter().map(pick).collect() };
    let peers: Vec<f64> = nodes
        .iter()
        .flat_map(|node| [node.peers_start as f64, node.peers_end as f64])
        .collect();
    vec![
        summarise("in", "KiB/s", kib(|node| node.transport.in_per_second)),
        summarise("out", "KiB/s", kib(|node| node.transport.out_per_second)),
        summarise(
            "in + out",
            "KiB/s",
            kib(|node| node.transport.in_per_second + node.transport.out_per_second),
        ),
        summarise("CPU", "ms/s", plain(|node| node.cpu_ms_per_second)),
        summarise("peers (start and end)", "peers", peers),
        summarise("resident memory", "MiB", plain(|node| node.rss_mib)),
        summarise("sync in", "KiB/s", kib(|node| node.sync.in_per_second)),
        summarise("sync out", "KiB/s", kib(|node| node.sync.out_per_second)),
        summarise(
            "ping, each way (estimated)",
            "KiB/s",
            kib(|node| node.ping.in_per_second),
        ),
        summarise(
            "identify in (estimated)",
            "KiB/s",
            kib(|node| node.identify.in_per_second),
        ),
        summarise(
            "identify out (estimated)",
            "KiB/s",
            kib(|node| node.identify.out_per_second),
        ),
        summarise(
            "gossipsub and framing in (the rest)",
            "KiB/s",
            kib(|node| node.rest.in_per_second),
        ),
        summarise(
            "gossipsub and framing out (the rest)",
            "KiB/s",
            kib(|node| node.rest.out_per_second),
        ),
    ]
}

fn summarise(name: &'static str, unit: &'static str, mut values: Vec<f64>) -> Measure {
    values.sort_by(f64::total_cmp);
    let count = values.len();
    let median = match count {
        0 => 0.0,
        _ if count % 2 == 1 => values[count / 2],
        _ => (values[count / 2 - 1] + values[count / 2]) / 2.0,
    };
    Measure {
        name,
        unit,
        mean: values.iter().sum::<f64>() / count.max(1) as f64,
        median,
        max: values.last().copied().unwrap_or(0.0),
    }
}

fn markdown(report: &Report) -> String {
    let rows: Vec<Vec<String>> = report
        .measures
        .iter()
        .map(|measure| {
            let decimals = if measure.unit == "peers" { 1 } else { 2 };
            vec![
                measure.name.to_owned(),
                measure.unit.to_owned(),
                format!("{:.decimals$}", measure.mean),
                format!("{:.decimals$}", measure.median),
                format!("{:.decimals$}", measure.max),
            ]
        })
        .collect();
    format!(
        "{} nodes, nothing published. After {} s of rest, each node read at the start and \
         the end of a {} s window: bytes on its peer connections above TCP (Noise, yamux and \
         negotiation included), CPU time of its process ({} clock ticks a second), peers, \
         resident memory at the end. Per node, then mean, median and max over the nodes.\n\n\
         Where the bytes went: sync frames are counted exactly by the node; ping and \
         identify are estimated from their counts (32 bytes each way per ping, peers \
         pinging as often as the node does; identify messages sent as large as those \
         received); the rest is gossipsub and the framing of every protocol.\n\n{}",
        report.nodes,
        report.settle_seconds,
        report.window_seconds,
        report.clock_ticks_per_second,
        report::table(&["measure", "unit", "mean", "median", "max"], &rows),
    )
}

/// A system value as `getconf NAME` prints it (`CLK_TCK`, `PAGESIZE`), or `fallback`.
pub(crate) fn getconf(name: &str, fallback: u64) -> u64 {
    Command::new("getconf")
        .arg(name)
        .output()
        .ok()
        .filter(|output| output.status.success())
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .filter(|value| *value > 0)
        .unwrap_or(fallback)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_an_even_count_is_the_mean_of_the_middle_two() {
        let measure = summarise("x", "u", vec![4.0, 1.0, 3.0, 2.0]);
        assert_eq!((measure.mean, measure.median, measure.max), (2.5, 2.5, 4.0));
        let measure = summarise("x", "u", vec![5.0, 1.0, 3.0]);
        assert_eq!(measure.median, 3.0);
    }
}
