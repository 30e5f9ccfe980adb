//! What the network's unit tests share: a one-member charter and a temporary store.

#![allow(clippy::unwrap_used)] // tests unwrap what they built themselves

use threatmesh_protocol::charter::Member;
use threatmesh_protocol::{PublicKey, SignedCharter, SigningKey, Timestamp};

use crate::store::{Options, Store};

/// A charter whose one member, organisation key `[1; 32]`, has the node `node`, may publish
/// and read, and has no encryption key.
pub(super) fn charter(node: &SigningKey) -> SignedCharter {
    let (steward, org) = (
        SigningKey::from_bytes(&[3; 32]),
        SigningKey::from_bytes(&[1; 32]),
    );
    let member = Member::founding(
        &org,
        "CERT-T",
        "XX",
        PublicKey::of(node),
        Timestamp(1),
        Timestamp(u64::MAX),
    );
    SignedCharter::genesis_by(&steward, "network unit tests", Timestamp(1), vec![member]).unwrap()
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
