//! The simulated wires: in-memory connections that take as long as the distance between
//! two members says.
//!
//! Every node listens on a libp2p memory address (`/memory/<port>`, a port per node). A
//! node's carrier ([`Links::carrier`]) dials the memory transport and puts each connection
//! it opens through a [`relay`]: one task per connection that, in each direction, stamps
//! bytes as they leave and hands them to the other side once the pair's one-way latency
//! (and, if modelled, the time to send them at the link's bandwidth) has passed. Only the
//! dialling side delays, both ways, so each direction is delayed exactly once; the
//! listening side uses the connection as it comes. Noise, yamux and everything above run
//! unchanged on top, in the node's own code.
//!
//! How late the relays hand bytes over (past the time the model says) is kept
//! ([`Links::lateness`]): on a machine too busy for the simulation it grows, and the report
//! says so rather than passing queueing for latency.
//!
//! A partition ([`Links::cut`]) closes every connection between the sides at once and
//! refuses dials across the cut straight away (as a host with no route would, not after a
//! timeout); [`Links::heal`] lets them through again.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::FutureExt as _;
use futures::future::BoxFuture;
use libp2p::core::transport::memory::MemoryTransport;
use libp2p::core::transport::{DialOpts, ListenerId, TransportError, TransportEvent};
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, Transport};
use threatmesh_node::network::{Carrier, RawStream, RawTransport};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::compat::{FuturesAsyncReadCompatExt as _, TokioAsyncReadCompatExt as _};

/// Bytes buffered between a node and its side of a relay.
const PIPE_BYTES: usize = 256 * 1024;
/// Largest piece read at once; a piece is delayed as one.
const PIECE_BYTES: usize = 64 * 1024;
/// Pieces in flight per direction (bounded: a node that writes faster than the modelled
/// bandwidth waits, as it would on a real link).
const PIECES_IN_FLIGHT: usize = 256;

/// Upper bounds, in microseconds of wall-clock time, of the buckets the relays' lateness is
/// counted in; the last bucket holds anything later.
pub(crate) const LATENESS_BUCKETS_MICROS: [u64; 10] = [
    1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000, 200_000, 500_000, 1_000_000,
];

/// The wires between the simulation's nodes.
#[derive(Debug)]
pub(crate) struct Links {
    /// Memory port of node 0 (node i has `base + i`); random, so two simulations in one
    /// process (tests) do not meet.
    base: u64,
    /// The site of each node, numbered densely over the sites some node is at.
    sites: Vec<usize>,
    /// One-way delay between each pair of those sites, row-major, already multiplied by
    /// the time scale: at most a few hundred capitals, and never more than nodes².
    delay: Vec<Duration>,
    site_count: usize,
    /// Bytes per second each direction of a link carries; `None`: no limit.
    bytes_per_sec: Option<f64>,
    /// The side of each node while a partition is on.
    sides: RwLock<Option<Arc<Vec<u8>>>>,
    /// Bumped at each cut and heal, so relays look again.
    changes: watch::Sender<u64>,
    /// Pieces handed over, per bucket of [`LATENESS_BUCKETS_MICROS`] (and one more).
    lateness: [AtomicU64; LATENESS_BUCKETS_MICROS.len() + 1],
}

impl Links {
    /// Links for nodes at `sites` (one site index per node), the one-way delay from site `a`
    /// to site `b` being `delay(a, b)`.
    pub(crate) fn new(
        sites: Vec<usize>,
        delay: impl Fn(usize, usize) -> Duration,
        bytes_per_sec: Option<f64>,
    ) -> Links {
        // Only the sites in use get a row: a capitals file may list many more.
        let mut used = sites.clone();
        used.sort_unstable();
        used.dedup();
        let dense: std::collections::HashMap<usize, usize> = used
            .iter()
            .enumerate()
            .map(|(index, site)| (*site, index))
            .collect();
        let sites = sites
            .iter()
            .map(|site| dense.get(site).copied().unwrap_or(0))
            .collect();
        let site_count = used.len();
        let mut seed = [0u8; 4];
        // Collisions only matter between simulations in one process; the process id will
        // do if the system has no randomness.
        let base = if getrandom::fill(&mut seed).is_ok() {
            u64::from(u32::from_le_bytes(seed))
        } else {
            u64::from(std::process::id())
        } << 20;
        let delay = used
            .iter()
            .flat_map(|a| used.iter().map(move |b| (*a, *b)))
            .map(|(a, b)| delay(a, b))
            .collect();
        Links {
            base: base + 1,
            sites,
            delay,
            site_count,
            bytes_per_sec,
            sides: RwLock::new(None),
            changes: watch::channel(0).0,
            lateness: Default::default(),
        }
    }

    /// Pieces handed over so far, per bucket of [`LATENESS_BUCKETS_MICROS`] (and one for
    /// anything later): how far past the model's time each was delivered.
    pub(crate) fn lateness(&self) -> Vec<u64> {
        self.lateness
            .iter()
            .map(|count| count.load(Ordering::Relaxed))
            .collect()
    }

    fn count_lateness(&self, late: Duration) {
        let micros = u64::try_from(late.as_micros()).unwrap_or(u64::MAX);
        let bucket = LATENESS_BUCKETS_MICROS
            .iter()
            .position(|bound| micros <= *bound)
            .unwrap_or(LATENESS_BUCKETS_MICROS.len());
        if let Some(count) = self.lateness.get(bucket) {
            count.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Where node `index` listens.
    pub(crate) fn address(&self, index: usize) -> Multiaddr {
        Multiaddr::empty().with(Protocol::Memory(self.base + index as u64))
    }

    fn index_of(&self, address: &Multiaddr) -> Option<usize> {
        address.iter().find_map(|protocol| match protocol {
            Protocol::Memory(port) => port
                .checked_sub(self.base)
                .and_then(|index| usize::try_from(index).ok())
                .filter(|index| *index < self.sites.len()),
            _ => None,
        })
    }

    /// The one-way delay from node `a` to node `b`.
    pub(crate) fn delay(&self, a: usize, b: usize) -> Duration {
        match (self.sites.get(a), self.sites.get(b)) {
            (Some(a), Some(b)) => self
                .delay
                .get(a * self.site_count + b)
                .copied()
                .unwrap_or_default(),
            _ => Duration::ZERO,
        }
    }

    /// Cuts every link between nodes of different `sides` (one entry per node).
    pub(crate) fn cut(&self, sides: Vec<u8>) {
        *self
            .sides
            .write()
            .unwrap_or_else(|poison| poison.into_inner()) = Some(Arc::new(sides));
        self.changes.send_modify(|count| *count += 1);
    }

    /// Ends the partition.
    pub(crate) fn heal(&self) {
        *self
            .sides
            .write()
            .unwrap_or_else(|poison| poison.into_inner()) = None;
        self.changes.send_modify(|count| *count += 1);
    }

    fn is_cut(&self, a: usize, b: usize) -> bool {
        self.sides
            .read()
            .unwrap_or_else(|poison| poison.into_inner())
            .as_ref()
            .is_some_and(|sides| sides.get(a) != sides.get(b))
    }

    /// What node `index` carries its connections over.
    pub(crate) fn carrier(self: &Arc<Self>, index: usize) -> Carrier {
        let links = Arc::clone(self);
        Carrier::Other(Arc::new(move || -> RawTransport {
            SimTransport {
                memory: MemoryTransport::default(),
                links: Arc::clone(&links),
                index,
                listeners: Vec::new(),
            }
            .boxed()
        }))
    }
}

/// The memory transport, with each dialled connection put through a relay.
struct SimTransport {
    memory: MemoryTransport,
    links: Arc<Links>,
    index: usize,
    /// The listeners opened, closed on drop: the memory transport keeps a port taken
    /// until its listener is removed, and a node that restarts listens on it again.
    listeners: Vec<ListenerId>,
}

impl Drop for SimTransport {
    fn drop(&mut self) {
        for id in std::mem::take(&mut self.listeners) {
            self.memory.remove_listener(id);
        }
    }
}

/// Why a simulated dial failed.
#[derive(Debug, thiserror::Error)]
enum LinkError {
    #[error("no route: the link is cut")]
    Cut,
    #[error("memory transport: {0}")]
    Memory(#[from] libp2p::core::transport::memory::MemoryTransportError),
}

impl Transport for SimTransport {
    type Output = Box<dyn RawStream>;
    type Error = LinkError;
    type ListenerUpgrade = BoxFuture<'static, Result<Self::Output, LinkError>>;
    type Dial = BoxFuture<'static, Result<Self::Output, LinkError>>;

    fn listen_on(
        &mut self,
        id: ListenerId,
        address: Multiaddr,
    ) -> Result<(), TransportError<LinkError>> {
        self.memory
            .listen_on(id, address)
            .map_err(|error| error.map(LinkError::Memory))?;
        self.listeners.push(id);
        Ok(())
    }

    fn remove_listener(&mut self, id: ListenerId) -> bool {
        self.listeners.retain(|listener| *listener != id);
        self.memory.remove_listener(id)
    }

    fn dial(
        &mut self,
        address: Multiaddr,
        opts: DialOpts,
    ) -> Result<Self::Dial, TransportError<LinkError>> {
        let Some(remote) = self.links.index_of(&address) else {
            return Err(TransportError::MultiaddrNotSupported(address));
        };
        if self.links.is_cut(self.index, remote) {
            return Err(TransportError::Other(LinkError::Cut));
        }
        let dial = self
            .memory
            .dial(address, opts)
            .map_err(|error| error.map(LinkError::Memory))?;
        let (links, local) = (Arc::clone(&self.links), self.index);
        // Watching for cuts from before the connection exists, so one made while it is
        // being set up is seen.
        let changes = links.changes.subscribe();
        Ok(async move {
            let channel = dial.await?;
            if links.is_cut(local, remote) {
                return Err(LinkError::Cut);
            }
            Ok(relay(links, local, remote, channel, changes))
        }
        .boxed())
    }

    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<TransportEvent<Self::ListenerUpgrade, LinkError>> {
        Pin::new(&mut self.memory).poll(cx).map(|event| {
            event
                .map_upgrade(|upgrade| {
                    async move {
                        let channel = upgrade.await?;
                        Ok(Box::new(channel) as Box<dyn RawStream>)
                    }
                    .boxed()
                })
                .map_err(LinkError::Memory)
        })
    }
}

/// Puts `channel` (node `local` to node `remote`) through a relay that delays both
/// directions; returns the node's end. `changes` was subscribed before the connection was
/// made.
fn relay<C>(
    links: Arc<Links>,
    local: usize,
    remote: usize,
    channel: C,
    mut changes: watch::Receiver<u64>,
) -> Box<dyn RawStream>
where
    C: futures::AsyncRead + futures::AsyncWrite + Send + Unpin + 'static,
{
    let (near, far) = tokio::io::duplex(PIPE_BYTES);
    let (far_read, far_write) = tokio::io::split(far);
    let (wire_read, wire_write) = tokio::io::split(channel.compat());
    let (out, back) = (links.delay(local, remote), links.delay(remote, local));
    tokio::spawn(async move {
        let carry = async {
            // Both directions run until closed; an error in either ends the connection
            // (a clean close of one direction leaves the other open, as TCP does).
            let _ = tokio::try_join!(
                carry(&links, far_read, wire_write, out),
                carry(&links, wire_read, far_write, back),
            );
        };
        let cut = async {
            loop {
                if links.is_cut(local, remote) {
                    return;
                }
                if changes.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        };
        tokio::select! {
            () = carry => {}
            () = cut => {}
        }
    });
    Box::new(near.compat())
}

/// Moves bytes from `from` to `to`, each piece `delay` after it was read (plus the time to
/// send it at the links' bandwidth, after the pieces before it), then closes `to`.
async fn carry(
    links: &Links,
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    delay: Duration,
) -> io::Result<()> {
    let bytes_per_sec = links.bytes_per_sec;
    let (pieces, mut due) = mpsc::channel::<(Instant, Vec<u8>)>(PIECES_IN_FLIGHT);
    let read = async move {
        let mut buffer = vec![0u8; PIECE_BYTES];
        loop {
            let read = from.read(&mut buffer).await?;
            if read == 0 {
                return Ok::<_, io::Error>(());
            }
            let piece = buffer.get(..read).unwrap_or_default().to_vec();
            if pieces.send((Instant::now(), piece)).await.is_err() {
                return Ok(());
            }
        }
    };
    let write = async move {
        let mut free = Instant::now();
        while let Some((read_at, piece)) = due.recv().await {
            let sent = match bytes_per_sec {
                Some(rate) => {
                    let start = read_at.max(free);
                    free = start + Duration::from_secs_f64(piece.len() as f64 / rate);
                    free
                }
                None => read_at,
            };
            let due = sent + delay;
            tokio::time::sleep_until(due).await;
            links.count_lateness(Instant::now().saturating_duration_since(due));
            to.write_all(&piece).await?;
        }
        to.shutdown().await
    };
    tokio::try_join!(read, write).map(|_| ())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests unwrap what they built themselves

    use futures::{AsyncReadExt as _, AsyncWriteExt as _, StreamExt as _};
    use libp2p::core::Endpoint;
    use libp2p::core::transport::PortUse;

    use super::*;

    fn dial_opts() -> DialOpts {
        DialOpts {
            role: Endpoint::Dialer,
            port_use: PortUse::New,
        }
    }

    /// Listens as node 1, dials from node 0, and returns both ends once connected.
    async fn connected(links: &Arc<Links>) -> (Box<dyn RawStream>, Box<dyn RawStream>) {
        let mut listener = match links.carrier(1) {
            Carrier::Other(make) => make(),
            Carrier::Tcp => unreachable!(),
        };
        let mut dialler = match links.carrier(0) {
            Carrier::Other(make) => make(),
            Carrier::Tcp => unreachable!(),
        };
        listener
            .listen_on(ListenerId::next(), links.address(1))
            .unwrap();
        let dial = dialler.dial(links.address(1), dial_opts()).unwrap();
        let accept = async {
            loop {
                if let Some(TransportEvent::Incoming { upgrade, .. }) = listener.next().await {
                    return upgrade.await.unwrap();
                }
            }
        };
        let (near, far) = tokio::join!(dial, accept);
        (near.unwrap(), far)
    }

    #[tokio::test]
    async fn each_direction_takes_its_delay() {
        let links = Arc::new(Links::new(
            vec![0, 1],
            |a, b| Duration::from_millis(if a < b { 40 } else { 80 }),
            None,
        ));
        let (mut near, mut far) = connected(&links).await;
        let start = Instant::now();
        near.write_all(b"ping").await.unwrap();
        near.flush().await.unwrap();
        let mut four = [0u8; 4];
        far.read_exact(&mut four).await.unwrap();
        let there = start.elapsed();
        assert_eq!(&four, b"ping");
        far.write_all(b"pong").await.unwrap();
        far.flush().await.unwrap();
        near.read_exact(&mut four).await.unwrap();
        let round_trip = start.elapsed();
        assert_eq!(&four, b"pong");
        // At least the model's delays; never less (the timer may only add).
        assert!(there >= Duration::from_millis(40), "{there:?}");
        assert!(round_trip >= Duration::from_millis(120), "{round_trip:?}");
        // Every piece was counted in a lateness bucket.
        assert!(links.lateness().iter().sum::<u64>() >= 2);
    }

    #[tokio::test]
    async fn a_cut_closes_the_link_and_refuses_dials_until_healed() {
        let links = Arc::new(Links::new(
            vec![0, 1],
            |_, _| Duration::from_millis(1),
            None,
        ));
        let (mut near, _far) = connected(&links).await;
        links.cut(vec![0, 1]);
        let mut byte = [0u8; 1];
        // The relay is gone: the node's end reads the end of the stream.
        let read = tokio::time::timeout(Duration::from_secs(5), near.read(&mut byte))
            .await
            .unwrap();
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
        let mut dialler = match links.carrier(0) {
            Carrier::Other(make) => make(),
            Carrier::Tcp => unreachable!(),
        };
        assert!(matches!(
            dialler.dial(links.address(1), dial_opts()),
            Err(TransportError::Other(_))
        ));
        links.heal();
        let (mut near, mut far) = connected(&links).await;
        near.write_all(b"x").await.unwrap();
        near.flush().await.unwrap();
        far.read_exact(&mut byte).await.unwrap();
        assert_eq!(&byte, b"x");
    }

    #[tokio::test]
    async fn bandwidth_spaces_the_pieces() {
        // 100 kB/s: 50 kB take half a second on top of the delay.
        let links = Arc::new(Links::new(
            vec![0, 1],
            |_, _| Duration::from_millis(10),
            Some(1e5),
        ));
        let (mut near, mut far) = connected(&links).await;
        let start = Instant::now();
        near.write_all(&vec![7u8; 50_000]).await.unwrap();
        near.flush().await.unwrap();
        let mut all = vec![0u8; 50_000];
        far.read_exact(&mut all).await.unwrap();
        assert!(
            start.elapsed() >= Duration::from_millis(500),
            "{:?}",
            start.elapsed()
        );
    }
}
