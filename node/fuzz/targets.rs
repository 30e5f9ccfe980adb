//! The bodies of the importers' fuzz targets, shared by the cargo-fuzz binaries in
//! `fuzz_targets/` and by the smoke test `node/tests/fuzz_smoke.rs`, which runs them on
//! stable Rust in every `cargo test`. Each feeds arbitrary bytes to an importer the API
//! runs on files users (and TAXII clients) upload, and asserts what must hold of the
//! result: every item it makes is one the protocol accepts, and the report counts exactly
//! the items made. A panic, assertion failure or abort is a bug.

use threatmesh_node::formats::csv::{self, Column, CsvOptions};
use threatmesh_node::formats::misp::{self, MispOptions};
use threatmesh_node::formats::{Import, stix};
use threatmesh_protocol::{Item, Kind, Timestamp};

/// The import time the targets pass: fixed, so a crash reproduces.
const NOW: Timestamp = Timestamp(1_700_000_000_000);

/// STIX 2.x bundles.
pub fn stix(bytes: &[u8]) {
    if let Ok(import) = stix::import(bytes, NOW) {
        check(&import);
    }
}

/// MISP events, search answers and lists, with and without `to_ids: false` attributes.
pub fn misp(bytes: &[u8]) {
    for include_non_ids in [false, true] {
        if let Ok(import) = misp::import(bytes, NOW, &MispOptions { include_non_ids }) {
            check(&import);
        }
    }
}

/// CSV and plain lists. The first byte picks the options a user could pass (column,
/// delimiter, kind, header); the rest is the file.
pub fn csv(bytes: &[u8]) {
    let Some((&choice, data)) = bytes.split_first() else {
        return;
    };
    let options = CsvOptions {
        column: match choice & 3 {
            0 => None,
            1 => Some(Column::Index(usize::from(choice >> 5))),
            2 => Some(Column::Name("value".into())),
            _ => Some(Column::Name("IP".into())),
        },
        delimiter: match (choice >> 2) & 3 {
            0 => None,
            1 => Some(b','),
            2 => Some(b'\t'),
            // Any byte at all, including ones that cannot separate fields.
            _ => Some(data.first().copied().unwrap_or(b'"')),
        },
        kind: (choice & 0x10 != 0).then(|| Kind::ALL[usize::from(choice >> 4) % Kind::ALL.len()]),
        has_header: match choice >> 6 {
            0 | 1 => None,
            2 => Some(true),
            _ => Some(false),
        },
    };
    if let Ok(import) = csv::import(data, NOW, &options) {
        check(&import);
    }
}

/// What must hold of any import: its items are valid protocol items, and the report
/// counts each of them once.
fn check(import: &Import) {
    let (mut indicators, mut sightings, mut revocations) = (0, 0, 0);
    for marked in &import.items {
        if let Err(error) = marked.item.validate() {
            panic!(
                "the importer made an invalid item ({error}): {:?}",
                marked.item
            );
        }
        match marked.item {
            Item::Indicator(_) => indicators += 1,
            Item::Sighting(_) => sightings += 1,
            Item::Revocation(_) => revocations += 1,
        }
    }
    let report = &import.report;
    assert_eq!(
        (report.indicators, report.sightings, report.revocations),
        (indicators, sightings, revocations),
        "the report miscounts the items"
    );
    for refusal in &report.refused {
        assert!(
            !refusal.reason.is_empty(),
            "a refusal without a reason at {}",
            refusal.at
        );
    }
}
