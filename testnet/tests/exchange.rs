//! `threatmesh import` and `threatmesh export` end to end on a two-node testnet: files in
//! STIX, MISP and CSV go in on one node, travel the mesh, and come out of the other as a
//! STIX bundle that the OASIS validator accepts, a MISP feed that PyMISP reads, and CSV.
//!
//! Needs the Python venv `scripts/test` sets up; without it the test fails, saying so.

#![allow(clippy::unwrap_used)] // tests unwrap what they built themselves

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::{BINARY, wait_until};

fn workspace(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(path)
}

/// `threatmesh <args>` against one node of the testnet.
fn threatmesh(node: &serde_json::Value, args: &[&str]) -> Output {
    Command::new(BINARY)
        .arg("node")
        .args(args)
        .env("THREATMESH_API", node["api"].as_str().unwrap())
        .env("THREATMESH_TOKEN", node["token"].as_str().unwrap())
        .output()
        .unwrap()
}

fn ok(node: &serde_json::Value, args: &[&str]) -> String {
    let output = threatmesh(node, args);
    assert!(
        output.status.success(),
        "threatmesh {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn python_checks(python: &Path, bundle: &Path, feed: &Path) -> serde_json::Value {
    let script = r#"
import json, os, sys
from stix2validator import validate_file, ValidationOptions
from pymisp import MISPEvent
result = validate_file(sys.argv[1], ValidationOptions(version="2.1"))
errors = [str(e) for o in result.object_results for e in o.errors]
if result.fatal is not None:
    errors.append(str(result.fatal.error))
feed = sys.argv[2]
manifest = json.load(open(os.path.join(feed, "manifest.json")))
values = []
for uuid in manifest:
    event = MISPEvent()
    event.load_file(os.path.join(feed, uuid + ".json"))
    values.extend(a.value for a in event.attributes)
print(json.dumps({"valid": bool(result.is_valid), "errors": errors,
                  "events": len(manifest), "misp_values": sorted(values)}))
"#;
    let output = Command::new(python)
        .args(["-c", script])
        .arg(bundle)
        .arg(feed)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn files_imported_on_one_node_export_from_the_other_in_every_format() {
    let python = support::python("stix2validator, pymisp");
    let dir = tempfile::tempdir().unwrap();
    let testnet = support::up(2, &dir.path().join("work"));
    let nodes: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&testnet.json).unwrap()).unwrap();
    let (a, b) = (&nodes[0], &nodes[1]);

    let stix = workspace("tests/fixtures/stix/indicator-for-c2-ip-address.json");
    let printed = ok(a, &["import", "--format", "stix", stix.to_str().unwrap()]);
    assert!(printed.contains("1 indicators"), "{printed}");
    assert!(printed.contains("published 1 items"), "{printed}");

    let misp = workspace("node/tests/fixtures/misp/57c4445b-c548-4654-af0b-4be3950d210f.json");
    let printed = ok(a, &["import", "--format", "misp", misp.to_str().unwrap()]);
    assert!(printed.contains("published"), "{printed}");

    let list = dir.path().join("list.txt");
    std::fs::write(
        &list,
        "# C2 seen this week\nhxxp://evil-c2[.]example/gate.php\n198.51.100[.]7\nnot a value\n",
    )
    .unwrap();
    let printed = ok(
        a,
        &[
            "import",
            "--format",
            "csv",
            "--tlp",
            "green",
            list.to_str().unwrap(),
        ],
    );
    assert!(printed.contains("2 indicators"), "{printed}");
    assert!(printed.contains("refused 1:"), "{printed}");
    assert!(printed.contains("line 4"), "{printed}");
    // A dry run reads and reports, and publishes nothing.
    let printed = ok(
        a,
        &[
            "import",
            "--format",
            "csv",
            "--dry-run",
            list.to_str().unwrap(),
        ],
    );
    assert!(printed.contains("dry run: nothing published"), "{printed}");

    // Everything A published arrives at B.
    let entries_on = |node: &serde_json::Value| ok(node, &["export"]).lines().count();
    let published = entries_on(a);
    assert!(published >= 3, "{published}");
    wait_until("B to hold every entry", || entries_on(b) == published);

    let bundle = dir.path().join("b.json");
    let printed = ok(
        b,
        &[
            "export",
            "--format",
            "stix",
            "--out",
            bundle.to_str().unwrap(),
        ],
    );
    assert!(printed.contains("STIX objects"), "{printed}");
    let exported: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&bundle).unwrap()).unwrap();
    let objects = exported["objects"].as_array().unwrap();
    // The imported STIX indicator keeps its pattern across the mesh. Its id is A's word
    // only on A's own nodes: B exports it namespaced by A's organisation, so no member can
    // publish under ids that are another's.
    let imported = "indicator--33fe3b22-0201-47cf-85d0-97c02164528d";
    let status: serde_json::Value = serde_json::from_str(&ok(a, &["status"])).unwrap();
    let org_a: threatmesh_protocol::PublicKey =
        status["organisation"].as_str().unwrap().parse().unwrap();
    let on_b = threatmesh_node::formats::stix::kept_id("indicator", &org_a, imported);
    let pattern = "[ipv4-addr:value = '10.0.0.0']";
    assert!(
        objects
            .iter()
            .any(|object| object["id"] == on_b.as_str() && object["pattern"] == pattern)
    );
    assert!(!objects.iter().any(|object| object["id"] == imported));
    let on_a = dir.path().join("a.json");
    ok(
        a,
        &[
            "export",
            "--format",
            "stix",
            "--out",
            on_a.to_str().unwrap(),
        ],
    );
    let exported_on_a: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&on_a).unwrap()).unwrap();
    assert!(
        exported_on_a["objects"]
            .as_array()
            .unwrap()
            .iter()
            .any(|object| object["id"] == imported && object["pattern"] == pattern)
    );
    let feed = dir.path().join("feed");
    ok(
        b,
        &[
            "export",
            "--format",
            "misp",
            "--out",
            feed.to_str().unwrap(),
        ],
    );
    let csv = ok(b, &["export", "--format", "csv"]);
    assert!(csv.starts_with("kind,value,tlp"), "{csv}");
    assert!(csv.contains("http://evil-c2.example/gate.php"), "{csv}");
    assert!(csv.contains("198.51.100.7,TLP:GREEN"), "{csv}");

    let checked = python_checks(&python, &bundle, &feed);
    assert_eq!(checked["valid"], true, "{checked}");
    assert_eq!(checked["errors"], serde_json::json!([]), "{checked}");
    assert_eq!(
        checked["events"].as_u64().unwrap() as usize,
        published,
        "{checked}"
    );
    let values = checked["misp_values"].as_array().unwrap();
    assert!(
        values.contains(&serde_json::json!("198.51.100.7")),
        "{checked}"
    );
}
