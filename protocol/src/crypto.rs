//! Keys, signatures and hashes: thin, typed wrappers over ed25519-dalek and SHA-256.
//!
//! Keys and signatures travel as plain byte arrays so that decoding them costs nothing and
//! cannot fail; a key is only turned into a curve point when a signature is checked, and
//! every check goes through [`PublicKey::verify`], which uses `verify_strict` (it rejects
//! small-order keys and non-canonical signatures, so a third party cannot re-shape a valid
//! signature into a second valid one).
//!
//! Every byte string that gets signed starts with a domain tag of its own (entries,
//! charters, node certificates), so a signature made for one purpose is never valid for
//! another.

use std::fmt;
use std::str::FromStr;

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

/// An ed25519 public key: an organisation's root key, a node key or a steward's key.
///
/// A node key is also the node's libp2p identity; [`PublicKey::peer_id_bytes`] derives the
/// PeerId from it without depending on libp2p.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, bincode::Encode, bincode::Decode)]
pub struct PublicKey(pub [u8; 32]);

/// An ed25519 signature, as its 64 bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, bincode::Encode, bincode::Decode)]
pub struct Signature(pub [u8; 64]);

/// A SHA-256 digest. Entry ids and charter ids are hashes.
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, bincode::Encode, bincode::Decode,
)]
pub struct Hash(pub [u8; 32]);

/// A signature that does not verify: the key is not a valid point, is of small order, or
/// the signature does not match the bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("signature by {key} does not verify")]
pub struct BadSignature {
    /// The key the signature claims to be from.
    pub key: PublicKey,
}

/// The multihash prefix of an ed25519 libp2p PeerId: identity multihash (0x00) of length
/// 36 (0x24), wrapping the protobuf `PublicKey { Type: Ed25519 (0x08 0x01), Data: 32 bytes
/// (0x12 0x20) }`. Fixed by the libp2p peer-id specification.
const PEER_ID_PREFIX: [u8; 6] = [0x00, 0x24, 0x08, 0x01, 0x12, 0x20];

impl PublicKey {
    /// The public half of a signing key.
    pub fn of(signing_key: &SigningKey) -> PublicKey {
        PublicKey(signing_key.verifying_key().to_bytes())
    }

    /// Checks `signature` over `message` with `verify_strict`.
    pub fn verify(&self, message: &[u8], signature: &Signature) -> Result<(), BadSignature> {
        let bad = || BadSignature { key: *self };
        let key = self.verifying_key().map_err(|_| bad())?;
        let signature = ed25519_dalek::Signature::from_bytes(&signature.0);
        key.verify_strict(message, &signature).map_err(|_| bad())
    }

    /// The key as a curve point, or an error if the bytes are not one.
    pub fn verifying_key(&self) -> Result<VerifyingKey, BadSignature> {
        VerifyingKey::from_bytes(&self.0).map_err(|_| BadSignature { key: *self })
    }

    /// The libp2p PeerId of the node holding this key, in its binary form (38 bytes).
    pub fn peer_id_bytes(&self) -> [u8; 38] {
        let mut bytes = [0u8; 38];
        bytes[..6].copy_from_slice(&PEER_ID_PREFIX);
        bytes[6..].copy_from_slice(&self.0);
        bytes
    }

    /// The key inside a binary ed25519 PeerId, or `None` for any other PeerId (RSA,
    /// secp256k1, hashed keys, malformed bytes).
    pub fn from_peer_id_bytes(bytes: &[u8]) -> Option<PublicKey> {
        let rest = bytes.strip_prefix(&PEER_ID_PREFIX)?;
        rest.try_into().ok().map(PublicKey)
    }

    /// The first 8 hex digits, for logs.
    pub fn fmt_short(&self) -> String {
        hex_encode(&self.0[..4])
    }
}

impl Signature {
    /// Signs `message` with `key`. Callers put the domain tag into `message`.
    pub fn sign(key: &SigningKey, message: &[u8]) -> Signature {
        Signature(key.sign(message).to_bytes())
    }
}

impl Hash {
    /// SHA-256 of `bytes`.
    pub fn of(bytes: &[u8]) -> Hash {
        Hash(Sha256::digest(bytes).into())
    }

    /// SHA-256 of several byte strings, concatenated.
    pub fn of_parts(parts: &[&[u8]]) -> Hash {
        let mut hasher = Sha256::new();
        for part in parts {
            hasher.update(part);
        }
        Hash(hasher.finalize().into())
    }

    /// The first 8 hex digits, for logs.
    pub fn fmt_short(&self) -> String {
        hex_encode(&self.0[..4])
    }
}

/// Lower-case hex of `bytes`.
pub fn hex_encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    out
}

/// Text that is not the hex form of a fixed-size value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected {expected} hex digits, got {input:?}")]
pub struct BadHex {
    /// How many hex digits were expected.
    pub expected: usize,
    /// The text given, cut to 80 characters.
    pub input: String,
}

/// Parses exactly `N` bytes of hex (either case).
pub fn hex_decode<const N: usize>(text: &str) -> Result<[u8; N], BadHex> {
    let bad = || BadHex {
        expected: N * 2,
        input: text.chars().take(80).collect(),
    };
    let digits = text.as_bytes();
    if digits.len() != N * 2 {
        return Err(bad());
    }
    let mut out = [0u8; N];
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        let high = char::from(pair[0]).to_digit(16).ok_or_else(bad)?;
        let low = char::from(pair[1]).to_digit(16).ok_or_else(bad)?;
        // Two hex digits are at most 255.
        *byte = u8::try_from(high * 16 + low).map_err(|_| bad())?;
    }
    Ok(out)
}

macro_rules! hex_text {
    ($name:ident, $len:literal) => {
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&hex_encode(&self.0))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), hex_encode(&self.0))
            }
        }

        impl FromStr for $name {
            type Err = BadHex;
            fn from_str(text: &str) -> Result<Self, BadHex> {
                hex_decode::<$len>(text).map($name)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

hex_text!(PublicKey, 32);
hex_text!(Signature, 64);
hex_text!(Hash, 32);

/// serde as hex text for byte fields of wire types (`#[serde(with = "...")]`), so JSON
/// shows keys and ciphertexts as one string instead of an array of numbers.
pub mod hex_serde {
    use serde::{Deserialize, Deserializer, Serializer};

    /// A fixed-size byte array as hex.
    pub mod array {
        use super::{Deserialize, Deserializer, Serializer};

        /// Writes `bytes` as lower-case hex.
        pub fn serialize<S: Serializer, const N: usize>(
            bytes: &[u8; N],
            serializer: S,
        ) -> Result<S::Ok, S::Error> {
            serializer.collect_str(&crate::crypto::hex_encode(bytes))
        }

        /// Reads exactly `N` bytes of hex.
        pub fn deserialize<'de, D: Deserializer<'de>, const N: usize>(
            deserializer: D,
        ) -> Result<[u8; N], D::Error> {
            let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
            crate::crypto::hex_decode::<N>(&text).map_err(serde::de::Error::custom)
        }
    }

    /// An optional 32-byte array as hex or `null`.
    pub mod option_array {
        use super::{Deserialize, Deserializer, Serializer};

        /// Writes `bytes` as lower-case hex, or `null`.
        pub fn serialize<S: Serializer>(
            bytes: &Option<[u8; 32]>,
            serializer: S,
        ) -> Result<S::Ok, S::Error> {
            match bytes {
                Some(bytes) => serializer.collect_str(&crate::crypto::hex_encode(bytes)),
                None => serializer.serialize_none(),
            }
        }

        /// Reads 64 hex digits, or `null`.
        pub fn deserialize<'de, D: Deserializer<'de>>(
            deserializer: D,
        ) -> Result<Option<[u8; 32]>, D::Error> {
            let text = <Option<std::borrow::Cow<'de, str>>>::deserialize(deserializer)?;
            text.map(|text| crate::crypto::hex_decode::<32>(&text))
                .transpose()
                .map_err(serde::de::Error::custom)
        }
    }

    /// A byte string of any length as hex.
    pub mod bytes {
        use super::{Deserialize, Deserializer, Serializer};

        /// Writes `bytes` as lower-case hex.
        pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
            serializer.collect_str(&crate::crypto::hex_encode(bytes))
        }

        /// Reads an even number of hex digits.
        pub fn deserialize<'de, D: Deserializer<'de>>(
            deserializer: D,
        ) -> Result<Vec<u8>, D::Error> {
            let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
            let digits = text.as_bytes();
            if digits.len() % 2 != 0 {
                return Err(serde::de::Error::custom("odd number of hex digits"));
            }
            digits
                .chunks_exact(2)
                .map(|pair| {
                    std::str::from_utf8(pair)
                        .ok()
                        .and_then(|pair| crate::crypto::hex_decode::<1>(pair).ok())
                        .map(|[byte]| byte)
                        .ok_or_else(|| serde::de::Error::custom("not hex"))
                })
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    #[test]
    fn signature_verifies_only_for_its_message_and_key() {
        let signing = key(1);
        let public = PublicKey::of(&signing);
        let signature = Signature::sign(&signing, b"hello");
        assert!(public.verify(b"hello", &signature).is_ok());
        assert!(public.verify(b"hellO", &signature).is_err());
        assert!(PublicKey::of(&key(2)).verify(b"hello", &signature).is_err());
    }

    #[test]
    fn small_order_key_is_refused() {
        // The identity point: every "signature" with R = identity and s = 0 would verify
        // under a cofactored check; verify_strict refuses the key outright.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let signature = Signature([0u8; 64]);
        let mut forged = signature;
        forged.0[0] = 1;
        assert!(PublicKey(identity).verify(b"anything", &forged).is_err());
    }

    #[test]
    fn peer_id_bytes_round_trip() {
        let public = PublicKey::of(&key(7));
        let bytes = public.peer_id_bytes();
        assert_eq!(PublicKey::from_peer_id_bytes(&bytes), Some(public));
        assert_eq!(PublicKey::from_peer_id_bytes(&bytes[..37]), None);
        let mut other = bytes;
        other[3] = 0x02; // a secp256k1 key type
        assert_eq!(PublicKey::from_peer_id_bytes(&other), None);
    }

    #[test]
    fn hex_round_trip_and_errors() {
        let hash = Hash::of(b"x");
        let text = hash.to_string();
        assert_eq!(text.len(), 64);
        assert_eq!(text.parse::<Hash>(), Ok(hash));
        assert_eq!(text.to_uppercase().parse::<Hash>(), Ok(hash));
        assert!(text[..63].parse::<Hash>().is_err());
        assert!(format!("{}g", &text[..63]).parse::<Hash>().is_err());
        assert!("é".repeat(32).parse::<Hash>().is_err());
    }

    #[test]
    fn serde_uses_hex() {
        let public = PublicKey([0xab; 32]);
        let json = serde_json::to_string(&public).unwrap();
        assert_eq!(json, format!("\"{}\"", "ab".repeat(32)));
        assert_eq!(serde_json::from_str::<PublicKey>(&json).unwrap(), public);
    }
}
