//! Fixtures shared by the protocol's integration tests: seeded keys, sample bundles, and a
//! small federation charter.

#![allow(dead_code, unreachable_pub)]

use threatmesh_protocol::bundle::{Bundle, Distribution, Tlp};
use threatmesh_protocol::charter::{
    Charter, Member, NodeCertificate, Roles, SignedCharter, Status,
};
use threatmesh_protocol::entry::Body;
use threatmesh_protocol::item::{Indicator, Item};
use threatmesh_protocol::{Hash, Kind, PublicKey, SigningKey, Timestamp, Value};

/// A key derived from a seed, so failures reproduce.
pub fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

pub fn public(seed: u8) -> PublicKey {
    PublicKey::of(&key(seed))
}

pub const T0: Timestamp = Timestamp(1_700_000_000_000);

/// The federation test entries are published in.
pub const FEDERATION: Hash = Hash([0xfe; 32]);

pub fn at(offset_secs: u64) -> Timestamp {
    Timestamp(T0.0 + offset_secs * 1000)
}

/// An ipv4 indicator for `n`.
pub fn indicator(n: u32) -> Item {
    let [a, b, c, d] = n.to_be_bytes();
    let value = Value::parse(Kind::Ipv4, &format!("{}.{b}.{c}.{d}", a.max(1))).unwrap();
    Item::Indicator(Indicator::new(value, T0))
}

/// A TLP:GREEN bundle for the federation with `count` indicators.
pub fn bundle(count: u32) -> Bundle {
    Bundle {
        tlp: Tlp::Green,
        distribution: Distribution::Federation,
        items: (0..count).map(indicator).collect(),
    }
}

pub fn body(count: u32) -> Body {
    Body::Bundle(bundle(count))
}

/// Seeds: stewards 100..=102, organisation root keys 10 + i, node keys 20 + i.
pub fn org_key(index: u8) -> SigningKey {
    key(10 + index)
}

pub fn node_key(index: u8) -> SigningKey {
    key(20 + index)
}

pub fn steward_key(index: u8) -> SigningKey {
    key(100 + index)
}

/// An active member `index` with one node certified from T0 for a year.
pub fn member(index: u8) -> Member {
    let org = org_key(index);
    Member {
        org: PublicKey::of(&org),
        name: format!("ORG-{index}"),
        country: "FR".into(),
        roles: Roles {
            publish: true,
            read: true,
        },
        status: Status::Active,
        nodes: vec![NodeCertificate::issue(
            &org,
            PublicKey::of(&node_key(index)),
            T0,
            at(365 * 24 * 3600),
        )],
        cutoffs: vec![],
        addresses: vec![],
        encryption_key: None,
    }
}

/// Genesis: three stewards, threshold 2, `members` members.
pub fn genesis_charter(members: u8) -> Charter {
    Charter {
        federation: Hash::default(),
        name: "Test federation".into(),
        version: 1,
        previous: None,
        issued: T0,
        stewards: (0..3).map(|i| PublicKey::of(&steward_key(i))).collect(),
        threshold: 2,
        members: (0..members).map(member).collect(),
    }
}

/// `charter` signed by the stewards with the given indices.
pub fn signed(charter: Charter, stewards: &[u8]) -> SignedCharter {
    let mut proposal = SignedCharter::propose(charter).unwrap();
    for &index in stewards {
        proposal.sign(&steward_key(index));
    }
    proposal
}

/// The version after `previous`, as changed by `change`.
pub fn successor(previous: &SignedCharter, change: impl FnOnce(&mut Charter)) -> Charter {
    let mut next = previous.charter().clone();
    next.version += 1;
    next.previous = Some(previous.id());
    next.federation = previous.federation();
    next.issued = at(60);
    change(&mut next);
    next
}
