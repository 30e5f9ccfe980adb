//! A charter with its steward signatures: proposed, signed one steward after another,
//! decoded from the wire and verified as a federation's genesis or as the successor of
//! the version before.

use std::collections::BTreeSet;

use ed25519_dalek::SigningKey;

use super::{
    CHARTER_DOMAIN, Charter, CharterError, InvalidCharter, Member, RawCharter, SignedCharter,
    StewardSignature,
};
use crate::crypto::{Hash, PublicKey, Signature};
use crate::time::Timestamp;
use crate::wire;

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
    /// both), the smaller id wins, so every node settles on the same one. [`History`](super::History)
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
