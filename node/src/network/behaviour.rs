//! The libp2p behaviours a node runs, combined.
//!
//! The allow list admits only node keys certified in the current charter; the block list
//! holds peers banned for misbehaviour or blocked by the operator; both refuse at
//! connection time, so nobody else
//! receives a byte of federation data. Gossipsub carries entries and charters on one topic
//! per federation, with its own signing off (entries carry their own signatures) and every
//! message validated by the node before it is forwarded. A peer whose organisation may
//! not read gets nothing from gossipsub (see [`NON_READER_SCORE`]), while what it
//! publishes is taken as from anyone.

use std::sync::Arc;
use std::time::Duration;

use libp2p::swarm::NetworkBehaviour;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::{
    allow_block_list, connection_limits, gossipsub, identify, mdns, ping, request_response,
};
use threatmesh_protocol::Hash;
use threatmesh_protocol::wire::MAX_GOSSIP_BYTES;

use super::codec::{PROTOCOL, SyncCodec};
use super::ip_limits::{IpLimitConfig, IpLimits};
use super::metrics::Metrics;

/// gossipsub's frame limit. Set well above the largest payload: gossipsub checks the
/// payload alone when publishing but the whole frame when receiving, so a payload just
/// under the limit would publish and then be dropped by every receiver.
pub(crate) const MAX_TRANSMIT_BYTES: usize = 2 * MAX_GOSSIP_BYTES;

/// Gossipsub's mesh degree D and its bounds: see docs/PROTOCOL.md, "Network".
pub const MESH_N: usize = 6;
const MESH_N_LOW: usize = 5;
const MESH_N_HIGH: usize = 12;
/// Mesh links a node must have chosen itself, so peers that dialled it cannot fill its mesh.
const MESH_OUTBOUND_MIN: usize = 2;
/// Peers outside the mesh told of recent message ids each heartbeat (at least this many, or
/// `GOSSIP_FACTOR` of them): lazy repair for what the mesh missed.
const GOSSIP_LAZY: usize = 6;
const GOSSIP_FACTOR: f64 = 0.25;

/// The gossipsub application score of a peer whose organisation may not read (the
/// charter's `roles.read` is false). Peer scores are used for this alone (every other
/// weight is zero, so every other peer scores 0 and gossips as before): below
/// [`PUBLISH_THRESHOLD`] nothing is published or forwarded to the peer, below
/// [`GOSSIP_THRESHOLD`] it is told no message ids and its IWANTs go unanswered, below 0 it
/// is kept out of the mesh (its GRAFTs are answered with PRUNE), and above
/// [`GRAYLIST_THRESHOLD`] what it publishes is still taken: a publish-only member publishes.
pub(crate) const NON_READER_SCORE: f64 = -60.0;
const GOSSIP_THRESHOLD: f64 = -10.0;
const PUBLISH_THRESHOLD: f64 = -50.0;
const GRAYLIST_THRESHOLD: f64 = -80.0;

/// Connections still in their handshake. Outsiders can open these (the allow list can
/// only refuse once the handshake names the peer), so they are capped, in all and (in
/// `ip_limits.rs`) per address.
const MAX_PENDING_INCOMING: u32 = 64;
const MAX_PENDING_OUTGOING: u32 = 64;

#[derive(NetworkBehaviour)]
pub(crate) struct Behaviour {
    /// First: an address over its limits is refused before anything else looks at it.
    pub(crate) ip_limits: IpLimits,
    pub(crate) allowed: allow_block_list::Behaviour<allow_block_list::AllowedPeers>,
    pub(crate) banned: allow_block_list::Behaviour<allow_block_list::BlockedPeers>,
    pub(crate) limits: connection_limits::Behaviour,
    pub(crate) gossipsub: gossipsub::Behaviour,
    pub(crate) sync: request_response::Behaviour<SyncCodec>,
    pub(crate) identify: identify::Behaviour,
    pub(crate) ping: ping::Behaviour,
    pub(crate) mdns: Toggle<mdns::tokio::Behaviour>,
}

/// What the behaviours need from the node's configuration.
pub(crate) struct Settings {
    pub(crate) heartbeat: Duration,
    pub(crate) max_connections: u32,
    pub(crate) target_peers: usize,
    pub(crate) request_timeout: Duration,
    pub(crate) mdns: bool,
    pub(crate) ip_limits: IpLimitConfig,
    pub(crate) metrics: Arc<Metrics>,
}

impl Behaviour {
    pub(crate) fn new(
        key: &libp2p::identity::Keypair,
        settings: &Settings,
    ) -> Result<Behaviour, Box<dyn std::error::Error + Send + Sync>> {
        // The mesh degrees are set here rather than left to libp2p's defaults, so an upgrade
        // cannot change them unseen (docs/PROTOCOL.md says why these): each node keeps 6
        // mesh links (5 to 12) inside its bounded peer set, gossips message ids to 6 more
        // and publishes its own entries to every peer it holds (flood publishing), so an
        // entry reaches N members in about log6(N) hops after the first.
        // gossipsub's own timings (how long message ids are remembered, how long an IWANT
        // may go unanswered, fanout and prune backoff) and ping's are kept in step with the
        // heartbeat when it is slower than a second (a lab stretching time), and are
        // libp2p's defaults otherwise.
        let beats =
            |count: u32, default: Duration| settings.heartbeat.saturating_mul(count).max(default);
        let gossipsub_config = gossipsub::ConfigBuilder::default()
            .duplicate_cache_time(beats(60, Duration::from_secs(60)))
            .iwant_followup_time(beats(3, Duration::from_secs(3)))
            .fanout_ttl(beats(60, Duration::from_secs(60)))
            .prune_backoff(beats(60, Duration::from_secs(60)))
            .mesh_n(MESH_N)
            .mesh_n_low(MESH_N_LOW)
            .mesh_n_high(MESH_N_HIGH)
            .mesh_outbound_min(MESH_OUTBOUND_MIN)
            .gossip_lazy(GOSSIP_LAZY)
            .gossip_factor(GOSSIP_FACTOR)
            .flood_publish(true)
            .heartbeat_interval(settings.heartbeat)
            .max_transmit_size(MAX_TRANSMIT_BYTES)
            .validation_mode(gossipsub::ValidationMode::None)
            .validate_messages()
            // The message id is the entry id: SHA-256 of the payload.
            .message_id_fn(|message| gossipsub::MessageId::new(&Hash::of(&message.data).0))
            .build()?;
        let mut gossipsub =
            gossipsub::Behaviour::new(gossipsub::MessageAuthenticity::Anonymous, gossipsub_config)?;
        // Scores only carry the read role (see `NON_READER_SCORE`): no topic scores, and no
        // penalty for shared addresses (a testnet runs every node on one), broken IWANT
        // promises or slow peers, so that honest peers keep a score of 0 and the mesh
        // behaves as it does without scores.
        let score_params = gossipsub::PeerScoreParams {
            app_specific_weight: 1.0,
            ip_colocation_factor_weight: 0.0,
            behaviour_penalty_weight: 0.0,
            slow_peer_weight: 0.0,
            ..gossipsub::PeerScoreParams::default()
        };
        let score_thresholds = gossipsub::PeerScoreThresholds {
            gossip_threshold: GOSSIP_THRESHOLD,
            publish_threshold: PUBLISH_THRESHOLD,
            graylist_threshold: GRAYLIST_THRESHOLD,
            // Peer exchange is off; no opportunistic grafting (every reader scores 0).
            accept_px_threshold: 0.0,
            opportunistic_graft_threshold: 0.0,
        };
        gossipsub.with_peer_score(score_params, score_thresholds)?;
        let sync = request_response::Behaviour::with_codec(
            SyncCodec::new(Arc::clone(&settings.metrics.sync)),
            [(PROTOCOL, request_response::ProtocolSupport::Full)],
            request_response::Config::default().with_request_timeout(settings.request_timeout),
        );
        let limits = connection_limits::ConnectionLimits::default()
            .with_max_established(Some(super::max_established(
                settings.target_peers,
                settings.max_connections,
            )))
            // Two nodes dialling each other at once briefly hold two connections.
            .with_max_established_per_peer(Some(2))
            // Handshakes cost CPU before the allow list can refuse an outsider.
            .with_max_pending_incoming(Some(MAX_PENDING_INCOMING))
            .with_max_pending_outgoing(Some(MAX_PENDING_OUTGOING));
        let mdns = if settings.mdns {
            Some(mdns::tokio::Behaviour::new(
                mdns::Config::default(),
                key.public().to_peer_id(),
            )?)
        } else {
            None
        };
        Ok(Behaviour {
            ip_limits: IpLimits::new(settings.ip_limits, Arc::clone(&settings.metrics)),
            allowed: allow_block_list::Behaviour::default(),
            banned: allow_block_list::Behaviour::default(),
            limits: connection_limits::Behaviour::new(limits),
            gossipsub,
            sync,
            identify: identify::Behaviour::new(identify::Config::new(
                "/threatmesh/id/1".into(),
                key.public(),
            )),
            ping: ping::Behaviour::new(
                ping::Config::new()
                    .with_interval(beats(15, Duration::from_secs(15)))
                    .with_timeout(beats(20, Duration::from_secs(20))),
            ),
            mdns: mdns.into(),
        })
    }
}
