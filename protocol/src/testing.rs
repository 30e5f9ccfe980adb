//! Builders the tests and benchmarks of every crate share (feature `test-utils`): keys
//! derived from a seed, so that a failure reproduces; federation charters, from a
//! one-member genesis to a k-of-n federation and its successors; and indicator value
//! generators that give each number its own distinct value.
//!
//! Nothing here is for production: keys from a seed are public knowledge. The feature is
//! only turned on by dev-dependencies.

use crate::bundle::{Bundle, Distribution, Tlp};
use crate::charter::{Charter, Member, NodeCertificate, Roles, SignedCharter, Status};
use crate::entry::Body;
use crate::item::{Confidence, Context, Indicator, Item};
use crate::{Hash, Kind, PublicKey, SigningKey, Timestamp, Value};

/// A key derived from a seed, so failures reproduce.
pub fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

/// The public half of [`key`]`(seed)`.
pub fn public(seed: u8) -> PublicKey {
    PublicKey::of(&key(seed))
}

/// The time the fixtures start at: 2023-11-14, in milliseconds.
pub const T0: Timestamp = Timestamp(1_700_000_000_000);

/// The federation test entries are published in.
pub const FEDERATION: Hash = Hash([0xfe; 32]);

/// [`T0`] plus `offset_secs` seconds.
pub fn at(offset_secs: u64) -> Timestamp {
    Timestamp(T0.0 + offset_secs * 1000)
}

/// An ipv4 indicator for `n`, valid from [`T0`].
pub fn indicator(n: u32) -> Item {
    let [a, b, c, d] = n.to_be_bytes();
    let value = Value::parse(Kind::Ipv4, &format!("{}.{b}.{c}.{d}", a.max(1)))
        .expect("a valid ipv4 address");
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

/// [`bundle`]`(count)` as an entry's body.
pub fn body(count: u32) -> Body {
    Body::Bundle(bundle(count))
}

/// The root key of organisation `index` (seed 10 + index).
pub fn org_key(index: u8) -> SigningKey {
    key(10 + index)
}

/// The key of organisation `index`'s node (seed 20 + index).
pub fn node_key(index: u8) -> SigningKey {
    key(20 + index)
}

/// The key of steward `index` (seed 100 + index).
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
    let mut proposal = SignedCharter::propose(charter).expect("the test charter is valid");
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

/// A federation `name` whose one member, `member` of `country` (root key `org`), has the
/// node `node` (certified from `Timestamp(1)` on, for good), may publish and read, and
/// has no encryption key; issued at `Timestamp(1)` and signed by its one steward.
pub fn one_member_charter(
    name: &str,
    member: &str,
    country: &str,
    org: &SigningKey,
    node: &SigningKey,
    steward: &SigningKey,
) -> SignedCharter {
    let member = Member::founding(
        org,
        member,
        country,
        PublicKey::of(node),
        Timestamp(1),
        Timestamp(u64::MAX),
    );
    SignedCharter::genesis_by(steward, name, Timestamp(1), vec![member])
        .expect("the test charter is valid")
}

/// The federation the node's benchmarks run in: [`one_member_charter`] named "bench",
/// whose one member is CERT-B (root key `org`, country XX) with the node `node`.
pub fn bench_charter(org: &SigningKey, node: &SigningKey, steward: &SigningKey) -> SignedCharter {
    one_member_charter("bench", "CERT-B", "XX", org, node, steward)
}

/// Indicator number `n` as an address in 10.0.0.0/8 (distinct for `n` under 2^24).
pub fn ipv4(n: u32) -> String {
    let [_, b, c, d] = n.to_be_bytes();
    format!("10.{b}.{c}.{d}")
}

/// Indicator `n`: ipv4, domain, url and sha256 in turn, all distinct.
pub fn value(n: u32) -> Value {
    let [a, b, c, d] = n.to_be_bytes();
    match n % 4 {
        0 => Value::parse(Kind::Ipv4, &format!("{}.{b}.{c}.{d}", a + 11)),
        1 => Value::parse(Kind::Domain, &format!("c2-{n}.bad-example.com")),
        2 => Value::parse(Kind::Url, &format!("http://dl-{n}.example.net/gate.php")),
        _ => Value::parse(
            Kind::Sha256,
            &format!("{:064x}", u128::from(n) * 0x9e37_79b9),
        ),
    }
    .expect("benchmark values are valid")
}

/// Indicator `n`: ipv4, domain, url and sha256 in turn, with the context a C2 feed has.
pub fn c2_indicator(n: u32) -> Item {
    c2_indicator_of(n % 4, n)
}

/// Indicator `n` of kind 0 (ipv4), 1 (domain), 2 (url) or 3 (sha256), with the context a
/// C2 feed has: a threat name, labels, a kill-chain phase and a validity window (about
/// 100 bytes each on the wire).
pub fn c2_indicator_of(kind: u32, n: u32) -> Item {
    let [a, b, c, d] = n.to_be_bytes();
    let value = match kind {
        0 => Value::parse(Kind::Ipv4, &format!("{}.{b}.{c}.{d}", a.max(1) + 10)),
        1 => Value::parse(Kind::Domain, &format!("c2-{n}.bad-example.com")),
        2 => Value::parse(
            Kind::Url,
            &format!("http://dl-{n}.example.net/gate.php?id={n}"),
        ),
        _ => Value::parse(
            Kind::Sha256,
            &format!("{:064x}", u128::from(n) * 0x9e37_79b9),
        ),
    }
    .expect("benchmark values are valid");
    Item::Indicator(Indicator {
        value,
        confidence: Confidence::new(80).expect("80 is a confidence"),
        valid_from: Timestamp(1_700_000_000_000),
        valid_until: Some(Timestamp(1_700_000_000_000 + 30 * 86_400_000)),
        labels: vec!["c2".into(), "botnet".into()],
        context: Context {
            threat: Some("QakBot".into()),
            kill_chain_phase: Some("command-and-control".into()),
            ..Context::default()
        },
    })
}
