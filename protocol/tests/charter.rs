//! Federation charters: k-of-n signatures, the version chain, steward changes, tampering,
//! and the authorisation questions a node asks of the current charter.

#![allow(clippy::unwrap_used)] // tests unwrap what they built themselves

use threatmesh_protocol::charter::{
    Admission, CharterError, FeedCutoff, History, MAX_RIVALS, NodeCertificate, NotAuthorised,
    RawCharter, Roles, SignedCharter, Status,
};
use threatmesh_protocol::entry::FeedHead;
use threatmesh_protocol::testing::*;
use threatmesh_protocol::wire::{self, MAX_GOSSIP_BYTES, Message};
use threatmesh_protocol::{Hash, PublicKey, Timestamp};

#[test]
fn genesis_with_k_signatures_verifies() {
    let charter = signed(genesis_charter(3), &[0, 1]);
    charter.verify_genesis(charter.id()).unwrap();
    let all = signed(genesis_charter(3), &[0, 1, 2]);
    all.verify_genesis(all.id()).unwrap();
}

#[test]
fn genesis_with_k_minus_one_signatures_is_refused() {
    let charter = signed(genesis_charter(3), &[2]);
    assert!(matches!(
        charter.verify_genesis(charter.id()),
        Err(CharterError::BelowThreshold { have: 1, need: 2 })
    ));
    let unsigned = signed(genesis_charter(3), &[]);
    assert!(matches!(
        unsigned.verify_genesis(unsigned.id()),
        Err(CharterError::BelowThreshold { have: 0, need: 2 })
    ));
}

#[test]
fn signature_of_a_non_steward_is_refused() {
    let mut charter = signed(genesis_charter(3), &[0, 1]);
    charter.sign(&key(77));
    assert!(matches!(
        charter.verify_genesis(charter.id()),
        Err(CharterError::NotASteward(signer)) if signer == public(77)
    ));
}

#[test]
fn signing_twice_keeps_one_signature() {
    let mut charter = signed(genesis_charter(1), &[0]);
    charter.sign(&steward_key(0));
    assert_eq!(charter.signatures().len(), 1);
    assert!(matches!(
        charter.verify_genesis(charter.id()),
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
        forged.verify_genesis(forged.id()),
        Err(CharterError::BadSignature(_))
    ));
}

#[test]
fn flipping_any_byte_of_a_charter_is_detected() {
    let charter = signed(genesis_charter(1), &[0, 1]);
    let federation = charter.id();
    let payload = charter.to_payload();
    for position in 0..payload.len() {
        let mut tampered = payload.clone();
        tampered[position] ^= 0x01;
        let accepted = match wire::decode_gossip(&tampered) {
            Ok(Message::Charter(raw)) => SignedCharter::decode(raw)
                .map(|charter| charter.verify_genesis(federation).is_ok())
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
    next.verify_successor(&genesis).unwrap();
    assert!(next.charter().member(&PublicKey::of(&org_key(5))).is_some());
}

#[test]
fn successor_must_link_to_its_predecessor() {
    let genesis = signed(genesis_charter(2), &[0, 1]);
    let skipped = signed(successor(&genesis, |c| c.version = 3), &[0, 1]);
    assert!(matches!(
        skipped.verify_successor(&genesis),
        Err(CharterError::Chain { .. })
    ));
    let wrong_link = signed(
        successor(&genesis, |c| {
            c.previous = Some(threatmesh_protocol::Hash::of(b"x"))
        }),
        &[0, 1],
    );
    assert!(matches!(
        wrong_link.verify_successor(&genesis),
        Err(CharterError::Chain { .. })
    ));
    let other_federation = signed(
        successor(&genesis, |c| {
            c.federation = threatmesh_protocol::Hash::of(b"y");
        }),
        &[0, 1],
    );
    assert!(matches!(
        other_federation.verify_successor(&genesis),
        Err(CharterError::Chain { .. })
    ));
    // A later version presented as genesis.
    let next = signed(successor(&genesis, |_| {}), &[0, 1]);
    assert!(matches!(
        next.verify_genesis(genesis.id()),
        Err(CharterError::NotGenesis { .. })
    ));
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
        self_appointed.verify_successor(&genesis),
        Err(CharterError::NotASteward(_))
    ));

    // The old stewards can hand over...
    let handed_over = signed(handover, &[0, 2]);
    handed_over.verify_successor(&genesis).unwrap();

    // ...after which the new stewards sign the next version and the old ones cannot.
    let mut by_new = SignedCharter::propose(successor(&handed_over, |_| {})).unwrap();
    by_new.sign(&key(51));
    by_new.sign(&key(52));
    by_new.verify_successor(&handed_over).unwrap();
    let by_old = signed(successor(&handed_over, |_| {}), &[0, 1]);
    assert!(matches!(
        by_old.verify_successor(&handed_over),
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
        charter.verify_genesis(charter.id()),
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
    assert!(
        charter
            .authorise_entry(&entry_ref(1, 1_000, Hash::of(b"x")), at(10))
            .is_ok()
    );
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

fn with_status(status: Status, last_id: Hash) -> threatmesh_protocol::Charter {
    let mut charter = genesis_charter(2);
    let node = PublicKey::of(&node_key(1));
    charter.members[1].status = status;
    charter.members[1].cutoffs = vec![FeedCutoff {
        node,
        last_seq: 7,
        last_id: Some(last_id),
    }];
    charter
}

fn entry_ref(node: u8, seq: u64, id: Hash) -> FeedHead {
    FeedHead {
        author: PublicKey::of(&node_key(node)),
        seq,
        id,
    }
}

#[test]
fn revoked_or_suspended_member_is_cut_off_after_its_effective_time() {
    let last = Hash::of(b"entry 7");
    let since = at(100);
    for status in [Status::Revoked { since }, Status::Suspended { since }] {
        let charter = with_status(status, last);
        let node = PublicKey::of(&node_key(1));
        // Before the effective time, within the feed's cutoff: accepted.
        assert!(
            charter
                .authorise_entry(&entry_ref(1, 6, Hash::of(b"6")), at(99))
                .is_ok()
        );
        assert!(
            charter
                .authorise_entry(&entry_ref(1, 7, last), at(99))
                .is_ok()
        );
        assert!(charter.may_publish(&node, at(99)).is_ok());
        // Created at or after the effective time: refused.
        assert!(matches!(
            charter.authorise_entry(&entry_ref(1, 5, Hash::of(b"5")), at(100)),
            Err(NotAuthorised::OutOfStanding { .. })
        ));
        // Backdated, but beyond the last accepted seq: refused whatever time it claims.
        assert!(matches!(
            charter.authorise_entry(&entry_ref(1, 8, Hash::of(b"8")), at(1)),
            Err(NotAuthorised::BeyondCutoff {
                last_seq: 7,
                seq: 8,
                ..
            })
        ));
        // A different entry signed for the last accepted place: refused.
        assert!(matches!(
            charter.authorise_entry(&entry_ref(1, 7, Hash::of(b"forged 7")), at(1)),
            Err(NotAuthorised::BeyondCutoff { .. })
        ));
        // A suspended or revoked member is disconnected.
        assert!(charter.may_connect(&node, at(1)).is_err());
        // The other member is unaffected.
        assert!(
            charter
                .authorise_entry(&entry_ref(0, 9, Hash::of(b"9")), at(200))
                .is_ok()
        );
    }
}

#[test]
fn revoked_member_feed_without_cutoff_keeps_nothing() {
    let mut charter = genesis_charter(2);
    charter.members[1].status = Status::Revoked { since: at(100) };
    assert!(matches!(
        charter.authorise_entry(&entry_ref(1, 1, Hash::of(b"1")), at(1)),
        Err(NotAuthorised::BeyondCutoff { last_seq: 0, .. })
    ));
}

#[test]
fn retired_node_key_of_an_active_member_cannot_backdate_new_entries() {
    // The node's certificate expired, then its key was stolen. Without a cutoff, entries
    // claiming a creation time inside the old window would pass; with one, only the
    // entries up to the cutoff do.
    let mut charter = genesis_charter(2);
    let node = PublicKey::of(&node_key(1));
    charter.members[1].nodes[0] = NodeCertificate::issue(&org_key(1), node, T0, at(3600));
    let backdated = entry_ref(1, 1_000_000, Hash::of(b"late"));
    assert!(
        charter.authorise_entry(&backdated, at(10)).is_ok(),
        "the gap the cutoff closes"
    );
    let last = Hash::of(b"last real entry");
    charter.members[1].cutoffs = vec![FeedCutoff {
        node,
        last_seq: 40,
        last_id: Some(last),
    }];
    assert!(matches!(
        charter.authorise_entry(&backdated, at(10)),
        Err(NotAuthorised::BeyondCutoff { .. })
    ));
    assert!(
        charter
            .authorise_entry(&entry_ref(1, 40, last), at(10))
            .is_ok()
    );
    assert!(
        charter
            .authorise_entry(&entry_ref(1, 39, Hash::of(b"39")), at(10))
            .is_ok()
    );
    // The member itself stays active: its other nodes are not affected.
    assert!(
        charter
            .may_connect(&PublicKey::of(&node_key(0)), at(10))
            .is_ok()
    );
}

#[test]
fn cutoff_must_name_its_last_entry() {
    let mut charter = genesis_charter(2);
    charter.members[1].cutoffs = vec![FeedCutoff {
        node: PublicKey::of(&node_key(1)),
        last_seq: 3,
        last_id: None,
    }];
    assert!(SignedCharter::propose(charter).is_err());
}

#[test]
fn genesis_is_trusted_only_under_its_own_id() {
    let real = signed(genesis_charter(2), &[0, 1]);
    // Anyone can make a well-signed genesis of their own...
    let mut rogue = genesis_charter(2);
    rogue.stewards = vec![public(90)];
    rogue.threshold = 1;
    let mut rogue = SignedCharter::propose(rogue).unwrap();
    rogue.sign(&key(90));
    rogue.verify_genesis(rogue.id()).unwrap();
    // ...but it is not the federation the node was told to join.
    assert!(matches!(
        rogue.verify_genesis(real.id()),
        Err(CharterError::NotGenesis { .. })
    ));
    assert_eq!(real.federation(), real.id());
    // A genesis must not name a federation: its id is the federation's.
    let mut named = genesis_charter(2);
    named.federation = Hash::of(b"x");
    assert!(SignedCharter::propose(named).is_err());
}

#[test]
fn minority_threshold_is_refused() {
    let mut charter = genesis_charter(1);
    charter.stewards = (0..4).map(|i| PublicKey::of(&steward_key(i))).collect();
    charter.threshold = 2;
    let error = SignedCharter::propose(charter.clone()).unwrap_err();
    assert!(error.to_string().contains("majority"), "{error}");
    charter.threshold = 3;
    assert!(SignedCharter::propose(charter).is_ok());
}

#[test]
fn rival_versions_resolve_the_same_way_everywhere() {
    let genesis = signed(genesis_charter(2), &[0, 1]);
    let a = signed(successor(&genesis, |c| c.name = "A".into()), &[0, 1]);
    let b = signed(successor(&genesis, |c| c.name = "B".into()), &[1, 2]);
    a.verify_successor(&genesis).unwrap();
    b.verify_successor(&genesis).unwrap();
    assert_ne!(a.supersedes(&b), b.supersedes(&a));
    assert!(a.supersedes(&genesis) && b.supersedes(&genesis));
    assert!(!genesis.supersedes(&a));
}

#[test]
fn charter_too_large_for_one_gossip_message_is_refused() {
    let mut charter = genesis_charter(1);
    let template = charter.members[0].clone();
    charter.members = (0..threatmesh_protocol::charter::MAX_MEMBERS)
        .map(|index| {
            let mut member = template.clone();
            let bytes = u32::try_from(index).unwrap().to_be_bytes();
            member.org = PublicKey([
                bytes[0], bytes[1], bytes[2], bytes[3], 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
                7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
            ]);
            member.nodes[0].node = PublicKey([
                bytes[0], bytes[1], bytes[2], bytes[3], 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8,
                8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8,
            ]);
            member.nodes[0].org = member.org;
            member.name = format!("{index:0>200}");
            member.addresses = vec!["/ip4/192.0.2.1/tcp/4001".into()];
            member
        })
        .collect();
    let Err(error) = SignedCharter::propose(charter) else {
        panic!("a charter larger than one gossip message was accepted");
    };
    assert!(error.to_string().contains("gossip"), "{error}");
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
    decoded.verify_genesis(decoded.id()).unwrap();
}

#[test]
fn charter_bytes_of_another_domain_are_refused() {
    let entry = threatmesh_protocol::SignedEntry::next(&node_key(0), FEDERATION, None, T0, body(1))
        .unwrap();
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

#[test]
fn a_founding_member_in_a_one_steward_genesis_may_publish_and_the_genesis_verifies() {
    use threatmesh_protocol::SigningKey;
    let (steward, org, node) = (
        SigningKey::from_bytes(&[7; 32]),
        SigningKey::from_bytes(&[8; 32]),
        SigningKey::from_bytes(&[9; 32]),
    );
    let member = threatmesh_protocol::Member::founding(
        &org,
        "CERT-F",
        "FR",
        PublicKey::of(&node),
        Timestamp(1),
        Timestamp(1_000),
    );
    let charter = threatmesh_protocol::SignedCharter::genesis_by(
        &steward,
        "founding",
        Timestamp(1),
        vec![member],
    )
    .unwrap();
    charter.verify_genesis(charter.federation()).unwrap();
    assert!(
        charter
            .charter()
            .may_publish(&PublicKey::of(&node), Timestamp(500))
            .is_ok()
    );
    assert!(
        charter
            .charter()
            .may_publish(&PublicKey::of(&node), Timestamp(2_000))
            .is_err()
    );
}

#[test]
fn connectable_names_exactly_the_nodes_that_may_connect_and_changes_only_at_window_edges() {
    let mut charter = genesis_charter(5);
    charter.members[1].status = Status::Suspended { since: at(0) };
    charter.members[2].roles = Roles {
        publish: false,
        read: false,
    };
    // Member 3's node is certified from day 2 on, member 4's until day 3.
    charter.members[3].nodes[0].valid_from = at(2 * 24 * 3600);
    charter.members[4].nodes[0].valid_until = at(3 * 24 * 3600);
    let nodes: Vec<PublicKey> = (0..5)
        .map(|index| PublicKey::of(&node_key(index)))
        .collect();
    for seconds in [0, 24 * 3600, 2 * 24 * 3600, 3 * 24 * 3600, 400 * 24 * 3600] {
        let now = at(seconds);
        let listed: Vec<PublicKey> = charter
            .connectable(now)
            .map(|(_, cert)| cert.node)
            .collect();
        let admitted: Vec<PublicKey> = nodes
            .iter()
            .copied()
            .filter(|node| charter.may_connect(node, now).is_ok())
            .collect();
        assert_eq!(listed, admitted, "at {seconds} s");
    }
    assert_eq!(
        charter
            .connectable(at(24 * 3600))
            .map(|(member, _)| member.org)
            .collect::<Vec<_>>(),
        vec![charter.members[0].org, charter.members[4].org]
    );
    assert_eq!(charter.next_window_change(at(0)), Some(at(2 * 24 * 3600)));
    assert_eq!(
        charter.next_window_change(at(2 * 24 * 3600)),
        Some(at(3 * 24 * 3600))
    );
    let last = charter
        .members
        .iter()
        .flat_map(|member| &member.nodes)
        .map(|cert| cert.valid_until)
        .max()
        .unwrap();
    assert_eq!(charter.next_window_change(last), None);
}

/// A rival of version 2 that wins the tie against `honest` (a smaller id), signed by
/// stewards 1 and 2: steward 1 signed both, as a compromised steward, or one of a quorum
/// that signed two proposals, would.
fn winning_rival(genesis: &SignedCharter, honest: &SignedCharter) -> SignedCharter {
    (0..)
        .map(|n| {
            signed(
                successor(genesis, |c| c.name = format!("Rival {n}")),
                &[1, 2],
            )
        })
        .find(|rival| rival.id() < honest.id())
        .unwrap()
}

/// Offers `charters` in order to a history holding `start`. A charter that names a
/// previous one not held yet is offered again once the others are in, as a node does by
/// fetching the sender's charters. Panics if any is refused as invalid: each is valid
/// against some charter seen, so none may cost its relay a strike.
fn offer_all(start: &[SignedCharter], charters: &[SignedCharter]) -> History {
    let mut history = History::from_trusted(start.iter().cloned()).unwrap();
    let mut waiting: Vec<SignedCharter> = charters.to_vec();
    while !waiting.is_empty() {
        let before = waiting.len();
        let mut missing = Vec::new();
        for charter in waiting {
            match history.insert(charter.clone()) {
                Ok(Admission::MissingPrevious) => missing.push(charter),
                Ok(_) => {}
                Err(error) => panic!("a valid charter was refused: {error}"),
            }
        }
        assert!(missing.len() < before, "no progress: {missing:?}");
        waiting = missing;
    }
    history
}

#[test]
fn a_late_rival_does_not_fork_the_federation_whatever_the_arrival_order() {
    let genesis = signed(genesis_charter(2), &[0, 1]);
    let honest = signed(successor(&genesis, |c| c.name = "Honest".into()), &[0, 1]);
    let rival = winning_rival(&genesis, &honest);
    let next = signed(successor(&honest, |c| c.members.push(member(5))), &[0, 1]);
    rival.verify_successor(&genesis).unwrap();
    let charters = [rival.clone(), honest.clone(), next.clone()];
    let orders = [
        [0, 1, 2],
        [0, 2, 1],
        [1, 0, 2],
        [1, 2, 0],
        [2, 0, 1],
        [2, 1, 0],
    ];
    // A node at version 1, and one that took the honest version 2 before the rest came.
    for start in [vec![genesis.clone()], vec![genesis.clone(), honest.clone()]] {
        for order in orders {
            let arrived: Vec<SignedCharter> =
                order.iter().map(|index| charters[*index].clone()).collect();
            let history = offer_all(&start, &arrived);
            assert_eq!(
                history.in_force().id(),
                next.id(),
                "order {order:?} from version {}",
                start.len()
            );
        }
    }
    // Rival first: it is in force until the next honest version, which a node holding
    // the rival takes directly (it follows the honest version 2 it holds too).
    let mut history = History::from_trusted([genesis.clone(), honest.clone()]).unwrap();
    assert_eq!(history.insert(rival.clone()).unwrap(), Admission::Added);
    assert_eq!(history.in_force().id(), rival.id());
    assert_eq!(history.insert(next.clone()).unwrap(), Admission::Added);
    assert_eq!(history.in_force().id(), next.id());
    assert_eq!(history.insert(rival).unwrap(), Admission::Known);
}

#[test]
fn rivals_of_the_newest_version_settle_on_the_smallest_id_in_either_order() {
    let genesis = signed(genesis_charter(2), &[0, 1]);
    let a = signed(successor(&genesis, |c| c.name = "A".into()), &[0, 1]);
    let b = signed(successor(&genesis, |c| c.name = "B".into()), &[1, 2]);
    let smaller = a.id().min(b.id());
    for order in [[&a, &b], [&b, &a]] {
        let mut history = History::from_trusted([genesis.clone()]).unwrap();
        for charter in order {
            assert_eq!(history.insert(charter.clone()).unwrap(), Admission::Added);
        }
        assert_eq!(history.in_force().id(), smaller);
    }
}

#[test]
fn a_charter_naming_an_unknown_previous_is_not_blamed_and_a_forged_one_is() {
    let genesis = signed(genesis_charter(2), &[0, 1]);
    let history = History::from_trusted([genesis.clone()]).unwrap();
    // Follows a version 2 this node has not seen: not its sender's fault.
    let unseen = signed(successor(&genesis, |c| c.name = "Unseen".into()), &[0, 1]);
    let after_unseen = signed(successor(&unseen, |_| {}), &[0, 1]);
    assert_eq!(
        history.admit(&after_unseen).unwrap(),
        Admission::MissingPrevious
    );
    // Names the genesis it holds but lacks a quorum: a forgery.
    let forged = signed(successor(&genesis, |c| c.name = "Forged".into()), &[2]);
    assert!(matches!(
        history.admit(&forged),
        Err(CharterError::BelowThreshold { have: 1, need: 2 })
    ));
    // Another genesis than the federation's.
    let other = signed(genesis_charter(1), &[0, 1]);
    assert!(matches!(
        history.admit(&other),
        Err(CharterError::NotGenesis { .. })
    ));
}

#[test]
fn a_version_keeps_at_most_max_rivals_and_old_versions_take_none() {
    let genesis = signed(genesis_charter(2), &[0, 1]);
    let mut history = History::from_trusted([genesis.clone()]).unwrap();
    let rivals: Vec<SignedCharter> = (0..MAX_RIVALS + 3)
        .map(|n| {
            signed(
                successor(&genesis, |c| c.name = format!("Rival {n}")),
                &[0, 1],
            )
        })
        .collect();
    let admissions: Vec<Admission> = rivals
        .iter()
        .map(|rival| history.insert(rival.clone()).unwrap())
        .collect();
    assert!(
        admissions[..MAX_RIVALS]
            .iter()
            .all(|a| *a == Admission::Added)
    );
    assert!(
        admissions[MAX_RIVALS..]
            .iter()
            .all(|a| *a == Admission::Full)
    );
    assert_eq!(history.charters().count(), 1 + MAX_RIVALS);

    // Versions 3 and 4 on the first rival: version 2 is then too old for a rival.
    let third = signed(successor(&rivals[0], |_| {}), &[0, 1]);
    let fourth = signed(successor(&third, |_| {}), &[0, 1]);
    assert_eq!(history.insert(third).unwrap(), Admission::Added);
    assert_eq!(history.insert(fourth.clone()).unwrap(), Admission::Added);
    let late = signed(successor(&genesis, |c| c.name = "Late".into()), &[0, 1]);
    assert_eq!(history.admit(&late).unwrap(), Admission::TooOld);
    assert_eq!(history.in_force().id(), fourth.id());
    // Only the versions a rival may still follow are kept in memory.
    assert!(
        history
            .charters()
            .all(|charter| charter.charter().version >= 2)
    );
}
