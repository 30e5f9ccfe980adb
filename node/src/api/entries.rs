//! The export of everything held: entries page by page in acceptance order
//! (`GET /api/v1/entries`), and where each feed stands (`GET /api/v1/feeds`).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use threatmesh_protocol::Hash;

use super::{ApiError, ApiState, blocking};
use crate::store::{FeedState, StoreError};

/// Most entries one page of `/api/v1/entries` returns. An entry can hold 10,000 items, so
/// a page stays in the tens of megabytes of JSON.
pub const MAX_ENTRIES_PAGE: usize = 100;

#[derive(Debug, Deserialize)]
pub(super) struct EntriesQuery {
    /// The cursor from the previous page.
    cursor: Option<String>,
    /// Entries per page, at most [`MAX_ENTRIES_PAGE`].
    limit: Option<usize>,
}

/// One entry as the export shows it.
#[derive(Debug, Serialize)]
pub(super) struct ExportedEntry {
    id: Hash,
    added: threatmesh_protocol::Timestamp,
    /// The entry's size as it travels (its gossip payload), in bytes.
    bytes: usize,
    #[serde(flatten)]
    entry: threatmesh_protocol::Entry,
    /// For a sealed entry addressed to this node's organisation, the bundle it read;
    /// absent otherwise (the sealed body above is all a non-recipient sees).
    #[serde(skip_serializing_if = "Option::is_none")]
    opened: Option<threatmesh_protocol::Bundle>,
}

#[derive(Debug, Serialize)]
pub(super) struct EntriesPage {
    entries: Vec<ExportedEntry>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<String>,
    /// Entries held in all, for progress.
    total: u64,
}

/// Every entry this node holds, in the order it accepted them, page by page.
pub(super) async fn entries(
    State(state): State<ApiState>,
    axum::extract::Query(query): axum::extract::Query<EntriesQuery>,
) -> Result<Json<EntriesPage>, ApiError> {
    let limit = query
        .limit
        .unwrap_or(MAX_ENTRIES_PAGE)
        .clamp(1, MAX_ENTRIES_PAGE);
    let cursor = query
        .cursor
        .map(|text| {
            threatmesh_protocol::crypto::hex_decode::<17>(&text)
                .map_err(|error| ApiError::new(StatusCode::BAD_REQUEST, format!("cursor: {error}")))
        })
        .transpose()?;
    let store = state.store.clone();
    let (page, next, total) = blocking(move || {
        let page = store.added_page(cursor.as_ref().map(|c| &c[..]), limit)?;
        let entries = page
            .entries
            .into_iter()
            .map(|(added, entry)| {
                let sealed = matches!(
                    entry.entry().body,
                    threatmesh_protocol::entry::Body::Sealed(_)
                );
                let opened = if sealed {
                    store.opened(&entry.id())?
                } else {
                    None
                };
                Ok(ExportedEntry {
                    id: entry.id(),
                    added,
                    bytes: entry.payload().len(),
                    entry: entry.entry().clone(),
                    opened,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok::<_, StoreError>((entries, page.next, store.stats()?.entries))
    })
    .await??;
    Ok(Json(EntriesPage {
        entries: page,
        next: next.map(|cursor| threatmesh_protocol::crypto::hex_encode(&cursor)),
        total,
    }))
}

pub(super) async fn feeds(State(state): State<ApiState>) -> Result<Json<Vec<FeedState>>, ApiError> {
    let store = state.store.clone();
    Ok(Json(blocking(move || store.feeds()).await??))
}
