//! Federation charters: k-of-n signatures, the version chain, steward changes, tampering,
//! and the authorisation questions a node asks of the current charter.

#![allow(clippy::unwrap_used)] // tests unwrap what they built themselves

mod common;

use common::*;
use threatmesh_protocol::charter::{
    CharterError, Cutoff, FeedCutoff, NodeCertificate, NotAuthorised, RawCharter, Roles,
    SignedCharter, Status,
};
use threatmesh_protocol::wire::{self, MAX_GOSSIP_BYTES, Message};
use threatmesh_protocol::{PublicKey, Timestamp};

#[test]
fn genesis_with_k_signatures_verifies() {
    let charter = signed(genesis_charter(3), &[0, 1]);
    charter.verify(None).unwrap();
    let all = signed(genesis_charter(3), &[0, 1, 2]);
    all.verify(None).unwrap();
}

#[test]
fn genesis_with_k_minus_one_signatures_is_refused() {
    let charter = signed(genesis_charter(3), &[2]);
    assert!(matches!(
        charter.verify(None),
        Err(CharterError::BelowThreshold { have: 1, need: 2 })
    ));
    let unsigned = signed(genesis_charter(3), &[]);
    assert!(matches!(
        unsigned.verify(None),
        Err(CharterError::BelowThreshold { have: 0, need: 2 })
    ));
}

#[test]
fn signature_of_a_non_steward_is_refused() {
    let mut charter = signed(genesis_charter(3), &[0, 1]);
    charter.sign(&key(77));
    assert!(matches!(
        charter.verify(None),
        Err(CharterError::NotASteward(signer)) if signer == public(77)
    ));
}

#[test]
fn signing_twice_keeps_one_signature() {
    let mut charter = signed(genesis_charter(1), &[0]);
    charter.sign(&steward_key(0));
    assert_eq!(charter.signatures().len(), 1);
    assert!(matches!(
        charter.verify(None),
        Err(CharterError::BelowThreshold { have: 1, need: 2 })
    ));
}

#[test]
fn forged_steward_signature_is_refused() {
    let charter = signed(genesis_charter(2), &[0, 1]);
    let mut raw = charter.raw().clone();
    raw.signatures[1].signature.0[0] ^= 1;
    let forged = SignedCharter::decode(raw).unwrap();
    assert!(matches!(
        forged.verify(None),
        Err(CharterError::BadSignature(_))
    ));
}

#[test]
fn flipping_any_byte_of_a_charter_is_detected() {
    let charter = signed(genesis_charter(1), &[0, 1]);
    let payload = charter.to_payload();
    for position in 0..payload.len() {
        let mut tampered = payload.clone();
        tampered[position] ^= 0x01;
        let accepted = match wire::decode_gossip(&tampered) {
            Ok(Message::Charter(raw)) => SignedCharter::decode(raw)
                .map(|charter| charter.verify(None).is_ok())
                .unwrap_or(false),
            Ok(_) | Err(_) => false,
        };
        assert!(!accepted, "flipping byte {position} went unnoticed");
    }
}

#[test]
fn successor_signed_by_previous_stewards_verifies() {
    let genesis = signed(genesis_charter(2), &[0, 1]);
    let next = signed(successor(&genesis, |c| c.members.push(member(5))), &[1, 2]);
    next.verify(Some(&genesis)).unwrap();
    assert!(next.charter().member(&PublicKey::of(&org_key(5))).is_some());
}

#[test]
fn successor_must_link_to_its_predecessor() {
    let genesis = signed(genesis_charter(2), &[0, 1]);
    let skipped = signed(successor(&genesis, |c| c.version = 3), &[0, 1]);
    assert!(matches!(
        skipped.verify(Some(&genesis)),
        Err(CharterError::Chain { .. })
    ));
    let wrong_link = signed(
        successor(&genesis, |c| {
            c.previous = Some(threatmesh_protocol::Hash::of(b"x"))
        }),
        &[0, 1],
    );
    assert!(matches!(
        wrong_link.verify(Some(&genesis)),
        Err(CharterError::Chain { .. })
    ));
    let other_federation = signed(
        successor(&genesis, |c| {
            c.federation = threatmesh_protocol::Hash::of(b"y");
        }),
        &[0, 1],
    );
    assert!(matches!(
        other_federation.verify(Some(&genesis)),
        Err(CharterError::Chain { .. })
    ));
    // A later version presented as genesis.
    let next = signed(successor(&genesis, |_| {}), &[0, 1]);
    assert!(matches!(next.verify(None), Err(CharterError::Chain { .. })));
}

#[test]
fn changed_steward_set_needs_the_old_stewards() {
    let genesis = signed(genesis_charter(1), &[0, 1]);
    let new_stewards: Vec<PublicKey> = (50..53).map(public).collect();
    let handover = successor(&genesis, |c| c.stewards = new_stewards.clone());

    // The new stewards cannot appoint themselves.
    let mut self_appointed = SignedCharter::propose(handover.clone()).unwrap();
    self_appointed.sign(&key(50));
    self_appointed.sign(&key(51));
    assert!(matches!(
        self_appointed.verify(Some(&genesis)),
        Err(CharterError::NotASteward(_))
    ));

    // The old stewards can hand over...
    let handed_over = signed(handover, &[0, 2]);
    handed_over.verify(Some(&genesis)).unwrap();

    // ...after which the new stewards sign the next version and the old ones cannot.
    let mut by_new = SignedCharter::propose(successor(&handed_over, |_| {})).unwrap();
    by_new.sign(&key(51));
    by_new.sign(&key(52));
    by_new.verify(Some(&handed_over)).unwrap();
    let by_old = signed(successor(&handed_over, |_| {}), &[0, 1]);
    assert!(matches!(
        by_old.verify(Some(&handed_over)),
        Err(CharterError::NotASteward(_))
    ));
}

#[test]
fn certificate_not_signed_by_the_member_is_refused() {
    let mut charter = genesis_charter(2);
    // Organisation 1's root key certifies a node, but the certificate claims organisation 0.
    let mut cert = NodeCertificate::issue(&org_key(1), public(60), T0, at(3600));
    cert.org = PublicKey::of(&org_key(0));
    charter.members[0].nodes.push(cert);
    let charter = signed(charter, &[0, 1]);
    assert!(matches!(
        charter.verify(None),
        Err(CharterError::BadCertificate { .. })
    ));
}

#[test]
fn structural_rules_are_enforced() {
    let mut duplicate_member = genesis_charter(2);
    duplicate_member.members.push(member(0));
    assert!(SignedCharter::propose(duplicate_member).is_err());

    let mut threshold_too_high = genesis_charter(1);
    threshold_too_high.threshold = 4;
    assert!(SignedCharter::propose(threshold_too_high).is_err());

    let mut bad_country = genesis_charter(1);
    bad_country.members[0].country = "France".into();
    let error = SignedCharter::propose(bad_country).unwrap_err();
    assert!(error.to_string().contains("country"), "{error}");

    let mut node_twice = genesis_charter(2);
    let stolen = node_twice.members[0].nodes[0].clone();
    let org = node_twice.members[1].org;
    node_twice.members[1]
        .nodes
        .push(NodeCertificate { org, ..stolen });
    assert!(SignedCharter::propose(node_twice).is_err());
}

#[test]
fn active_member_may_publish_and_connect_within_its_certificate() {
    let charter = genesis_charter(2);
    let node = PublicKey::of(&node_key(1));
    assert!(charter.may_publish(&node, at(10)).is_ok());
    assert!(charter.authorise_entry(&node, 1_000, at(10)).is_ok());
    assert!(charter.may_connect(&node, at(10)).is_ok());
    assert!(
        charter
            .may_connect_peer(&node.peer_id_bytes(), at(10))
            .is_ok()
    );
    // Before and after the certificate's window.
    assert!(matches!(
        charter.may_connect(&node, Timestamp(T0.0 - 1)),
        Err(NotAuthorised::CertificateNotValid { .. })
    ));
    assert!(matches!(
        charter.may_publish(&node, at(366 * 24 * 3600)),
        Err(NotAuthorised::CertificateNotValid { .. })
    ));
}

#[test]
fn unknown_node_may_not_connect() {
    let charter = genesis_charter(2);
    assert!(matches!(
        charter.may_connect(&public(99), at(1)),
        Err(NotAuthorised::UnknownNode(_))
    ));
    assert!(charter.may_connect_peer(b"not a peer id", at(1)).is_err());
}

#[test]
fn read_only_member_may_connect_but_not_publish() {
    let mut charter = genesis_charter(1);
    charter.members[0].roles = Roles {
        publish: false,
        read: true,
    };
    let node = PublicKey::of(&node_key(0));
    assert!(charter.may_connect(&node, at(1)).is_ok());
    assert!(matches!(
        charter.may_publish(&node, at(1)),
        Err(NotAuthorised::MissingRole { .. })
    ));
}

fn with_status(make: fn(Cutoff) -> Status) -> threatmesh_protocol::Charter {
    let mut charter = genesis_charter(2);
    let node = PublicKey::of(&node_key(1));
    charter.members[1].status = make(Cutoff {
        since: at(100),
        last_seqs: vec![FeedCutoff { node, last_seq: 7 }],
    });
    charter
}

#[test]
fn revoked_or_suspended_member_is_cut_off_after_its_effective_time() {
    for make in [Status::Revoked as fn(Cutoff) -> Status, Status::Suspended] {
        let charter = with_status(make);
        let node = PublicKey::of(&node_key(1));
        // Before the cutoff, within the feed's last accepted seq: accepted.
        assert!(charter.authorise_entry(&node, 7, at(99)).is_ok());
        assert!(charter.may_publish(&node, at(99)).is_ok());
        // Created at or after the effective time: refused.
        assert!(matches!(
            charter.authorise_entry(&node, 5, at(100)),
            Err(NotAuthorised::CutOff { .. })
        ));
        // Backdated, but beyond the last accepted seq: refused whatever time it claims.
        assert!(matches!(
            charter.authorise_entry(&node, 8, at(1)),
            Err(NotAuthorised::CutOff { .. })
        ));
        // A suspended or revoked member is disconnected.
        assert!(charter.may_connect(&node, at(1)).is_err());
        // The other member is unaffected.
        assert!(
            charter
                .authorise_entry(&PublicKey::of(&node_key(0)), 9, at(200))
                .is_ok()
        );
    }
}

#[test]
fn charter_round_trips_through_the_wire() {
    let charter = signed(genesis_charter(3), &[0, 1]);
    let payload = charter.to_payload();
    assert!(payload.len() <= MAX_GOSSIP_BYTES);
    let Message::Charter(raw) = wire::decode_gossip(&payload).unwrap() else {
        panic!("not a charter");
    };
    let decoded = SignedCharter::decode(raw).unwrap();
    assert_eq!(decoded, charter);
    decoded.verify(None).unwrap();
}

#[test]
fn charter_bytes_of_another_domain_are_refused() {
    let entry = threatmesh_protocol::SignedEntry::next(&node_key(0), None, T0, body(1)).unwrap();
    let Message::Entry(raw) = wire::decode_gossip(entry.payload()).unwrap() else {
        panic!("not an entry");
    };
    let confused = RawCharter {
        charter: raw.signed,
        signatures: vec![],
    };
    assert!(matches!(
        SignedCharter::decode(confused),
        Err(CharterError::Decode(_))
    ));
}
