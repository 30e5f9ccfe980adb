//! The TAXII 2.1 server driven by the real OASIS client, `taxii2-client` from PyPI, on a
//! two-node testnet: discovery, collections, paging, and a POST that reaches the other node.
//!
//! Needs the Python venv `scripts/test` sets up (`THREATMESH_PYTHON`, or `.venv` at the
//! workspace root). Without it the test fails, saying so: it never passes by skipping.

#![allow(clippy::unwrap_used)] // tests unwrap what they built themselves

mod support;

use std::path::PathBuf;
use std::process::Command;

#[test]
fn taxii2_client_reads_pages_and_posts_across_the_mesh() {
    let python = support::python("taxii2client");
    let dir = tempfile::tempdir().unwrap();
    let testnet = support::up(2, &dir.path().join("work"));
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/taxii_client.py");
    let output = Command::new(python)
        .arg(script)
        .arg(&testnet.json)
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{printed}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let seen: serde_json::Value = serde_json::from_str(printed.trim()).unwrap();
    assert_eq!(
        seen["versions"],
        serde_json::json!(["application/taxii+json;version=2.1"])
    );
    // Node A lists the two posted indicators once each, over several pages of two.
    assert_eq!(seen["posted_on_a"].as_array().unwrap().len(), 2, "{seen}");
    assert!(seen["pages"].as_u64().unwrap() >= 2, "{seen}");
    assert_eq!(seen["manifest_on_a"], seen["objects_on_a"], "{seen}");
    for kind in ["identity", "indicator", "marking-definition"] {
        assert!(
            seen["types_on_a"]
                .as_array()
                .unwrap()
                .contains(&serde_json::json!(kind)),
            "{seen}"
        );
    }
    // Node B serves them with the same patterns and marking, under ids namespaced by A's
    // organisation: only A's own nodes take A's STIX ids as they are (the script works
    // them out itself; here they are checked against the exporter's).
    let on_b = seen["on_b"].as_object().unwrap();
    assert_eq!(on_b.len(), 2, "{seen}");
    assert_eq!(seen["original_ids_on_b"], 0, "{seen}");
    let org_a: threatmesh_protocol::PublicKey = seen["org_a"].as_str().unwrap().parse().unwrap();
    let id = threatmesh_node::formats::stix::kept_id(
        "indicator",
        &org_a,
        "indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f",
    );
    let ip = &on_b[id.as_str()];
    assert_eq!(ip["pattern"], "[ipv4-addr:value = '203.0.113.77']");
    assert_eq!(
        ip["markings"],
        serde_json::json!(["marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb"])
    );
}
