//! What the network's unit tests share: a one-member charter and a temporary store.

#![allow(clippy::unwrap_used)] // tests unwrap what they built themselves

use threatmesh_protocol::charter::{Charter, Member, NodeCertificate, Roles, Status};
use threatmesh_protocol::{Hash, PublicKey, SignedCharter, SigningKey, Timestamp};

use crate::store::{Options, Store};

/// A charter whose one member, organisation key `[1; 32]`, has the node `node`, may publish
/// and read, and has no encryption key.
pub(super) fn charter(node: &SigningKey) -> SignedCharter {
    let (steward, org) = (
        SigningKey::from_bytes(&[3; 32]),
        SigningKey::from_bytes(&[1; 32]),
    );
    let mut charter = SignedCharter::propose(Charter {
        federation: Hash::default(),
        name: "network unit tests".into(),
        version: 1,
        previous: None,
        issued: Timestamp(1),
        stewards: vec![PublicKey::of(&steward)],
        threshold: 1,
        members: vec![Member {
            org: PublicKey::of(&org),
            name: "CERT-T".into(),
            country: "XX".into(),
            roles: Roles {
                publish: true,
                read: true,
            },
            status: Status::Active,
            nodes: vec![NodeCertificate::issue(
                &org,
                PublicKey::of(node),
                Timestamp(1),
                Timestamp(u64::MAX),
            )],
            cutoffs: vec![],
            addresses: vec![],
            encryption_key: None,
        }],
    })
    .unwrap();
    charter.sign(&steward);
    charter
}

/// A store that vanishes when dropped.
pub(super) fn temporary_store() -> Store {
    Store::open(
        tempfile::tempdir().unwrap().keep(),
        &Options {
            temporary: true,
            ..Options::default()
        },
    )
    .unwrap()
}
