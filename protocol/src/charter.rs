//! The federation charter: the signed roster of who belongs, who may publish and which
//! node keys speak for whom.
//!
//! A charter names its stewards and a threshold k. Version 1 (genesis) is valid with k
//! signatures of its own stewards; every later version is valid only with k signatures of
//! the *previous* version's stewards (its own threshold), and names the previous version's
//! id, so versions form a hash chain and steward changes need the old stewards' consent.
//!
//! Members are organisations, identified by their root key. A root key certifies node keys
//! ([`NodeCertificate`]) for a validity window. A suspension or revocation carries a
//! [`Cutoff`]: a time, and for each of the member's feeds the last seq still accepted, so
//! every node draws the same line whatever creation time a revoked member claims.
//!
//! Signatures cover the charter's encoding without the signatures themselves, so stewards
//! can sign a proposal one after another; the charter id is the hash of those bytes.

use std::collections::BTreeSet;

use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};

use crate::crypto::{BadSignature, Hash, PublicKey, Signature};
use crate::time::Timestamp;
use crate::wire::{self, DecodeError};

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

/// One version of a federation's roster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
pub struct Charter {
    /// The federation's id, fixed at genesis and kept by every later version.
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
    /// Bootstrap addresses of its nodes (libp2p multiaddrs as text).
    pub addresses: Vec<String>,
    /// X25519 public key for bundles sealed to this organisation, if it has one.
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// In good standing.
    Active,
    /// Temporarily out: disconnected, nothing after the cutoff accepted.
    Suspended(Cutoff),
    /// Out for good (until a later charter says otherwise).
    Revoked(Cutoff),
}

/// Where a suspension or revocation draws the line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
pub struct Cutoff {
    /// When it took effect: nothing created at or after it is accepted.
    pub since: Timestamp,
    /// For each of the member's feeds, the last seq still accepted. A feed not listed
    /// keeps nothing.
    pub last_seqs: Vec<FeedCutoff>,
}

/// The last accepted seq of one feed.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, bincode::Encode, bincode::Decode,
)]
pub struct FeedCutoff {
    /// The feed's author.
    pub node: PublicKey,
    /// Its last accepted seq.
    pub last_seq: u64,
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
/// [`SignedCharter::verify`] before trusting it.
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
    /// The member is suspended or revoked and the entry is past its cutoff.
    #[error("member {org} is {state} since {since}")]
    CutOff {
        /// The member.
        org: PublicKey,
        /// `suspended` or `revoked`.
        state: &'static str,
        /// When it took effect.
        since: Timestamp,
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
    /// The certificate of `node`, if this member certifies it.
    pub fn certificate(&self, node: &PublicKey) -> Option<&NodeCertificate> {
        self.nodes.iter().find(|cert| cert.node == *node)
    }
}

impl Cutoff {
    /// The last seq accepted from `node`'s feed (0: none).
    pub fn last_seq(&self, node: &PublicKey) -> u64 {
        self.last_seqs
            .iter()
            .find(|cutoff| cutoff.node == *node)
            .map_or(0, |cutoff| cutoff.last_seq)
    }
}

impl Status {
    fn cutoff(&self) -> Option<(&'static str, &Cutoff)> {
        match self {
            Status::Active => None,
            Status::Suspended(cutoff) => Some(("suspended", cutoff)),
            Status::Revoked(cutoff) => Some(("revoked", cutoff)),
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
    /// the seq cutoff.
    pub fn may_publish(&self, node: &PublicKey, at: Timestamp) -> Result<&Member, NotAuthorised> {
        let member = self.certified_at(node, at)?;
        if !member.roles.publish {
            return Err(NotAuthorised::MissingRole {
                org: member.org,
                action: "publish",
            });
        }
        if let Some((state, cutoff)) = member.status.cutoff()
            && at >= cutoff.since
        {
            return Err(cut_off(member, state, cutoff));
        }
        Ok(member)
    }

    /// Is the entry `(author, seq)` created at `created` acceptable? Before a suspension or
    /// revocation, only entries created before it *and* within the feed's last accepted seq.
    pub fn authorise_entry(
        &self,
        author: &PublicKey,
        seq: u64,
        created: Timestamp,
    ) -> Result<&Member, NotAuthorised> {
        let member = self.may_publish(author, created)?;
        if let Some((state, cutoff)) = member.status.cutoff()
            && seq > cutoff.last_seq(author)
        {
            return Err(cut_off(member, state, cutoff));
        }
        Ok(member)
    }

    /// May `node` hold a connection at `now`? Certified now, active, with a role.
    pub fn may_connect(&self, node: &PublicKey, now: Timestamp) -> Result<&Member, NotAuthorised> {
        let member = self.certified_at(node, now)?;
        if let Some((state, cutoff)) = member.status.cutoff() {
            return Err(cut_off(member, state, cutoff));
        }
        if !member.roles.read && !member.roles.publish {
            return Err(NotAuthorised::MissingRole {
                org: member.org,
                action: "connect",
            });
        }
        Ok(member)
    }

    /// [`Charter::may_connect`] for a libp2p PeerId in binary form; a PeerId that is not an
    /// ed25519 key is refused as unknown.
    pub fn may_connect_peer(
        &self,
        peer_id: &[u8],
        now: Timestamp,
    ) -> Result<&Member, NotAuthorised> {
        let node = PublicKey::from_peer_id_bytes(peer_id)
            .ok_or(NotAuthorised::UnknownNode(PublicKey([0; 32])))?;
        self.may_connect(&node, now)
    }

    fn certified_at(&self, node: &PublicKey, at: Timestamp) -> Result<&Member, NotAuthorised> {
        let (member, cert) = self.node(node).ok_or(NotAuthorised::UnknownNode(*node))?;
        if !cert.is_valid_at(at) {
            return Err(NotAuthorised::CertificateNotValid { node: *node, at });
        }
        Ok(member)
    }

    /// Checks the structural rules: sizes, uniqueness, threshold, certificates belong to
    /// their member. Signatures are checked by [`SignedCharter::verify`].
    pub fn validate(&self) -> Result<(), InvalidCharter> {
        let fail = |reason: String| Err(InvalidCharter(reason));
        check_text("name", &self.name)?;
        if self.version == 0 {
            return fail("version must start at 1".into());
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
        if self.threshold == 0 || usize::from(self.threshold) > self.stewards.len() {
            return fail(format!(
                "threshold {} is not between 1 and the {} stewards",
                self.threshold,
                self.stewards.len()
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
        if let Some((_, cutoff)) = self.status.cutoff()
            && !all_unique(cutoff.last_seqs.iter().map(|feed| &feed.node))
        {
            return fail("a feed is cut off twice".into());
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

fn cut_off(member: &Member, state: &'static str, cutoff: &Cutoff) -> NotAuthorised {
    NotAuthorised::CutOff {
        org: member.org,
        state,
        since: cutoff.since,
    }
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

    /// Checks the charter against its predecessor (`None` for genesis): the chain link,
    /// k signatures of the authorising stewards, every node certificate.
    pub fn verify(&self, previous: Option<&SignedCharter>) -> Result<(), CharterError> {
        let charter = &self.charter;
        let authority = match previous {
            None => {
                if charter.version != 1 {
                    return Err(CharterError::Chain {
                        previous_version: 0,
                        reason: format!("version {} has no predecessor given", charter.version),
                    });
                }
                charter
            }
            Some(previous) => {
                self.check_link(previous)?;
                &previous.charter
            }
        };
        self.check_signatures(authority)?;
        for member in &charter.members {
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
        if charter.federation != before.federation {
            return broken("another federation".into());
        }
        if charter.version != before.version + 1 {
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
