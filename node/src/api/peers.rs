//! The peer block list, for operators: block a peer (for a time or until lifted), list
//! blocks and bans, lift one. What `setban` is to bitcoind.
//!
//! A block closes the peer's connections at once and refuses new ones in both directions,
//! before any federation data; lifting it makes the node redial the peer's known
//! addresses. Blocks live in the running node only: a restart clears them, as it clears
//! bans.

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use libp2p::PeerId;
use serde::{Deserialize, Serialize};

use super::{ApiError, ApiState, Body};
use crate::network::{BlockReason, BlockedPeer};

/// The longest block with an end: ten years. Longer is what "until lifted" is for.
pub(super) const MAX_BLOCK_SECONDS: u64 = 10 * 365 * 86_400;

/// A block request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct BlockRequest {
    peer_id: String,
    /// How long; absent: until lifted.
    seconds: Option<u64>,
}

/// One entry of the block list as the API shows it.
#[derive(Debug, Serialize)]
pub(super) struct Blocked {
    peer_id: String,
    reason: BlockReason,
    /// Seconds left (rounded up); absent: until lifted.
    #[serde(skip_serializing_if = "Option::is_none")]
    remaining_seconds: Option<u64>,
}

impl From<BlockedPeer> for Blocked {
    fn from(blocked: BlockedPeer) -> Blocked {
        Blocked {
            peer_id: blocked.peer.to_string(),
            reason: blocked.reason,
            remaining_seconds: blocked
                .remaining
                .map(|left| left.as_secs() + u64::from(left.subsec_nanos() > 0)),
        }
    }
}

#[derive(Debug, Serialize)]
pub(super) struct BlockList {
    blocked: Vec<Blocked>,
}

fn parse_peer(text: &str) -> Result<PeerId, ApiError> {
    text.parse().map_err(|error| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("peer_id {text:?}: {error}"),
        )
    })
}

/// `GET /api/v1/peers/blocked`: blocked and banned peers.
pub(super) async fn list(State(state): State<ApiState>) -> Result<Json<BlockList>, ApiError> {
    let blocked = state.client.blocked_peers().await?;
    Ok(Json(BlockList {
        blocked: blocked.into_iter().map(Blocked::from).collect(),
    }))
}

/// `POST /api/v1/peers/blocked`: blocks a peer.
pub(super) async fn block(
    State(state): State<ApiState>,
    Body(request): Body<BlockRequest>,
) -> Result<(StatusCode, Json<Blocked>), ApiError> {
    let peer = parse_peer(&request.peer_id)?;
    let duration = match request.seconds {
        Some(0) => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "seconds: must be at least 1 (leave it out to block until lifted)",
            ));
        }
        Some(seconds) if seconds > MAX_BLOCK_SECONDS => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!(
                    "seconds: at most {MAX_BLOCK_SECONDS} (leave it out to block until lifted)"
                ),
            ));
        }
        seconds => seconds.map(Duration::from_secs),
    };
    state.client.block_peer(peer, duration).await?;
    Ok((
        StatusCode::CREATED,
        Json(Blocked {
            peer_id: peer.to_string(),
            reason: BlockReason::Operator,
            remaining_seconds: request.seconds,
        }),
    ))
}

/// `DELETE /api/v1/peers/blocked/{peer_id}`: lifts a block or a ban.
pub(super) async fn unblock(
    State(state): State<ApiState>,
    Path(peer_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let peer = parse_peer(&peer_id)?;
    if state.client.unblock_peer(peer).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("{peer} is not blocked"),
        ))
    }
}
