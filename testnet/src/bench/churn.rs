//! The churn scenario: nodes are killed with SIGKILL and restarted while entries are
//! published; every acknowledged entry must reach every node in the end.

use super::*;

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

pub(super) fn run(args: &BenchArgs) -> Result<()> {
    if args.up.nodes < 3 {
        bail!("churn needs at least 3 nodes");
    }
    let mut testnet = up(&args.up)?;
    let count = testnet.nodes.len();
    let mut random = Random::new(args.seed);
    let mut next = move |bound: usize| random.below(bound);
    let bar = report::progress(args.entries as u64, "rounds of publishing and churn");
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
            &json!({ "tlp": "green", "items": items, "ignore_warninglists": true }),
        ) {
            for id in answer["entries"].as_array().into_iter().flatten() {
                acknowledged.push(id.as_str().unwrap_or_default().to_owned());
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
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
    let folder = folder(args);
    let markdown = format!(
        "{} nodes; {} rounds, each publishing an entry of {} indicators from a random live \
         node; every third round the node that was down restarts and another is killed with \
         SIGKILL.\n\n{}",
        report.nodes,
        args.entries,
        args.indicators,
        report::table(
            &[
                "kills",
                "entries acknowledged",
                "every node complete after the last restart (s)",
                "entries lost"
            ],
            &[vec![
                report.kills.to_string(),
                report.entries_acknowledged.to_string(),
                format!("{:.2}", report.converge_seconds),
                report.lost.to_string(),
            ]]
        )
    );
    report::write(&folder, "churn", &report, &markdown)?;
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
fn restart(testnet: &mut crate::Testnet, index: usize) -> Result<()> {
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
    let node = crate::start(
        &old.dir,
        &format!("node{index}"),
        old.name.clone(),
        &old.federation,
        &bootstrap,
    )?;
    testnet.nodes[index] = node;
    Ok(())
}
