//! Partition and heal: the federation splits in two, both sides keep publishing, the
//! split heals, and every node must end up with every entry.
//!
//! The split is made the way an operator would cut links, through each node's peer block
//! list (`POST /api/v1/peers/blocked`): every node of one side blocks every node of the
//! other, so no connection crosses in either direction. Healing lifts every block
//! (`DELETE /api/v1/peers/blocked/{peer_id}`); the nodes redial at once and sync on
//! connecting. Measured: time from the start of healing until every node is connected
//! to every other, and until every node holds every entry.

use std::time::Instant;

use anyhow::{Result, bail};
use serde::Serialize;
use serde_json::json;

use super::{BenchArgs, Random, entries_held, missing, publish, report};
use crate::{Node, get, post, up, wait};

#[derive(Debug, Serialize)]
struct Report {
    scenario: &'static str,
    nodes: usize,
    /// Nodes on each side.
    sides: [usize; 2],
    /// Entries published on each side during the partition.
    entries: [usize; 2],
    indicators_per_entry: u32,
    /// Entries a node held from the other side while partitioned (must be 0).
    leaked: u64,
    /// From the start of healing to every node connected to every other.
    reconnect_seconds: f64,
    /// From the start of healing to every node holding every entry.
    heal_seconds: f64,
    /// Entries missing from some node at the end (must be 0).
    lost: usize,
}

/// Sends `request` to `node`'s block list for each of `peers`.
fn for_each_link(node: &Node, peers: &[&Node], block: bool) -> Result<()> {
    for peer in peers {
        if block {
            post(
                node,
                "/api/v1/peers/blocked",
                &json!({ "peer_id": peer.peer_id }),
            )?;
        } else {
            crate::delete(node, &format!("/api/v1/peers/blocked/{}", peer.peer_id))?;
        }
    }
    Ok(())
}

/// Waits until every node of `nodes` holds as many links as it keeps among `reachable`
/// others: all of them in a federation smaller than its peer set, at least its low mark
/// (status `peers_low`) otherwise, and never more than `reachable`. Blocks close links at
/// once and refuse new ones, so a side's nodes cannot hold a link across the cut.
fn wait_for_peers(nodes: &[&Node], reachable: usize, what: &str) -> Result<()> {
    let reachable = reachable as u64;
    wait(what, || {
        for node in nodes {
            let status = get(node, "/api/v1/status")?;
            let low = status["peers_low"].as_u64().unwrap_or(reachable);
            let peers = status["peers"].as_u64().unwrap_or(0);
            if peers < low.min(reachable) || peers > reachable {
                return Ok(false);
            }
        }
        Ok(true)
    })
}

pub(super) fn run(args: &BenchArgs) -> Result<()> {
    if args.up.nodes < 2 {
        bail!("partition needs at least 2 nodes");
    }
    let testnet = up(&args.up)?;
    let nodes = &testnet.nodes;
    let half = nodes.len() / 2;
    let sides: [Vec<&Node>; 2] = [
        nodes[..half].iter().collect(),
        nodes[half..].iter().collect(),
    ];
    println!(
        "cutting every link between {} and {} nodes",
        sides[0].len(),
        sides[1].len()
    );
    for (side, other) in [(0, 1), (1, 0)] {
        for node in &sides[side] {
            for_each_link(node, &sides[other], true)?;
        }
    }
    for side in &sides {
        wait_for_peers(side, side.len() - 1, "the partition: no link across")?;
    }

    // Both sides publish, alternately, from a random node of the side.
    let mut random = Random::new(args.seed);
    let mut published: [Vec<String>; 2] = [Vec::new(), Vec::new()];
    let bar = report::progress(args.entries as u64, "entries published while partitioned");
    for number in 0..args.entries {
        let side = &sides[number % 2];
        let node = side[random.below(side.len())];
        published[number % 2].extend(publish(node, number, args.indicators)?);
        bar.inc(1);
    }
    bar.finish_and_clear();
    // Each side converges on its own entries, and holds none of the other's.
    let mut leaked = 0;
    for (side, own) in sides.iter().zip(&published) {
        let own_count = own.len() as u64;
        wait("each side to share its own entries", || {
            for node in side {
                if missing(node, own)? > 0 {
                    return Ok(false);
                }
            }
            Ok(true)
        })?;
        for node in side {
            leaked += entries_held(node)?.saturating_sub(own_count);
        }
    }

    println!("healing: lifting every block");
    let started = Instant::now();
    for (side, other) in [(0, 1), (1, 0)] {
        for node in &sides[side] {
            for_each_link(node, &sides[other], false)?;
        }
    }
    let all: Vec<&Node> = nodes.iter().collect();
    wait_for_peers(&all, nodes.len() - 1, "every link to come back")?;
    let reconnect_seconds = started.elapsed().as_secs_f64();
    let every: Vec<String> = published.concat();
    let total = every.len() as u64;
    let healed = super::wait_for_entries(nodes, total);
    let heal_seconds = started.elapsed().as_secs_f64();
    let mut lost = 0;
    for node in nodes {
        lost = lost.max(missing(node, &every).unwrap_or(every.len()));
    }
    let report = Report {
        scenario: "partition",
        nodes: nodes.len(),
        sides: [sides[0].len(), sides[1].len()],
        entries: [published[0].len(), published[1].len()],
        indicators_per_entry: args.indicators,
        leaked,
        reconnect_seconds,
        heal_seconds,
        lost,
    };
    let markdown = format!(
        "{} nodes split into {} and {} by each node's block list (every link across cut, \
         both ways); {} and {} entries of {} indicators published on each side while \
         partitioned. Then every block lifted.\n\n{}",
        report.nodes,
        report.sides[0],
        report.sides[1],
        report.entries[0],
        report.entries[1],
        report.indicators_per_entry,
        report::table(
            &[
                "entries leaked across",
                "reconnected after (s)",
                "every entry everywhere after (s)",
                "entries lost"
            ],
            &[vec![
                report.leaked.to_string(),
                format!("{:.2}", report.reconnect_seconds),
                format!("{:.2}", report.heal_seconds),
                report.lost.to_string(),
            ]],
        ),
    );
    let folder = super::folder(args);
    report::write(&folder, "partition", &report, &markdown)?;
    println!(
        "partition, {} nodes ({} | {}), {} entries: {} leaked, reconnected in {:.2} s, every node complete {:.2} s after healing, {} lost",
        report.nodes,
        report.sides[0],
        report.sides[1],
        total,
        report.leaked,
        report.reconnect_seconds,
        report.heal_seconds,
        report.lost
    );
    println!("report in {}", folder.display());
    healed?;
    if report.lost > 0 || report.leaked > 0 {
        bail!(
            "the partition leaked or lost entries: see {}",
            folder.display()
        );
    }
    Ok(())
}
