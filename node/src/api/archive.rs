//! `GET /api/v1/archive` and `POST /api/v1/archive`: air-gap archives out and in.
//!
//! An export streams the archive (`threatmesh_protocol::archive`) as it is written: the
//! charters the node holds, then the entries it accepted, oldest first, as they are
//! stored, read from the store a few hundred at a time and sent in chunks of about a
//! MiB over a bounded channel, so a million indicators never sit in memory and a slow
//! reader slows the export rather than growing it. `since` (RFC 3339 or milliseconds)
//! keeps the entries this node accepted after that time, which is what a periodic
//! transfer wants: an entry that arrived late is in the next archive, whatever its
//! creation time. `organisation` (repeatable) keeps the entries of that member's nodes;
//! it names a member by its id or by its name in the charter.
//!
//! An import reads the upload as it arrives, through the archive decoder, which gives a
//! frame out only once its check passed. The header must name this node's federation.
//! Charters are handed to the network one by one (the entries after them are checked
//! against them), entries in pages of about a MiB, a few pages at a time, each checked
//! and stored as a peer's sync page is (see `network/archive.rs`). A fault (a cut, an
//! altered byte, frames out of order, a foreign federation, a store failure) ends the
//! import there: the pages read before it are finished and kept, nothing after it is
//! stored, and the report names the byte position and the reason. Every import is
//! counted in `/metrics` by how it ended.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::Ordering;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt as _;
use serde::Serialize;
use threatmesh_protocol::archive::{self, Decoder, Encoder, Frame, Header};
use threatmesh_protocol::entry::EntryHeader;
use threatmesh_protocol::{Hash, PublicKey, SignedCharter, Timestamp};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use super::{ApiError, ApiState, blocking};
use crate::network::{CharterImport, ClientError, EntryImport};
use crate::store::{AddedPayload, AddedStart, Store};

/// The media type of an archive.
pub const MEDIA_TYPE: &str = "application/vnd.threatmesh.archive";

/// Bytes per chunk of an export's body.
const EXPORT_CHUNK_BYTES: usize = 1024 * 1024;
/// Chunks of an export waiting for the client: a slow reader holds up this many MiB.
const EXPORT_CHUNKS_CAP: usize = 4;
/// Rows of the store's added-time index read at a time.
const EXPORT_ROWS: usize = 256;
/// Entry bytes per page an import hands the network.
const IMPORT_PAGE_BYTES: usize = 1024 * 1024;
/// Pages of an import being checked at once: enough to keep both cores and the flushes
/// busy, few enough that an import holds a few MiB.
const IMPORT_PAGES_IN_FLIGHT: usize = 4;
/// Refused entries (and charters) an import report names; beyond, they are counted.
pub const MAX_REFUSED_LISTED: usize = 100;

/// What an export keeps.
#[derive(Debug, Clone, Default)]
struct Selection {
    since: Option<Timestamp>,
    /// Member ids; empty: every member.
    organisations: Vec<PublicKey>,
}

fn unprocessable(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, message)
}

impl Selection {
    /// The selection a query string asks for, organisations named by id or by their
    /// name in `charter`.
    fn parse(query: Option<&str>, charter: &SignedCharter) -> Result<Selection, ApiError> {
        let mut selection = Selection::default();
        for (key, value) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            match &*key {
                "since" => selection.since = Some(parse_time(&value)?),
                "organisation" | "organization" => {
                    let org = resolve_organisation(&value, charter)?;
                    if !selection.organisations.contains(&org) {
                        selection.organisations.push(org);
                    }
                }
                other => {
                    return Err(ApiError::new(
                        StatusCode::BAD_REQUEST,
                        format!("unknown parameter {other:?}: this takes since and organisation"),
                    ));
                }
            }
        }
        if selection.organisations.len() > archive::MAX_FILTER_ORGANISATIONS {
            return Err(unprocessable(format!(
                "organisation: at most {} organisations",
                archive::MAX_FILTER_ORGANISATIONS
            )));
        }
        Ok(selection)
    }
}

/// RFC 3339, or milliseconds since the epoch.
fn parse_time(text: &str) -> Result<Timestamp, ApiError> {
    if let Ok(millis) = text.parse::<u64>() {
        return Ok(Timestamp(millis));
    }
    crate::formats::rfc3339::parse(text).map_err(|error| {
        unprocessable(format!(
            "since: {text:?} is neither an RFC 3339 time nor milliseconds: {error}"
        ))
    })
}

/// A member named by its id (hex) or its name in the charter (any case).
fn resolve_organisation(text: &str, charter: &SignedCharter) -> Result<PublicKey, ApiError> {
    let members = &charter.charter().members;
    if let Ok(org) = text.parse::<PublicKey>() {
        return Ok(org);
    }
    let named: Vec<_> = members
        .iter()
        .filter(|member| member.name.eq_ignore_ascii_case(text.trim()))
        .collect();
    match named.as_slice() {
        [member] => Ok(member.org),
        [] => Err(unprocessable(format!(
            "organisation: {text:?} is neither a member id nor a member's name in the charter \
             (members: {})",
            members
                .iter()
                .map(|member| member.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
        _ => Err(unprocessable(format!(
            "organisation: several members are named {text:?}: give the member id"
        ))),
    }
}

/// Streams an archive of what the node holds.
pub(super) async fn export(
    State(state): State<ApiState>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let charter = state.client.charter();
    let selection = Selection::parse(query.as_deref(), &charter)?;
    let node = state.client.node_key();
    let header = Header {
        federation: charter.federation(),
        node,
        organisation: charter.charter().node(&node).map(|(member, _)| member.org),
        created: state.client.now(),
        since: selection.since,
        organisations: selection.organisations.clone(),
    };
    let store = state.store.clone();
    let charters = blocking(move || store.charters_after(0)).await??;
    let held = state.store.stats().map_or(0, |stats| stats.entries);
    let (sender, receiver) = mpsc::channel(EXPORT_CHUNKS_CAP);
    let store = state.store.clone();
    let counters = state.client.archive_counters();
    tokio::task::spawn_blocking(move || {
        let writer = Writer {
            store: &store,
            charter: &charter,
            selection: &selection,
            sender: &sender,
        };
        match writer.write(&header, &charters) {
            Ok(Some(entries)) => {
                counters.exports.fetch_add(1, Ordering::Relaxed);
                counters
                    .exported_entries
                    .fetch_add(entries, Ordering::Relaxed);
                info!(entries, "archive exported");
            }
            // The client went away: nothing to report to it.
            Ok(None) => {
                counters.exports_failed.fetch_add(1, Ordering::Relaxed);
            }
            Err(error) => {
                counters.exports_failed.fetch_add(1, Ordering::Relaxed);
                warn!(%error, "archive export failed");
                // Ends the response with an error, so the client sees a cut archive.
                let _ = sender.blocking_send(Err(std::io::Error::other(error)));
            }
        }
    });
    let body = Body::from_stream(futures::stream::unfold(receiver, |mut receiver| async {
        receiver.recv().await.map(|chunk| (chunk, receiver))
    }));
    Ok((
        [
            (header::CONTENT_TYPE, MEDIA_TYPE.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"threatmesh.tma\"".to_owned(),
            ),
            // Entries held: an upper bound of what the archive holds, for progress.
            (
                header::HeaderName::from_static("x-threatmesh-entries-held"),
                held.to_string(),
            ),
        ],
        body,
    )
        .into_response())
}

/// Writes an archive into a channel, on a blocking thread.
struct Writer<'a> {
    store: &'a Store,
    charter: &'a SignedCharter,
    selection: &'a Selection,
    sender: &'a mpsc::Sender<Result<Bytes, std::io::Error>>,
}

impl Writer<'_> {
    /// The entries written; `None` when the client went away first.
    fn write(&self, header: &Header, charters: &[SignedCharter]) -> Result<Option<u64>, String> {
        let mut out = Vec::with_capacity(EXPORT_CHUNK_BYTES + archive::MAX_PAYLOAD_BYTES as usize);
        let mut encoder = Encoder::new(header, &mut out).map_err(|error| error.to_string())?;
        for charter in charters {
            encoder
                .charter(&charter.to_payload(), &mut out)
                .map_err(|error| error.to_string())?;
        }
        // Whether each author's entries are kept, decided once per author.
        let mut kept: HashMap<PublicKey, bool> = HashMap::new();
        let mut cursor: Option<Vec<u8>> = None;
        loop {
            let start = match &cursor {
                Some(key) => AddedStart::Following(key),
                None => self
                    .selection
                    .since
                    .map_or(AddedStart::First, AddedStart::After),
            };
            let rows = self
                .store
                .added_payloads(start, EXPORT_ROWS)
                .map_err(|error| error.to_string())?;
            let last_page = rows.len() < EXPORT_ROWS;
            for AddedPayload { key, payload, .. } in rows {
                cursor = Some(key);
                if !self.keeps(&payload, &mut kept) {
                    continue;
                }
                encoder
                    .entry(&payload, &mut out)
                    .map_err(|error| error.to_string())?;
                if out.len() >= EXPORT_CHUNK_BYTES && !self.send(&mut out) {
                    return Ok(None);
                }
            }
            if last_page {
                break;
            }
        }
        let entries = encoder.entries();
        encoder
            .finish(&mut out)
            .map_err(|error| error.to_string())?;
        Ok(self.send(&mut out).then_some(entries))
    }

    /// Whether the selection keeps the entry `payload`.
    fn keeps(&self, payload: &[u8], kept: &mut HashMap<PublicKey, bool>) -> bool {
        if self.selection.organisations.is_empty() {
            return true;
        }
        let Ok(header) = EntryHeader::peek(payload) else {
            return false;
        };
        *kept.entry(header.author).or_insert_with(|| {
            let org = self
                .charter
                .charter()
                .node(&header.author)
                .map(|(member, _)| member.org)
                .or_else(|| self.store.organisation_of(&header.author));
            org.is_some_and(|org| self.selection.organisations.contains(&org))
        })
    }

    /// Sends what `out` holds; false when the client went away.
    fn send(&self, out: &mut Vec<u8>) -> bool {
        let chunk = Bytes::from(std::mem::replace(
            out,
            Vec::with_capacity(EXPORT_CHUNK_BYTES + archive::MAX_PAYLOAD_BYTES as usize),
        ));
        self.sender.blocking_send(Ok(chunk)).is_ok()
    }
}

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
pub(super) async fn import(State(state): State<ApiState>, body: Body) -> Response {
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
        let handle = tokio::spawn(async move { client.import_archive_entries(payloads).await });
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
