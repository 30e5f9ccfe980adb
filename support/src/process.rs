//! A `threatmesh` node run as a child process, as an operator runs it: `threatmesh run
//! --config <node>/threatmesh.toml --federation <id> --charter genesis.json` in a directory
//! a test set up with the CLI (`init`, `charter new`, ...).
//!
//! [`Launch`] starts it and waits for the `endpoints.json` the node writes once it serves,
//! then reads the API token from the node's configuration, parsed as TOML. The [`Node`] it
//! gives is killed when dropped, so a failing test leaves no process behind.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use crate::wait::{TimedOut, try_wait_for};

/// How long a node may take to start or stop unless the caller says otherwise.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// A node process that could not be started, read or stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The program (the node, or its wrapper) did not run.
    #[error("cannot run {program}")]
    Spawn {
        /// The program run.
        program: String,
        /// Why it did not run.
        #[source]
        source: std::io::Error,
    },
    /// The process ended before it wrote its endpoints.
    #[error("the node of {node} exited with {status} before it served")]
    Exited {
        /// The node's directory.
        node: PathBuf,
        /// How it ended.
        status: ExitStatus,
    },
    /// Waiting for the endpoints, or for the node to stop, took too long.
    #[error(transparent)]
    TimedOut(#[from] TimedOut),
    /// The node's configuration could not be read or holds no API token.
    #[error("no API token in {}: {reason}", .path.display())]
    Token {
        /// The configuration file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// `endpoints.json` names no libp2p listen address.
    #[error("{} names no p2p address", .path.display())]
    NoP2p {
        /// The endpoints file.
        path: PathBuf,
    },
    /// Signalling or waiting for the process failed.
    #[error("stopping the node")]
    Stop(#[source] std::io::Error),
}

/// What a running node writes to `<data_dir>/endpoints.json`.
#[derive(Debug, serde::Deserialize)]
pub struct Endpoints {
    /// The node's libp2p peer id.
    pub peer_id: String,
    /// Its HTTP API, `http://127.0.0.1:<port>`.
    pub api: String,
    /// Its libp2p listen addresses.
    pub p2p: Vec<String>,
}

impl Endpoints {
    /// The endpoints in `path`, once the node has written them whole.
    pub fn read(path: &Path) -> Option<Endpoints> {
        let text = std::fs::read_to_string(path).ok()?;
        serde_json::from_str(&text).ok()
    }
}

/// The first token of `[api] tokens` in the node configuration at `config`.
pub fn api_token(config: &Path) -> Result<String, Error> {
    let failed = |reason: String| Error::Token {
        path: config.to_owned(),
        reason,
    };
    let text = std::fs::read_to_string(config).map_err(|error| failed(error.to_string()))?;
    let table: toml::Table = toml::from_str(&text).map_err(|error| failed(error.to_string()))?;
    table
        .get("api")
        .and_then(|api| api.get("tokens"))
        .and_then(|tokens| tokens.get(0))
        .and_then(|token| token.as_str())
        .map(str::to_owned)
        .ok_or_else(|| failed("`[api] tokens` is empty or missing".to_owned()))
}

/// Where a node process's `endpoints.json` is, given the process id (a node in a mount
/// namespace of its own is seen through `/proc/<pid>/root`).
type EndpointsAt = Box<dyn Fn(u32) -> PathBuf>;

/// How to start one node of a directory the CLI set up: member directory `node` holding
/// `threatmesh.toml`, and `genesis.json` beside it.
pub struct Launch {
    command: Command,
    program: String,
    node: PathBuf,
    endpoints_at: EndpointsAt,
    timeout: Duration,
}

impl std::fmt::Debug for Launch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Launch")
            .field("command", &self.command)
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

impl Launch {
    /// `binary run` for member `node` of the federation `federation` set up in `dir`, its
    /// output discarded.
    pub fn new(binary: impl AsRef<OsStr>, dir: &Path, node: &str, federation: &str) -> Launch {
        Launch::of(Command::new(binary), dir, node, federation)
    }

    /// As [`Launch::new`], but run by `wrapper` with the binary and its arguments appended
    /// (`heaptrack -o <prefix>`, `bash -c '...; exec "$@"' wrapper`, `unshare ...`).
    pub fn wrapped(
        mut wrapper: Command,
        binary: impl AsRef<OsStr>,
        dir: &Path,
        node: &str,
        federation: &str,
    ) -> Launch {
        wrapper.arg(binary);
        Launch::of(wrapper, dir, node, federation)
    }

    /// `command` (the binary, or a wrapper with the binary as its last argument) given
    /// `run` and its arguments.
    fn of(mut command: Command, dir: &Path, node: &str, federation: &str) -> Launch {
        let program = command.get_program().to_string_lossy().into_owned();
        let config = Path::new(node).join("threatmesh.toml");
        command
            .current_dir(dir)
            .arg("run")
            .arg("--config")
            .arg(&config)
            .args(["--federation", federation, "--charter", "genesis.json"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let node = dir.join(node);
        let endpoints = node.join("data/endpoints.json");
        Launch {
            command,
            program,
            node,
            endpoints_at: Box::new(move |_| endpoints.clone()),
            timeout: TIMEOUT,
        }
    }

    /// Passes `args` to `threatmesh run` as well (`--bootstrap <address>`, ...).
    pub fn args<I, S>(mut self, args: I) -> Launch
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.command.args(args);
        self
    }

    /// Sets `key` in the process's environment (`RUST_LOG`, ...).
    pub fn env(mut self, key: &str, value: impl AsRef<OsStr>) -> Launch {
        self.command.env(key, value);
        self
    }

    /// Where the process's standard error goes (discarded unless set).
    pub fn stderr(mut self, stderr: Stdio) -> Launch {
        self.command.stderr(stderr);
        self
    }

    /// Reads the endpoints from where `at` says, given the process id, instead of
    /// `<node>/data/endpoints.json`.
    pub fn endpoints_at(mut self, at: impl Fn(u32) -> PathBuf + 'static) -> Launch {
        self.endpoints_at = Box::new(at);
        self
    }

    /// How long the node may take to write its endpoints ([`TIMEOUT`] unless set).
    pub fn timeout(mut self, timeout: Duration) -> Launch {
        self.timeout = timeout;
        self
    }

    /// Starts the process and waits until the node serves.
    pub fn start(mut self) -> Result<Node, Error> {
        let child = self.command.spawn().map_err(|source| Error::Spawn {
            program: self.program.clone(),
            source,
        })?;
        // Killed on any error from here on.
        let mut node = Node {
            child,
            api: String::new(),
            p2p: String::new(),
            peer_id: String::new(),
            token: String::new(),
        };
        let path = (self.endpoints_at)(node.child.id());
        let endpoints = try_wait_for("the node's endpoints", self.timeout, || {
            match node.child.try_wait() {
                // The process ended: it will never serve.
                Ok(Some(status)) => Some(Err(status)),
                _ => Endpoints::read(&path).map(Ok),
            }
        })?;
        let endpoints = endpoints.map_err(|status| Error::Exited {
            node: self.node.clone(),
            status,
        })?;
        node.token = api_token(&self.node.join("threatmesh.toml"))?;
        node.p2p = endpoints
            .p2p
            .first()
            .cloned()
            .ok_or(Error::NoP2p { path })?;
        node.api = endpoints.api;
        node.peer_id = endpoints.peer_id;
        Ok(node)
    }
}

/// A running node process; killed when dropped.
#[derive(Debug)]
pub struct Node {
    /// The process started: the node, or the wrapper that runs it.
    pub child: Child,
    /// Its HTTP API, `http://127.0.0.1:<port>`.
    pub api: String,
    /// Its first libp2p listen address.
    pub p2p: String,
    /// Its libp2p peer id.
    pub peer_id: String,
    /// The first API token of its configuration.
    pub token: String,
}

impl Node {
    /// Sends SIGTERM and waits up to `timeout` for the process to end: how it ended. A
    /// process still running then is killed, and that is an error.
    pub fn terminate(&mut self, timeout: Duration) -> Result<ExitStatus, Error> {
        let signalled = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .map_err(Error::Stop)?;
        if !signalled.success() {
            return Err(Error::Stop(std::io::Error::other(format!(
                "kill -TERM exited with {signalled}"
            ))));
        }
        let child = &mut self.child;
        match try_wait_for("the node to stop", timeout, || child.try_wait().transpose()) {
            Ok(status) => status.map_err(Error::Stop),
            Err(timed_out) => {
                let _ = self.child.kill();
                let _ = self.child.wait();
                Err(timed_out.into())
            }
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_token_is_read_from_the_parsed_configuration() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("threatmesh.toml");
        // A commented-out line that looks like a token must not be taken for one.
        std::fs::write(
            &config,
            "# tokens = [\"not-this\"]\n[api]\nlisten = \"127.0.0.1:0\"\ntokens = [ \"first\", \"second\" ]\n",
        )
        .unwrap();
        assert_eq!(api_token(&config).unwrap(), "first");
        std::fs::write(&config, "[api]\ntokens = []\n").unwrap();
        assert!(matches!(api_token(&config), Err(Error::Token { .. })));
    }

    #[test]
    fn a_node_that_exits_is_an_error_not_a_wait() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("a")).unwrap();
        // `false` ignores its arguments and exits 1 at once.
        let error = Launch::new("false", dir.path(), "a", "federation")
            .start()
            .unwrap_err();
        assert!(matches!(error, Error::Exited { .. }), "{error}");
    }
}
