//! Air-gap archives: a federation's entries and the charters that authorise them, in one
//! file that can be carried across a one-way transfer and checked on the other side.
//!
//! An archive is a magic, then frames. The magic, `\x89TMA\r\n\x1a\n`, is built like PNG's:
//! the high byte catches a transfer that strips the eighth bit, the `\r\n` and `\n` catch
//! line-ending conversion, `\x1a` stops a `type` on Windows. Each frame is
//!
//! ```text
//! kind (u8) ‖ length (u32, little endian) ‖ body (length bytes) ‖ check (16 bytes)
//! ```
//!
//! where `check = SHA-256(previous check ‖ kind ‖ length ‖ body)[..16]` and the first
//! frame's previous check is `SHA-256(magic)[..16]`. Chaining the checks means an
//! altered, dropped, repeated or reordered frame fails its check at the frame where it
//! happens, so an importer can keep what came before and stop there. (The checks catch
//! damage, not forgery: what is in the frames is signed, and verified as if a peer had
//! sent it.) The frames come in this order: one [`Header`], the charters (every version
//! that authorises the entries, each as its gossip payload, oldest first), the entries
//! (each as its gossip payload: the exact bytes its author signed, whose SHA-256 is its
//! id), and one [`Trailer`] with the counts and the SHA-256 of every byte before it.
//!
//! Nothing here does I/O: [`Encoder`] appends bytes to a buffer, [`Decoder`] is fed chunks
//! as they arrive and yields frames once their checks pass, or an [`ArchiveError`] naming
//! the byte position and the fault. The format is described in `docs/PROTOCOL.md`.

use sha2::{Digest, Sha256};

use crate::crypto::{Hash, PublicKey};
use crate::time::Timestamp;
use crate::wire::{self, MAX_GOSSIP_BYTES};

#[cfg(test)]
mod tests;

/// The eight bytes every archive starts with.
pub const MAGIC: [u8; 8] = *b"\x89TMA\r\n\x1a\n";

/// The format version this crate writes and reads (the first byte of the header's body).
pub const FORMAT_VERSION: u8 = 1;

/// Domain tag of the header's encoding.
pub const HEADER_DOMAIN: &str = "threatmesh/archive-header/v1:";
/// Domain tag of the trailer's encoding.
pub const TRAILER_DOMAIN: &str = "threatmesh/archive-trailer/v1:";

/// Bytes of a frame's check.
pub const CHECK_BYTES: usize = 16;

/// Bytes before a frame's body: kind and length.
const FRAME_HEAD_BYTES: usize = 5;

/// Largest header or trailer body: a header naming [`MAX_FILTER_ORGANISATIONS`] fits.
pub const MAX_META_BYTES: u32 = 64 * 1024;

/// Largest charter or entry body: one gossip payload.
pub const MAX_PAYLOAD_BYTES: u32 = MAX_GOSSIP_BYTES as u32;

/// Most organisations an export may be filtered to.
pub const MAX_FILTER_ORGANISATIONS: usize = 1024;

/// What a frame holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The [`Header`].
    Header,
    /// A charter's gossip payload.
    Charter,
    /// An entry's gossip payload.
    Entry,
    /// The [`Trailer`].
    Trailer,
}

impl Kind {
    /// The byte that stands for it.
    pub const fn byte(self) -> u8 {
        match self {
            Kind::Header => 1,
            Kind::Charter => 2,
            Kind::Entry => 3,
            Kind::Trailer => 4,
        }
    }

    fn of(byte: u8) -> Option<Kind> {
        match byte {
            1 => Some(Kind::Header),
            2 => Some(Kind::Charter),
            3 => Some(Kind::Entry),
            4 => Some(Kind::Trailer),
            _ => None,
        }
    }

    /// Its name, for errors.
    pub const fn name(self) -> &'static str {
        match self {
            Kind::Header => "header",
            Kind::Charter => "charter",
            Kind::Entry => "entry",
            Kind::Trailer => "trailer",
        }
    }

    /// Its largest body.
    pub const fn max_bytes(self) -> u32 {
        match self {
            Kind::Header | Kind::Trailer => MAX_META_BYTES,
            Kind::Charter | Kind::Entry => MAX_PAYLOAD_BYTES,
        }
    }
}

/// Who wrote an archive, for which federation, and what it selected.
#[derive(Debug, Clone, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct Header {
    /// The federation (the id of its genesis charter).
    pub federation: Hash,
    /// The node that exported it.
    pub node: PublicKey,
    /// That node's organisation, if the charter names it.
    pub organisation: Option<PublicKey>,
    /// When it was exported, by the exporting node's clock.
    pub created: Timestamp,
    /// Only entries the exporting node accepted after this time, if set.
    pub since: Option<Timestamp>,
    /// Only entries of these organisations' nodes; empty: every organisation.
    pub organisations: Vec<PublicKey>,
}

/// The last frame: what came before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct Trailer {
    /// Charter frames.
    pub charters: u64,
    /// Entry frames.
    pub entries: u64,
    /// SHA-256 of every byte of the archive before the trailer frame.
    pub digest: Hash,
}

/// A frame that passed its check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// The header.
    Header(Header),
    /// A charter's gossip payload, not yet verified.
    Charter(Vec<u8>),
    /// An entry's gossip payload, not yet verified.
    Entry(Vec<u8>),
    /// The trailer, its counts and digest already compared with what came before.
    Trailer(Trailer),
}

/// A frame and the byte position where it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Framed {
    /// Offset of the frame's kind byte from the start of the archive.
    pub position: u64,
    /// The frame.
    pub frame: Frame,
}

/// What is wrong with an archive, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at byte {position}: {fault}")]
pub struct ArchiveError {
    /// Offset from the start of the archive of the frame (or byte) at fault.
    pub position: u64,
    /// What is wrong.
    pub fault: Fault,
}

/// The ways an archive can be wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Fault {
    /// It does not start with [`MAGIC`].
    #[error("not a threatmesh archive (wrong magic; a text-mode transfer mangles the first bytes)")]
    WrongMagic,
    /// A format version this crate does not read.
    #[error("archive format version {0} is not supported (this node reads {FORMAT_VERSION})")]
    UnsupportedVersion(u8),
    /// A kind byte that names no frame kind.
    #[error("unknown frame kind {0}")]
    UnknownKind(u8),
    /// A frame where another kind must be.
    #[error("{found} frame where {expected} must be")]
    OutOfOrder {
        /// The kind found.
        found: &'static str,
        /// What may come there.
        expected: &'static str,
    },
    /// A frame length over its kind's cap.
    #[error("{kind} frame of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// The frame's kind.
        kind: &'static str,
        /// The length it states.
        len: u32,
        /// The cap.
        max: u32,
    },
    /// The frame's check does not match: it, or something before it, was altered,
    /// dropped or moved.
    #[error("frame {index} ({kind}) fails its check: the archive was altered, cut or reordered")]
    BadCheck {
        /// The frame's index, from 0 (the header).
        index: u64,
        /// The kind its first byte states.
        kind: &'static str,
    },
    /// A header or trailer body that does not decode.
    #[error("malformed {kind}: {reason}")]
    Malformed {
        /// The frame's kind.
        kind: &'static str,
        /// Why.
        reason: String,
    },
    /// The trailer's counts disagree with the frames read.
    #[error("the trailer states {stated} {what}, the archive holds {found}")]
    CountMismatch {
        /// `charters` or `entries`.
        what: &'static str,
        /// What the trailer says.
        stated: u64,
        /// What was read.
        found: u64,
    },
    /// The trailer's digest is not that of the bytes before it.
    #[error("the archive's SHA-256 does not match the trailer's")]
    DigestMismatch,
    /// The input ended before the archive did.
    #[error("the archive ends early, inside {0}: truncated")]
    Truncated(&'static str),
    /// Bytes after the trailer.
    #[error("bytes after the trailer")]
    TrailingBytes,
}

/// What cannot be written into an archive.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// A body over its kind's cap.
    #[error("{kind} of {len} bytes exceeds the archive limit of {max}")]
    TooLarge {
        /// The frame's kind.
        kind: &'static str,
        /// Its size.
        len: usize,
        /// The cap.
        max: u32,
    },
    /// More organisations in the filter than [`MAX_FILTER_ORGANISATIONS`].
    #[error("{0} organisations in the filter, at most {MAX_FILTER_ORGANISATIONS}")]
    TooManyOrganisations(usize),
    /// A charter after the first entry.
    #[error("charters go before the entries")]
    CharterAfterEntries,
}

/// The chain's starting value.
fn first_check() -> [u8; CHECK_BYTES] {
    truncate(Sha256::digest(MAGIC).into())
}

fn truncate(digest: [u8; 32]) -> [u8; CHECK_BYTES] {
    let mut check = [0; CHECK_BYTES];
    check.copy_from_slice(&digest[..CHECK_BYTES]);
    check
}

/// The check of a frame after `previous`.
fn check_of(previous: &[u8; CHECK_BYTES], head: &[u8], body: &[u8]) -> [u8; CHECK_BYTES] {
    let mut hasher = Sha256::new();
    hasher.update(previous);
    hasher.update(head);
    hasher.update(body);
    truncate(hasher.finalize().into())
}

fn encode_header(header: &Header) -> Vec<u8> {
    let mut body = vec![FORMAT_VERSION];
    body.extend(wire::encode_signed(HEADER_DOMAIN, header));
    body
}

/// Writes an archive, frame by frame, into buffers the caller drains.
#[derive(Debug, Clone)]
pub struct Encoder {
    check: [u8; CHECK_BYTES],
    digest: Sha256,
    charters: u64,
    entries: u64,
}

impl Encoder {
    /// Starts an archive with `header`: appends the magic and the header frame to `out`.
    pub fn new(header: &Header, out: &mut Vec<u8>) -> Result<Encoder, EncodeError> {
        if header.organisations.len() > MAX_FILTER_ORGANISATIONS {
            return Err(EncodeError::TooManyOrganisations(
                header.organisations.len(),
            ));
        }
        let mut encoder = Encoder {
            check: first_check(),
            digest: Sha256::new(),
            charters: 0,
            entries: 0,
        };
        out.extend_from_slice(&MAGIC);
        encoder.digest.update(MAGIC);
        encoder.frame(Kind::Header, &encode_header(header), out)?;
        Ok(encoder)
    }

    /// Appends a charter frame (`payload` is the charter's gossip payload). Charters go
    /// before every entry.
    pub fn charter(&mut self, payload: &[u8], out: &mut Vec<u8>) -> Result<(), EncodeError> {
        if self.entries > 0 {
            return Err(EncodeError::CharterAfterEntries);
        }
        self.frame(Kind::Charter, payload, out)?;
        self.charters += 1;
        Ok(())
    }

    /// Appends an entry frame (`payload` is the entry's gossip payload).
    pub fn entry(&mut self, payload: &[u8], out: &mut Vec<u8>) -> Result<(), EncodeError> {
        self.frame(Kind::Entry, payload, out)?;
        self.entries += 1;
        Ok(())
    }

    /// Entries written so far.
    pub fn entries(&self) -> u64 {
        self.entries
    }

    /// Ends the archive: appends the trailer frame.
    pub fn finish(mut self, out: &mut Vec<u8>) -> Result<Trailer, EncodeError> {
        let trailer = Trailer {
            charters: self.charters,
            entries: self.entries,
            digest: Hash(self.digest.clone().finalize().into()),
        };
        self.frame(
            Kind::Trailer,
            &wire::encode_signed(TRAILER_DOMAIN, &trailer),
            out,
        )?;
        Ok(trailer)
    }

    fn frame(&mut self, kind: Kind, body: &[u8], out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let too_large = || EncodeError::TooLarge {
            kind: kind.name(),
            len: body.len(),
            max: kind.max_bytes(),
        };
        let len = u32::try_from(body.len()).map_err(|_| too_large())?;
        if len > kind.max_bytes() {
            return Err(too_large());
        }
        let mut head = [0; FRAME_HEAD_BYTES];
        head[0] = kind.byte();
        head[1..].copy_from_slice(&len.to_le_bytes());
        self.check = check_of(&self.check, &head, body);
        let start = out.len();
        out.extend_from_slice(&head);
        out.extend_from_slice(body);
        out.extend_from_slice(&self.check);
        self.digest.update(&out[start..]);
        Ok(())
    }
}

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
