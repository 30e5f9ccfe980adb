//! Property tests of the wire format: what is encoded decodes to itself, and no byte string
//! makes decoding panic.

#![allow(clippy::unwrap_used)] // tests unwrap what they built themselves

use proptest::prelude::*;
use threatmesh_protocol::bundle::{Bundle, Distribution, Tlp};
use threatmesh_protocol::charter::SignedCharter;
use threatmesh_protocol::entry::{Body, FeedHead, SignedEntry, UnverifiedEntry};
use threatmesh_protocol::item::{
    Confidence, Context, ExternalReference, Indicator, Item, Revocation, RevocationReason, Sighting,
};
use threatmesh_protocol::testing::*;
use threatmesh_protocol::wire::{self, MAX_MESSAGE_BYTES, Message, Request, Response};
use threatmesh_protocol::{Hash, Kind, PublicKey, Timestamp, Value};

fn value() -> impl Strategy<Value = threatmesh_protocol::Value> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(|[a, b, c, d]| Value::parse(
            Kind::Ipv4,
            &format!("{}.{b}.{c}.{d}", a.max(1))
        )
        .unwrap()),
        "[a-z]{1,20}\\.(example|test|org)"
            .prop_map(|name| Value::parse(Kind::Domain, &name).unwrap()),
        any::<[u8; 32]>().prop_map(|digest| Value::parse(
            Kind::Sha256,
            &threatmesh_protocol::crypto::hex_encode(&digest)
        )
        .unwrap()),
    ]
}

fn text() -> impl Strategy<Value = Option<String>> {
    proptest::option::of("\\PC{0,40}")
}

fn item() -> impl Strategy<Value = Item> {
    prop_oneof![
        (
            value(),
            0u8..=100,
            0u64..1 << 40,
            proptest::option::of(1u64..1 << 20),
            proptest::collection::vec("[a-z0-9-]{1,20}", 0..4),
            text(),
            text(),
        )
            .prop_map(
                |(value, confidence, from, span, labels, threat, description)| {
                    Item::Indicator(Indicator {
                        value,
                        confidence: Confidence::new(confidence).unwrap(),
                        valid_from: Timestamp(from),
                        valid_until: span.map(|span| Timestamp(from + span)),
                        labels,
                        context: Context {
                            threat,
                            description,
                            external_references: vec![ExternalReference {
                                source: "cve".into(),
                                external_id: Some("CVE-2024-3400".into()),
                                url: None,
                            }],
                            ..Context::default()
                        },
                    })
                }
            ),
        (value(), text()).prop_map(|(value, note)| Item::Revocation(Revocation {
            value,
            reason: RevocationReason::FalsePositive,
            note,
        })),
        (value(), 1u64..1000, 0u64..1 << 40, 0u64..1 << 20).prop_map(
            |(value, count, first, span)| Item::Sighting(Sighting {
                value,
                count,
                first_seen: Timestamp(first),
                last_seen: Timestamp(first + span),
                note: None,
            })
        ),
    ]
}

fn bundle_strategy() -> impl Strategy<Value = Bundle> {
    (
        prop_oneof![Just(Tlp::Clear), Just(Tlp::Green), Just(Tlp::Amber)],
        proptest::collection::vec(item(), 1..20),
    )
        .prop_map(|(tlp, items)| Bundle {
            tlp,
            distribution: Distribution::Federation,
            items,
        })
}

fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        (any::<[u8; 32]>(), any::<u64>(), any::<u64>(), any::<u32>()).prop_map(
            |(author, from_seq, to_seq, limit)| {
                Message::Request(Request::Range {
                    federation: FEDERATION,
                    author: PublicKey(author),
                    from_seq,
                    to_seq,
                    limit_bytes: limit,
                })
            }
        ),
        any::<[u8; 32]>().prop_map(|federation| Message::Request(Request::Heads {
            federation: Hash(federation),
        })),
        proptest::collection::vec((any::<[u8; 32]>(), any::<u64>(), any::<[u8; 32]>()), 0..10)
            .prop_map(|heads| Message::Response(Response::Heads(
                heads
                    .into_iter()
                    .map(|(author, seq, id)| FeedHead {
                        author: PublicKey(author),
                        seq,
                        id: Hash(id),
                    })
                    .collect()
            ))),
        (
            proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..5),
            any::<bool>()
        )
            .prop_map(|(entries, more)| Message::Response(Response::Range { entries, more })),
        "\\PC{0,50}".prop_map(|reason| Message::Response(Response::Refused(reason))),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn signed_entry_round_trips(bundle in bundle_strategy(), seed in 0u8..8, created in 0u64..1 << 45) {
        let signed = SignedEntry::next(&key(seed), FEDERATION, None, Timestamp(created), Body::Bundle(bundle)).unwrap();
        let opened = SignedEntry::open(signed.payload().to_vec()).unwrap();
        prop_assert_eq!(&opened, &signed);
        prop_assert_eq!(opened.id(), Hash::of(signed.payload()));
    }

    #[test]
    fn message_round_trips(message in message()) {
        let bytes = wire::encode(&message);
        prop_assert_eq!(wire::decode(&bytes, MAX_MESSAGE_BYTES).unwrap(), message);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = wire::decode(&bytes, MAX_MESSAGE_BYTES);
        let _ = wire::decode_gossip(&bytes);
        let _ = UnverifiedEntry::decode(bytes.clone());
        let mut versioned = bytes;
        versioned.insert(0, wire::WIRE_VERSION);
        if let Ok(Message::Charter(raw)) = wire::decode(&versioned, MAX_MESSAGE_BYTES) {
            let _ = SignedCharter::decode(raw);
        }
        let _ = UnverifiedEntry::decode(versioned);
    }

    #[test]
    fn mutated_entries_never_panic_and_never_verify(
        count in 1u32..5,
        mutations in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4),
        cut in proptest::option::of(any::<usize>()),
    ) {
        let signed = SignedEntry::next(&node_key(0), FEDERATION, None, T0, body(count)).unwrap();
        let mut bytes = signed.payload().to_vec();
        for (position, byte) in &mutations {
            let position = position % bytes.len();
            bytes[position] = *byte;
        }
        if let Some(cut) = cut {
            bytes.truncate(cut % (bytes.len() + 1));
        }
        let unchanged = bytes == signed.payload();
        let opened = SignedEntry::open(bytes);
        prop_assert_eq!(opened.is_ok(), unchanged);
    }
}

#[test]
fn wrong_version_and_trailing_bytes_are_named() {
    let bytes = wire::encode(&Message::Request(Request::Heads {
        federation: Hash::of(b"f"),
    }));
    let mut future = bytes.clone();
    future[0] = 9;
    assert!(
        wire::decode(&future, MAX_MESSAGE_BYTES)
            .unwrap_err()
            .to_string()
            .contains("unsupported wire version 9")
    );
    let mut trailing = bytes.clone();
    trailing.push(0);
    assert!(
        wire::decode(&trailing, MAX_MESSAGE_BYTES)
            .unwrap_err()
            .to_string()
            .contains("1 trailing bytes")
    );
    assert!(wire::decode(&[], MAX_MESSAGE_BYTES).is_err());
    assert!(matches!(
        wire::decode_gossip(&bytes),
        Err(wire::DecodeError::Unexpected("request"))
    ));
}

#[test]
fn json_form_of_a_bundle_round_trips() {
    let bundle = bundle(3);
    let json = serde_json::to_string(&bundle).unwrap();
    assert!(json.contains("\"kind\":\"ipv4\""), "{json}");
    let back: Bundle = serde_json::from_str(&json).unwrap();
    assert_eq!(back, bundle);
}

#[test]
fn range_pages_are_clamped_to_what_the_asker_can_decode() {
    assert_eq!(wire::range_limit(1024), 1024);
    assert_eq!(wire::range_limit(u32::MAX), wire::MAX_RANGE_BYTES);
}

#[test]
fn kind_is_read_from_the_first_bytes() {
    let entry = SignedEntry::next(&key(1), FEDERATION, None, T0, body(2)).unwrap();
    let charter = signed(genesis_charter(1), &[0, 1]);
    let request = Message::Request(Request::Heads {
        federation: FEDERATION,
    });
    let response = Message::Response(Response::Refused("no".into()));
    assert_eq!(wire::kind_of(entry.payload()), Some("entry"));
    assert_eq!(wire::kind_of(&charter.to_payload()), Some("charter"));
    assert_eq!(wire::kind_of(&wire::encode(&request)), Some(request.kind()));
    assert_eq!(
        wire::kind_of(&wire::encode(&response)),
        Some(response.kind())
    );
    assert_eq!(wire::kind_of(b"\x09\x00"), None);
    assert_eq!(wire::kind_of(&[]), None);
}
