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

use anyhow::{Context as _, Result, anyhow};
use serde::Serialize;

use super::scenarios::{CatchUp, Idle, Keeping, Mesh, Outcome, Partition, Propagation};
use super::{Scenario, Setup, SimulateArgs};
use crate::bench::percentiles;
use crate::bench::report::table;

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
            plot_propagation(&folder.join(format!("{stem}.svg")), propagation)?;
            plot_world(
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

fn propagation_text(run: &Propagation, setup: &Setup, stem: &str) -> (String, String) {
    let complete: Vec<u64> = run.spreads.iter().filter_map(|s| s.to_every_ms).collect();
    let incomplete = run.spreads.len() - complete.len();
    let to_every = percentiles(complete);
    let verified = percentiles(
        run.spreads
            .iter()
            .filter_map(|s| s.verified_every_ms)
            .collect(),
    );
    let to_each = percentiles(
        run.spreads
            .iter()
            .flat_map(|s| s.to_each_ms.iter().copied())
            .collect(),
    );
    let bounds = percentiles(run.spreads.iter().map(|s| s.bound_ms).collect());
    let physical = percentiles(run.spreads.iter().map(|s| s.physical_ms).collect());
    // Each entry against its own publisher's bound; an entry that never reached every
    // node counts as over any bound.
    let ratios: Vec<u64> = run
        .spreads
        .iter()
        .map(|s| {
            s.to_every_ms.map_or(u64::MAX, |ms| {
                (ms as f64 * 100.0 / s.bound_ms.max(1) as f64).round() as u64
            })
        })
        .collect();
    let ratio = percentiles(ratios);
    let ratio_text = |hundredths: u64| {
        if hundredths == u64::MAX {
            "never".to_owned()
        } else {
            format!("{:.2}", hundredths as f64 / 100.0)
        }
    };
    let goal_time = incomplete == 0 && ratio.p99 as f64 <= BOUND_FACTOR * 100.0;
    // The same entries along the paths they took, as if each member had its own CPU: the
    // links' latencies plus each hop's measured check (not divided by the time scale).
    let per_hop = run.keeping.ingest_ms;
    let own_cpu: Vec<(u64, u64)> = run
        .spreads
        .iter()
        .filter_map(|s| {
            let (ms, hops) = s.path_every?;
            Some((
                (ms as f64 + f64::from(hops) * per_hop).round() as u64,
                s.bound_ms,
            ))
        })
        .collect();
    let latencies_only = percentiles(
        run.spreads
            .iter()
            .filter_map(|s| s.path_every.map(|(ms, _)| ms))
            .collect(),
    );
    let own_cpu_times = percentiles(own_cpu.iter().map(|(ms, _)| *ms).collect());
    let own_cpu_ratio = percentiles(
        own_cpu
            .iter()
            .map(|(ms, bound)| (*ms as f64 * 100.0 / (*bound).max(1) as f64).round() as u64)
            .collect(),
    );
    let hops = percentiles(
        run.spreads
            .iter()
            .flat_map(|s| s.hops.iter().map(|hop| u64::from(*hop)))
            .collect(),
    );
    let by_sync: usize = run.spreads.iter().map(|s| s.by_sync).sum();
    let path_unknown: usize = run.spreads.iter().map(|s| s.path_unknown).sum();
    let duplicates = summary(&run.duplicates_per_entry);
    let row = |name: &str, p: &crate::bench::Percentiles| {
        vec![
            name.to_owned(),
            p.count.to_string(),
            cell(p.count, p.p50),
            cell(p.count, p.p95),
            cell(p.count, p.p99),
            cell(p.count, p.max),
        ]
    };
    let times = table(
        &[
            "per entry, ms (simulated)",
            "count",
            "p50",
            "p95",
            "p99",
            "max",
        ],
        &[
            row("stored on every member", &to_every),
            row(
                "verified on the last member with a known gossip path",
                &verified,
            ),
            row("stored on each member", &to_each),
            row(
                "along the paths taken: the links' latencies alone",
                &latencies_only,
            ),
            row(
                &format!(
                    "along the paths taken, plus {per_hop:.1} ms per hop of the longest (own CPU, at most)"
                ),
                &own_cpu_times,
            ),
            row("bound: model, publisher to farthest", &bounds),
            row("physical limit, publisher to farthest", &physical),
        ],
    );
    let mut slowest = Vec::new();
    for spread in run.spreads.iter().take(5) {
        let capital = setup
            .capital(spread.publisher)
            .map_or_else(String::new, |capital| capital.capital.clone());
        slowest.push(vec![
            spread.entry.chars().take(12).collect(),
            format!("{} ({capital})", spread.publisher),
            spread.to_every_ms.map_or_else(
                || format!("never ({} missing)", spread.missing.len()),
                |ms| ms.to_string(),
            ),
            spread.bound_ms.to_string(),
            spread.physical_ms.to_string(),
            spread.to_every_ms.map_or_else(
                || "never".to_owned(),
                |ms| format!("{:.2}", ms as f64 / spread.bound_ms.max(1) as f64),
            ),
        ]);
    }
    let missing: Vec<String> = run
        .spreads
        .iter()
        .filter(|s| !s.missing.is_empty())
        .map(|s| {
            format!(
                "entry {} missing on nodes {:?}",
                s.entry.chars().take(12).collect::<String>(),
                s.missing
            )
        })
        .collect();
    let duplicates_verdict = if run.duplicates_measured {
        format!(
            "**Goal: duplicates received per entry per node at most the mesh degree \
             {MESH_DEGREE}: {}** (mean over nodes {:.2}, the most of any node {:.2}; nodes \
             above it: {}).",
            met(duplicates[3] <= MESH_DEGREE),
            duplicates[1],
            duplicates[3],
            run.duplicates_per_entry
                .iter()
                .filter(|count| **count > MESH_DEGREE)
                .count(),
        )
    } else {
        "**Duplicates were not measured**: gossipsub's log of dropped copies was never seen \
         (a libp2p that words it differently), so the line above is not a count."
            .to_owned()
    };
    let markdown = format!(
        "{}\n\n{} entries of {} indicators ({} bytes each) from random members, one every \
         {} simulated seconds.\n\n{times}\n\
         **Goal: p99 of (time to every member ÷ the publisher's bound) at most {BOUND_FACTOR}: \
         {}** (p50 {}, p99 {}, max {}). CDF against the bound: `{stem}.svg`; members on a map, coloured by their mean arrival \
         time: `{stem}-world.svg`.\n\n\
         The simulation shares two cores among all members, so each member's checks wait \
         for the others' (see the last paragraph). Along the paths the entries took, with \
         each member checking on its own CPU, the same goal would be **{}** (p99 of the \
         ratio {}; {} of {} entries had every member's path known). That is an estimate \
         from the measured paths, not a run.\n\n\
         Slowest entries:\n\n{}\n\
         Per node over the {:.0} simulated seconds of publishing and spreading:\n\n{}\n\
         {duplicates_verdict} A duplicate is a copy gossipsub received after the first and \
         dropped (counted from its log); \"copies received per entry\" is all the bytes a node \
         received outside sync frames divided by the entry's size, every overhead included \
         (IHAVE/IWANT, IDONTWANT, heartbeats, Noise and yamux framing, copies cut short by \
         IDONTWANT).\n\n\
         Hops of each first delivery by gossip whose path back to the publisher is known: p50 \
         {}, p95 {}, max {} ({} deliveries); {} deliveries came by sync, and {} by gossip from \
         a peer that had the entry by sync (no hop count). {}\n\n{} Peak resident memory \
         {:.0} MiB.\n",
        mesh_text(&run.mesh),
        run.spreads.len(),
        run.indicators_per_entry,
        run.entry_bytes,
        run.interval_seconds,
        met(goal_time),
        ratio_text(ratio.p50),
        ratio_text(ratio.p99),
        ratio_text(ratio.max),
        if own_cpu_ratio.count == 0 {
            "not estimated".to_owned()
        } else {
            if own_cpu_ratio.count == run.spreads.len()
                && own_cpu_ratio.p99 as f64 <= BOUND_FACTOR * 100.0
            {
                "met".to_owned()
            } else {
                "not met".to_owned()
            }
        },
        if own_cpu_ratio.count == 0 {
            "–".to_owned()
        } else {
            ratio_text(own_cpu_ratio.p99)
        },
        own_cpu_ratio.count,
        run.spreads.len(),
        table(
            &[
                "entry",
                "publisher",
                "to every, ms",
                "bound, ms",
                "physical, ms",
                "÷ bound"
            ],
            &slowest
        ),
        run.seconds,
        table(
            &SUMMARY_HEADER,
            &[
                summary_row("received", "B/s", &run.received_per_sec, 0),
                summary_row("sent", "B/s", &run.sent_per_sec, 0),
                summary_row(
                    "duplicates received per entry",
                    "copies",
                    &run.duplicates_per_entry,
                    2
                ),
                summary_row(
                    "copies received per entry",
                    "entry sizes",
                    &run.copies_per_entry,
                    2
                ),
            ]
        ),
        cell(hops.count, hops.p50),
        cell(hops.count, hops.p95),
        cell(hops.count, hops.max),
        hops.count,
        by_sync,
        path_unknown,
        if missing.is_empty() {
            "Every member stored every entry.".to_owned()
        } else {
            format!(
                "**Not every member stored every entry:** {}.",
                missing.join("; ")
            )
        },
        keeping_text(&run.keeping, setup.scale),
        run.resident_mib,
    );
    let line = format!(
        "propagation, {} nodes: to every member p50 {} ms, p99 {} ms, max {} ms; p99 ÷ bound {} (goal ≤ {BOUND_FACTOR}: {}); {} entries incomplete",
        run.nodes,
        cell(to_every.count, to_every.p50),
        cell(to_every.count, to_every.p99),
        cell(to_every.count, to_every.max),
        ratio_text(ratio.p99),
        if goal_time { "met" } else { "not met" },
        incomplete
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
    plot_idle(&folder.join("idle-scaling.svg"), &points)?;
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

fn plot_error(error: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("plot: {error}")
}

/// CDF of time to every member, with the CDFs of the bound, 3× the bound and the physical
/// limit of the same entries' publishers.
fn plot_propagation(path: &Path, run: &Propagation) -> Result<()> {
    use plotters::prelude::*;
    let sorted = |mut values: Vec<u64>| {
        values.sort_unstable();
        values
    };
    let measured = sorted(run.spreads.iter().filter_map(|s| s.to_every_ms).collect());
    let bound = sorted(run.spreads.iter().map(|s| s.bound_ms).collect());
    let three = sorted(run.spreads.iter().map(|s| s.bound_ms * 3).collect());
    let physical = sorted(run.spreads.iter().map(|s| s.physical_ms).collect());
    let max = [&measured, &three]
        .iter()
        .filter_map(|values| values.last().copied())
        .max()
        .unwrap_or(1)
        .max(1);
    let total = run.spreads.len().max(1) as f64;
    let root = SVGBackend::new(path, (720, 440)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("Time to every member, {} members", run.nodes),
            ("sans-serif", 18),
        )
        .margin(20)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0u64..max + max / 20, 0f64..1f64)
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .x_desc("ms (simulated) from creation to stored on every member")
        .y_desc("fraction of entries")
        .draw()
        .map_err(plot_error)?;
    let curves: [(&str, &Vec<u64>, RGBColor); 4] = [
        ("measured", &measured, BLUE),
        ("bound: farthest member, model", &bound, GREEN),
        ("3 × bound (goal)", &three, RED),
        ("physical limit", &physical, BLACK),
    ];
    for (label, values, colour) in curves {
        chart
            .draw_series(LineSeries::new(
                values
                    .iter()
                    .enumerate()
                    .map(|(index, ms)| (*ms, (index + 1) as f64 / total)),
                colour,
            ))
            .map_err(plot_error)?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()
        .map_err(plot_error)?;
    root.present().map_err(plot_error)?;
    Ok(())
}

/// Members at their capitals (longitude, latitude), coloured from blue (earliest mean
/// arrival) to red (latest); members that stored nothing in black.
fn plot_world(path: &Path, run: &Propagation, setup: &Setup) -> Result<()> {
    use plotters::prelude::*;
    let known: Vec<f64> = run.mean_arrival_ms.iter().flatten().copied().collect();
    let low = known.iter().copied().fold(f64::INFINITY, f64::min);
    let high = known.iter().copied().fold(0.0, f64::max);
    let root = SVGBackend::new(path, (900, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "Mean arrival per member, {} members: blue {low:.0} ms to red {high:.0} ms",
                run.nodes
            ),
            ("sans-serif", 16),
        )
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(40)
        .build_cartesian_2d(-180f64..180f64, -60f64..80f64)
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .x_desc("longitude")
        .y_desc("latitude")
        .draw()
        .map_err(plot_error)?;
    let points = (0..setup.len()).filter_map(|node| {
        let capital = setup.capital(node)?;
        let colour = match run.mean_arrival_ms.get(node).copied().flatten() {
            Some(ms) => {
                let share = if high > low {
                    (ms - low) / (high - low)
                } else {
                    0.0
                };
                let red = (share * 255.0).round().clamp(0.0, 255.0) as u8;
                RGBColor(red, 0, 255 - red)
            }
            None => BLACK,
        };
        Some(Circle::new(
            (capital.longitude, capital.latitude),
            3,
            colour.filled(),
        ))
    });
    chart.draw_series(points).map_err(plot_error)?;
    root.present().map_err(plot_error)?;
    Ok(())
}

/// Idle bytes per node (in + out) against members.
fn plot_idle(path: &Path, points: &[(usize, f64)]) -> Result<()> {
    use plotters::prelude::*;
    let max_nodes = points.iter().map(|(nodes, _)| *nodes).max().unwrap_or(1);
    let max_bytes = points.iter().map(|(_, bytes)| *bytes).fold(1.0, f64::max);
    let root = SVGBackend::new(path, (640, 400)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("Idle traffic per node", ("sans-serif", 18))
        .margin(20)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(
            0usize..max_nodes + max_nodes / 10 + 1,
            0f64..max_bytes * 1.6,
        )
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .x_desc("members")
        .y_desc("bytes/s per node, in + out")
        .draw()
        .map_err(plot_error)?;
    let mut sorted = points.to_vec();
    sorted.sort_by_key(|(nodes, _)| *nodes);
    chart
        .draw_series(LineSeries::new(sorted.iter().copied(), &BLUE))
        .map_err(plot_error)?;
    chart
        .draw_series(
            sorted
                .iter()
                .map(|point| Circle::new(*point, 4, BLUE.filled())),
        )
        .map_err(plot_error)?;
    root.present().map_err(plot_error)?;
    Ok(())
}
