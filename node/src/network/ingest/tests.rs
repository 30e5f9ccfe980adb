//! The ingest pipeline's tests: checks, verdicts, sealed entries and charters.

#![allow(clippy::unwrap_used)] // tests unwrap what they built themselves

use libp2p::request_response;
use threatmesh_protocol::bundle::{Distribution, Tlp};
use threatmesh_protocol::item::{Indicator, Item};
use threatmesh_protocol::testing::key;
use threatmesh_protocol::{Kind, SigningKey, Value};

use threatmesh_protocol::bundle::Bundle;
use threatmesh_protocol::entry::{Body, SignedEntry};

use super::*;
use crate::network::clock::Clock;
use crate::network::testing;
use crate::store::Ingest;

/// The longest a test waits for the worker.
const TIMEOUT: Duration = Duration::from_secs(10);

/// A checker over a temporary store, in a federation whose one member has the node
/// `author`.
fn checker(author: &SigningKey) -> Checker {
    let skew = Duration::from_secs(300);
    let store = crate::store::Store::temporary();
    let charter = testing::charter(author);
    Checker {
        charters: Arc::new(Charters::load(store.clone(), charter.clone()).unwrap()),
        store,
        charter: watch::channel(Arc::new(charter)).1,
        metrics: Arc::default(),
        clock_skew: skew,
        clock: Arc::new(ClockWatch::new(Clock::system(), skew)),
        node: PublicKey::of(author),
        keyring: Keyring::default(),
        unread: unread::Trigger::detached(),
        warninglists: Arc::new(crate::warninglists::Counts::new(
            crate::warninglists::Warninglists::builtin(),
        )),
    }
}

/// `count` entries of `author`'s feed, one indicator each.
fn feed(checker: &Checker, author: &SigningKey, count: u32) -> Vec<SignedEntry> {
    let federation = checker.charter.borrow().federation();
    let mut entries: Vec<SignedEntry> = Vec::new();
    for n in 0..count {
        let value = Value::parse(Kind::Ipv4, &format!("10.0.0.{n}")).unwrap();
        let body = Body::Bundle(Bundle {
            tlp: Tlp::Green,
            distribution: Distribution::Federation,
            items: vec![Item::Indicator(Indicator::new(value, Timestamp(1)))],
        });
        let head = entries.last().map(SignedEntry::head);
        entries.push(SignedEntry::next(author, federation, head.as_ref(), now(), body).unwrap());
    }
    entries
}

/// Runs one gossip job carrying `entry` and returns every verdict it gave.
async fn gossip(checker: &Checker, entry: &SignedEntry) -> Vec<Verdict> {
    let (sender, mut verdicts) = mpsc::channel(8);
    let job = Job::Gossip {
        payload: entry.payload().to_vec(),
        message_id: MessageId::new(&entry.id().0),
        source: PeerId::random(),
        reserved: None,
    };
    let checker = checker.clone();
    tokio::time::timeout(
        TIMEOUT,
        tokio::task::spawn_blocking(move || checker.run(job, &sender)),
    )
    .await
    .unwrap()
    .unwrap();
    let mut given = Vec::new();
    while let Ok(verdict) = verdicts.try_recv() {
        given.push(verdict);
    }
    given
}

/// Whether any verdict lets gossipsub forward the message.
fn forwarded(verdicts: &[Verdict]) -> bool {
    verdicts.iter().any(|verdict| {
        matches!(
            verdict,
            Verdict::Gossip {
                acceptance: Acceptance::Accept,
                ..
            }
        )
    })
}

/// A checker under a version 2 that revokes the member of `author` after the last of
/// `honest` was created and ends its feed there.
fn revoked(checker: &mut Checker, author: &SigningKey, honest: &[SignedEntry]) {
    use threatmesh_protocol::charter::{Charter, FeedCutoff, Status};

    let genesis = Arc::clone(&checker.charter.borrow());
    let last = honest.last().unwrap();
    let mut members = genesis.charter().members.clone();
    members[0].status = Status::Revoked {
        since: Timestamp(last.entry().created.0 + 1),
    };
    members[0].cutoffs = vec![FeedCutoff {
        node: PublicKey::of(author),
        last_seq: last.entry().seq,
        last_id: Some(last.id()),
    }];
    let mut revoking = SignedCharter::propose(Charter {
        federation: genesis.federation(),
        version: 2,
        previous: Some(genesis.id()),
        issued: Timestamp(2),
        members,
        ..genesis.charter().clone()
    })
    .unwrap();
    revoking.sign(&key(3));
    revoking.verify_successor(&genesis).unwrap();
    checker.charter = watch::channel(Arc::new(revoking)).1;
}

/// An entry of `author`'s feed at `seq`, after `before`, created at `created`, with
/// indicator `n`: what a key holder forges.
fn forge(
    checker: &Checker,
    author: &SigningKey,
    before: Option<&SignedEntry>,
    created: Timestamp,
    n: u64,
) -> SignedEntry {
    let seq = before.map_or(1, |entry| entry.entry().seq + 1);
    let value = Value::parse(Kind::Ipv4, &format!("192.0.{seq}.{n}")).unwrap();
    let body = Body::Bundle(Bundle {
        tlp: Tlp::Green,
        distribution: Distribution::Federation,
        items: vec![Item::Indicator(Indicator::new(value, Timestamp(1)))],
    });
    let federation = checker.charter.borrow().federation();
    let head = before.map(SignedEntry::head);
    SignedEntry::next(author, federation, head.as_ref(), created, body).unwrap()
}

/// A revoked member's node key, still in the hands of whoever holds it, signs entries
/// for places below its feed's cutoff, backdated before the revocation. The node keeps
/// taking the entries it had not seen of the real feed, but neither stores nor
/// forwards a single one of the forgeries: a cut-off key cannot keep writing evidence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_key_cannot_add_entries_for_places_below_its_cutoff() {
    let author = key(2);
    let mut checker = checker(&author);
    let honest = feed(&checker, &author, 5);
    let created = honest[0].entry().created;
    revoked(&mut checker, &author, &honest);
    let store = checker.store.clone();

    // The node had seen none of the feed: entries signed before the revocation still
    // arrive, one place left open.
    for index in [0, 1, 2, 4] {
        assert!(
            forwarded(&gossip(&checker, &honest[index]).await),
            "honest entry {} was refused",
            index + 1
        );
    }
    // Forgeries for every place up to the cutoff but the last (pinned by id), each
    // naming the real entry before it, so only the place itself is contested.
    let mut forgeries = 0;
    for seq in 1..=4usize {
        for n in 0..6 {
            let before = (seq > 1).then(|| &honest[seq - 2]);
            let forged = forge(&checker, &author, before, created, n);
            let verdicts = gossip(&checker, &forged).await;
            assert!(
                !forwarded(&verdicts),
                "forged entry {seq} was forwarded: {verdicts:?}"
            );
            assert!(
                !store.contains(&forged.id()).unwrap(),
                "forged entry {seq} was stored"
            );
            forgeries += 1;
        }
    }
    assert_eq!(forgeries, 24);
    assert_eq!(
        store.equivocations(&PublicKey::of(&author)).unwrap(),
        vec![]
    );
    // The place left open is still the real entry's, which links both sides.
    assert!(forwarded(&gossip(&checker, &honest[3]).await));
    assert_eq!(store.stats().unwrap().entries, 5);
    assert!(
        !store.feeds().unwrap()[0].equivocated,
        "the feed reads as equivocated"
    );
}

/// A key thief raced a forgery for the last place into the node before the stewards
/// ended the feed. The entry the cutoff names is still taken: it is the charter's
/// word, not the key's, and it is one entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entry_a_cutoff_names_is_taken_over_a_forgery_held_before() {
    let author = key(2);
    let mut checker = checker(&author);
    let honest = feed(&checker, &author, 2);
    let forged = forge(&checker, &author, Some(&honest[0]), now(), 1);
    let org = checker.charter.borrow().charter().members[0].org;
    assert_eq!(
        checker.store.ingest(&honest[0], org, now()).unwrap(),
        Ingest::Stored
    );
    assert_eq!(
        checker.store.ingest(&forged, org, now()).unwrap(),
        Ingest::Stored
    );
    revoked(&mut checker, &author, &honest);
    assert!(forwarded(&gossip(&checker, &honest[1]).await));
    assert!(checker.store.contains(&honest[1].id()).unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_on_a_warninglist_are_stored_and_counted_per_list_once() {
    let author = key(2);
    let checker = checker(&author);
    // 10.0.0.n: on the default warninglists (RFC 1918).
    let entries = feed(&checker, &author, 3);
    for entry in &entries {
        assert!(forwarded(&gossip(&checker, entry).await));
    }
    // A duplicate is not counted again.
    gossip(&checker, &entries[0]).await;
    assert_eq!(checker.store.stats().unwrap().entries, 3);
    let counts: std::collections::HashMap<String, u64> =
        checker.warninglists.snapshot().into_iter().collect();
    assert_eq!(counts["rfc1918"], 3);
    assert_eq!(counts["public-dns-v4"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gossiped_entry_is_accepted_once_verified_then_stored_and_made_durable() {
    let author = key(2);
    let checker = checker(&author);
    let store = checker.store.clone();
    let entry = feed(&checker, &author, 1).remove(0);
    let (sender, mut verdicts) = mpsc::channel(8);
    // No flush can finish while this is held.
    let hold = store.hold_flushes();
    let job = Job::Gossip {
        payload: entry.payload().to_vec(),
        message_id: MessageId::new(b"entry"),
        source: PeerId::random(),
        reserved: None,
    };
    let worker = {
        let checker = checker.clone();
        tokio::task::spawn_blocking(move || checker.run(job, &sender))
    };
    let verdict = tokio::time::timeout(TIMEOUT, verdicts.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(
            verdict,
            Verdict::Gossip {
                acceptance: Acceptance::Accept,
                ..
            }
        ),
        "{verdict:?}"
    );
    // Forwarded once verified; the worker stores it after, then waits for the flush.
    let deadline = std::time::Instant::now() + TIMEOUT;
    while !store.contains(&entry.id()).unwrap() {
        assert!(
            std::time::Instant::now() < deadline,
            "the entry was never applied"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(store.flushes(), 0, "accepted before any flush");
    assert!(!worker.is_finished(), "the worker waits for the flush");
    drop(hold);
    tokio::time::timeout(TIMEOUT, worker)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(store.flushes(), 1, "the worker made the entry durable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entry_after_a_gap_is_forwarded_then_the_gap_is_reported() {
    let author = key(2);
    let checker = checker(&author);
    let second = feed(&checker, &author, 2).remove(1);
    let (sender, mut verdicts) = mpsc::channel(8);
    let source = PeerId::random();
    let job = Job::Gossip {
        payload: second.payload().to_vec(),
        message_id: MessageId::new(b"second"),
        source,
        reserved: None,
    };
    tokio::task::spawn_blocking(move || checker.run(job, &sender))
        .await
        .unwrap();
    let first = verdicts.recv().await.unwrap();
    assert!(
        matches!(
            first,
            Verdict::Gossip {
                acceptance: Acceptance::Accept,
                gap: None,
                ..
            }
        ),
        "{first:?}"
    );
    let gap = verdicts.recv().await.unwrap();
    assert!(
        matches!(&gap, Verdict::Gap { source: s, missing, .. } if *s == source && *missing == (1..=1)),
        "{gap:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_page_is_reported_once_on_disk_with_one_flush() {
    let author = key(2);
    let checker = checker(&author);
    let store = checker.store.clone();
    let entries = feed(&checker, &author, 10);
    let peer = PeerId::random();
    // Request ids come from a request-response behaviour only.
    let mut requests = request_response::Behaviour::with_codec(
        super::super::codec::SyncCodec::new(std::sync::Arc::default()),
        [(
            super::super::codec::PROTOCOL,
            request_response::ProtocolSupport::Full,
        )],
        request_response::Config::default(),
    );
    let request = requests.send_request(
        &peer,
        super::super::codec::SyncRequest::Valid(threatmesh_protocol::wire::Request::Heads {
            federation: Hash::default(),
        }),
    );
    let job = Job::Range {
        payloads: entries
            .iter()
            .map(|entry| entry.payload().to_vec())
            .collect(),
        peer,
        request,
        author: PublicKey::of(&author),
        to_seq: 10,
    };
    let (sender, mut verdicts) = mpsc::channel(8);
    let worker = {
        let checker = checker.clone();
        tokio::task::spawn_blocking(move || checker.run(job, &sender))
    };
    let verdict = tokio::time::timeout(TIMEOUT, verdicts.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(
            verdict,
            Verdict::Range {
                stored: 10,
                blamed: 0,
                ..
            }
        ),
        "{verdict:?}"
    );
    assert_eq!(
        store.flushes(),
        1,
        "one flush, before the verdict, for the whole page"
    );
    tokio::time::timeout(TIMEOUT, worker)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(store.flushes(), 1);
}
