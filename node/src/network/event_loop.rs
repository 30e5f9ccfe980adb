//! The task that owns the swarm: polls it, answers commands, reports verdicts, and carries
//! out what the peer set ([`PeerBook`]) and anti-entropy ([`SyncPlanner`]) decide.
//!
//! Every arm of the `select!` in [`EventLoop::run`] hands off to one `handle_*` method.
//! The decisions about which members to hold links to and whom to reconcile with live in
//! those two state machines; this loop routes events to them and their actions to the
//! swarm. Nothing here blocks for long: checks and writes run in the ingest pipeline, and
//! store reads made here (this node's feed heads, a missing range) take microseconds to a
//! millisecond.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use libp2p::gossipsub::{self, IdentTopic, MessageAcceptance};
use libp2p::request_response::{self, InboundRequestId, OutboundRequestId, ResponseChannel};
use libp2p::swarm::dial_opts::DialOpts;
use libp2p::swarm::{ConnectionId, SwarmEvent};
use libp2p::{Multiaddr, PeerId, Swarm, allow_block_list, identify, mdns};
use threatmesh_protocol::entry::EntryHeader;
use threatmesh_protocol::reconcile::HeadSet;
use threatmesh_protocol::wire::{self, Request, Response};
use threatmesh_protocol::{Hash, PublicKey, SignedCharter, SigningKey};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::{debug, error, info, warn};

use super::answers::{AnswerQueue, OverLimit, answer_bytes};
use super::behaviour::{Behaviour, BehaviourEvent, NON_READER_SCORE, Settings};
use super::clock::ClockWatch;
use super::codec::{SyncRequest, is_frame_too_large, is_slow_reader};
use super::fetch_sources::{FeedSources, Source};
use super::ingest::{Acceptance, Job, Verdict};
use super::ip_limits::{IpLimitConfig, IpOverLimit};
use super::limits::GossipLimits;
use super::metrics::{Metrics, Rejection};
use super::peer_book::{PeerAction, PeerBook};
use super::sync_planner::{SyncAction, SyncPlanner};
use super::{BlockReason, BlockedPeer, ClientError, Command, Config, NetworkError};
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

/// Why a sync request from a member that may not read is refused.
const NOT_A_READER: &str = "this member may not read (roles.read is false in the charter)";

/// A sync fetch in flight: one range of one feed.
#[derive(Debug, Clone, Copy)]
struct Fetch {
    author: PublicKey,
    to_seq: u64,
    /// The peer advertised this feed's head in reconciliation, so it holds every entry up
    /// to it: an empty answer is a broken promise, not a gap it shares with us.
    advertised: bool,
}

/// Why a peer is on the block list, and until when (`None`: until unblocked).
#[derive(Debug, Clone, Copy)]
struct Block {
    reason: BlockReason,
    until: Option<Instant>,
}

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
    /// Refusals per peer, and when the last one came; they are forgotten after a quiet
    /// `ban` period, so rare faults never add up to a ban.
    strikes: HashMap<PeerId, (u32, Instant)>,
    /// Sync requests being answered, per peer, and whose to read next.
    answering: AnswerQueue<InboundRequestId, (Request, ResponseChannel<Response>)>,
    /// Sync answers computed off the loop, waiting to be sent.
    answers: mpsc::Receiver<ReadAnswer>,
    answer_sender: mpsc::Sender<ReadAnswer>,
    /// Peers on the block list (banned for misbehaviour or blocked by the operator), with
    /// when that ends. Each is also in the `banned` behaviour, which refuses it.
    blocks: HashMap<PeerId, Block>,
    /// Which members to hold links to.
    peer_book: PeerBook,
    /// Our dials under way, so the book hears how each ended.
    dials: HashMap<ConnectionId, Multiaddr>,
    /// Anti-entropy: whom to reconcile with, and what to ask.
    planner: SyncPlanner,
    /// Per-peer gossip rate limits (connected peers, and for a while those gone).
    limits: GossipLimits<PeerId>,
    /// Connected peers whose organisation may not read: gossipsub sends them nothing and
    /// sync answers them no entries nor heads.
    non_readers: HashSet<PeerId>,
    /// Per-author gossip rate limits (authors named by admitted entries; those the
    /// charter no longer certifies are dropped when it is applied).
    author_limits: GossipLimits<PublicKey>,
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
        let libp2p_error = |error: &dyn std::fmt::Display| NetworkError::Libp2p(error.to_string());
        let keypair = libp2p::identity::Keypair::ed25519_from_bytes(node_key.to_bytes())
            .map_err(|error| libp2p_error(&error))?;
        let settings = Settings {
            heartbeat: config.heartbeat,
            max_connections: config.max_connections,
            request_timeout: config.request_timeout,
            mdns: config.mdns,
            target_peers: config.target_peers,
            ip_limits: IpLimitConfig {
                max_pending: config.ip_max_pending,
                per_sec: f64::from(config.ip_connections_per_sec),
                burst: f64::from(config.ip_connection_burst),
            },
            metrics: Arc::clone(&metrics),
        };
        // TCP, Noise and yamux as `with_tcp` builds them, counting every byte.
        let transport =
            super::transport::build(&config.carrier, &keypair, Arc::clone(&metrics.transport))
                .map_err(|error| libp2p_error(&error))?;
        let mut swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
            .with_tokio()
            .with_other_transport(|_| transport)
            .map_err(|error| libp2p_error(&error))?
            .with_behaviour(|key| Behaviour::new(key, &settings))
            .map_err(|error| libp2p_error(&error))?
            .with_swarm_config(|swarm| swarm.with_idle_connection_timeout(Duration::from_secs(300)))
            .with_connection_timeout(config.handshake_timeout)
            .build();
        let federation = charter.borrow().federation();
        let topic = IdentTopic::new(format!("/threatmesh/{federation}/1"));
        swarm
            .behaviour_mut()
            .gossipsub
            .subscribe(&topic)
            .map_err(|error| libp2p_error(&error))?;
        for address in &config.listen {
            swarm
                .listen_on(address.clone())
                .map_err(|error| libp2p_error(&error))?;
        }
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
            strikes: HashMap::new(),
            answering: AnswerQueue::new(),
            answers,
            answer_sender,
            blocks: HashMap::new(),
            peer_book,
            dials: HashMap::new(),
            planner: SyncPlanner::new(config.sync_peers, config.sync_interval),
            limits: GossipLimits::new(
                config.peer_messages_per_sec,
                config.peer_message_burst,
                config.peer_bytes_per_sec,
                config.peer_byte_burst,
            ),
            non_readers: HashSet::new(),
            author_limits: GossipLimits::new(
                config.author_messages_per_sec,
                config.author_message_burst,
                config.author_bytes_per_sec,
                config.author_byte_burst,
            ),
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
                    self.limits.wake(&peer_id);
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
                self.limits.rest(peer_id, Instant::now());
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

    fn handle_gossip(&mut self, event: gossipsub::Event) {
        let gossipsub::Event::Message {
            propagation_source,
            message_id,
            message,
        } = event
        else {
            return;
        };
        let (bytes, now) = (message.data.len(), Instant::now());
        // Over a rate: not checked, not forwarded, not blamed; sync fetches it later. The
        // forwarder is asked first without charging it, so a flood beyond its rate costs no
        // header read; then the author, so a relay is not charged for an author's flood.
        if !self.limits.allows(propagation_source, bytes, now) {
            self.metrics.throttled(bytes);
            self.ignore(&message_id, &propagation_source);
            return;
        }
        // Only authors the charter certifies get buckets (anyone else's entry is refused
        // anyway), so a header naming made-up authors cannot grow the map.
        let author = EntryHeader::peek(&message.data)
            .ok()
            .map(|header| header.author)
            .filter(|author| self.charter.borrow().charter().node(author).is_some());
        if let Some(author) = author
            && !self.author_limits.admit(author, bytes, now)
        {
            self.metrics.throttled_author(bytes);
            self.ignore(&message_id, &propagation_source);
            return;
        }
        // Cannot fail after `allows` at the same instant (a new key is judged as full
        // buckets there); kept as the one place the forwarder's tokens are taken.
        if !self.limits.admit(propagation_source, bytes, now) {
            self.refund_author(author, bytes);
            self.metrics.throttled(bytes);
            self.ignore(&message_id, &propagation_source);
            return;
        }
        let job = Job::Gossip {
            payload: message.data,
            message_id: message_id.clone(),
            source: propagation_source,
            reserved: author,
        };
        if self.jobs.try_send(job).is_err() {
            // The pipeline is saturated: let the message go; sync fetches it later.
            self.refund_author(author, bytes);
            self.metrics.queue_full();
            self.ignore(&message_id, &propagation_source);
        }
    }

    /// Gives an author back the tokens taken for a message that was not stored.
    fn refund_author(&mut self, author: Option<PublicKey>, bytes: usize) {
        if let Some(author) = author {
            self.author_limits.refund(author, bytes, Instant::now());
        }
    }

    /// Tells gossipsub to drop a message unjudged: neither forwarded nor held against its
    /// sender.
    fn ignore(&mut self, message_id: &gossipsub::MessageId, source: &PeerId) {
        self.swarm
            .behaviour_mut()
            .gossipsub
            .report_message_validation_result(message_id, source, MessageAcceptance::Ignore);
    }

    fn handle_verdict(&mut self, verdict: Verdict) {
        match verdict {
            Verdict::Gossip {
                message_id,
                source,
                acceptance,
                blame,
                gap,
                charter_behind,
                reserved,
            } => {
                // An entry refused as from the future was signed by the author its header
                // names (its signature is checked first): its author pays for it as for a
                // stored one, or a member could make every node check such entries
                // forever at no cost to its own rate.
                if acceptance != Acceptance::Accept
                    && acceptance != Acceptance::Reject(Rejection::FromTheFuture)
                    && let Some((author, bytes)) = reserved
                {
                    self.refund_author(Some(author), bytes);
                }
                let answer = match acceptance {
                    Acceptance::Accept => MessageAcceptance::Accept,
                    Acceptance::Ignore => MessageAcceptance::Ignore,
                    Acceptance::Reject(reason) => {
                        debug!(peer = %source, reason = reason.as_str(), "gossip rejected");
                        MessageAcceptance::Reject
                    }
                };
                if blame {
                    self.strike(source, 1);
                }
                self.swarm
                    .behaviour_mut()
                    .gossipsub
                    .report_message_validation_result(&message_id, &source, answer);
                if let Some((author, missing)) = gap {
                    // Recomputed from the store when sent: entries of the gap may be in
                    // the pipeline already.
                    self.fetch_missing(source, author, *missing.end(), false);
                }
                if charter_behind {
                    self.request_charters(source);
                }
            }
            Verdict::Gap {
                source,
                author,
                missing,
            } => self.fetch_missing(source, author, *missing.end(), false),
            Verdict::Range {
                peer,
                request,
                author,
                stored,
                blamed,
                regossip,
            } => {
                // Recent entries fetched by sync are likely missing elsewhere too: gossip
                // spreads them in a few hops. Nodes holding them ignore them unforwarded.
                for payload in regossip {
                    match self
                        .swarm
                        .behaviour_mut()
                        .gossipsub
                        .publish(self.topic.clone(), payload)
                    {
                        Ok(_) => self.metrics.regossiped(),
                        Err(error) => debug!(%error, "entry fetched by sync not gossiped again"),
                    }
                }
                if blamed > 0 {
                    self.strike(peer, u32::try_from(blamed).unwrap_or(u32::MAX));
                }
                // Ask again only after progress: a peer that sends nothing new (it lacks
                // the entries, or plays games with `more`) is not asked again for this
                // feed until it shows it again; another source of it is asked instead.
                self.fetch_ended(author, request, stored > 0);
            }
            Verdict::Charters { peer, blamed } => {
                if blamed > 0 {
                    self.strike(peer, u32::try_from(blamed).unwrap_or(u32::MAX));
                }
            }
            Verdict::CharterAccepted(charter) => self.adopt_charter(charter),
        }
    }

    /// Applies `charter` if it supersedes the one in force (a late verdict for an older
    /// version must not undo a newer one).
    fn adopt_charter(&mut self, charter: Arc<SignedCharter>) {
        let current = Arc::clone(&self.charter.borrow());
        if !charter.supersedes(&current) {
            return;
        }
        info!(version = charter.charter().version, "newer charter applied");
        self.charter.send_replace(Arc::clone(&charter));
        self.apply_charter(&charter);
    }

    fn handle_sync(&mut self, event: request_response::Event<SyncRequest, Response>) {
        match event {
            request_response::Event::Message {
                peer,
                message:
                    request_response::Message::Request {
                        request_id,
                        request,
                        channel,
                    },
                ..
            } => match request {
                SyncRequest::Valid(request) => self.answer(peer, request_id, request, channel),
                SyncRequest::Oversized(too_large) => {
                    // Requests are a few dozen bytes: only a peer that breaks the protocol
                    // sends one over the limit. Its body was never read.
                    warn!(%peer, %too_large, "oversized sync request refused");
                    self.metrics.sync_oversized_request();
                    self.strike(peer, 1);
                    let refused = Response::Refused(too_large.to_string());
                    self.send_answer(peer, channel, refused);
                }
            },
            request_response::Event::Message {
                peer,
                message:
                    request_response::Message::Response {
                        request_id,
                        response,
                    },
                ..
            } => self.handle_response(peer, request_id, response),
            request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                debug!(%peer, %error, "sync request failed");
                if let request_response::OutboundFailure::Io(error) = &error
                    && is_frame_too_large(error)
                {
                    // Our requests are bounded by what honest answers hold: only a peer
                    // that breaks the protocol sends more.
                    warn!(%peer, %error, "oversized sync response refused");
                    self.metrics.sync_oversized_response();
                    self.strike(peer, 1);
                }
                if matches!(error, request_response::OutboundFailure::Timeout) {
                    self.metrics.sync_timed_out();
                }
                if self.pending_reconciles.remove(&request_id).is_some() {
                    let timed_out = matches!(error, request_response::OutboundFailure::Timeout);
                    let actions = self.planner.failed(peer, timed_out);
                    self.carry_out_sync(actions, None);
                }
                self.pending_charters.remove(&request_id);
                if let Some(fetch) = self.pending_ranges.remove(&request_id) {
                    if fetch.advertised
                        && matches!(error, request_response::OutboundFailure::Timeout)
                        && self.sources.is_fetching(&fetch.author, request_id)
                    {
                        // It showed the feed and then stalled: a broken promise, like an
                        // empty answer. Its other sources are asked at once.
                        let actions = self.planner.did_not_serve(peer);
                        self.carry_out_sync(actions, None);
                    }
                    self.fetch_ended(fetch.author, request_id, false);
                }
            }
            request_response::Event::InboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                debug!(%peer, %error, "sync request from peer failed");
                if let request_response::InboundFailure::Io(error) = &error
                    && is_slow_reader(error)
                {
                    // It asked and did not take the answer in time: holding this node's
                    // memory for nothing, or a link too slow for the federation.
                    warn!(%peer, %error, "sync answer dropped: the peer reads too slowly");
                    self.metrics.sync_slow_reader();
                    self.strike(peer, 1);
                }
                self.answering.ended(peer, request_id);
                self.start_reads();
            }
            request_response::Event::ResponseSent {
                peer, request_id, ..
            } => {
                self.answering.ended(peer, request_id);
                self.start_reads();
            }
        }
    }

    /// Queues a sync request to be answered from the store in turn with every peer's
    /// (`answers.rs`). A peer already holding the most answers it may is refused, and
    /// struck: honest nodes never ask that much at once.
    fn answer(
        &mut self,
        peer: PeerId,
        id: InboundRequestId,
        request: Request,
        channel: ResponseChannel<Response>,
    ) {
        if let Some(withheld) = self.withhold_from_non_reader(&peer, &request) {
            self.send_answer(peer, channel, withheld);
            return;
        }
        if let Err(OverLimit((_, channel))) = self.answering.admit(peer, id, (request, channel)) {
            warn!(%peer, "sync request refused: the peer holds too many answers already");
            self.metrics.sync_answer_over_limit();
            self.strike(peer, 1);
            let refused = Response::Refused("too many sync requests at once".into());
            self.send_answer(peer, channel, refused);
            return;
        }
        self.start_reads();
    }

    /// Starts the store reads the answer queue hands out, off the loop: a page can be
    /// megabytes of reads.
    fn start_reads(&mut self) {
        while let Some((peer, id, (request, channel))) = self.answering.next() {
            let charter = Arc::clone(&self.charter.borrow());
            let store = self.store.clone();
            let metrics = Arc::clone(&self.metrics);
            let answers = self.answer_sender.clone();
            tokio::task::spawn_blocking(move || {
                // The answer must come back whatever happens: the queue frees the peer's
                // read slot only then, and a slot lost for good stops serving sync.
                let read = std::panic::AssertUnwindSafe(|| {
                    read_answer(&store, &charter, request, &metrics)
                });
                let response = std::panic::catch_unwind(read).unwrap_or_else(|_| {
                    error!(%peer, "reading a sync answer panicked");
                    Response::Refused("internal error".into())
                });
                // The loop is gone only when the node is shutting down.
                let _ = answers.blocking_send((peer, id, channel, response));
            });
        }
        let (held, bytes) = self.answering.held();
        self.metrics.set_answers_held(held, bytes);
    }

    /// The answer to a sync request from a peer whose organisation may not read, when the
    /// request would reveal entries or feed heads: `Heads` and `Range` are refused, and a
    /// `Reconcile` is answered as if the two were in step, with the charter in force only
    /// (so a publish-only node still learns of newer charters and asks for them). `None`
    /// for readers, and for what anyone may have: charters.
    fn withhold_from_non_reader(&self, peer: &PeerId, request: &Request) -> Option<Response> {
        if !self.non_readers.contains(peer) {
            return None;
        }
        let charter = self.charter.borrow();
        let withheld = match request {
            Request::Reconcile { federation, .. } if *federation == charter.federation() => {
                Response::Reconcile {
                    charter_version: charter.charter().version,
                    charter_id: charter.id(),
                    parts: Vec::new(),
                }
            }
            Request::Heads { .. } | Request::Range { .. } => Response::Refused(NOT_A_READER.into()),
            Request::Reconcile { .. } | Request::Charters { .. } => return None,
        };
        debug!(%peer, "sync request from a member that may not read: no entries, no heads");
        self.metrics.sync_withheld();
        Some(withheld)
    }

    /// Sends an answer read off the loop. A reconcile answer that differs means one of the
    /// two lacks something: if it is this node, reconciling the other way finds it, so a
    /// session with the asker is started (anti-entropy pushes as well as pulls, and an
    /// entry fetched by one node spreads at every round, not only when others pick it).
    fn handle_answer(
        &mut self,
        peer: PeerId,
        id: InboundRequestId,
        channel: ResponseChannel<Response>,
        response: Response,
    ) {
        let differs = matches!(&response, Response::Reconcile { parts, .. } if !parts.is_empty());
        // Not sent if the request ended while it was read (timed out, connection gone).
        if !self.answering.read(peer, id, answer_bytes(&response))
            || !self.send_answer(peer, channel, response)
        {
            self.answering.ended(peer, id);
        }
        self.start_reads();
        if differs {
            self.planner.peer_differs(peer, Instant::now());
            self.send_reconciles();
        }
    }

    /// Hands `response` to libp2p; false if the request is gone (its connection closed).
    fn send_answer(
        &mut self,
        peer: PeerId,
        channel: ResponseChannel<Response>,
        response: Response,
    ) -> bool {
        let sent = self
            .swarm
            .behaviour_mut()
            .sync
            .send_response(channel, response)
            .is_ok();
        if !sent {
            debug!(%peer, "sync response not sent: connection gone");
        }
        sent
    }

    fn handle_response(&mut self, peer: PeerId, request_id: OutboundRequestId, response: Response) {
        if self.pending_reconciles.remove(&request_id).is_some() {
            match response {
                Response::Reconcile {
                    charter_version,
                    charter_id,
                    parts,
                } => {
                    let (own, ours) = (self.own_heads(), self.charter_mark());
                    let actions = self.planner.answered(
                        peer,
                        &parts,
                        (charter_version, charter_id),
                        &own,
                        ours,
                    );
                    self.carry_out_sync(actions, Some(own));
                }
                // Busy, or a node that does not reconcile: the session ends until the next
                // round.
                _ => {
                    let actions = self.planner.failed(peer, false);
                    self.carry_out_sync(actions, None);
                }
            }
        } else if let Some(fetch) = self.pending_ranges.remove(&request_id) {
            // `more` is not needed: after a page that made progress, what is still missing
            // is asked for again anyway.
            let Response::Range { entries, .. } = response else {
                // Refused: another source is asked.
                self.fetch_ended(fetch.author, request_id, false);
                return;
            };
            if entries.is_empty() && fetch.advertised {
                // It showed this feed's head in reconciliation, so it holds every entry up to
                // it; serving none of them is a broken promise.
                let actions = self.planner.did_not_serve(peer);
                self.carry_out_sync(actions, None);
                self.fetch_ended(fetch.author, request_id, false);
                return;
            }
            let bytes = entries.iter().map(Vec::len).sum();
            self.metrics.fetched(entries.len(), bytes);
            let job = Job::Range {
                payloads: entries,
                peer,
                request: request_id,
                author: fetch.author,
                to_seq: fetch.to_seq,
            };
            if self.jobs.try_send(job).is_err() {
                self.metrics.queue_full();
                // Not asked again of this peer at once: the pipeline is behind.
                self.fetch_ended(fetch.author, request_id, false);
            }
        } else if self.pending_charters.remove(&request_id).is_some()
            && let Response::Charters(charters) = response
            && !charters.is_empty()
            && self
                .jobs
                .try_send(Job::Charters { charters, peer })
                .is_err()
        {
            self.metrics.queue_full();
        }
    }

    /// `peer` showed `author`'s feed up to `up_to` (`advertised`: as its head in
    /// reconciliation): keeps it as a source of the feed and fetches what is missing, unless
    /// the feed is being fetched already (then it is asked if that fetch fails). Never past
    /// what the charter still accepts of the feed: entries beyond a cutoff would only be
    /// refused.
    fn fetch_missing(&mut self, peer: PeerId, author: PublicKey, up_to: u64, advertised: bool) {
        if !self.swarm.is_connected(&peer) {
            return;
        }
        let up_to = {
            let charter = self.charter.borrow();
            let Some((member, _)) = charter.charter().node(&author) else {
                return; // Nobody certified it: nothing of it would be accepted.
            };
            match (member.cutoff(&author), member.status.out_of_standing()) {
                (Some(cutoff), _) => up_to.min(cutoff.last_seq),
                (None, Some(_)) => return,
                (None, None) => up_to,
            }
        };
        let source = Source {
            peer,
            up_to,
            advertised,
        };
        self.sources.offer(author, source);
        self.start_fetch(&author);
    }

    /// Fetches the first missing range of `author`'s feed from its first source with a
    /// free slot, unless a fetch of it is in flight. Sources that show nothing this node
    /// lacks are dropped on the way.
    fn start_fetch(&mut self, author: &PublicKey) {
        while let Some(source) = self.sources.next_source(author) {
            if !self.swarm.is_connected(&source.peer) {
                self.sources.drop_source(author, &source.peer);
                continue;
            }
            match self.store.first_missing(author, source.up_to) {
                Ok(Some(first)) => {
                    self.fetch(source, *author, *first.start(), *first.end());
                    return;
                }
                Ok(None) => self.sources.drop_source(author, &source.peer),
                Err(error) => {
                    warn!(%error, "store failed while planning sync");
                    return;
                }
            }
        }
    }

    /// The fetch `request` of `author`'s feed ended; `progressed`: it stored something.
    /// Without progress its peer is no longer a source of the feed, and what it claimed
    /// no longer counts in the feed's lag. Then the feed is fetched from its next source,
    /// and feeds that waited for a free slot get it.
    fn fetch_ended(&mut self, author: PublicKey, request: OutboundRequestId, progressed: bool) {
        if !self.sources.finished(&author, request, progressed) {
            return;
        }
        if !progressed {
            let held = match self.store.feed(&author) {
                Ok(feed) => feed.map_or(0, |feed| feed.highest),
                Err(error) => {
                    warn!(%error, "store failed while planning sync");
                    0
                }
            };
            let still_shown = self.sources.best_claim(&author).unwrap_or(0);
            self.metrics.cap_advertised(author, still_shown.max(held));
        }
        for feed in self.sources.idle_feeds() {
            self.start_fetch(&feed);
        }
    }

    fn fetch(&mut self, source: Source, author: PublicKey, from_seq: u64, to_seq: u64) {
        if from_seq > to_seq {
            return;
        }
        let federation = self.charter.borrow().federation();
        let request = Request::Range {
            federation,
            author,
            from_seq,
            to_seq,
            limit_bytes: u32::try_from(wire::MAX_RANGE_BYTES).unwrap_or(u32::MAX),
        };
        let id = self
            .swarm
            .behaviour_mut()
            .sync
            .send_request(&source.peer, SyncRequest::Valid(request));
        self.pending_ranges.insert(
            id,
            Fetch {
                author,
                to_seq,
                advertised: source.advertised,
            },
        );
        self.sources.started(author, source.peer, id);
    }

    /// An anti-entropy round: reconcile with the next few peers in turn.
    fn sync_round(&mut self) {
        self.planner.tick();
        self.send_reconciles();
    }

    /// Sends the reconcile requests the planner has ready, summarised from this node's
    /// heads as they are now.
    fn send_reconciles(&mut self) {
        if !self.planner.has_requests() {
            return;
        }
        let own = self.own_heads();
        let actions = self.planner.requests(&own);
        self.carry_out_sync(actions, Some(own));
    }

    /// Carries out what the planner decided. `own` is this node's heads if the caller read
    /// them already (one scan of the feed states per event, not two).
    fn carry_out_sync(&mut self, actions: Vec<SyncAction>, own: Option<HeadSet>) {
        for action in actions {
            match action {
                SyncAction::Ask { peer, summaries } => {
                    let federation = self.charter.borrow().federation();
                    let request = Request::Reconcile {
                        federation,
                        ranges: summaries,
                    };
                    let id = self
                        .swarm
                        .behaviour_mut()
                        .sync
                        .send_request(&peer, SyncRequest::Valid(request));
                    self.pending_reconciles.insert(id, peer);
                    self.metrics.reconcile_sent();
                }
                SyncAction::Fetch { peer, head } => {
                    if self.is_certified(&head.author) {
                        self.metrics.advertised(head.author, head.seq);
                        self.fetch_missing(peer, head.author, head.seq, true);
                    }
                }
                SyncAction::FetchCharters { peer } => self.request_charters(peer),
                SyncAction::Strike { peer, why } => {
                    warn!(%peer, why, "sync misbehaviour");
                    self.metrics.sync_failed();
                    self.strike(peer, 1);
                }
            }
        }
        // An answer may leave narrower ranges to ask about, and a failure may have started
        // a session with the next peer. What `requests` returns is only asks.
        if self.planner.has_requests() {
            let own = own.unwrap_or_else(|| self.own_heads());
            let more = self.planner.requests(&own);
            self.carry_out_sync(more, None);
        }
    }

    /// Whether the charter in force certifies `author`: only their feeds are planned for,
    /// so a peer cannot make the loop plan for thousands of made-up feeds.
    fn is_certified(&self, author: &PublicKey) -> bool {
        self.charter.borrow().charter().node(author).is_some()
    }

    /// This node's feed heads, for reconciliation. One key scan of the feed states; a
    /// store that cannot be read reconciles as empty (it then fetches nothing it holds:
    /// every fetch starts from the store's own first missing entry).
    fn own_heads(&self) -> HeadSet {
        match self.store.heads() {
            Ok(heads) => HeadSet::new(heads),
            Err(error) => {
                warn!(%error, "store failed while reading heads for sync");
                HeadSet::default()
            }
        }
    }

    /// The version and id of the charter in force.
    fn charter_mark(&self) -> (u64, Hash) {
        let charter = self.charter.borrow();
        (charter.charter().version, charter.id())
    }

    /// Asks `peer` for its charters from the version before the one in force on: newer
    /// ones, and rivals of the versions that still take one, which a charter it sent may
    /// follow.
    fn request_charters(&mut self, peer: PeerId) {
        if self.pending_charters.values().any(|asked| *asked == peer) {
            return;
        }
        let (federation, after_version) = {
            let charter = self.charter.borrow();
            (
                charter.federation(),
                charter
                    .charter()
                    .version
                    .saturating_sub(1 + threatmesh_protocol::charter::RIVAL_DEPTH),
            )
        };
        let id = self.swarm.behaviour_mut().sync.send_request(
            &peer,
            SyncRequest::Valid(Request::Charters {
                federation,
                after_version,
            }),
        );
        self.pending_charters.insert(id, peer);
    }

    /// Counts refusals against `peer`; past the limit it is banned for a while. Strikes
    /// older than a ban period are forgotten first.
    fn strike(&mut self, peer: PeerId, count: u32) {
        let now = Instant::now();
        let forget_after = self.config.ban;
        let (strikes, last) = self.strikes.entry(peer).or_insert((0, now));
        if now.duration_since(*last) > forget_after {
            *strikes = 0;
        }
        *strikes = strikes.saturating_add(count);
        *last = now;
        if *strikes >= self.config.rejects_before_ban {
            self.strikes.remove(&peer);
            warn!(%peer, "banning peer that keeps sending refused messages");
            self.swarm.behaviour_mut().banned.block_peer(peer);
            self.peer_book.set_blocked(peer, true, now);
            // An operator's block, if any, stays as the operator set it.
            self.blocks.entry(peer).or_insert(Block {
                reason: BlockReason::Misbehaviour,
                until: Some(now + self.config.ban),
            });
            self.metrics.banned();
        }
    }

    /// Puts `peer` on the block list for `duration` (`None`: until unblocked), replacing
    /// any ban or earlier block; its connections close now and new ones are refused.
    fn block(&mut self, peer: PeerId, duration: Option<Duration>) -> Result<(), ClientError> {
        if peer == *self.swarm.local_peer_id() {
            return Err(ClientError::Invalid("a node cannot block itself".into()));
        }
        let until = match duration {
            Some(duration) => Some(
                Instant::now()
                    .checked_add(duration)
                    .ok_or_else(|| ClientError::Invalid("block too long".into()))?,
            ),
            None => None,
        };
        info!(%peer, ?duration, "peer blocked by the operator");
        self.swarm.behaviour_mut().banned.block_peer(peer);
        self.peer_book.set_blocked(peer, true, Instant::now());
        self.blocks.insert(
            peer,
            Block {
                reason: BlockReason::Operator,
                until,
            },
        );
        Ok(())
    }

    /// Takes `peer` off the block list, whatever put it there, and redials its known
    /// addresses now rather than at the end of a backoff grown while it was blocked.
    /// Returns whether it was blocked.
    fn unblock(&mut self, peer: PeerId) -> bool {
        let was_blocked = self.blocks.remove(&peer).is_some();
        self.swarm.behaviour_mut().banned.unblock_peer(peer);
        if was_blocked {
            info!(%peer, "peer unblocked");
        }
        self.peer_book.set_blocked(peer, false, Instant::now());
        was_blocked
    }

    /// The block list, with the time left of each entry.
    fn blocked_peers(&self) -> Vec<BlockedPeer> {
        let now = Instant::now();
        let mut peers: Vec<BlockedPeer> = self
            .blocks
            .iter()
            .map(|(peer, block)| BlockedPeer {
                peer: *peer,
                reason: block.reason,
                remaining: block
                    .until
                    .map(|until| until.saturating_duration_since(now)),
            })
            .collect();
        peers.sort_by_key(|blocked| blocked.peer.to_bytes());
        peers
    }

    /// Makes the allow list match `charter`: its certified, active nodes may connect; a
    /// node that lost that is disconnected at once.
    fn apply_charter(&mut self, charter: &SignedCharter) {
        self.refresh_allow_list(charter);
        self.apply_read_roles();
        self.plan_addresses(charter);
        self.clock
            .retain(|org| charter.charter().member(org).is_some());
        self.author_limits
            .retain(|author| charter.charter().node(author).is_some());
        self.sources
            .retain(|author| charter.charter().node(author).is_some());
    }

    /// The allow-list half of [`EventLoop::apply_charter`]. Certificate windows open and
    /// close with time, so the maintenance tick runs it again when the next one does (or
    /// when the clock went back): one pass over the members, not one per tick.
    fn refresh_allow_list(&mut self, charter: &SignedCharter) {
        let now = self.clock.clock().now();
        self.allow_list_at = now;
        self.allow_list_due = charter.charter().next_window_change(now);
        let own = *self.swarm.local_peer_id();
        // Each admitted peer with its group for the peer set's diversity: its organisation.
        let members: HashMap<PeerId, u64> = charter
            .charter()
            .connectable(now)
            .filter_map(|(member, cert)| {
                let peer = PeerId::from_bytes(&cert.node.peer_id_bytes()).ok()?;
                let mut group = [0u8; 8];
                group.copy_from_slice(&member.org.0[..8]);
                Some((peer, u64::from_le_bytes(group)))
            })
            .filter(|(peer, _)| *peer != own)
            .collect();
        let allowed: HashSet<PeerId> = members.keys().copied().collect();
        let current: Vec<PeerId> = self
            .swarm
            .behaviour()
            .allowed
            .allowed_peers()
            .iter()
            .copied()
            .collect();
        for peer in current {
            if !allowed.contains(&peer) {
                info!(%peer, "no longer in the charter: disconnecting");
                self.swarm.behaviour_mut().allowed.disallow_peer(peer);
            }
        }
        // Stop dialling peers the charter no longer admits.
        self.peer_book.set_members(members);
        for peer in allowed {
            self.swarm.behaviour_mut().allowed.allow_peer(peer);
        }
    }

    /// Whether the charter in force lets `peer`'s organisation read: be sent entries.
    fn may_read(&self, peer: &PeerId) -> bool {
        let Some(node) = PublicKey::from_peer_id_bytes(&peer.to_bytes()) else {
            return false;
        };
        self.charter
            .borrow()
            .charter()
            .node(&node)
            .is_some_and(|(member, _)| member.roles.read)
    }

    /// Tells gossipsub whether `peer` (connected) may be sent entries, from the charter in
    /// force: a peer that may not read scores [`NON_READER_SCORE`], below which gossipsub
    /// neither publishes, forwards nor gossips to it, nor takes it into the mesh. Returns
    /// whether it may read.
    fn apply_read_role(&mut self, peer: PeerId) -> bool {
        let reads = self.may_read(&peer);
        let score = if reads { 0.0 } else { NON_READER_SCORE };
        let scored = self
            .swarm
            .behaviour_mut()
            .gossipsub
            .set_application_score(&peer, score);
        if !scored {
            // gossipsub knows every connected peer; without a score it would send to it.
            error!(%peer, "gossipsub has no score for a connected peer");
        }
        if reads {
            self.non_readers.remove(&peer);
        } else {
            self.non_readers.insert(peer);
        }
        reads
    }

    /// [`EventLoop::apply_read_role`] for every connected peer, after a newer charter. A
    /// peer that could read and may no longer is disconnected too: gossipsub leaves a mesh
    /// peer with a low score in the mesh until its next heartbeat, and forwards to it until
    /// then. It may connect again at once, and is then sent nothing.
    fn apply_read_roles(&mut self) {
        let own = PublicKey::from_peer_id_bytes(&self.swarm.local_peer_id().to_bytes());
        let own_reads = own.and_then(|own| {
            let charter = self.charter.borrow();
            charter
                .charter()
                .node(&own)
                .map(|(member, _)| member.roles.read)
        });
        if own_reads == Some(false) {
            info!("this node's organisation may not read: it publishes, and is sent charters only");
        }
        let connected: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
        for peer in connected {
            let could_read = !self.non_readers.contains(&peer);
            if !self.apply_read_role(peer) && could_read {
                info!(%peer, "its organisation may no longer read: disconnecting");
                let _ = self.swarm.disconnect_peer_id(peer);
            }
        }
    }

    /// The members' bootstrap addresses, parsed when a charter is applied.
    fn plan_addresses(&mut self, charter: &SignedCharter) {
        let addresses: Vec<Multiaddr> = charter
            .charter()
            .members
            .iter()
            .flat_map(|member| member.addresses.iter())
            .filter_map(|text| text.parse().ok())
            .collect();
        let now = Instant::now();
        for address in addresses {
            self.peer_book.add_address(address, now);
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
        let expired: Vec<PeerId> = self
            .blocks
            .iter()
            .filter(|(_, block)| block.until.is_some_and(|until| until <= now))
            .map(|(peer, _)| *peer)
            .collect();
        for peer in expired {
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

/// Reads the answer to a sync request from the store. Runs off the loop.
fn read_answer(
    store: &Store,
    charter: &SignedCharter,
    request: Request,
    metrics: &Metrics,
) -> Response {
    let federation = charter.federation();
    let answer = match request {
        Request::Reconcile {
            federation: asked,
            ranges,
        } if asked == federation => store.heads().map(|heads| Response::Reconcile {
            charter_version: charter.charter().version,
            charter_id: charter.id(),
            parts: HeadSet::new(heads).answer(&ranges),
        }),
        Request::Heads { federation: asked } if asked == federation => {
            store.heads().map(Response::Heads)
        }
        Request::Range {
            federation: asked,
            author,
            from_seq,
            to_seq,
            limit_bytes,
        } if asked == federation => store
            .range(&author, from_seq, to_seq, wire::range_limit(limit_bytes))
            .map(|range| {
                metrics.served(range.payloads.len());
                Response::Range {
                    entries: range.payloads,
                    more: range.more,
                }
            }),
        Request::Charters {
            federation: asked,
            after_version,
        } if asked == federation => store.charters_after(after_version).map(|charters| {
            // As many as fit one response; the asker asks again for the rest.
            let mut bytes = 0;
            Response::Charters(
                charters
                    .iter()
                    .map(|charter| charter.raw().clone())
                    .take_while(|raw| {
                        bytes += raw.charter.len() + raw.signatures.len() * 96;
                        bytes <= wire::MAX_RANGE_BYTES
                    })
                    .collect(),
            )
        }),
        _ => Ok(Response::Refused("not this federation".into())),
    };
    answer.unwrap_or_else(|error| {
        warn!(%error, "store failed while answering sync");
        Response::Refused("storage error".into())
    })
}
