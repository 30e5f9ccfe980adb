//! The sync protocol's framing: one wire message per stream direction, behind a 4-byte
//! big-endian length, read only up to the limit of its kind.
//!
//! Requests are tiny, so a peer cannot make us buffer more than [`MAX_REQUEST_BYTES`] by
//! asking; responses are bounded by the wire's [`MAX_MESSAGE_BYTES`], and what fills them
//! is bounded by [`wire::range_limit`].

use std::io;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;
use threatmesh_protocol::wire::{self, MAX_MESSAGE_BYTES, Message, Request, Response};

/// The sync protocol's name and version.
pub(crate) const PROTOCOL: StreamProtocol = StreamProtocol::new("/threatmesh/sync/1");

/// Largest request accepted: every request is a few dozen bytes.
pub(crate) const MAX_REQUEST_BYTES: usize = 4 * 1024;

#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SyncCodec;

impl libp2p::request_response::Codec for SyncCodec {
    type Protocol = StreamProtocol;
    type Request = Request;
    type Response = Response;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Request>
    where
        T: AsyncRead + Unpin + Send,
    {
        match read_message(io, MAX_REQUEST_BYTES).await? {
            Message::Request(request) => Ok(request),
            other => Err(unexpected(other.kind())),
        }
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Response>
    where
        T: AsyncRead + Unpin + Send,
    {
        match read_message(io, MAX_MESSAGE_BYTES).await? {
            Message::Response(response) => Ok(response),
            other => Err(unexpected(other.kind())),
        }
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        request: Request,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_message(io, &Message::Request(request)).await
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
        write_message(io, &Message::Response(response)).await
    }
}

async fn read_message<T: AsyncRead + Unpin>(io: &mut T, max_bytes: usize) -> io::Result<Message> {
    let mut length = [0u8; 4];
    io.read_exact(&mut length).await?;
    let length = usize::try_from(u32::from_be_bytes(length)).unwrap_or(usize::MAX);
    if length > max_bytes {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("sync message of {length} bytes exceeds the limit of {max_bytes}"),
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
    let bytes = wire::encode(message);
    let length = u32::try_from(bytes.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "sync message over 4 GiB"))?;
    io.write_all(&length.to_be_bytes()).await?;
    io.write_all(&bytes).await?;
    io.close().await
}

fn unexpected(kind: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("unexpected {kind} message on the sync protocol"),
    )
}
