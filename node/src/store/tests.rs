use std::sync::Arc;

use threatmesh_protocol::bundle::{Bundle, Distribution, Tlp};
use threatmesh_protocol::entry::{Body, FeedHead, SignedEntry};
use threatmesh_protocol::item::{Indicator, Item, Revocation, RevocationReason, Sighting};
use threatmesh_protocol::testing::{FEDERATION, T0, key};
use threatmesh_protocol::{Hash, Kind, PublicKey, SigningKey, Timestamp, Value};

use super::*;

fn org(seed: u8) -> PublicKey {
    PublicKey([seed; 32])
}

fn ip(text: &str) -> Value {
    Value::parse(Kind::Ipv4, text).unwrap()
}

fn assert_item(value: &Value) -> Item {
    Item::Indicator(Indicator::new(value.clone(), T0))
}

fn entry_after(
    author: &SigningKey,
    head: Option<&FeedHead>,
    created: Timestamp,
    items: Vec<Item>,
) -> SignedEntry {
    let bundle = Bundle {
        tlp: Tlp::Green,
        distribution: Distribution::Federation,
        items,
    };
    SignedEntry::next(author, FEDERATION, head, created, Body::Bundle(bundle)).unwrap()
}

/// A feed of `count` entries by `author`, each asserting one value `10.0.0.<seq>`.
fn feed(author: &SigningKey, count: u64) -> Vec<SignedEntry> {
    let mut entries: Vec<SignedEntry> = Vec::new();
    for seq in 1..=count {
        let value = ip(&format!("10.0.{}.{}", seq / 256, seq % 256));
        let entry = entry_after(
            author,
            entries.last().map(SignedEntry::head).as_ref(),
            Timestamp(T0.0 + seq),
            vec![assert_item(&value)],
        );
        entries.push(entry);
    }
    entries
}

#[test]
fn stored_entry_is_found_by_value_and_id() {
    let store = Store::temporary();
    let value = ip("192.0.2.1");
    let entry = entry_after(&key(1), None, T0, vec![assert_item(&value)]);
    assert_eq!(store.ingest(&entry, org(1), T0).unwrap(), Ingest::Stored);

    assert_eq!(store.entry(&entry.id()).unwrap(), Some(entry.clone()));
    let lookup = store.lookup(&value, T0).unwrap();
    assert_eq!(lookup.assertions.len(), 1);
    let assertion = &lookup.assertions[0];
    assert_eq!(assertion.org, org(1));
    assert_eq!(assertion.entry, entry.id());
    assert_eq!(assertion.state, State::Active);
    assert!(
        store
            .lookup(&ip("192.0.2.10"), T0)
            .unwrap()
            .assertions
            .is_empty()
    );
    assert_eq!(
        store.stats().unwrap(),
        Stats {
            entries: 1,
            sealed: 0,
            unread: 0,
            records: 1,
            bytes_on_disk: store.stats().unwrap().bytes_on_disk
        }
    );
}

#[test]
fn ingesting_twice_is_a_duplicate_and_writes_nothing() {
    let store = Store::temporary();
    let entry = feed(&key(1), 1).remove(0);
    assert_eq!(store.ingest(&entry, org(1), T0).unwrap(), Ingest::Stored);
    let before = store.stats().unwrap();
    assert_eq!(store.ingest(&entry, org(1), T0).unwrap(), Ingest::Duplicate);
    let after = store.stats().unwrap();
    assert_eq!(
        (before.entries, before.records),
        (after.entries, after.records)
    );
    assert_eq!(store.added_after(Timestamp::EPOCH, 10).unwrap().len(), 1);
}

#[test]
fn gap_is_reported_then_filled() {
    let store = Store::temporary();
    let author = key(1);
    let entries = feed(&author, 5);
    let feed_author = PublicKey::of(&author);
    store.ingest(&entries[0], org(1), T0).unwrap();
    assert_eq!(
        store.ingest(&entries[3], org(1), T0).unwrap(),
        Ingest::Gap { missing: 2..=3 }
    );
    assert_eq!(
        store.ingest(&entries[4], org(1), T0).unwrap(),
        Ingest::Stored,
        "the gap is before seq 4, not before 5"
    );
    assert_eq!(store.missing(&feed_author, 7).unwrap(), vec![2..=3, 6..=7]);
    assert_eq!(store.first_missing(&feed_author, 7).unwrap(), Some(2..=3));
    assert_eq!(store.heads().unwrap()[0].seq, 1);

    store.ingest(&entries[2], org(1), T0).unwrap();
    assert_eq!(store.missing(&feed_author, 5).unwrap(), vec![2..=2]);
    assert_eq!(store.first_missing(&feed_author, 5).unwrap(), Some(2..=2));
    assert_eq!(
        store.ingest(&entries[1], org(1), T0).unwrap(),
        Ingest::Stored
    );
    // The contiguous head jumps over everything already held.
    let heads = store.heads().unwrap();
    assert_eq!(heads, vec![entries[4].head()]);
    assert!(store.missing(&feed_author, 5).unwrap().is_empty());
    assert_eq!(store.first_missing(&feed_author, 5).unwrap(), None);
    assert_eq!(store.first_missing(&feed_author, 8).unwrap(), Some(6..=8));
    let state = store.feed(&feed_author).unwrap().unwrap();
    assert_eq!((state.contiguous, state.highest), (5, 5));
}

#[test]
fn first_entry_after_nothing_is_a_gap_from_one() {
    let store = Store::temporary();
    let entries = feed(&key(1), 3);
    assert_eq!(
        store.ingest(&entries[2], org(1), T0).unwrap(),
        Ingest::Gap { missing: 1..=2 }
    );
    assert!(store.heads().unwrap().is_empty(), "no contiguous part yet");
}

#[test]
fn equivocation_keeps_both_entries_and_flags_the_feed() {
    let store = Store::temporary();
    let author = key(1);
    let first = entry_after(&author, None, T0, vec![assert_item(&ip("192.0.2.1"))]);
    let twin = entry_after(&author, None, T0, vec![assert_item(&ip("192.0.2.2"))]);
    store.ingest(&first, org(1), T0).unwrap();
    assert_eq!(
        store.ingest(&twin, org(1), T0).unwrap(),
        Ingest::Equivocation { seq: 1 }
    );
    // Both are kept as evidence; the twin is not indexed.
    assert_eq!(store.entry(&twin.id()).unwrap(), Some(twin.clone()));
    assert_eq!(
        store.equivocations(&PublicKey::of(&author)).unwrap(),
        vec![(1, twin.id())]
    );
    assert!(
        store
            .feed(&PublicKey::of(&author))
            .unwrap()
            .unwrap()
            .equivocated
    );
    assert!(
        store
            .lookup(&ip("192.0.2.2"), T0)
            .unwrap()
            .assertions
            .is_empty()
    );
    // Seeing the evidence again changes nothing.
    assert_eq!(store.ingest(&twin, org(1), T0).unwrap(), Ingest::Duplicate);
}

#[test]
fn entry_naming_another_predecessor_proves_equivocation() {
    let store = Store::temporary();
    let author = key(1);
    let first = entry_after(&author, None, T0, vec![assert_item(&ip("192.0.2.1"))]);
    let hidden_twin = entry_after(&author, None, T0, vec![assert_item(&ip("192.0.2.9"))]);
    let second = entry_after(
        &author,
        Some(&hidden_twin.head()),
        T0,
        vec![assert_item(&ip("192.0.2.3"))],
    );
    store.ingest(&first, org(1), T0).unwrap();
    assert_eq!(
        store.ingest(&second, org(1), T0).unwrap(),
        Ingest::Equivocation { seq: 1 }
    );
    assert!(
        store
            .feed(&PublicKey::of(&author))
            .unwrap()
            .unwrap()
            .equivocated
    );

    // The same, discovered from the other side: the successor arrives first.
    let store = Store::temporary();
    store.ingest(&second, org(1), T0).unwrap();
    assert_eq!(
        store.ingest(&first, org(1), T0).unwrap(),
        Ingest::Equivocation { seq: 1 }
    );
}

#[test]
fn revocation_withdraws_only_its_organisations_earlier_assertions() {
    let store = Store::temporary();
    let value = ip("198.51.100.7");
    let (cert_fr, cert_de) = (key(1), key(2));
    let by_fr = entry_after(&cert_fr, None, T0, vec![assert_item(&value)]);
    let by_de = entry_after(&cert_de, None, T0, vec![assert_item(&value)]);
    let revoke = entry_after(
        &cert_fr,
        Some(&by_fr.head()),
        Timestamp(T0.0 + 1000),
        vec![Item::Revocation(Revocation {
            value: value.clone(),
            reason: RevocationReason::FalsePositive,
            note: Some("sinkhole".into()),
        })],
    );
    for (entry, org_seed) in [(&by_fr, 1), (&by_de, 2), (&revoke, 1)] {
        store.ingest(entry, org(org_seed), T0).unwrap();
    }
    let lookup = store.lookup(&value, T0).unwrap();
    let state_of = |org_seed| {
        lookup
            .assertions
            .iter()
            .find(|a| a.org == org(org_seed))
            .unwrap()
            .state
            .clone()
    };
    assert_eq!(
        state_of(1),
        State::Revoked {
            reason: RevocationReason::FalsePositive,
            note: Some("sinkhole".into()),
            entry: revoke.id()
        }
    );
    assert_eq!(state_of(2), State::Active);

    // Asserting it again after the revocation makes it active again.
    let again = entry_after(
        &cert_fr,
        Some(&revoke.head()),
        Timestamp(T0.0 + 2000),
        vec![assert_item(&value)],
    );
    store.ingest(&again, org(1), T0).unwrap();
    let lookup = store.lookup(&value, T0).unwrap();
    let latest = lookup
        .assertions
        .iter()
        .find(|a| a.entry == again.id())
        .unwrap();
    assert_eq!(latest.state, State::Active);
}

#[test]
fn revocation_arriving_before_the_assertion_still_applies() {
    let store = Store::temporary();
    let value = ip("198.51.100.8");
    let author = key(1);
    let assertion = entry_after(&author, None, T0, vec![assert_item(&value)]);
    let revoke = entry_after(
        &author,
        Some(&assertion.head()),
        Timestamp(T0.0 + 1),
        vec![Item::Revocation(Revocation {
            value: value.clone(),
            reason: RevocationReason::TakenDown,
            note: None,
        })],
    );
    store.ingest(&revoke, org(1), T0).unwrap();
    store.ingest(&assertion, org(1), T0).unwrap();
    assert!(matches!(
        store.lookup(&value, T0).unwrap().assertions[0].state,
        State::Revoked { .. }
    ));
}

#[test]
fn indicator_past_valid_until_is_expired_but_kept() {
    let store = Store::temporary();
    let value = ip("203.0.113.5");
    let mut indicator = Indicator::new(value.clone(), T0);
    indicator.valid_until = Some(Timestamp(T0.0 + 10_000));
    let entry = entry_after(&key(1), None, T0, vec![Item::Indicator(indicator)]);
    store.ingest(&entry, org(1), T0).unwrap();
    let state = |now| {
        store.lookup(&value, now).unwrap().assertions[0]
            .state
            .clone()
    };
    assert_eq!(state(Timestamp(T0.0 + 9_999)), State::Active);
    assert_eq!(state(Timestamp(T0.0 + 10_000)), State::Expired);
    assert_eq!(store.entry(&entry.id()).unwrap(), Some(entry));
}

#[test]
fn sightings_are_returned_with_the_value() {
    let store = Store::temporary();
    let value = ip("203.0.113.9");
    let sighting = Item::Sighting(Sighting {
        value: value.clone(),
        count: 42,
        first_seen: T0,
        last_seen: Timestamp(T0.0 + 5),
        note: None,
    });
    let entry = entry_after(&key(3), None, T0, vec![sighting]);
    store.ingest(&entry, org(3), T0).unwrap();
    let lookup = store.lookup(&value, T0).unwrap();
    assert!(lookup.assertions.is_empty());
    assert_eq!(lookup.sightings.len(), 1);
    assert_eq!(lookup.sightings[0].count, 42);
    assert_eq!(lookup.sightings[0].org, org(3));
}

#[test]
fn bulk_lookup_returns_the_known_values_only() {
    let store = Store::temporary();
    let entries = feed(&key(1), 20);
    for entry in &entries {
        store.ingest(entry, org(1), T0).unwrap();
    }
    let values: Vec<Value> = (1..=30).map(|seq| ip(&format!("10.0.0.{seq}"))).collect();
    let found = store.lookup_many(&values, T0).unwrap();
    assert_eq!(found.len(), 20);
    assert!(found.iter().all(|lookup| lookup.assertions.len() == 1));
}

#[test]
fn range_pages_by_bytes_and_always_progresses() {
    let store = Store::temporary();
    let author = key(1);
    let entries = feed(&author, 10);
    for entry in &entries {
        store.ingest(entry, org(1), T0).unwrap();
    }
    let three: usize = entries[2..5].iter().map(|e| e.payload().len()).sum();
    let page = store
        .range(&PublicKey::of(&author), 3, u64::MAX, three)
        .unwrap();
    assert_eq!(page.payloads.len(), 3);
    assert!(page.more);
    assert_eq!(page.payloads[0], entries[2].payload());
    let tiny = store.range(&PublicKey::of(&author), 9, 10, 1).unwrap();
    assert_eq!(tiny.payloads.len(), 1, "a page holds at least one entry");
    assert!(tiny.more);
    let bounded = store
        .range(&PublicKey::of(&author), 4, 5, usize::MAX)
        .unwrap();
    assert_eq!(bounded.payloads.len(), 2);
    assert!(!bounded.more);
    assert!(
        store
            .range(&PublicKey::of(&author), 5, 4, usize::MAX)
            .unwrap()
            .payloads
            .is_empty()
    );
}

#[test]
fn applied_entry_is_readable_at_once_and_durable_after_its_wait() {
    let store = Store::temporary();
    let entry = feed(&key(1), 1).remove(0);
    let applied = store.apply(&entry, org(1), Reading::Entry, T0).unwrap();
    assert_eq!(applied.outcome, Ingest::Stored);
    // Readable, and found by value, before any flush.
    assert!(store.contains(&entry.id()).unwrap());
    assert_eq!(
        store.lookup(&ip("10.0.0.1"), T0).unwrap().assertions.len(),
        1
    );
    assert_eq!(store.flushes(), 0, "applying does not flush");
    store.wait_durable(applied.ticket).unwrap();
    assert_eq!(store.flushes(), 1);
    // Durable already: waiting again costs nothing.
    store.wait_durable(applied.ticket).unwrap();
    assert_eq!(store.flushes(), 1);
}

#[test]
fn one_flush_makes_a_whole_page_durable() {
    let store = Store::temporary();
    let tickets: Vec<Ticket> = feed(&key(1), 20)
        .iter()
        .map(|entry| {
            store
                .apply(entry, org(1), Reading::Entry, T0)
                .unwrap()
                .ticket
        })
        .collect();
    for ticket in tickets {
        store.wait_durable(ticket).unwrap();
    }
    assert_eq!(store.flushes(), 1);
    assert_eq!(
        store
            .feed(&PublicKey::of(&key(1)))
            .unwrap()
            .unwrap()
            .contiguous,
        20
    );
}

#[test]
fn append_refuses_an_entry_that_does_not_follow_the_feed_head() {
    let store = Store::temporary();
    let author = key(1);
    let entries = feed(&author, 3);
    assert!(matches!(
        store.append(&entries[1], org(1), Reading::Entry, T0),
        Err(StoreError::NotNext {
            seq: 2,
            contiguous: 0,
            highest: 0
        })
    ));
    store
        .wait_durable(
            store
                .append(&entries[0], org(1), Reading::Entry, T0)
                .unwrap(),
        )
        .unwrap();
    // Another entry for seq 2, signed from a stale view of the feed, cannot fork it.
    let rival = entry_after(
        &author,
        Some(&entries[0].head()),
        T0,
        vec![assert_item(&ip("10.9.9.2"))],
    );
    store.ingest(&entries[1], org(1), T0).unwrap();
    assert!(matches!(
        store.append(&rival, org(1), Reading::Entry, T0),
        Err(StoreError::NotNext {
            seq: 2,
            contiguous: 2,
            highest: 2
        })
    ));
    assert!(!store.contains(&rival.id()).unwrap(), "nothing was written");
    // An entry held beyond a gap: the next one is refused until the gap is filled.
    let fourth = entry_after(
        &author,
        Some(&entries[2].head()),
        T0,
        vec![assert_item(&ip("10.9.9.4"))],
    );
    store.ingest(&fourth, org(1), T0).unwrap();
    let after_two = entry_after(
        &author,
        Some(&entries[1].head()),
        T0,
        vec![assert_item(&ip("10.9.9.3"))],
    );
    assert!(matches!(
        store.append(&after_two, org(1), Reading::Entry, T0),
        Err(StoreError::NotNext {
            seq: 3,
            contiguous: 2,
            highest: 4
        })
    ));
    assert!(
        !store
            .feed(&PublicKey::of(&author))
            .unwrap()
            .unwrap()
            .equivocated
    );
}

#[test]
fn head_is_the_end_of_the_contiguous_part_of_one_feed() {
    let store = Store::temporary();
    let (author, other) = (key(1), key(2));
    let entries = feed(&author, 4);
    assert_eq!(store.head(&PublicKey::of(&author)).unwrap(), None);
    store.ingest(&entries[3], org(1), T0).unwrap();
    assert_eq!(
        store.head(&PublicKey::of(&author)).unwrap(),
        None,
        "no first entry"
    );
    store.ingest(&entries[0], org(1), T0).unwrap();
    store.ingest(&entries[1], org(1), T0).unwrap();
    store.ingest(&feed(&other, 3)[0], org(2), T0).unwrap();
    assert_eq!(
        store.head(&PublicKey::of(&author)).unwrap(),
        Some(entries[1].head())
    );
}

#[test]
fn range_answers_only_once_what_it_read_is_on_disk() {
    let store = Store::temporary();
    let author = key(1);
    let entries = feed(&author, 3);
    for entry in &entries {
        let _ = store.apply(entry, org(1), Reading::Entry, T0).unwrap();
    }
    assert_eq!(store.flushes(), 0);
    let page = store
        .range(&PublicKey::of(&author), 1, 3, usize::MAX)
        .unwrap();
    assert_eq!(page.payloads.len(), 3);
    assert_eq!(store.flushes(), 1, "the answer waited for one flush");
    store
        .range(&PublicKey::of(&author), 1, 3, usize::MAX)
        .unwrap();
    assert_eq!(store.flushes(), 1, "nothing new to flush");
}

#[test]
fn added_after_lists_entries_in_acceptance_order() {
    let store = Store::temporary();
    let entries = feed(&key(1), 4);
    for (index, entry) in entries.iter().enumerate() {
        store
            .ingest(entry, org(1), Timestamp(T0.0 + 1000 * index as u64))
            .unwrap();
    }
    let after = store.added_after(Timestamp(T0.0 + 1000), 10).unwrap();
    let ids: Vec<Hash> = after.iter().map(|(_, entry)| entry.id()).collect();
    assert_eq!(ids, vec![entries[2].id(), entries[3].id()]);
    assert_eq!(after[0].0, Timestamp(T0.0 + 2000));
    assert_eq!(store.added_after(Timestamp::EPOCH, 3).unwrap().len(), 3);
    let all: Vec<Hash> = store.entries().map(|e| e.unwrap().id()).collect();
    assert_eq!(all, entries.iter().map(SignedEntry::id).collect::<Vec<_>>());
}

#[test]
fn concurrent_ingest_from_several_threads() {
    let store = Store::temporary();
    let feeds: Vec<Vec<SignedEntry>> = (1..=6).map(|seed| feed(&key(seed), 40)).collect();
    let shared = Arc::new(feeds);
    let threads: Vec<_> = (0..6)
        .map(|index| {
            let store = store.clone();
            let feeds = Arc::clone(&shared);
            std::thread::spawn(move || {
                for entry in &feeds[index] {
                    store.ingest(entry, org(1), T0).unwrap();
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let stats = store.stats().unwrap();
    assert_eq!(stats.entries, 240);
    assert_eq!(stats.records, 240);
    assert_eq!(store.heads().unwrap().len(), 6);
    assert!(store.heads().unwrap().iter().all(|head| head.seq == 40));
}

#[test]
fn racing_copies_of_one_entry_store_it_once() {
    let store = Store::temporary();
    let entry = Arc::new(feed(&key(1), 1).remove(0));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            let entry = Arc::clone(&entry);
            std::thread::spawn(move || store.ingest(&entry, org(1), T0).unwrap())
        })
        .collect();
    let outcomes: Vec<Ingest> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(outcomes.iter().filter(|o| **o == Ingest::Stored).count(), 1);
    assert_eq!(
        outcomes.iter().filter(|o| **o == Ingest::Duplicate).count(),
        7
    );
    assert_eq!(store.stats().unwrap().entries, 1);
}

#[test]
fn store_reopens_with_everything() {
    let dir = tempfile::tempdir().unwrap();
    let entries = feed(&key(1), 5);
    {
        let store = Store::open(dir.path(), &Options::default()).unwrap();
        for entry in &entries {
            store.ingest(entry, org(1), T0).unwrap();
        }
    }
    let store = Store::open(dir.path(), &Options::default()).unwrap();
    assert_eq!(store.heads().unwrap(), vec![entries[4].head()]);
    assert_eq!(store.stats().unwrap().entries, 5);
}

#[test]
fn store_of_another_schema_version_is_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = sled::open(dir.path()).unwrap();
        db.insert(keys::SCHEMA, &99u32.to_be_bytes()).unwrap();
        db.flush().unwrap();
    }
    let error = Store::open(dir.path(), &Options::default()).unwrap_err();
    assert!(matches!(
        error,
        StoreError::SchemaVersion {
            found: 99,
            expected: SCHEMA_VERSION,
            ..
        }
    ));
    let message = error.to_string();
    assert!(message.contains("schema version 99"), "{message}");
    assert!(message.contains("reads versions 1 to 2"), "{message}");
}

#[test]
fn foreign_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = sled::open(dir.path()).unwrap();
        db.insert(b"something", b"else").unwrap();
        db.flush().unwrap();
    }
    assert!(matches!(
        Store::open(dir.path(), &Options::default()),
        Err(StoreError::NotAStore { .. })
    ));
}

/// A first charter with `steward` and no members.
fn genesis(steward: &SigningKey) -> threatmesh_protocol::charter::Charter {
    threatmesh_protocol::charter::Charter {
        federation: Hash::default(),
        name: "F".into(),
        version: 1,
        previous: None,
        issued: T0,
        stewards: vec![PublicKey::of(steward)],
        threshold: 1,
        members: vec![],
    }
}

#[test]
fn charters_are_kept_in_version_order() {
    use threatmesh_protocol::charter::{Charter, SignedCharter};
    let store = Store::temporary();
    let steward = key(50);
    let genesis = genesis(&steward);
    let mut first = SignedCharter::propose(genesis.clone()).unwrap();
    first.sign(&steward);
    let mut second = SignedCharter::propose(Charter {
        federation: first.federation(),
        version: 2,
        previous: Some(first.id()),
        ..genesis
    })
    .unwrap();
    second.sign(&steward);
    assert_eq!(store.latest_charter().unwrap(), None);
    store.put_charter(&second).unwrap();
    store.put_charter(&first).unwrap();
    assert_eq!(store.latest_charter().unwrap(), Some(second.clone()));
    assert_eq!(store.charters_after(1).unwrap(), vec![second]);
}

#[test]
fn rival_charters_of_one_version_are_kept_side_by_side_and_the_smallest_id_leads() {
    use threatmesh_protocol::charter::{Charter, SignedCharter};
    let store = Store::temporary();
    let steward = key(50);
    let genesis = genesis(&steward);
    let mut first = SignedCharter::propose(genesis.clone()).unwrap();
    first.sign(&steward);
    let rivals: Vec<SignedCharter> = ["A", "B", "C"]
        .into_iter()
        .map(|name| {
            let mut rival = SignedCharter::propose(Charter {
                federation: first.federation(),
                name: name.into(),
                version: 2,
                previous: Some(first.id()),
                ..genesis.clone()
            })
            .unwrap();
            rival.sign(&steward);
            rival
        })
        .collect();
    store.put_charter(&first).unwrap();
    for rival in &rivals {
        store.put_charter(rival).unwrap();
        // Putting one again keeps one copy.
        store.put_charter(rival).unwrap();
    }
    let mut kept = store.charters_after(1).unwrap();
    assert_eq!(kept.len(), 3);
    kept.sort_by_key(SignedCharter::id);
    assert_eq!(store.charters_after(1).unwrap(), kept, "rivals in id order");
    assert_eq!(store.latest_charter().unwrap().unwrap().id(), kept[0].id());
}

#[test]
fn second_store_on_a_directory_in_use_is_refused_after_a_short_wait() {
    let dir = tempfile::tempdir().unwrap();
    let _first = Store::open(dir.path(), &Options::default()).unwrap();
    let error = Store::open(dir.path(), &Options::default()).unwrap_err();
    assert!(
        error.to_string().contains("could not acquire lock"),
        "{error}"
    );
}

#[test]
fn simultaneous_revocations_resolve_the_same_way_in_any_order() {
    let value = ip("198.51.100.9");
    let assertion = entry_after(&key(1), None, T0, vec![assert_item(&value)]);
    let revoke = |author: u8, reason| {
        entry_after(
            &key(author),
            None,
            Timestamp(T0.0 + 5),
            vec![Item::Revocation(Revocation {
                value: value.clone(),
                reason,
                note: None,
            })],
        )
    };
    // Two nodes of the same organisation revoke at the same millisecond.
    let (a, b) = (
        revoke(2, RevocationReason::FalsePositive),
        revoke(3, RevocationReason::TakenDown),
    );
    let state_after = |order: [&SignedEntry; 3]| {
        let store = Store::temporary();
        for entry in order {
            store.ingest(entry, org(1), T0).unwrap();
        }
        store.lookup(&value, T0).unwrap().assertions[0]
            .state
            .clone()
    };
    assert_eq!(
        state_after([&assertion, &a, &b]),
        state_after([&b, &a, &assertion])
    );
}

#[test]
fn added_pages_cover_every_entry_once_even_within_one_millisecond() {
    let store = Store::temporary();
    let entries = feed(&key(1), 7);
    for entry in &entries {
        // All accepted in the same millisecond.
        store.ingest(entry, org(1), T0).unwrap();
    }
    let mut seen = Vec::new();
    let mut cursor: Option<Vec<u8>> = None;
    loop {
        let page = store.added_page(cursor.as_deref(), 3).unwrap();
        seen.extend(page.entries.into_iter().map(|(_, entry)| entry.id()));
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(
        seen,
        entries.iter().map(SignedEntry::id).collect::<Vec<_>>()
    );
}

#[test]
fn added_rows_keep_write_order_when_now_goes_back() {
    // Ingest workers read the clock before their checks, so a later write may carry an
    // earlier time. Readers resume after the last row they saw: no row may land before it.
    let store = Store::temporary();
    let entries = feed(&key(1), 3);
    let times = [Timestamp(T0.0 + 500), T0, Timestamp(T0.0 + 100)];
    for (entry, now) in entries.iter().zip(times) {
        store.ingest(entry, org(1), now).unwrap();
    }
    let rows = store.added_rows(AddedStart::First, 10).unwrap();
    assert_eq!(
        rows.iter().map(|row| row.entry.id()).collect::<Vec<_>>(),
        entries.iter().map(SignedEntry::id).collect::<Vec<_>>()
    );
    assert!(rows.iter().all(|row| row.added == Timestamp(T0.0 + 500)));
    // A reader that saw the first row finds the other two after it.
    let after = store
        .added_rows(AddedStart::Following(&rows[0].key), 10)
        .unwrap();
    assert_eq!(after.len(), 2);
}

#[test]
fn added_headers_read_the_same_rows_as_added_rows() {
    let store = Store::temporary();
    let mut entries = feed(&key(1), 3);
    entries.extend(feed(&key(2), 2));
    for (n, entry) in entries.iter().enumerate() {
        store
            .ingest(entry, org(1), Timestamp(T0.0 + n as u64))
            .unwrap();
    }
    for start in [AddedStart::First, AddedStart::After(Timestamp(T0.0 + 1))] {
        let rows = store.added_rows(start, 10).unwrap();
        let headers = store.added_headers(start, 10).unwrap();
        assert_eq!(headers.len(), rows.len());
        for (row, header) in rows.iter().zip(&headers) {
            assert_eq!(header.key, row.key);
            assert_eq!(header.added, row.added);
            assert_eq!(header.header.author, row.entry.entry().author);
            assert_eq!(header.header.created, row.entry.entry().created);
            assert_eq!(header.header.seq, row.entry.entry().seq);
        }
    }
    let first = store.added_headers(AddedStart::First, 2).unwrap();
    let rest = store
        .added_headers(AddedStart::Following(&first[1].key), 10)
        .unwrap();
    assert_eq!(first.len() + rest.len(), entries.len());
}

/// A disk with less free space than the reserve: every entry write is refused with a
/// clear error and changes nothing, every read answers as before, a charter (small, and
/// possibly a revocation) is still kept, and writes resume as soon as space is back
/// above the reserve, without reopening the store.
#[test]
fn writes_are_refused_under_the_reserve_and_resume_when_space_returns() {
    use threatmesh_protocol::charter::SignedCharter;
    let store = Store::temporary();
    let author = key(1);
    let entries = feed(&author, 3);
    store.ingest(&entries[0], org(1), T0).unwrap();
    let stats = store.stats().unwrap();
    let head = store.feed(&PublicKey::of(&author)).unwrap();
    assert_eq!(store.space().writes_refused_full, 0);
    let free = store
        .space()
        .free_bytes
        .expect("the temp dir's free space is readable");

    // More than the filesystem has free: the disk is "full" for the store.
    store.set_reserve(free.saturating_mul(2).max(1));
    for _ in 0..2 {
        match store.ingest(&entries[1], org(1), T0) {
            Err(StoreError::DiskFull { reserve_mib, .. }) => assert!(reserve_mib > 0),
            other => panic!("expected DiskFull, got {other:?}"),
        }
    }
    let refused = store.ingest(&entries[1], org(1), T0).unwrap_err();
    assert!(
        refused.to_string().contains("reads go on"),
        "the error says what goes on: {refused}"
    );
    assert_eq!(store.space().writes_refused_full, 3);
    assert!(!store.space().write_failed, "a refusal is not a failure");
    assert_eq!(store.stats().unwrap(), stats, "nothing was written");
    assert_eq!(store.feed(&PublicKey::of(&author)).unwrap(), head);
    assert_eq!(
        store.entry(&entries[0].id()).unwrap(),
        Some(entries[0].clone())
    );
    assert_eq!(store.entry(&entries[1].id()).unwrap(), None);
    let first = ip("10.0.0.1");
    assert_eq!(store.lookup(&first, T0).unwrap().assertions.len(), 1);
    assert_eq!(store.added_after(Timestamp::EPOCH, 10).unwrap().len(), 1);

    let steward = key(50);
    let mut charter = SignedCharter::propose(genesis(&steward)).unwrap();
    charter.sign(&steward);
    store.put_charter(&charter).unwrap();
    assert_eq!(store.latest_charter().unwrap(), Some(charter));

    // Space is back: the same store takes the refused entries.
    store.set_reserve(1);
    assert_eq!(
        store.ingest(&entries[1], org(1), T0).unwrap(),
        Ingest::Stored
    );
    assert_eq!(
        store.ingest(&entries[2], org(1), T0).unwrap(),
        Ingest::Stored
    );
    assert_eq!(store.stats().unwrap().entries, 3);
    assert_eq!(store.space().writes_refused_full, 3);
}
