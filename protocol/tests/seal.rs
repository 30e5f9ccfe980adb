//! Sealed bundles: recipients read them, nobody else does, and any change to the
//! ciphertext, a key slot, the recipient list, the marking or the entry they belong to is
//! detected. Relays verify and decode sealed entries without a key, and no byte string
//! makes that panic.

#![allow(clippy::unwrap_used)] // tests unwrap what they built themselves

use proptest::prelude::*;
use threatmesh_protocol::bundle::{Bundle, Distribution, InvalidBundle, MAX_RECIPIENTS, Tlp};
use threatmesh_protocol::entry::{
    Body, ENTRY_DOMAIN, InvalidEntry, RawEntry, SignedEntry, UnverifiedEntry,
};
use threatmesh_protocol::seal::{
    self, EncryptionSecret, InvalidSealed, OpenError, Recipient, SealContext, SealError, Sealed,
};
use threatmesh_protocol::testing::*;
use threatmesh_protocol::wire::{self, MAX_GOSSIP_BYTES, Message};
use threatmesh_protocol::{Hash, Item, PublicKey, Signature};

/// Organisation `index`: its root key and X25519 secret, seeded.
fn org(index: u8) -> (PublicKey, EncryptionSecret) {
    (
        PublicKey::of(&org_key(index)),
        EncryptionSecret::from_bytes([0x50 + index; 32]),
    )
}

fn recipient(index: u8) -> Recipient {
    let (org, secret) = org(index);
    Recipient {
        org,
        encryption_key: secret.public_key(),
    }
}

fn context() -> SealContext {
    SealContext {
        federation: FEDERATION,
        author: PublicKey::of(&node_key(0)),
        seq: 1,
    }
}

/// A TLP:RED bundle of `count` indicators for organisations 1 and 2.
fn red_bundle(count: u32) -> Bundle {
    Bundle {
        tlp: Tlp::Red,
        distribution: Distribution::Recipients(vec![org(1).0, org(2).0]),
        items: bundle(count).items,
    }
}

/// `red_bundle(count)` sealed for organisations 0 (the publisher), 1 and 2.
fn sealed(count: u32) -> Sealed {
    Sealed::seal(
        &red_bundle(count),
        &[recipient(0), recipient(1), recipient(2)],
        &context(),
        [7; 32],
    )
    .unwrap()
}

fn open_as(sealed: &Sealed, context: &SealContext, index: u8) -> Result<Bundle, OpenError> {
    let (org, secret) = org(index);
    sealed.open(context, &org, &secret)
}

#[test]
fn every_recipient_opens_it_and_no_one_else() {
    let sealed = sealed(10);
    for index in 0..3 {
        assert_eq!(open_as(&sealed, &context(), index).unwrap(), red_bundle(10));
    }
    assert!(matches!(
        open_as(&sealed, &context(), 3),
        Err(OpenError::NotARecipient(org)) if org == self::org(3).0
    ));
    // The marking and the recipients are in the clear; the indicators are not.
    assert_eq!(sealed.tlp, Tlp::Red);
    assert_eq!(sealed.orgs(), vec![org(0).0, org(1).0, org(2).0]);
    let value = red_bundle(10).items[3].value().as_str().to_owned();
    let ciphertext = String::from_utf8_lossy(&sealed.ciphertext).into_owned();
    assert!(!ciphertext.contains(&value));
}

#[test]
fn a_wrong_or_rotated_key_does_not_open_a_slot() {
    let sealed = sealed(3);
    let (org1, _) = org(1);
    let rotated = EncryptionSecret::from_bytes([0x99; 32]);
    assert!(matches!(
        sealed.open(&context(), &org1, &rotated),
        Err(OpenError::KeySlot(org)) if org == org1
    ));
    // Organisation 2's key on organisation 1's slot.
    assert!(matches!(
        sealed.open(&context(), &org1, &org(2).1),
        Err(OpenError::KeySlot(_))
    ));
}

#[test]
fn tampered_ciphertext_is_detected() {
    let original = sealed(5);
    for position in [
        0,
        original.ciphertext.len() / 2,
        original.ciphertext.len() - 1,
    ] {
        let mut tampered = original.clone();
        tampered.ciphertext[position] ^= 0x01;
        assert!(matches!(
            open_as(&tampered, &context(), 1),
            Err(OpenError::Ciphertext)
        ));
    }
    let mut cut = original.clone();
    cut.ciphertext.truncate(cut.ciphertext.len() - 1);
    assert!(matches!(
        open_as(&cut, &context(), 1),
        Err(OpenError::Ciphertext)
    ));
}

#[test]
fn tampered_key_slot_is_detected() {
    let original = sealed(5);
    let mut wrapped = original.clone();
    wrapped.slots[1].wrapped[0] ^= 0x80;
    assert!(matches!(
        open_as(&wrapped, &context(), 1),
        Err(OpenError::KeySlot(_))
    ));
    // The other recipients' slots are untouched.
    assert!(open_as(&wrapped, &context(), 2).is_ok());

    let mut encapped = original.clone();
    encapped.slots[1].encapped[5] ^= 0x01;
    assert!(matches!(
        open_as(&encapped, &context(), 1),
        Err(OpenError::KeySlot(_))
    ));

    // Organisation 2's slot relabelled as organisation 1's.
    let mut swapped = original.clone();
    swapped.slots[1].encapped = original.slots[2].encapped;
    swapped.slots[1].wrapped = original.slots[2].wrapped;
    assert!(matches!(
        open_as(&swapped, &context(), 1),
        Err(OpenError::KeySlot(_))
    ));
}

#[test]
fn tampered_recipient_list_or_marking_is_detected() {
    let original = sealed(5);
    // A recipient dropped: the others no longer open it.
    let mut dropped = original.clone();
    dropped.slots.remove(2);
    assert!(matches!(
        open_as(&dropped, &context(), 1),
        Err(OpenError::KeySlot(_))
    ));
    // Reordered.
    let mut reordered = original.clone();
    reordered.slots.swap(0, 2);
    assert!(matches!(
        open_as(&reordered, &context(), 1),
        Err(OpenError::KeySlot(_))
    ));
    // A slot added (copied from another sealed body for organisation 3).
    let mut added = original.clone();
    let other = Sealed::seal(&bundle(1), &[recipient(3)], &context(), [8; 32]).unwrap();
    added.slots.push(other.slots[0].clone());
    assert!(matches!(
        open_as(&added, &context(), 1),
        Err(OpenError::KeySlot(_))
    ));
    assert!(open_as(&added, &context(), 3).is_err());
    // The marking in the clear lowered.
    let mut lowered = original.clone();
    lowered.tlp = Tlp::Green;
    assert!(matches!(
        open_as(&lowered, &context(), 1),
        Err(OpenError::KeySlot(_))
    ));
}

#[test]
fn a_sealed_body_moved_to_another_entry_does_not_open() {
    let sealed = sealed(5);
    let others = [
        SealContext {
            seq: 2,
            ..context()
        },
        SealContext {
            author: PublicKey::of(&node_key(1)),
            ..context()
        },
        SealContext {
            federation: Hash([0xab; 32]),
            ..context()
        },
    ];
    for other in others {
        assert!(matches!(
            open_as(&sealed, &other, 1),
            Err(OpenError::KeySlot(_))
        ));
    }
    // And the content of one body under the slots of another (same recipients).
    let second = Sealed::seal(
        &red_bundle(6),
        &[recipient(0), recipient(1), recipient(2)],
        &context(),
        [9; 32],
    )
    .unwrap();
    let mut spliced = second.clone();
    spliced.ciphertext = sealed.ciphertext.clone();
    assert!(matches!(
        open_as(&spliced, &context(), 1),
        Err(OpenError::Ciphertext)
    ));
}

#[test]
fn sealing_checks_its_inputs() {
    let bundle = red_bundle(2);
    assert!(matches!(
        Sealed::seal(&bundle, &[], &context(), [1; 32]),
        Err(SealError::Recipients(InvalidSealed::NoSlots))
    ));
    assert!(matches!(
        Sealed::seal(
            &bundle,
            &[recipient(1), recipient(2), recipient(1)],
            &context(),
            [1; 32]
        ),
        Err(SealError::Recipients(InvalidSealed::DuplicateSlot(_)))
    ));
    // Organisation 2 is named in the bundle but given no slot.
    assert!(matches!(
        Sealed::seal(&bundle, &[recipient(0), recipient(1)], &context(), [1; 32]),
        Err(SealError::Unslotted(org)) if org == self::org(2).0
    ));
    let empty = Bundle {
        items: Vec::new(),
        ..red_bundle(1)
    };
    assert!(matches!(
        Sealed::seal(&empty, &[recipient(1), recipient(2)], &context(), [1; 32]),
        Err(SealError::Bundle(InvalidBundle::Empty))
    ));
    let too_many: Vec<Recipient> = (0..=MAX_RECIPIENTS)
        .map(|i| Recipient {
            org: {
                let mut bytes = [1u8; 32];
                bytes[..8].copy_from_slice(&u64::try_from(i).unwrap().to_be_bytes());
                PublicKey(bytes)
            },
            encryption_key: recipient(0).encryption_key,
        })
        .collect();
    assert!(matches!(
        Sealed::seal(&red_bundle(1), &too_many, &context(), [1; 32]),
        Err(SealError::Recipients(InvalidSealed::TooManySlots(_)))
    ));
}

#[test]
fn the_same_random_bytes_never_reuse_a_key_for_other_content() {
    let recipients = [recipient(0), recipient(1), recipient(2)];
    let a = Sealed::seal(&red_bundle(3), &recipients, &context(), [5; 32]).unwrap();
    let again = Sealed::seal(&red_bundle(3), &recipients, &context(), [5; 32]).unwrap();
    // Deterministic for tests...
    assert_eq!(a, again);
    // ...but other content, or another entry, gets other keys even from the same bytes.
    let b = Sealed::seal(&red_bundle(4), &recipients, &context(), [5; 32]).unwrap();
    assert_ne!(a.slots[0].encapped, b.slots[0].encapped);
    let next = SealContext {
        seq: 2,
        ..context()
    };
    let c = Sealed::seal(&red_bundle(3), &recipients, &next, [5; 32]).unwrap();
    assert_ne!(a.slots[0].encapped, c.slots[0].encapped);
    let fresh = Sealed::seal(&red_bundle(3), &recipients, &context(), [6; 32]).unwrap();
    assert_ne!(a.ciphertext, fresh.ciphertext);
}

#[test]
fn relays_verify_a_sealed_entry_without_reading_it() {
    let body = Body::Sealed(sealed(20));
    let signed = SignedEntry::next(&node_key(0), FEDERATION, None, T0, body).unwrap();
    let received = UnverifiedEntry::decode(signed.payload().to_vec())
        .unwrap()
        .verify()
        .unwrap();
    assert_eq!(received, signed);
    let Body::Sealed(sealed) = &received.entry().body else {
        panic!("a sealed body");
    };
    let opened = sealed
        .open(&SealContext::of(received.entry()), &org(2).0, &org(2).1)
        .unwrap();
    assert_eq!(opened, red_bundle(20));
    // Its JSON form shows bytes as hex and reads back.
    let json = serde_json::to_string(received.entry()).unwrap();
    assert!(json.contains("\"sealed\""), "{json}");
    let back: threatmesh_protocol::Entry = serde_json::from_str(&json).unwrap();
    assert_eq!(&back, received.entry());
}

#[test]
fn structurally_broken_sealed_entries_are_refused() {
    let mut no_slots = sealed(1);
    no_slots.slots.clear();
    let mut duplicate = sealed(1);
    duplicate.slots.push(duplicate.slots[0].clone());
    let mut short = sealed(1);
    short.ciphertext.truncate(3);
    for (body, expected) in [
        (no_slots, InvalidSealed::NoSlots),
        (duplicate, InvalidSealed::DuplicateSlot(org(0).0)),
        (short, InvalidSealed::ShortCiphertext(3)),
    ] {
        let error =
            SignedEntry::next(&node_key(0), FEDERATION, None, T0, Body::Sealed(body)).unwrap_err();
        assert!(
            matches!(&error, threatmesh_protocol::entry::SignError::Invalid(InvalidEntry::Sealed(found)) if *found == expected),
            "{error}"
        );
    }
}

#[test]
fn restricted_content_is_still_refused_in_the_clear() {
    let error = SignedEntry::next(
        &node_key(0),
        FEDERATION,
        None,
        T0,
        Body::Bundle(red_bundle(1)),
    )
    .unwrap_err();
    assert!(error.to_string().contains("must be sealed"), "{error}");
}

#[test]
fn a_full_split_bundle_sealed_for_the_most_recipients_fits_gossip() {
    let recipients: Vec<Recipient> = (0..MAX_RECIPIENTS)
        .map(|i| {
            let index = u8::try_from(i).unwrap();
            let org = PublicKey::of(&threatmesh_protocol::SigningKey::from_bytes(&[index; 32]));
            Recipient {
                org,
                encryption_key: EncryptionSecret::from_bytes([index; 32]).public_key(),
            }
        })
        .collect();
    // Items of about 80 bytes, so the split stops at the byte limit, not the item limit.
    let items = (0..20_000)
        .map(|n| {
            let Item::Indicator(mut indicator) = indicator(n) else {
                unreachable!("indicator() makes indicators")
            };
            indicator.labels = vec![format!("campaign-{n:040}")];
            Item::Indicator(indicator)
        })
        .collect();
    let max_bytes = seal::max_bundle_bytes(recipients.len());
    let bundles =
        Bundle::split(Tlp::AmberStrict, Distribution::Federation, items, max_bytes).unwrap();
    assert!(bundles.len() > 1, "the items fill more than one entry");
    let sealed = Sealed::seal(&bundles[0], &recipients, &context(), [3; 32]).unwrap();
    let signed =
        SignedEntry::next(&node_key(0), FEDERATION, None, T0, Body::Sealed(sealed)).unwrap();
    assert!(signed.payload().len() <= MAX_GOSSIP_BYTES);
    assert!(
        signed.payload().len() > MAX_GOSSIP_BYTES - 16 * 1024,
        "the split fills the entry: {} bytes",
        signed.payload().len()
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Any change to a sealed entry's bytes: it never panics, never verifies, and (decoded
    /// without the signature, as a careless reader might) never opens to other content.
    #[test]
    fn mutated_sealed_entries_never_panic_verify_or_open_differently(
        mutations in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4),
        cut in proptest::option::of(any::<usize>()),
    ) {
        let signed = SignedEntry::next(&node_key(0), FEDERATION, None, T0, Body::Sealed(sealed(3))).unwrap();
        let mut bytes = signed.payload().to_vec();
        for (position, byte) in &mutations {
            let position = position % bytes.len();
            bytes[position] = *byte;
        }
        if let Some(cut) = cut {
            bytes.truncate(cut % (bytes.len() + 1));
        }
        let unchanged = bytes == signed.payload();
        prop_assert_eq!(SignedEntry::open(bytes.clone()).is_ok(), unchanged);
        if let Ok(entry) = UnverifiedEntry::decode(bytes)
            && let Body::Sealed(sealed) = &entry.entry().body
        {
            for index in 0..4 {
                if let Ok(bundle) = open_as(sealed, &SealContext::of(entry.entry()), index) {
                    prop_assert_eq!(bundle, red_bundle(3));
                }
            }
        }
    }

    /// Arbitrary bytes as a sealed body behind a valid header decode to an error or a
    /// value, never a panic.
    #[test]
    fn arbitrary_sealed_bodies_never_panic(tail in proptest::collection::vec(any::<u8>(), 0..400)) {
        let header = (FEDERATION, PublicKey::of(&node_key(0)), 1u64, Option::<Hash>::None, T0);
        let mut signed = wire::encode_signed(ENTRY_DOMAIN, &header);
        signed.push(1); // Body::Sealed
        signed.extend_from_slice(&tail);
        let payload = wire::encode(&Message::Entry(RawEntry { signed, signature: Signature([0; 64]) }));
        if let Ok(entry) = UnverifiedEntry::decode(payload) {
            prop_assert!(matches!(entry.entry().body, Body::Sealed(_)));
            prop_assert!(entry.verify().is_err());
        }
    }
}
