//! `POST /api/v1/archive`: an archive upload read as it arrives, checked and stored page
//! by page (see the parent module for the whole flow).

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::Ordering;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures::StreamExt as _;
use serde::Serialize;
use threatmesh_protocol::archive::{Decoder, Frame, Header};
use threatmesh_protocol::{Hash, PublicKey, Timestamp};
use tokio::task::JoinHandle;
use tracing::{Instrument as _, info};

use super::{ApiState, MAX_REFUSED_LISTED};
use crate::network::{CharterImport, ClientError, EntryImport};

/// Entry bytes per page an import hands the network.
const IMPORT_PAGE_BYTES: usize = 1024 * 1024;
/// Pages of an import being checked at once: enough to keep both cores and the flushes
/// busy, few enough that an import holds a few MiB.
const IMPORT_PAGES_IN_FLIGHT: usize = 4;

/// The header of an imported archive, as a report shows it.
#[derive(Debug, Serialize)]
pub(super) struct HeaderView {
    federation: Hash,
    node: PublicKey,
    organisation: Option<PublicKey>,
    created: Timestamp,
    since: Option<Timestamp>,
    organisations: Vec<PublicKey>,
}

impl From<Header> for HeaderView {
    fn from(header: Header) -> HeaderView {
        HeaderView {
            federation: header.federation,
            node: header.node,
            organisation: header.organisation,
            created: header.created,
            since: header.since,
            organisations: header.organisations,
        }
    }
}

/// Where and why an import stopped early.
#[derive(Debug, Serialize)]
pub(super) struct FaultView {
    /// Byte offset in the archive of the frame (or byte) at fault.
    position: u64,
    /// What is wrong.
    reason: String,
}

/// An entry refused.
#[derive(Debug, Serialize)]
struct RefusedEntry {
    id: Hash,
    /// Byte offset of its frame in the archive.
    position: u64,
    reason: &'static str,
    detail: &'static str,
}

/// What became of the entries of an archive.
#[derive(Debug, Default, Serialize)]
struct EntryCounts {
    new: u64,
    known: u64,
    refused: u64,
    /// Refusals by reason.
    refused_by_reason: BTreeMap<&'static str, u64>,
    /// The first [`MAX_REFUSED_LISTED`] refused.
    refused_entries: Vec<RefusedEntry>,
}

/// What became of the charters of an archive.
#[derive(Debug, Default, Serialize)]
struct CharterCounts {
    new: u64,
    known: u64,
    refused: u64,
    /// Each charter's outcome (the first [`MAX_REFUSED_LISTED`]).
    charters: Vec<CharterImport>,
}

/// What an import did.
#[derive(Debug, Serialize)]
pub(super) struct ImportReport {
    /// Whether the whole archive was read, trailer included, and everything in it handled.
    complete: bool,
    /// The archive's header, once read.
    header: Option<HeaderView>,
    /// Bytes of the archive received.
    bytes_read: u64,
    /// Bytes of the archive verified and handled: where the import stopped.
    bytes_verified: u64,
    charters: CharterCounts,
    entries: EntryCounts,
    /// Where and why the import stopped early, if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    fault: Option<FaultView>,
    /// The fault as one line, for clients that show `error`.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// How an import ended early.
enum Stop {
    /// The archive is bad (truncated, altered, malformed).
    Refused(FaultView),
    /// Another federation's archive.
    Foreign(FaultView),
    /// The upload stopped before the end.
    Cut(FaultView),
    /// The node failed to store.
    Store(FaultView),
}

/// A page of entries on its way through the network's checks, with each entry's id and
/// frame position.
type Page = (
    JoinHandle<Result<Vec<EntryImport>, ClientError>>,
    Vec<(Hash, u64)>,
    u64,
);

/// One import's state.
struct Import {
    state: ApiState,
    decoder: Decoder,
    report: ImportReport,
    page: Vec<Vec<u8>>,
    page_entries: Vec<(Hash, u64)>,
    page_bytes: usize,
    in_flight: VecDeque<Page>,
}

/// Reads an archive upload and stores what verifies; answers with the report.
pub(in crate::api) async fn import(State(state): State<ApiState>, body: Body) -> Response {
    let counters = state.client.archive_counters();
    let mut import = Import {
        state,
        decoder: Decoder::new(),
        report: ImportReport {
            complete: false,
            header: None,
            bytes_read: 0,
            bytes_verified: 0,
            charters: CharterCounts::default(),
            entries: EntryCounts::default(),
            fault: None,
            error: None,
        },
        page: Vec::new(),
        page_entries: Vec::new(),
        page_bytes: 0,
        in_flight: VecDeque::new(),
    };
    let stop = import.run(body).await;
    let (status, counter, fault) = match stop {
        None => (StatusCode::OK, &counters.imports_complete, None),
        Some(Stop::Refused(fault)) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            &counters.imports_refused,
            Some(fault),
        ),
        Some(Stop::Foreign(fault)) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            &counters.imports_foreign,
            Some(fault),
        ),
        Some(Stop::Cut(fault)) => (StatusCode::BAD_REQUEST, &counters.imports_cut, Some(fault)),
        Some(Stop::Store(fault)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            &counters.imports_store_failed,
            Some(fault),
        ),
    };
    counter.fetch_add(1, Ordering::Relaxed);
    let mut report = import.report;
    report.complete = fault.is_none();
    report.error = fault
        .as_ref()
        .map(|fault| format!("at byte {}: {}", fault.position, fault.reason));
    report.fault = fault;
    info!(
        complete = report.complete,
        new = report.entries.new,
        known = report.entries.known,
        refused = report.entries.refused,
        "archive imported"
    );
    (status, Json(report)).into_response()
}

impl Import {
    /// Reads the upload to its end or to the first fault; `None` when all went well.
    async fn run(&mut self, body: Body) -> Option<Stop> {
        let mut stream = body.into_data_stream();
        let stop = loop {
            match stream.next().await {
                Some(Ok(chunk)) => {
                    self.report.bytes_read += chunk.len() as u64;
                    self.decoder.feed(&chunk);
                    if let Some(stop) = self.take_frames().await {
                        break Some(stop);
                    }
                }
                Some(Err(error)) => {
                    break Some(Stop::Cut(FaultView {
                        position: self.report.bytes_read,
                        reason: format!("the upload stopped: {error}"),
                    }));
                }
                None => {
                    break self.decoder.finish().err().map(|error| {
                        Stop::Refused(FaultView {
                            position: error.position,
                            reason: error.fault.to_string(),
                        })
                    });
                }
            }
        };
        // What verified before the fault is finished and kept.
        let flushed = match stop {
            Some(Stop::Store(_)) => None,
            _ => self.send_page().await,
        };
        let drained = self.drain(0).await;
        self.report.bytes_verified = self.decoder.position();
        stop.or(flushed).or(drained)
    }

    /// Handles every frame the decoder can give out now.
    async fn take_frames(&mut self) -> Option<Stop> {
        loop {
            let framed = match self.decoder.next_frame() {
                Ok(Some(framed)) => framed,
                Ok(None) => return None,
                Err(error) => {
                    return Some(Stop::Refused(FaultView {
                        position: error.position,
                        reason: error.fault.to_string(),
                    }));
                }
            };
            let position = framed.position;
            match framed.frame {
                Frame::Header(header) => {
                    let ours = self.state.client.charter().federation();
                    let theirs = header.federation;
                    self.report.header = Some(header.into());
                    if theirs != ours {
                        return Some(Stop::Foreign(FaultView {
                            position,
                            reason: format!(
                                "an archive of federation {theirs}; this node is in federation \
                                 {ours}: refused, nothing stored"
                            ),
                        }));
                    }
                }
                Frame::Charter(payload) => {
                    // Entries are checked against the charters before them.
                    if let Some(stop) = self.send_page().await {
                        return Some(stop);
                    }
                    if let Some(stop) = self.drain(0).await {
                        return Some(stop);
                    }
                    match self.state.client.import_archive_charter(payload).await {
                        Ok(outcome) => self.count_charter(outcome),
                        Err(error) => return Some(store_failed(position, &error)),
                    }
                }
                Frame::Entry(payload) => {
                    self.page_bytes += payload.len();
                    self.page_entries.push((Hash::of(&payload), position));
                    self.page.push(payload);
                    if self.page_bytes >= IMPORT_PAGE_BYTES
                        && let Some(stop) = self.send_page().await
                    {
                        return Some(stop);
                    }
                }
                Frame::Trailer(_) => {}
            }
        }
    }

    fn count_charter(&mut self, outcome: CharterImport) {
        let charters = &mut self.report.charters;
        match &outcome {
            CharterImport::New { .. } => charters.new += 1,
            CharterImport::Known { .. } => charters.known += 1,
            CharterImport::Refused { .. } => charters.refused += 1,
        }
        if charters.charters.len() < MAX_REFUSED_LISTED {
            charters.charters.push(outcome);
        }
    }

    /// Hands the page being filled to the network, first waiting for room in flight.
    async fn send_page(&mut self) -> Option<Stop> {
        if self.page.is_empty() {
            return None;
        }
        if let Some(stop) = self.drain(IMPORT_PAGES_IN_FLIGHT - 1).await {
            return Some(stop);
        }
        let payloads = std::mem::take(&mut self.page);
        let entries = std::mem::take(&mut self.page_entries);
        self.page_bytes = 0;
        let client = self.state.client.clone();
        let first = entries.first().map_or(0, |(_, position)| *position);
        // A task starts outside any span: keep the request's (the node's).
        let handle = tokio::spawn(
            async move { client.import_archive_entries(payloads).await }.in_current_span(),
        );
        self.in_flight.push_back((handle, entries, first));
        None
    }

    /// Waits for pages in flight, oldest first, until at most `keep` are left; the first
    /// store failure.
    async fn drain(&mut self, keep: usize) -> Option<Stop> {
        let mut stop = None;
        while self.in_flight.len() > keep {
            let Some((handle, entries, first)) = self.in_flight.pop_front() else {
                break;
            };
            let outcome = handle
                .await
                .map_err(|error| ClientError::Internal(error.to_string()))
                .and_then(|outcome| outcome);
            match outcome {
                Ok(outcomes) => self.count_entries(&entries, outcomes),
                Err(error) => {
                    stop.get_or_insert_with(|| store_failed(first, &error));
                }
            }
        }
        stop
    }

    fn count_entries(&mut self, entries: &[(Hash, u64)], outcomes: Vec<EntryImport>) {
        let counts = &mut self.report.entries;
        for ((id, position), outcome) in entries.iter().zip(outcomes) {
            match outcome {
                EntryImport::New => counts.new += 1,
                EntryImport::Known => counts.known += 1,
                EntryImport::Refused { reason, detail } => {
                    counts.refused += 1;
                    *counts.refused_by_reason.entry(reason).or_default() += 1;
                    if counts.refused_entries.len() < MAX_REFUSED_LISTED {
                        counts.refused_entries.push(RefusedEntry {
                            id: *id,
                            position: *position,
                            reason,
                            detail,
                        });
                    }
                }
            }
        }
    }
}

fn store_failed(position: u64, error: &ClientError) -> Stop {
    Stop::Store(FaultView {
        position,
        reason: format!("this node could not store what it verified: {error}"),
    })
}
