//! `threatmesh archive export` and `archive import` end to end: two node processes that
//! never connect, an archive carried from one to the other as a file.

#![allow(clippy::unwrap_used)] // tests unwrap what they built themselves

mod support;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use support::{Api, BINARY, Node, federation, launch};

const TIMEOUT: Duration = Duration::from_secs(30);

/// Starts member `node` of the federation made in `dir`, with no bootstrap peer.
fn start(dir: &Path, node: &str, federation: &str) -> Node {
    launch(dir, node, federation)
        .timeout(TIMEOUT)
        .start()
        .unwrap()
}

/// `threatmesh <args> --api <node's>` with the node's token.
fn on(dir: &Path, node: &Node, args: &[&str]) -> Output {
    Command::new(BINARY)
        .current_dir(dir)
        .args(args)
        .args(["--api", &node.api])
        .env("THREATMESH_TOKEN", &node.token)
        .output()
        .unwrap()
}

fn stdout_of(output: &Output) -> String {
    assert!(
        output.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

#[test]
fn an_archive_carries_entries_between_nodes_that_never_connect() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let id = federation(dir, "Air gap", &["a", "b"]);
    let (a, b) = (start(dir, "a", &id), start(dir, "b", &id));
    let api_a = Api::new(&a.api, &a.token, TIMEOUT);
    let api_b = Api::new(&b.api, &b.token, TIMEOUT);
    for first in [0, 100, 200] {
        let (status, answer) = api_a.publish_ipv4(first, 100);
        assert_eq!(status, 201, "{answer}");
    }

    let out = stdout_of(&on(dir, &a, &["archive", "export", "--out", "all.tma"]));
    assert!(out.contains("exported 3 entries and 1 charters"), "{out}");
    let partial = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .any(|file| file.file_name().to_string_lossy().contains(".partial-"));
    assert!(!partial, "the temporary file was renamed into place");
    let selected = stdout_of(&on(
        dir,
        &a,
        &[
            "archive",
            "export",
            "--out",
            "b-only.tma",
            "--organisation",
            "CERT-B",
        ],
    ));
    assert!(selected.contains("exported 0 entries"), "{selected}");

    let out = stdout_of(&on(dir, &b, &["archive", "import", "all.tma"]));
    assert!(
        out.contains("entries: 3 new, 0 already known, 0 refused"),
        "{out}"
    );
    assert!(out.contains("charters: 0 new, 1 already known"), "{out}");
    let (status, found) = api_b.lookup_ipv4(250);
    assert_eq!(status, 200);
    assert_eq!(found["known"], true, "{found}");
    let out = stdout_of(&on(dir, &b, &["archive", "import", "all.tma"]));
    assert!(out.contains("entries: 0 new, 3 already known"), "{out}");

    // A cut file: refused with where, what verified before the cut kept.
    let whole = std::fs::read(dir.join("all.tma")).unwrap();
    std::fs::write(dir.join("cut.tma"), &whole[..whole.len() - 40]).unwrap();
    let cut = on(dir, &b, &["archive", "import", "cut.tma"]);
    assert!(!cut.status.success());
    let stderr = String::from_utf8_lossy(&cut.stderr);
    assert!(
        stderr.contains(&format!("at byte {}", whole.len() - 40)),
        "{stderr}"
    );
    assert!(stderr.contains("truncated"), "{stderr}");
    assert_eq!(
        api_b
            .metrics()
            .get("threatmesh_archive_imports_total{result=\"refused\"}"),
        Some(&1)
    );
}
