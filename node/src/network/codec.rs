//! The sync protocol's framing: one wire message per stream direction, behind a 4-byte
//! big-endian length, read only up to the limit of its kind.
//!
//! Requests are tiny, so a peer cannot make us buffer more than [`MAX_REQUEST_BYTES`] by
//! asking; responses are bounded by the wire's [`MAX_MESSAGE_BYTES`], and what fills them
//! is bounded by [`wire::range_limit`].
//!
//! An answer's reader must keep taking it: a stream on which no [`ANSWER_CHUNK_BYTES`]
//! go out within [`ANSWER_STALL_TIMEOUT`] is dropped with a [`SlowReader`] error the event
//! loop holds against the peer (a reader that stalls would otherwise pin the answer in
//! this node's memory until the request timeout). Progress is judged, not an average
//! rate: a node catching up reads many answers at once over one link, each slowly, and
//! must not be struck for it.
//!
//! The codec counts the bytes of its frames into the node's sync [`Traffic`], exactly:
//! what libp2p adds around them (stream negotiation, yamux, Noise) is counted only by the
//! transport.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;
use threatmesh_protocol::wire::{self, MAX_MESSAGE_BYTES, Message, Request, Response};

use super::metrics::Traffic;
use super::transport::Counted;

/// The sync protocol's name and version.
pub const PROTOCOL: StreamProtocol = StreamProtocol::new("/threatmesh/sync/1");

/// Largest request accepted: every request is a few dozen bytes.
pub(crate) const MAX_REQUEST_BYTES: usize = 4 * 1024;

/// How much of an answer goes out in one write, each under [`ANSWER_STALL_TIMEOUT`].
pub(crate) const ANSWER_CHUNK_BYTES: usize = 64 * 1024;

/// Longest a reader may leave a chunk of its answer untaken. A reader that takes nothing
/// for this long (or never reads, pinning the answer in this node's memory) has its
/// stream dropped and is struck. Honest nodes read their answers as they arrive: at 64 KiB
/// per 10 s, even 32 answers streaming at once over one link need only about 200 KiB/s of
/// it. Whatever the pace, the whole exchange is still bounded by the request timeout, and
/// what unread answers may pin is bounded per peer (`answers::MAX_BYTES_PER_PEER`).
pub(crate) const ANSWER_STALL_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub(crate) struct SyncCodec {
    traffic: Arc<Traffic>,
}

impl SyncCodec {
    /// A codec that counts its frames' bytes into `traffic`.
    pub(crate) fn new(traffic: Arc<Traffic>) -> SyncCodec {
        SyncCodec { traffic }
    }

    fn counted<T>(&self, io: T) -> Counted<T> {
        Counted::new(io, Arc::clone(&self.traffic))
    }
}

/// A sync request as the codec carries it. Requests we send are always
/// [`SyncRequest::Valid`]; a request a peer sends over [`MAX_REQUEST_BYTES`] is read as
/// [`SyncRequest::Oversized`] (its length only, none of its body) instead of failing the
/// stream, because libp2p's request-response drops a failed read with a debug log and never
/// tells the event loop, which must count it and hold it against the peer.
#[derive(Debug)]
pub(crate) enum SyncRequest {
    /// A request that fits.
    Valid(Request),
    /// A request whose announced length was over the limit.
    Oversized(FrameTooLarge),
}

impl libp2p::request_response::Codec for SyncCodec {
    type Protocol = StreamProtocol;
    type Request = SyncRequest;
    type Response = Response;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<SyncRequest>
    where
        T: AsyncRead + Unpin + Send,
    {
        match read_message(&mut self.counted(io), MAX_REQUEST_BYTES).await {
            Ok(Message::Request(request)) => Ok(SyncRequest::Valid(request)),
            Ok(other) => Err(unexpected(other.kind())),
            Err(error) => match frame_too_large(&error) {
                Some(too_large) => Ok(SyncRequest::Oversized(too_large)),
                None => Err(error),
            },
        }
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Response>
    where
        T: AsyncRead + Unpin + Send,
    {
        match read_message(&mut self.counted(io), MAX_MESSAGE_BYTES).await? {
            Message::Response(response) => Ok(response),
            other => Err(unexpected(other.kind())),
        }
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        request: SyncRequest,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        match request {
            SyncRequest::Valid(request) => {
                write_message(&mut self.counted(io), &Message::Request(request)).await
            }
            SyncRequest::Oversized(_) => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "an oversized request is only ever received",
            )),
        }
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        response: Response,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        let bytes = wire::encode(&Message::Response(response));
        let length = u32::try_from(bytes.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "sync message over 4 GiB"))?;
        let mut io = self.counted(io);
        // Each step must make progress in time; the stream is dropped when one does not,
        // which frees the answer.
        let stalled = |sent: usize| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                SlowReader {
                    sent,
                    bytes: bytes.len(),
                },
            )
        };
        tokio::time::timeout(ANSWER_STALL_TIMEOUT, io.write_all(&length.to_be_bytes()))
            .await
            .map_err(|_| stalled(0))??;
        let mut sent = 0;
        for chunk in bytes.chunks(ANSWER_CHUNK_BYTES) {
            tokio::time::timeout(ANSWER_STALL_TIMEOUT, io.write_all(chunk))
                .await
                .map_err(|_| stalled(sent))??;
            sent += chunk.len();
        }
        tokio::time::timeout(ANSWER_STALL_TIMEOUT, io.close())
            .await
            .map_err(|_| stalled(sent))?
    }
}

async fn read_message<T: AsyncRead + Unpin>(io: &mut T, max_bytes: usize) -> io::Result<Message> {
    let mut length = [0u8; 4];
    io.read_exact(&mut length).await?;
    let length = usize::try_from(u32::from_be_bytes(length)).unwrap_or(usize::MAX);
    if length > max_bytes {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            FrameTooLarge {
                length,
                limit: max_bytes,
            },
        ));
    }
    // Read what arrives instead of allocating the announced length up front.
    let mut bytes = Vec::new();
    io.take(length as u64).read_to_end(&mut bytes).await?;
    if bytes.len() != length {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    wire::decode(&bytes, max_bytes)
        .map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error))
}

async fn write_message<T: AsyncWrite + Unpin>(io: &mut T, message: &Message) -> io::Result<()> {
    write_frame(io, &wire::encode(message)).await
}

async fn write_frame<T: AsyncWrite + Unpin>(io: &mut T, bytes: &[u8]) -> io::Result<()> {
    let length = u32::try_from(bytes.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "sync message over 4 GiB"))?;
    io.write_all(&length.to_be_bytes()).await?;
    io.write_all(bytes).await?;
    io.close().await
}

/// A frame announced a length over the limit of its kind: refused after reading its
/// 4-byte length, before any of its body. Carried inside the `io::Error` the codec returns,
/// so the event loop can tell an oversized frame (the peer's fault: honest nodes never
/// write one) from a dropped connection.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("sync message of {length} bytes exceeds the limit of {limit}")]
pub(crate) struct FrameTooLarge {
    length: usize,
    limit: usize,
}

/// The oversized frame `error` refused, if it is the codec refusing one.
fn frame_too_large(error: &io::Error) -> Option<FrameTooLarge> {
    error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<FrameTooLarge>())
        .copied()
}

/// Whether `error` is the codec refusing an oversized frame.
pub(crate) fn is_frame_too_large(error: &io::Error) -> bool {
    frame_too_large(error).is_some()
}

/// An answer's reader took none of it for [`ANSWER_STALL_TIMEOUT`]: the stream is
/// dropped, and the event loop holds it against the peer.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error(
    "the peer stopped reading an answer of {bytes} bytes after {sent} (nothing taken for {:?})",
    ANSWER_STALL_TIMEOUT
)]
pub(crate) struct SlowReader {
    sent: usize,
    bytes: usize,
}

/// Whether `error` is the codec giving up on a reader too slow for its answer.
pub(crate) fn is_slow_reader(error: &io::Error) -> bool {
    error
        .get_ref()
        .is_some_and(|inner| inner.downcast_ref::<SlowReader>().is_some())
}

fn unexpected(kind: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("unexpected {kind} message on the sync protocol"),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[tokio::test]
    async fn an_oversized_frame_is_refused_by_its_length_alone() {
        // The length says 5 KiB; no body follows: nothing but the 4 bytes is read.
        let announced = u32::try_from(MAX_REQUEST_BYTES + 1024).unwrap();
        let mut io = futures::io::Cursor::new(announced.to_be_bytes().to_vec());
        let error = read_message(&mut io, MAX_REQUEST_BYTES).await.unwrap_err();
        assert!(is_frame_too_large(&error), "{error}");
        // A short or cut frame is a different error.
        let mut io = futures::io::Cursor::new(vec![0, 0, 0, 9, 1]);
        let error = read_message(&mut io, MAX_REQUEST_BYTES).await.unwrap_err();
        assert!(!is_frame_too_large(&error), "{error}");
    }
}
