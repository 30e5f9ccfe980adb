//! What the testnet's end-to-end tests that drive Python tools share: the venv's
//! interpreter, and a testnet that is killed even when a test fails.

#![allow(dead_code)] // each test binary uses the part it needs

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub(crate) const BINARY: &str = env!("CARGO_BIN_EXE_threatmesh-testnet");

/// The Python of the venv `scripts/test` sets up (`THREATMESH_PYTHON`, or `.venv` at the
/// workspace root), checked to import `modules` (comma-separated). Fails the test, saying
/// how to set it up, when it cannot: a test never passes by skipping.
pub(crate) fn python(modules: &str) -> PathBuf {
    let python = std::env::var_os("THREATMESH_PYTHON").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python"),
        PathBuf::from,
    );
    let found = Command::new(&python)
        .args(["-c", &format!("import {modules}")])
        .status()
        .is_ok_and(|status| status.success());
    assert!(
        found,
        "{} cannot import {modules}: run ./scripts/test (it sets up .venv), or set \
         THREATMESH_PYTHON to a Python with the packages of tests/python-requirements.txt",
        python.display()
    );
    python
}

/// A running `threatmesh-testnet up`, killed when dropped.
pub(crate) struct Testnet {
    child: std::process::Child,
    /// Its `testnet.json`: each node's organisation, API address and token.
    pub(crate) json: PathBuf,
}

impl Drop for Testnet {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `nodes` nodes on free loopback ports in `work` and waits for the mesh.
pub(crate) fn up(nodes: usize, work: &Path) -> Testnet {
    let child = Command::new(BINARY)
        .args([
            "up",
            "--nodes",
            &nodes.to_string(),
            "--base-port",
            "0",
            "--dir",
        ])
        .arg(work)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|error| panic!("starting the testnet: {error}"));
    let testnet = Testnet {
        child,
        json: work.join("testnet.json"),
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !testnet.json.exists() {
        assert!(Instant::now() < deadline, "the testnet did not come up");
        std::thread::sleep(Duration::from_millis(50));
    }
    testnet
}
