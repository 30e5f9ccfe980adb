//! What the network's unit tests share: a one-member charter and seeded peer ids. (Their
//! temporary store is [`crate::store::Store::temporary`].)

#![allow(clippy::unwrap_used)] // tests unwrap what they built themselves

use libp2p::PeerId;
use threatmesh_protocol::testing::{key, one_member_charter};
use threatmesh_protocol::{SignedCharter, SigningKey};

/// A charter whose one member, organisation key `[1; 32]`, has the node `node`, may publish
/// and read, and has no encryption key; its steward's key is `[3; 32]`.
pub(crate) fn charter(node: &SigningKey) -> SignedCharter {
    one_member_charter("network unit tests", "CERT-T", "XX", &key(1), node, &key(3))
}

/// The peer id of node key `[index; 32]`: distinct and the same in every run.
pub(crate) fn peer(index: u8) -> PeerId {
    libp2p::identity::Keypair::ed25519_from_bytes([index; 32])
        .unwrap()
        .public()
        .to_peer_id()
}
