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

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use threatmesh_protocol::archive::{self, Encoder, Header};
use threatmesh_protocol::entry::EntryHeader;
use threatmesh_protocol::{PublicKey, SignedCharter, Timestamp};
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::{ApiError, ApiState, blocking};
use crate::store::{AddedPayload, AddedStart, Store};

/// The media type of an archive.
pub const MEDIA_TYPE: &str = "application/vnd.threatmesh.archive";

/// Bytes per chunk of an export's body.
const EXPORT_CHUNK_BYTES: usize = 1024 * 1024;
/// Chunks of an export waiting for the client: a slow reader holds up this many MiB.
const EXPORT_CHUNKS_CAP: usize = 4;
/// Rows of the store's added-time index read at a time.
const EXPORT_ROWS: usize = 256;
/// Refused entries (and charters) an import report names; beyond, they are counted.
pub const MAX_REFUSED_LISTED: usize = 100;

mod upload;

pub(super) use upload::import;

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
    // Blocking threads start outside any span: carry the node's along.
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || {
        let _span = span.enter();
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
