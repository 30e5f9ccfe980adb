//! The federation charter: the signed roster of who belongs, who may publish and which
//! node keys speak for whom.
//!
//! A charter names its stewards and a threshold k. Version 1 (genesis) is valid with k
//! signatures of its own stewards, and its id *is* the federation's id: a node is told that
//! id when it joins and trusts only the genesis that hashes to it
//! ([`SignedCharter::verify_genesis`]). Every later version is valid only with k signatures
//! of the *previous* version's stewards (the previous threshold) and names the previous
//! version's id, so versions form a hash chain and steward changes need the old stewards'
//! consent ([`SignedCharter::verify_successor`]).
//!
//! Members are organisations, identified by their root key. A root key certifies node keys
//! ([`NodeCertificate`]) for a validity window. A member's [`FeedCutoff`]s end feeds: the
//! last seq still accepted and that entry's id, whatever creation time later entries
//! claim. Stewards set them when a member is suspended or revoked (a feed of such a member
//! without a cutoff keeps nothing), and for any member when one of its node keys is retired
//! or stolen, since a certificate's window alone is checked against the creation time the
//! author claims.
//!
//! Signatures cover the charter's encoding without the signatures themselves, so stewards
//! can sign a proposal one after another; the charter id is the hash of those bytes.
//!
//! A node keeps the valid charters of its newest versions, rivals included, in a
//! [`History`], which names the charter in force from the set held alone, so every node
//! ends on the same one whatever order the charters reach it in.

mod authority;
mod history;
mod signed;
mod validate;

use serde::{Deserialize, Serialize};

use crate::crypto::{BadSignature, Hash, PublicKey, Signature};
use crate::time::Timestamp;
use crate::wire::DecodeError;

pub use history::{Admission, History, MAX_RIVALS, RIVAL_DEPTH};

/// Domain tag of the bytes stewards sign.
pub const CHARTER_DOMAIN: &str = "threatmesh/charter/v1:";
/// Domain tag of the bytes an organisation root key signs to certify a node key.
pub const CERTIFICATE_DOMAIN: &str = "threatmesh/node-certificate/v1:";
/// Most stewards a charter may name.
pub const MAX_STEWARDS: usize = 64;
/// Most member organisations.
pub const MAX_MEMBERS: usize = 2048;
/// Most certified nodes per member.
pub const MAX_NODES_PER_MEMBER: usize = 16;
/// Most bootstrap addresses per member.
pub const MAX_ADDRESSES_PER_MEMBER: usize = 8;
/// Longest name or address, in bytes.
pub const MAX_CHARTER_TEXT_BYTES: usize = 256;
/// Room a gossiped charter needs besides its encoding: every steward's key and signature,
/// the length prefixes and the message framing.
const CHARTER_FRAMING_BYTES: usize = MAX_STEWARDS * (32 + 64) + 64;

/// One version of a federation's roster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
pub struct Charter {
    /// The federation's id: the id of its genesis charter. Zero in the genesis itself,
    /// which cannot name its own hash.
    pub federation: Hash,
    /// The federation's name.
    pub name: String,
    /// 1 for genesis, then +1 per version.
    pub version: u64,
    /// Id of the previous version; `None` exactly for genesis.
    pub previous: Option<Hash>,
    /// When this version was drawn up.
    pub issued: Timestamp,
    /// Who signs the next version.
    pub stewards: Vec<PublicKey>,
    /// How many stewards' signatures a version needs (k of n).
    pub threshold: u16,
    /// The member organisations.
    pub members: Vec<Member>,
}

/// A member organisation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
pub struct Member {
    /// The organisation's root key, which is also its id.
    pub org: PublicKey,
    /// Its name (`CERT-FR`).
    pub name: String,
    /// ISO 3166-1 alpha-2 country code, or `EU`, `UN`, `XX` for international bodies.
    pub country: String,
    /// What it may do.
    pub roles: Roles,
    /// Whether it is in good standing.
    pub status: Status,
    /// Its certified node keys.
    pub nodes: Vec<NodeCertificate>,
    /// Feeds of its nodes that end: the last entry accepted from each.
    pub cutoffs: Vec<FeedCutoff>,
    /// Bootstrap addresses of its nodes (libp2p multiaddrs as text).
    pub addresses: Vec<String>,
    /// X25519 public key for bundles sealed to this organisation, if it has one (hex in
    /// JSON). Rotated by a newer charter with a new key; bundles are sealed to the key of
    /// the charter in force when they are published.
    #[serde(default, with = "crate::crypto::hex_serde::option_array")]
    pub encryption_key: Option<[u8; 32]>,
}

/// What a member may do.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, bincode::Encode, bincode::Decode,
)]
pub struct Roles {
    /// Publish entries.
    pub publish: bool,
    /// Receive the federation's data.
    pub read: bool,
}

/// A member's standing.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, bincode::Encode, bincode::Decode,
)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// In good standing.
    Active,
    /// Temporarily out: disconnected; nothing created at or after `since`, nor beyond its
    /// feeds' cutoffs, is accepted.
    Suspended {
        /// When it took effect.
        since: Timestamp,
    },
    /// Out for good (until a later charter says otherwise), with the same effect.
    Revoked {
        /// When it took effect.
        since: Timestamp,
    },
}

/// The end of one feed: its last accepted entry.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, bincode::Encode, bincode::Decode,
)]
pub struct FeedCutoff {
    /// The feed's author.
    pub node: PublicKey,
    /// Its last accepted seq; 0 for none.
    pub last_seq: u64,
    /// The id of the entry at `last_seq` (`None` exactly when `last_seq` is 0), so an
    /// author still holding its key cannot sign a different entry for that place.
    pub last_id: Option<Hash>,
}

/// "This node key speaks for this organisation, in this window", signed by the
/// organisation's root key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
pub struct NodeCertificate {
    /// The node key.
    pub node: PublicKey,
    /// The organisation's root key.
    pub org: PublicKey,
    /// Start of validity.
    pub valid_from: Timestamp,
    /// End of validity (exclusive).
    pub valid_until: Timestamp,
    /// The root key's signature.
    pub signature: Signature,
}

/// A steward's signature on a charter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
pub struct StewardSignature {
    /// The steward.
    pub steward: PublicKey,
    /// Its signature over the charter's signed bytes.
    pub signature: Signature,
}

/// A charter as it travels: the signed bytes and the signatures so far. Unchecked.
#[derive(Debug, Clone, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct RawCharter {
    /// `CHARTER_DOMAIN ++ bincode(Charter)`.
    pub charter: Vec<u8>,
    /// Steward signatures over `charter`.
    pub signatures: Vec<StewardSignature>,
}

/// A decoded, structurally valid charter with the signatures collected so far.
///
/// Being a `SignedCharter` says nothing about its signatures: call
/// [`SignedCharter::verify_genesis`] or [`SignedCharter::verify_successor`] before
/// trusting it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCharter {
    raw: RawCharter,
    charter: Charter,
    id: Hash,
}

/// A charter that breaks a structural rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid charter: {0}")]
pub struct InvalidCharter(pub String);

/// Why a charter is not valid (after its predecessor).
#[derive(Debug, thiserror::Error)]
pub enum CharterError {
    /// Not a well-formed charter.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// Breaks a structural rule.
    #[error(transparent)]
    Invalid(#[from] InvalidCharter),
    /// Not the genesis charter of the federation the node was given.
    #[error("not the genesis charter of federation {federation} (version {version})")]
    NotGenesis {
        /// The charter's version.
        version: u64,
        /// The federation id it was checked against.
        federation: Hash,
    },
    /// Does not extend the given previous version.
    #[error("charter does not follow version {previous_version}: {reason}")]
    Chain {
        /// The previous version's number.
        previous_version: u64,
        /// What does not match.
        reason: String,
    },
    /// A signature by someone who is not an authorising steward.
    #[error("signature by {0}, who is not a steward of the authorising version")]
    NotASteward(PublicKey),
    /// The same steward signed twice.
    #[error("steward {0} signed twice")]
    DuplicateSignature(PublicKey),
    /// A steward's signature does not verify.
    #[error("steward signature does not verify: {0}")]
    BadSignature(#[source] BadSignature),
    /// Fewer than k signatures.
    #[error("{have} of the required {need} steward signatures")]
    BelowThreshold {
        /// Valid steward signatures present.
        have: usize,
        /// The threshold k.
        need: usize,
    },
    /// A node certificate's signature does not verify against its member's root key.
    #[error("certificate of node {node} for {org} does not verify")]
    BadCertificate {
        /// The node key certified.
        node: PublicKey,
        /// The member.
        org: PublicKey,
    },
}

/// Why a node key may not do what it asks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotAuthorised {
    /// No member certifies this node key.
    #[error("node {0} is not certified by any member")]
    UnknownNode(PublicKey),
    /// A PeerId that is not an ed25519 key, so no member can have certified it.
    #[error("peer id is not an ed25519 key")]
    NotEd25519,
    /// The certificate does not cover the time asked about.
    #[error("certificate of node {node} is not valid at {at}")]
    CertificateNotValid {
        /// The node key.
        node: PublicKey,
        /// The time asked about.
        at: Timestamp,
    },
    /// The member lacks the role.
    #[error("member {org} may not {action}")]
    MissingRole {
        /// The member.
        org: PublicKey,
        /// What it may not do.
        action: &'static str,
    },
    /// The member is suspended or revoked since before the time asked about.
    #[error("member {org} is {state} since {since}")]
    OutOfStanding {
        /// The member.
        org: PublicKey,
        /// `suspended` or `revoked`.
        state: &'static str,
        /// When it took effect.
        since: Timestamp,
    },
    /// The entry lies beyond its feed's cutoff, or is not the entry the cutoff names.
    #[error("feed {node} ends at seq {last_seq}: its entry {seq} is not accepted")]
    BeyondCutoff {
        /// The feed.
        node: PublicKey,
        /// The last accepted seq.
        last_seq: u64,
        /// The entry's seq.
        seq: u64,
    },
}
