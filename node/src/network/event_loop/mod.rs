//! The task that owns the swarm: polls it, answers commands, reports verdicts, and carries
//! out what the state machines decide.
//!
//! Every arm of the `select!` in [`EventLoop::run`] hands off to one `handle_*` method.
//! The decisions live in plain state machines with no swarm and no I/O: which members to
//! hold links to ([`PeerBook`]), whom to reconcile with and what to ask ([`SyncPlanner`]),
//! whom to fetch each feed from (`fetch_sources.rs`), which gossip to admit by rate
//! (`admission.rs`), and whom to ban (`discipline.rs`). This loop routes events to them
//! and their answers to the swarm, one file per job: `gossip.rs` (admission and verdicts),
//! `sync.rs` (answering and asking), `fetch.rs` (range fetches), `peers.rs` (discipline,
//! the allow list, read roles). The swarm itself is built in `swarm.rs`. Nothing here
//! blocks for long: checks and writes run in the ingest pipeline, and store reads made
//! here (this node's feed heads, a missing range) take microseconds to a millisecond.

mod fetch;
mod gossip;
mod peers;
mod sync;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use libp2p::gossipsub::{self, IdentTopic};
use libp2p::request_response::{InboundRequestId, OutboundRequestId, ResponseChannel};
use libp2p::swarm::dial_opts::DialOpts;
use libp2p::swarm::{ConnectionId, SwarmEvent};
use libp2p::{Multiaddr, PeerId, Swarm, allow_block_list, identify, mdns};
use threatmesh_protocol::wire::{Request, Response};
use threatmesh_protocol::{SignedCharter, SigningKey};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::{debug, info};

use self::fetch::Fetch;
use super::admission::GossipAdmission;
use super::answers::AnswerQueue;
use super::behaviour::{Behaviour, BehaviourEvent};
use super::clock::ClockWatch;
use super::discipline::Discipline;
use super::fetch_sources::FeedSources;
use super::ingest::{Job, Verdict};
use super::ip_limits::IpOverLimit;
use super::metrics::Metrics;
use super::peer_book::{PeerAction, PeerBook};
use super::sync_planner::SyncPlanner;
use super::{ClientError, Command, Config, NetworkError};
use crate::store::Store;

/// How often lost peers are redialled, bans and blocks expire and certificate windows are
/// re-checked.
const MAINTENANCE_INTERVAL: Duration = Duration::from_millis(500);
/// Sync answers read off the loop and not yet taken by it. At most `READS_AT_ONCE` reads
/// run at once, so a reader never waits for room here.
const ANSWER_CAP: usize = 64;

/// A sync answer read from the store off the loop: for whom, which request, where to send.
type ReadAnswer = (
    PeerId,
    InboundRequestId,
    ResponseChannel<Response>,
    Response,
);

/// The swarm's owner. Build it with [`super::new`] and spawn [`EventLoop::run`].
pub struct EventLoop {
    swarm: Swarm<Behaviour>,
    config: Config,
    topic: IdentTopic,
    store: Store,
    metrics: Arc<Metrics>,
    clock: Arc<ClockWatch>,
    charter: watch::Sender<Arc<SignedCharter>>,
    command_receiver: mpsc::Receiver<Command>,
    jobs: mpsc::Sender<Job>,
    verdicts: mpsc::Receiver<Verdict>,
    /// Sync requests in flight.
    pending_reconciles: HashMap<OutboundRequestId, PeerId>,
    pending_ranges: HashMap<OutboundRequestId, Fetch>,
    /// Charters requests in flight, and to whom: at most one per peer, so gossip that
    /// claims a newer charter (forged or not) cannot make this node ask over and over.
    pending_charters: HashMap<OutboundRequestId, PeerId>,
    /// Who showed each feed past this node, and the one fetch of it in flight.
    sources: FeedSources<OutboundRequestId>,
    /// Strikes, bans and the operator's blocks. Each peer on the block list is also in
    /// the `banned` behaviour, which refuses it.
    discipline: Discipline,
    /// Sync requests being answered, per peer, and whose to read next.
    answering: AnswerQueue<InboundRequestId, (Request, ResponseChannel<Response>)>,
    /// Sync answers computed off the loop, waiting to be sent.
    answers: mpsc::Receiver<ReadAnswer>,
    answer_sender: mpsc::Sender<ReadAnswer>,
    /// Which members to hold links to.
    peer_book: PeerBook,
    /// Our dials under way, so the book hears how each ended.
    dials: HashMap<ConnectionId, Multiaddr>,
    /// Anti-entropy: whom to reconcile with, and what to ask.
    planner: SyncPlanner,
    /// The gossip rate limits of peers and authors.
    admission: GossipAdmission,
    /// Connected peers whose organisation may not read: gossipsub sends them nothing and
    /// sync answers them no entries nor heads.
    non_readers: HashSet<PeerId>,
    /// When the allow list was last worked out (by this node's clock), and when the next
    /// certificate window opens or closes: it is worked out again then.
    allow_list_at: threatmesh_protocol::Timestamp,
    allow_list_due: Option<threatmesh_protocol::Timestamp>,
}

impl std::fmt::Debug for EventLoop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventLoop")
            .field("peer_id", self.swarm.local_peer_id())
            .finish_non_exhaustive()
    }
}

impl EventLoop {
    #[allow(clippy::too_many_arguments)] // private constructor, called once from `new`
    pub(super) fn new(
        config: Config,
        node_key: &SigningKey,
        store: Store,
        charter: watch::Sender<Arc<SignedCharter>>,
        command_receiver: mpsc::Receiver<Command>,
        jobs: mpsc::Sender<Job>,
        verdicts: mpsc::Receiver<Verdict>,
        metrics: Arc<Metrics>,
        clock: Arc<ClockWatch>,
    ) -> Result<EventLoop, NetworkError> {
        let federation = charter.borrow().federation();
        let (swarm, topic) = super::swarm::build(&config, node_key, federation, &metrics)?;
        let (answer_sender, answers) = mpsc::channel(ANSWER_CAP);
        let peer_book = PeerBook::new(
            *swarm.local_peer_id(),
            config.target_peers,
            config.peer_hold,
            config.peer_rotation,
            config.redial,
            config.max_redial,
            config.seed.unwrap_or_else(random_seed),
        );
        let mut event_loop = EventLoop {
            swarm,
            topic,
            store,
            metrics,
            clock,
            charter,
            command_receiver,
            jobs,
            verdicts,
            pending_reconciles: HashMap::new(),
            pending_ranges: HashMap::new(),
            pending_charters: HashMap::new(),
            sources: FeedSources::new(),
            discipline: Discipline::new(config.rejects_before_ban, config.ban),
            answering: AnswerQueue::new(),
            answers,
            answer_sender,
            peer_book,
            dials: HashMap::new(),
            planner: SyncPlanner::new(config.sync_peers, config.sync_interval),
            admission: GossipAdmission::new(config.peer_limit, config.author_limit),
            non_readers: HashSet::new(),
            config,
            allow_list_at: threatmesh_protocol::Timestamp(0),
            allow_list_due: None,
        };
        let current = Arc::clone(&event_loop.charter.borrow());
        event_loop.apply_charter(&current);
        for address in event_loop.config.bootstrap.clone() {
            event_loop.peer_book.add_address(address, Instant::now());
        }
        Ok(event_loop)
    }

    /// This node's PeerId.
    pub fn peer_id(&self) -> PeerId {
        *self.swarm.local_peer_id()
    }

    /// Runs until every [`super::Client`] is dropped.
    pub async fn run(mut self) {
        let mut sync_tick = tokio::time::interval(self.config.sync_interval);
        let mut maintenance = tokio::time::interval(MAINTENANCE_INTERVAL);
        loop {
            tokio::select! {
                event = self.swarm.select_next_some() => self.handle_swarm_event(event),
                command = self.command_receiver.recv() => match command {
                    Some(command) => self.handle_command(command),
                    None => break,
                },
                Some(verdict) = self.verdicts.recv() => self.handle_verdict(verdict),
                Some((peer, id, channel, response)) = self.answers.recv() => self.handle_answer(peer, id, channel, response),
                _ = sync_tick.tick() => self.sync_round(),
                _ = maintenance.tick() => self.maintain(),
            }
        }
        info!("network stopped");
    }

    fn handle_command(&mut self, command: Command) {
        match command {
            Command::Gossip { payload, reply } => {
                let result = match self
                    .swarm
                    .behaviour_mut()
                    .gossipsub
                    .publish(self.topic.clone(), payload)
                {
                    // Stored already; peers that are not connected yet fetch it by sync.
                    Ok(_) | Err(gossipsub::PublishError::NoPeersSubscribedToTopic) => Ok(()),
                    Err(gossipsub::PublishError::Duplicate) => Ok(()),
                    Err(error) => Err(ClientError::Network(error.to_string())),
                };
                let _ = reply.send(result);
            }
            Command::ApplyCharter { charter, reply } => {
                self.adopt_charter(charter);
                let _ = reply.send(());
            }
            Command::Dial { address, reply } => {
                // The operator asked: dial now, whatever the peer set holds, and keep the
                // address among those the book may dial later.
                let result = self
                    .dial(address.clone())
                    .map_err(|error| ClientError::Network(error.to_string()));
                self.peer_book.add_address(address, Instant::now());
                let _ = reply.send(result);
            }
            Command::ListenAddrs { reply } => {
                let _ = reply.send(self.swarm.listeners().cloned().collect());
            }
            Command::Peers { reply } => {
                let _ = reply.send(self.swarm.connected_peers().copied().collect());
            }
            Command::MeshPeers { reply } => {
                let hash = self.topic.hash();
                let peers = self
                    .swarm
                    .behaviour()
                    .gossipsub
                    .mesh_peers(&hash)
                    .copied()
                    .collect();
                let _ = reply.send(peers);
            }
            Command::SyncNow { reply } => {
                self.planner.everyone();
                self.send_reconciles();
                let _ = reply.send(());
            }
            Command::BlockPeer {
                peer,
                duration,
                reply,
            } => {
                let _ = reply.send(self.block(peer, duration));
            }
            Command::UnblockPeer { peer, reply } => {
                let _ = reply.send(self.unblock(peer));
            }
            Command::BlockedPeers { reply } => {
                let _ = reply.send(self.blocked_peers());
            }
        }
    }

    fn handle_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::NewListenAddr { address, .. } => info!(%address, "listening"),
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                num_established,
                ..
            } => {
                info!(peer = %peer_id, address = %endpoint.get_remote_address(), "peer connected");
                let dialled = self.dials.remove(&connection_id);
                if num_established.get() == 1 {
                    // A member back from a disconnection finds the rate it left.
                    self.admission.connected(&peer_id);
                    // Before anything can be sent to it: the peer has not subscribed yet.
                    self.apply_read_role(peer_id);
                    self.peer_book
                        .connected(peer_id, dialled.as_ref(), Instant::now());
                    self.planner.connected(peer_id);
                    self.send_reconciles();
                } else if let Some(address) = dialled {
                    // A second link to a peer held already: the address is that peer's.
                    self.peer_book.reached(&address, peer_id);
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                cause,
                ..
            } => {
                // Its requests in flight end with an OutboundFailure, which frees their feeds.
                info!(peer = %peer_id, cause = ?cause, "peer disconnected");
                // Kept for a while: reconnecting must not refill a peer's burst.
                self.admission.disconnected(peer_id, Instant::now());
                self.non_readers.remove(&peer_id);
                self.peer_book.disconnected(&peer_id);
                self.planner.disconnected(&peer_id);
                self.sources.disconnected(&peer_id);
                self.answering.disconnected(&peer_id);
                self.start_reads();
            }
            SwarmEvent::OutgoingConnectionError {
                peer_id,
                connection_id,
                error,
            } => {
                debug!(peer = ?peer_id, %error, "dial failed");
                if let Some(address) = self.dials.remove(&connection_id) {
                    // An address that answered as another node, or as this one, is theirs.
                    match &error {
                        libp2p::swarm::DialError::WrongPeerId { obtained, .. } => {
                            self.peer_book.reached(&address, *obtained);
                        }
                        libp2p::swarm::DialError::LocalPeerId { .. } => {
                            let own = *self.swarm.local_peer_id();
                            self.peer_book.reached(&address, own);
                        }
                        _ => self.peer_book.dial_ended(&address),
                    }
                }
                if let libp2p::swarm::DialError::Denied { cause } = &error {
                    self.count_refusal(cause);
                }
            }
            SwarmEvent::IncomingConnectionError { error, .. } => {
                debug!(%error, "incoming connection refused");
                if let libp2p::swarm::ListenError::Denied { cause } = &error {
                    self.count_refusal(cause);
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(event)) => self.handle_gossip(event),
            SwarmEvent::Behaviour(BehaviourEvent::Sync(event)) => self.handle_sync(event),
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                info,
                ..
            })) => {
                debug!(peer = %peer_id, addresses = info.listen_addrs.len(), "identified");
                self.metrics.identified(&info);
                // Where a member listens, for when the book needs another link: the charter
                // need not list every member's address.
                self.peer_book
                    .learn_addresses(peer_id, info.listen_addrs, Instant::now());
            }
            SwarmEvent::Behaviour(BehaviourEvent::Identify(
                identify::Event::Sent { .. } | identify::Event::Pushed { .. },
            )) => self.metrics.identify_sent(),
            SwarmEvent::Behaviour(BehaviourEvent::Ping(event)) => self.metrics.pinged(&event),
            SwarmEvent::Behaviour(BehaviourEvent::Mdns(mdns::Event::Discovered(found))) => {
                let now = Instant::now();
                for (peer, address) in found {
                    self.peer_book.learn_addresses(peer, [address], now);
                }
            }
            _ => {}
        }
    }

    /// Counts a connection (incoming or outgoing) the node refused, by why: the charter
    /// does not admit the peer, the peer is banned or blocked, a connection limit, or the
    /// per-address limits before the handshake.
    fn count_refusal(&self, cause: &libp2p::swarm::ConnectionDenied) {
        if cause
            .downcast_ref::<allow_block_list::NotAllowed>()
            .is_some()
        {
            self.metrics.refused_not_in_charter();
        } else if cause.downcast_ref::<allow_block_list::Blocked>().is_some() {
            self.metrics.refused_blocked();
        } else if cause
            .downcast_ref::<libp2p::connection_limits::Exceeded>()
            .is_some()
        {
            self.metrics.refused_over_limit();
        } else if cause.downcast_ref::<IpOverLimit>().is_some() {
            self.metrics.refused_ip_over_limit();
        }
    }

    /// Dials `address`, remembering the dial so its outcome reaches the peer book.
    fn dial(&mut self, address: Multiaddr) -> Result<(), libp2p::swarm::DialError> {
        let dial = DialOpts::from(address.clone());
        let id = dial.connection_id();
        self.swarm.dial(dial)?;
        self.dials.insert(id, address);
        Ok(())
    }

    /// Lifts expired bans and blocks, re-checks certificate windows (a certificate that
    /// ended disconnects its node; one that began admits it), and carries out what the peer
    /// book decides: dial more members while under its low mark, prune the surplus over its
    /// target.
    fn maintain(&mut self) {
        let clock_now = self.clock.clock().now();
        if clock_now < self.allow_list_at || self.allow_list_due.is_some_and(|due| clock_now >= due)
        {
            let current = Arc::clone(&self.charter.borrow());
            self.refresh_allow_list(&current);
        }
        let now = Instant::now();
        for peer in self.discipline.expired(now) {
            self.unblock(peer);
        }
        for action in self.peer_book.tick(now) {
            match action {
                PeerAction::Dial(address) => {
                    if let Err(error) = self.dial(address.clone()) {
                        debug!(%address, %error, "dial failed");
                        self.peer_book.dial_ended(&address);
                    }
                }
                PeerAction::Disconnect(peer) => {
                    debug!(%peer, "over the peer target: closing the link");
                    self.metrics.pruned();
                    let _ = self.swarm.disconnect_peer_id(peer);
                }
            }
        }
    }
}

/// A seed for the peer book's random choices; other members should not be able to
/// predict them (an attacker placing itself where a node will look). The time stands in if
/// the system has no randomness to give.
fn random_seed() -> u64 {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_nanos());
        return nanos as u64;
    }
    u64::from_le_bytes(bytes)
}
