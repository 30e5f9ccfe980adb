//! [`StoreError`]: why the store could not be opened, read or written.

use std::path::PathBuf;

/// A store that cannot be opened, read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// sled could not open the directory.
    #[error("cannot open the store at {path}: {source}")]
    Open {
        /// The directory.
        path: PathBuf,
        /// sled's error.
        #[source]
        source: sled::Error,
    },
    /// A store written by another version of threatmesh.
    #[error(
        "the store at {path} has schema version {found}, this threatmesh reads versions 1 to {expected} \
         (and moves version 1 to {expected}); use a threatmesh that reads version {found}, or move the \
         directory aside to start an empty store"
    )]
    SchemaVersion {
        /// The directory.
        path: PathBuf,
        /// The version on disk.
        found: u32,
        /// The version this code reads.
        expected: u32,
    },
    /// A sled database that is not a threatmesh store.
    #[error("{path} holds a database that is not a threatmesh store (no schema version)")]
    NotAStore {
        /// The directory.
        path: PathBuf,
    },
    /// sled failed (I/O error, disk full, ...).
    #[error("storage engine error: {0}")]
    Engine(#[from] sled::Error),
    /// The disk holding the store is nearly full: the write was refused, nothing changed.
    #[error(
        "the disk holding the store at {path} has {free_mib} MiB free, under the {reserve_mib} MiB \
         reserve: writes are refused until space is freed (reads go on)"
    )]
    DiskFull {
        /// The store's directory.
        path: PathBuf,
        /// Free space found, in MiB.
        free_mib: u64,
        /// The reserve, in MiB.
        reserve_mib: u64,
    },
    /// An earlier write failed; the store reopens from disk before it writes again.
    #[error(
        "an earlier write failed: writes are refused until the store has reopened from disk \
         (tried by a write 5 s after the failure, longer after repeated failures, once the disk \
         has room) or the node restarts"
    )]
    Poisoned,
    /// An entry of this node's own feed ([`Store::append`](super::Store::append)) that
    /// does not follow the feed's head: nothing was written.
    #[error(
        "entry {seq} does not follow this node's own feed, which holds entries 1 to \
         {contiguous} in a row and entries up to {highest}: nothing was written (publishing \
         resumes from the feed's head once it holds every entry up to its highest)"
    )]
    NotNext {
        /// The entry's place in the feed.
        seq: u64,
        /// The feed's contiguous part when the entry was refused.
        contiguous: u64,
        /// The highest entry of the feed held.
        highest: u64,
    },
    /// Bytes on disk that do not decode.
    #[error("corrupt record under key {key}: {reason}")]
    Corrupt {
        /// The key, in hex.
        key: String,
        /// What is wrong.
        reason: String,
    },
}

impl StoreError {
    pub(crate) fn corrupt(key: &[u8], reason: impl Into<String>) -> StoreError {
        StoreError::Corrupt {
            key: threatmesh_protocol::crypto::hex_encode(key),
            reason: reason.into(),
        }
    }
}
