//! A short run of every importer fuzz target (`node/fuzz`) on stable Rust, so CI exercises
//! them without nightly or cargo-fuzz: the targets' own bodies, fed the repository's STIX
//! and MISP fixtures, a few CSV files, and a few thousand deterministic mutations and
//! random inputs each. The real fuzzing is `scripts/fuzz`.

#![allow(clippy::unwrap_used)] // tests unwrap what they built themselves

#[allow(dead_code, unreachable_pub)]
#[path = "../fuzz/targets.rs"]
mod targets;

#[allow(dead_code, unreachable_pub, clippy::cast_possible_truncation)]
#[path = "../../protocol/fuzz/smoke.rs"]
mod smoke;

use std::path::Path;

const INPUTS: usize = 3_000;

/// Every `.json` file of a fixture directory (relative to this crate).
fn fixtures(dir: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    let seeds: Vec<Vec<u8>> = files
        .iter()
        .map(|path| std::fs::read(path).unwrap())
        .collect();
    assert!(!seeds.is_empty(), "no fixtures in {}", dir.display());
    seeds
}

#[test]
fn stix_target_survives_mutated_bundles() {
    smoke::run(
        &fixtures("../tests/fixtures/stix"),
        INPUTS,
        11,
        targets::stix,
    );
}

#[test]
fn misp_target_survives_mutated_events() {
    smoke::run(&fixtures("tests/fixtures/misp"), INPUTS, 12, targets::misp);
}

#[test]
fn csv_target_survives_mutated_lists() {
    // The target reads its options from the first byte.
    let seeds: Vec<Vec<u8>> = [
        &b"\x00value,tlp,labels\n198.51.100.7,green,c2\nhxxp://evil[.]example/gate.php,amber,\n"[..],
        b"\x05ip;first_seen\n\"10.0.0.1\";2024-01-02T03:04:05Z\n\"10.0.0.2\";x\n",
        b"\x80evil.example\n# a comment\n\n2001:db8::1\nCVE-2024-1234\n",
        b"\x19\xef\xbb\xbfIP\tport\r\n203.0.113.9\t443\r\n",
        b"\xc1a,\"b\"\"c\",d\n1,2,3\n",
    ]
    .iter()
    .map(|seed| seed.to_vec())
    .collect();
    smoke::run(&seeds, INPUTS, 13, targets::csv);
}
