//! How the network behaves: [`Config`], with the defaults every other source of them
//! (the configuration file's `[network]` section) reads, and the peer-set bounds derived
//! from it.

use std::sync::Arc;
use std::time::Duration;

use libp2p::Multiaddr;
use threatmesh_protocol::EncryptionSecret;

#[cfg(doc)]
use super::Client;
use super::{Carrier, Clock, RateLimit};

/// How the network behaves.
#[derive(Debug, Clone)]
pub struct Config {
    /// Addresses to listen on.
    pub listen: Vec<Multiaddr>,
    /// Peers to dial at start (and redial when they drop).
    pub bootstrap: Vec<Multiaddr>,
    /// gossipsub heartbeat.
    pub heartbeat: Duration,
    /// How often the node reconciles feed heads with a few peers (anti-entropy). Entries
    /// fetched by sync are gossiped again only if they are recent, so after a long
    /// partition heals, nodes beyond the healed link learn the other side's older entries
    /// over a few rounds. A round with a peer in step costs one summary each way (about
    /// 200 bytes in all), whatever the number of feeds.
    pub sync_interval: Duration,
    /// Peers reconciled with each round, in turn (and every new peer at once).
    pub sync_peers: usize,
    /// Links the node holds to other members: it dials more below three quarters of this
    /// and closes the surplus above it. Gossip reaches every member over this bounded
    /// set in O(log N) hops. See [`TARGET_PEERS_RANGE`].
    pub target_peers: usize,
    /// How long a new link is held before it may be closed as surplus: long enough for its
    /// first reconciliation, and for a newcomer to get in while every member is at its
    /// target. Not a configuration file setting; tests shorten it.
    pub peer_hold: Duration,
    /// About how often a node whose peer set is full enough dials one more member at
    /// random (pruning then trims the surplus), so links keep being re-drawn and the two
    /// sides of a healed partition find each other. Not a configuration file setting.
    pub peer_rotation: Duration,
    /// How far in the future an entry's creation time may be.
    pub clock_skew: Duration,
    /// The clock the network reads (publishing, the future check, certificate windows).
    /// The system clock; tests and labs shift it to play a node whose clock is wrong, and
    /// may move it while the node runs (clones share the offset). Not a configuration
    /// file setting: a production node has no reason to disagree with its system clock.
    pub clock: Clock,
    /// Most connections in total. The limit in force is the lower of this and
    /// `target_peers` plus a margin for newcomers ([`max_established`]).
    pub max_connections: u32,
    /// Refused messages from one peer before it is banned.
    pub rejects_before_ban: u32,
    /// How long a ban lasts.
    pub ban: Duration,
    /// First wait before redialling a lost peer; doubles up to `max_redial`.
    pub redial: Duration,
    /// Longest wait between redials.
    pub max_redial: Duration,
    /// How long a sync request may take.
    pub request_timeout: Duration,
    /// Find peers on the local network with mDNS.
    pub mdns: bool,
    /// The organisation's encryption keys, the current first, then those it had before:
    /// the node opens bundles sealed to its organisation with any of them. Empty: sealed
    /// bundles are stored and relayed unread (and opened once a key is added:
    /// [`Client::add_encryption_key`]).
    pub encryption_keys: Vec<EncryptionSecret>,
    /// Gossip messages (entries and charters) and bytes one peer may send, per second
    /// and at once above that. Beyond it, messages are ignored (not stored, not forwarded;
    /// sync fetches the entries later) and counted. An honest peer relays every member's
    /// entries, so this is a limit on the whole federation's rate as one peer sees it.
    pub peer_limit: RateLimit,
    /// Entries and bytes of one feed author this node takes from gossip, per second and at
    /// once above that, whichever peers relay them. Beyond it, the author's entries are
    /// ignored (not stored, not forwarded, not charged to the relaying peer; sync fetches
    /// them later) and counted. Keep its rate below `peer_limit`'s, so one member's flood
    /// cannot use up an honest relay's rate.
    pub author_limit: RateLimit,
    /// Incoming connections from one address (an IPv4 address or an IPv6 /64) that may be
    /// in their handshake at once. Beyond it, new ones are refused before the handshake
    /// and counted. Connections already established do not count.
    pub ip_max_pending: u32,
    /// New incoming connections one address may open per second, sustained; beyond it
    /// and the burst they are refused before the handshake and counted.
    pub ip_connections_per_sec: u32,
    /// New incoming connections one address may open at once above the sustained rate.
    pub ip_connection_burst: u32,
    /// How long a connection's handshake (TCP, Noise, yamux) may take before it is
    /// dropped; it frees its pending slot then.
    pub handshake_timeout: Duration,
    /// What carries connections under Noise (TCP). Not a configuration file setting:
    /// programs that run nodes in-process choose another.
    pub carrier: Carrier,
    /// Seed for the peer set's random choices (whom to dial, prune, rotate to). `None`, the
    /// default, draws one from the system: other members should not be able to predict
    /// them. Not a configuration file setting: labs fix it so runs can be repeated.
    pub seed: Option<u64>,
    /// The warninglists values are checked against: matches in entries from peers are
    /// counted per list (nothing is refused for it), and the API holds them back on
    /// publish and marks them on lookup. The default set unless configured.
    pub warninglists: Arc<crate::warninglists::Warninglists>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            listen: Vec::new(),
            bootstrap: Vec::new(),
            heartbeat: Duration::from_secs(1),
            sync_interval: Duration::from_secs(10),
            sync_peers: 2,
            target_peers: 16,
            peer_hold: Duration::from_secs(10),
            peer_rotation: Duration::from_secs(240),
            clock_skew: Duration::from_secs(300),
            clock: Clock::system(),
            max_connections: 256,
            rejects_before_ban: 10,
            ban: Duration::from_secs(600),
            redial: Duration::from_secs(1),
            max_redial: Duration::from_secs(60),
            request_timeout: Duration::from_secs(30),
            mdns: false,
            encryption_keys: Vec::new(),
            // An import of 100,000 indicators is a few dozen entries; a federation's
            // steady traffic is a few entries a second.
            peer_limit: RateLimit {
                messages_per_sec: 100,
                message_burst: 1_000,
                bytes_per_sec: 8 * 1024 * 1024,
                byte_burst: 64 * 1024 * 1024,
            },
            // Half of a peer's: a single member's flood leaves a relay at least half its
            // rate for everyone else. An honest author publishing 16 entries of 1,000
            // indicators a second (about 1 MiB/s) stays well inside.
            author_limit: RateLimit {
                messages_per_sec: 50,
                message_burst: 500,
                bytes_per_sec: 4 * 1024 * 1024,
                byte_burst: 32 * 1024 * 1024,
            },
            // Members reconnect one connection at a time; a few nodes behind one NAT
            // restarting at once still fit the burst. A testnet with every node on one
            // loopback address raises these.
            ip_max_pending: 8,
            ip_connections_per_sec: 2,
            ip_connection_burst: 32,
            handshake_timeout: Duration::from_secs(10),
            carrier: Carrier::Tcp,
            seed: None,
            warninglists: crate::warninglists::Warninglists::builtin(),
        }
    }
}

/// The peer targets a node accepts: fewer than 8 links make the mesh fragile (a few lost
/// links can cut a node off), more than 32 cost idle traffic for no gain in reach.
pub const TARGET_PEERS_RANGE: std::ops::RangeInclusive<usize> = 8..=32;

/// The connections a node admits at once, given its peer target: the target plus a margin,
/// so a newcomer (or a member back from a restart) gets in while every node is at its
/// target; pruning then brings the count back down. Never above `max_connections`.
pub fn max_established(target_peers: usize, max_connections: u32) -> u32 {
    let margin = (target_peers / 4).max(4);
    u32::try_from(target_peers + margin)
        .unwrap_or(u32::MAX)
        .min(max_connections)
}
