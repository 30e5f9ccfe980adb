//! The `threatmesh` binary end to end: keys and certificates, a charter signed by a
//! steward, two nodes run as real processes, publish on one, query on the other, and a
//! clean stop on SIGTERM.

#![allow(clippy::unwrap_used)] // tests unwrap what they built themselves

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use support::{BINARY, ok, threatmesh, wait_for};
use threatmesh_node::formats::stix;
use threatmesh_protocol::{Kind, PublicKey, Value};

const TIMEOUT: Duration = Duration::from_secs(30);

/// A running node process; killed if the test fails before stopping it.
struct Node {
    child: Child,
    api: String,
    p2p: String,
    token: String,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(dir: &Path, node: &str, federation: &str, bootstrap: Option<&str>) -> Node {
    let mut args = vec![
        "run".to_owned(),
        "--config".into(),
        format!("{node}/threatmesh.toml"),
        "--federation".into(),
        federation.into(),
        "--charter".into(),
        "genesis.json".into(),
    ];
    if let Some(address) = bootstrap {
        args.extend(["--bootstrap".into(), address.into()]);
    }
    let child = Command::new(BINARY)
        .current_dir(dir)
        .args(&args)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let endpoints: PathBuf = dir.join(node).join("data/endpoints.json");
    let json: serde_json::Value = wait_for("the node's endpoints", TIMEOUT, || {
        std::fs::read_to_string(&endpoints)
            .ok()
            .and_then(|text| serde_json::from_str(&text).ok())
    });
    let config = std::fs::read_to_string(dir.join(node).join("threatmesh.toml")).unwrap();
    let token = config
        .lines()
        .find_map(|line| line.strip_prefix("tokens = [\""))
        .and_then(|rest| rest.strip_suffix("\"]"))
        .unwrap()
        .to_owned();
    Node {
        child,
        api: json["api"].as_str().unwrap().to_owned(),
        p2p: json["p2p"][0].as_str().unwrap().to_owned(),
        token,
    }
}

#[test]
fn two_nodes_share_what_one_publishes() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    ok(dir, &["key", "new", "steward.key"]);
    for (node, name, country) in [("a", "CERT-A", "FR"), ("b", "CERT-B", "DE")] {
        let printed = ok(
            dir,
            &[
                "init",
                "--dir",
                node,
                "--org-name",
                name,
                "--country",
                country,
                "--api-listen",
                "127.0.0.1:0",
                "--listen",
                "/ip4/127.0.0.1/tcp/0",
            ],
        );
        assert!(printed.contains("peer id"), "{printed}");
    }
    ok(
        dir,
        &[
            "charter",
            "new",
            "--name",
            "Test federation",
            "--steward",
            "steward.key",
            "--member",
            "a/member.json",
            "--member",
            "b/member.json",
            "--out",
            "genesis.json",
        ],
    );
    // Unsigned, the charter does not verify.
    assert!(
        !threatmesh(dir, &["charter", "verify", "genesis.json"])
            .status
            .success()
    );
    ok(
        dir,
        &["charter", "sign", "--key", "steward.key", "genesis.json"],
    );
    let verified = ok(dir, &["charter", "verify", "genesis.json"]);
    let federation = verified
        .lines()
        .find_map(|line| line.strip_prefix("federation: "))
        .unwrap()
        .to_owned();

    let a = start(dir, "a", &federation, None);
    let b = start(dir, "b", &federation, Some(&a.p2p));
    std::fs::write(
        dir.join("list.txt"),
        "# C2 servers\n198.51.100[.]7\nhxxp://evil[.]example/gate.php\n",
    )
    .unwrap();
    let published = ok(
        dir,
        &[
            "publish", "--api", &a.api, "--token", &a.token, "--tlp", "green", "list.txt",
        ],
    );
    assert!(published.contains("published in 1 entry"), "{published}");

    let answer = wait_for("node b to know the published values", TIMEOUT, || {
        let output = ok(
            dir,
            &[
                "query",
                "--api",
                &b.api,
                "--token",
                &b.token,
                "198.51.100.7",
                "http://evil.example/gate.php",
            ],
        );
        output.contains("2 of 2 known").then_some(output)
    });
    assert!(answer.contains("active"), "{answer}");

    // Export: every entry node b holds, one JSON object per line.
    let exported = ok(dir, &["export", "--api", &b.api, "--token", &b.token]);
    let lines: Vec<serde_json::Value> = exported
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines.len(), 1);
    let published_by_a = lines[0].clone();

    stix_ids_stay_with_their_organisation(dir, &a, &b);
    assert_eq!(
        published_by_a["body"]["bundle"]["items"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // A wrong token is refused with the API's own message.
    let refused = threatmesh(
        dir,
        &[
            "query",
            "--api",
            &b.api,
            "--token",
            "x".repeat(20).as_str(),
            "198.51.100.7",
        ],
    );
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("401"),
        "{refused:?}"
    );

    // The stewards admit a third organisation; node a gets the new charter and shares it.
    ok(
        dir,
        &[
            "init",
            "--dir",
            "c",
            "--org-name",
            "CERT-C",
            "--country",
            "SG",
        ],
    );
    ok(
        dir,
        &[
            "charter",
            "admit",
            "--current",
            "genesis.json",
            "--member",
            "c/member.json",
            "--out",
            "v2.json",
        ],
    );
    ok(dir, &["charter", "sign", "--key", "steward.key", "v2.json"]);
    ok(
        dir,
        &["charter", "verify", "v2.json", "--previous", "genesis.json"],
    );
    let pushed = ok(
        dir,
        &[
            "charter", "push", "--api", &a.api, "--token", &a.token, "v2.json",
        ],
    );
    assert!(pushed.contains("version 2"), "{pushed}");
    wait_for("node b to apply version 2", TIMEOUT, || {
        let status = ok(dir, &["status", "--api", &b.api, "--token", &b.token]);
        status.contains("\"charter_version\": 2").then_some(())
    });
    // Pushing it again, or the genesis, changes nothing and says why.
    let stale = threatmesh(
        dir,
        &[
            "charter",
            "push",
            "--api",
            &a.api,
            "--token",
            &a.token,
            "genesis.json",
        ],
    );
    assert!(!stale.status.success());
    assert!(
        String::from_utf8_lossy(&stale.stderr).contains("422"),
        "{stale:?}"
    );

    // SIGTERM stops a node cleanly: exit code 0, endpoints file removed.
    for (node, name) in [(a, "a"), (b, "b")] {
        let mut node = node;
        let pid = node.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let status = wait_for("the node to stop", TIMEOUT, || {
            node.child.try_wait().unwrap()
        });
        assert!(status.success(), "node {name} exited with {status}");
        assert!(!dir.join(name).join("data/endpoints.json").exists());
    }
}

/// The organisation node `node` serves, as its status names it.
fn organisation(dir: &Path, node: &Node) -> PublicKey {
    let status = ok(dir, &["status", "--api", &node.api, "--token", &node.token]);
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    status["organisation"].as_str().unwrap().parse().unwrap()
}

/// The bundle `threatmesh export --format stix` writes from `node`.
fn export_stix(dir: &Path, node: &Node, name: &str) -> serde_json::Value {
    ok(
        dir,
        &[
            "export",
            "--api",
            &node.api,
            "--token",
            &node.token,
            "--format",
            "stix",
            "--out",
            name,
        ],
    );
    serde_json::from_slice(&std::fs::read(dir.join(name)).unwrap()).unwrap()
}

/// A STIX bundle of one indicator per (id, address), modified at `modified`.
fn stix_file(indicators: &[(&str, &str)], modified: &str) -> String {
    let objects: Vec<serde_json::Value> = indicators
        .iter()
        .map(|(id, address)| {
            serde_json::json!({
                "type": "indicator", "spec_version": "2.1", "id": id,
                "created": modified, "modified": modified,
                "pattern": format!("[ipv4-addr:value = '{address}']"),
                "pattern_type": "stix", "valid_from": "2026-01-01T00:00:00Z",
            })
        })
        .collect();
    serde_json::json!({
        "type": "bundle", "id": "bundle--5d0092c5-5f74-4287-9642-33f4c354e56d",
        "objects": objects,
    })
    .to_string()
}

/// The (id, pattern) of the indicators `created_by` made in `bundle`.
fn indicators_by(bundle: &serde_json::Value, created_by: &str) -> Vec<(String, String)> {
    let mut found: Vec<(String, String)> = bundle["objects"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|object| object["type"] == "indicator" && object["created_by_ref"] == created_by)
        .map(|object| {
            (
                object["id"].as_str().unwrap().to_owned(),
                object["pattern"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    found.sort();
    found
}

/// Member B publishes its own values under member A's STIX ids, the one A imported with
/// its STIX and the one derived from A's key; neither node's STIX export lets B's objects
/// take A's ids from A.
fn stix_ids_stay_with_their_organisation(dir: &Path, a: &Node, b: &Node) {
    let (org_a, org_b) = (organisation(dir, a), organisation(dir, b));
    let kept = "indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f";
    let derived = stix::indicator_id(&org_a, &Value::parse(Kind::Ipv4, "198.51.100.7").unwrap());
    std::fs::write(
        dir.join("a.json"),
        stix_file(&[(kept, "203.0.113.1")], "2026-01-01T00:00:00.000Z"),
    )
    .unwrap();
    std::fs::write(
        dir.join("b.json"),
        stix_file(
            &[(kept, "192.0.2.66"), (&derived, "192.0.2.67")],
            "2026-06-01T00:00:00.000Z",
        ),
    )
    .unwrap();
    for (node, file) in [(a, "a.json"), (b, "b.json")] {
        let args = [
            "import",
            "--api",
            &node.api,
            "--token",
            &node.token,
            "--format",
            "stix",
            "--tlp",
            "green",
            file,
        ];
        let imported = ok(dir, &args);
        assert!(imported.contains("published"), "{imported}");
    }
    for node in [a, b] {
        wait_for("both nodes to hold both imports", TIMEOUT, || {
            let output = ok(
                dir,
                &[
                    "query",
                    "--api",
                    &node.api,
                    "--token",
                    &node.token,
                    "203.0.113.1",
                    "192.0.2.66",
                ],
            );
            output.contains("2 of 2 known").then_some(())
        });
    }
    let (identity_a, identity_b) = (stix::identity_id(&org_a), stix::identity_id(&org_b));
    let a_pattern = |address: &str| format!("[ipv4-addr:value = '{address}']");
    // A's node: A's objects under A's ids, its imported id as it was; B's under others.
    let on_a = export_stix(dir, a, "on-a.json");
    let expected_a = [
        (kept.to_owned(), a_pattern("203.0.113.1")),
        (derived.clone(), a_pattern("198.51.100.7")),
    ];
    let from_a = indicators_by(&on_a, &identity_a);
    assert!(
        expected_a.iter().all(|object| from_a.contains(object)),
        "{from_a:?}"
    );
    for (id, pattern) in indicators_by(&on_a, &identity_b) {
        assert!(id != kept && id != derived, "B took A's id: {id} {pattern}");
    }
    // B's node: A's imported id namespaced by A (B's node cannot tell it is A's), A's
    // objects unchanged; B's own node takes B at its word for B's ids.
    let on_b = export_stix(dir, b, "on-b.json");
    let from_a = indicators_by(&on_b, &identity_a);
    let elsewhere = stix::kept_id("indicator", &org_a, kept);
    assert!(
        from_a.contains(&(elsewhere, a_pattern("203.0.113.1")))
            && from_a.contains(&(derived.clone(), a_pattern("198.51.100.7"))),
        "{from_a:?}"
    );
}

#[test]
fn run_refuses_a_bad_configuration_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    ok(
        dir,
        &[
            "init",
            "--dir",
            "n",
            "--org-name",
            "CERT-N",
            "--country",
            "NL",
        ],
    );
    let output = threatmesh(dir, &["run", "--config", "n/threatmesh.toml"]);
    assert!(!output.status.success());
    let message = String::from_utf8_lossy(&output.stderr);
    assert!(message.contains("node.federation"), "{message}");
    // A second init over the same directory is refused, keys untouched.
    let again = threatmesh(
        dir,
        &[
            "init",
            "--dir",
            "n",
            "--org-name",
            "CERT-N",
            "--country",
            "NL",
        ],
    );
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists already"));
}
