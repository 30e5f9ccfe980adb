//! The catch-up scenario: a node is stopped, misses a run of entries, restarts, and is
//! timed until it holds them all, with what it fetched against what it missed.

use super::*;

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

pub(super) fn run(args: &BenchArgs) -> Result<()> {
    if args.up.nodes < 2 {
        bail!("catch-up needs at least 2 nodes");
    }
    let mut testnet = up(&args.up)?;
    let last = testnet.nodes.len() - 1;
    let offline = testnet.nodes.remove(last);
    let (name, dir) = (offline.name.clone(), offline.dir.clone());
    let federation = offline.federation.clone();
    drop(crate::Testnet {
        nodes: vec![offline],
    }); // SIGTERM, wait: a clean stop
    println!(
        "{name} is offline; publishing {} indicators from {}",
        args.missed, testnet.nodes[0].name
    );
    let chunk = 10_000u32;
    let mut published = 0u32;
    let bar = report::progress(u64::from(args.missed), "indicators published");
    while published < args.missed {
        let count = chunk.min(args.missed - published);
        let items = ipv4_items(published, count);
        post(
            &testnet.nodes[0],
            "/api/v1/publish",
            &json!({ "tlp": "green", "items": items, "ignore_warninglists": true }),
        )?;
        published += count;
        bar.inc(u64::from(count));
    }
    bar.finish_and_clear();
    let entries = entries_of(&testnet.nodes[0])?;
    let total = entries.len() as u64;
    let entries_bytes: u64 = entries
        .iter()
        .map(|entry| entry["bytes"].as_u64().unwrap_or(0))
        .sum();
    let started = Instant::now();
    let bootstrap = testnet.nodes[0].p2p.clone();
    let node = crate::start(
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
    let folder = folder(args);
    let markdown = format!(
        "A node offline while {} indicators ({} entries) were published; then it starts \
         again and fetches what it missed.\n\n{}",
        report.indicators_missed,
        report.entries_missed,
        report::table(
            &[
                "catch-up (s)",
                "entries' size (MiB)",
                "fetched (MiB)",
                "fetched / size",
                "entries fetched"
            ],
            &[vec![
                format!("{:.2}", report.catch_up_seconds),
                format!("{:.1}", report.entries_bytes as f64 / 1_048_576.0),
                format!("{:.1}", report.fetched_bytes as f64 / 1_048_576.0),
                format!("{:.3}", report.ratio),
                report.fetched_entries.to_string(),
            ]]
        )
    );
    report::write(&folder, "catch-up", &report, &markdown)?;
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
