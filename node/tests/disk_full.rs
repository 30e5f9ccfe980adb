//! A full disk, through the real binary: the node runs as a child process whose files may
//! not grow past a few MiB (`RLIMIT_FSIZE`, set by `ulimit -f` in a bash wrapper, with
//! SIGXFSZ ignored so that a write past the limit fails with EFBIG instead of killing the
//! process: what a full disk looks like to sled). Publishing until a write fails must give
//! a clear 5xx, lookups must keep answering, later writes must be refused until restart,
//! and after a restart with the limit lifted the store must open and hold everything that
//! was acknowledged, and accept writes again.

#![allow(clippy::unwrap_used)] // tests unwrap what they built themselves

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BINARY: &str = env!("CARGO_BIN_EXE_threatmesh");
const TIMEOUT: Duration = Duration::from_secs(30);
/// The file-size limit, in bash's 1024-byte blocks: room for the node to start and
/// store a few dozen entries, then the store's file hits it.
const LIMIT_KIB: u64 = 6 * 1024;
/// Indicators per publish: one entry of about 60 KB.
const BATCH: u32 = 2_000;

fn ok(dir: &Path, args: &[&str]) -> String {
    let output: Output = Command::new(BINARY)
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "threatmesh {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn wait_for<T>(what: &str, mut done: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Some(value) = done() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A node process; killed if the test fails before stopping it.
struct Node {
    child: Child,
    api: String,
    token: String,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Node {
    /// Starts node `a` of `dir`, under a file-size limit if `limit_kib` is set.
    fn start(dir: &Path, federation: &str, limit_kib: Option<u64>) -> Node {
        let endpoints = dir.join("a/data/endpoints.json");
        let _ = std::fs::remove_file(&endpoints);
        let limit = limit_kib.map_or_else(|| "unlimited".to_owned(), |kib| kib.to_string());
        let child = Command::new("bash")
            .current_dir(dir)
            .arg("-c")
            .arg(r#"trap '' XFSZ; ulimit -f "$1"; shift; exec "$@""#)
            .arg("wrapper")
            .arg(limit)
            .arg(BINARY)
            .args([
                "run",
                "--config",
                "a/threatmesh.toml",
                "--federation",
                federation,
            ])
            .args(["--charter", "genesis.json"])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let json: serde_json::Value = wait_for("the node's endpoints", || {
            std::fs::read_to_string(&endpoints)
                .ok()
                .and_then(|text| serde_json::from_str(&text).ok())
        });
        let config = std::fs::read_to_string(dir.join("a/threatmesh.toml")).unwrap();
        let token = config
            .lines()
            .find_map(|line| line.strip_prefix("tokens = [\""))
            .and_then(|rest| rest.strip_suffix("\"]"))
            .unwrap()
            .to_owned();
        Node {
            child,
            api: json["api"].as_str().unwrap().to_owned(),
            token,
        }
    }

    fn agent() -> ureq::Agent {
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into()
    }

    /// POSTs a publish of `BATCH` ipv4 indicators from `first`; the status and the body.
    fn publish(&self, first: u32) -> (u16, serde_json::Value) {
        let items: Vec<serde_json::Value> = (first..first + BATCH)
            .map(|n| {
                let [_, b, c, d] = n.to_be_bytes();
                serde_json::json!({"type": "indicator", "kind": "ipv4",
                    "value": format!("10.{b}.{c}.{d}"), "valid_from": 1_700_000_000_000_u64})
            })
            .collect();
        let body = serde_json::json!({"tlp": "green", "items": items});
        let mut response = Node::agent()
            .post(&format!("{}/api/v1/publish", self.api))
            .header("Authorization", &format!("Bearer {}", self.token))
            .send_json(&body)
            .unwrap();
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap();
        (status, serde_json::from_str(&text).unwrap())
    }

    /// Looks up ipv4 indicator number `n`: the status and the answer.
    fn lookup(&self, n: u32) -> (u16, serde_json::Value) {
        let [_, b, c, d] = n.to_be_bytes();
        let mut response = Node::agent()
            .get(&format!(
                "{}/api/v1/indicators/ipv4/10.{b}.{c}.{d}",
                self.api
            ))
            .header("Authorization", &format!("Bearer {}", self.token))
            .call()
            .unwrap();
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap();
        (status, serde_json::from_str(&text).unwrap())
    }

    /// Whether the node knows ipv4 indicator number `n`; the lookup must succeed.
    fn knows(&self, n: u32) -> bool {
        let (status, answer) = self.lookup(n);
        assert_eq!(status, 200, "lookup failed: {answer}");
        answer["known"] == true
    }

    /// Stops the node with SIGTERM and waits for it.
    fn stop(mut self) {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let deadline = Instant::now() + TIMEOUT;
        while self.child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[test]
fn full_disk_fails_writes_clearly_keeps_reads_and_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    ok(dir, &["key", "new", "steward.key"]);
    ok(
        dir,
        &[
            "init",
            "--dir",
            "a",
            "--org-name",
            "CERT-A",
            "--country",
            "FR",
            "--api-listen",
            "127.0.0.1:0",
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
        ],
    );
    ok(
        dir,
        &[
            "charter",
            "new",
            "--name",
            "Disk",
            "--steward",
            "steward.key",
            "--member",
            "a/member.json",
            "--out",
            "genesis.json",
        ],
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

    // Publish until the store cannot write any more.
    let node = Node::start(dir, &federation, Some(LIMIT_KIB));
    let mut acknowledged = Vec::new();
    let failure = loop {
        let first = u32::try_from(acknowledged.len()).unwrap() * BATCH;
        let (status, body) = node.publish(first);
        if status == 201 {
            acknowledged.push(first);
            assert!(acknowledged.len() < 1_000, "the file-size limit never hit");
            continue;
        }
        break (status, body);
    };
    let (status, body) = failure;
    assert_eq!(status, 500, "{body}");
    let message = body["error"].as_str().unwrap();
    assert!(message.contains("storage"), "{message}");
    assert!(!acknowledged.is_empty(), "nothing fit before the limit");
    eprintln!(
        "{} publishes of {BATCH} indicators acknowledged, then: {message}",
        acknowledged.len()
    );

    // Reads see everything acknowledged. sled may rewrite a page while reading it
    // (consolidation), and such a read then fails with the stored I/O error: a lookup
    // answers right or says plainly that storage failed, never wrong.
    let mut answered = 0;
    for first in &acknowledged {
        for n in [*first, first + BATCH - 1] {
            match node.lookup(n) {
                (200, answer) => {
                    assert_eq!(answer["known"], true, "{answer}");
                    answered += 1;
                }
                (status, answer) => {
                    assert_eq!(status, 500, "{answer}");
                    let error = answer["error"].as_str().unwrap();
                    assert!(error.starts_with("storage: "), "{error}");
                }
            }
        }
    }
    eprintln!(
        "{answered} of {} lookups answered while full",
        2 * acknowledged.len()
    );
    // Later writes are refused with a message that says what to do.
    let (status, body) = node.publish(900_000);
    assert_eq!(status, 500, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("restart the node"),
        "{body}"
    );
    node.stop();

    // Space is back: the store opens, holds every acknowledged entry and takes writes.
    let node = Node::start(dir, &federation, None);
    for first in &acknowledged {
        assert!(
            node.knows(*first) && node.knows(first + BATCH - 1),
            "lost {first}"
        );
    }
    let (status, body) = node.publish(950_000);
    assert_eq!(status, 201, "{body}");
    assert!(node.knows(950_000));
    node.stop();
}
