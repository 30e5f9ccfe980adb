//! Reading an archive: [`Decoder`], fed chunks as they arrive, gives out each frame once
//! its check passed, or the fault and its byte position.

use sha2::{Digest, Sha256};

use super::{
    ArchiveError, CHECK_BYTES, FORMAT_VERSION, FRAME_HEAD_BYTES, Fault, Frame, Framed,
    HEADER_DOMAIN, Header, Kind, MAGIC, MAX_FILTER_ORGANISATIONS, TRAILER_DOMAIN, Trailer,
    check_of, first_check,
};
use crate::crypto::Hash;
use crate::wire;

/// Where a [`Decoder`] is in the archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Magic,
    Header,
    /// Charters may come, then entries.
    Charters,
    /// Only entries, then the trailer.
    Entries,
    Done,
}

/// Reads an archive fed in chunks of any size: [`Decoder::feed`] the bytes that arrive,
/// then take [`Decoder::next_frame`] until it gives `None`, and call [`Decoder::finish`]
/// at the end of the input. A frame is given out only once its check passed. After a
/// fault, every call returns the same error.
#[derive(Debug, Clone)]
pub struct Decoder {
    /// Bytes fed and not yet consumed start at `buffer[start]`.
    buffer: Vec<u8>,
    start: usize,
    /// Offset in the archive of `buffer[start]`.
    position: u64,
    check: [u8; CHECK_BYTES],
    digest: Sha256,
    stage: Stage,
    frames: u64,
    charters: u64,
    entries: u64,
    fault: Option<ArchiveError>,
}

impl Default for Decoder {
    fn default() -> Decoder {
        Decoder::new()
    }
}

impl Decoder {
    /// A decoder at the start of an archive.
    pub fn new() -> Decoder {
        Decoder {
            buffer: Vec::new(),
            start: 0,
            position: 0,
            check: first_check(),
            digest: Sha256::new(),
            stage: Stage::Magic,
            frames: 0,
            charters: 0,
            entries: 0,
            fault: None,
        }
    }

    /// Adds bytes that arrived.
    pub fn feed(&mut self, chunk: &[u8]) {
        if self.start > 0 && self.start * 2 >= self.buffer.len() {
            // Consumed bytes are dropped once they are most of the buffer, so it holds
            // about one frame and one chunk, and moving costs a fraction of reading.
            self.buffer.drain(..self.start);
            self.start = 0;
        }
        self.buffer.extend_from_slice(chunk);
    }

    /// Bytes of the archive consumed: every frame given out, and the magic.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Entry frames given out.
    pub fn entries(&self) -> u64 {
        self.entries
    }

    /// Charter frames given out.
    pub fn charters(&self) -> u64 {
        self.charters
    }

    /// Whether the trailer has been read (and matched).
    pub fn is_done(&self) -> bool {
        self.stage == Stage::Done
    }

    /// The next frame whose check passed, `None` when more bytes are needed (or the
    /// trailer was read), or the fault.
    pub fn next_frame(&mut self) -> Result<Option<Framed>, ArchiveError> {
        if let Some(fault) = &self.fault {
            return Err(fault.clone());
        }
        let next = self.read();
        if let Err(fault) = &next {
            self.fault = Some(fault.clone());
        }
        next
    }

    /// Ends the input: an error unless the whole archive, trailer included, was read.
    pub fn finish(&self) -> Result<(), ArchiveError> {
        if let Some(fault) = &self.fault {
            return Err(fault.clone());
        }
        let inside = match self.stage {
            Stage::Done => return Ok(()),
            Stage::Magic => "the magic",
            _ if self.pending().is_empty() => "the frames (no trailer)",
            Stage::Header => "the header frame",
            Stage::Charters | Stage::Entries => match self.pending().first().copied() {
                Some(byte) if byte == Kind::Trailer.byte() => "the trailer frame",
                Some(byte) if byte == Kind::Charter.byte() => "a charter frame",
                _ => "an entry frame",
            },
        };
        Err(ArchiveError {
            position: self.position + self.pending().len() as u64,
            fault: Fault::Truncated(inside),
        })
    }

    fn pending(&self) -> &[u8] {
        &self.buffer[self.start..]
    }

    fn fail<T>(&self, at: u64, fault: Fault) -> Result<T, ArchiveError> {
        Err(ArchiveError {
            position: at,
            fault,
        })
    }

    fn read(&mut self) -> Result<Option<Framed>, ArchiveError> {
        match self.stage {
            Stage::Done => {
                if self.pending().is_empty() {
                    Ok(None)
                } else {
                    self.fail(self.position, Fault::TrailingBytes)
                }
            }
            Stage::Magic => {
                let pending = self.pending();
                let seen = pending.len().min(MAGIC.len());
                if pending[..seen] != MAGIC[..seen] {
                    return self.fail(0, Fault::WrongMagic);
                }
                if seen < MAGIC.len() {
                    return Ok(None);
                }
                self.consume(MAGIC.len());
                self.stage = Stage::Header;
                self.read()
            }
            _ => self.read_frame(),
        }
    }

    /// Moves past `len` bytes, adding them to the digest.
    fn consume(&mut self, len: usize) {
        let end = self.start + len;
        self.digest.update(&self.buffer[self.start..end]);
        self.start = end;
        self.position += len as u64;
    }

    fn read_frame(&mut self) -> Result<Option<Framed>, ArchiveError> {
        let at = self.position;
        let pending = self.pending();
        let Some(&kind_byte) = pending.first() else {
            return Ok(None);
        };
        let Some(kind) = Kind::of(kind_byte) else {
            return self.fail(at, Fault::UnknownKind(kind_byte));
        };
        let expected = match self.stage {
            Stage::Header => "the header",
            Stage::Charters => "a charter, an entry or the trailer",
            _ => "an entry or the trailer",
        };
        let allowed = matches!(
            (self.stage, kind),
            (Stage::Header, Kind::Header)
                | (Stage::Charters, Kind::Charter)
                | (
                    Stage::Charters | Stage::Entries,
                    Kind::Entry | Kind::Trailer
                )
        );
        if !allowed {
            return self.fail(
                at,
                Fault::OutOfOrder {
                    found: kind.name(),
                    expected,
                },
            );
        }
        let Some(len_bytes) = pending.get(1..FRAME_HEAD_BYTES) else {
            return Ok(None);
        };
        let mut len = [0; 4];
        len.copy_from_slice(len_bytes);
        let len = u32::from_le_bytes(len);
        if len > kind.max_bytes() {
            return self.fail(
                at,
                Fault::TooLarge {
                    kind: kind.name(),
                    len,
                    max: kind.max_bytes(),
                },
            );
        }
        let body_end = FRAME_HEAD_BYTES + len as usize;
        let Some(stated) = pending.get(body_end..body_end + CHECK_BYTES) else {
            return Ok(None);
        };
        let (head, body) = (
            &pending[..FRAME_HEAD_BYTES],
            &pending[FRAME_HEAD_BYTES..body_end],
        );
        let check = check_of(&self.check, head, body);
        if check[..] != stated[..] {
            return self.fail(
                at,
                Fault::BadCheck {
                    index: self.frames,
                    kind: kind.name(),
                },
            );
        }
        let body = body.to_vec();
        // The trailer is checked against the digest of what came before it, so the digest
        // takes the trailer frame only after the comparison.
        let frame = match kind {
            Kind::Header => Frame::Header(self.decode_header(at, &body)?),
            Kind::Charter => Frame::Charter(body),
            Kind::Entry => Frame::Entry(body),
            Kind::Trailer => Frame::Trailer(self.decode_trailer(at, &body)?),
        };
        self.check = check;
        self.frames += 1;
        self.consume(body_end + CHECK_BYTES);
        self.stage = match kind {
            Kind::Header => Stage::Charters,
            Kind::Charter => {
                self.charters += 1;
                Stage::Charters
            }
            Kind::Entry => {
                self.entries += 1;
                Stage::Entries
            }
            Kind::Trailer => Stage::Done,
        };
        Ok(Some(Framed {
            position: at,
            frame,
        }))
    }

    fn decode_header(&self, at: u64, body: &[u8]) -> Result<Header, ArchiveError> {
        let Some((&version, rest)) = body.split_first() else {
            return self.fail(
                at,
                Fault::Malformed {
                    kind: "header",
                    reason: "empty".into(),
                },
            );
        };
        if version != FORMAT_VERSION {
            return self.fail(at, Fault::UnsupportedVersion(version));
        }
        let header: Header = wire::decode_signed(HEADER_DOMAIN, rest).or_else(|error| {
            self.fail(
                at,
                Fault::Malformed {
                    kind: "header",
                    reason: error.to_string(),
                },
            )
        })?;
        if header.organisations.len() > MAX_FILTER_ORGANISATIONS {
            return self.fail(
                at,
                Fault::Malformed {
                    kind: "header",
                    reason: format!(
                        "{} organisations in the filter, at most {MAX_FILTER_ORGANISATIONS}",
                        header.organisations.len()
                    ),
                },
            );
        }
        Ok(header)
    }

    fn decode_trailer(&self, at: u64, body: &[u8]) -> Result<Trailer, ArchiveError> {
        let trailer: Trailer = wire::decode_signed(TRAILER_DOMAIN, body).or_else(|error| {
            self.fail(
                at,
                Fault::Malformed {
                    kind: "trailer",
                    reason: error.to_string(),
                },
            )
        })?;
        for (what, stated, found) in [
            ("charters", trailer.charters, self.charters),
            ("entries", trailer.entries, self.entries),
        ] {
            if stated != found {
                return self.fail(
                    at,
                    Fault::CountMismatch {
                        what,
                        stated,
                        found,
                    },
                );
            }
        }
        if Hash(self.digest.clone().finalize().into()) != trailer.digest {
            return self.fail(at, Fault::DigestMismatch);
        }
        Ok(trailer)
    }
}
