//! `GET /readyz`: whether the node can do its job now, for an orchestrator or a monitoring
//! probe. `/healthz` only says the process answers HTTP (liveness); a node that answers it
//! may still refuse every write, have a stuck event loop, or be cut off from the
//! federation, and this route says which.
//!
//! The answer is 200 when every condition holds and 503 otherwise, with a JSON body naming
//! each failing condition and why. It needs no token, as probes carry none, so it tells
//! only whether writes are refused (with the free and reserved MiB when for want of
//! space) and how many members' nodes are connected: no paths, no peer ids.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::{ApiState, blocking};

/// How long the event loop may take to answer before the node is called not ready. A
/// healthy loop answers in microseconds; one that takes seconds is not serving peers.
pub const EVENT_LOOP_TIMEOUT: Duration = Duration::from_secs(3);

/// The conditions `/readyz` checks, as its answer names them.
pub mod condition {
    /// The store refuses writes (disk under the reserve, or a failed write not yet
    /// recovered from).
    pub const STORE_REFUSES_WRITES: &str = "store-refuses-writes";
    /// The network event loop did not answer within [`super::EVENT_LOOP_TIMEOUT`], or
    /// has stopped.
    pub const EVENT_LOOP_NOT_ANSWERING: &str = "event-loop-not-answering";
    /// No other member's node is connected: nothing published here leaves, nothing
    /// arrives.
    pub const NO_MEMBER_CONNECTED: &str = "no-member-connected";
}

/// The answer of `/readyz`.
#[derive(Debug, Serialize)]
struct Readiness {
    ready: bool,
    /// Connected members' nodes; absent when the event loop did not say.
    #[serde(skip_serializing_if = "Option::is_none")]
    peers: Option<usize>,
    /// Every condition that does not hold, empty when ready.
    failing: Vec<Failing>,
}

#[derive(Debug, Serialize)]
struct Failing {
    condition: &'static str,
    reason: String,
}

pub(super) async fn readyz(State(state): State<ApiState>) -> Response {
    let mut failing = Vec::new();
    let store = state.store.clone();
    // The free-space check is a syscall on the store's filesystem: off the async threads.
    match blocking(move || store.write_refusal()).await {
        Ok(None) => {}
        Ok(Some(reason)) => failing.push(Failing {
            condition: condition::STORE_REFUSES_WRITES,
            reason,
        }),
        Err(error) => failing.push(Failing {
            condition: condition::STORE_REFUSES_WRITES,
            reason: error.message,
        }),
    }
    let mut peers = None;
    match tokio::time::timeout(EVENT_LOOP_TIMEOUT, state.client.peers()).await {
        Err(_) => failing.push(Failing {
            condition: condition::EVENT_LOOP_NOT_ANSWERING,
            reason: format!("no answer within {} s", EVENT_LOOP_TIMEOUT.as_secs_f32()),
        }),
        Ok(Err(error)) => failing.push(Failing {
            condition: condition::EVENT_LOOP_NOT_ANSWERING,
            reason: error.to_string(),
        }),
        // Only the charter's members' nodes may stay connected (the allow list), so any
        // connected peer is a member's node.
        Ok(Ok(connected)) => {
            if connected.is_empty() {
                failing.push(Failing {
                    condition: condition::NO_MEMBER_CONNECTED,
                    reason: "no other member's node is connected".into(),
                });
            }
            peers = Some(connected.len());
        }
    }
    let ready = failing.is_empty();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(Readiness {
            ready,
            peers,
            failing,
        }),
    )
        .into_response()
}
