//! The store's on-disk schema across versions: a store written by schema 1 (the layout
//! before compact index records) opens, is migrated, and answers exactly as it did; a
//! migration cut short by a crash finishes at the next open; a store written by a newer
//! schema is refused with both versions named.
//!
//! `fixtures/store-v1/` was written by [`write_v1_fixture`] with the schema 1 code
//! (commit ba6150c), and `fixtures/store-v1-answers.json` holds that code's answers.

use std::path::{Path, PathBuf};

use serde_json::{Value as Json, json};
use threatmesh_node::store::{Ingest, Options, Reading, Store};
use threatmesh_protocol::bundle::{Bundle, Distribution, Tlp};
use threatmesh_protocol::entry::{Body, FeedHead, SignedEntry};
use threatmesh_protocol::item::{
    Confidence, Context, Indicator, Item, Revocation, RevocationReason, Sighting,
};
use threatmesh_protocol::testing::{FEDERATION, T0, key};
use threatmesh_protocol::{
    EncryptionSecret, Kind, PublicKey, Recipient, SealContext, Sealed, SigningKey, Timestamp, Value,
};

/// When the answers are asked for: after the expiry of the expiring assertions.
const NOW: Timestamp = Timestamp(T0.0 + 86_400_000);

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/store-v1")
}

fn answers_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/store-v1-answers.json")
}

/// One value of every kind, and a few more IPv4 and domain values.
fn values() -> Vec<Value> {
    let mut values: Vec<Value> = [
        (Kind::Ipv4, "198.51.100.7"),
        (Kind::Ipv6, "2001:db8::7"),
        (Kind::Cidr, "203.0.113.0/24"),
        (Kind::Domain, "c2.bad-example.com"),
        (Kind::Url, "http://dl.bad-example.com/gate.php?id=7"),
        (Kind::Email, "phish@bad-example.com"),
        (Kind::Md5, "d41d8cd98f00b204e9800998ecf8427e"),
        (Kind::Sha1, "da39a3ee5e6b4b0d3255bfef95601890afd80709"),
        (
            Kind::Sha256,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        ),
        (
            Kind::Sha512,
            "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e",
        ),
        (Kind::Asn, "AS64500"),
        (Kind::Cve, "CVE-2024-3400"),
        (Kind::StixPattern, "[ipv4-addr:value = '198.51.100.8']"),
    ]
    .into_iter()
    .map(|(kind, text)| Value::parse(kind, text).expect("fixture values are valid"))
    .collect();
    for n in 1..=20 {
        values.push(Value::parse(Kind::Ipv4, &format!("192.0.2.{n}")).expect("an address"));
        values
            .push(Value::parse(Kind::Domain, &format!("n{n}.bad-example.org")).expect("a domain"));
    }
    values
}

fn indicator(value: &Value, confidence: u8, until: Option<Timestamp>, threat: &str) -> Item {
    Item::Indicator(Indicator {
        value: value.clone(),
        confidence: Confidence::new(confidence).expect("a confidence"),
        valid_from: T0,
        valid_until: until,
        labels: vec!["c2".into(), threat.to_lowercase()],
        context: Context {
            threat: Some(threat.into()),
            ..Context::default()
        },
    })
}

fn bundle(tlp: Tlp, items: Vec<Item>) -> Bundle {
    Bundle {
        tlp,
        distribution: Distribution::Federation,
        items,
    }
}

fn next(author: &SigningKey, head: Option<&FeedHead>, at: u64, body: Body) -> SignedEntry {
    SignedEntry::next(author, FEDERATION, head, Timestamp(T0.0 + at), body)
        .expect("a fixture entry")
}

fn sealed(author: &SigningKey, seq: u64, bundle: &Bundle) -> Body {
    let secret = EncryptionSecret::from_bytes([0x51; 32]);
    let recipient = Recipient {
        org: PublicKey([1; 32]),
        encryption_key: secret.public_key(),
    };
    let context = SealContext {
        federation: FEDERATION,
        author: PublicKey::of(author),
        seq,
    };
    Body::Sealed(Sealed::seal(bundle, &[recipient], &context, [seq as u8; 32]).expect("sealed"))
}

/// The bundle of the sealed entry the fixture holds unread.
fn unread_bundle() -> Bundle {
    bundle(
        Tlp::Red,
        vec![indicator(&values()[8], 70, None, "Cobalt Strike")],
    )
}

/// The fixture's entries, ingested in a fixed order: two feeds; assertions with shared and
/// with their own details, some expiring; a revocation and a sighting; a sealed entry
/// opened on arrival and one left unread; an equivocating second entry at a taken slot.
fn fill(store: &Store) {
    let values = values();
    let (a, b) = (key(1), key(2));
    let (org_a, org_b) = (PublicKey([1; 32]), PublicKey([2; 32]));
    let later = Some(Timestamp(T0.0 + 3_600_000));
    let items: Vec<Item> = values
        .iter()
        .enumerate()
        .map(|(n, value)| match n % 3 {
            0 => indicator(value, 80, None, "QakBot"),
            1 => indicator(value, 60, later, "Emotet"),
            _ => indicator(value, u8::try_from(n).unwrap_or(0), None, "IcedID"),
        })
        .collect();
    let a1 = next(&a, None, 1, Body::Bundle(bundle(Tlp::Green, items)));
    let a2 = next(
        &a,
        Some(&a1.head()),
        2,
        Body::Bundle(bundle(
            Tlp::Amber,
            vec![
                Item::Revocation(Revocation {
                    value: values[0].clone(),
                    reason: RevocationReason::FalsePositive,
                    note: Some("a CDN address".into()),
                }),
                Item::Sighting(Sighting {
                    value: values[3].clone(),
                    count: 12,
                    first_seen: T0,
                    last_seen: Timestamp(T0.0 + 5),
                    note: None,
                }),
            ],
        )),
    );
    let opened = bundle(
        Tlp::Red,
        values[4..7]
            .iter()
            .map(|value| indicator(value, 90, None, "Cobalt Strike"))
            .collect(),
    );
    let a3 = next(&a, Some(&a2.head()), 3, sealed(&a, 3, &opened));
    let b1 = next(
        &b,
        None,
        4,
        Body::Bundle(bundle(
            Tlp::Clear,
            vec![indicator(&values[0], 40, None, "QakBot")],
        )),
    );
    let b1_rival = next(
        &b,
        None,
        5,
        Body::Bundle(bundle(
            Tlp::Clear,
            vec![indicator(&values[1], 40, None, "QakBot")],
        )),
    );
    let unread = unread_bundle();
    let b2 = next(&b, Some(&b1.head()), 6, sealed(&b, 2, &unread));
    assert_eq!(unread, unread_bundle(), "the bundle read later is this one");
    let ingest = |entry: &SignedEntry, org, reading| {
        store
            .ingest_opened(entry, org, reading, T0)
            .expect("fixture entries are stored")
    };
    assert_eq!(ingest(&a1, org_a, Reading::Entry), Ingest::Stored);
    assert_eq!(ingest(&a2, org_a, Reading::Entry), Ingest::Stored);
    assert_eq!(ingest(&a3, org_a, Reading::Opened(&opened)), Ingest::Stored);
    assert_eq!(ingest(&b1, org_b, Reading::Entry), Ingest::Stored);
    assert_eq!(
        ingest(&b1_rival, org_b, Reading::Entry),
        Ingest::Equivocation { seq: 1 }
    );
    assert_eq!(ingest(&b2, org_b, Reading::Unopened), Ingest::Stored);
}

/// Everything the store says about the fixture's values, and its counts.
fn answers(store: &Store) -> Json {
    let lookups: Vec<Json> = values()
        .iter()
        .map(|value| json!(store.lookup(value, NOW).expect("lookup")))
        .collect();
    let stats = store.stats().expect("stats");
    json!({
        "lookups": lookups,
        "entries": stats.entries,
        "sealed": stats.sealed,
        "unread": stats.unread,
        "records": stats.records,
    })
}

/// Writes the fixture with the code of the day: run only to make `fixtures/store-v1/`,
/// with `THREATMESH_WRITE_STORE_FIXTURE=1`, on the schema 1 code.
#[test]
#[ignore = "writes the fixture; run by hand on the schema 1 code"]
fn write_v1_fixture() {
    if std::env::var_os("THREATMESH_WRITE_STORE_FIXTURE").is_none() {
        return;
    }
    let dir = fixture();
    assert!(!dir.exists(), "{} exists already", dir.display());
    let store = Store::open(&dir, &Options::default()).expect("store");
    fill(&store);
    let answers = answers(&store);
    store.flush().expect("flush");
    drop(store);
    std::fs::write(
        answers_file(),
        serde_json::to_string_pretty(&answers).expect("json"),
    )
    .expect("answers written");
}

/// A copy of the schema 1 fixture in a new temporary directory (sled writes to what it
/// opens).
fn v1_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temporary directory");
    for file in std::fs::read_dir(fixture()).expect("the fixture") {
        let file = file.expect("a fixture file");
        if file.file_type().expect("a file type").is_file() {
            std::fs::copy(file.path(), dir.path().join(file.file_name())).expect("copied");
        }
    }
    dir
}

fn expected_answers() -> Json {
    let text = std::fs::read_to_string(answers_file()).expect("the fixture's answers");
    serde_json::from_str(&text).expect("answers are JSON")
}

/// The schema version written in the store at `dir` (opened with sled itself, as the
/// store would not open a half-migrated one without finishing it).
fn schema_on_disk(dir: &Path) -> (u32, bool) {
    let db = sled::open(dir).expect("sled opens the store");
    let version = db.get(b"mschema").expect("read").expect("a schema version");
    let migrating = db.get(b"mmigration").expect("read").is_some();
    let version = u32::from_be_bytes(version.as_ref().try_into().expect("4 bytes"));
    (version, migrating)
}

#[test]
fn a_schema_1_store_is_migrated_on_open_and_answers_as_before() {
    let dir = v1_copy();
    assert_eq!(schema_on_disk(dir.path()), (1, false));
    let store = Store::open(dir.path(), &Options::default()).expect("the v1 store opens");
    assert_eq!(answers(&store), expected_answers());
    drop(store);
    assert_eq!(schema_on_disk(dir.path()), (2, false));
    // And a fresh store fed the same entries answers the same.
    let fresh = tempfile::tempdir().expect("temporary directory");
    let store = Store::open(fresh.path(), &Options::default()).expect("a new store");
    fill(&store);
    assert_eq!(answers(&store), expected_answers());
}

#[test]
fn a_sealed_entry_left_unread_in_schema_1_is_indexed_when_read_after_the_migration() {
    let dir = v1_copy();
    let store = Store::open(dir.path(), &Options::default()).expect("the v1 store opens");
    let unread = store.unread_after(None, 10).expect("unread entries");
    assert_eq!(unread.len(), 1);
    let value = &values()[8];
    let before = store.lookup(value, NOW).expect("lookup").assertions.len();
    let ticket = store
        .read_later(&unread[0], &unread_bundle(), NOW)
        .expect("read later")
        .expect("it was unread");
    store.wait_durable(ticket).expect("durable");
    let after = store.lookup(value, NOW).expect("lookup");
    assert_eq!(after.assertions.len(), before + 1);
    assert!(
        after
            .assertions
            .iter()
            .any(|assertion| assertion.entry == unread[0] && assertion.tlp == Tlp::Red)
    );
}

/// The child half of the interrupted migration: opens the store named by the variable,
/// with the migration told to stop dead after two batches.
#[test]
#[ignore = "run by interrupted_migration_finishes_at_the_next_open"]
fn migration_child() {
    let Some(dir) = std::env::var_os("THREATMESH_MIGRATION_CHILD_DIR") else {
        return;
    };
    let opened = Store::open(PathBuf::from(dir), &Options::default());
    // Reaching here means the migration was not cut short: the parent fails on it.
    drop(opened);
}

#[test]
fn interrupted_migration_finishes_at_the_next_open() {
    let dir = v1_copy();
    let status = std::process::Command::new(std::env::current_exe().expect("own path"))
        .args(["migration_child", "--exact", "--ignored", "--nocapture"])
        .env("THREATMESH_MIGRATION_CHILD_DIR", dir.path())
        .env("THREATMESH_STORE_MIGRATION_CRASH_AFTER", "2")
        .status()
        .expect("the child runs");
    assert!(!status.success(), "the migration was to be cut short");
    // Cut short: still schema 1, with a mark saying where to go on.
    assert_eq!(schema_on_disk(dir.path()), (1, true));
    let store = Store::open(dir.path(), &Options::default()).expect("opens and finishes");
    assert_eq!(answers(&store), expected_answers());
    drop(store);
    assert_eq!(schema_on_disk(dir.path()), (2, false));
}

#[test]
fn a_store_of_a_newer_schema_is_refused_naming_both_versions() {
    let dir = v1_copy();
    {
        let db = sled::open(dir.path()).expect("sled opens the store");
        db.insert(b"mschema", &7_u32.to_be_bytes())
            .expect("written");
        db.flush().expect("flushed");
    }
    let error = Store::open(dir.path(), &Options::default())
        .expect_err("a newer schema is refused")
        .to_string();
    assert!(error.contains("schema version 7"), "{error}");
    assert!(error.contains("versions 1 to 2"), "{error}");
    // Nothing was changed: the store still says 7.
    assert_eq!(schema_on_disk(dir.path()).0, 7);
}
