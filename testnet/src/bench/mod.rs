//! `threatmesh-testnet bench`: measurements of a running federation, written as a report.
//!
//! Propagation: entries of `--indicators` indicators each, published by random members;
//! for every entry and every node, the time from the entry's creation (the publisher
//! signs it just before storing and gossiping it) to the moment that node had stored it
//! durably, both read from the nodes themselves afterwards (the `added` time each node
//! records, and the `created` time in the entry), so measuring does not disturb the mesh.
//! Both clocks are this machine's; resolution is one millisecond.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context as _, Result, bail};
use clap::Args;
use serde::Serialize;
use serde_json::json;

use super::{Node, UpArgs, get, post, up, wait};

mod intruder;
mod partition;
mod report;
mod throughput;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Scenario {
    /// Entries from random publishers; time to reach every node.
    Propagation,
    /// A node offline while indicators are published; time and bytes to catch up.
    CatchUp,
    /// Random kill -9 and restart of nodes while members publish; nothing may be lost.
    Churn,
    /// A node outside the charter, with every member's address, tries to get the data.
    Intruder,
    /// Two halves cut apart, both publishing, then healed; nothing may be lost.
    Partition,
    /// Increasing publishing rates; the highest the mesh keeps without growing lag.
    Throughput,
}

#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    #[command(flatten)]
    up: UpArgs,
    /// What to measure.
    #[arg(long, value_enum, default_value = "propagation")]
    scenario: Scenario,
    /// catch-up: indicators published while the node is offline.
    #[arg(long, default_value_t = 1_000_000)]
    missed: u32,
    /// Entries to publish.
    #[arg(long, default_value_t = 50)]
    entries: usize,
    /// Indicators per entry.
    #[arg(long, default_value_t = 1_000)]
    indicators: u32,
    /// Where to write the report (default: `<dir>/report`).
    #[arg(long)]
    report: Option<PathBuf>,
    /// throughput: the rates to try, in entries per second (each of `--indicators`).
    #[arg(long, value_delimiter = ',', default_value = "1,2,4,8,16")]
    rates: Vec<f64>,
    /// throughput: how long each rate is kept.
    #[arg(long, default_value_t = 10)]
    window_seconds: u64,
    /// Seed for choosing publishers, so runs can be repeated.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// Percentiles of a set of latencies, in milliseconds.
#[derive(Debug, Serialize)]
struct Percentiles {
    count: usize,
    p50: u64,
    p95: u64,
    p99: u64,
    max: u64,
}

fn percentiles(mut values: Vec<u64>) -> Percentiles {
    values.sort_unstable();
    let at = |fraction: f64| {
        let index = ((values.len().saturating_sub(1)) as f64 * fraction).round() as usize;
        values.get(index).copied().unwrap_or(0)
    };
    Percentiles {
        count: values.len(),
        p50: at(0.50),
        p95: at(0.95),
        p99: at(0.99),
        max: values.last().copied().unwrap_or(0),
    }
}

#[derive(Debug, Serialize)]
struct Report {
    scenario: &'static str,
    nodes: usize,
    entries: usize,
    indicators_per_entry: u32,
    /// Per entry: from creation to stored on every node.
    to_every_node_ms: Percentiles,
    /// Per entry and node: from creation to stored on that node (publisher excluded).
    to_each_node_ms: Percentiles,
    publish_seconds: f64,
}

pub(crate) fn run(args: &BenchArgs) -> Result<()> {
    match args.scenario {
        Scenario::Propagation => propagation(args),
        Scenario::CatchUp => catch_up(args),
        Scenario::Churn => churn(args),
        Scenario::Intruder => intruder::run(args),
        Scenario::Partition => partition::run(args),
        Scenario::Throughput => throughput::run(args),
    }
}

/// The report folder: `--report`, or `<dir>/report`.
fn folder(args: &BenchArgs) -> PathBuf {
    args.report
        .clone()
        .unwrap_or_else(|| args.up.dir.join("report"))
}

#[derive(Debug, Serialize)]
struct ChurnReport {
    scenario: &'static str,
    nodes: usize,
    entries_acknowledged: usize,
    kills: usize,
    /// From the last restart to every node holding every acknowledged entry.
    converge_seconds: f64,
    /// Acknowledged entries missing from some node at the end (must be 0).
    lost: usize,
}

fn churn(args: &BenchArgs) -> Result<()> {
    if args.up.nodes < 3 {
        bail!("churn needs at least 3 nodes");
    }
    let mut testnet = up(&args.up)?;
    let count = testnet.nodes.len();
    let mut random = args.seed.max(1);
    let mut next = move |bound: usize| {
        random ^= random << 13;
        random ^= random >> 7;
        random ^= random << 17;
        usize::try_from(random % bound as u64).unwrap_or(0)
    };
    let mut down: Option<usize> = None;
    let mut acknowledged = Vec::new();
    let mut kills = 0;
    for round in 0..args.entries {
        // Every third round, restart the node that is down and kill another.
        if round % 3 == 2 {
            if let Some(index) = down.take() {
                restart(&mut testnet, index)?;
            }
            let victim = next(count);
            kill(&mut testnet.nodes[victim])?;
            down = Some(victim);
            kills += 1;
        }
        let alive: Vec<usize> = (0..count).filter(|index| Some(*index) != down).collect();
        let publisher = alive[next(alive.len())];
        let first = u32::try_from(round)?.saturating_mul(args.indicators);
        let items = ipv4_items(first, args.indicators);
        // A node just restarted may still be starting: a refused publish is retried
        // elsewhere, and only acknowledged entries count.
        if let Ok(answer) = post(
            &testnet.nodes[publisher],
            "/api/v1/publish",
            &json!({ "tlp": "green", "items": items }),
        ) {
            for id in answer["entries"].as_array().into_iter().flatten() {
                acknowledged.push(id.as_str().unwrap_or_default().to_owned());
            }
        }
        eprint!("\rround {}/{} ({kills} kills)", round + 1, args.entries);
    }
    eprintln!();
    if let Some(index) = down.take() {
        restart(&mut testnet, index)?;
    }
    let started = Instant::now();
    let holds_all = |node: &Node| missing(node, &acknowledged);
    let converged = wait("every node to hold every acknowledged entry", || {
        for node in &testnet.nodes {
            if holds_all(node)? > 0 {
                return Ok(false);
            }
        }
        Ok(true)
    });
    let mut lost = 0;
    for node in &testnet.nodes {
        lost = lost.max(holds_all(node).unwrap_or(acknowledged.len()));
    }
    let report = ChurnReport {
        scenario: "churn",
        nodes: count,
        entries_acknowledged: acknowledged.len(),
        kills,
        converge_seconds: started.elapsed().as_secs_f64(),
        lost,
    };
    let folder = args
        .report
        .clone()
        .unwrap_or_else(|| args.up.dir.join("report"));
    std::fs::create_dir_all(&folder)?;
    std::fs::write(
        folder.join("churn.json"),
        serde_json::to_string_pretty(&report)?,
    )?;
    println!(
        "churn, {} nodes, {} kill -9 with restarts: {} entries acknowledged, {} lost, every node complete {:.1} s after the last restart",
        report.nodes,
        report.kills,
        report.entries_acknowledged,
        report.lost,
        report.converge_seconds
    );
    println!("report in {}", folder.display());
    converged
}

/// Kills a node with SIGKILL: no chance to flush or say goodbye.
fn kill(node: &mut Node) -> Result<()> {
    node.child.kill().context("kill -9")?;
    node.child.wait().context("reaping the killed node")?;
    Ok(())
}

/// Starts a killed node again on its own directory, bootstrapping from another node.
fn restart(testnet: &mut super::Testnet, index: usize) -> Result<()> {
    // Every other node: on free ports the restarted node comes back at a new address,
    // which only its own dialling makes known.
    let bootstrap: Vec<String> = testnet
        .nodes
        .iter()
        .enumerate()
        .filter(|(other, _)| *other != index)
        .map(|(_, node)| node.p2p.clone())
        .collect();
    let old = &testnet.nodes[index];
    let node = super::start(
        &old.dir,
        &format!("node{index}"),
        old.name.clone(),
        &old.federation,
        &bootstrap,
    )?;
    testnet.nodes[index] = node;
    Ok(())
}

#[derive(Debug, Serialize)]
struct CatchUpReport {
    scenario: &'static str,
    nodes: usize,
    indicators_missed: u32,
    entries_missed: u64,
    /// From the restarted node's start to holding every entry.
    catch_up_seconds: f64,
    /// Entries' own size (their gossip payloads), in bytes.
    entries_bytes: u64,
    /// Payload bytes the node received in sync responses.
    fetched_bytes: u64,
    /// Entries received in sync responses (more than missed means some were fetched twice).
    fetched_entries: u64,
    /// fetched_bytes / entries_bytes.
    ratio: f64,
}

fn catch_up(args: &BenchArgs) -> Result<()> {
    if args.up.nodes < 2 {
        bail!("catch-up needs at least 2 nodes");
    }
    let mut testnet = up(&args.up)?;
    let last = testnet.nodes.len() - 1;
    let offline = testnet.nodes.remove(last);
    let (name, dir) = (offline.name.clone(), offline.dir.clone());
    let federation = offline.federation.clone();
    drop(super::Testnet {
        nodes: vec![offline],
    }); // SIGTERM, wait: a clean stop
    println!(
        "{name} is offline; publishing {} indicators from {}",
        args.missed, testnet.nodes[0].name
    );
    let chunk = 10_000u32;
    let mut published = 0u32;
    while published < args.missed {
        let count = chunk.min(args.missed - published);
        let items = ipv4_items(published, count);
        post(
            &testnet.nodes[0],
            "/api/v1/publish",
            &json!({ "tlp": "green", "items": items }),
        )?;
        published += count;
        eprint!(
            "
published {published}/{}",
            args.missed
        );
    }
    eprintln!();
    let entries = entries_of(&testnet.nodes[0])?;
    let total = entries.len() as u64;
    let entries_bytes: u64 = entries
        .iter()
        .map(|entry| entry["bytes"].as_u64().unwrap_or(0))
        .sum();
    let started = Instant::now();
    let bootstrap = testnet.nodes[0].p2p.clone();
    let node = super::start(
        &dir,
        &format!("node{last}"),
        name.clone(),
        &federation,
        &[bootstrap],
    )?;
    testnet.nodes.push(node);
    let restarted = testnet.nodes.last().context("no node")?;
    wait(&format!("{name} to catch up"), || {
        Ok(get(restarted, "/api/v1/status")?["store"]["entries"].as_u64() == Some(total))
    })?;
    let catch_up_seconds = started.elapsed().as_secs_f64();
    let status = get(restarted, "/api/v1/status")?;
    let fetched_bytes = status["network"]["fetched_bytes"].as_u64().unwrap_or(0);
    let report = CatchUpReport {
        scenario: "catch-up",
        nodes: testnet.nodes.len(),
        indicators_missed: args.missed,
        entries_missed: total,
        catch_up_seconds,
        entries_bytes,
        fetched_bytes,
        fetched_entries: status["network"]["fetched_entries"].as_u64().unwrap_or(0),
        ratio: fetched_bytes as f64 / entries_bytes.max(1) as f64,
    };
    let folder = args
        .report
        .clone()
        .unwrap_or_else(|| args.up.dir.join("report"));
    std::fs::create_dir_all(&folder)?;
    std::fs::write(
        folder.join("catch-up.json"),
        serde_json::to_string_pretty(&report)?,
    )?;
    println!(
        "catch-up of {} indicators ({} entries, {:.1} MiB): {:.1} s, {} entries fetched, {:.1} MiB of payloads fetched ({:.2}x the entries' size)",
        report.indicators_missed,
        report.entries_missed,
        report.entries_bytes as f64 / 1048576.0,
        report.catch_up_seconds,
        report.fetched_entries,
        report.fetched_bytes as f64 / 1048576.0,
        report.ratio
    );
    println!("report in {}", folder.display());
    Ok(())
}

fn propagation(args: &BenchArgs) -> Result<()> {
    if args.entries == 0 {
        bail!("--entries must be at least 1");
    }
    let testnet = up(&args.up)?;
    let nodes = &testnet.nodes;
    let mut random = args.seed.max(1);
    let started = Instant::now();
    let mut publishers = HashMap::new();
    for index in 0..args.entries {
        random ^= random << 13;
        random ^= random >> 7;
        random ^= random << 17;
        let publisher = usize::try_from(random % nodes.len() as u64).unwrap_or(0);
        let first = u32::try_from(index)?.saturating_mul(args.indicators);
        let items = ipv4_items(first, args.indicators);
        let answer = post(
            &nodes[publisher],
            "/api/v1/publish",
            &json!({ "tlp": "green", "items": items }),
        )?;
        for id in answer["entries"].as_array().into_iter().flatten() {
            publishers.insert(id.as_str().unwrap_or_default().to_owned(), publisher);
        }
        eprint!("\rpublished {}/{}", index + 1, args.entries);
    }
    eprintln!();
    let publish_seconds = started.elapsed().as_secs_f64();
    let total = publishers.len() as u64;
    wait("every node to hold every entry", || {
        for node in nodes {
            if get(node, "/api/v1/status")?["store"]["entries"].as_u64() != Some(total) {
                return Ok(false);
            }
        }
        Ok(true)
    })?;

    // id -> (created, per-node added)
    let mut created: HashMap<String, u64> = HashMap::new();
    let mut added: HashMap<String, Vec<(usize, u64)>> = HashMap::new();
    for (index, node) in nodes.iter().enumerate() {
        for entry in entries_of(node)? {
            let id = entry["id"].as_str().unwrap_or_default().to_owned();
            created.insert(id.clone(), entry["created"].as_u64().unwrap_or(0));
            added
                .entry(id)
                .or_default()
                .push((index, entry["added"].as_u64().unwrap_or(0)));
        }
    }
    let mut to_every = Vec::new();
    let mut to_each = Vec::new();
    for (id, times) in &added {
        let born = created.get(id).copied().unwrap_or(0);
        let publisher = publishers.get(id).copied();
        let mut slowest = 0;
        for (node, at) in times {
            let latency = at.saturating_sub(born);
            slowest = slowest.max(latency);
            if Some(*node) != publisher {
                to_each.push(latency);
            }
        }
        to_every.push(slowest);
    }
    let report = Report {
        scenario: "propagation",
        nodes: nodes.len(),
        entries: added.len(),
        indicators_per_entry: args.indicators,
        to_every_node_ms: percentiles(to_every.clone()),
        to_each_node_ms: percentiles(to_each),
        publish_seconds,
    };
    let folder = args
        .report
        .clone()
        .unwrap_or_else(|| args.up.dir.join("report"));
    write_report(&folder, &report, &to_every)?;
    println!(
        "propagation, {} nodes, {} entries of {} indicators: to every node p50 {} ms, p95 {} ms, p99 {} ms (max {} ms)",
        report.nodes,
        report.entries,
        report.indicators_per_entry,
        report.to_every_node_ms.p50,
        report.to_every_node_ms.p95,
        report.to_every_node_ms.p99,
        report.to_every_node_ms.max
    );
    println!("report in {}", folder.display());
    Ok(())
}

/// Every entry a node holds as (id, created, added), page by page, keeping only those.
fn entry_times(node: &Node) -> Result<Vec<(String, u64, u64)>> {
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = cursor.as_ref().map_or_else(
            || "/api/v1/entries?limit=10".to_owned(),
            |cursor| format!("/api/v1/entries?limit=10&cursor={cursor}"),
        );
        let page = get(node, &path)?;
        for entry in page["entries"].as_array().into_iter().flatten() {
            all.push((
                entry["id"].as_str().unwrap_or_default().to_owned(),
                entry["created"].as_u64().unwrap_or(0),
                entry["added"].as_u64().unwrap_or(0),
            ));
        }
        match page["next"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return Ok(all),
        }
    }
}

/// Every entry a node holds, with its creation and added times.
fn entries_of(node: &Node) -> Result<Vec<serde_json::Value>> {
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        // Small pages: an entry can hold 10,000 items, a few megabytes of JSON.
        let path = cursor.as_ref().map_or_else(
            || "/api/v1/entries?limit=10".to_owned(),
            |cursor| format!("/api/v1/entries?limit=10&cursor={cursor}"),
        );
        let page = get(node, &path)?;
        all.extend(page["entries"].as_array().cloned().unwrap_or_default());
        match page["next"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return Ok(all),
        }
    }
}

fn write_report(folder: &std::path::Path, report: &Report, to_every: &[u64]) -> Result<()> {
    std::fs::create_dir_all(folder).with_context(|| format!("creating {}", folder.display()))?;
    std::fs::write(
        folder.join("propagation.json"),
        serde_json::to_string_pretty(report)?,
    )?;
    let row = |name: &str, p: &Percentiles| {
        format!(
            "| {name} | {} | {} | {} | {} | {} |\n",
            p.count, p.p50, p.p95, p.p99, p.max
        )
    };
    let markdown = format!(
        "# Propagation: {} nodes, {} entries of {} indicators\n\n\
         Time from an entry's creation to its durable storage, in milliseconds (this machine's \
         clock, 1 ms resolution).\n\n\
         | measure | entries | p50 | p95 | p99 | max |\n| --- | --- | --- | --- | --- | --- |\n{}{}\n\
         Publishing took {:.1} s. CDF: `propagation.svg`.\n",
        report.nodes,
        report.entries,
        report.indicators_per_entry,
        row("to every node", &report.to_every_node_ms),
        row("to each node", &report.to_each_node_ms),
        report.publish_seconds,
    );
    std::fs::write(folder.join("README.md"), markdown)?;
    plot_cdf(&folder.join("propagation.svg"), to_every)
}

/// The cumulative distribution of "to every node" latencies, as an SVG.
fn plot_cdf(path: &std::path::Path, values: &[u64]) -> Result<()> {
    use plotters::prelude::*;
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let max = sorted.last().copied().unwrap_or(1).max(1);
    let root = SVGBackend::new(path, (640, 400)).into_drawing_area();
    root.fill(&WHITE)
        .map_err(|error| anyhow::anyhow!("plot: {error}"))?;
    let mut chart = ChartBuilder::on(&root)
        .margin(20)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0u64..max, 0f64..1f64)
        .map_err(|error| anyhow::anyhow!("plot: {error}"))?;
    chart
        .configure_mesh()
        .x_desc("ms from creation to stored on every node")
        .y_desc("fraction of entries")
        .draw()
        .map_err(|error| anyhow::anyhow!("plot: {error}"))?;
    let count = sorted.len().max(1) as f64;
    chart
        .draw_series(LineSeries::new(
            sorted
                .iter()
                .enumerate()
                .map(|(index, ms)| (*ms, (index + 1) as f64 / count)),
            &BLUE,
        ))
        .map_err(|error| anyhow::anyhow!("plot: {error}"))?;
    root.present()
        .map_err(|error| anyhow::anyhow!("plot: {error}"))?;
    Ok(())
}

/// A small seeded generator (xorshift64) for choosing publishers and victims, so runs
/// can be repeated with `--seed`.
#[derive(Debug)]
pub(crate) struct Random(u64);

impl Random {
    pub(crate) fn new(seed: u64) -> Random {
        Random(seed.max(1))
    }

    /// A number in `0..bound` (0 when `bound` is 0).
    pub(crate) fn below(&mut self, bound: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        usize::try_from(self.0 % bound.max(1) as u64).unwrap_or(0)
    }
}

/// Publishes entry number `number` (`indicators` ipv4 indicators no other entry number
/// holds) from `node`; returns the ids of the entries the node acknowledged.
pub(crate) fn publish(node: &Node, number: usize, indicators: u32) -> Result<Vec<String>> {
    let first = u32::try_from(number)?.saturating_mul(indicators);
    let answer = post(
        node,
        "/api/v1/publish",
        &json!({ "tlp": "green", "items": ipv4_items(first, indicators) }),
    )?;
    Ok(answer["entries"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|id| id.as_str().map(str::to_owned))
        .collect())
}

/// How many of `ids` the node does not hold.
pub(crate) fn missing(node: &Node, ids: &[String]) -> Result<usize> {
    let held: std::collections::HashSet<String> = entries_of(node)?
        .into_iter()
        .filter_map(|entry| entry["id"].as_str().map(str::to_owned))
        .collect();
    Ok(ids.iter().filter(|id| !held.contains(*id)).count())
}

/// How many entries the node holds, from its status.
pub(crate) fn entries_held(node: &Node) -> Result<u64> {
    get(node, "/api/v1/status")?["store"]["entries"]
        .as_u64()
        .context("status without store.entries")
}

/// `count` ipv4 indicators, distinct for distinct `first`..`first + count`, as the publish
/// API takes them.
fn ipv4_items(first: u32, count: u32) -> Vec<serde_json::Value> {
    (first..first.saturating_add(count))
        .map(|n| {
            let [a, b, c, d] = n.to_be_bytes();
            json!({ "type": "indicator", "kind": "ipv4",
                    "value": format!("{}.{b}.{c}.{d}", 10 + a % 200),
                    "valid_from": 1_700_000_000_000u64 })
        })
        .collect()
}
