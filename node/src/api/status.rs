//! The node's state for operators: `GET /api/v1/status` as JSON and `GET /metrics` in
//! Prometheus text, both still answering when the store cannot be read.

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use threatmesh_protocol::{Hash, PublicKey};

use super::{ApiError, ApiState, blocking, prometheus, warninglists};
use crate::store::{FeedState, Space, Stats, Store};

/// The node's state at a glance.
#[derive(Debug, Serialize)]
pub(super) struct Status {
    peer_id: String,
    /// The organisation this node serves (its charter member's key), `null` when the
    /// charter does not name the node. Exports write that organisation's kept STIX ids
    /// as they are.
    organisation: Option<PublicKey>,
    federation: Hash,
    charter_version: u64,
    peers: usize,
    /// Links the node holds at most once it has pruned (its `network.target_peers`).
    peers_target: usize,
    /// Below this many links the node dials more members.
    peers_low: usize,
    /// Counts and sizes; `null` when the store cannot be read (see `store_error`).
    store: Option<Stats>,
    /// Why the store could not be read, if it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    store_error: Option<String>,
    /// Free space and whether writes are accepted.
    disk: Space,
    feeds: Vec<FeedLag>,
    network: crate::network::Snapshot,
}

/// A feed and how far this node is behind on it.
#[derive(Debug, Serialize)]
pub(super) struct FeedLag {
    #[serde(flatten)]
    feed: FeedState,
    /// Entries missing below the highest one held (gaps still to fetch).
    missing_below_highest: u64,
    /// The highest seq a peer has shown this node, if any.
    advertised: Option<u64>,
    /// Entries this node still lacks up to what peers have shown: the lag.
    lag: u64,
}

pub(super) async fn status(State(state): State<ApiState>) -> Result<Json<Status>, ApiError> {
    let peers = state.client.peers().await?.len();
    let charter = state.client.charter();
    let store = state.store.clone();
    let reading = blocking(move || StoreReading::of(&store)).await?;
    let network = state.client.metrics();
    let (stats, feeds, store_error) = match reading.read {
        Ok((stats, feeds)) => (Some(stats), feeds, None),
        Err(error) => (None, Vec::new(), Some(error)),
    };
    let feeds = feeds
        .into_iter()
        .map(|feed| {
            let advertised = network.advertised.get(&feed.author).copied();
            FeedLag {
                missing_below_highest: feed.highest.saturating_sub(feed.contiguous),
                lag: advertised.unwrap_or(0).saturating_sub(feed.contiguous),
                advertised,
                feed,
            }
        })
        .collect();
    Ok(Json(Status {
        peer_id: state.client.peer_id().to_string(),
        organisation: charter
            .charter()
            .node(&state.client.node_key())
            .map(|(member, _)| member.org),
        federation: charter.federation(),
        charter_version: charter.charter().version,
        peers,
        peers_target: state.client.peers_target(),
        peers_low: state.client.peers_low(),
        store: stats,
        store_error,
        disk: reading.disk,
        feeds,
        network,
    }))
}

/// What status and metrics read of the store. After a failed write some reads fail (see
/// `store::Store::recover`); status and metrics then still answer, with the disk's state
/// and the error, because that is when an operator needs them.
pub(super) struct StoreReading {
    /// Counts and feeds, or why they could not be read.
    pub(super) read: Result<(Stats, Vec<FeedState>), String>,
    pub(super) disk: Space,
}

impl StoreReading {
    pub(super) fn of(store: &Store) -> StoreReading {
        StoreReading {
            read: store
                .stats()
                .and_then(|stats| Ok((stats, store.feeds()?)))
                .map_err(|error| error.to_string()),
            disk: store.space(),
        }
    }
}

pub(super) async fn metrics(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let peers = state.client.peers().await?.len();
    let store = state.store.clone();
    let reading = blocking(move || StoreReading::of(&store)).await?;
    let mut text = prometheus::render(
        &state.client.metrics(),
        &state.auth.counters(),
        reading.read.as_ref().ok().map(|(stats, _)| stats),
        &reading.disk,
        reading
            .read
            .as_ref()
            .ok()
            .map(|(_, feeds)| feeds.as_slice()),
        peers,
    ) + &warninglists::render_metrics(&state.client.warninglist_matches());
    state.client.archive_counters().render(&mut text);
    state.misp_feed.render_metrics(&mut text);
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response())
}
