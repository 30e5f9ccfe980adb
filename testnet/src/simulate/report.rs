//! The simulation's report: per run a JSON file and a Markdown section, SVG plots, and a
//! `README.md` that states the model and gathers every section in the folder.
//!
//! Each figure stands next to what it is judged against: times to every member next to
//! the latency model's bound and the physical limit for the same publisher, copies per
//! entry next to the gossip mesh degree, idle bytes per node next to the smallest
//! federation's. Goals not met are said to be not met, and nodes that never got an entry
//! are listed.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context as _, Result};
use serde::Serialize;

use super::scenarios::{CatchUp, Idle, Keeping, Mesh, Outcome, Partition, Propagation};
use super::{Scenario, Setup, SimulateArgs};
use crate::bench::percentiles;
use crate::bench::report::table;

mod plot;
mod propagation;

use propagation::propagation_text;

/// gossipsub's mesh degree D in the node: the goal for duplicates per entry.
const MESH_DEGREE: f64 = threatmesh_node::network::MESH_DEGREE as f64;
/// The goal for time to every member: this many times the largest one-way latency.
const BOUND_FACTOR: f64 = 3.0;
/// The goal for idle bytes per node: the largest federation's at most this many times
/// the smallest's.
const IDLE_GROWTH: f64 = 1.5;
/// Links later than this (simulated ms, 99th percentile) mean the figures carry queueing.
const LATE_MS: f64 = 5.0;

/// The model and the run's settings, saved beside each outcome.
#[derive(Debug, Serialize)]
struct Saved<'a> {
    scenario: &'static str,
    seed: u64,
    time_scale: f64,
    inflation: f64,
    last_mile_ms: u64,
    bandwidth_mbit: Option<f64>,
    members: usize,
    countries: usize,
    /// Each member's country, by node index.
    placement: Vec<&'a str>,
    outcome: &'a Outcome,
}

/// Min, mean, median and max of `values`.
fn summary(values: &[f64]) -> [f64; 4] {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mean = sorted.iter().sum::<f64>() / sorted.len().max(1) as f64;
    [
        sorted.first().copied().unwrap_or(0.0),
        mean,
        sorted.get(sorted.len() / 2).copied().unwrap_or(0.0),
        sorted.last().copied().unwrap_or(0.0),
    ]
}

/// A table row: name, unit, then min, mean, median and max of `values`.
fn summary_row(name: &str, unit: &str, values: &[f64], decimals: usize) -> Vec<String> {
    let mut row = vec![name.to_owned(), unit.to_owned()];
    row.extend(
        summary(values)
            .iter()
            .map(|value| format!("{value:.decimals$}")),
    );
    row
}

const SUMMARY_HEADER: [&str; 6] = ["per node", "unit", "min", "mean", "median", "max"];

/// A percentile cell: "–" when there was nothing to rank.
fn cell(count: usize, value: u64) -> String {
    if count == 0 {
        "–".to_owned()
    } else {
        value.to_string()
    }
}

fn met(ok: bool) -> &'static str {
    if ok { "met" } else { "**not met**" }
}

fn mesh_text(mesh: &Mesh) -> String {
    let below = if mesh.below_low.is_empty() {
        "every node reached its low mark of links".to_owned()
    } else {
        format!(
            "**{} nodes were still below their low mark of links** (nodes {:?})",
            mesh.below_low.len(),
            mesh.below_low
        )
    };
    format!(
        "Mesh: {below} {:.1} simulated seconds after start. {} links in all (listed in the \
         JSON, `topology`); per node min/median/max {}/{}/{}; gossip mesh peers {}/{}/{}.",
        mesh.seconds,
        mesh.topology.len(),
        mesh.links[0],
        mesh.links[1],
        mesh.links[2],
        mesh.mesh_peers[0],
        mesh.mesh_peers[1],
        mesh.mesh_peers[2],
    )
}

/// Writes one run's files; returns a one-line summary for the terminal.
pub(crate) fn write(
    folder: &Path,
    scenario: Scenario,
    args: &SimulateArgs,
    setup: &Setup,
    outcome: &Outcome,
) -> Result<String> {
    std::fs::create_dir_all(folder).with_context(|| format!("creating {}", folder.display()))?;
    let stem = format!("{}-{}", scenario.name(), setup.len());
    let saved = Saved {
        scenario: scenario.name(),
        seed: args.seed,
        time_scale: setup.scale,
        inflation: setup.model.inflation,
        last_mile_ms: setup.model.last_mile.as_millis() as u64,
        bandwidth_mbit: args.bandwidth_mbit,
        members: setup.len(),
        countries: super::distinct(&setup.placement),
        placement: (0..setup.len())
            .map(|node| {
                setup
                    .capital(node)
                    .map_or("", |capital| capital.code.as_str())
            })
            .collect(),
        outcome,
    };
    std::fs::write(
        folder.join(format!("{stem}.json")),
        serde_json::to_string_pretty(&saved)?,
    )?;
    let (markdown, line) = match outcome {
        Outcome::Idle(idle) => idle_text(idle, setup.scale),
        Outcome::Propagation(propagation) => {
            plot::propagation(&folder.join(format!("{stem}.svg")), propagation)?;
            plot::world(
                &folder.join(format!("{stem}-world.svg")),
                propagation,
                setup,
            )?;
            propagation_text(propagation, setup, &stem)
        }
        Outcome::CatchUp(catch_up) => catch_up_text(catch_up, setup.scale),
        Outcome::Partition(partition) => partition_text(partition, setup.scale),
    };
    let heading = format!(
        "## {} — {} members in {} countries (seed {}, time scale {})\n\n",
        scenario.name(),
        setup.len(),
        super::distinct(&setup.placement),
        args.seed,
        setup.scale
    );
    std::fs::write(
        folder.join(format!("{stem}.md")),
        format!("{heading}{markdown}\nData: `{stem}.json`.\n"),
    )?;
    std::fs::write(folder.join("model.md"), model_text(setup))?;
    Ok(line)
}

/// How the machine kept up: CPU, the links' lateness, the members' check time.
fn keeping_text(keeping: &Keeping, scale: f64) -> String {
    let late = keeping.late_p99_ms.map_or_else(
        || {
            if keeping.late_pieces.iter().sum::<u64>() == 0 {
                "no bytes crossed the links".to_owned()
            } else {
                "**99% of them were more than 1 s (wall clock) late**".to_owned()
            }
        },
        |ms| format!("99% of them at most {ms:.2} ms (simulated) after the model's time"),
    );
    let warning = if keeping.cpu_busy > 0.9
        || (keeping.late_p99_ms.is_none() && keeping.late_pieces.iter().sum::<u64>() > 0)
        || keeping.late_p99_ms.is_some_and(|ms| ms > LATE_MS)
    {
        " **The machine did not keep up: times include waiting for the CPU; a larger \
         `--time-scale` takes that out.**"
    } else {
        ""
    };
    let checks = if keeping.ingested == 0 {
        String::new()
    } else {
        format!(
            " The members checked {} entries and applied them to their stores (the flush \
             to disk not included), taking {:.2} ms each on average: wall clock on this \
             shared machine, not scaled, about what a member's own machine spends on each \
             entry it receives, at each hop.",
            keeping.ingested, keeping.ingest_ms
        )
    };
    format!(
        "The process kept {:.0}% of the machine's cores busy (time scale {scale}). The links \
         delivered bytes {late}.{warning}{checks}",
        keeping.cpu_busy * 100.0,
    )
}

fn idle_text(idle: &Idle, scale: f64) -> (String, String) {
    let received = summary(&idle.received_per_sec);
    let sent = summary(&idle.sent_per_sec);
    let rows = vec![
        summary_row("bytes received", "B/s", &idle.received_per_sec, 0),
        summary_row("bytes sent", "B/s", &idle.sent_per_sec, 0),
    ];
    let markdown = format!(
        "{}\n\nNothing published for {:.0} simulated seconds. Bytes above the carrier \
         (Noise, yamux, gossipsub heartbeats and IHAVE, sync rounds, ping, identify), per \
         simulated second.\n\n{}\n\
         CPU of the whole process per node: {:.2} ms per simulated second. {} Peak resident \
         memory {:.0} MiB.\n",
        mesh_text(&idle.mesh),
        idle.window_seconds,
        table(&SUMMARY_HEADER, &rows),
        idle.cpu_ms_per_sec_per_node,
        keeping_text(&idle.keeping, scale),
        idle.resident_mib,
    );
    let line = format!(
        "idle, {} nodes: {:.0} B/s received, {:.0} B/s sent per node (mean); {:.2} ms CPU per node per second",
        idle.nodes, received[1], sent[1], idle.cpu_ms_per_sec_per_node
    );
    (markdown, line)
}

fn catch_up_text(run: &CatchUp, scale: f64) -> (String, String) {
    let time = run.seconds.map_or_else(
        || format!("**did not finish: {} entries still missing**", run.missing),
        |seconds| format!("{seconds:.1} simulated seconds"),
    );
    let others = if run.others_missing.is_empty() {
        "Every other member held every entry when it came back.".to_owned()
    } else {
        format!(
            "**Other members still lacked entries when it came back** (node, entries): {:?}.",
            run.others_missing
        )
    };
    let markdown = format!(
        "{}\n\nNode {} ({}) was stopped while others published {} entries of {} indicators \
         ({} bytes each); it lacked {} of them when it started again with its store. \
         Catching up took {time}; it received {} bytes, {:.2}× the entries' size. Entries \
         lost: {}. {others}\n\n{}\n",
        mesh_text(&run.mesh),
        run.away,
        run.away_country,
        run.entries,
        run.indicators_per_entry,
        run.entry_bytes,
        run.lacked_at_restart,
        run.bytes_received,
        run.bytes_received as f64 / (run.entry_bytes * run.entries as u64).max(1) as f64,
        run.missing,
        keeping_text(&run.keeping, scale),
    );
    let line = format!(
        "catch-up, {} nodes: node {} caught up on {} entries in {time}; {} lost",
        run.nodes, run.away, run.lacked_at_restart, run.missing
    );
    (markdown, line)
}

fn partition_text(run: &Partition, scale: f64) -> (String, String) {
    let time = run.heal_seconds.map_or_else(
        || "**did not heal within the time allowed**".to_owned(),
        |seconds| format!("{seconds:.1} simulated seconds"),
    );
    let lost: usize = run.missing.iter().map(|(_, lacks)| lacks).sum();
    let held = if run.crossed_before_heal == 0 {
        "no entry had crossed the cut before the heal".to_owned()
    } else {
        format!(
            "**{} copies had crossed the cut before the heal: the cut leaked**",
            run.crossed_before_heal
        )
    };
    let markdown = format!(
        "{}\n\nThe members in {} ({} nodes) were cut off from the other {}: every link \
         between the sides closed and dials across were refused. Both sides published, {} \
         entries in all; {held}. Then the cut healed. Every member held every entry {time} \
         after the heal. Entries missing when the wait ended: {lost}{}.\n\n{}\n",
        mesh_text(&run.mesh),
        run.cut.join(", "),
        run.sides[0],
        run.sides[1],
        run.entries,
        if run.missing.is_empty() {
            String::new()
        } else {
            format!(" (node, entries lacking: {:?})", run.missing)
        },
        keeping_text(&run.keeping, scale),
    );
    let line = format!(
        "partition, {} nodes: healed in {time}; {lost} entries missing; {} copies crossed the cut early",
        run.nodes, run.crossed_before_heal
    );
    (markdown, line)
}

/// The latency model and a continent-to-continent heat map of its mean one-way latency.
fn model_text(setup: &Setup) -> String {
    use super::geo::Continent;
    let continents: Vec<Continent> = {
        let mut seen: Vec<Continent> = (0..setup.len())
            .filter_map(|node| setup.continent(node))
            .collect();
        seen.sort();
        seen.dedup();
        seen
    };
    let mut rows = Vec::new();
    for from in &continents {
        let mut row = vec![from.name().to_owned()];
        for to in &continents {
            let (mut sum, mut count) = (0.0, 0u64);
            for a in (0..setup.len()).filter(|node| setup.continent(*node) == Some(*from)) {
                for b in (0..setup.len()).filter(|node| setup.continent(*node) == Some(*to)) {
                    if a != b {
                        sum += setup.one_way(a, b).as_secs_f64() * 1000.0;
                        count += 1;
                    }
                }
            }
            row.push(if count == 0 {
                "–".to_owned()
            } else {
                format!("{:.0}", sum / count as f64)
            });
        }
        rows.push(row);
    }
    let mut header = vec!["one-way, ms (mean)"];
    header.extend(continents.iter().map(|continent| continent.name()));
    format!(
        "## The latency model\n\n\
         One-way latency between two members = great-circle distance between their capitals \
         ÷ 200,000 km/s (light in fibre) × {} (route inflation) + {} ms (last mile). The \
         physical limit is the distance ÷ 200,000 km/s alone.\n\n\
         Mean one-way latency between the continents of this run's members (the last run \
         written):\n\n{}",
        setup.model.inflation,
        setup.model.last_mile.as_millis(),
        table(&header, &rows)
    )
}

/// Per-node idle bytes against the federation's size, with the goal.
pub(crate) fn write_idle_scaling(folder: &Path, idles: &[Idle]) -> Result<()> {
    let points: Vec<(usize, f64)> = idles
        .iter()
        .map(|idle| {
            let received = summary(&idle.received_per_sec)[1];
            let sent = summary(&idle.sent_per_sec)[1];
            (idle.nodes, received + sent)
        })
        .collect();
    let smallest = points.iter().min_by_key(|(nodes, _)| *nodes).copied();
    let largest = points.iter().max_by_key(|(nodes, _)| *nodes).copied();
    let rows: Vec<Vec<String>> = points
        .iter()
        .map(|(nodes, bytes)| {
            vec![
                nodes.to_string(),
                format!("{bytes:.0}"),
                smallest.map_or_else(String::new, |(_, base)| {
                    format!("{:.2}", bytes / base.max(1.0))
                }),
            ]
        })
        .collect();
    let verdict = match (smallest, largest) {
        (Some((small, base)), Some((large, top))) if large > small => format!(
            "**Goal: idle bytes per node at {large} members at most {IDLE_GROWTH}× those at \
             {small}: {}** ({:.2}×).",
            met(top / base.max(1.0) <= IDLE_GROWTH),
            top / base.max(1.0)
        ),
        _ => "One size only: run `--nodes 100,1000` to compare.".to_owned(),
    };
    plot::idle(&folder.join("idle-scaling.svg"), &points)?;
    std::fs::write(
        folder.join("idle-scaling.md"),
        format!(
            "## Idle bytes per node against the number of members\n\n{}\n{verdict} Plot: \
             `idle-scaling.svg`.\n",
            table(
                &["members", "bytes/s per node (in + out, mean)", "× smallest"],
                &rows
            )
        ),
    )?;
    Ok(())
}

/// `README.md`: what the simulation is, what it leaves out, then every section present.
pub(crate) fn write_index(folder: &Path) -> Result<()> {
    let mut names: Vec<String> = std::fs::read_dir(folder)
        .with_context(|| format!("reading {}", folder.display()))?
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.ends_with(".md") && name != "README.md" && name != "model.md")
        .collect();
    let order = |name: &str| {
        let scenario = [
            "idle-scaling",
            "idle-",
            "propagation-",
            "catch-up-",
            "partition-",
        ]
        .iter()
        .position(|prefix| name.starts_with(prefix))
        .unwrap_or(9);
        let size: usize = name
            .trim_end_matches(".md")
            .rsplit('-')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        (scenario, size)
    };
    names.sort_by_key(|name| order(name));
    let mut body = String::new();
    for name in &names {
        if let Ok(section) = std::fs::read_to_string(folder.join(name)) {
            let _ = writeln!(body, "{section}");
        }
    }
    let model = std::fs::read_to_string(folder.join("model.md")).unwrap_or_default();
    let readme = format!(
        "# threatmesh: a federation around the world, simulated\n\n\
         Written by `threatmesh-testnet simulate`. Every member runs the node's own network, \
         sync, validation and store code in one process; connections are in memory and \
         delayed by the latency between the members' capitals.\n\n\
         Sources: {} (`testnet/data/README.md`). Route inflation 2.1 over fibre speed: \
         Bozkurt et al., \"Why Is the Internet so Slow?!\", PAM 2017, measured the minimum \
         ping time between PlanetLab nodes and web servers at about 3.2× the round trip at the \
         speed of light in vacuum along the great circle, in the median (our reading of their \
         results); light in fibre goes at ⅔ c, so that is 3.2 × ⅔ ≈ 2.1 over fibre speed. \
         Their pings include the access links, so the factor already holds some last mile. \
         Last mile 5 ms one way: an access round trip of about 10 ms, the order the FCC's \
         Measuring Broadband America reports give for fibre access to the nearest test server; \
         our choice of a typical value, not a figure quoted from one table, and nodes in data \
         centres are nearer. Both are flags (`--inflation`, `--last-mile-ms`).\n\n\
         What the simulation leaves out: packet loss, jitter and congestion (each link is a \
         constant delay, with a bandwidth limit only if `--bandwidth-mbit` is given); TCP \
         (connections are in-memory streams under the same Noise and yamux, so no slow start, \
         no head-of-line blocking from loss); the HTTP API and the TAXII indexer (not started); \
         realistic disks (stores are temporary sled databases under the work directory, with \
         a 4 MiB cache, flushed to whatever disk that is); members behind NAT; clocks that \
         disagree (one machine's clock); each member's own CPU (all share this machine's \
         cores: see each section for how busy they were and how late the links ran). With \
         `--time-scale K`, latencies and the timers the node's configuration sets (heartbeat, \
         and with it gossipsub's other timings and ping; sync interval, peer hold and \
         rotation, redial, timeouts, ban) are K times longer; the node's fixed intervals \
         (maintenance every 500 ms, the idle connection timeout, identify) and its rate \
         limits are not, and each member's checks of an entry count K times less than on its \
         own machine: each section gives that check time unscaled.\n\n{model}\n{body}",
        super::geo::ATTRIBUTION,
    );
    std::fs::write(folder.join("README.md"), readme)?;
    Ok(())
}
