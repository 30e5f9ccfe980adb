//! The `threatmesh` binary end to end: keys and certificates, a charter signed by a
//! steward, two nodes run as real processes, publish on one, query on the other, and a
//! clean stop on SIGTERM.

#![allow(clippy::unwrap_used)] // tests unwrap what they built themselves

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::{BINARY, Node, launch, ok, threatmesh, wait_for};
use threatmesh_node::formats::stix;
use threatmesh_protocol::{Kind, PublicKey, Value};

const TIMEOUT: Duration = Duration::from_secs(30);

/// Starts member `node` of the federation made in `dir`, dialling `bootstrap` if given.
fn start(dir: &Path, node: &str, federation: &str, bootstrap: Option<&str>) -> Node {
    let mut launch = launch(dir, node, federation)
        .env("RUST_LOG", "info")
        .timeout(TIMEOUT);
    if let Some(address) = bootstrap {
        launch = launch.args(["--bootstrap", address]);
    }
    launch.start().unwrap()
}

/// Runs `threatmesh <args>` in `dir` with the API token in the environment, which must
/// succeed: its standard output.
fn ok_with_token(dir: &Path, token: &str, args: &[&str]) -> String {
    let output = Command::new(BINARY)
        .current_dir(dir)
        .args(args)
        .env("THREATMESH_TOKEN", token)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "threatmesh {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Writes `token` to a new file at `path` only its owner can read.
fn write_token_file(path: &Path, token: &str) {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .unwrap();
    writeln!(file, "{token}").unwrap();
}

/// The permission bits of `path`.
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Runs `threatmesh <args>` in `dir` under umask 022, as a login shell usually has it, so
/// whatever the node creates without choosing its mode would be world-readable.
fn threatmesh_umask_022(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new("bash")
        .current_dir(dir)
        .arg("-c")
        .arg(r#"umask 022 && exec "$@""#)
        .arg("wrapper")
        .arg(BINARY)
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn other_local_users_cannot_read_the_token_or_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let init = threatmesh_umask_022(dir, &["init", "--dir", "n"]);
    assert!(init.status.success(), "{init:?}");
    let (config, data) = (dir.join("n/threatmesh.toml"), dir.join("n/data"));
    assert_eq!(mode(&config), 0o600, "threatmesh.toml holds the API token");
    assert_eq!(mode(&data), 0o700, "the store holds opened TLP:RED bundles");
    for key in ["node.key", "encryption.key"] {
        assert_eq!(mode(&dir.join("n").join(key)), 0o600, "{key}");
    }
    // The organisation's root key, made where it is kept, is private there too.
    let org = threatmesh_umask_022(
        dir,
        &[
            "org",
            "init",
            "--dir",
            "o",
            "--org-name",
            "CERT-N",
            "--country",
            "NL",
        ],
    );
    assert!(org.status.success(), "{org:?}");
    assert_eq!(mode(&dir.join("o/org.key")), 0o600, "org.key");

    // A configuration or a store others can read (an existing install, a careless copy)
    // is refused with the command that fixes it; nothing is widened or narrowed silently.
    let federation = "00".repeat(32);
    let run = || {
        let output = threatmesh_umask_022(
            dir,
            &[
                "run",
                "--config",
                "n/threatmesh.toml",
                "--federation",
                &federation,
            ],
        );
        assert!(!output.status.success());
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    chmod(&config, 0o644);
    let refused = run();
    assert!(
        refused.contains(&format!("chmod 600 {}", "n/threatmesh.toml")),
        "{refused}"
    );
    chmod(&config, 0o600);
    chmod(&data, 0o755);
    let refused = run();
    assert!(refused.contains("chmod 700"), "{refused}");
    assert!(refused.contains("n/data"), "{refused}");
    assert_eq!(mode(&data), 0o755, "the operator's mode is left alone");
    // Private again, the node goes on to the next thing it lacks (the genesis charter).
    chmod(&data, 0o700);
    let next = run();
    assert!(!next.contains("chmod"), "{next}");
    assert!(next.contains("charter_file"), "{next}");
    // A missing data directory is created private, whatever the umask.
    std::fs::remove_dir_all(&data).unwrap();
    let next = run();
    assert!(next.contains("charter_file"), "{next}");
    assert_eq!(mode(&data), 0o700);

    // A token file others can read is refused too, before anything is sent.
    std::fs::write(dir.join("open.token"), "x".repeat(32)).unwrap();
    chmod(&dir.join("open.token"), 0o644);
    let status = threatmesh(
        dir,
        &[
            "status",
            "--api",
            "http://127.0.0.1:9",
            "--token-file",
            "open.token",
        ],
    );
    assert!(!status.status.success());
    let stderr = String::from_utf8_lossy(&status.stderr);
    assert!(stderr.contains("chmod 600 open.token"), "{stderr}");
    // No token at all: the error says where one goes.
    let status = Command::new(BINARY)
        .current_dir(dir)
        .args(["status", "--api", "http://127.0.0.1:9"])
        .env_remove("THREATMESH_TOKEN")
        .env_remove("THREATMESH_TOKEN_FILE")
        .output()
        .unwrap();
    assert!(!status.status.success());
    let stderr = String::from_utf8_lossy(&status.stderr);
    assert!(
        stderr.contains("--token-file") && stderr.contains("THREATMESH_TOKEN"),
        "{stderr}"
    );
}

#[test]
fn two_nodes_share_what_one_publishes() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    ok(dir, &["key", "new", "steward.key"]);
    // Organisation A keeps its root key in a directory of its own (offline in real life):
    // the node is set up without it and gets only its certificate, in the member file.
    let made = ok(
        dir,
        &[
            "org",
            "init",
            "--dir",
            "org-a",
            "--org-name",
            "CERT-A",
            "--country",
            "FR",
        ],
    );
    assert!(made.contains("organisation CERT-A"), "{made}");
    let printed = ok(
        dir,
        &[
            "init",
            "--dir",
            "a",
            "--api-listen",
            "127.0.0.1:0",
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
        ],
    );
    assert!(printed.contains("org certify"), "{printed}");
    let certified = ok(
        dir,
        &[
            "org",
            "certify",
            "--dir",
            "org-a",
            "--request",
            "a/certificate-request.json",
            "--out",
            "a/member.json",
        ],
    );
    let node_a = printed
        .lines()
        .find_map(|line| line.strip_prefix("node key"))
        .unwrap()
        .trim();
    assert!(certified.contains(node_a), "{certified}");
    assert!(dir.join("org-a/org.key").exists());
    assert!(!dir.join("a/org.key").exists());
    // Organisation B uses the one-step setup of testnets.
    let printed = ok(
        dir,
        &[
            "init",
            "--dir",
            "b",
            "--with-org-key",
            "--org-name",
            "CERT-B",
            "--country",
            "DE",
            "--api-listen",
            "127.0.0.1:0",
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
        ],
    );
    assert!(printed.contains("peer id"), "{printed}");
    assert!(dir.join("b/org.key").exists());
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
    // The token from a file only its owner reads, or from the environment: never on the
    // command line, where `ps` shows it to every local user.
    write_token_file(&dir.join("a.token"), &a.token);
    let published = ok(
        dir,
        &[
            "publish",
            "--ignore-warninglists",
            "--api",
            &a.api,
            "--token-file",
            "a.token",
            "--tlp",
            "green",
            "list.txt",
        ],
    );
    assert!(published.contains("published in 1 entry"), "{published}");
    // A value on a warninglist is held back, named with its list, unless asked.
    std::fs::write(dir.join("resolver.txt"), "8.8.8.8\n").unwrap();
    let args = [
        "publish",
        "--api",
        &a.api,
        "--token-file",
        "a.token",
        "resolver.txt",
    ];
    let held = ok(dir, &args);
    assert!(held.contains("held back 1 indicator(s)"), "{held}");
    assert!(held.contains("item 0: ipv4 8.8.8.8 is on"), "{held}");
    assert!(held.contains("public-dns-v4"), "{held}");
    assert!(held.contains("published in 0 entries"), "{held}");

    let answer = wait_for("node b to know the published values", TIMEOUT, || {
        let output = ok_with_token(
            dir,
            &b.token,
            &[
                "query",
                "--api",
                &b.api,
                "198.51.100.7",
                "http://evil.example/gate.php",
            ],
        );
        output.contains("2 of 2 known").then_some(output)
    });
    assert!(answer.contains("active"), "{answer}");

    // Export: every entry node b holds, one JSON object per line.
    let exported = ok_with_token(dir, &b.token, &["export", "--api", &b.api]);
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
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("401"), "{refused:?}");
    // --token still works for old scripts, with a warning that says what to use.
    assert!(
        stderr.contains("--token is deprecated") && stderr.contains("--token-file"),
        "{stderr}"
    );

    // The stewards admit a third organisation; node a gets the new charter and shares it.
    ok(
        dir,
        &[
            "init",
            "--dir",
            "c",
            "--with-org-key",
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
    let pushed = ok_with_token(
        dir,
        &a.token,
        &["charter", "push", "--api", &a.api, "v2.json"],
    );
    assert!(pushed.contains("version 2"), "{pushed}");
    wait_for("node b to apply version 2", TIMEOUT, || {
        let status = ok_with_token(dir, &b.token, &["status", "--api", &b.api]);
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
            "--token-file",
            "a.token",
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
        let status = node.terminate(TIMEOUT).unwrap();
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
            "--ignore-warninglists",
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
    ok(dir, &["init", "--dir", "n"]);
    let output = threatmesh(dir, &["run", "--config", "n/threatmesh.toml"]);
    assert!(!output.status.success());
    let message = String::from_utf8_lossy(&output.stderr);
    assert!(message.contains("node.federation"), "{message}");
    // A second init over the same directory is refused, keys untouched.
    let again = threatmesh(dir, &["init", "--dir", "n"]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists already"));
}

/// A read token added to `init`'s configuration as its comment says reaches the running
/// node's API: it reads, and its publish is refused and counted.
#[test]
fn a_read_token_in_the_configuration_reads_and_may_not_publish() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let federation = support::federation(dir, "Read tokens", &["a"]);
    let config = dir.join("a/threatmesh.toml");
    let read_token = "r".repeat(48);
    let text = std::fs::read_to_string(&config).unwrap();
    let line = "# read_tokens = [\"...\"]";
    assert!(text.contains(line), "{text}");
    std::fs::write(
        &config,
        text.replace(line, &format!("read_tokens = [\"{read_token}\"]")),
    )
    .unwrap();
    let node = start(dir, "a", &federation, None);
    let reader = support::Api::new(&node.api, &read_token, TIMEOUT);
    let (status, answer) = reader.publish_ipv4(1, 1);
    assert_eq!(status, 403, "{answer}");
    let error = answer["error"].as_str().unwrap();
    assert!(error.starts_with("this token may read only"), "{error}");
    let writer = support::Api::new(&node.api, &node.token, TIMEOUT);
    let (status, answer) = writer.publish_ipv4(2, 1);
    assert_eq!(status, 201, "{answer}");
    let (status, answer) = reader.lookup_ipv4(2);
    assert_eq!(
        (status, answer["known"].clone()),
        (200, true.into()),
        "{answer}"
    );
    assert_eq!(
        reader
            .metrics()
            .get("threatmesh_api_read_only_refused_total"),
        Some(&1)
    );
}

/// Whoever takes a node's disk must not get the organisation's root key with it: `init`
/// leaves no root key in the node's directory unless asked to (testnets), and refuses
/// the organisation's name and country, which go where the root key is made.
#[test]
fn init_leaves_no_root_key_on_the_node() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    ok(dir, &["init", "--dir", "n"]);
    let files: Vec<String> = std::fs::read_dir(dir.join("n"))
        .unwrap()
        .map(|file| file.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!files.contains(&"org.key".to_owned()), "{files:?}");
    assert!(files.contains(&"node.key".to_owned()), "{files:?}");
    assert!(
        files.contains(&"certificate-request.json".to_owned()),
        "{files:?}"
    );
    // No key file in the node's directory is the root key of the certificate it gets.
    ok(
        dir,
        &[
            "org",
            "init",
            "--dir",
            "org",
            "--org-name",
            "CERT-N",
            "--country",
            "NL",
        ],
    );
    ok(
        dir,
        &[
            "org",
            "certify",
            "--dir",
            "org",
            "--request",
            "n/certificate-request.json",
            "--out",
            "n/member.json",
        ],
    );
    let member: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("n/member.json")).unwrap()).unwrap();
    let org = member["org"].as_str().unwrap();
    for file in ["node.key", "encryption.key"] {
        let shown = ok(dir, &["key", "show", &format!("n/{file}")]);
        assert_ne!(shown.trim(), org, "n/{file} is the root key");
    }

    // The old one-step form is refused with the way to go, and writes nothing.
    let refused = threatmesh(
        dir,
        &[
            "init",
            "--dir",
            "m",
            "--org-name",
            "CERT-M",
            "--country",
            "NL",
        ],
    );
    assert!(!refused.status.success());
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(message.contains("org init"), "{message}");
    assert!(message.contains("--with-org-key"), "{message}");
    assert!(!dir.join("m/org.key").exists());
    assert!(!dir.join("m/threatmesh.toml").exists());
}

/// Node b runs with the wrong encryption key (its organisation's key was not copied to it):
/// a bundle sealed to b's organisation is stored unread. Adding the key to b's keyring file
/// while b runs is enough: b picks the key up and reads the entry, without a restart and
/// without anyone sending it again.
#[test]
fn a_key_added_to_a_running_nodes_keyring_opens_what_it_stored_unread() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let federation = support::federation(dir, "Keyring federation", &["a", "b"]);
    std::fs::rename(dir.join("b/encryption.key"), dir.join("b-org.key")).unwrap();
    ok(dir, &["key", "new-encryption", "b/encryption.key"]);
    let member: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("b/member.json")).unwrap()).unwrap();
    let org_b = member["org"].as_str().unwrap().to_owned();

    let a = start(dir, "a", &federation, None);
    let b = start(dir, "b", &federation, Some(&a.p2p));
    std::fs::write(dir.join("red.txt"), "203.0.113.77\n").unwrap();
    let published = ok(
        dir,
        &[
            "publish",
            "--ignore-warninglists",
            "--api",
            &a.api,
            "--token",
            &a.token,
            "--tlp",
            "red",
            "--recipient",
            &org_b,
            "red.txt",
        ],
    );
    assert!(published.contains("published in 1 entry"), "{published}");
    let status = |node: &Node| -> serde_json::Value {
        serde_json::from_str(&ok(
            dir,
            &["status", "--api", &node.api, "--token", &node.token],
        ))
        .unwrap()
    };
    wait_for("node b to hold the entry unread", TIMEOUT, || {
        (status(&b)["store"]["unread"] == 1).then_some(())
    });
    let query = |node: &Node| {
        ok(
            dir,
            &[
                "query",
                "--api",
                &node.api,
                "--token",
                &node.token,
                "203.0.113.77",
            ],
        )
    };
    assert!(query(&b).contains("0 of 1 known"), "{}", query(&b));

    let added = ok(
        dir,
        &[
            "key",
            "add-encryption",
            "b/encryption.key",
            "--from",
            "b-org.key",
        ],
    );
    assert!(added.contains("2 key(s)"), "{added}");
    wait_for("node b to read the entry", TIMEOUT, || {
        query(&b).contains("1 of 1 known").then_some(())
    });
    assert_eq!(status(&b)["store"]["unread"], 0);
}
