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
