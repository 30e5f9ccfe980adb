//! Throughput: the highest publishing rate the mesh keeps without its lag growing.
//!
//! For each rate of `--rates` (entries per second, each of `--indicators` indicators),
//! entries are published on a fixed schedule for `--window-seconds`, each from a random
//! member (one publishing thread per member, so a slow publish delays only that member's
//! next one). After the window the mesh gets `TIMEOUT` to drain. The lag of an entry is
//! the time from its creation to its durable storage on the last node to store it, read
//! from the nodes afterwards (as for propagation).
//!
//! A rate is **sustained** when all three hold:
//! 1. the publishers kept the schedule: every entry was acknowledged, at an achieved rate
//!    of at least 90 % of the target (otherwise publishing itself is the bottleneck);
//! 2. lag did not grow: the p95 lag of entries created in the last third of the window is
//!    at most 1.5 times that of the first third, or at most 50 ms more (lags of a few
//!    milliseconds vary by more than half of themselves from scheduling noise alone);
//! 3. nothing is missing: every node holds every entry once the mesh has drained.
//!
//! The sustained rate is the highest rate of the series below the first that fails; the
//! series stops at the first rate whose entries do not all arrive.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result, bail};
use serde::Serialize;

use super::report;
use super::{BenchArgs, Percentiles, Random, entries_held, entry_times, percentiles, publish};
use crate::{Node, up};

/// How long each rate is kept unless `--window-seconds` says otherwise.
const WINDOW_SECONDS: u64 = 10;

/// Lag points of one rate: (ms since the window began, lag in ms).
type Points = Vec<(u64, u64)>;

#[derive(Debug, Serialize)]
struct Rate {
    entries_per_second: f64,
    indicators_per_second: f64,
    /// Entries acknowledged in the window.
    published: usize,
    /// Entries acknowledged, over the time until the last acknowledgement (at least the
    /// window).
    achieved_entries_per_second: f64,
    lag_ms: Percentiles,
    first_third_p95_ms: u64,
    last_third_p95_ms: u64,
    /// Entries some node lacked after the drain.
    missing: u64,
    sustained: bool,
    /// Why not, when not.
    #[serde(skip_serializing_if = "Option::is_none")]
    why_not: Option<String>,
    /// Every entry's (ms since the window began, lag in ms), for plotting again.
    lag_over_time: Points,
}

#[derive(Debug, Serialize)]
struct Report {
    scenario: &'static str,
    nodes: usize,
    indicators_per_entry: u32,
    window_seconds: u64,
    rates: Vec<Rate>,
    /// The highest rate sustained (0 if none was).
    sustained_entries_per_second: f64,
    sustained_indicators_per_second: f64,
}

/// One rate's window as published: per entry id, when the window began (epoch ms).
struct Window {
    rate: f64,
    began_ms: u64,
    ids: Vec<String>,
    achieved: f64,
    missing: u64,
    expected: usize,
}

fn epoch_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
        })
}

/// Publishes `count` entries at `rate` per second, from random members, numbered from
/// `first`. Returns the acknowledged ids and the achieved rate.
fn publish_window(
    nodes: &[Node],
    rate: f64,
    count: usize,
    first: usize,
    indicators: u32,
    random: &mut Random,
) -> Result<(Vec<String>, f64)> {
    // Each member's share of the schedule: (entry number, offset from the start).
    let mut plans: Vec<Vec<(usize, Duration)>> = vec![Vec::new(); nodes.len()];
    for k in 0..count {
        let at = Duration::from_secs_f64(k as f64 / rate);
        plans[random.below(nodes.len())].push((first + k, at));
    }
    let bar = report::progress(count as u64, &format!("entries at {rate}/s"));
    let started = Instant::now();
    let results: Vec<Result<Vec<String>>> = std::thread::scope(|scope| {
        let workers: Vec<_> = nodes
            .iter()
            .zip(&plans)
            .map(|(node, plan)| {
                let bar = bar.clone();
                scope.spawn(move || {
                    let mut ids = Vec::new();
                    for (number, at) in plan {
                        if let Some(wait) = at.checked_sub(started.elapsed()) {
                            std::thread::sleep(wait);
                        }
                        ids.extend(publish(node, *number, indicators)?);
                        bar.inc(1);
                    }
                    Ok(ids)
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|worker| {
                worker
                    .join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a publisher thread panicked")))
            })
            .collect()
    });
    let elapsed = started.elapsed().as_secs_f64();
    bar.finish_and_clear();
    let mut ids = Vec::new();
    for result in results {
        ids.extend(result?);
    }
    // Over the time until the last acknowledgement, but at least the window itself, so
    // keeping the schedule gives exactly the target rate.
    let achieved = count as f64 / elapsed.max(count as f64 / rate);
    Ok((ids, achieved))
}

fn p95(values: &[u64]) -> u64 {
    percentiles(values.to_vec()).p95
}

pub(super) fn run(args: &BenchArgs) -> Result<()> {
    if args.rates.is_empty()
        || args
            .rates
            .iter()
            .any(|rate| !rate.is_finite() || *rate <= 0.0)
    {
        bail!("--rates: give positive entries-per-second rates");
    }
    let window_seconds = args.window_seconds.unwrap_or(WINDOW_SECONDS);
    if window_seconds < 3 {
        bail!("--window-seconds: at least 3 (the window is cut in thirds)");
    }
    let testnet = up(&args.up)?;
    let nodes = &testnet.nodes;
    let mut random = Random::new(args.seed);
    let mut windows: Vec<Window> = Vec::new();
    let mut published_so_far = 0usize;
    let mut rates = args.rates.clone();
    rates.sort_by(f64::total_cmp);
    for rate in rates {
        let count = ((rate * window_seconds as f64).round() as usize).max(1);
        println!(
            "{rate} entries/s ({} indicators/s) for {} s",
            rate * f64::from(args.indicators),
            window_seconds
        );
        let began_ms = epoch_ms();
        let (ids, achieved) = publish_window(
            nodes,
            rate,
            count,
            published_so_far,
            args.indicators,
            &mut random,
        )?;
        published_so_far += count;
        let total = held_everywhere_target(&windows) + ids.len() as u64;
        let drained = super::wait_for_entries(nodes, total);
        let mut missing = 0;
        for node in nodes {
            missing = missing.max(total.saturating_sub(entries_held(node)?));
        }
        windows.push(Window {
            rate,
            began_ms,
            ids,
            achieved,
            missing,
            expected: count,
        });
        if drained.is_err() {
            println!("  entries still missing after the drain: the series stops here");
            break;
        }
    }

    // Lags, read from every node once the runs are over.
    let mut created: HashMap<String, u64> = HashMap::new();
    let mut slowest: HashMap<String, u64> = HashMap::new();
    for node in nodes {
        for (id, born, added) in entry_times(node)? {
            created.insert(id.clone(), born);
            let last = slowest.entry(id).or_default();
            *last = (*last).max(added);
        }
    }
    let mut results = Vec::new();
    let mut sustained = 0.0;
    let mut failed = false;
    for window in &windows {
        let rate = judge(window, args, &created, &slowest)?;
        if rate.sustained && !failed {
            sustained = window.rate;
        } else {
            failed = true;
        }
        results.push(rate);
    }
    let report = Report {
        scenario: "throughput",
        nodes: nodes.len(),
        indicators_per_entry: args.indicators,
        window_seconds,
        sustained_entries_per_second: sustained,
        sustained_indicators_per_second: sustained * f64::from(args.indicators),
        rates: results,
    };
    let folder = super::folder(args);
    std::fs::create_dir_all(&folder)?;
    plot_lag(&folder.join("throughput.svg"), &report)?;
    report::write(&folder, "throughput", &report, &markdown(&report))?;
    println!(
        "throughput, {} nodes, entries of {} indicators: sustained {} entries/s = {} indicators/s",
        report.nodes,
        report.indicators_per_entry,
        report.sustained_entries_per_second,
        report.sustained_indicators_per_second
    );
    println!("report in {}", folder.display());
    Ok(())
}

/// Entries every node should hold after the windows so far.
fn held_everywhere_target(windows: &[Window]) -> u64 {
    windows.iter().map(|window| window.ids.len() as u64).sum()
}

/// Applies the three criteria of the module's documentation to one window.
fn judge(
    window: &Window,
    args: &BenchArgs,
    created: &HashMap<String, u64>,
    slowest: &HashMap<String, u64>,
) -> Result<Rate> {
    let third_ms = args.window_seconds.unwrap_or(WINDOW_SECONDS) * 1000 / 3;
    let mut points: Points = Vec::new();
    for id in &window.ids {
        let born = *created
            .get(id)
            .context("an acknowledged entry no node holds")?;
        let lag = slowest
            .get(id)
            .copied()
            .unwrap_or(born)
            .saturating_sub(born);
        points.push((born.saturating_sub(window.began_ms), lag));
    }
    points.sort_unstable();
    let lags: Vec<u64> = points.iter().map(|(_, lag)| *lag).collect();
    let first: Vec<u64> = points
        .iter()
        .filter(|(at, _)| *at < third_ms)
        .map(|(_, lag)| *lag)
        .collect();
    let last: Vec<u64> = points
        .iter()
        .filter(|(at, _)| *at >= 2 * third_ms)
        .map(|(_, lag)| *lag)
        .collect();
    let (first_p95, last_p95) = (p95(&first), p95(&last));
    let why_not = if window.ids.len() < window.expected || window.achieved < 0.9 * window.rate {
        Some(format!(
            "publishers fell behind: {:.2} entries/s achieved",
            window.achieved
        ))
    } else if window.missing > 0 {
        Some(format!(
            "{} entries missing after the drain",
            window.missing
        ))
    } else if last_p95 as f64 > (1.5 * first_p95 as f64).max(first_p95 as f64 + 50.0) {
        Some(format!(
            "lag grew: p95 {first_p95} ms in the first third, {last_p95} ms in the last"
        ))
    } else {
        None
    };
    Ok(Rate {
        entries_per_second: window.rate,
        indicators_per_second: window.rate * f64::from(args.indicators),
        published: window.ids.len(),
        achieved_entries_per_second: window.achieved,
        lag_ms: percentiles(lags),
        first_third_p95_ms: first_p95,
        last_third_p95_ms: last_p95,
        missing: window.missing,
        sustained: why_not.is_none(),
        why_not,
        lag_over_time: points,
    })
}

fn markdown(report: &Report) -> String {
    let rows: Vec<Vec<String>> = report
        .rates
        .iter()
        .map(|rate| {
            vec![
                format!("{}", rate.entries_per_second),
                format!("{}", rate.indicators_per_second),
                format!("{:.2}", rate.achieved_entries_per_second),
                rate.lag_ms.p50.to_string(),
                rate.lag_ms.p95.to_string(),
                rate.first_third_p95_ms.to_string(),
                rate.last_third_p95_ms.to_string(),
                rate.missing.to_string(),
                rate.why_not
                    .clone()
                    .unwrap_or_else(|| "sustained".to_owned()),
            ]
        })
        .collect();
    format!(
        "{} nodes; entries of {} indicators from random members on a fixed schedule, {} s \
         per rate. Lag: creation to stored on every node, in ms. A rate is sustained when \
         publishers kept at least 90 % of it, the last third's p95 lag is at most 1.5 times \
         the first third's (or 50 ms more), and every node holds every entry after the \
         drain.\n\n**Sustained: {} entries/s = {} indicators/s.**\n\n{}\nLag over time: \
         `throughput.svg`.",
        report.nodes,
        report.indicators_per_entry,
        report.window_seconds,
        report.sustained_entries_per_second,
        report.sustained_indicators_per_second,
        report::table(
            &[
                "entries/s",
                "indicators/s",
                "achieved entries/s",
                "lag p50",
                "lag p95",
                "p95 first third",
                "p95 last third",
                "missing",
                "verdict"
            ],
            &rows
        ),
    )
}

/// Lag over time, one series per rate, as an SVG.
fn plot_lag(path: &std::path::Path, report: &Report) -> Result<()> {
    use plotters::prelude::*;
    let plot = |error: &dyn std::fmt::Display| anyhow::anyhow!("plot: {error}");
    let max_lag = report
        .rates
        .iter()
        .flat_map(|rate| rate.lag_over_time.iter().map(|(_, lag)| *lag))
        .max()
        .unwrap_or(1)
        .max(1);
    let max_at = report
        .rates
        .iter()
        .flat_map(|rate| rate.lag_over_time.iter().map(|(at, _)| *at))
        .max()
        .unwrap_or(1)
        .max(1);
    let root = SVGBackend::new(path, (720, 420)).into_drawing_area();
    root.fill(&WHITE).map_err(|error| plot(&error))?;
    let mut chart = ChartBuilder::on(&root)
        .margin(20)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0u64..max_at, 0u64..max_lag)
        .map_err(|error| plot(&error))?;
    chart
        .configure_mesh()
        .x_desc("ms since the window began (entry created)")
        .y_desc("ms until stored on every node")
        .draw()
        .map_err(|error| plot(&error))?;
    for (index, rate) in report.rates.iter().enumerate() {
        let colour = Palette99::pick(index).to_rgba();
        chart
            .draw_series(LineSeries::new(rate.lag_over_time.iter().copied(), colour))
            .map_err(|error| plot(&error))?
            .label(format!("{} entries/s", rate.entries_per_second))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE)
        .border_style(BLACK)
        .draw()
        .map_err(|error| plot(&error))?;
    root.present().map_err(|error| plot(&error))?;
    Ok(())
}
