//! The charter in force (`GET /api/v1/charter`) and a new one handed to the node
//! (`POST /api/v1/charter`), in the file form the stewards' tools write.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::{ApiError, ApiState, Body};
use crate::network::ClientError;

/// A charter file as the stewards' tools write it: the charter and its signatures.
#[derive(Debug, Serialize, Deserialize)]
pub struct CharterFile {
    /// The charter.
    pub charter: threatmesh_protocol::Charter,
    /// The steward signatures collected.
    #[serde(default)]
    pub signatures: Vec<threatmesh_protocol::charter::StewardSignature>,
}

impl CharterFile {
    /// The charter with its signatures, ready to verify. Its signed bytes are re-derived
    /// from the charter, so a signature made over anything else will not verify.
    pub fn into_signed(
        self,
    ) -> Result<threatmesh_protocol::SignedCharter, threatmesh_protocol::charter::CharterError>
    {
        let raw = threatmesh_protocol::charter::RawCharter {
            charter: threatmesh_protocol::wire::encode_signed(
                threatmesh_protocol::charter::CHARTER_DOMAIN,
                &self.charter,
            ),
            signatures: self.signatures,
        };
        threatmesh_protocol::SignedCharter::decode(raw)
    }

    /// The file form of `charter`.
    pub fn of(charter: &threatmesh_protocol::SignedCharter) -> CharterFile {
        CharterFile {
            charter: charter.charter().clone(),
            signatures: charter.signatures().to_vec(),
        }
    }
}

pub(super) async fn charter(State(state): State<ApiState>) -> Json<CharterFile> {
    Json(CharterFile::of(&state.client.charter()))
}

/// Hands the node a charter: verified against the charter it names among those the node
/// holds, stored, applied if it is then in force, gossiped.
pub(super) async fn push_charter(
    State(state): State<ApiState>,
    Body(file): Body<CharterFile>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let charter = file
        .into_signed()
        .map_err(|error| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, error.to_string()))?;
    let version = charter.charter().version;
    state
        .client
        .update_charter(charter)
        .await
        .map_err(|error| match error {
            ClientError::Charter(reason) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, reason.to_string())
            }
            other => ApiError::from(other),
        })?;
    Ok(Json(serde_json::json!({ "version": version })))
}
