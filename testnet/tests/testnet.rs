//! The testnet end to end: the demo reaches every node, and no node outlives a killed
//! testnet.

#![allow(clippy::unwrap_used)] // tests unwrap what they built themselves

mod support;

use std::process::{Command, Stdio};

use support::{BINARY, wait_until};

/// Node processes (`... node run ...`) whose command line mentions `dir`.
fn nodes_of(dir: &std::path::Path) -> usize {
    let pattern = format!("node run .*{}", dir.display());
    let output = Command::new("pgrep")
        .args(["-f", &pattern])
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout).lines().count()
}

#[test]
fn demo_reaches_every_node_and_stops_them_all() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    let output = Command::new(BINARY)
        .args([
            "demo",
            "--once",
            "--nodes",
            "3",
            "--base-port",
            "0",
            "--dir",
        ])
        .arg(&work)
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{printed}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for name in ["CERT-FR", "CERT-DE", "CSA-SG"] {
        assert!(printed.contains(&format!("known at {name}")), "{printed}");
    }
    assert_eq!(
        printed
            .matches("active (QakBot, asserted by CERT-FR)")
            .count(),
        3,
        "{printed}"
    );
    assert_eq!(
        printed.matches("192.0.2.1: unknown").count(),
        3,
        "{printed}"
    );
    let testnet: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(work.join("testnet.json")).unwrap()).unwrap();
    assert_eq!(testnet.as_array().unwrap().len(), 3);
    wait_until("every node to stop", || nodes_of(&work) == 0);
}

#[test]
fn killing_the_testnet_leaves_no_node_behind() {
    /// Kills the testnet even if an assertion fails first, so a failing test leaks nothing.
    struct Guard(std::process::Child);
    impl Drop for Guard {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    let mut testnet = Guard(
        Command::new(BINARY)
            .args(["up", "--nodes", "2", "--base-port", "0", "--dir"])
            .arg(&work)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_until("the testnet to be up", || {
        work.join("testnet.json").exists()
    });
    assert_eq!(nodes_of(&work), 2);
    testnet.0.kill().unwrap(); // SIGKILL: the testnet gets no chance to clean up
    testnet.0.wait().unwrap();
    wait_until("the orphaned nodes to stop by themselves", || {
        nodes_of(&work) == 0
    });
}

#[test]
fn bench_writes_a_report_covering_every_entry() {
    let report = bench(
        "propagation",
        &["--nodes", "3", "--entries", "4", "--indicators", "50"],
    );
    assert_eq!(report["entries"], 4);
    assert_eq!(report["to_every_node_ms"]["count"], 4);
    // Each entry reaches the two nodes that did not publish it.
    assert_eq!(report["to_each_node_ms"]["count"], 8);
    let every = &report["to_every_node_ms"];
    assert!(every["p50"].as_u64() <= every["p99"].as_u64());
    assert!(every["p99"].as_u64() <= every["max"].as_u64());
}

#[test]
fn catch_up_fetches_each_missed_entry_once() {
    let report = bench("catch-up", &["--nodes", "2", "--missed", "25000"]);
    assert_eq!(report["indicators_missed"], 25_000);
    assert_eq!(report["fetched_entries"], report["entries_missed"]);
    assert_eq!(report["fetched_bytes"], report["entries_bytes"]);
}

#[test]
fn churn_loses_nothing_acknowledged() {
    let report = bench(
        "churn",
        &["--nodes", "3", "--entries", "9", "--indicators", "50"],
    );
    assert_eq!(report["lost"], 0);
    assert_eq!(report["kills"], 3);
    assert!(
        report["entries_acknowledged"].as_u64().unwrap() >= 6,
        "{report}"
    );
}

/// Runs `bench ARGS` in a fresh work directory (free ports), checks it succeeded and that
/// no node outlives it, and returns the scenario's JSON report.
fn bench(scenario: &str, args: &[&str]) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    let output = Command::new(BINARY)
        .args(["bench", "--scenario", scenario, "--base-port", "0", "--dir"])
        .arg(&work)
        .args(args)
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{printed}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report = work.join(format!("report/{scenario}.json"));
    let report = serde_json::from_str(&std::fs::read_to_string(report).unwrap()).unwrap();
    let readme = std::fs::read_to_string(work.join("report/README.md")).unwrap();
    assert!(readme.contains(&format!("({scenario}.md)")), "{readme}");
    if ["propagation", "throughput"].contains(&scenario) {
        let svg = std::fs::read_to_string(work.join(format!("report/{scenario}.svg"))).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(80)]);
    }
    wait_until("every node to stop", || nodes_of(&work) == 0);
    report
}

#[test]
fn intruder_outside_the_charter_receives_nothing() {
    let report = bench(
        "intruder",
        &["--nodes", "3", "--entries", "4", "--indicators", "50"],
    );
    assert_eq!(report["entries_published"], 4);
    assert_eq!(report["intruder_entries"], 0);
    assert_eq!(report["intruder_publish_refused"], true);
    let refused = report["refused"].as_array().unwrap();
    assert_eq!(refused.len(), 3);
    // Each member refused it before the publishing and again when it came back.
    for member in refused {
        assert!(member["not_in_charter"].as_u64().unwrap() >= 2, "{report}");
    }
}

#[test]
fn partition_loses_nothing_and_heals() {
    let report = bench(
        "partition",
        &["--nodes", "4", "--entries", "6", "--indicators", "50"],
    );
    assert_eq!(report["sides"], serde_json::json!([2, 2]));
    assert_eq!(report["entries"], serde_json::json!([3, 3]));
    // While cut, neither side saw the other's entries; after healing, everyone has all.
    assert_eq!(report["leaked"], 0);
    assert_eq!(report["lost"], 0);
    assert!(
        report["heal_seconds"].as_f64().unwrap() >= report["reconnect_seconds"].as_f64().unwrap()
    );
}

#[test]
fn throughput_reports_every_rate_with_nothing_missing() {
    let report = bench(
        "throughput",
        &[
            "--nodes",
            "3",
            "--indicators",
            "50",
            "--rates",
            "4,2",
            "--window-seconds",
            "3",
        ],
    );
    let rates = report["rates"].as_array().unwrap();
    // Tried in increasing order, each for the whole window.
    assert_eq!(rates.len(), 2, "{report}");
    assert_eq!(rates[0]["entries_per_second"], 2.0);
    assert_eq!(rates[1]["entries_per_second"], 4.0);
    for (rate, expected) in rates.iter().zip([6, 12]) {
        assert_eq!(rate["published"], expected, "{rate}");
        assert_eq!(rate["missing"], 0, "{rate}");
        assert_eq!(rate["lag_ms"]["count"], expected, "{rate}");
        assert_eq!(
            rate["lag_over_time"].as_array().unwrap().len(),
            expected,
            "{rate}"
        );
        assert_eq!(rate["sustained"], rate.get("why_not").is_none(), "{rate}");
        assert!(rate["first_third_p95_ms"].is_u64() && rate["last_third_p95_ms"].is_u64());
    }
    // The sustained rate is one of those tried (or none), in indicators of 50 per entry.
    let sustained = report["sustained_entries_per_second"].as_f64().unwrap();
    assert!([0.0, 2.0, 4.0].contains(&sustained), "{report}");
    assert_eq!(
        report["sustained_indicators_per_second"].as_f64().unwrap(),
        sustained * 50.0
    );
}

#[test]
fn idle_reports_each_node_and_where_its_bytes_went() {
    // 11 s: every window then holds at least one sync round (every 10 s).
    let report = bench(
        "idle",
        &[
            "--nodes",
            "3",
            "--settle-seconds",
            "1",
            "--window-seconds",
            "11",
        ],
    );
    let nodes = report["per_node"].as_array().unwrap();
    assert_eq!(nodes.len(), 3, "{report}");
    for node in nodes {
        assert_eq!(node["peers_start"], 2, "{node}");
        assert_eq!(node["peers_end"], 2, "{node}");
        let transport = node["transport"]["in_per_second"].as_f64().unwrap();
        let sync = node["sync"]["in_per_second"].as_f64().unwrap();
        // Sync is part of what the transport carried, and not all of it.
        assert!(sync > 0.0 && transport > sync, "{node}");
        assert!(node["cpu_ms_per_second"].as_f64().unwrap() >= 0.0, "{node}");
    }
    let measures = report["measures"].as_array().unwrap();
    for name in ["in", "out", "CPU", "peers (start and end)"] {
        assert!(
            measures.iter().any(|measure| measure["name"] == name),
            "{name} in {report}"
        );
    }
}

#[test]
fn bench_all_runs_every_scenario_into_one_report() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    let output = Command::new(BINARY)
        .args([
            "bench",
            "--scenario",
            "all",
            "--nodes",
            "3",
            "--entries",
            "6",
            "--indicators",
            "50",
            "--missed",
            "5000",
            "--rates",
            "2",
            "--window-seconds",
            "3",
            "--settle-seconds",
            "1",
            "--base-port",
            "0",
            "--dir",
        ])
        .arg(&work)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let readme = std::fs::read_to_string(work.join("report/README.md")).unwrap();
    for scenario in [
        "idle",
        "propagation",
        "throughput",
        "catch-up",
        "churn",
        "partition",
        "intruder",
    ] {
        assert!(readme.contains(&format!("({scenario}.md)")), "{readme}");
        assert!(work.join(format!("report/{scenario}.json")).exists());
    }
    for plot in ["propagation.svg", "throughput.svg"] {
        let svg = std::fs::read_to_string(work.join("report").join(plot)).unwrap();
        assert!(svg.starts_with("<svg"), "{plot}");
    }
    wait_until("every node to stop", || nodes_of(&work) == 0);
}
