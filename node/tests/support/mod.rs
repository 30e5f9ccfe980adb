//! What the tests that drive the `threatmesh` binary as a process share: running a
//! command of it, building a federation with the CLI, and talking to a running node's
//! HTTP API. Starting a node, waiting and finding Python come from the workspace's kit
//! (`threatmesh_test_support`), bound here to this crate's binary.

// Each test binary that includes this module uses a part of it.
#![allow(dead_code, unused_imports)]

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

pub(crate) use threatmesh_protocol::testing::ipv4;
pub(crate) use threatmesh_test_support::process::{Launch, Node};
pub(crate) use threatmesh_test_support::wait_for;

/// The binary under test, built by cargo for these tests.
pub(crate) const BINARY: &str = env!("CARGO_BIN_EXE_threatmesh");

/// Runs `threatmesh <args>` in `dir` to its end.
pub(crate) fn threatmesh(dir: &Path, args: &[&str]) -> Output {
    Command::new(BINARY)
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap_or_else(|error| panic!("cannot run {BINARY}: {error}"))
}

/// Runs `threatmesh <args>` in `dir`, which must succeed: its standard output.
pub(crate) fn ok(dir: &Path, args: &[&str]) -> String {
    let output = threatmesh(dir, args);
    assert!(
        output.status.success(),
        "threatmesh {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("the CLI writes UTF-8")
}

/// `threatmesh run` for member `node` of the federation `federation` made in `dir` (see
/// [`federation`]).
pub(crate) fn launch(dir: &Path, node: &str, federation: &str) -> Launch {
    Launch::new(BINARY, dir, node, federation)
}

/// The Python of the test venv, able to import `modules` (comma-separated); the test fails
/// saying how to set one up when there is none.
pub(crate) fn python(modules: &str) -> std::path::PathBuf {
    threatmesh_test_support::python::python_importing(modules)
        .unwrap_or_else(|error| panic!("{error}"))
}

/// A federation made with the CLI in `dir`: a steward key, one node directory per name of
/// `members` (organisation `CERT-<NAME>`, API and libp2p on 127.0.0.1 port 0), and a
/// genesis charter `genesis.json` named `name` admitting them all, signed. Its id.
pub(crate) fn federation(dir: &Path, name: &str, members: &[&str]) -> String {
    ok(dir, &["key", "new", "steward.key"]);
    let mut charter = vec!["charter", "new", "--name", name, "--steward", "steward.key"];
    let member_files: Vec<String> = members
        .iter()
        .map(|member| format!("{member}/member.json"))
        .collect();
    for (member, file) in members.iter().zip(&member_files) {
        let org = format!("CERT-{}", member.to_uppercase());
        ok(
            dir,
            &[
                "init",
                "--dir",
                member,
                "--with-org-key",
                "--org-name",
                &org,
                "--country",
                "EU",
                "--api-listen",
                "127.0.0.1:0",
                "--listen",
                "/ip4/127.0.0.1/tcp/0",
            ],
        );
        charter.extend(["--member", file]);
    }
    charter.extend(["--out", "genesis.json"]);
    ok(dir, &charter);
    ok(
        dir,
        &["charter", "sign", "--key", "steward.key", "genesis.json"],
    );
    let verified = ok(dir, &["charter", "verify", "genesis.json"]);
    verified
        .lines()
        .find_map(|line| line.strip_prefix("federation: "))
        .expect("`charter verify` names the federation")
        .to_owned()
}

/// A running node's HTTP API, with its token.
pub(crate) struct Api {
    /// `http://127.0.0.1:<port>`.
    pub(crate) url: String,
    token: String,
    agent: ureq::Agent,
}

impl Api {
    /// The API at `url`, called with `token`; a call gives up after `timeout`.
    pub(crate) fn new(url: &str, token: &str, timeout: Duration) -> Api {
        Api {
            url: url.to_owned(),
            token: token.to_owned(),
            agent: ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(timeout))
                .build()
                .into(),
        }
    }

    /// GETs `path`, accepting `accept`: the status and the body.
    pub(crate) fn get(&self, path: &str, accept: &str) -> (u16, String) {
        let mut response = self
            .agent
            .get(&format!("{}{path}", self.url))
            .header("Authorization", &format!("Bearer {}", self.token))
            .header("Accept", accept)
            .call()
            .unwrap_or_else(|error| panic!("GET {path}: {error}"));
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .read_to_string()
            .unwrap_or_else(|error| panic!("GET {path}: {error}"));
        (status, body)
    }

    /// Publishes one entry of `count` ipv4 indicators, numbers `first` on (see [`ipv4`]):
    /// the status and the JSON answer.
    pub(crate) fn publish_ipv4(&self, first: u32, count: u32) -> (u16, serde_json::Value) {
        let items: Vec<serde_json::Value> = (first..first + count)
            .map(|n| {
                serde_json::json!({"type": "indicator", "kind": "ipv4", "value": ipv4(n),
                    "valid_from": 1_700_000_000_000_u64})
            })
            .collect();
        // 10.0.0.0/8 is on the default warninglists (RFC 1918): published all the same.
        let body = serde_json::json!({"tlp": "green", "items": items, "ignore_warninglists": true});
        let mut response = self
            .agent
            .post(&format!("{}/api/v1/publish", self.url))
            .header("Authorization", &format!("Bearer {}", self.token))
            .send_json(&body)
            .unwrap_or_else(|error| panic!("publish: {error}"));
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .read_to_string()
            .unwrap_or_else(|error| panic!("publish: {error}"));
        (status, json(&text))
    }

    /// Looks up ipv4 indicator number `n`: the status and the JSON answer.
    pub(crate) fn lookup_ipv4(&self, n: u32) -> (u16, serde_json::Value) {
        let (status, text) = self.get(
            &format!("/api/v1/indicators/ipv4/{}", ipv4(n)),
            "application/json",
        );
        (status, json(&text))
    }

    /// The node's metrics by full name, labels included (`threatmesh_peers`, ...).
    pub(crate) fn metrics(&self) -> HashMap<String, u64> {
        let (status, text) = self.get("/metrics", "*/*");
        assert_eq!(status, 200, "{text}");
        text.lines()
            .filter(|line| !line.starts_with('#'))
            .filter_map(|line| line.rsplit_once(' '))
            .filter_map(|(name, value)| Some((name.to_owned(), value.parse().ok()?)))
            .collect()
    }
}

/// `text` as JSON; a test fails on anything else.
pub(crate) fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|error| panic!("not JSON ({error}): {text}"))
}
