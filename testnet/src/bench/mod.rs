//! `threatmesh-testnet bench`: measurements of a running federation, written as a report.
//!
//! Propagation: entries of `--indicators` indicators each, published by random members;
//! for every entry and every node, the time from the entry's creation (the publisher
//! signs it just before storing and gossiping it) to the moment that node had checked it
//! and applied it to its store (readable there; the flush to disk follows within
//! milliseconds), both read from the nodes themselves afterwards (the `added` time each
//! node records, and the `created` time in the entry), so measuring does not disturb the
//! mesh. Both clocks are this machine's; resolution is one millisecond.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context as _, Result, bail};
use clap::Args;
use serde::Serialize;
use serde_json::json;

use super::{Node, UpArgs, get, post, up, wait};

mod catch_up;
mod churn;
pub(crate) mod idle;
mod intruder;
mod partition;
pub(crate) mod report;
mod throughput;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Scenario {
    /// Nothing published: bytes, CPU and peers of each node at rest.
    Idle,
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
    /// Every scenario above, one after the other, each in its own federation (a
    /// subdirectory of `--dir`), into one report folder.
    All,
}

impl Scenario {
    /// Every scenario `All` runs, in order.
    const EACH: [Scenario; 7] = [
        Scenario::Idle,
        Scenario::Propagation,
        Scenario::Throughput,
        Scenario::CatchUp,
        Scenario::Churn,
        Scenario::Partition,
        Scenario::Intruder,
    ];

    /// Its name on the command line, which is also its report's file stem.
    fn name(self) -> String {
        clap::ValueEnum::to_possible_value(&self)
            .map_or_else(|| format!("{self:?}"), |value| value.get_name().to_owned())
    }
}

#[derive(Debug, Clone, Args)]
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
    /// throughput: how long each rate is kept (default 10); idle: how long the
    /// measurement lasts (default 40).
    #[arg(long)]
    window_seconds: Option<u64>,
    /// idle: how long the federation rests after it is up, before the window.
    #[arg(long, default_value_t = 20)]
    settle_seconds: u64,
    /// Seed for choosing publishers, so runs can be repeated.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// Percentiles of a set of latencies, in milliseconds.
#[derive(Debug, Serialize)]
pub(crate) struct Percentiles {
    pub(crate) count: usize,
    pub(crate) p50: u64,
    pub(crate) p95: u64,
    pub(crate) p99: u64,
    pub(crate) max: u64,
}

pub(crate) fn percentiles(mut values: Vec<u64>) -> Percentiles {
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
        Scenario::Idle => idle::run(args),
        Scenario::Propagation => propagation(args),
        Scenario::CatchUp => catch_up::run(args),
        Scenario::Churn => churn::run(args),
        Scenario::Intruder => intruder::run(args),
        Scenario::Partition => partition::run(args),
        Scenario::Throughput => throughput::run(args),
        Scenario::All => all(args),
    }
}

/// Runs every scenario, each on a federation of its own, into one report folder; a
/// failing scenario does not stop the others, but fails the whole run at the end.
fn all(args: &BenchArgs) -> Result<()> {
    let folder = folder(args);
    let mut failed = Vec::new();
    for (index, scenario) in Scenario::EACH.into_iter().enumerate() {
        let name = scenario.name();
        println!("\n=== {}/{}: {name} ===", index + 1, Scenario::EACH.len());
        let mut each = args.clone();
        each.scenario = scenario;
        each.up.dir = args.up.dir.join(&name);
        each.report = Some(folder.clone());
        if let Err(error) = run(&each) {
            eprintln!("{name} failed: {error:#}");
            failed.push(name);
        }
    }
    println!(
        "\nreport of every scenario: {}",
        folder.join("README.md").display()
    );
    if !failed.is_empty() {
        bail!("scenarios failed: {}", failed.join(", "));
    }
    Ok(())
}

/// The report folder: `--report`, or `<dir>/report`.
fn folder(args: &BenchArgs) -> PathBuf {
    args.report
        .clone()
        .unwrap_or_else(|| args.up.dir.join("report"))
}

fn propagation(args: &BenchArgs) -> Result<()> {
    if args.entries == 0 {
        bail!("--entries must be at least 1");
    }
    let testnet = up(&args.up)?;
    let nodes = &testnet.nodes;
    let mut random = Random::new(args.seed);
    let started = Instant::now();
    let mut publishers = HashMap::new();
    let bar = report::progress(args.entries as u64, "entries published");
    for index in 0..args.entries {
        let publisher = random.below(nodes.len());
        for id in publish(&nodes[publisher], index, args.indicators)? {
            publishers.insert(id, publisher);
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let publish_seconds = started.elapsed().as_secs_f64();
    let total = publishers.len() as u64;
    wait_for_entries(nodes, total)?;

    // id -> (created, per-node added)
    let mut created: HashMap<String, u64> = HashMap::new();
    let mut added: HashMap<String, Vec<(usize, u64)>> = HashMap::new();
    for (index, node) in nodes.iter().enumerate() {
        for (id, born, at) in entry_times(node)? {
            created.insert(id.clone(), born);
            added.entry(id).or_default().push((index, at));
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
    let folder = folder(args);
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
    let row = |name: &str, p: &Percentiles| {
        format!(
            "| {name} | {} | {} | {} | {} | {} |\n",
            p.count, p.p50, p.p95, p.p99, p.max
        )
    };
    let markdown = format!(
        "{} nodes, {} entries of {} indicators from random members.\n\n\
         Time from an entry's creation until it was checked and applied to each node's store, \
         in milliseconds (this machine's \
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
    plot_cdf(&folder.join("propagation.svg"), to_every)?;
    report::write(folder, "propagation", report, &markdown)
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
        &json!({ "tlp": "green", "items": ipv4_items(first, indicators), "ignore_warninglists": true }),
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

/// Waits until every node of `nodes` holds `total` entries (every entry published being
/// distinct, that is every one of them).
pub(crate) fn wait_for_entries<'a>(
    nodes: impl IntoIterator<Item = &'a Node> + Clone,
    total: u64,
) -> Result<()> {
    wait(&format!("every node to hold {total} entries"), || {
        for node in nodes.clone() {
            if entries_held(node)? < total {
                return Ok(false);
            }
        }
        Ok(true)
    })
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
