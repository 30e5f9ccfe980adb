//! Sealed bundles: restricted content that only its recipients can read, yet every node
//! relays, verifies and syncs like any other entry.
//!
//! A bundle marked TLP:RED or TLP:AMBER+STRICT, or addressed to named organisations,
//! travels as a [`Sealed`] entry body. Its encoding is encrypted once, with a fresh 32-byte
//! content key (ChaCha20-Poly1305, RFC 8439). The content key is then wrapped once per
//! recipient organisation, in a [`KeySlot`], with HPKE (RFC 9180) in base mode:
//! DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305, to the X25519 key the
//! charter in force lists for that organisation ([`crate::charter::Member::encryption_key`]).
//! The content key is used for one message only, so its nonce is fixed at zero.
//!
//! In the clear: the TLP marking and the recipient organisations, one slot each (relays
//! and auditors see who may read, not what). Bound: every AEAD call, the content's and
//! each slot's, takes as associated data the entry's federation, author and seq, the
//! marking and the list of recipient organisations ([`SealContext`]), so a ciphertext or a
//! slot moved into another entry, or a list with a name added, removed or reordered, no
//! longer opens. The author signs the sealed body like any other, so relays check the
//! signature and the charter without reading the content.
//!
//! Pure like the rest of the crate: the caller passes 32 random bytes, which seed a
//! ChaCha20 generator for the content key and HPKE's ephemeral keys. The seed is mixed
//! with the context and a hash of the content first, so the same bytes passed twice by
//! mistake never encrypt two different contents under one key.

use std::collections::BTreeSet;
use std::fmt;

use chacha20::ChaCha20Rng;
use chacha20::rand_core::{Rng as _, SeedableRng as _};
use chacha20poly1305::aead::{Aead as _, KeyInit as _, Payload};
use hpke::{Deserializable as _, Kem as _, OpModeR, OpModeS, Serializable as _};
use serde::{Deserialize, Serialize};

use crate::bundle::{Bundle, Distribution, InvalidBundle, MAX_RECIPIENTS, Tlp};
use crate::crypto::{Hash, PublicKey};
use crate::entry::{Entry, MAX_BUNDLE_BYTES};
use crate::wire::{self, DecodeError};

/// Domain tag of the associated data every AEAD call of a sealed body binds.
pub const SEALED_DOMAIN: &str = "threatmesh/sealed/v1:";
/// Domain tag in front of the bundle's encoding inside the ciphertext.
pub const CONTENT_DOMAIN: &str = "threatmesh/sealed-content/v1:";
/// HPKE `info` of a key slot: this prefix, then the recipient organisation's root key.
const SLOT_INFO: &[u8] = b"threatmesh/sealed/v1 key slot:";
/// Domain of the hash that turns the caller's random bytes into the generator's seed.
const SEED_DOMAIN: &[u8] = b"threatmesh/sealed/v1 seed:";

/// Size of a content key.
pub const CONTENT_KEY_BYTES: usize = 32;
/// Size of an authentication tag (ChaCha20-Poly1305).
pub const TAG_BYTES: usize = 16;
/// Size of a wrapped content key: the key and its tag.
pub const WRAPPED_KEY_BYTES: usize = CONTENT_KEY_BYTES + TAG_BYTES;
/// Encoded size of one key slot: organisation, HPKE encapsulated key, wrapped key.
pub const SLOT_BYTES: usize = 32 + 32 + WRAPPED_KEY_BYTES;

type SlotKem = hpke::kem::X25519HkdfSha256;
type SlotKdf = hpke::kdf::HkdfSha256;
type SlotAead = hpke::aead::ChaCha20Poly1305;

/// An entry body whose bundle only its recipients can read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
pub struct Sealed {
    /// The bundle's TLP marking, in the clear (it must equal the sealed bundle's).
    pub tlp: Tlp,
    /// One slot per recipient organisation, in the order they are bound.
    pub slots: Vec<KeySlot>,
    /// `ChaCha20-Poly1305(content key, nonce 0, CONTENT_DOMAIN ++ bincode(Bundle))`, tag
    /// last.
    #[serde(with = "crate::crypto::hex_serde::bytes")]
    pub ciphertext: Vec<u8>,
}

/// The content key, wrapped for one recipient organisation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
pub struct KeySlot {
    /// The recipient organisation's root key.
    pub org: PublicKey,
    /// HPKE's encapsulated key (the sender's ephemeral X25519 public key).
    #[serde(with = "crate::crypto::hex_serde::array")]
    pub encapped: [u8; 32],
    /// The content key, HPKE-sealed to the organisation's X25519 key.
    #[serde(with = "crate::crypto::hex_serde::array")]
    pub wrapped: [u8; WRAPPED_KEY_BYTES],
}

/// The entry a sealed body belongs to: bound into every AEAD call, so its ciphertext
/// opens in that entry only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealContext {
    /// The federation.
    pub federation: Hash,
    /// The entry's author (node key).
    pub author: PublicKey,
    /// The entry's seq.
    pub seq: u64,
}

/// An organisation's X25519 secret key, for opening bundles sealed to it. Any 32 bytes
/// make a key (X25519 clamps them); its Debug form shows the public half only.
#[derive(Clone)]
pub struct EncryptionSecret([u8; 32]);

/// A recipient to seal for: an organisation and its X25519 public key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recipient {
    /// The organisation's root key.
    pub org: PublicKey,
    /// Its X25519 public key, from the charter in force.
    pub encryption_key: [u8; 32],
}

/// A sealed body that breaks a structural rule: refused before anyone tries to open it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidSealed {
    /// No key slot at all.
    #[error("sealed bundle has no recipients")]
    NoSlots,
    /// More than [`MAX_RECIPIENTS`] slots.
    #[error("sealed bundle has {0} recipients, at most {MAX_RECIPIENTS}")]
    TooManySlots(usize),
    /// Two slots for one organisation.
    #[error("sealed bundle names {0} twice")]
    DuplicateSlot(PublicKey),
    /// A ciphertext too short to hold even its tag.
    #[error("sealed bundle's ciphertext of {0} bytes is too short")]
    ShortCiphertext(usize),
}

/// Why a bundle could not be sealed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// The bundle breaks a rule.
    #[error(transparent)]
    Bundle(#[from] InvalidBundle),
    /// The recipient list breaks a rule (empty, too long, a duplicate).
    #[error(transparent)]
    Recipients(#[from] InvalidSealed),
    /// The bundle names a recipient that has no slot.
    #[error("the bundle names {0} as a recipient, but no key slot is sealed for it")]
    Unslotted(PublicKey),
    /// HPKE refused a recipient's key (a low-order point).
    #[error("the encryption key of {0} is not usable")]
    BadRecipientKey(PublicKey),
}

/// Why a sealed body could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The organisation has no slot: it is not a recipient.
    #[error("{0} is not a recipient of this sealed bundle")]
    NotARecipient(PublicKey),
    /// The organisation's slot does not open with this key: a wrong or rotated key, a
    /// tampered slot, or a body moved from another entry.
    #[error("the key slot of {0} does not open with this key (wrong key, or tampered)")]
    KeySlot(PublicKey),
    /// The slot opened but the content does not: tampered content or context.
    #[error("the sealed content does not authenticate (tampered)")]
    Ciphertext,
    /// The content decrypted but is not a bundle.
    #[error("the sealed content is not a bundle: {0}")]
    Malformed(#[source] DecodeError),
    /// The bundle inside breaks a rule.
    #[error("the sealed bundle is invalid: {0}")]
    Invalid(#[source] InvalidBundle),
    /// The marking in the clear is not the bundle's.
    #[error("the sealed body is marked {outside}, the bundle inside {inside}")]
    TlpMismatch {
        /// The marking in the clear.
        outside: Tlp,
        /// The bundle's own marking.
        inside: Tlp,
    },
    /// The bundle names a recipient without a slot.
    #[error("the sealed bundle names {0} as a recipient, but it has no key slot")]
    Unslotted(PublicKey),
}

/// Room a sealed body takes beyond its bundle's encoding, for `recipients` slots: the
/// slots, the content tag and domain, the marking and length prefixes.
pub fn overhead(recipients: usize) -> usize {
    recipients.saturating_mul(SLOT_BYTES) + CONTENT_DOMAIN.len() + TAG_BYTES + 32
}

/// Largest bundle encoding that, sealed for `recipients` organisations, still fits one
/// entry: pass it to [`Bundle::split`].
pub fn max_bundle_bytes(recipients: usize) -> usize {
    MAX_BUNDLE_BYTES.saturating_sub(overhead(recipients))
}

impl SealContext {
    /// The context of `entry`.
    pub fn of(entry: &Entry) -> SealContext {
        SealContext {
            federation: entry.federation,
            author: entry.author,
            seq: entry.seq,
        }
    }

    /// The associated data of a body with this marking and these recipients.
    fn associated_data(&self, tlp: Tlp, orgs: &[PublicKey]) -> Vec<u8> {
        wire::encode_signed(
            SEALED_DOMAIN,
            &(self.federation, self.author, self.seq, tlp, orgs),
        )
    }
}

impl EncryptionSecret {
    /// The key made of `bytes` (32 random bytes).
    pub fn from_bytes(bytes: [u8; 32]) -> EncryptionSecret {
        EncryptionSecret(bytes)
    }

    /// The bytes it was made from, for writing to a key file.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0
    }

    /// The X25519 public key that goes into the charter.
    pub fn public_key(&self) -> [u8; 32] {
        let public = SlotKem::sk_to_pk(&self.private_key());
        public.to_bytes().into()
    }

    fn private_key(&self) -> <SlotKem as hpke::Kem>::PrivateKey {
        <SlotKem as hpke::Kem>::PrivateKey::from_bytes(&self.0)
            .expect("any 32 bytes are an X25519 private key: HPKE clamps them")
    }
}

impl fmt::Debug for EncryptionSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "EncryptionSecret(public {})",
            crate::crypto::hex_encode(&self.public_key())
        )
    }
}

impl Sealed {
    /// Seals `bundle` for `recipients` (each organisation once) in the entry `context`
    /// describes. `random` must be 32 fresh random bytes. The bundle's own recipient list,
    /// if it has one, must be among `recipients` (the publisher's organisation may be added
    /// so it can read its own publications).
    pub fn seal(
        bundle: &Bundle,
        recipients: &[Recipient],
        context: &SealContext,
        random: [u8; 32],
    ) -> Result<Sealed, SealError> {
        bundle.validate_content()?;
        let orgs: Vec<PublicKey> = recipients.iter().map(|recipient| recipient.org).collect();
        validate_slots(&orgs)?;
        if let Distribution::Recipients(named) = &bundle.distribution
            && let Some(missing) = named.iter().find(|org| !orgs.contains(org))
        {
            return Err(SealError::Unslotted(*missing));
        }
        let aad = context.associated_data(bundle.tlp, &orgs);
        let plaintext = wire::encode_signed(CONTENT_DOMAIN, bundle);
        let seed = Hash::of_parts(&[SEED_DOMAIN, &random, &aad, &Hash::of(&plaintext).0]);
        let mut rng = ChaCha20Rng::from_seed(seed.0);

        let mut content_key = [0u8; CONTENT_KEY_BYTES];
        rng.fill_bytes(&mut content_key);
        let ciphertext = content_cipher(&content_key)
            .encrypt(
                &chacha20poly1305::Nonce::default(),
                Payload {
                    msg: &plaintext,
                    aad: &aad,
                },
            )
            .expect("ChaCha20-Poly1305 encrypts anything under 256 GiB; an entry is < 1 MiB");

        let mut slots = Vec::with_capacity(recipients.len());
        for recipient in recipients {
            let bad_key = || SealError::BadRecipientKey(recipient.org);
            let public = <SlotKem as hpke::Kem>::PublicKey::from_bytes(&recipient.encryption_key)
                .map_err(|_| bad_key())?;
            let (encapped, wrapped) =
                hpke::single_shot_seal_with_rng::<SlotAead, SlotKdf, SlotKem>(
                    &OpModeS::Base,
                    &public,
                    &slot_info(&recipient.org),
                    &content_key,
                    &aad,
                    &mut rng,
                )
                .map_err(|_| bad_key())?;
            slots.push(KeySlot {
                org: recipient.org,
                encapped: encapped.to_bytes().into(),
                wrapped: wrapped
                    .try_into()
                    .expect("HPKE seals a 32-byte key into 32 bytes and a 16-byte tag"),
            });
        }
        content_key.fill(0);
        Ok(Sealed {
            tlp: bundle.tlp,
            slots,
            ciphertext,
        })
    }

    /// Opens the body as organisation `org`, holding `secret`, in the entry `context`
    /// describes. The bundle inside is validated like one received in the clear, and must
    /// carry the marking shown outside.
    pub fn open(
        &self,
        context: &SealContext,
        org: &PublicKey,
        secret: &EncryptionSecret,
    ) -> Result<Bundle, OpenError> {
        let slot = self
            .slots
            .iter()
            .find(|slot| slot.org == *org)
            .ok_or(OpenError::NotARecipient(*org))?;
        let orgs = self.orgs();
        let aad = context.associated_data(self.tlp, &orgs);
        let encapped = <SlotKem as hpke::Kem>::EncappedKey::from_bytes(&slot.encapped)
            .map_err(|_| OpenError::KeySlot(*org))?;
        let content_key = hpke::single_shot_open::<SlotAead, SlotKdf, SlotKem>(
            &OpModeR::Base,
            &secret.private_key(),
            &encapped,
            &slot_info(org),
            &slot.wrapped,
            &aad,
        )
        .map_err(|_| OpenError::KeySlot(*org))?;
        let mut content_key: [u8; CONTENT_KEY_BYTES] = content_key
            .try_into()
            .map_err(|_| OpenError::KeySlot(*org))?;
        let plaintext = content_cipher(&content_key)
            .decrypt(
                &chacha20poly1305::Nonce::default(),
                Payload {
                    msg: &self.ciphertext,
                    aad: &aad,
                },
            )
            .map_err(|_| OpenError::Ciphertext);
        content_key.fill(0);
        let bundle: Bundle =
            wire::decode_signed(CONTENT_DOMAIN, &plaintext?).map_err(OpenError::Malformed)?;
        if bundle.tlp != self.tlp {
            return Err(OpenError::TlpMismatch {
                outside: self.tlp,
                inside: bundle.tlp,
            });
        }
        bundle.validate_content().map_err(OpenError::Invalid)?;
        if let Distribution::Recipients(named) = &bundle.distribution
            && let Some(missing) = named.iter().find(|org| !orgs.contains(org))
        {
            return Err(OpenError::Unslotted(*missing));
        }
        Ok(bundle)
    }

    /// The recipient organisations, in slot order.
    pub fn orgs(&self) -> Vec<PublicKey> {
        self.slots.iter().map(|slot| slot.org).collect()
    }

    /// Whether `org` holds a slot.
    pub fn is_for(&self, org: &PublicKey) -> bool {
        self.slots.iter().any(|slot| slot.org == *org)
    }

    /// Checks the rules anyone can check without a key: 1 to [`MAX_RECIPIENTS`] slots,
    /// each organisation once, a ciphertext long enough for its tag.
    pub fn validate(&self) -> Result<(), InvalidSealed> {
        validate_slots(&self.orgs())?;
        if self.ciphertext.len() < CONTENT_DOMAIN.len() + TAG_BYTES {
            return Err(InvalidSealed::ShortCiphertext(self.ciphertext.len()));
        }
        Ok(())
    }
}

fn validate_slots(orgs: &[PublicKey]) -> Result<(), InvalidSealed> {
    if orgs.is_empty() {
        return Err(InvalidSealed::NoSlots);
    }
    if orgs.len() > MAX_RECIPIENTS {
        return Err(InvalidSealed::TooManySlots(orgs.len()));
    }
    let mut seen = BTreeSet::new();
    if let Some(duplicate) = orgs.iter().find(|org| !seen.insert(**org)) {
        return Err(InvalidSealed::DuplicateSlot(*duplicate));
    }
    Ok(())
}

fn slot_info(org: &PublicKey) -> Vec<u8> {
    [SLOT_INFO, &org.0].concat()
}

fn content_cipher(key: &[u8; CONTENT_KEY_BYTES]) -> chacha20poly1305::ChaCha20Poly1305 {
    chacha20poly1305::ChaCha20Poly1305::new(&chacha20poly1305::Key::from(*key))
}
