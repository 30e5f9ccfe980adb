//! POST to a collection: an envelope imported as STIX and published to the mesh, one
//! publish per TLP, answered with a status resource that says, per object, whether it was
//! taken.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value as Json, json};
use threatmesh_protocol::Timestamp;
use threatmesh_protocol::bundle::Tlp;

use super::TaxiiError;
use super::collections::Collection;
use super::media::taxii_json;
use super::status::random_uuid;
use crate::api::{ApiState, blocking};
use crate::formats::{rfc3339, stix};

/// Imports a POSTed envelope as STIX and publishes what it holds, one publish per TLP.
/// Answers 202 with a status resource that says, per object, whether it was taken.
pub(super) async fn add_objects(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, TaxiiError> {
    let federation = state.client.charter().federation();
    let collection = Collection::find(&id, &federation)?;
    if collection != Collection::Own {
        return Err(TaxiiError::new(
            StatusCode::FORBIDDEN,
            "Read-only collection",
            "this collection is read-only; POST to this organisation's own collection",
        ));
    }
    let requested = state.client.now();
    // Parsing and importing up to the body limit is CPU work: off the async threads.
    let (envelope_objects, import) = blocking(move || read_envelope(&body, requested)).await??;
    let mut failures: HashMap<String, String> = import
        .report
        .refused
        .iter()
        .map(|refusal| (refusal.at.clone(), refusal.reason.clone()))
        .collect();
    for (id, kind, _) in &envelope_objects {
        // Types the importer reads as context (identities, malware, relationships, ...)
        // are taken even when one of them was not needed; only types it never uses fail.
        if import.report.unused.contains_key(kind.as_str())
            && !CONTEXT_TYPES.contains(&kind.as_str())
        {
            failures.entry(id.clone()).or_insert_with(|| {
                format!("threatmesh does not use {kind} objects; not published")
            });
        }
    }
    let mut publish_error = None;
    for (tlp, items) in import.into_by_tlp(Tlp::Amber) {
        // Indicators on a warninglist are held back, as on every publish path; TAXII
        // clients have no flag to send, so the object fails with the reason.
        let (items, held) =
            crate::api::warninglists::hold_back_stix(state.client.warninglists(), items);
        failures.extend(held);
        if items.is_empty() {
            continue;
        }
        if let Err(error) = state
            .publisher
            .publish(tlp, threatmesh_protocol::Distribution::Federation, items)
            .await
        {
            publish_error = Some(format!("publishing the {tlp} objects failed: {error}"));
        }
    }
    let (mut successes, mut failed) = (Vec::new(), Vec::new());
    for (id, _, version) in &envelope_objects {
        let version = if version.is_empty() {
            rfc3339::format(requested)
        } else {
            version.clone()
        };
        let record = |message: Option<&String>| {
            let mut record = json!({ "id": id, "version": version });
            if let Some(message) = message {
                record["message"] = Json::String(message.clone());
            }
            record
        };
        match failures.get(id).or(publish_error.as_ref()) {
            Some(reason) => failed.push(record(Some(reason))),
            None => successes.push(record(None)),
        }
    }
    let status_id = random_uuid()?;
    let status = json!({
        "id": status_id,
        "status": "complete",
        "request_timestamp": rfc3339::format(requested),
        "total_count": envelope_objects.len(),
        "success_count": successes.len(),
        "failure_count": failed.len(),
        "pending_count": 0,
        "successes": successes,
        "failures": failed,
        "pendings": [],
    });
    state.taxii.statuses.insert(status_id, status.clone());
    Ok(taxii_json(StatusCode::ACCEPTED, &status))
}

/// STIX types the importer reads as context of indicators rather than as items.
const CONTEXT_TYPES: [&str; 5] = [
    "identity",
    "malware",
    "campaign",
    "relationship",
    "marking-definition",
];

/// The (id, type, version) of every object of a POSTed envelope, and what the STIX
/// importer made of them.
type EnvelopeRead = (Vec<(String, String, String)>, crate::formats::Import);

fn read_envelope(body: &[u8], requested: Timestamp) -> Result<EnvelopeRead, TaxiiError> {
    let envelope: Json = serde_json::from_slice(body)
        .map_err(|error| TaxiiError::bad_request(format!("the envelope is not JSON: {error}")))?;
    let Some(listed) = envelope.get("objects").and_then(Json::as_array) else {
        return Err(TaxiiError::bad_request(
            "the envelope has no \"objects\" list",
        ));
    };
    // Refused before anything is built per object.
    if listed.len() > stix::MAX_OBJECTS {
        return Err(TaxiiError::bad_request(
            stix::StixError::TooManyObjects(listed.len()).to_string(),
        ));
    }
    let envelope_objects: Vec<(String, String, String)> = listed
        .iter()
        .enumerate()
        .map(|(index, object)| {
            let id = object["id"]
                .as_str()
                .map_or_else(|| format!("objects[{index}]"), str::to_owned);
            let kind = object["type"].as_str().unwrap_or_default().to_owned();
            let version = object["modified"]
                .as_str()
                .or_else(|| object["created"].as_str())
                .unwrap_or_default()
                .to_owned();
            (id, kind, version)
        })
        .collect();
    let import = stix::import_objects(listed, requested)
        .map_err(|error| TaxiiError::bad_request(error.to_string()))?;
    Ok((envelope_objects, import))
}
