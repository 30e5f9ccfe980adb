//! Lookups: what the store holds about one value (`GET /api/v1/indicators/{kind}/{value}`)
//! or about many (`POST /api/v1/lookup`), with the warninglists each is on.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use threatmesh_protocol::{Kind, Value};

use super::{ApiError, ApiState, Body, MAX_LOOKUP_VALUES, blocking, warninglists};
use crate::store::Lookup;

/// A lookup answer: what the store holds about one value.
#[derive(Debug, Serialize)]
pub(super) struct Answer {
    known: bool,
    #[serde(flatten)]
    lookup: Lookup,
    /// The warninglists the value is on.
    warninglists: Vec<warninglists::ListMatch>,
}

pub(super) async fn lookup_one(
    State(state): State<ApiState>,
    Path((kind, text)): Path<(String, String)>,
) -> Result<Json<Answer>, ApiError> {
    let kind: Kind = kind
        .parse()
        .map_err(|error| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, format!("{error}")))?;
    let value = Value::parse(kind, &text)
        .map_err(|error| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, error.to_string()))?;
    let on = warninglists::lists_of(state.client.warninglists(), &value);
    let (store, now) = (state.store.clone(), state.client.now());
    let lookup = blocking(move || store.lookup(&value, now)).await??;
    Ok(Json(Answer {
        known: !lookup.assertions.is_empty() || !lookup.sightings.is_empty(),
        lookup,
        warninglists: on,
    }))
}

/// A bulk lookup: values as bare strings (kind detected, defanged accepted) or as
/// `{"kind": ..., "value": ...}`.
#[derive(Debug, Deserialize)]
pub(super) struct LookupRequest {
    values: Vec<LookupValue>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum LookupValue {
    Bare(String),
    Typed { kind: Kind, value: String },
}

#[derive(Debug, Serialize)]
pub(super) struct LookupAnswer {
    /// How many values were asked about.
    asked: usize,
    /// The values something is known about.
    found: Vec<Marked>,
    /// Values that are not valid indicators, with why.
    invalid: Vec<Invalid>,
}

/// A value found, with the warninglists it is on.
#[derive(Debug, Serialize)]
pub(super) struct Marked {
    #[serde(flatten)]
    lookup: Lookup,
    warninglists: Vec<warninglists::ListMatch>,
}

#[derive(Debug, Serialize)]
pub(super) struct Invalid {
    index: usize,
    input: String,
    reason: String,
}

pub(super) async fn lookup_many(
    State(state): State<ApiState>,
    Body(request): Body<LookupRequest>,
) -> Result<Json<LookupAnswer>, ApiError> {
    let asked = request.values.len();
    if asked > MAX_LOOKUP_VALUES {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("{asked} values, at most {MAX_LOOKUP_VALUES} per request"),
        ));
    }
    let mut values = Vec::with_capacity(asked);
    let mut invalid = Vec::new();
    for (index, entry) in request.values.into_iter().enumerate() {
        let parsed = match &entry {
            LookupValue::Bare(text) => Value::detect(text),
            LookupValue::Typed { kind, value } => Value::parse(*kind, value),
        };
        match parsed {
            Ok(value) => values.push(value),
            Err(error) => invalid.push(Invalid {
                index,
                input: error.input.clone(),
                reason: error.to_string(),
            }),
        }
    }
    let (store, now) = (state.store.clone(), state.client.now());
    let found = blocking(move || store.lookup_many(&values, now))
        .await??
        .into_iter()
        .map(|lookup| Marked {
            warninglists: warninglists::lists_of(state.client.warninglists(), &lookup.value),
            lookup,
        })
        .collect();
    Ok(Json(LookupAnswer {
        asked,
        found,
        invalid,
    }))
}
