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

mod history;

use std::collections::BTreeSet;

use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};

use crate::crypto::{BadSignature, Hash, PublicKey, Signature};
use crate::entry::FeedHead;
use crate::time::Timestamp;
use crate::wire::{self, DecodeError, MAX_GOSSIP_BYTES};

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

impl NodeCertificate {
    /// The root key `org_key` certifies `node` for `[valid_from, valid_until)`.
    pub fn issue(
        org_key: &SigningKey,
        node: PublicKey,
        valid_from: Timestamp,
        valid_until: Timestamp,
    ) -> NodeCertificate {
        let org = PublicKey::of(org_key);
        let signed = certificate_bytes(node, org, valid_from, valid_until);
        NodeCertificate {
            node,
            org,
            valid_from,
            valid_until,
            signature: Signature::sign(org_key, &signed),
        }
    }

    /// Checks the root key's signature.
    pub fn verify(&self) -> Result<(), BadSignature> {
        let signed = certificate_bytes(self.node, self.org, self.valid_from, self.valid_until);
        self.org.verify(&signed, &self.signature)
    }

    /// Whether `at` falls in the validity window.
    pub fn is_valid_at(&self, at: Timestamp) -> bool {
        self.valid_from <= at && at < self.valid_until
    }
}

fn certificate_bytes(
    node: PublicKey,
    org: PublicKey,
    valid_from: Timestamp,
    valid_until: Timestamp,
) -> Vec<u8> {
    wire::encode_signed(CERTIFICATE_DOMAIN, &(node, org, valid_from, valid_until))
}

impl Member {
    /// A new, active member that may publish and read, with one node, `node`, certified by
    /// the organisation key `org` from `from` until `until`: what `threatmesh init` writes
    /// for an organisation joining a federation. No cutoffs, addresses or encryption key.
    pub fn founding(
        org: &SigningKey,
        name: impl Into<String>,
        country: impl Into<String>,
        node: PublicKey,
        from: Timestamp,
        until: Timestamp,
    ) -> Member {
        Member {
            org: PublicKey::of(org),
            name: name.into(),
            country: country.into(),
            roles: Roles {
                publish: true,
                read: true,
            },
            status: Status::Active,
            nodes: vec![NodeCertificate::issue(org, node, from, until)],
            cutoffs: Vec::new(),
            addresses: Vec::new(),
            encryption_key: None,
        }
    }

    /// The certificate of `node`, if this member certifies it.
    pub fn certificate(&self, node: &PublicKey) -> Option<&NodeCertificate> {
        self.nodes.iter().find(|cert| cert.node == *node)
    }

    /// The cutoff of `node`'s feed, if it has one.
    pub fn cutoff(&self, node: &PublicKey) -> Option<&FeedCutoff> {
        self.cutoffs.iter().find(|cutoff| cutoff.node == *node)
    }

    /// [`Charter::feed_end`] for a node this member certifies.
    pub fn feed_end(&self, node: &PublicKey) -> Option<FeedCutoff> {
        match self.cutoff(node) {
            Some(cutoff) => Some(*cutoff),
            None if self.status.out_of_standing().is_some() => Some(FeedCutoff {
                node: *node,
                last_seq: 0,
                last_id: None,
            }),
            None => None,
        }
    }
}

impl Status {
    /// `("suspended" | "revoked", since)`, or `None` when active.
    pub fn out_of_standing(&self) -> Option<(&'static str, Timestamp)> {
        match *self {
            Status::Active => None,
            Status::Suspended { since } => Some(("suspended", since)),
            Status::Revoked { since } => Some(("revoked", since)),
        }
    }
}

impl Charter {
    /// The member certifying `node`, and its certificate.
    pub fn node(&self, node: &PublicKey) -> Option<(&Member, &NodeCertificate)> {
        self.members
            .iter()
            .find_map(|member| member.certificate(node).map(|cert| (member, cert)))
    }

    /// The member with root key `org`.
    pub fn member(&self, org: &PublicKey) -> Option<&Member> {
        self.members.iter().find(|member| member.org == *org)
    }

    /// May `node` publish at time `at`? (Certified then, publish role, in good standing
    /// then.) For a concrete entry use [`Charter::authorise_entry`], which also applies
    /// feed cutoffs.
    pub fn may_publish(&self, node: &PublicKey, at: Timestamp) -> Result<&Member, NotAuthorised> {
        let member = self.certified_at(node, at)?;
        if !member.roles.publish {
            return Err(NotAuthorised::MissingRole {
                org: member.org,
                action: "publish",
            });
        }
        if let Some((state, since)) = member.status.out_of_standing()
            && at >= since
        {
            return Err(NotAuthorised::OutOfStanding {
                org: member.org,
                state,
                since,
            });
        }
        Ok(member)
    }

    /// Is `entry` (author, seq, id), created at `created`, acceptable? Its author may
    /// publish at `created`, and the entry lies within its feed's cutoff: at most the last
    /// accepted seq, and at that seq exactly the entry the cutoff names. A feed of a
    /// suspended or revoked member without a cutoff accepts nothing.
    pub fn authorise_entry(
        &self,
        entry: &FeedHead,
        created: Timestamp,
    ) -> Result<&Member, NotAuthorised> {
        let member = self.may_publish(&entry.author, created)?;
        let Some(cutoff) = member.feed_end(&entry.author) else {
            return Ok(member);
        };
        let beyond = entry.seq > cutoff.last_seq
            || (entry.seq == cutoff.last_seq && cutoff.last_id != Some(entry.id));
        if beyond {
            return Err(NotAuthorised::BeyondCutoff {
                node: entry.author,
                last_seq: cutoff.last_seq,
                seq: entry.seq,
            });
        }
        Ok(member)
    }

    /// Where `node`'s feed ends, if it does: its cutoff, or seq 0 (nothing accepted) for a
    /// node of a suspended or revoked member without one. A feed that ends is closed: what
    /// it may still add is the entries up to its end that a node has not seen yet, never a
    /// second entry for a place the node holds (see the node's ingest).
    pub fn feed_end(&self, node: &PublicKey) -> Option<FeedCutoff> {
        self.node(node)?.0.feed_end(node)
    }

    /// May `node` hold a connection at `now`? Certified now, active, with a role.
    pub fn may_connect(&self, node: &PublicKey, now: Timestamp) -> Result<&Member, NotAuthorised> {
        let member = self.certified_at(node, now)?;
        if let Some((state, since)) = member.status.out_of_standing() {
            return Err(NotAuthorised::OutOfStanding {
                org: member.org,
                state,
                since,
            });
        }
        if !member.roles.read && !member.roles.publish {
            return Err(NotAuthorised::MissingRole {
                org: member.org,
                action: "connect",
            });
        }
        Ok(member)
    }

    /// Every node that may connect at `now` (those [`Charter::may_connect`] admits), with
    /// its member, in one pass over the members: asking `may_connect` node by node searches
    /// the members once per node, which a federation of a thousand feels.
    pub fn connectable(&self, now: Timestamp) -> impl Iterator<Item = (&Member, &NodeCertificate)> {
        self.members
            .iter()
            .filter(|member| {
                member.status.out_of_standing().is_none()
                    && (member.roles.read || member.roles.publish)
            })
            .flat_map(|member| member.nodes.iter().map(move |cert| (member, cert)))
            .filter(move |(_, cert)| cert.is_valid_at(now))
    }

    /// The first time after `now` at which a node certificate's window opens or closes,
    /// that is when [`Charter::connectable`] may answer differently; `None` if never.
    pub fn next_window_change(&self, now: Timestamp) -> Option<Timestamp> {
        self.members
            .iter()
            .flat_map(|member| member.nodes.iter())
            .flat_map(|cert| [cert.valid_from, cert.valid_until])
            .filter(|at| *at > now)
            .min()
    }

    /// [`Charter::may_connect`] for a libp2p PeerId in binary form.
    pub fn may_connect_peer(
        &self,
        peer_id: &[u8],
        now: Timestamp,
    ) -> Result<&Member, NotAuthorised> {
        let node = PublicKey::from_peer_id_bytes(peer_id).ok_or(NotAuthorised::NotEd25519)?;
        self.may_connect(&node, now)
    }

    fn certified_at(&self, node: &PublicKey, at: Timestamp) -> Result<&Member, NotAuthorised> {
        let (member, cert) = self.node(node).ok_or(NotAuthorised::UnknownNode(*node))?;
        if !cert.is_valid_at(at) {
            return Err(NotAuthorised::CertificateNotValid { node: *node, at });
        }
        Ok(member)
    }

    /// Checks the structural rules: sizes (the whole charter, with a signature from every
    /// steward, must fit one gossip message), uniqueness, a majority threshold,
    /// certificates belong to their member. Signatures are checked by
    /// [`SignedCharter::verify_genesis`] and [`SignedCharter::verify_successor`].
    pub fn validate(&self) -> Result<(), InvalidCharter> {
        let fail = |reason: String| Err(InvalidCharter(reason));
        check_text("name", &self.name)?;
        if self.version == 0 {
            return fail("version must start at 1".into());
        }
        if (self.version == 1) != (self.federation == Hash::default()) {
            return fail(if self.version == 1 {
                "the genesis charter's federation id must be zero: the federation's id is the \
                 genesis charter's own id"
                    .into()
            } else {
                "a later charter must name its federation".into()
            });
        }
        if (self.version == 1) != self.previous.is_none() {
            return fail(format!(
                "version {} {}",
                self.version,
                if self.version == 1 {
                    "must not name a previous version"
                } else {
                    "must name its previous version"
                }
            ));
        }
        if self.stewards.is_empty() || self.stewards.len() > MAX_STEWARDS {
            return fail(format!(
                "{} stewards, expected 1 to {MAX_STEWARDS}",
                self.stewards.len()
            ));
        }
        if !all_unique(self.stewards.iter()) {
            return fail("a steward is listed twice".into());
        }
        // A majority threshold makes any two authorising groups share a steward, so rival
        // versions need a steward to sign both.
        let stewards = self.stewards.len();
        if usize::from(self.threshold) * 2 <= stewards || usize::from(self.threshold) > stewards {
            return fail(format!(
                "threshold {} must be a majority of the {stewards} stewards and at most {stewards}",
                self.threshold,
            ));
        }
        if self.members.len() > MAX_MEMBERS {
            return fail(format!(
                "{} members, at most {MAX_MEMBERS}",
                self.members.len()
            ));
        }
        if !all_unique(self.members.iter().map(|member| &member.org)) {
            return fail("an organisation is listed twice".into());
        }
        let mut nodes = BTreeSet::new();
        for member in &self.members {
            member.validate()?;
            for cert in &member.nodes {
                if !nodes.insert(cert.node) {
                    return fail(format!("node {} is certified twice", cert.node));
                }
            }
        }
        let gossip_bytes = wire::encoded_len(self) + CHARTER_FRAMING_BYTES;
        if gossip_bytes > MAX_GOSSIP_BYTES {
            return fail(format!(
                "{gossip_bytes} bytes with every steward's signature, more than one gossip \
                 message ({MAX_GOSSIP_BYTES})"
            ));
        }
        Ok(())
    }
}

impl Member {
    fn validate(&self) -> Result<(), InvalidCharter> {
        let fail = |reason: String| Err(InvalidCharter(format!("member {}: {reason}", self.name)));
        check_text("member name", &self.name)?;
        let country_ok =
            self.country.len() == 2 && self.country.bytes().all(|byte| byte.is_ascii_uppercase());
        if !country_ok {
            return fail(format!(
                "country {:?} is not a two-letter upper-case code",
                self.country
            ));
        }
        if self.nodes.len() > MAX_NODES_PER_MEMBER {
            return fail(format!(
                "{} nodes, at most {MAX_NODES_PER_MEMBER}",
                self.nodes.len()
            ));
        }
        for cert in &self.nodes {
            if cert.org != self.org {
                return fail(format!(
                    "certificate of node {} is by another key",
                    cert.node
                ));
            }
            if cert.valid_until <= cert.valid_from {
                return fail(format!(
                    "certificate of node {} has an empty window",
                    cert.node
                ));
            }
        }
        if self.addresses.len() > MAX_ADDRESSES_PER_MEMBER {
            return fail(format!(
                "{} addresses, at most {MAX_ADDRESSES_PER_MEMBER}",
                self.addresses.len()
            ));
        }
        for address in &self.addresses {
            check_text("address", address)?;
        }
        if !all_unique(self.cutoffs.iter().map(|cutoff| &cutoff.node)) {
            return fail("a feed is cut off twice".into());
        }
        if let Some(cutoff) = self
            .cutoffs
            .iter()
            .find(|cutoff| (cutoff.last_seq == 0) != cutoff.last_id.is_none())
        {
            return fail(format!(
                "cutoff of {} must name the entry at its last seq (and none at seq 0)",
                cutoff.node
            ));
        }
        Ok(())
    }
}

fn check_text(what: &str, text: &str) -> Result<(), InvalidCharter> {
    if text.is_empty() || text.len() > MAX_CHARTER_TEXT_BYTES {
        return Err(InvalidCharter(format!(
            "{what} {:?} must be 1 to {MAX_CHARTER_TEXT_BYTES} bytes",
            text.chars().take(40).collect::<String>()
        )));
    }
    Ok(())
}

fn all_unique<'a>(keys: impl Iterator<Item = &'a PublicKey>) -> bool {
    let mut seen = BTreeSet::new();
    keys.into_iter().all(|key| seen.insert(*key))
}

impl SignedCharter {
    /// A proposal: a structurally valid charter with no signatures yet.
    pub fn propose(charter: Charter) -> Result<SignedCharter, InvalidCharter> {
        charter.validate()?;
        let bytes = wire::encode_signed(CHARTER_DOMAIN, &charter);
        Ok(SignedCharter {
            id: Hash::of(&bytes),
            raw: RawCharter {
                charter: bytes,
                signatures: Vec::new(),
            },
            charter,
        })
    }

    /// A genesis charter (version 1) of `members` with one steward, `steward`, threshold 1,
    /// issued at `issued`, signed: the smallest federation that works.
    pub fn genesis_by(
        steward: &SigningKey,
        name: impl Into<String>,
        issued: Timestamp,
        members: Vec<Member>,
    ) -> Result<SignedCharter, InvalidCharter> {
        let mut charter = SignedCharter::propose(Charter {
            federation: Hash::default(),
            name: name.into(),
            version: 1,
            previous: None,
            issued,
            stewards: vec![PublicKey::of(steward)],
            threshold: 1,
            members,
        })?;
        charter.sign(steward);
        Ok(charter)
    }

    /// Decodes a charter as received, checking its structure but not its signatures.
    pub fn decode(raw: RawCharter) -> Result<SignedCharter, CharterError> {
        let charter: Charter = wire::decode_signed(CHARTER_DOMAIN, &raw.charter)?;
        charter.validate()?;
        Ok(SignedCharter {
            id: Hash::of(&raw.charter),
            raw,
            charter,
        })
    }

    /// Adds `steward`'s signature, replacing an earlier one by the same key.
    pub fn sign(&mut self, steward: &SigningKey) {
        let key = PublicKey::of(steward);
        let signature = Signature::sign(steward, &self.raw.charter);
        self.raw
            .signatures
            .retain(|existing| existing.steward != key);
        self.raw.signatures.push(StewardSignature {
            steward: key,
            signature,
        });
    }

    /// The federation's id: this charter's own id for genesis, else the id it names.
    pub fn federation(&self) -> Hash {
        if self.charter.version == 1 {
            self.id
        } else {
            self.charter.federation
        }
    }

    /// Checks a genesis charter against the federation id the node was given: it must be
    /// that charter, signed by k of its own stewards, with valid node certificates.
    pub fn verify_genesis(&self, federation: Hash) -> Result<(), CharterError> {
        if self.charter.version != 1 || self.id != federation {
            return Err(CharterError::NotGenesis {
                version: self.charter.version,
                federation,
            });
        }
        self.check_signatures(&self.charter)?;
        self.check_certificates()
    }

    /// Checks a charter against its (verified) predecessor: the chain link, k signatures
    /// of the predecessor's stewards, valid node certificates.
    pub fn verify_successor(&self, previous: &SignedCharter) -> Result<(), CharterError> {
        self.check_link(previous)?;
        self.check_signatures(&previous.charter)?;
        self.check_certificates()
    }

    /// Whether this charter should replace `other` as the one a node applies: a higher
    /// version wins; between two valid rival versions (only possible if a steward signed
    /// both), the smaller id wins, so every node settles on the same one. [`History`]
    /// names the charter in force by this order.
    pub fn supersedes(&self, other: &SignedCharter) -> bool {
        (self.charter.version, std::cmp::Reverse(self.id))
            > (other.charter.version, std::cmp::Reverse(other.id))
    }

    fn check_certificates(&self) -> Result<(), CharterError> {
        for member in &self.charter.members {
            for cert in &member.nodes {
                cert.verify().map_err(|_| CharterError::BadCertificate {
                    node: cert.node,
                    org: member.org,
                })?;
            }
        }
        Ok(())
    }

    fn check_link(&self, previous: &SignedCharter) -> Result<(), CharterError> {
        let (charter, before) = (&self.charter, &previous.charter);
        let broken = |reason: String| {
            Err(CharterError::Chain {
                previous_version: before.version,
                reason,
            })
        };
        if charter.federation != previous.federation() {
            return broken("another federation".into());
        }
        if Some(charter.version) != before.version.checked_add(1) {
            return broken(format!("version {} is not the next", charter.version));
        }
        if charter.previous != Some(previous.id) {
            return broken("it names another previous charter".into());
        }
        if charter.issued < before.issued {
            return broken("it was issued before its predecessor".into());
        }
        Ok(())
    }

    fn check_signatures(&self, authority: &Charter) -> Result<(), CharterError> {
        let mut signers = BTreeSet::new();
        for StewardSignature { steward, signature } in &self.raw.signatures {
            if !authority.stewards.contains(steward) {
                return Err(CharterError::NotASteward(*steward));
            }
            if !signers.insert(*steward) {
                return Err(CharterError::DuplicateSignature(*steward));
            }
            steward
                .verify(&self.raw.charter, signature)
                .map_err(CharterError::BadSignature)?;
        }
        let need = usize::from(authority.threshold);
        if signers.len() < need {
            return Err(CharterError::BelowThreshold {
                have: signers.len(),
                need,
            });
        }
        Ok(())
    }

    /// The charter.
    pub fn charter(&self) -> &Charter {
        &self.charter
    }

    /// Its id: the hash of its signed bytes (signatures excluded).
    pub fn id(&self) -> Hash {
        self.id
    }

    /// The charter as it travels.
    pub fn raw(&self) -> &RawCharter {
        &self.raw
    }

    /// The signatures collected so far.
    pub fn signatures(&self) -> &[StewardSignature] {
        &self.raw.signatures
    }

    /// The gossip payload carrying this charter.
    pub fn to_payload(&self) -> Vec<u8> {
        wire::encode(&wire::Message::Charter(self.raw.clone()))
    }
}
