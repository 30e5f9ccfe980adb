//! Feed entries: the signed, hash-chained unit every node publishes.
//!
//! Each node appends to its own feed. Entry `n` names its federation, its author (the node
//! key), its `seq` (1, 2, 3, ...), the id of entry `n - 1` and its creation time, and
//! carries a [`Body`]. The author signs the entry's encoding (domain tag
//! [`ENTRY_DOMAIN`]) and the entry travels as a gossip payload
//! `[version] ++ Message::Entry { signed bytes, signature }`. The entry id is the SHA-256
//! of that payload, so it is also gossipsub's message id.
//!
//! Receiving an entry is three steps, cheapest first: [`EntryHeader::peek`] reads who wrote
//! it, where and when (enough for the charter check), [`UnverifiedEntry::decode`] decodes
//! and re-validates every value, [`UnverifiedEntry::verify`] checks the signature. Only a
//! [`SignedEntry`] (verified) is meant to be stored.
//!
//! Naming the federation in the signed bytes means an entry published in one federation
//! cannot be replayed into another by a node that belongs to both.
//!
//! `(author, seq)` makes catch-up exact: two peers compare [`FeedHead`]s and fetch what is
//! missing. Two different entries with the same `(author, seq)` prove the author
//! equivocated; [`SignedEntry::equivocates`] detects it.

use std::time::Duration;

use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};

use crate::bundle::{Bundle, InvalidBundle};
use crate::crypto::{BadSignature, Hash, PublicKey, Signature};
use crate::seal::{InvalidSealed, Sealed};
use crate::time::Timestamp;
use crate::wire::{self, DecodeError, MAX_GOSSIP_BYTES, Message};

mod stored;

pub use stored::ClearItem;

/// Domain tag of the bytes an entry's author signs.
pub const ENTRY_DOMAIN: &str = "threatmesh/entry/v1:";

/// Highest seq an entry may have. No feed comes near it (a billion entries a second for
/// a century is under 2^62), and the cap lets every `seq + 1` in the node stay in range.
pub const MAX_SEQ: u64 = 1 << 62;

/// Largest bundle encoding [`SignedEntry::sign`] accepts: the gossip limit less room for
/// the entry's header, the signature and the message framing.
pub const MAX_BUNDLE_BYTES: usize = MAX_GOSSIP_BYTES - 1024;

/// One entry of a feed, as its author wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
pub struct Entry {
    /// The federation the entry is published in (the id of its genesis charter).
    pub federation: Hash,
    /// The node key of the feed's author.
    pub author: PublicKey,
    /// Position in the feed, from 1.
    pub seq: u64,
    /// Id of the entry before it; `None` exactly when `seq` is 1.
    pub prev: Option<Hash>,
    /// When the author created it, by the author's clock.
    pub created: Timestamp,
    /// What it publishes.
    pub body: Body,
}

/// The first fields of an [`Entry`]: everything but the body. Field order matches
/// `Entry`, so the header is read from the front of an entry's signed bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, bincode::Decode)]
pub struct EntryHeader {
    /// The federation.
    pub federation: Hash,
    /// The author's node key.
    pub author: PublicKey,
    /// Position in the feed.
    pub seq: u64,
    /// Id of the entry before it.
    pub prev: Option<Hash>,
    /// Creation time claimed by the author.
    pub created: Timestamp,
}

/// What an entry publishes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(rename_all = "kebab-case")]
pub enum Body {
    /// A bundle in the clear, readable by every node.
    Bundle(Bundle),
    /// A bundle only its recipients can read (restricted marking or named recipients).
    /// Appended after `Bundle`, so clear bodies keep their encoding.
    Sealed(Sealed),
}

/// An entry as it travels: the bytes its author signed, and the signature. Unchecked.
#[derive(Debug, Clone, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct RawEntry {
    /// `ENTRY_DOMAIN ++ bincode(Entry)`.
    pub signed: Vec<u8>,
    /// The author's signature over `signed`.
    pub signature: Signature,
}

/// Where a feed stands: its last entry. Also names any entry by `(author, seq, id)`.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    bincode::Encode,
    bincode::Decode,
)]
pub struct FeedHead {
    /// The feed's author.
    pub author: PublicKey,
    /// The seq of its last entry.
    pub seq: u64,
    /// The id of its last entry.
    pub id: Hash,
}

/// A decoded entry whose signature has not been checked yet.
#[derive(Debug, Clone)]
pub struct UnverifiedEntry {
    payload: Vec<u8>,
    raw: RawEntry,
    entry: Entry,
    id: Hash,
}

/// An entry whose signature verified, with its payload and id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedEntry {
    payload: Vec<u8>,
    entry: Entry,
    id: Hash,
}

/// Why an entry could not be built or signed.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// The signing key is not the entry's author.
    #[error("entry author {author} is not the signing key {key}")]
    WrongKey {
        /// The author named in the entry.
        author: PublicKey,
        /// The key that was to sign.
        key: PublicKey,
    },
    /// The entry breaks a rule.
    #[error(transparent)]
    Invalid(#[from] InvalidEntry),
    /// The encoded entry is over the gossip limit; split the bundle.
    #[error("entry of {len} bytes exceeds the limit of {MAX_GOSSIP_BYTES}: split the bundle")]
    TooLarge {
        /// Its encoded size.
        len: usize,
    },
}

/// An entry that breaks a rule of the protocol.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidEntry {
    /// `seq` is 0.
    #[error("seq must start at 1")]
    ZeroSeq,
    /// `seq` is above [`MAX_SEQ`].
    #[error("seq {0} is above the maximum {MAX_SEQ}")]
    SeqTooLarge(u64),
    /// `prev` is missing on a later entry or present on the first.
    #[error("entry {seq} {}", if *seq == 1 { "must not name a previous entry" } else { "must name its previous entry" })]
    BadPrev {
        /// The entry's seq.
        seq: u64,
    },
    /// The bundle breaks a rule.
    #[error(transparent)]
    Bundle(#[from] InvalidBundle),
    /// The sealed body breaks a rule anyone can check without a key.
    #[error(transparent)]
    Sealed(#[from] InvalidSealed),
}

/// Bytes that are not an acceptable entry.
#[derive(Debug, thiserror::Error)]
pub enum EntryError {
    /// Not a well-formed entry message.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// Well-formed, but breaks a rule.
    #[error(transparent)]
    Invalid(#[from] InvalidEntry),
}

/// An entry that does not extend the feed it is placed after.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    /// Another author's feed.
    #[error("entry is by {entry}, the feed by {feed}")]
    OtherAuthor {
        /// The entry's author.
        entry: PublicKey,
        /// The feed's author.
        feed: PublicKey,
    },
    /// Not the next seq.
    #[error("entry has seq {seq}, the feed expects {expected}")]
    Seq {
        /// The entry's seq.
        seq: u64,
        /// The seq that would follow the head.
        expected: u64,
    },
    /// Right seq, but `prev` names another entry.
    #[error("entry {seq} names {claimed:?} as previous, the feed's entry is {actual}")]
    Prev {
        /// The entry's seq.
        seq: u64,
        /// What the entry names.
        claimed: Option<Hash>,
        /// The id of the feed's entry at `seq - 1`.
        actual: Hash,
    },
}

impl Entry {
    /// Checks the entry's own rules (seq, prev, body). Signatures are checked elsewhere.
    pub fn validate(&self) -> Result<(), InvalidEntry> {
        if self.seq == 0 {
            return Err(InvalidEntry::ZeroSeq);
        }
        if self.seq > MAX_SEQ {
            return Err(InvalidEntry::SeqTooLarge(self.seq));
        }
        if (self.seq == 1) != self.prev.is_none() {
            return Err(InvalidEntry::BadPrev { seq: self.seq });
        }
        match &self.body {
            Body::Bundle(bundle) => bundle.validate_clear()?,
            // Relays cannot read it: only its structure is checked here. Recipients check
            // the bundle inside when they open it.
            Body::Sealed(sealed) => sealed.validate()?,
        }
        Ok(())
    }

    /// Whether the entry claims a creation time more than `tolerance` after `now`.
    pub fn is_from_future(&self, now: Timestamp, tolerance: Duration) -> bool {
        self.created > now.saturating_add(tolerance)
    }
}

impl EntryHeader {
    /// Reads the header of a gossip payload without decoding the body: size limit, wire
    /// version and domain tag are checked, nothing else. For deciding cheaply whether an
    /// entry is worth decoding (right federation, certified author, seq not cut off).
    pub fn peek(payload: &[u8]) -> Result<EntryHeader, DecodeError> {
        // Another kind of message (a charter) is told from its tag, not decoded whole.
        if wire::kind_of(payload).is_some_and(|kind| kind != "entry") {
            return Err(DecodeError::Unexpected("non-entry"));
        }
        let Message::Entry(raw) = wire::decode(payload, MAX_GOSSIP_BYTES)? else {
            return Err(DecodeError::Unexpected("non-entry"));
        };
        wire::decode_signed_prefix(ENTRY_DOMAIN, &raw.signed)
    }
}

impl UnverifiedEntry {
    /// Decodes a gossip payload (or one entry of a sync range) into an entry: size limit,
    /// wire version, canonical encoding, domain tag, every rule of [`Entry::validate`].
    pub fn decode(payload: Vec<u8>) -> Result<UnverifiedEntry, EntryError> {
        let Message::Entry(raw) = wire::decode_gossip(&payload)? else {
            return Err(DecodeError::Unexpected("charter").into());
        };
        let entry: Entry = wire::decode_signed(ENTRY_DOMAIN, &raw.signed)?;
        entry.validate()?;
        let id = Hash::of(&payload);
        Ok(UnverifiedEntry {
            payload,
            raw,
            entry,
            id,
        })
    }

    /// The entry as its author claims it.
    pub fn entry(&self) -> &Entry {
        &self.entry
    }

    /// The entry id (SHA-256 of the payload).
    pub fn id(&self) -> Hash {
        self.id
    }

    /// Checks the author's signature.
    pub fn verify(self) -> Result<SignedEntry, BadSignature> {
        self.entry
            .author
            .verify(&self.raw.signed, &self.raw.signature)?;
        Ok(self.into_signed())
    }

    fn into_signed(self) -> SignedEntry {
        SignedEntry {
            payload: self.payload,
            entry: self.entry,
            id: self.id,
        }
    }
}

impl SignedEntry {
    /// Signs `entry` with `key`, which must be the entry's author.
    pub fn sign(key: &SigningKey, entry: Entry) -> Result<SignedEntry, SignError> {
        let public = PublicKey::of(key);
        if entry.author != public {
            return Err(SignError::WrongKey {
                author: entry.author,
                key: public,
            });
        }
        entry.validate()?;
        let signed = wire::encode_signed(ENTRY_DOMAIN, &entry);
        let signature = Signature::sign(key, &signed);
        let payload = wire::encode(&Message::Entry(RawEntry { signed, signature }));
        if payload.len() > MAX_GOSSIP_BYTES {
            return Err(SignError::TooLarge { len: payload.len() });
        }
        let id = Hash::of(&payload);
        Ok(SignedEntry { payload, entry, id })
    }

    /// Builds and signs the entry that follows `head` in `key`'s feed of `federation`
    /// (`head` `None`: the first entry).
    pub fn next(
        key: &SigningKey,
        federation: Hash,
        head: Option<&FeedHead>,
        created: Timestamp,
        body: Body,
    ) -> Result<SignedEntry, SignError> {
        let entry = Entry {
            federation,
            author: PublicKey::of(key),
            seq: head.map_or(1, |head| head.seq + 1),
            prev: head.map(|head| head.id),
            created,
            body,
        };
        SignedEntry::sign(key, entry)
    }

    /// An entry read back from a store that checked it before writing it, under id `id`:
    /// decoded, but neither verified, re-validated, re-hashed, nor checked for a
    /// canonical encoding, which every entry passed on its way in. Those checks were
    /// about half of the time readers of the node's own store (TAXII pages, exports)
    /// spent on each entry. Never for bytes from a peer: those go through
    /// [`UnverifiedEntry::decode`] and [`UnverifiedEntry::verify`].
    pub fn from_store(payload: Vec<u8>, id: Hash) -> Result<SignedEntry, DecodeError> {
        let entry = wire::decode_signed(ENTRY_DOMAIN, stored::signed_bytes(&payload)?)?;
        Ok(SignedEntry { payload, entry, id })
    }

    /// Decodes and verifies a payload in one go.
    pub fn open(payload: Vec<u8>) -> Result<SignedEntry, OpenError> {
        Ok(UnverifiedEntry::decode(payload)?.verify()?)
    }

    /// The entry.
    pub fn entry(&self) -> &Entry {
        &self.entry
    }

    /// The entry id: SHA-256 of [`SignedEntry::payload`].
    pub fn id(&self) -> Hash {
        self.id
    }

    /// The bytes that travel and are stored: the gossip payload.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// Gives up the payload without copying it.
    pub fn into_payload(self) -> Vec<u8> {
        self.payload
    }

    /// This entry as a feed head.
    pub fn head(&self) -> FeedHead {
        FeedHead {
            author: self.entry.author,
            seq: self.entry.seq,
            id: self.id,
        }
    }

    /// Checks that this entry directly follows `previous` in the same feed.
    pub fn follows(&self, previous: &FeedHead) -> Result<(), ChainError> {
        let entry = &self.entry;
        if entry.author != previous.author {
            return Err(ChainError::OtherAuthor {
                entry: entry.author,
                feed: previous.author,
            });
        }
        let expected = previous.seq.saturating_add(1);
        if entry.seq != expected {
            return Err(ChainError::Seq {
                seq: entry.seq,
                expected,
            });
        }
        if entry.prev != Some(previous.id) {
            return Err(ChainError::Prev {
                seq: entry.seq,
                claimed: entry.prev,
                actual: previous.id,
            });
        }
        Ok(())
    }

    /// Whether this entry and `other` prove their author equivocated: same author, same
    /// seq, different entries.
    pub fn equivocates(&self, other: &FeedHead) -> bool {
        self.entry.author == other.author && self.entry.seq == other.seq && self.id != other.id
    }
}

/// Why a payload was not accepted by [`SignedEntry::open`].
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// Not a valid entry.
    #[error(transparent)]
    Entry(#[from] EntryError),
    /// The signature does not verify.
    #[error(transparent)]
    Signature(#[from] BadSignature),
}

/// A batch of entries in which at least one signature does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at least one of {entries} signatures in the batch does not verify")]
pub struct BatchRejected {
    /// How many entries the batch held.
    pub entries: usize,
}

/// Verifies many entries at once with ed25519 batch verification.
///
/// Faster than one check at a time, but not the same check: a batch accepts every set of
/// signatures that `verify_strict` accepts, yet could accept, with small probability, a
/// signature carrying a small-order component that `verify_strict` refuses. Only the holder
/// of the author's key can make such a signature, so the risk is an author whose entries
/// some nodes accept and others refuse. Where every node must reach the same verdict (the
/// node's ingest does), use [`UnverifiedEntry::verify`]; this is for bulk checks of data at
/// rest. On `Err`, check the entries one by one to find the culprit.
pub fn verify_batch(entries: &[UnverifiedEntry]) -> Result<(), BatchRejected> {
    let rejected = BatchRejected {
        entries: entries.len(),
    };
    let mut keys = Vec::with_capacity(entries.len());
    for entry in entries {
        match entry.entry.author.verifying_key() {
            Ok(key) if !key.is_weak() => keys.push(key),
            _ => return Err(rejected),
        }
    }
    let messages: Vec<&[u8]> = entries.iter().map(|e| e.raw.signed.as_slice()).collect();
    let signatures: Vec<ed25519_dalek::Signature> = entries
        .iter()
        .map(|e| ed25519_dalek::Signature::from_bytes(&e.raw.signature.0))
        .collect();
    ed25519_dalek::verify_batch(&messages, &signatures, &keys).map_err(|_| rejected)
}
