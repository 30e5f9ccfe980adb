//! The testnet's work directory, and when a new testnet may take it.
//!
//! `up` (and so `demo` and `bench`) writes a marker in the directory before anything
//! else, listing what it creates there and, as they start, the process ids of its nodes.
//! The next run reads it: a stopped testnet of its own is replaced (only the files the
//! marker lists go; a report beside them stays), while a directory holding a testnet the
//! marker does not vouch for, or one whose nodes still run, is refused untouched.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use serde::{Deserialize, Serialize};

/// The marker's file name in the work directory.
const MARKER: &str = ".threatmesh-testnet.json";

/// The file whose presence says a directory holds a testnet (the genesis charter).
const GENESIS: &str = "genesis.json";

/// What the marker records.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Record {
    /// Files and directories the testnet created in the work directory.
    created: Vec<String>,
    /// The process ids of the nodes it started.
    nodes: Vec<u32>,
}

/// A work directory this run owns: it records the nodes started in it.
#[derive(Debug)]
pub(crate) struct WorkDir {
    marker: PathBuf,
    record: Record,
}

impl WorkDir {
    /// Takes `dir` for a testnet of `nodes` nodes: refuses a directory holding a testnet
    /// it cannot replace, removes a stopped one of its own, creates the directory and
    /// writes the marker.
    pub(crate) fn claim(dir: &Path, nodes: usize) -> Result<WorkDir> {
        clear(dir)?;
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut created: Vec<String> = ["steward.key", GENESIS, "testnet.json"]
            .into_iter()
            .map(str::to_owned)
            .collect();
        created.extend((0..nodes).map(|index| format!("node{index}")));
        // The intruder bench's node lives here too.
        created.push("intruder".to_owned());
        let work_dir = WorkDir {
            marker: dir.join(MARKER),
            record: Record {
                created,
                nodes: Vec::new(),
            },
        };
        work_dir.save()?;
        Ok(work_dir)
    }

    /// Records a node started in the directory, so no later run replaces it while it runs.
    pub(crate) fn started(&mut self, pid: u32) -> Result<()> {
        self.record.nodes.push(pid);
        self.save()
    }

    fn save(&self) -> Result<()> {
        let text = serde_json::to_string_pretty(&self.record)?;
        std::fs::write(&self.marker, text)
            .with_context(|| format!("writing {}", self.marker.display()))
    }
}

/// Makes `dir` ready for a new testnet: nothing to do when it holds none; a stopped
/// testnet this program made there is removed (what its marker lists, and the marker).
/// Refuses a testnet without a marker and one with a node still running.
fn clear(dir: &Path) -> Result<()> {
    let marker = dir.join(MARKER);
    let text = match std::fs::read_to_string(&marker) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            if dir.join(GENESIS).exists() {
                bail!(
                    "{} holds a testnet this program did not make (no {MARKER}): remove it or \
                     choose another --dir",
                    dir.display()
                );
            }
            return Ok(());
        }
        Err(error) => {
            return Err(error).with_context(|| format!("reading {}", marker.display()));
        }
    };
    let record: Record = serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not a testnet marker: remove {} or choose another --dir",
            marker.display(),
            dir.display()
        )
    })?;
    if let Some(pid) = record.nodes.iter().find(|pid| is_running(**pid)) {
        bail!(
            "{} holds a running testnet (node process {pid}): stop it (Ctrl-C) or choose \
             another --dir",
            dir.display()
        );
    }
    for name in &record.created {
        // Only plain names: a marker that says `..` or `/` gets nothing removed.
        if Path::new(name).file_name() != Some(std::ffi::OsStr::new(name)) {
            bail!("{} lists {name:?}, not a name in it", marker.display());
        }
        let path = dir.join(name);
        let removed = if path.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        match removed {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                return Err(error).with_context(|| format!("removing {}", path.display()));
            }
            _ => {}
        }
    }
    std::fs::remove_file(&marker).with_context(|| format!("removing {}", marker.display()))?;
    println!("replacing the stopped testnet in {}", dir.display());
    Ok(())
}

/// Whether process `pid` runs (`kill -0`: it exists and we may signal it).
fn is_running(pid: u32) -> bool {
    std::process::Command::new("kill")
        .args(["-0", &pid.to_string()])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory as a stopped two-node testnet leaves it, with a report beside it.
    fn stopped_testnet(dir: &Path) -> WorkDir {
        let mut work_dir = WorkDir::claim(dir, 2).unwrap();
        for name in ["steward.key", "genesis.json", "testnet.json"] {
            std::fs::write(dir.join(name), "{}").unwrap();
        }
        for node in ["node0", "node1"] {
            std::fs::create_dir_all(dir.join(node).join("data")).unwrap();
            std::fs::write(dir.join(node).join("threatmesh.toml"), "").unwrap();
        }
        std::fs::create_dir_all(dir.join("report")).unwrap();
        std::fs::write(dir.join("report/README.md"), "a bench report").unwrap();
        // A process that has ended: its id names no running node.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        work_dir.started(pid).unwrap();
        work_dir
    }

    #[test]
    fn a_stopped_testnet_of_its_own_is_replaced_and_what_it_did_not_make_stays() {
        let dir = tempfile::tempdir().unwrap();
        let work = dir.path().join("work");
        stopped_testnet(&work);
        WorkDir::claim(&work, 3).unwrap();
        assert!(!work.join("genesis.json").exists());
        assert!(!work.join("node0").exists() && !work.join("node1").exists());
        assert_eq!(
            std::fs::read_to_string(work.join("report/README.md")).unwrap(),
            "a bench report"
        );
        // Claimed again: the new marker lists the three nodes to come.
        let record: Record =
            serde_json::from_str(&std::fs::read_to_string(work.join(MARKER)).unwrap()).unwrap();
        assert!(record.created.contains(&"node2".to_owned()));
        assert!(record.nodes.is_empty());
    }

    #[test]
    fn a_testnet_it_did_not_make_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let work = dir.path().join("work");
        stopped_testnet(&work);
        std::fs::remove_file(work.join(MARKER)).unwrap();
        let error = WorkDir::claim(&work, 2).unwrap_err().to_string();
        assert!(error.contains("did not make"), "{error}");
        assert!(work.join("genesis.json").exists() && work.join("node0").exists());
    }

    #[test]
    fn a_testnet_whose_nodes_run_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let work = dir.path().join("work");
        let mut work_dir = stopped_testnet(&work);
        // This test process stands for a node still running.
        work_dir.started(std::process::id()).unwrap();
        let error = WorkDir::claim(&work, 2).unwrap_err().to_string();
        assert!(error.contains("running testnet"), "{error}");
        assert!(work.join("genesis.json").exists() && work.join("node0").exists());
        assert!(work.join(MARKER).exists());
    }

    #[test]
    fn a_directory_without_a_testnet_is_taken_as_it_is() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("notes.txt"), "mine").unwrap();
        WorkDir::claim(dir.path(), 1).unwrap();
        assert!(dir.path().join("notes.txt").exists());
        assert!(dir.path().join(MARKER).exists());
    }
}
