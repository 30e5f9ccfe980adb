//! The status resources of recent POSTs, kept in memory, the most recent
//! [`MAX_STATUSES`], and the handler that reads one back.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::Value as Json;

use super::media::taxii_json;
use super::{MAX_STATUSES, TaxiiError};
use crate::api::ApiState;

/// The status resources of recent POSTs, oldest dropped first.
#[derive(Debug, Default)]
pub(super) struct Statuses {
    inner: Mutex<StatusBook>,
}

#[derive(Debug, Default)]
struct StatusBook {
    by_id: HashMap<String, Json>,
    order: VecDeque<String>,
}

impl Statuses {
    pub(super) fn insert(&self, id: String, status: Json) {
        let Ok(mut book) = self.inner.lock() else {
            return;
        };
        if book.order.len() == MAX_STATUSES
            && let Some(oldest) = book.order.pop_front()
        {
            book.by_id.remove(&oldest);
        }
        book.order.push_back(id.clone());
        book.by_id.insert(id, status);
    }

    pub(super) fn get(&self, id: &str) -> Option<Json> {
        self.inner.lock().ok()?.by_id.get(id).cloned()
    }
}

pub(super) async fn status(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Response, TaxiiError> {
    let status = state
        .taxii
        .statuses
        .get(&id)
        .ok_or_else(|| TaxiiError::not_found(format!("no status {id:?} (statuses are kept for the last {MAX_STATUSES} requests, until the node restarts)")))?;
    Ok(taxii_json(StatusCode::OK, &status))
}

/// A random (version 4) UUID, for status ids.
pub(super) fn random_uuid() -> Result<String, TaxiiError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|error| {
        TaxiiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "No randomness",
            error.to_string(),
        )
    })?;
    Ok(uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .to_string())
}
