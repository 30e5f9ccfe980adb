//! `[node]`: where the node keeps its store and keys, and which federation it is in.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use threatmesh_protocol::Hash;

use super::{ConfigError, invalid};

/// `[node]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NodeSection {
    /// The store's directory.
    pub data_dir: PathBuf,
    /// The node's secret key file.
    pub key_file: PathBuf,
    /// The organisation's encryption key file (X25519), for reading bundles sealed to the
    /// organisation. Without it, the node stores and relays sealed bundles but reads none.
    pub encryption_key_file: Option<PathBuf>,
    /// The federation's id (its genesis charter's id), in hex.
    pub federation: Option<String>,
    /// A charter file to start from when the store holds none yet (the genesis).
    pub charter_file: Option<PathBuf>,
    /// Memory for the store's page cache, in MiB.
    pub cache_mib: u64,
    /// Free disk space, in MiB, kept on the store's filesystem: below it writes are
    /// refused (reads go on) until space is freed. 0 turns the check off.
    pub reserve_mib: u64,
}

impl Default for NodeSection {
    fn default() -> NodeSection {
        NodeSection {
            data_dir: "data".into(),
            key_file: "node.key".into(),
            encryption_key_file: None,
            federation: None,
            charter_file: None,
            cache_mib: crate::store::DEFAULT_CACHE_BYTES >> 20,
            reserve_mib: crate::store::DEFAULT_RESERVE_BYTES / (1024 * 1024),
        }
    }
}

impl NodeSection {
    /// `node.federation`, which has no default.
    pub(super) fn federation(&self) -> Result<Hash, ConfigError> {
        self.federation
            .as_deref()
            .ok_or_else(|| {
                invalid(
                    "node.federation",
                    "missing: the federation's id (run `threatmesh charter verify` on its genesis charter)".into(),
                )
            })?
            .parse::<Hash>()
            .map_err(|error| invalid("node.federation", error.to_string()))
    }
}
