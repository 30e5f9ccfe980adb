//! Signed entries: signing, verification, tampering, chains, equivocation, size limits.

#![allow(clippy::unwrap_used)] // tests unwrap what they built themselves

use std::time::Duration;

use threatmesh_protocol::bundle::{Bundle, Distribution, InvalidBundle, Tlp};
use threatmesh_protocol::entry::{
    Body, ChainError, Entry, EntryError, InvalidEntry, MAX_BUNDLE_BYTES, OpenError, SignError,
    SignedEntry, UnverifiedEntry, verify_batch,
};
use threatmesh_protocol::testing::*;
use threatmesh_protocol::wire::{self, DecodeError, MAX_GOSSIP_BYTES, Message};
use threatmesh_protocol::{Hash, PublicKey, Timestamp};

fn first_entry(count: u32) -> SignedEntry {
    SignedEntry::next(&node_key(0), FEDERATION, None, T0, body(count)).unwrap()
}

#[test]
fn signed_entry_opens_to_the_same_entry_and_id() {
    let signed = first_entry(3);
    let opened = SignedEntry::open(signed.payload().to_vec()).unwrap();
    assert_eq!(opened, signed);
    assert_eq!(opened.id(), Hash::of(signed.payload()));
    assert_eq!(opened.entry().seq, 1);
    assert_eq!(opened.entry().prev, None);
    assert_eq!(opened.entry().author, PublicKey::of(&node_key(0)));
}

#[test]
fn flipping_any_byte_of_an_entry_is_detected() {
    let signed = first_entry(2);
    let payload = signed.payload();
    for position in 0..payload.len() {
        for flip in [0x01u8, 0x80] {
            let mut tampered = payload.to_vec();
            tampered[position] ^= flip;
            // Either it no longer decodes, or it decodes to something whose signature fails.
            // It must never open, and never to the original id.
            assert!(
                SignedEntry::open(tampered).is_err(),
                "flipping bit {flip:#x} of byte {position} went unnoticed"
            );
        }
    }
}

#[test]
fn entry_signed_by_another_key_is_rejected() {
    let signed = first_entry(1);
    let Message::Entry(mut raw) = wire::decode(signed.payload(), MAX_GOSSIP_BYTES).unwrap() else {
        panic!("not an entry");
    };
    // Re-sign the same bytes with another node's key: the entry still names node 0.
    raw.signature = threatmesh_protocol::Signature::sign(&node_key(1), &raw.signed);
    let payload = wire::encode(&Message::Entry(raw));
    assert!(matches!(
        SignedEntry::open(payload),
        Err(OpenError::Signature(_))
    ));
}

#[test]
fn signing_with_a_key_that_is_not_the_author_fails() {
    let entry = Entry {
        federation: FEDERATION,
        author: PublicKey::of(&node_key(0)),
        seq: 1,
        prev: None,
        created: T0,
        body: body(1),
    };
    assert!(matches!(
        SignedEntry::sign(&node_key(1), entry),
        Err(SignError::WrongKey { .. })
    ));
}

#[test]
fn next_entry_follows_its_head() {
    let first = first_entry(1);
    let second = SignedEntry::next(
        &node_key(0),
        FEDERATION,
        Some(&first.head()),
        at(1),
        body(1),
    )
    .unwrap();
    assert_eq!(second.entry().seq, 2);
    assert_eq!(second.entry().prev, Some(first.id()));
    assert_eq!(second.follows(&first.head()), Ok(()));
}

#[test]
fn broken_chain_is_detected() {
    let first = first_entry(1);
    let second = SignedEntry::next(
        &node_key(0),
        FEDERATION,
        Some(&first.head()),
        at(1),
        body(1),
    )
    .unwrap();
    let third = SignedEntry::next(
        &node_key(0),
        FEDERATION,
        Some(&second.head()),
        at(2),
        body(1),
    )
    .unwrap();

    // Skipping an entry.
    assert!(matches!(
        third.follows(&first.head()),
        Err(ChainError::Seq {
            seq: 3,
            expected: 2
        })
    ));
    // Right seq, wrong previous id.
    let mut forged_head = first.head();
    forged_head.id = Hash::of(b"another entry");
    assert!(matches!(
        second.follows(&forged_head),
        Err(ChainError::Prev { seq: 2, .. })
    ));
    // Another author's feed.
    let other = SignedEntry::next(&node_key(1), FEDERATION, None, T0, body(1)).unwrap();
    assert!(matches!(
        second.follows(&other.head()),
        Err(ChainError::OtherAuthor { .. })
    ));
}

#[test]
fn seq_and_prev_rules_are_enforced() {
    let author = PublicKey::of(&node_key(0));
    let mut entry = Entry {
        federation: FEDERATION,
        author,
        seq: 0,
        prev: None,
        created: T0,
        body: body(1),
    };
    assert_eq!(entry.validate(), Err(InvalidEntry::ZeroSeq));
    entry.seq = 2;
    assert_eq!(entry.validate(), Err(InvalidEntry::BadPrev { seq: 2 }));
    entry.seq = u64::MAX;
    entry.prev = Some(Hash::of(b"x"));
    assert_eq!(entry.validate(), Err(InvalidEntry::SeqTooLarge(u64::MAX)));
    entry.prev = None;
    entry.seq = 1;
    entry.prev = Some(Hash::of(b"x"));
    assert_eq!(entry.validate(), Err(InvalidEntry::BadPrev { seq: 1 }));
}

#[test]
fn two_entries_with_the_same_seq_prove_equivocation() {
    let first = first_entry(1);
    let twin = SignedEntry::next(&node_key(0), FEDERATION, None, at(5), body(2)).unwrap();
    assert!(twin.equivocates(&first.head()));
    assert!(first.equivocates(&twin.head()));
    assert!(
        !first.equivocates(&first.head()),
        "an entry does not equivocate with itself"
    );
    let next = SignedEntry::next(
        &node_key(0),
        FEDERATION,
        Some(&first.head()),
        at(1),
        body(1),
    )
    .unwrap();
    assert!(!next.equivocates(&first.head()));
}

#[test]
fn restricted_bundles_are_refused_in_the_clear() {
    for (tlp, distribution) in [
        (Tlp::Red, Distribution::Federation),
        (Tlp::AmberStrict, Distribution::Federation),
        (Tlp::Green, Distribution::Recipients(vec![public(1)])),
    ] {
        let body = Body::Bundle(Bundle {
            tlp,
            distribution,
            items: bundle(1).items,
        });
        let result = SignedEntry::next(&node_key(0), FEDERATION, None, T0, body);
        assert!(
            matches!(
                result,
                Err(SignError::Invalid(InvalidEntry::Bundle(
                    InvalidBundle::RestrictedInClear { .. }
                )))
            ),
            "{tlp} went out in the clear"
        );
    }
}

#[test]
fn empty_bundle_is_refused() {
    let body = Body::Bundle(Bundle {
        tlp: Tlp::Clear,
        distribution: Distribution::Federation,
        items: vec![],
    });
    assert!(matches!(
        SignedEntry::next(&node_key(0), FEDERATION, None, T0, body),
        Err(SignError::Invalid(InvalidEntry::Bundle(
            InvalidBundle::Empty
        )))
    ));
}

#[test]
fn entry_from_the_future_is_recognised() {
    let entry = first_entry(1);
    let tolerance = Duration::from_secs(300);
    assert!(!entry.entry().is_from_future(T0, tolerance));
    assert!(
        !entry
            .entry()
            .is_from_future(Timestamp(T0.0 - 300_000), tolerance)
    );
    assert!(
        entry
            .entry()
            .is_from_future(Timestamp(T0.0 - 300_001), tolerance)
    );
}

/// A bundle of `count` indicators carrying `padding` bytes of description, to hit sizes.
fn padded_body(count: u32, padding: usize) -> Body {
    let mut bundle = bundle(count);
    let mut remaining = padding;
    for item in &mut bundle.items {
        let threatmesh_protocol::Item::Indicator(indicator) = item else {
            unreachable!()
        };
        let take = remaining.min(4096);
        indicator.context.description = Some("x".repeat(take));
        remaining -= take;
    }
    Body::Bundle(bundle)
}

#[test]
fn entries_at_and_around_the_gossip_limit() {
    // Grow the padding until signing fails for size: the last success is at the limit.
    let count = 200;
    let base = SignedEntry::next(&node_key(0), FEDERATION, None, T0, padded_body(count, 0))
        .unwrap()
        .payload()
        .len();
    // Binary search for the most padding that still signs: the entry at the limit.
    let sign = |padding| {
        SignedEntry::next(
            &node_key(0),
            FEDERATION,
            None,
            T0,
            padded_body(count, padding),
        )
    };
    let (mut fits, mut too_big) = (0, MAX_GOSSIP_BYTES - base + 64);
    while too_big - fits > 1 {
        let middle = (fits + too_big) / 2;
        match sign(middle) {
            Ok(_) => fits = middle,
            Err(SignError::TooLarge { len }) => {
                assert!(len > MAX_GOSSIP_BYTES);
                too_big = middle;
            }
            Err(other) => panic!("unexpected {other}"),
        }
    }
    let padding = fits;
    let largest = sign(padding).unwrap();
    assert!(largest.payload().len() <= MAX_GOSSIP_BYTES);
    assert!(largest.payload().len() > MAX_GOSSIP_BYTES - 8);
    // What signs, opens.
    SignedEntry::open(largest.payload().to_vec()).unwrap();
    // One byte more does not sign, and a payload over the limit does not decode.
    assert!(matches!(
        SignedEntry::next(
            &node_key(0),
            FEDERATION,
            None,
            T0,
            padded_body(count, padding + 64)
        ),
        Err(SignError::TooLarge { .. })
    ));
    let mut oversized = largest.payload().to_vec();
    oversized.extend_from_slice(&[0; 64]);
    assert!(matches!(
        UnverifiedEntry::decode(oversized),
        Err(EntryError::Decode(DecodeError::TooLarge { .. }))
    ));
}

#[test]
fn non_canonical_payload_is_refused() {
    let signed = first_entry(1);
    let Message::Entry(raw) = wire::decode(signed.payload(), MAX_GOSSIP_BYTES).unwrap() else {
        panic!("not an entry");
    };
    // Re-spell the length of the signed bytes as a 3-byte varint (251 = u16 follows).
    let len = u16::try_from(raw.signed.len()).unwrap();
    let mut respelt = vec![wire::WIRE_VERSION, 0, 251];
    respelt.extend_from_slice(&len.to_le_bytes());
    respelt.extend_from_slice(&raw.signed);
    respelt.extend_from_slice(&raw.signature.0);
    // It is the same message...
    assert_eq!(
        wire::decode(&respelt, MAX_GOSSIP_BYTES).unwrap(),
        Message::Entry(raw)
    );
    // ...but only one spelling is an entry, so the id cannot be re-shaped.
    assert!(
        len < 251,
        "the canonical spelling of this length is one byte"
    );
    assert!(matches!(
        UnverifiedEntry::decode(respelt),
        Err(EntryError::Decode(DecodeError::NonCanonical))
    ));
}

#[test]
fn batch_verification_accepts_good_and_rejects_one_bad() {
    let entries: Vec<_> = (0..10u8)
        .map(|i| {
            let signed = SignedEntry::next(&node_key(i), FEDERATION, None, T0, body(5)).unwrap();
            UnverifiedEntry::decode(signed.into_payload()).unwrap()
        })
        .collect();
    assert!(verify_batch(&entries).is_ok());

    let mut tampered = entries.clone();
    let victim = SignedEntry::next(&node_key(0), FEDERATION, None, T0, body(5)).unwrap();
    let Message::Entry(mut raw) = wire::decode(victim.payload(), MAX_GOSSIP_BYTES).unwrap() else {
        panic!("not an entry");
    };
    raw.signature.0[10] ^= 1;
    tampered[3] = UnverifiedEntry::decode(wire::encode(&Message::Entry(raw))).unwrap();
    assert!(verify_batch(&tampered).is_err());
}

#[test]
fn large_imports_split_into_entries_under_the_limit() {
    // 30,000 indicators with descriptions: far more than one entry holds.
    let items: Vec<_> = (0..30_000u32)
        .map(|n| {
            let mut item = indicator(n);
            if let threatmesh_protocol::Item::Indicator(indicator) = &mut item {
                indicator.context.description = Some(format!("C2 server number {n}"));
            }
            item
        })
        .collect();
    let bundles = Bundle::split(
        Tlp::Amber,
        Distribution::Federation,
        items.clone(),
        MAX_BUNDLE_BYTES,
    )
    .unwrap();
    assert!(bundles.len() > 1);
    // Order and content are kept.
    let rejoined: Vec<_> = bundles.iter().flat_map(|b| b.items.clone()).collect();
    assert_eq!(rejoined, items);
    // Every bundle signs into an entry under the gossip limit, and all but the last are
    // reasonably full.
    let mut head = None;
    for (index, bundle) in bundles.iter().enumerate() {
        assert!(bundle.items.len() <= threatmesh_protocol::bundle::MAX_ITEMS_PER_BUNDLE);
        let entry = SignedEntry::next(
            &node_key(0),
            FEDERATION,
            head.as_ref(),
            T0,
            Body::Bundle(bundle.clone()),
        )
        .unwrap();
        assert!(entry.payload().len() <= MAX_GOSSIP_BYTES);
        if index + 1 < bundles.len() {
            assert!(
                entry.payload().len() > MAX_GOSSIP_BYTES / 2
                    || bundle.items.len() == threatmesh_protocol::bundle::MAX_ITEMS_PER_BUNDLE
            );
        }
        head = Some(entry.head());
    }
}

#[test]
fn item_larger_than_a_bundle_is_named() {
    let error =
        Bundle::split(Tlp::Green, Distribution::Federation, bundle(3).items, 16).unwrap_err();
    assert_eq!(error.index, 0);
    assert!(error.to_string().contains("ipv4:1.0.0.0"), "{error}");
}

#[test]
fn confidence_above_100_from_the_wire_is_refused() {
    // Build the signed bytes by hand: the type itself cannot hold 250.
    let signed = first_entry(1);
    let Message::Entry(raw) = wire::decode(signed.payload(), MAX_GOSSIP_BYTES).unwrap() else {
        panic!("not an entry");
    };
    // The confidence byte follows the ipv4 value "1.0.0.0" and is 50 (the default).
    let value_end = raw
        .signed
        .windows(7)
        .position(|window| window == b"1.0.0.0")
        .unwrap()
        + 7;
    assert_eq!(raw.signed[value_end], 50);
    let mut forged = raw.signed.clone();
    forged[value_end] = 250;
    let key = node_key(0);
    let raw = threatmesh_protocol::entry::RawEntry {
        signature: threatmesh_protocol::Signature::sign(&key, &forged),
        signed: forged,
    };
    let error = UnverifiedEntry::decode(wire::encode(&Message::Entry(raw))).unwrap_err();
    assert!(error.to_string().contains("confidence 250"), "{error}");
}

#[test]
fn header_is_read_without_the_body() {
    let first = first_entry(3);
    let second = SignedEntry::next(
        &node_key(0),
        FEDERATION,
        Some(&first.head()),
        at(9),
        body(2),
    )
    .unwrap();
    let header = threatmesh_protocol::entry::EntryHeader::peek(second.payload()).unwrap();
    let entry = second.entry();
    assert_eq!(
        (
            header.federation,
            header.author,
            header.seq,
            header.prev,
            header.created
        ),
        (
            entry.federation,
            entry.author,
            entry.seq,
            entry.prev,
            entry.created
        )
    );
    assert!(threatmesh_protocol::entry::EntryHeader::peek(b"\x01garbage").is_err());
}

#[test]
fn entries_name_their_federation_under_the_signature() {
    let here = first_entry(1);
    let elsewhere = SignedEntry::next(&node_key(0), Hash([1; 32]), None, T0, body(1)).unwrap();
    assert_eq!(here.entry().federation, FEDERATION);
    assert_ne!(
        here.id(),
        elsewhere.id(),
        "the same content in two federations differs"
    );
}
