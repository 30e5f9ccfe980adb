//! What the node's benchmarks share: the one-member federation their node runs in.

use threatmesh_protocol::charter::{Charter, Member, NodeCertificate, Roles, Status};
use threatmesh_protocol::{Hash, PublicKey, SignedCharter, SigningKey, Timestamp};

/// A charter whose one member, CERT-B (root key `org`), has the node `node`, may publish
/// and read, and has no encryption key; signed by its one steward.
pub(crate) fn charter(org: &SigningKey, node: &SigningKey, steward: &SigningKey) -> SignedCharter {
    let mut charter = SignedCharter::propose(Charter {
        federation: Hash::default(),
        name: "bench".into(),
        version: 1,
        previous: None,
        issued: Timestamp(1),
        stewards: vec![PublicKey::of(steward)],
        threshold: 1,
        members: vec![Member {
            org: PublicKey::of(org),
            name: "CERT-B".into(),
            country: "XX".into(),
            roles: Roles {
                publish: true,
                read: true,
            },
            status: Status::Active,
            nodes: vec![NodeCertificate::issue(
                org,
                PublicKey::of(node),
                Timestamp(1),
                Timestamp(u64::MAX),
            )],
            cutoffs: vec![],
            addresses: vec![],
            encryption_key: None,
        }],
    })
    .expect("valid charter");
    charter.sign(steward);
    charter
}
