//! The bodies of the protocol's fuzz targets, shared by the cargo-fuzz binaries in
//! `fuzz_targets/` and by the smoke test `protocol/tests/fuzz_smoke.rs`, which runs them
//! on stable Rust in every `cargo test`. Each takes arbitrary bytes, runs a decoder that
//! nodes run on peer input, and asserts what must hold of whatever it returns. A panic,
//! assertion failure or abort is a bug.

use threatmesh_protocol::charter::{CHARTER_DOMAIN, RawCharter, SignedCharter, StewardSignature};
use threatmesh_protocol::entry::{Body, ENTRY_DOMAIN, EntryHeader, RawEntry, UnverifiedEntry};
use threatmesh_protocol::seal::{EncryptionSecret, SealContext};
use threatmesh_protocol::wire::{self, MAX_MESSAGE_BYTES, Message};
use threatmesh_protocol::{PublicKey, Signature, SigningKey};

/// The key the signing targets sign with, so inputs reach the checks after the signature.
fn fixed_key() -> SigningKey {
    SigningKey::from_bytes(&[0x5a; 32])
}

/// Wire decoding: any message, gossip payloads, the kind peek. Whatever decodes
/// re-encodes to a message that decodes to the same value; a gossip payload that decodes
/// is exactly its canonical encoding.
pub fn wire(bytes: &[u8]) {
    let kind = wire::kind_of(bytes);
    if let Ok(message) = wire::decode(bytes, MAX_MESSAGE_BYTES) {
        assert_eq!(kind, Some(message.kind()), "kind_of disagrees with decode");
        let again = wire::encode(&message);
        assert!(again.len() <= bytes.len(), "re-encoding grew the message");
        assert_eq!(
            wire::decode(&again, MAX_MESSAGE_BYTES).ok(),
            Some(message),
            "a decoded message does not survive a round trip"
        );
    }
    if let Ok(message) = wire::decode_gossip(bytes) {
        assert_eq!(
            wire::encode(&message),
            bytes,
            "gossip accepted a non-canonical form"
        );
    }
}

/// Entry reception as the ingest pipeline runs it on a gossip payload: header peek, full
/// decode, signature check. An entry that decodes has the header the peek read.
pub fn entry(bytes: &[u8]) {
    let peeked = EntryHeader::peek(bytes);
    if let Ok(entry) = UnverifiedEntry::decode(bytes.to_vec()) {
        let Ok(header) = peeked else {
            panic!("an entry decodes but its header does not");
        };
        let claimed = entry.entry();
        assert_eq!(
            (
                header.federation,
                header.author,
                header.seq,
                header.prev,
                header.created
            ),
            (
                claimed.federation,
                claimed.author,
                claimed.seq,
                claimed.prev,
                claimed.created
            ),
            "peeked header differs from the decoded entry"
        );
        // A sealed body is opened as a recipient would, under every slot's organisation.
        if let Body::Sealed(sealed) = &claimed.body {
            let secret = EncryptionSecret::from_bytes([1; 32]);
            let context = SealContext::of(claimed);
            for org in sealed.orgs() {
                let _ = sealed.open(&context, &org, &secret);
            }
        }
        let _ = entry.verify();
    }
}

/// Entry verification past the signature: the input is the encoded `Entry` (federation
/// first), its author replaced by the fixed key, signed by that key. Every rule after the
/// signature runs; an entry that decodes must then verify.
pub fn signed_entry(bytes: &[u8]) {
    let key = fixed_key();
    let author = PublicKey::of(&key);
    let split = bytes.len().min(32);
    let mut signed = ENTRY_DOMAIN.as_bytes().to_vec();
    signed.extend_from_slice(&bytes[..split]);
    signed.extend_from_slice(&author.0);
    signed.extend_from_slice(&bytes[split..]);
    let signature = Signature::sign(&key, &signed);
    let payload = wire::encode(&Message::Entry(RawEntry { signed, signature }));
    entry(&payload);
    if let Ok(decoded) = UnverifiedEntry::decode(payload) {
        assert_eq!(decoded.entry().author, author);
        assert!(
            decoded.verify().is_ok(),
            "a correctly signed entry fails to verify"
        );
    }
}

/// Charter reception: decode, structural validation, genesis and successor checks, the
/// rival rule. Also with the input as the charter body signed by the fixed key as steward,
/// so the checks after the signatures run.
pub fn charter(bytes: &[u8]) {
    if let Ok(Message::Charter(raw)) = wire::decode(bytes, MAX_MESSAGE_BYTES) {
        check_charter(raw);
    }
    let key = fixed_key();
    let mut body = CHARTER_DOMAIN.as_bytes().to_vec();
    body.extend_from_slice(bytes);
    let signature = Signature::sign(&key, &body);
    check_charter(RawCharter {
        charter: body,
        signatures: vec![StewardSignature {
            steward: PublicKey::of(&key),
            signature,
        }],
    });
}

fn check_charter(raw: RawCharter) {
    let Ok(charter) = SignedCharter::decode(raw) else {
        return;
    };
    assert!(
        charter.charter().validate().is_ok(),
        "decode let an invalid charter through"
    );
    let _ = charter.verify_genesis(charter.id());
    let _ = charter.verify_successor(&charter);
    assert!(!charter.supersedes(&charter), "a charter supersedes itself");
    // What decodes travels: its payload decodes again to the same charter.
    let payload = charter.to_payload();
    if let Ok(Message::Charter(again)) = wire::decode(&payload, MAX_MESSAGE_BYTES) {
        assert_eq!(SignedCharter::decode(again).ok().as_ref(), Some(&charter));
    }
}
