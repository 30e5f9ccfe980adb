//! What the store keeps beside entries: feed states and index records, bincode-encoded,
//! and the bundles read from sealed entries, wire-encoded.
//!
//! Index records hold what lookups need from an item (and who said it, when) so that a
//! lookup never decodes a whole entry; what an entry's items share is kept once, in its
//! [`EntryRecord`].

use bincode::{Decode, Encode};
use threatmesh_protocol::bundle::{Bundle, Tlp};
use threatmesh_protocol::item::{Confidence, Context, RevocationReason};
use threatmesh_protocol::wire;
use threatmesh_protocol::{Hash, Timestamp};

use super::StoreError;

/// Record encoding. Records were written by this node, but a damaged disk can return
/// anything: the limit turns a corrupt length into an error instead of an allocation.
const CONFIG: bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    bincode::config::Limit<{ 1024 * 1024 }>,
> = bincode::config::standard().with_limit::<{ 1024 * 1024 }>();

/// One feed as this node holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode)]
pub(super) struct FeedRecord {
    /// The feed's local number, used in index keys.
    pub(super) number: u32,
    /// The organisation its author speaks for.
    pub(super) org: threatmesh_protocol::PublicKey,
    /// Every seq up to this one is present.
    pub(super) contiguous: u64,
    /// The id of the entry at `contiguous` (zero when `contiguous` is 0).
    pub(super) contiguous_id: Hash,
    /// The highest seq present.
    pub(super) highest: u64,
    /// Whether the author was caught equivocating.
    pub(super) equivocated: bool,
}

/// An indexed entry as lookups need it, written once per entry under its local number
/// (schema 2): where it is, what it is, and the details its items share.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub(super) struct EntryRecord {
    /// The feed's local number.
    pub(super) feed: u32,
    /// The entry's seq in its feed.
    pub(super) seq: u64,
    /// The entry's id.
    pub(super) id: Hash,
    /// The entry's creation time.
    pub(super) created: Timestamp,
    /// The entry's TLP marking.
    pub(super) tlp: Tlp,
    /// What two or more of its items say alike, by position: an index key names one of
    /// these instead of repeating it (see [`Detail`]).
    pub(super) shared: Vec<What>,
}

/// What an index key's value says of its item: one of its entry's shared details, or
/// details of its own. `Shared(0)`, the common case, is written as no bytes at all.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub(super) enum Detail {
    Shared(u32),
    Own(What),
}

pub(super) fn encode_detail(detail: &Detail) -> Vec<u8> {
    match detail {
        Detail::Shared(0) => Vec::new(),
        other => encode(other),
    }
}

pub(super) fn decode_detail(key: &[u8], bytes: &[u8]) -> Result<Detail, StoreError> {
    if bytes.is_empty() {
        return Ok(Detail::Shared(0));
    }
    decode(key, bytes)
}

/// What an item says, as the index keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub(super) enum What {
    Assertion {
        confidence: Confidence,
        valid_from: Timestamp,
        valid_until: Option<Timestamp>,
        labels: Vec<String>,
        context: Context,
    },
    Revocation {
        reason: RevocationReason,
        note: Option<String>,
    },
    Sighting {
        count: u64,
        first_seen: Timestamp,
        last_seen: Timestamp,
        note: Option<String>,
    },
}

pub(super) fn encode<T: Encode>(value: &T) -> Vec<u8> {
    bincode::encode_to_vec(value, CONFIG).expect("encoding into a Vec cannot fail")
}

pub(super) fn decode<T: Decode<()>>(key: &[u8], bytes: &[u8]) -> Result<T, StoreError> {
    bincode::decode_from_slice(bytes, CONFIG)
        .map(|(value, _)| value)
        .map_err(|error| StoreError::corrupt(key, error.to_string()))
}

pub(super) fn decode_u64(key: &[u8], bytes: &[u8]) -> Result<u64, StoreError> {
    bytes
        .try_into()
        .map(u64::from_be_bytes)
        .map_err(|_| StoreError::corrupt(key, format!("{} bytes, expected 8", bytes.len())))
}

/// Domain tag of an opened bundle kept beside its sealed entry.
const OPENED_DOMAIN: &str = "threatmesh/store/opened/v1:";

/// An opened bundle as the store keeps it: the wire encoding, whose decode limits and
/// value re-validation guard against a damaged disk.
pub(super) fn encode_opened(bundle: &Bundle) -> Vec<u8> {
    wire::encode_signed(OPENED_DOMAIN, bundle)
}

pub(super) fn decode_opened(key: &[u8], bytes: &[u8]) -> Result<Bundle, StoreError> {
    wire::decode_signed(OPENED_DOMAIN, bytes)
        .map_err(|error| StoreError::corrupt(key, error.to_string()))
}
