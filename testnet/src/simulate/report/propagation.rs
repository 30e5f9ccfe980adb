//! The propagation section of the simulation report: times to every member next to the
//! latency model's bound and the physical limit, copies per entry next to the mesh degree,
//! the members that never got an entry, and the plots that show it.

use super::*;

pub(super) fn propagation_text(run: &Propagation, setup: &Setup, stem: &str) -> (String, String) {
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
