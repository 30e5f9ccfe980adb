//! A short run of every protocol fuzz target (`protocol/fuzz`) on stable Rust, so CI
//! exercises them without nightly or cargo-fuzz: the targets' own bodies, fed valid
//! messages and a few thousand deterministic mutations and random inputs each. The real
//! fuzzing is `scripts/fuzz`.

#![allow(clippy::unwrap_used)] // tests unwrap what they built themselves

#[allow(dead_code, unreachable_pub)]
#[path = "../fuzz/targets.rs"]
mod targets;

#[allow(dead_code, unreachable_pub, clippy::cast_possible_truncation)]
#[path = "../fuzz/smoke.rs"]
mod smoke;

use threatmesh_protocol::SignedEntry;
use threatmesh_protocol::bundle::{Bundle, Distribution, Tlp};
use threatmesh_protocol::entry::Body;
use threatmesh_protocol::item::{Item, Revocation, RevocationReason, Sighting};
use threatmesh_protocol::testing::*;
use threatmesh_protocol::wire::{self, Message, Request, Response};
use threatmesh_protocol::{Kind, Value};

const INPUTS: usize = 3_000;

/// Valid gossip payloads of entries: several kinds of value and every kind of item.
fn entries() -> Vec<Vec<u8>> {
    let values = [
        (Kind::Ipv4, "198.51.100.7"),
        (Kind::Domain, "evil.example"),
        (Kind::Url, "http://evil.example/gate.php?a=1"),
        (Kind::Sha256, &"ab".repeat(32)),
        (Kind::Cve, "CVE-2024-12345"),
        (Kind::Email, "a@evil.example"),
        (Kind::Cidr, "10.0.0.0/8"),
    ];
    let mut items: Vec<Item> = values
        .iter()
        .map(|(kind, text)| {
            Item::Indicator(threatmesh_protocol::Indicator::new(
                Value::parse(*kind, text).unwrap(),
                T0,
            ))
        })
        .collect();
    let value = Value::parse(Kind::Ipv4, "198.51.100.7").unwrap();
    items.push(Item::Revocation(Revocation {
        value: value.clone(),
        reason: RevocationReason::FalsePositive,
        note: Some("mistake".into()),
    }));
    items.push(Item::Sighting(Sighting {
        value,
        count: 3,
        first_seen: T0,
        last_seen: at(60),
        note: None,
    }));
    let first = SignedEntry::next(&node_key(0), FEDERATION, None, T0, body(3)).unwrap();
    let second = SignedEntry::next(
        &node_key(0),
        FEDERATION,
        Some(&first.head()),
        at(1),
        Body::Bundle(Bundle {
            tlp: Tlp::Amber,
            distribution: Distribution::Federation,
            items,
        }),
    )
    .unwrap();
    vec![first.payload().to_vec(), second.payload().to_vec()]
}

fn charters() -> Vec<Vec<u8>> {
    let genesis = signed(genesis_charter(3), &[0, 1]);
    let next = signed(
        successor(&genesis, |charter| charter.members.pop().map(drop).unwrap()),
        &[1, 2],
    );
    vec![genesis.to_payload(), next.to_payload()]
}

fn sync_messages() -> Vec<Vec<u8>> {
    let entries = entries();
    [
        Message::Request(Request::Heads {
            federation: FEDERATION,
        }),
        Message::Request(Request::Range {
            federation: FEDERATION,
            author: public(20),
            from_seq: 1,
            to_seq: 9,
            limit_bytes: 1 << 20,
        }),
        Message::Response(Response::Range {
            entries,
            more: true,
        }),
        Message::Response(Response::Refused("busy".into())),
    ]
    .iter()
    .map(wire::encode)
    .collect()
}

#[test]
fn wire_target_survives_mutated_messages() {
    let seeds = [entries(), charters(), sync_messages()].concat();
    smoke::run(&seeds, INPUTS, 1, targets::wire);
}

#[test]
fn entry_target_survives_mutated_entries() {
    smoke::run(&entries(), INPUTS, 2, targets::entry);
}

/// Entries' encodings without the domain tag and with the author cut out: the
/// `signed_entry` target signs what it is given and puts its own key there.
fn signed_entry_seeds() -> Vec<Vec<u8>> {
    entries()
        .into_iter()
        .map(|payload| {
            let Ok(Message::Entry(raw)) = wire::decode_gossip(&payload) else {
                panic!("not an entry");
            };
            let body = &raw.signed[threatmesh_protocol::entry::ENTRY_DOMAIN.len()..];
            [&body[..32], &body[64..]].concat()
        })
        .collect()
}

/// Charter bodies without the domain tag, for the `charter` target's signed half.
fn charter_bodies() -> Vec<Vec<u8>> {
    charters()
        .into_iter()
        .map(|payload| {
            let Ok(Message::Charter(raw)) = wire::decode_gossip(&payload) else {
                panic!("not a charter");
            };
            raw.charter[threatmesh_protocol::charter::CHARTER_DOMAIN.len()..].to_vec()
        })
        .collect()
}

#[test]
fn signed_entry_target_survives_mutated_entry_bodies() {
    smoke::run(&signed_entry_seeds(), INPUTS, 3, targets::signed_entry);
}

#[test]
fn charter_target_survives_mutated_charters() {
    let seeds = [charters(), charter_bodies()].concat();
    smoke::run(&seeds, INPUTS, 4, targets::charter);
}

/// Writes the seed inputs above as a corpus for the cargo-fuzz targets, one directory per
/// target under `$THREATMESH_FUZZ_SEEDS`. Run by `scripts/fuzz`; checks nothing itself.
#[test]
#[ignore = "run by scripts/fuzz to seed the fuzzers' corpora"]
fn write_seed_corpus() {
    let Some(dir) = std::env::var_os("THREATMESH_FUZZ_SEEDS") else {
        panic!("set THREATMESH_FUZZ_SEEDS to the directory to write seeds into");
    };
    let dir = std::path::PathBuf::from(dir);
    let signed_entries = signed_entry_seeds();
    let mut charter_seeds = charters();
    charter_seeds.extend(charter_bodies());
    let corpora = [
        ("wire", [entries(), charters(), sync_messages()].concat()),
        ("entry", entries()),
        ("signed_entry", signed_entries),
        ("charter", charter_seeds),
    ];
    for (target, seeds) in corpora {
        let target_dir = dir.join(target);
        std::fs::create_dir_all(&target_dir).unwrap();
        for (index, seed) in seeds.iter().enumerate() {
            std::fs::write(target_dir.join(format!("seed-{index}")), seed).unwrap();
        }
    }
}

/// Found by `scripts/fuzz` (target `wire`): a variant tag spelled as a 4-byte varint
/// (`0xfc 00 00 00 00`) decodes as an entry, but `kind_of` said it was no message at all.
#[test]
fn wire_regression_wide_varint_variant_tag() {
    let mut bytes = vec![0x01, 0xfc];
    bytes.extend_from_slice(&[0; 69]);
    assert_eq!(wire::kind_of(&bytes), Some("entry"));
    targets::wire(&bytes);
    // The same for every spelling of tag 1, a charter.
    for prefix in [
        &[0xfb, 1, 0][..],
        &[0xfc, 1, 0, 0, 0],
        &[0xfd, 1, 0, 0, 0, 0, 0, 0, 0],
    ] {
        let bytes = [&[0x01][..], prefix].concat();
        assert_eq!(wire::kind_of(&bytes), Some("charter"));
    }
}
