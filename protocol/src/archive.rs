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

mod decoder;
#[cfg(test)]
mod tests;

pub use decoder::Decoder;

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
