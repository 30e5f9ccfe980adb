//! What the tests that drive the `threatmesh` binary as a process share: running a
//! command of it, and waiting for something a process does.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

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

/// Polls `done` every 50 ms until it returns something, failing after `timeout`.
pub(crate) fn wait_for<T>(what: &str, timeout: Duration, mut done: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = done() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A federation made with the CLI in `dir`: a steward key, one node directory per name of
/// `members` (organisation `CERT-<NAME>`, API and libp2p on 127.0.0.1 port 0), and a
/// genesis charter `genesis.json` named `name` admitting them all, signed. Its id.
#[allow(dead_code)] // cli.rs builds its federation command by command, checking each
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
