//! Air-gap archives in: the entries and charters of an archive, checked and stored as if a
//! peer had sent them.
//!
//! An archive (see `threatmesh_protocol::archive`) is read by the API, which hands its
//! charters here one by one and its entries page by page. A charter goes through the
//! node's [`Charters`](super::charters::Charters), the same door a gossiped or synced
//! charter takes, and one that comes into force is applied by the event loop as any other.
//! Entries go through the ingest pipeline's checks ([`Checker::check_entry`]) exactly as
//! a sync page's do (header, federation, charter authorisation, clock, duplicate, decode,
//! signature, then the store), on a blocking thread, and a page is answered once all it
//! stored is on disk, with one flush for the page. So an import run twice stores nothing
//! the second time, and an import cut off anywhere can be run again: what was stored
//! is "known", the rest is new.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use threatmesh_protocol::charter::Admission;
use threatmesh_protocol::entry::EntryHeader;
use threatmesh_protocol::wire::{self, Message};
use threatmesh_protocol::{Hash, SignedCharter};

use super::charters::Taken;
use super::ingest::{Acceptance, Checker};
use super::metrics::Rejection;
use super::{Client, ClientError, Command};

/// The ingest checks, for archives.
#[derive(Debug, Clone)]
pub(crate) struct Importer {
    checker: Checker,
    counters: Arc<ArchiveCounters>,
}

impl Importer {
    pub(crate) fn new(checker: Checker) -> Importer {
        Importer {
            checker,
            counters: Arc::default(),
        }
    }
}

/// How imports and exports ended, for `/metrics`.
#[derive(Debug, Default)]
pub struct ArchiveCounters {
    pub(crate) exports: AtomicU64,
    pub(crate) exports_failed: AtomicU64,
    pub(crate) exported_entries: AtomicU64,
    pub(crate) imports_complete: AtomicU64,
    pub(crate) imports_refused: AtomicU64,
    pub(crate) imports_foreign: AtomicU64,
    pub(crate) imports_cut: AtomicU64,
    pub(crate) imports_store_failed: AtomicU64,
}

impl ArchiveCounters {
    /// Appends the counters to a Prometheus text exposition.
    pub fn render(&self, out: &mut String) {
        use std::fmt::Write as _;
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let _ = write!(
            out,
            "# HELP threatmesh_archive_exports_total Air-gap archive exports, by how they ended.\n\
             # TYPE threatmesh_archive_exports_total counter\n\
             threatmesh_archive_exports_total{{result=\"complete\"}} {}\n\
             threatmesh_archive_exports_total{{result=\"failed\"}} {}\n\
             # HELP threatmesh_archive_exported_entries_total Entries written into air-gap archives.\n\
             # TYPE threatmesh_archive_exported_entries_total counter\n\
             threatmesh_archive_exported_entries_total {}\n\
             # HELP threatmesh_archive_imports_total Air-gap archive imports, by how they ended: complete, refused (truncated, altered, malformed), foreign (another federation), cut (the upload stopped), store-failed.\n\
             # TYPE threatmesh_archive_imports_total counter\n\
             threatmesh_archive_imports_total{{result=\"complete\"}} {}\n\
             threatmesh_archive_imports_total{{result=\"refused\"}} {}\n\
             threatmesh_archive_imports_total{{result=\"foreign\"}} {}\n\
             threatmesh_archive_imports_total{{result=\"cut\"}} {}\n\
             threatmesh_archive_imports_total{{result=\"store-failed\"}} {}\n",
            load(&self.exports),
            load(&self.exports_failed),
            load(&self.exported_entries),
            load(&self.imports_complete),
            load(&self.imports_refused),
            load(&self.imports_foreign),
            load(&self.imports_cut),
            load(&self.imports_store_failed),
        );
    }
}

/// What became of one entry of an archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "outcome")]
pub enum EntryImport {
    /// Verified and stored now.
    New,
    /// Held already.
    Known,
    /// Refused, and why.
    Refused {
        /// The reason's name (as the `entries_rejected_total` metric labels it).
        reason: &'static str,
        /// What it means.
        detail: &'static str,
    },
}

/// What became of one charter of an archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "outcome")]
pub enum CharterImport {
    /// Verified and stored now.
    New {
        /// Its version.
        version: u64,
        /// Whether it is the charter in force now.
        in_force: bool,
    },
    /// Held already, or not kept (an old rival): nothing to do.
    Known {
        /// Its version.
        version: u64,
    },
    /// Refused, and why.
    Refused {
        /// Its version, when it could be read.
        version: Option<u64>,
        /// Why.
        reason: String,
    },
}

/// What a refusal means, in words, for an import report.
fn detail(reason: Rejection) -> &'static str {
    match reason {
        Rejection::Malformed => "not a well-formed entry",
        Rejection::OtherFederation => "an entry of another federation",
        Rejection::NotAuthorised => {
            "its author may not publish it under the charters this node holds (unknown node, \
             no publish role, suspended or revoked, or beyond a cutoff)"
        }
        Rejection::FromTheFuture => "created further in the future than the clock tolerance",
        Rejection::Invalid => "breaks a protocol rule (a value, a limit, seq or prev)",
        Rejection::BadSignature => "its signature does not verify: altered or forged",
        Rejection::BadCharter => "a charter that does not verify",
    }
}

impl Importer {
    /// Checks and stores `payloads` (entries' gossip payloads) as a sync page is; returns
    /// once what it stored is on disk. Blocks.
    fn entries(&self, payloads: Vec<Vec<u8>>) -> Result<Vec<EntryImport>, ClientError> {
        let mut outcomes = Vec::with_capacity(payloads.len());
        let mut written = Vec::new();
        let mut ignored = Vec::new();
        for payload in payloads {
            let id = Hash::of(&payload);
            // Checked as an entry of a sync page asking for its own feed: the pipeline
            // then treats it as history, not as news (no clock evidence, no forwarding).
            let requested = EntryHeader::peek(&payload)
                .ok()
                .map(|header| (header.author, u64::MAX));
            let checked = self.checker.check_entry(payload, requested, &mut || {});
            written.extend(checked.written);
            outcomes.push(match checked.acceptance {
                Acceptance::Accept => EntryImport::New,
                Acceptance::Ignore => {
                    ignored.push(id);
                    EntryImport::Known
                }
                Acceptance::Reject(reason) => EntryImport::Refused {
                    reason: reason.as_str(),
                    detail: detail(reason),
                },
            });
        }
        // The pipeline also ignores what it failed to store (its own failure, which a peer
        // would be asked for again): an archive must not call that "known".
        for id in ignored {
            if !self.checker.store.contains(&id)? {
                return Err(self.not_stored());
            }
        }
        if !self.checker.wait_durable(&written) {
            return Err(self.not_stored());
        }
        Ok(outcomes)
    }

    fn not_stored(&self) -> ClientError {
        let reason = self
            .checker
            .store
            .write_refusal()
            .unwrap_or_else(|| "the store failed (see the node's log)".to_owned());
        ClientError::Internal(format!("entries not stored: {reason}"))
    }

    /// Checks and keeps one charter (its gossip payload) as a synced one is; the charter
    /// now in force, if it changed. Blocks.
    fn charter(&self, payload: &[u8]) -> (CharterImport, Option<Arc<SignedCharter>>) {
        let refused = |version, reason: String| CharterImport::Refused { version, reason };
        let charter = match wire::decode_gossip(payload) {
            Ok(Message::Charter(raw)) => SignedCharter::decode(raw),
            Ok(other) => {
                self.checker.metrics.rejected(Rejection::BadCharter);
                return (
                    refused(None, format!("a {} where a charter must be", other.kind())),
                    None,
                );
            }
            Err(error) => {
                self.checker.metrics.rejected(Rejection::BadCharter);
                return (refused(None, format!("not a charter: {error}")), None);
            }
        };
        let charter = match charter {
            Ok(charter) => charter,
            Err(error) => {
                self.checker.metrics.rejected(Rejection::BadCharter);
                return (refused(None, error.to_string()), None);
            }
        };
        let version = charter.charter().version;
        match self.checker.take_charter(charter) {
            Ok(Taken::Added(in_force)) => (
                CharterImport::New {
                    version,
                    in_force: in_force.is_some(),
                },
                in_force,
            ),
            Ok(Taken::Passed(Admission::MissingPrevious)) => (
                refused(
                    Some(version),
                    format!(
                        "follows a version {} this node does not hold",
                        version.saturating_sub(1)
                    ),
                ),
                None,
            ),
            Ok(Taken::Passed(_)) => (CharterImport::Known { version }, None),
            Ok(Taken::NotStored(error)) => {
                (refused(Some(version), format!("not stored: {error}")), None)
            }
            Err(error) => (refused(Some(version), error.to_string()), None),
        }
    }
}

impl Client {
    /// How this node's archive imports and exports ended (the API counts them here, so
    /// every API over this node shares them).
    pub fn archive_counters(&self) -> Arc<ArchiveCounters> {
        Arc::clone(&self.importer.counters)
    }

    /// Checks and stores entries of an archive (their gossip payloads) as if a peer's sync
    /// answer had brought them; one outcome per payload, in order, once what was stored is
    /// on disk. An error means the store failed: some of the page may be stored, and an
    /// import run again finds those known.
    pub async fn import_archive_entries(
        &self,
        payloads: Vec<Vec<u8>>,
    ) -> Result<Vec<EntryImport>, ClientError> {
        let importer = self.importer.clone();
        // Blocking threads start outside any span: carry the node's along.
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || span.in_scope(|| importer.entries(payloads)))
            .await
            .map_err(|error| ClientError::Internal(error.to_string()))?
    }

    /// Checks and keeps a charter of an archive (its gossip payload) as if a peer had sent
    /// it; one that comes into force is applied before this returns, so the entries after
    /// it are checked against it.
    pub async fn import_archive_charter(
        &self,
        payload: Vec<u8>,
    ) -> Result<CharterImport, ClientError> {
        let importer = self.importer.clone();
        let span = tracing::Span::current();
        let (outcome, in_force) =
            tokio::task::spawn_blocking(move || span.in_scope(|| importer.charter(&payload)))
                .await
                .map_err(|error| ClientError::Internal(error.to_string()))?;
        if let Some(charter) = in_force {
            self.ask(|reply| Command::ApplyCharter { charter, reply })
                .await?;
        }
        Ok(outcome)
    }
}
