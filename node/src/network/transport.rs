//! The node's transport: TCP, then Noise, then yamux, with every byte counted.
//!
//! [`tcp`] builds what `SwarmBuilder::with_tcp` would, except that each TCP stream is
//! wrapped in a [`Counted`] stream before the upgrades run on it. The counts therefore
//! hold everything a peer connection carries above TCP: multistream-select negotiation,
//! the Noise handshake and its per-frame overhead, yamux headers and window updates, and
//! the protocols' own bytes. They leave out TCP/IP headers, retransmissions and the
//! connections the node refuses before the TCP stream reaches the transport.
//!
//! [`Counted`] wraps any byte stream; the sync codec uses it too, to count its frames.
//!
//! A program that embeds nodes may carry their connections over something else than TCP
//! ([`Carrier::Other`]: the testnet's world simulation runs a thousand nodes in one process
//! over in-memory links that add each pair's latency). Only the bytes under Noise change
//! hands: the upgrades, the counting and everything above them are the same.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::{AsyncRead, AsyncWrite};
use libp2p::core::muxing::StreamMuxerBox;
use libp2p::core::transport::Boxed;
use libp2p::core::upgrade;
use libp2p::{PeerId, Transport as _, noise, tcp, yamux};

use super::metrics::Traffic;

/// A byte stream a [`Carrier`] delivers, before Noise.
pub trait RawStream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}

impl<S: AsyncRead + AsyncWrite + Send + Unpin + 'static> RawStream for S {}

/// A transport of raw byte streams, for [`Carrier::Other`].
pub type RawTransport = Boxed<Box<dyn RawStream>>;

/// What carries a node's connections under Noise and yamux.
#[derive(Clone, Default)]
pub enum Carrier {
    /// TCP, the only carrier a `threatmesh` process uses.
    #[default]
    Tcp,
    /// Another transport, built once when the node starts: for programs that run nodes
    /// in-process (the testnet's simulation). Listen and bootstrap addresses must be ones
    /// it understands.
    Other(Arc<dyn Fn() -> RawTransport + Send + Sync>),
}

impl std::fmt::Debug for Carrier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Carrier::Tcp => f.write_str("Tcp"),
            Carrier::Other(_) => f.write_str("Other"),
        }
    }
}

/// The node's transport: `carrier`'s streams (TCP with no Nagle delay, since gossip is
/// small and latency matters), authenticated with Noise, multiplexed with yamux, every
/// byte counted into `traffic`.
pub(crate) fn build(
    carrier: &Carrier,
    key: &libp2p::identity::Keypair,
    traffic: Arc<Traffic>,
) -> Result<Boxed<(PeerId, StreamMuxerBox)>, noise::Error> {
    match carrier {
        Carrier::Tcp => upgraded(
            tcp::tokio::Transport::new(tcp::Config::default().nodelay(true)),
            key,
            traffic,
        ),
        Carrier::Other(make) => upgraded(make(), key, traffic),
    }
}

fn upgraded<T>(
    raw: T,
    key: &libp2p::identity::Keypair,
    traffic: Arc<Traffic>,
) -> Result<Boxed<(PeerId, StreamMuxerBox)>, noise::Error>
where
    T: libp2p::Transport + Send + Unpin + 'static,
    T::Output: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    T::Error: Send + Sync + 'static,
    T::Dial: Send + 'static,
    T::ListenerUpgrade: Send + 'static,
{
    let noise = noise::Config::new(key)?;
    Ok(raw
        .map(move |stream, _| Counted::new(stream, Arc::clone(&traffic)))
        .upgrade(upgrade::Version::V1Lazy)
        .authenticate(noise)
        .multiplex(yamux::Config::default())
        .map(|(peer, muxer), _| (peer, StreamMuxerBox::new(muxer)))
        .boxed())
}

/// A byte stream that adds what it reads and writes to a shared [`Traffic`]. Only bytes
/// the inner stream accepted or returned are counted, so a write retried after `Pending`
/// is counted once.
#[derive(Debug)]
pub(crate) struct Counted<S> {
    inner: S,
    traffic: Arc<Traffic>,
}

impl<S> Counted<S> {
    pub(crate) fn new(inner: S, traffic: Arc<Traffic>) -> Counted<S> {
        Counted { inner, traffic }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(read)) = &poll {
            self.traffic.received(*read);
        }
        poll
    }

    fn poll_read_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &mut [io::IoSliceMut<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_read_vectored(cx, bufs);
        if let Poll::Ready(Ok(read)) = &poll {
            self.traffic.received(*read);
        }
        poll
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(written)) = &poll {
            self.traffic.sent(*written);
        }
        poll
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(written)) = &poll {
            self.traffic.sent(*written);
        }
        poll
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use futures::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn bytes_read_and_written_are_counted() {
        let traffic = Arc::new(Traffic::default());
        let mut stream = Counted::new(
            futures::io::Cursor::new(b"twelve bytes".to_vec()),
            Arc::clone(&traffic),
        );
        let mut first = [0u8; 5];
        stream.read_exact(&mut first).await.unwrap();
        assert_eq!(traffic.totals(), (5, 0));
        stream.write_all(b"abc").await.unwrap();
        assert_eq!(traffic.totals(), (5, 3));
        // The cursor is at 8 now: 4 bytes left to read.
        let mut rest = Vec::new();
        stream.read_to_end(&mut rest).await.unwrap();
        assert_eq!(traffic.totals(), (9, 3));
    }
}
