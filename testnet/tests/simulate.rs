//! `threatmesh-testnet simulate` end to end: small worlds, run by the real binary, read
//! back from the report it writes.

#![allow(clippy::unwrap_used)] // tests unwrap what they built themselves

use std::path::Path;
use std::process::Command;

use serde_json::Value;

const BINARY: &str = env!("CARGO_BIN_EXE_threatmesh-testnet");

/// Runs `simulate ARGS --dir DIR`; returns (success, stdout, stderr).
fn simulate(dir: &Path, args: &[&str]) -> (bool, String, String) {
    let output = Command::new(BINARY)
        .arg("simulate")
        .args(args)
        .arg("--dir")
        .arg(dir)
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn report(dir: &Path, stem: &str) -> Value {
    let path = dir
        .join("report")
        .join("simulation")
        .join(format!("{stem}.json"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

#[test]
fn propagation_reaches_every_member_no_faster_than_the_distance_allows() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, out, err) = simulate(
        dir.path(),
        &[
            "--nodes",
            "12",
            "--entries",
            "3",
            "--indicators",
            "50",
            "--settle-seconds",
            "2",
            "--interval-seconds",
            "0.5",
            "--seed",
            "7",
        ],
    );
    assert!(ok, "{out}\n{err}");
    let json = report(dir.path(), "propagation-12");
    assert_eq!(json["members"], 12);
    let spreads = json["outcome"]["spreads"].as_array().unwrap();
    assert_eq!(spreads.len(), 3);
    for spread in spreads {
        assert_eq!(spread["missing"].as_array().unwrap().len(), 0, "{spread}");
        let to_every = spread["to_every_ms"].as_u64().unwrap();
        let bound = spread["bound_ms"].as_u64().unwrap();
        let physical = spread["physical_ms"].as_u64().unwrap();
        // Latencies obey the triangle inequality, so no path is faster than the direct
        // link to the farthest member: the links really delay (2 ms for the clocks'
        // millisecond resolution).
        assert!(to_every + 2 >= bound, "{spread}");
        assert!(bound > physical, "{spread}");
        // Every member but the publisher is accounted for: a known gossip path (with its
        // hops), sync, or gossip from a peer that had it by sync. With everyone up from
        // the start, most come by gossip.
        let hops = spread["hops"].as_array().unwrap();
        let by_sync = spread["by_sync"].as_u64().unwrap();
        let unknown = spread["path_unknown"].as_u64().unwrap();
        assert_eq!(hops.len() as u64 + by_sync + unknown, 11, "{spread}");
        assert!(hops.len() >= 6, "{spread}");
    }
    // Twelve nodes with six mesh peers each: copies after the first arrive, and are seen.
    assert_eq!(json["outcome"]["duplicates_measured"], true);
    let duplicates = json["outcome"]["duplicates_per_entry"].as_array().unwrap();
    assert_eq!(duplicates.len(), 12);
    let total: f64 = duplicates.iter().map(|count| count.as_f64().unwrap()).sum();
    assert!(total > 0.0, "{duplicates:?}");
    let folder = dir.path().join("report").join("simulation");
    assert!(folder.join("propagation-12.svg").exists());
    let readme = std::fs::read_to_string(folder.join("README.md")).unwrap();
    assert!(readme.contains("GeoNames"), "{readme}");
    assert!(readme.contains("## propagation"), "{readme}");
    assert!(out.contains("propagation, 12 nodes"), "{out}");
}

#[test]
fn the_same_seed_places_members_and_picks_publishers_the_same_way() {
    let run = |seed: &str| {
        let dir = tempfile::tempdir().unwrap();
        let (ok, out, err) = simulate(
            dir.path(),
            &[
                "--nodes",
                "6",
                "--entries",
                "2",
                "--indicators",
                "10",
                "--settle-seconds",
                "1",
                "--interval-seconds",
                "0",
                "--seed",
                seed,
            ],
        );
        assert!(ok, "{out}\n{err}");
        let json = report(dir.path(), "propagation-6");
        let mut picks: Vec<(u64, u64, u64)> = json["outcome"]["spreads"]
            .as_array()
            .unwrap()
            .iter()
            .map(|spread| {
                (
                    spread["publisher"].as_u64().unwrap(),
                    spread["bound_ms"].as_u64().unwrap(),
                    spread["physical_ms"].as_u64().unwrap(),
                )
            })
            .collect();
        picks.sort_unstable();
        (picks, json["placement"].clone())
    };
    let (first, countries) = run("11");
    let (again, countries_again) = run("11");
    assert_eq!(first, again);
    assert_eq!(countries, countries_again);
    let (other, _) = run("12");
    assert_ne!(first, other);
}

#[test]
fn a_partition_between_continents_heals_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let members = dir.path().join("members.txt");
    std::fs::write(
        &members,
        "# two sides of the Atlantic\nFR,3\nDE,2\nUS,3\nBR,2\n",
    )
    .unwrap();
    let (ok, out, err) = simulate(
        dir.path(),
        &[
            "--scenario",
            "partition",
            "--members",
            members.to_str().unwrap(),
            "--cut",
            "NA,SA",
            "--entries",
            "4",
            "--indicators",
            "20",
            "--settle-seconds",
            "2",
            "--interval-seconds",
            "0.2",
        ],
    );
    assert!(ok, "{out}\n{err}");
    let json = report(dir.path(), "partition-10");
    let outcome = &json["outcome"];
    assert_eq!(outcome["sides"], serde_json::json!([5, 5]));
    assert_eq!(outcome["entries"], 4);
    // The cut held while it was on, and nothing was lost once it healed.
    assert_eq!(outcome["crossed_before_heal"], 0, "{outcome}");
    assert!(outcome["heal_seconds"].is_number(), "{outcome}");
    assert_eq!(outcome["missing"].as_array().unwrap().len(), 0, "{outcome}");
}

#[test]
fn a_member_that_was_away_catches_up() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, out, err) = simulate(
        dir.path(),
        &[
            "--scenario",
            "catch-up",
            "--nodes",
            "8",
            "--entries",
            "3",
            "--indicators",
            "20",
            "--settle-seconds",
            "1",
            "--interval-seconds",
            "0.2",
        ],
    );
    assert!(ok, "{out}\n{err}");
    let outcome = &report(dir.path(), "catch-up-8")["outcome"];
    assert_eq!(outcome["entries"], 3);
    // It really was away: it came back lacking all three, and left lacking none.
    assert_eq!(outcome["lacked_at_restart"], 3, "{outcome}");
    assert_eq!(outcome["missing"], 0, "{outcome}");
    assert!(outcome["seconds"].is_number(), "{outcome}");
}

#[test]
fn a_members_file_naming_an_unknown_country_is_refused_with_its_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let members = dir.path().join("members.txt");
    std::fs::write(&members, "FR,2\nZZ\n").unwrap();
    let (ok, out, err) = simulate(dir.path(), &["--members", members.to_str().unwrap()]);
    assert!(!ok, "{out}");
    assert!(err.contains("line 2"), "{err}");
    assert!(err.contains("field country"), "{err}");
    assert!(err.contains("ZZ"), "{err}");
    // Nothing ran: no report.
    assert!(!dir.path().join("report").exists());
}

#[test]
fn a_malformed_capitals_file_is_refused_with_its_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let capitals = dir.path().join("capitals.csv");
    std::fs::write(
        &capitals,
        "code,country,capital,latitude,longitude,continent\n\
         FR,France,Paris,48.85,2.35,EU\n\
         DE,Germany,Berlin,north,13.4,EU\n",
    )
    .unwrap();
    let (ok, out, err) = simulate(dir.path(), &["--capitals", capitals.to_str().unwrap()]);
    assert!(!ok, "{out}");
    assert!(err.contains("line 3"), "{err}");
    assert!(err.contains("field latitude"), "{err}");
}

#[test]
fn settings_that_cannot_make_a_run_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    for (args, named) in [
        (&["--time-scale", "0"][..], "--time-scale"),
        (&["--nodes", "1"][..], "--nodes"),
        (&["--entries", "0"][..], "--entries"),
        (&["--inflation", "0.5"][..], "inflation"),
        (&["--inflation", "1e300"][..], "inflation"),
        (&["--nodes", "100000"][..], "--nodes"),
        (&["--cut", "NA,XX"][..], "--cut"),
        (&["--settle-seconds", "99999999"][..], "--settle-seconds"),
        // Antipodes 400 ms apart, stretched 100 times: past libp2p's 10 s negotiation.
        (&["--time-scale", "100"][..], "round trip"),
    ] {
        let (ok, out, err) = simulate(dir.path(), args);
        assert!(!ok, "{args:?}: {out}");
        assert!(err.contains(named), "{args:?}: {err}");
    }
}

#[test]
fn seeded_links_give_the_same_topology_every_run() {
    let run = || {
        let dir = tempfile::tempdir().unwrap();
        let (ok, out, err) = simulate(
            dir.path(),
            &[
                "--scenario",
                "idle",
                "--nodes",
                "24",
                "--seeded-links",
                "--seed",
                "5",
                "--settle-seconds",
                "3",
                "--window-seconds",
                "1",
            ],
        );
        assert!(ok, "{out}\n{err}");
        report(dir.path(), "idle-24")["outcome"]["mesh"]["topology"].clone()
    };
    let first = run();
    let links = first.as_array().unwrap();
    // About 14 links per node: many more than a chain, and the same twice.
    assert!(links.len() > 24 * 5, "{first}");
    assert_eq!(first, run());
}
