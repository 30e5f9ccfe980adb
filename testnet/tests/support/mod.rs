//! What the testnet's end-to-end tests share: the venv's interpreter and waiting (from the
//! workspace's kit), and a testnet that is killed even when a test fails.

#![allow(dead_code)] // each test binary uses the part it needs

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use threatmesh_test_support::wait_for;

pub(crate) const BINARY: &str = env!("CARGO_BIN_EXE_threatmesh-testnet");

/// How long these tests wait for anything a testnet does.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(60);

/// The Python of the venv `scripts/test` sets up (the kit's one policy), checked to import
/// `modules` (comma-separated). Fails the test, saying how to set it up, when it cannot: a
/// test never passes by skipping.
pub(crate) fn python(modules: &str) -> PathBuf {
    threatmesh_test_support::python::python_importing(modules)
        .unwrap_or_else(|error| panic!("{error}"))
}

/// Waits until `done` holds, failing the test after [`TIMEOUT`] with `what` in the message.
pub(crate) fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    wait_for(what, TIMEOUT, || done().then_some(()));
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
    wait_until("the testnet to come up", || testnet.json.exists());
    testnet
}
