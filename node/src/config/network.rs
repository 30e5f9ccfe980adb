//! `[network]`: the libp2p mesh. The file's keys are flat (`peer_messages_per_sec`, ...);
//! `NetworkSection::validate` turns them into [`crate::network::Config`], whose
//! `Default` is the one source of every default here.

use std::time::Duration;

use libp2p::Multiaddr;
use serde::{Deserialize, Serialize};

use super::{ConfigError, check_seconds, invalid};
use crate::network::{Config, RateLimit, TARGET_PEERS_RANGE};

/// Where a node listens unless the file says otherwise.
const DEFAULT_LISTEN: &str = "/ip4/0.0.0.0/tcp/4001";

/// `[network]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkSection {
    /// libp2p addresses to listen on.
    pub listen: Vec<String>,
    /// Peers to dial at start, with their `/p2p/` id.
    pub bootstrap: Vec<String>,
    /// Seconds between anti-entropy rounds (reconciling feed heads with a few peers).
    pub sync_interval_secs: u64,
    /// Peers reconciled with each round, in turn.
    pub sync_peers: usize,
    /// Links to other members the node holds (8 to 32): it dials more below three
    /// quarters of this and closes the surplus above it.
    pub target_peers: usize,
    /// Find peers on the local network with mDNS.
    pub mdns: bool,
    /// Most connections in total.
    pub max_connections: u32,
    /// Seconds an entry's creation time may be ahead of this node's clock; entries
    /// further ahead are refused (and fetched again later).
    pub clock_skew_secs: u64,
    /// Gossip messages one peer may send per second, sustained; beyond it (and the
    /// burst) messages are ignored and counted, and sync fetches the entries later.
    pub peer_messages_per_sec: u32,
    /// Gossip messages one peer may send at once above that rate.
    pub peer_message_burst: u32,
    /// Bytes of gossip one peer may send per second, sustained.
    pub peer_bytes_per_sec: u64,
    /// Bytes of gossip one peer may send at once above that rate.
    pub peer_byte_burst: u64,
    /// Entries of one feed author taken from gossip per second, sustained, whichever
    /// peers relay them; beyond it (and the burst) they are ignored, counted and not
    /// charged to the relaying peer, and sync fetches them later. Keep it below
    /// `peer_messages_per_sec`.
    pub author_messages_per_sec: u32,
    /// Entries of one author taken at once above that rate.
    pub author_message_burst: u32,
    /// Bytes of one author's entries taken from gossip per second, sustained.
    pub author_bytes_per_sec: u64,
    /// Bytes of one author's entries taken at once above that rate.
    pub author_byte_burst: u64,
    /// Incoming connections from one address (IPv4, or an IPv6 /64) that may be in their
    /// handshake at once; more are refused before the handshake and counted
    /// (`connections_refused_total{reason="ip-over-limit"}`).
    pub ip_max_pending: u32,
    /// New incoming connections one address may open per second, sustained.
    pub ip_connections_per_sec: u32,
    /// New incoming connections one address may open at once above that rate.
    pub ip_connection_burst: u32,
    /// Seconds a connection's handshake may take before it is dropped.
    pub handshake_timeout_secs: u64,
}

impl Default for NetworkSection {
    /// The network's own defaults ([`crate::network::Config::default`]), so the two
    /// cannot drift, and a listening address, which the network has no default for.
    fn default() -> NetworkSection {
        let defaults = crate::network::Config::default();
        let (peer, author) = (defaults.peer_limit, defaults.author_limit);
        NetworkSection {
            listen: vec![DEFAULT_LISTEN.into()],
            bootstrap: Vec::new(),
            sync_interval_secs: defaults.sync_interval.as_secs(),
            sync_peers: defaults.sync_peers,
            target_peers: defaults.target_peers,
            mdns: defaults.mdns,
            max_connections: defaults.max_connections,
            clock_skew_secs: defaults.clock_skew.as_secs(),
            peer_messages_per_sec: peer.messages_per_sec,
            peer_message_burst: peer.message_burst,
            peer_bytes_per_sec: peer.bytes_per_sec,
            peer_byte_burst: peer.byte_burst,
            author_messages_per_sec: author.messages_per_sec,
            author_message_burst: author.message_burst,
            author_bytes_per_sec: author.bytes_per_sec,
            author_byte_burst: author.byte_burst,
            ip_max_pending: defaults.ip_max_pending,
            ip_connections_per_sec: defaults.ip_connections_per_sec,
            ip_connection_burst: defaults.ip_connection_burst,
            handshake_timeout_secs: defaults.handshake_timeout.as_secs(),
        }
    }
}

impl NetworkSection {
    /// Checks the section and makes the network's configuration of it; what the file does
    /// not set keeps the network's default.
    pub(super) fn validate(&self) -> Result<Config, ConfigError> {
        let listen = parse_all("network.listen", &self.listen)?;
        if listen.is_empty() {
            return Err(invalid(
                "network.listen",
                "at least one address is needed".into(),
            ));
        }
        let bootstrap = parse_all("network.bootstrap", &self.bootstrap)?;
        let handshake_timeout = check_seconds(
            "network.handshake_timeout_secs",
            self.handshake_timeout_secs,
        )?;
        let sync_interval = check_seconds("network.sync_interval_secs", self.sync_interval_secs)?;
        let targets = TARGET_PEERS_RANGE;
        if !targets.contains(&self.target_peers) {
            return Err(invalid(
                "network.target_peers",
                format!(
                    "must be from {} to {}, not {}",
                    targets.start(),
                    targets.end(),
                    self.target_peers
                ),
            ));
        }
        if !(1..=self.target_peers).contains(&self.sync_peers) {
            return Err(invalid(
                "network.sync_peers",
                format!(
                    "must be from 1 to target_peers ({}), not {}",
                    self.target_peers, self.sync_peers
                ),
            ));
        }
        Ok(Config {
            listen,
            bootstrap,
            sync_interval,
            sync_peers: self.sync_peers,
            target_peers: self.target_peers,
            mdns: self.mdns,
            max_connections: self.max_connections,
            clock_skew: Duration::from_secs(self.clock_skew_secs),
            peer_limit: RateLimit {
                messages_per_sec: self.peer_messages_per_sec,
                message_burst: self.peer_message_burst,
                bytes_per_sec: self.peer_bytes_per_sec,
                byte_burst: self.peer_byte_burst,
            },
            author_limit: RateLimit {
                messages_per_sec: self.author_messages_per_sec,
                message_burst: self.author_message_burst,
                bytes_per_sec: self.author_bytes_per_sec,
                byte_burst: self.author_byte_burst,
            },
            ip_max_pending: self.ip_max_pending,
            ip_connections_per_sec: self.ip_connections_per_sec,
            ip_connection_burst: self.ip_connection_burst,
            handshake_timeout,
            ..Config::default()
        })
    }
}

/// Parses each of `addresses`; an error names `setting` and the address.
fn parse_all(setting: &'static str, addresses: &[String]) -> Result<Vec<Multiaddr>, ConfigError> {
    addresses
        .iter()
        .map(|text| {
            text.parse::<Multiaddr>()
                .map_err(|error| invalid(setting, format!("{text:?}: {error}")))
        })
        .collect()
}
