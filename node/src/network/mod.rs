//! The libp2p mesh: authorised peers only, validated gossip, exact catch-up.
//!
//! One task owns the swarm ([`EventLoop`]); everyone else holds a cloneable [`Client`]
//! that sends commands over a bounded channel. Checking and storing what peers send
//! runs in the ingest pipeline (`ingest/`), off the loop; publishing this node's own
//! entries is the [`crate::publish`] module's, whose concurrent callers share fsyncs and
//! hand their entries to the loop to gossip. The current charter is shared through a
//! watch channel: the loop applies a newer one to the allow list (disconnecting members
//! that lost their standing) and the pipeline authorises entries against it. Which
//! charter is current is worked out in `charters.rs` from every valid charter the node
//! holds, rivals included, so arrival order does not matter.
//!
//! Sync runs on every new connection and every `sync_interval`: ask for the peer's feed
//! heads, then fetch only what is missing, one range per feed at a time, in pages bounded
//! by bytes; a gossiped entry that reveals a gap triggers a fetch of just that gap.
//!
//! Restricted content (TLP:RED, TLP:AMBER+STRICT, named recipients) is sealed when it is
//! published ([`crate::publish`]). Relays store and forward sealed entries like any other;
//! a node whose organisation holds a slot opens them on ingest with its encryption key
//! and the store indexes what it read.

mod admission;
mod answers;
mod archive;
mod behaviour;
mod charters;
mod clock;
mod codec;
mod config;
mod discipline;
mod event_loop;
mod fetch_sources;
mod ingest;
mod ip_limits;
mod keyring;
mod limits;
mod metrics;
mod peer_book;
mod serving;
mod swarm;
mod sync_planner;
#[cfg(test)]
pub(crate) mod testing;
mod transport;
mod unread;

use std::sync::Arc;
use std::time::Duration;

use libp2p::{Multiaddr, PeerId};
use threatmesh_protocol::charter::{Admission, MAX_RIVALS};
use threatmesh_protocol::{EncryptionSecret, PublicKey, SignedCharter, SigningKey};
use tokio::sync::{mpsc, oneshot, watch};

pub use answers::{
    MAX_BYTES_PER_PEER as SYNC_ANSWER_BYTES_PER_PEER, MAX_OPEN_PER_PEER as SYNC_ANSWERS_PER_PEER,
};
pub use archive::{ArchiveCounters, CharterImport, EntryImport};
pub use behaviour::MESH_N as MESH_DEGREE;
pub use clock::{Clock, ClockStatus};
pub use codec::PROTOCOL as SYNC_PROTOCOL;
pub use config::{Config, TARGET_PEERS_RANGE, max_established};
pub use event_loop::EventLoop;
pub use ingest::{RELAY_TARGET, now};
pub(crate) use ip_limits::limited_ip;
pub use keyring::Keyring;
pub use limits::RateLimit;
pub use metrics::{INGEST_BUCKETS_MICROS, PING_PAYLOAD_BYTES, Rejection, Snapshot};
pub use transport::{Carrier, RawStream, RawTransport};

use crate::store::{Store, StoreError};

/// Commands waiting for the event loop. Small: each is answered in microseconds, and a
/// full queue makes callers wait rather than grow memory.
const COMMAND_CAP: usize = 64;
/// Jobs waiting for the ingest pipeline. A full queue drops gossip (it is counted, and
/// sync fetches the entry later) rather than stall the event loop. Bounded by count, so
/// the memory it can hold is this times the largest job: about 64 MiB of gossip payloads
/// at most (a sync page can be larger, but one is fetched per feed at a time).
const JOB_CAP: usize = 128;
/// Verdicts waiting for the event loop.
const VERDICT_CAP: usize = 1024;

/// Errors of [`Client`] calls.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The event loop has stopped.
    #[error("the node's network has stopped")]
    NodeStopped,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The request cannot be carried out as asked (a charter held already, a node that
    /// would block itself).
    #[error("cannot publish: {0}")]
    Invalid(String),
    /// A charter that does not follow the current one.
    #[error("charter refused: {0}")]
    Charter(#[from] threatmesh_protocol::charter::CharterError),
    /// libp2p refused (bad address, gossip failure).
    #[error("network: {0}")]
    Network(String),
    /// A task of the node failed (it panicked: a bug, not the caller's fault).
    #[error("internal error: {0}")]
    Internal(String),
}

/// What the event loop is asked to do.
#[derive(Debug)]
pub(crate) enum Command {
    Gossip {
        payload: Vec<u8>,
        reply: oneshot::Sender<Result<(), ClientError>>,
    },
    ApplyCharter {
        charter: Arc<SignedCharter>,
        reply: oneshot::Sender<()>,
    },
    Dial {
        address: Multiaddr,
        reply: oneshot::Sender<Result<(), ClientError>>,
    },
    ListenAddrs {
        reply: oneshot::Sender<Vec<Multiaddr>>,
    },
    Peers {
        reply: oneshot::Sender<Vec<PeerId>>,
    },
    MeshPeers {
        reply: oneshot::Sender<Vec<PeerId>>,
    },
    SyncNow {
        reply: oneshot::Sender<()>,
    },
    BlockPeer {
        peer: PeerId,
        duration: Option<Duration>,
        reply: oneshot::Sender<Result<(), ClientError>>,
    },
    UnblockPeer {
        peer: PeerId,
        reply: oneshot::Sender<bool>,
    },
    BlockedPeers {
        reply: oneshot::Sender<Vec<BlockedPeer>>,
    },
}

/// Why a peer is on the block list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BlockReason {
    /// The node's operator blocked it (through [`Client::block_peer`]).
    Operator,
    /// It kept sending refused messages and was banned for `Config::ban`.
    Misbehaviour,
}

/// A peer on the block list: no connection to or from it is admitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockedPeer {
    /// The peer.
    pub peer: PeerId,
    /// Why it is blocked.
    pub reason: BlockReason,
    /// How long the block still lasts; `None` until it is lifted.
    pub remaining: Option<Duration>,
}

/// A handle to a running node's network. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Client {
    command_sender: mpsc::Sender<Command>,
    /// This node's key, the author of its feed.
    node_key: PublicKey,
    metrics: Arc<metrics::Metrics>,
    clock: Arc<clock::ClockWatch>,
    charter: watch::Receiver<Arc<SignedCharter>>,
    /// Every charter the node holds, for `update_charter`.
    charters: Arc<charters::Charters>,
    peer_id: PeerId,
    peers_target: usize,
    keyring: Keyring,
    unread: unread::Trigger,
    /// The ingest checks, for archives (`archive.rs`).
    importer: archive::Importer,
    /// The warninglists, with this node's count of matches received from peers.
    warninglists: Arc<crate::warninglists::Counts>,
}

/// Errors starting the network.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// The charter given is not usable.
    #[error("charter: {0}")]
    Charter(String),
    /// libp2p could not be set up.
    #[error("libp2p: {0}")]
    Libp2p(String),
}

/// Builds the network of a node with key `node_key`, storing into `store`, in the
/// federation of `charter` (already verified by the caller). Spawn [`EventLoop::run`].
pub fn new(
    config: Config,
    node_key: SigningKey,
    store: Store,
    charter: SignedCharter,
) -> Result<(Client, EventLoop), NetworkError> {
    let charters = Arc::new(
        charters::Charters::load(store.clone(), charter).map_err(|error| {
            NetworkError::Charter(format!("reading the stored charters: {error}"))
        })?,
    );
    let charter = Arc::new(charters.in_force());
    let (command_sender, command_receiver) = mpsc::channel(COMMAND_CAP);
    let (job_sender, job_receiver) = mpsc::channel(JOB_CAP);
    let (verdict_sender, verdict_receiver) = mpsc::channel(VERDICT_CAP);
    let (charter_sender, charter_receiver) = watch::channel(Arc::clone(&charter));
    let metrics = Arc::new(metrics::Metrics::default());
    let clock = Arc::new(clock::ClockWatch::new(
        config.clock.clone(),
        config.clock_skew,
    ));
    let keyring = Keyring::new(config.encryption_keys.iter().cloned());
    let warninglists = Arc::new(crate::warninglists::Counts::new(Arc::clone(
        &config.warninglists,
    )));
    let unread = unread::spawn(unread::Retrier {
        store: store.clone(),
        charter: charter_receiver.clone(),
        keyring: keyring.clone(),
        node: PublicKey::of(&node_key),
        metrics: Arc::clone(&metrics),
        clock: Arc::clone(&clock),
    });
    let checker = ingest::Checker {
        store: store.clone(),
        charter: charter_receiver.clone(),
        charters: Arc::clone(&charters),
        metrics: Arc::clone(&metrics),
        clock_skew: config.clock_skew,
        clock: Arc::clone(&clock),
        node: PublicKey::of(&node_key),
        keyring: keyring.clone(),
        unread: unread.clone(),
        warninglists: Arc::clone(&warninglists),
    };
    let importer = archive::Importer::new(checker.clone());
    ingest::spawn(checker, job_receiver, verdict_sender);
    let peers_target = config.target_peers;
    let event_loop = EventLoop::new(
        config,
        &node_key,
        store.clone(),
        charter_sender,
        command_receiver,
        job_sender,
        verdict_receiver,
        Arc::clone(&metrics),
        Arc::clone(&clock),
    )?;
    let client = Client {
        command_sender,
        peer_id: event_loop.peer_id(),
        peers_target,
        node_key: PublicKey::of(&node_key),
        metrics,
        clock,
        charter: charter_receiver,
        keyring,
        unread,
        charters,
        importer,
        warninglists,
    };
    Ok((client, event_loop))
}

impl Client {
    async fn ask<T>(
        &self,
        command: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, ClientError> {
        let (reply, answer) = oneshot::channel();
        self.command_sender
            .send(command(reply))
            .await
            .map_err(|_| ClientError::NodeStopped)?;
        answer.await.map_err(|_| ClientError::NodeStopped)
    }

    /// Adds an organisation encryption key (a newer one after a rotation, or one the node
    /// did not have): bundles sealed to it open from now on, and the sealed entries for
    /// this organisation stored unread are tried again in the background. False when the
    /// node held the key already.
    pub fn add_encryption_key(&self, key: EncryptionSecret) -> bool {
        let added = self.keyring.add(key);
        if added {
            self.unread.pull();
        }
        added
    }

    /// The public halves of the encryption keys the node holds, in the order it got them.
    pub fn encryption_keys(&self) -> Vec<[u8; 32]> {
        self.keyring.public_keys()
    }

    /// This node's PeerId.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// The links the node holds at most once it has pruned ([`Config::target_peers`]).
    pub fn peers_target(&self) -> usize {
        self.peers_target
    }

    /// Below this many links the node dials more members.
    pub fn peers_low(&self) -> usize {
        peer_book::low_for(self.peers_target)
    }

    /// Gossips `payload`, an entry or a charter this node stored already.
    pub(crate) async fn gossip(&self, payload: Vec<u8>) -> Result<(), ClientError> {
        self.ask(|reply| Command::Gossip { payload, reply }).await?
    }

    /// Hands the node a charter signed by k stewards of a charter it holds (normally the
    /// next version): checked, stored, applied to the allow list if it is then in force,
    /// and gossiped. One the node holds already is refused, as are those too old for a
    /// rival or of a version that holds `MAX_RIVALS` charters.
    pub async fn update_charter(&self, charter: SignedCharter) -> Result<(), ClientError> {
        let version = charter.charter().version;
        let payload = charter.to_payload();
        let charters = Arc::clone(&self.charters);
        // Blocking threads start outside any span: carry the node's along.
        let span = tracing::Span::current();
        let taken = tokio::task::spawn_blocking(move || span.in_scope(|| charters.take(charter)))
            .await
            .map_err(|error| ClientError::Internal(error.to_string()))??;
        match taken {
            charters::Taken::Added(Some(charter)) => {
                self.ask(|reply| Command::ApplyCharter { charter, reply })
                    .await?;
            }
            // Taken but not in force (a rival that loses the tie): gossiped all the same,
            // since nodes may need it to check the versions after it.
            charters::Taken::Added(None) => {}
            charters::Taken::Passed(Admission::Known) => {
                return Err(ClientError::Invalid(format!(
                    "charter version {version} is held already: nothing to change"
                )));
            }
            charters::Taken::Passed(Admission::MissingPrevious) => {
                return Err(ClientError::Invalid(format!(
                    "charter version {version} follows a version {} this node does not hold; \
                     hand it the versions in between first",
                    version.saturating_sub(1)
                )));
            }
            charters::Taken::Passed(admission) => {
                return Err(ClientError::Invalid(format!(
                    "charter version {version} not kept ({admission:?}): only the newest \
                     versions take a rival, at most {MAX_RIVALS} each"
                )));
            }
            charters::Taken::NotStored(error) => return Err(error.into()),
        }
        self.gossip(payload).await
    }

    /// Dials `address`.
    pub async fn dial(&self, address: Multiaddr) -> Result<(), ClientError> {
        self.ask(|reply| Command::Dial { address, reply }).await?
    }

    /// The addresses the node listens on (empty until the first is bound).
    pub async fn listen_addrs(&self) -> Result<Vec<Multiaddr>, ClientError> {
        self.ask(|reply| Command::ListenAddrs { reply }).await
    }

    /// The peers connected now.
    pub async fn peers(&self) -> Result<Vec<PeerId>, ClientError> {
        self.ask(|reply| Command::Peers { reply }).await
    }

    /// The peers in this node's gossip mesh for the federation's topic.
    pub async fn mesh_peers(&self) -> Result<Vec<PeerId>, ClientError> {
        self.ask(|reply| Command::MeshPeers { reply }).await
    }

    /// Compares heads with every connected peer now, instead of at the next interval.
    pub async fn sync_now(&self) -> Result<(), ClientError> {
        self.ask(|reply| Command::SyncNow { reply }).await
    }

    /// Blocks `peer` for `duration` (`None`: until [`Client::unblock_peer`]): its
    /// connections close now and new ones, either way, are refused. Replaces any ban or
    /// earlier block of it. Blocks last until they end or the node stops.
    pub async fn block_peer(
        &self,
        peer: PeerId,
        duration: Option<Duration>,
    ) -> Result<(), ClientError> {
        self.ask(|reply| Command::BlockPeer {
            peer,
            duration,
            reply,
        })
        .await?
    }

    /// Lifts a block or a ban of `peer`; the node redials its known addresses at once.
    /// Returns whether it was blocked.
    pub async fn unblock_peer(&self, peer: PeerId) -> Result<bool, ClientError> {
        self.ask(|reply| Command::UnblockPeer { peer, reply }).await
    }

    /// The peers blocked or banned now.
    pub async fn blocked_peers(&self) -> Result<Vec<BlockedPeer>, ClientError> {
        self.ask(|reply| Command::BlockedPeers { reply }).await
    }

    /// The network's counters, and whether this node's clock seems wrong.
    pub fn metrics(&self) -> Snapshot {
        let mut snapshot = self.metrics.snapshot();
        snapshot.clock = self.clock.status();
        snapshot
    }

    /// The time as this node's network reads it ([`Config::clock`]).
    pub fn now(&self) -> threatmesh_protocol::Timestamp {
        self.clock.clock().now()
    }

    /// This node's key, the author of its feed.
    pub fn node_key(&self) -> PublicKey {
        self.node_key
    }

    /// The clock this node's network reads, for the publisher's timestamps.
    pub(crate) fn clock(&self) -> Clock {
        self.clock.clock().clone()
    }

    /// The warninglists in force (see [`Config::warninglists`]).
    pub fn warninglists(&self) -> &Arc<crate::warninglists::Warninglists> {
        self.warninglists.lists()
    }

    /// Per warninglist, how many values on it arrived from peers since the node started.
    pub fn warninglist_matches(&self) -> Vec<(String, u64)> {
        self.warninglists.snapshot()
    }

    /// The charter in force.
    pub fn charter(&self) -> Arc<SignedCharter> {
        Arc::clone(&self.charter.borrow())
    }
}
