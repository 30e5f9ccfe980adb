//! Raw peers: swarms that hold a member's node key and speak gossipsub or the sync
//! protocol with whatever bytes a test gives them, as a hostile or buggy member would. The
//! node under test runs its ordinary code; only these peers are special.

use std::time::Duration;

use anyhow::{Result, bail};
use threatmesh_protocol::{Hash, SigningKey};

use crate::{TIMEOUT, TestNode};

/// A swarm that speaks to nodes as a node does (TCP, Noise, yamux), with node key `key`
/// and `behaviour` on top; idle connections stay open for a minute. The raw test peers
/// are built on it.
pub fn raw_swarm<B: libp2p::swarm::NetworkBehaviour>(
    key: &SigningKey,
    behaviour: B,
) -> Result<libp2p::Swarm<B>> {
    let keypair = libp2p::identity::Keypair::ed25519_from_bytes(key.to_bytes())?;
    Ok(libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            libp2p::tcp::Config::default().nodelay(true),
            libp2p::noise::Config::new,
            libp2p::yamux::Config::default,
        )?
        .with_behaviour(move |_| behaviour)?
        .with_swarm_config(|config| config.with_idle_connection_timeout(Duration::from_secs(60)))
        .build())
}

/// A bare gossipsub peer holding a member's node key: it passes the allow list and then
/// sends whatever the test tells it to, as a hostile or buggy member would. The node under
/// test runs its ordinary code; only this peer is special.
pub struct RawPeer {
    swarm: libp2p::Swarm<libp2p::gossipsub::Behaviour>,
    topic: libp2p::gossipsub::IdentTopic,
    /// The payloads of the gossip messages it received so far, in order.
    pub received: Vec<Vec<u8>>,
}

impl std::fmt::Debug for RawPeer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawPeer")
            .field("peer_id", self.swarm.local_peer_id())
            .finish_non_exhaustive()
    }
}

impl RawPeer {
    /// A peer with node key `key`, on the topic of `federation`, configured like a node
    /// (same message ids, same frame limit, no gossipsub signatures).
    pub fn new(key: &SigningKey, federation: Hash) -> Result<RawPeer> {
        RawPeer::with_max_transmit(
            key,
            federation,
            2 * threatmesh_protocol::wire::MAX_GOSSIP_BYTES,
        )
    }

    /// The gossipsub configuration of a raw peer: a node's message ids, no gossipsub
    /// signatures, no validation, frames up to `max_transmit_bytes`.
    pub fn gossipsub_config(max_transmit_bytes: usize) -> Result<libp2p::gossipsub::Config> {
        use libp2p::gossipsub;
        gossipsub::ConfigBuilder::default()
            .heartbeat_interval(Duration::from_millis(100))
            .max_transmit_size(max_transmit_bytes)
            .validation_mode(gossipsub::ValidationMode::None)
            .message_id_fn(|message| gossipsub::MessageId::new(&Hash::of(&message.data).0))
            .build()
            .map_err(|error| anyhow::anyhow!("gossipsub config: {error}"))
    }

    /// [`RawPeer::new`] with a frame limit of `max_transmit_bytes`: above the node's, it
    /// sends frames the node must refuse.
    pub fn with_max_transmit(
        key: &SigningKey,
        federation: Hash,
        max_transmit_bytes: usize,
    ) -> Result<RawPeer> {
        use libp2p::gossipsub;
        let config = RawPeer::gossipsub_config(max_transmit_bytes)?;
        let behaviour =
            gossipsub::Behaviour::new(gossipsub::MessageAuthenticity::Anonymous, config)
                .map_err(|error| anyhow::anyhow!("gossipsub: {error}"))?;
        let mut swarm = raw_swarm(key, behaviour)?;
        let topic = gossipsub::IdentTopic::new(format!("/threatmesh/{federation}/1"));
        swarm.behaviour_mut().subscribe(&topic)?;
        Ok(RawPeer {
            swarm,
            topic,
            received: Vec::new(),
        })
    }

    /// Dials `node` and drives the swarm until the node has subscribed us to its mesh
    /// view (its subscription reached us) so publishing reaches it.
    pub async fn connect(&mut self, node: &TestNode) -> Result<()> {
        self.swarm.dial(node.address.clone())?;
        let target = node.client.peer_id();
        self.drive_until("the node's subscription", |event| {
            matches!(
                event,
                libp2p::swarm::SwarmEvent::Behaviour(libp2p::gossipsub::Event::Subscribed { peer_id, .. })
                    if *peer_id == target
            )
        })
        .await
    }

    /// Dials `node` and reports whether it admits us (its subscription arrives) or not
    /// (the connection closes or the dial fails).
    pub async fn try_connect(&mut self, node: &TestNode) -> Result<bool> {
        self.swarm.dial(node.address.clone())?;
        let target = node.client.peer_id();
        let mut admitted = false;
        self.drive_until("the node to admit or refuse us", |event| {
            use libp2p::swarm::SwarmEvent;
            match event {
                SwarmEvent::Behaviour(libp2p::gossipsub::Event::Subscribed { peer_id, .. })
                    if *peer_id == target =>
                {
                    admitted = true;
                    true
                }
                SwarmEvent::ConnectionClosed { peer_id, .. } => *peer_id == target,
                SwarmEvent::OutgoingConnectionError { .. } => true,
                _ => false,
            }
        })
        .await?;
        Ok(admitted)
    }

    /// Publishes `payload` on the federation's topic as is.
    pub fn publish(&mut self, payload: Vec<u8>) -> Result<()> {
        self.swarm
            .behaviour_mut()
            .publish(self.topic.clone(), payload)
            .map(drop)
            .map_err(|error| anyhow::anyhow!("publish: {error}"))
    }

    /// Whether a connection to `peer` is open.
    pub fn is_connected(&self, peer: &libp2p::PeerId) -> bool {
        self.swarm.is_connected(peer)
    }

    /// Drives the swarm until an event matches `done`, failing after [`TIMEOUT`].
    pub async fn drive_until(
        &mut self,
        what: &str,
        mut done: impl FnMut(&libp2p::swarm::SwarmEvent<libp2p::gossipsub::Event>) -> bool,
    ) -> Result<()> {
        use futures_lite_select::next_event;
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        loop {
            let event = tokio::time::timeout_at(deadline, next_event(&mut self.swarm))
                .await
                .map_err(|_| anyhow::anyhow!("timed out after {TIMEOUT:?} waiting for {what}"))?;
            self.note(&event);
            if done(&event) {
                return Ok(());
            }
        }
    }

    /// Drives the swarm until `condition` holds (checked every 20 ms and after every
    /// event), failing after [`TIMEOUT`]: for waiting on the node under test while this
    /// peer keeps talking to it.
    pub async fn drive_while_waiting_for(
        &mut self,
        what: &str,
        mut condition: impl FnMut() -> bool,
    ) -> Result<()> {
        use futures_lite_select::next_event;
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        while !condition() {
            if tokio::time::Instant::now() >= deadline {
                bail!("timed out after {TIMEOUT:?} waiting for {what}");
            }
            if let Ok(event) =
                tokio::time::timeout(Duration::from_millis(20), next_event(&mut self.swarm)).await
            {
                self.note(&event);
            }
        }
        Ok(())
    }

    /// Drives the swarm for `duration`, so queued messages go out.
    pub async fn drive_for(&mut self, duration: Duration) {
        use futures_lite_select::next_event;
        let _ = tokio::time::timeout(duration, async {
            loop {
                let event = next_event(&mut self.swarm).await;
                self.note(&event);
            }
        })
        .await;
    }

    /// Keeps the payload of a gossip message received.
    fn note(&mut self, event: &libp2p::swarm::SwarmEvent<libp2p::gossipsub::Event>) {
        if let libp2p::swarm::SwarmEvent::Behaviour(libp2p::gossipsub::Event::Message {
            message,
            ..
        }) = event
        {
            self.received.push(message.data.clone());
        }
    }
}

/// A peer that speaks the sync protocol with raw frames: a 4-byte big-endian length and
/// whatever bytes the test gives, of any size. It holds a member's node key, so it passes
/// the allow list; it answers every sync request the node sends it with
/// [`RawSyncPeer::answer`].
pub struct RawSyncPeer {
    swarm: libp2p::Swarm<libp2p::request_response::Behaviour<RawCodec>>,
    /// The frame every request from the node is answered with.
    pub answer: Vec<u8>,
    /// When set, answers each request from its bytes instead of with `answer`; `None`
    /// leaves the request unanswered.
    answer_with: Option<Answerer>,
    /// Requests left unanswered: their channels are held, so each stays open at the node
    /// until it times out there.
    unanswered: Vec<libp2p::request_response::ResponseChannel<Vec<u8>>>,
}

/// Makes a [`RawSyncPeer`]'s answer from the request's bytes, or leaves it unanswered.
type Answerer = Box<dyn FnMut(&[u8]) -> Option<Vec<u8>> + Send>;

impl std::fmt::Debug for RawSyncPeer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawSyncPeer")
            .field("peer_id", self.swarm.local_peer_id())
            .finish_non_exhaustive()
    }
}

/// The sync protocol's name, as the node speaks it.
pub use threatmesh_node::network::SYNC_PROTOCOL;

/// Frames as raw bytes behind a 4-byte length, unchecked.
#[derive(Debug, Clone, Copy, Default)]
pub struct RawCodec;

impl RawCodec {
    async fn read<T: futures::AsyncRead + Unpin + Send>(io: &mut T) -> std::io::Result<Vec<u8>> {
        use futures::AsyncReadExt;
        let mut length = [0u8; 4];
        io.read_exact(&mut length).await?;
        // The node's own frames: a few MiB at most.
        let mut bytes = Vec::new();
        io.take(u64::from(u32::from_be_bytes(length)).min(16 << 20))
            .read_to_end(&mut bytes)
            .await?;
        Ok(bytes)
    }

    async fn write<T: futures::AsyncWrite + Unpin + Send>(
        io: &mut T,
        bytes: &[u8],
    ) -> std::io::Result<()> {
        use futures::AsyncWriteExt;
        let length = u32::try_from(bytes.len()).map_err(std::io::Error::other)?;
        io.write_all(&length.to_be_bytes()).await?;
        io.write_all(bytes).await?;
        io.close().await
    }
}

impl libp2p::request_response::Codec for RawCodec {
    type Protocol = libp2p::StreamProtocol;
    type Request = Vec<u8>;
    type Response = Vec<u8>;

    async fn read_request<T>(
        &mut self,
        _: &libp2p::StreamProtocol,
        io: &mut T,
    ) -> std::io::Result<Vec<u8>>
    where
        T: futures::AsyncRead + Unpin + Send,
    {
        RawCodec::read(io).await
    }

    async fn read_response<T>(
        &mut self,
        _: &libp2p::StreamProtocol,
        io: &mut T,
    ) -> std::io::Result<Vec<u8>>
    where
        T: futures::AsyncRead + Unpin + Send,
    {
        RawCodec::read(io).await
    }

    async fn write_request<T>(
        &mut self,
        _: &libp2p::StreamProtocol,
        io: &mut T,
        request: Vec<u8>,
    ) -> std::io::Result<()>
    where
        T: futures::AsyncWrite + Unpin + Send,
    {
        RawCodec::write(io, &request).await
    }

    async fn write_response<T>(
        &mut self,
        _: &libp2p::StreamProtocol,
        io: &mut T,
        response: Vec<u8>,
    ) -> std::io::Result<()>
    where
        T: futures::AsyncWrite + Unpin + Send,
    {
        RawCodec::write(io, &response).await
    }
}

impl RawSyncPeer {
    /// A peer with node key `key` that answers every sync request with `answer`.
    pub fn new(key: &SigningKey, answer: Vec<u8>) -> Result<RawSyncPeer> {
        use libp2p::request_response;
        let swarm = raw_swarm(
            key,
            request_response::Behaviour::with_codec(
                RawCodec,
                [(SYNC_PROTOCOL, request_response::ProtocolSupport::Full)],
                request_response::Config::default().with_request_timeout(TIMEOUT),
            ),
        )?;
        Ok(RawSyncPeer {
            swarm,
            answer,
            answer_with: None,
            unanswered: Vec::new(),
        })
    }

    /// A peer with node key `key` that answers each sync request with what `answer` makes
    /// of the request's bytes.
    pub fn answering(
        key: &SigningKey,
        mut answer: impl FnMut(&[u8]) -> Vec<u8> + Send + 'static,
    ) -> Result<RawSyncPeer> {
        RawSyncPeer::answering_some(key, move |request| Some(answer(request)))
    }

    /// [`RawSyncPeer::answering`], where `None` leaves a request unanswered for good (a
    /// peer that stalls).
    pub fn answering_some(
        key: &SigningKey,
        answer: impl FnMut(&[u8]) -> Option<Vec<u8>> + Send + 'static,
    ) -> Result<RawSyncPeer> {
        let mut peer = RawSyncPeer::new(key, Vec::new())?;
        peer.answer_with = Some(Box::new(answer));
        Ok(peer)
    }

    /// Dials `node` and waits until the connection is up.
    pub async fn connect(&mut self, node: &TestNode) -> Result<()> {
        self.swarm.dial(node.address.clone())?;
        let target = node.client.peer_id();
        self.drive_until("the connection", |event| {
            matches!(
                event,
                libp2p::swarm::SwarmEvent::ConnectionEstablished { peer_id, .. } if *peer_id == target
            )
        })
        .await
    }

    /// Sends `frame` to `node` as a sync request.
    pub fn request(&mut self, node: &TestNode, frame: Vec<u8>) {
        self.swarm
            .behaviour_mut()
            .send_request(&node.client.peer_id(), frame);
    }

    /// Drives the swarm (answering requests) until an event matches `done`, failing after
    /// [`TIMEOUT`].
    pub async fn drive_until(
        &mut self,
        what: &str,
        mut done: impl FnMut(
            &libp2p::swarm::SwarmEvent<libp2p::request_response::Event<Vec<u8>, Vec<u8>>>,
        ) -> bool,
    ) -> Result<()> {
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        loop {
            let event =
                tokio::time::timeout_at(deadline, futures_lite_select::next_event(&mut self.swarm))
                    .await
                    .map_err(|_| {
                        anyhow::anyhow!("timed out after {TIMEOUT:?} waiting for {what}")
                    })?;
            if done(&event) {
                return Ok(());
            }
            self.answer_request(event);
        }
    }

    /// Drives the swarm (answering requests) for `duration`.
    pub async fn drive_for(&mut self, duration: Duration) {
        let deadline = tokio::time::Instant::now() + duration;
        while let Ok(event) =
            tokio::time::timeout_at(deadline, futures_lite_select::next_event(&mut self.swarm))
                .await
        {
            self.answer_request(event);
        }
    }

    /// Drives the swarm (answering requests) until `condition` holds, failing after
    /// [`TIMEOUT`].
    pub async fn drive_while_waiting_for(
        &mut self,
        what: &str,
        mut condition: impl FnMut() -> bool,
    ) -> Result<()> {
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        while !condition() {
            if tokio::time::Instant::now() >= deadline {
                bail!("timed out after {TIMEOUT:?} waiting for {what}");
            }
            if let Ok(event) = tokio::time::timeout(
                Duration::from_millis(20),
                futures_lite_select::next_event(&mut self.swarm),
            )
            .await
            {
                self.answer_request(event);
            }
        }
        Ok(())
    }

    fn answer_request(
        &mut self,
        event: libp2p::swarm::SwarmEvent<libp2p::request_response::Event<Vec<u8>, Vec<u8>>>,
    ) {
        use libp2p::request_response::{Event, Message};
        if let libp2p::swarm::SwarmEvent::Behaviour(Event::Message {
            message: Message::Request {
                channel, request, ..
            },
            ..
        }) = event
        {
            let answer = match &mut self.answer_with {
                Some(answer) => answer(&request),
                None => Some(self.answer.clone()),
            };
            match answer {
                Some(answer) => {
                    let _ = self.swarm.behaviour_mut().send_response(channel, answer);
                }
                None => self.unanswered.push(channel),
            }
        }
    }
}

mod futures_lite_select {
    use libp2p::swarm::{NetworkBehaviour, Swarm, SwarmEvent};

    /// The swarm's next event.
    pub(crate) async fn next_event<B: NetworkBehaviour>(
        swarm: &mut Swarm<B>,
    ) -> SwarmEvent<B::ToSwarm> {
        use futures::StreamExt;
        loop {
            if let Some(event) = swarm.next().await {
                return event;
            }
        }
    }
}
