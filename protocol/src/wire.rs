//! The bytes that cross the network: one versioned [`Message`] enum, one bincode
//! configuration, explicit size limits, typed decode errors.
//!
//! Every message is `[WIRE_VERSION] ++ bincode(Message)`. Decoding checks the length before
//! anything else, then the version, then decodes with a memory limit (bincode claims every
//! container's size against it before allocating), and refuses trailing bytes. Gossip
//! payloads must also be canonical: re-encoding the decoded message must give the same
//! bytes, so an entry has exactly one payload and its id (the payload's SHA-256, which is
//! also gossipsub's message id) cannot be changed by re-spelling a length.
//!
//! Signed structures (entries, charters) are carried as the exact bytes their author signed,
//! prefixed with a domain tag; [`encode_signed`] and [`decode_signed`] produce and read them.

use bincode::config::{Configuration, LittleEndian, Varint};
use bincode::error::DecodeError as BincodeError;

use crate::charter::RawCharter;
use crate::crypto::{Hash, PublicKey};
use crate::entry::FeedHead;
use crate::reconcile::{Part, Summary};

/// The version byte every message starts with.
pub const WIRE_VERSION: u8 = 1;

/// Largest gossip payload (one entry or one charter). Publishers split large bundles so
/// every entry stays under it; the network layer sets gossipsub's `max_transmit_size`
/// well above it, because gossipsub checks the payload at publish time but the whole frame
/// at the receiver.
pub const MAX_GOSSIP_BYTES: usize = 512 * 1024;

/// Largest message of any kind, sync responses included.
pub const MAX_MESSAGE_BYTES: usize = 6 * 1024 * 1024;

/// Largest page of entries a sync response carries (the first entry of a page is always
/// sent, so one entry of [`MAX_GOSSIP_BYTES`] may go over it).
pub const MAX_RANGE_BYTES: usize = 4 * 1024 * 1024;

/// Most memory one decode may claim for its containers and strings.
///
/// bincode claims a container's in-memory size against this before allocating it. Items
/// are larger in memory than on the wire, so this is above the byte limits: an entry of
/// [`crate::bundle::MAX_ITEMS_PER_BUNDLE`] items fits, and so does a sync response of
/// [`MAX_RANGE_BYTES`] of entries. A message that is small on the wire but claims more
/// (millions of empty payloads, say) is refused. bincode hands a container's claim back
/// element by element as it decodes nested values, so one decode allocates at most about
/// twice this.
pub const DECODE_LIMIT_BYTES: usize = 8 * 1024 * 1024;

/// The one bincode configuration: little endian, varints, the decode memory limit.
const CONFIG: Configuration<LittleEndian, Varint, bincode::config::Limit<DECODE_LIMIT_BYTES>> =
    bincode::config::standard().with_limit::<DECODE_LIMIT_BYTES>();

/// Everything nodes say to each other.
#[derive(Debug, Clone, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub enum Message {
    /// A signed entry of a feed (gossip).
    Entry(crate::entry::RawEntry),
    /// A federation charter with its steward signatures (gossip and sync).
    Charter(RawCharter),
    /// A sync request.
    Request(Request),
    /// A sync response.
    Response(Response),
}

/// What one node asks another during sync.
#[derive(Debug, Clone, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub enum Request {
    /// "Which feeds do you have, and how far?"
    Heads {
        /// The federation asked about.
        federation: Hash,
    },
    /// "Send me the entries `from_seq..=to_seq` of this feed" (a gap, or everything after
    /// the asker's head with `to_seq = u64::MAX`).
    Range {
        /// The federation asked about.
        federation: Hash,
        /// The feed.
        author: PublicKey,
        /// The first seq wanted.
        from_seq: u64,
        /// The last seq wanted.
        to_seq: u64,
        /// Stop adding entries once the response would exceed this many bytes (the first
        /// entry is always sent, so a range always makes progress).
        limit_bytes: u32,
    },
    /// "Send me the charters after this version."
    Charters {
        /// The federation asked about.
        federation: Hash,
        /// The newest version the asker has; 0 for none.
        after_version: u64,
    },
    /// "Here is what I hold in these ranges of feeds; tell me where you differ"
    /// (range-based reconciliation of feed heads, see [`crate::reconcile`]).
    Reconcile {
        /// The federation asked about.
        federation: Hash,
        /// The asker's summaries, at most [`crate::reconcile::MAX_RANGES`].
        ranges: Vec<Summary>,
    },
}

/// What a node answers.
#[derive(Debug, Clone, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub enum Response {
    /// One head per feed the node holds.
    Heads(Vec<FeedHead>),
    /// Entries of one feed in seq order, each as its gossip payload.
    Range {
        /// The entries' payloads, exactly as gossiped.
        entries: Vec<Vec<u8>>,
        /// Whether the feed holds more of the requested range after the last one sent.
        more: bool,
    },
    /// Charters in version order.
    Charters(Vec<RawCharter>),
    /// The request was refused, and why.
    Refused(String),
    /// The ranges where the responder differs from the asker's summaries, and the charter
    /// the responder applies (so the asker can fetch a newer one without asking each time).
    Reconcile {
        /// The version of the charter in force at the responder.
        charter_version: u64,
        /// Its id.
        charter_id: Hash,
        /// One part per range that differs; ranges that match are left out.
        parts: Vec<Part>,
    },
}

/// Bytes that are not a valid message.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Nothing at all.
    #[error("empty message")]
    Empty,
    /// Longer than allowed for where it arrived.
    #[error("message of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A wire version this node does not speak.
    #[error("unsupported wire version {0} (this node speaks {WIRE_VERSION})")]
    UnsupportedVersion(u8),
    /// bincode refused the bytes.
    #[error("malformed message: {0}")]
    Malformed(#[source] BincodeError),
    /// The message ended before the input did.
    #[error("{0} trailing bytes after the message")]
    TrailingBytes(usize),
    /// A valid message spelt in a non-canonical way.
    #[error("message is not canonically encoded")]
    NonCanonical,
    /// A signed structure without the domain tag it must start with.
    #[error("signed bytes do not start with the {expected:?} tag")]
    WrongDomain {
        /// The tag expected.
        expected: &'static str,
    },
    /// A message of a kind not allowed where it arrived (a sync request on gossip, say).
    #[error("unexpected {0} message")]
    Unexpected(&'static str),
}

impl Message {
    /// The message's kind, for logs and errors.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Entry(_) => "entry",
            Message::Charter(_) => "charter",
            Message::Request(_) => "request",
            Message::Response(_) => "response",
        }
    }
}

/// The page size a responder uses for a `Range` request: what was asked, but never more
/// than [`MAX_RANGE_BYTES`], so the response stays decodable by the asker.
pub fn range_limit(requested: u32) -> usize {
    usize::try_from(requested).map_or(MAX_RANGE_BYTES, |bytes| bytes.min(MAX_RANGE_BYTES))
}

/// The kind of message `bytes` holds (`entry`, `charter`, `request`, `response`), read
/// from the version byte and the variant tag alone, without decoding: for routing a
/// payload to the right (full) decoder. `None` for bytes that cannot be a message. The tag
/// is a varint, read in every spelling [`decode`] accepts (a tag written with a wider
/// marker than needed is the same tag to bincode), so the two never disagree.
pub fn kind_of(bytes: &[u8]) -> Option<&'static str> {
    let [WIRE_VERSION, marker, rest @ ..] = bytes else {
        return None;
    };
    let tag = match marker {
        0..=250 => u64::from(*marker),
        251 => u64::from(u16::from_le_bytes(rest.get(..2)?.try_into().ok()?)),
        252 => u64::from(u32::from_le_bytes(rest.get(..4)?.try_into().ok()?)),
        253 => u64::from_le_bytes(rest.get(..8)?.try_into().ok()?),
        _ => return None,
    };
    match tag {
        0 => Some("entry"),
        1 => Some("charter"),
        2 => Some("request"),
        3 => Some("response"),
        _ => None,
    }
}

/// Encodes a message.
pub fn encode(message: &Message) -> Vec<u8> {
    let mut bytes = vec![WIRE_VERSION];
    bincode::encode_into_std_write(message, &mut bytes, CONFIG)
        .expect("encoding into a Vec cannot fail: no writer errors, no unencodable types");
    bytes
}

/// Decodes a message of at most `max_bytes` (at most [`MAX_MESSAGE_BYTES`]).
pub fn decode(bytes: &[u8], max_bytes: usize) -> Result<Message, DecodeError> {
    let max = max_bytes.min(MAX_MESSAGE_BYTES);
    if bytes.is_empty() {
        return Err(DecodeError::Empty);
    }
    if bytes.len() > max {
        return Err(DecodeError::TooLarge {
            len: bytes.len(),
            max,
        });
    }
    decode_exact(versioned_body(bytes)?)
}

/// The bytes of a message after its version byte, once that byte says [`WIRE_VERSION`].
pub(crate) fn versioned_body(bytes: &[u8]) -> Result<&[u8], DecodeError> {
    match bytes.split_first() {
        None => Err(DecodeError::Empty),
        Some((&WIRE_VERSION, body)) => Ok(body),
        Some((&version, _)) => Err(DecodeError::UnsupportedVersion(version)),
    }
}

/// Decodes a gossip payload: an entry or a charter, at most [`MAX_GOSSIP_BYTES`], encoded
/// canonically.
pub fn decode_gossip(bytes: &[u8]) -> Result<Message, DecodeError> {
    let message = decode(bytes, MAX_GOSSIP_BYTES)?;
    if !matches!(message, Message::Entry(_) | Message::Charter(_)) {
        return Err(DecodeError::Unexpected(message.kind()));
    }
    if encode(&message) != bytes {
        return Err(DecodeError::NonCanonical);
    }
    Ok(message)
}

/// Encodes `value` as signed bytes: the domain tag, then the value.
pub fn encode_signed<T: bincode::Encode>(domain: &'static str, value: &T) -> Vec<u8> {
    let mut bytes = domain.as_bytes().to_vec();
    bincode::encode_into_std_write(value, &mut bytes, CONFIG)
        .expect("encoding into a Vec cannot fail: no writer errors, no unencodable types");
    bytes
}

/// Reads the value at the front of signed bytes made by [`encode_signed`], ignoring what
/// follows it (for reading a header without its body).
pub fn decode_signed_prefix<T: bincode::Decode<()>>(
    domain: &'static str,
    bytes: &[u8],
) -> Result<T, DecodeError> {
    bincode::decode_from_slice(strip_domain(domain, bytes)?, CONFIG)
        .map(|(value, _)| value)
        .map_err(DecodeError::Malformed)
}

/// Reads signed bytes made by [`encode_signed`] with the same `domain`.
pub fn decode_signed<T: bincode::Decode<()>>(
    domain: &'static str,
    bytes: &[u8],
) -> Result<T, DecodeError> {
    decode_exact(strip_domain(domain, bytes)?)
}

/// Decodes a value from the front of `bytes`, borrowing from them where the value's type
/// does, and says how many bytes it took. For readers of the node's own stored payloads,
/// which read a part of a message rather than all of it.
pub(crate) fn borrow_front<'a, T: bincode::BorrowDecode<'a, ()>>(
    bytes: &'a [u8],
) -> Result<(T, usize), DecodeError> {
    bincode::borrow_decode_from_slice(bytes, CONFIG).map_err(DecodeError::Malformed)
}

/// The bytes after `domain`, or an error naming the tag that was expected.
pub(crate) fn strip_domain<'a>(
    domain: &'static str,
    bytes: &'a [u8],
) -> Result<&'a [u8], DecodeError> {
    bytes
        .strip_prefix(domain.as_bytes())
        .ok_or(DecodeError::WrongDomain { expected: domain })
}

/// The encoded size of `value`, without encoding it anywhere.
pub fn encoded_len<T: bincode::Encode>(value: &T) -> usize {
    let mut writer = bincode::enc::write::SizeWriter::default();
    let mut encoder = bincode::enc::EncoderImpl::new(&mut writer, CONFIG);
    value
        .encode(&mut encoder)
        .expect("encoding into a size counter cannot fail");
    writer.bytes_written
}

fn decode_exact<T: bincode::Decode<()>>(body: &[u8]) -> Result<T, DecodeError> {
    let (value, read) = bincode::decode_from_slice(body, CONFIG).map_err(DecodeError::Malformed)?;
    if read != body.len() {
        return Err(DecodeError::TrailingBytes(body.len() - read));
    }
    Ok(value)
}
