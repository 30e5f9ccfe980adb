//! `POST /api/v1/publish`: items checked, those on a warninglist held back, the rest
//! published in one entry.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use threatmesh_protocol::Hash;
use threatmesh_protocol::bundle::{Distribution, Tlp};
use threatmesh_protocol::item::Item;

use super::{ApiError, ApiState, Body, warninglists};

/// A publish request: items with their marking and audience.
#[derive(Debug, Deserialize)]
pub(super) struct PublishRequest {
    #[serde(default = "default_tlp")]
    tlp: Tlp,
    #[serde(default)]
    distribution: Distribution,
    items: Vec<Item>,
    /// Publish indicators on a warninglist too, instead of holding them back.
    #[serde(default)]
    ignore_warninglists: bool,
}

/// Publish options that may also come in the query string.
#[derive(Debug, Default, Deserialize)]
pub(super) struct PublishQuery {
    #[serde(default)]
    ignore_warninglists: bool,
}

fn default_tlp() -> Tlp {
    Tlp::Amber
}

#[derive(Debug, Serialize)]
pub(super) struct Published {
    entries: Vec<Hash>,
    /// Indicators not published because their value is on a warninglist.
    held_back: Vec<warninglists::HeldBack>,
}

pub(super) async fn publish(
    State(state): State<ApiState>,
    axum::extract::Query(query): axum::extract::Query<PublishQuery>,
    Body(request): Body<PublishRequest>,
) -> Result<(StatusCode, Json<Published>), ApiError> {
    if request.items.is_empty() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "items: nothing to publish",
        ));
    }
    for (index, item) in request.items.iter().enumerate() {
        item.validate().map_err(|error| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("items[{index}] ({}): {error}", item.value()),
            )
        })?;
    }
    let (items, held_back) = warninglists::hold_back(
        state.client.warninglists(),
        request.items,
        request.ignore_warninglists || query.ignore_warninglists,
        0,
    );
    if items.is_empty() {
        // Everything was on a warninglist: nothing published, and the report says why.
        let entries = Vec::new();
        return Ok((StatusCode::OK, Json(Published { entries, held_back })));
    }
    let entries = state
        .publisher
        .publish(request.tlp, request.distribution, items)
        .await?;
    Ok((StatusCode::CREATED, Json(Published { entries, held_back })))
}
