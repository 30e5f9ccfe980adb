//! Crash safety: a child process writes continuously from several threads or tasks and is
//! killed with SIGKILL at random moments; after each kill the store opens cleanly and holds
//! every entry the child had acknowledged.
//!
//! The child is this same test binary, run with `--ignored --exact <child test>` and the
//! store directory in an environment variable. It prints `ack <id>` only once the write
//! returned Ok, so every printed id was acknowledged as durable. Two children:
//!
//! - `crash_child` ingests into the store directly. Besides the writers, a duplicator
//!   thread ingests each entry again while its writer is still storing it, so acknowledged
//!   duplicates are checked too.
//! - `publish_crash_child` runs a node (no peers) and publishes from several tasks at once
//!   through its `publish::Publisher`, group-committed. After each kill the node's own feed
//!   must be whole: no gap, each entry's `prev` naming the one before, so the next run
//!   continues from the last durable entry without forking the feed.

#![allow(clippy::unwrap_used)] // tests unwrap what they built themselves

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;

use threatmesh_node::network;
use threatmesh_node::publish::Publisher;
use threatmesh_node::store::{Options, Store};
use threatmesh_protocol::bundle::{Bundle, Distribution, Tlp};
use threatmesh_protocol::entry::{Body, SignedEntry};
use threatmesh_protocol::item::{Indicator, Item};
use threatmesh_protocol::testing::{key, one_member_charter};
use threatmesh_protocol::{Hash, Kind, PublicKey, SignedCharter, SigningKey, Timestamp, Value};

const CHILD_DIR: &str = "THREATMESH_CRASH_CHILD_DIR";
const FEDERATION: Hash = Hash([0xfe; 32]);
const WRITERS: u8 = 3;
const ROUNDS: usize = 24;
/// Tasks of the publishing child that publish at once.
const PUBLISHERS: u32 = 4;
const PUBLISH_ROUNDS: usize = 16;

/// The child: each writer thread extends its own feed from where the store left it.
#[test]
#[ignore = "the child process of acknowledged_entries_survive_kill_9"]
fn crash_child() {
    let Some(dir) = std::env::var_os(CHILD_DIR) else {
        panic!("run by acknowledged_entries_survive_kill_9 only");
    };
    let store = Store::open(&dir, &Options::default()).unwrap();
    let (copies, to_duplicate) = std::sync::mpsc::sync_channel::<SignedEntry>(16);
    let duplicator = {
        let store = store.clone();
        std::thread::spawn(move || {
            for entry in to_duplicate {
                store
                    .ingest(&entry, PublicKey([0; 32]), Timestamp(1))
                    .unwrap();
                println!("ack {}", entry.id());
            }
        })
    };
    let writers: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let store = store.clone();
            let copies = copies.clone();
            std::thread::spawn(move || write_forever(&store, writer, &copies))
        })
        .collect();
    for writer in writers {
        writer.join().unwrap();
    }
    duplicator.join().unwrap();
}

fn write_forever(store: &Store, writer: u8, copies: &std::sync::mpsc::SyncSender<SignedEntry>) {
    let key = SigningKey::from_bytes(&[writer + 1; 32]);
    let author = PublicKey::of(&key);
    let mut head = store
        .heads()
        .unwrap()
        .into_iter()
        .find(|head| head.author == author);
    loop {
        let seq = head.map_or(1, |head| head.seq + 1);
        let items = (0..50u32)
            .map(|n| {
                let text = format!("10.{writer}.{}.{}", seq % 250, n);
                let value = Value::parse(Kind::Ipv4, &text).unwrap();
                Item::Indicator(Indicator::new(value, Timestamp(seq)))
            })
            .collect();
        let body = Body::Bundle(Bundle {
            tlp: Tlp::Green,
            distribution: Distribution::Federation,
            items,
        });
        let entry =
            SignedEntry::next(&key, FEDERATION, head.as_ref(), Timestamp(seq), body).unwrap();
        // Writer 0's entries also go to the duplicator, which races this very ingest.
        if writer == 0 {
            copies.send(entry.clone()).unwrap();
        }
        store
            .ingest(&entry, PublicKey([writer; 32]), Timestamp(seq))
            .unwrap();
        println!("ack {}", entry.id());
        head = Some(entry.head());
    }
}

/// A small deterministic generator, so a failing round can be replayed.
struct XorShift(u64);

impl XorShift {
    fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % bound
    }
}

/// Runs the child until it has acknowledged `kill_after` entries, kills it with SIGKILL,
/// and returns every id it acknowledged (including those printed between the last read and
/// the kill). Fails if the child stopped by itself (a panic) or stalled.
fn run_child_and_kill(child: &str, dir: &Path, kill_after: u64) -> Vec<Hash> {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", child, "--nocapture"])
        .env(CHILD_DIR, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
        text
    });
    let (acks, acked) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        // `split` yields complete lines; a line cut by the kill does not parse and is
        // dropped: its entry was never acknowledged.
        let mut ids = Vec::new();
        for line in BufReader::new(stdout).split(b'\n') {
            let Ok(line) = line else { break };
            let Some(hex) = line.strip_prefix(b"ack ") else {
                continue;
            };
            let Ok(id) = std::str::from_utf8(hex).unwrap_or("").parse::<Hash>() else {
                continue;
            };
            ids.push(id);
            let _ = acks.send(());
        }
        ids
    });
    let mut received = 0;
    while received < kill_after
        && acked
            .recv_timeout(std::time::Duration::from_secs(60))
            .is_ok()
    {
        received += 1;
    }
    child.kill().unwrap();
    let status = child.wait().unwrap();
    let errors = errors.join().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9),
        "the child must die by SIGKILL, not by itself; it said:\n{errors}"
    );
    assert_eq!(
        received, kill_after,
        "the child stalled before acknowledging {kill_after} entries; it said:\n{errors}"
    );
    reader.join().unwrap()
}

#[test]
fn acknowledged_entries_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let mut random = XorShift(0x9E37_79B9_7F4A_7C15);
    let mut acknowledged: Vec<Hash> = Vec::new();
    for round in 0..ROUNDS {
        let kill_after = 1 + random.below(60);
        let acked = run_child_and_kill("crash_child", dir.path(), kill_after);
        assert!(
            !acked.is_empty(),
            "round {round}: the child acknowledged nothing"
        );
        acknowledged.extend(acked);

        let store = Store::open(dir.path(), &Options::default())
            .unwrap_or_else(|error| panic!("round {round}: store does not open: {error}"));
        for id in &acknowledged {
            let entry = store
                .entry(id)
                .unwrap()
                .unwrap_or_else(|| panic!("round {round}: acknowledged entry {id} is missing"));
            // The index agrees: the entry's first value is found, attributed to it.
            let Body::Bundle(bundle) = &entry.entry().body else {
                panic!("round {round}: the test publishes clear bundles only");
            };
            let lookup = store.lookup(bundle.items[0].value(), Timestamp(1)).unwrap();
            assert!(
                lookup
                    .assertions
                    .iter()
                    .any(|assertion| assertion.entry == *id),
                "round {round}: entry {id} is stored but not indexed"
            );
        }
        // Each writer appends in order, so its feed has no gap, and the index agrees.
        for feed in store.feeds().unwrap() {
            assert_eq!(
                feed.contiguous, feed.highest,
                "round {round}: a gap in {:?}",
                feed.author
            );
        }
        let stats = store.stats().unwrap();
        let distinct: std::collections::HashSet<&Hash> = acknowledged.iter().collect();
        assert!(stats.entries >= distinct.len() as u64);
        assert_eq!(stats.records, stats.entries * 50);
        drop(store);
    }
}

/// The publishing node's key, and a charter that lets it publish.
fn publishing_node() -> (SigningKey, SignedCharter) {
    let (steward, org, node) = (key(0x51), key(0x52), key(0x53));
    let charter = one_member_charter("crash", "CERT-C", "XX", &org, &node, &steward);
    (node, charter)
}

/// The publishing child: a node with no peers, its store in the directory given, and
/// [`PUBLISHERS`] tasks publishing through its publisher at once, forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the child process of acknowledged_publishes_survive_kill_9_without_a_fork"]
async fn publish_crash_child() {
    let Some(dir) = std::env::var_os(CHILD_DIR) else {
        panic!("run by acknowledged_publishes_survive_kill_9_without_a_fork only");
    };
    let (node, charter) = publishing_node();
    let store = Store::open(&dir, &Options::default()).unwrap();
    if store.latest_charter().unwrap().is_none() {
        store.put_charter(&charter).unwrap();
    }
    let (client, event_loop) = network::new(
        network::Config::default(),
        node.clone(),
        store.clone(),
        charter,
    )
    .unwrap();
    tokio::spawn(event_loop.run());
    let publisher = Publisher::new(node, store, client);
    let publishers: Vec<_> = (0..PUBLISHERS)
        .map(|task| {
            let publisher = publisher.clone();
            tokio::spawn(async move {
                for n in 0u32.. {
                    let items = (0..20u32)
                        .map(|i| {
                            let text = format!("10.{task}.{}.{i}", n % 250);
                            Item::Indicator(Indicator::new(
                                Value::parse(Kind::Ipv4, &text).unwrap(),
                                Timestamp(1),
                            ))
                        })
                        .collect();
                    let ids = publisher
                        .publish(Tlp::Green, Distribution::Federation, items)
                        .await
                        .unwrap_or_else(|error| panic!("publishing failed: {error}"));
                    for id in ids {
                        println!("ack {id}");
                    }
                }
            })
        })
        .collect();
    for publisher in publishers {
        publisher.await.unwrap();
    }
}

#[test]
fn acknowledged_publishes_survive_kill_9_without_a_fork() {
    let dir = tempfile::tempdir().unwrap();
    let author = PublicKey::of(&publishing_node().0);
    let mut random = XorShift(0x2545_F491_4F6C_DD1D);
    let mut acknowledged: Vec<Hash> = Vec::new();
    let mut last_head = 0;
    for round in 0..PUBLISH_ROUNDS {
        let kill_after = 1 + random.below(40);
        let acked = run_child_and_kill("publish_crash_child", dir.path(), kill_after);
        acknowledged.extend(acked);

        let store = Store::open(dir.path(), &Options::default())
            .unwrap_or_else(|error| panic!("round {round}: store does not open: {error}"));
        for id in &acknowledged {
            assert!(
                store.contains(id).unwrap(),
                "round {round}: acknowledged entry {id} is missing"
            );
        }
        let feed = store.feed(&author).unwrap().unwrap();
        assert_eq!(
            feed.contiguous, feed.highest,
            "round {round}: a gap in the feed"
        );
        assert!(!feed.equivocated, "round {round}: the feed forked");
        assert!(
            feed.contiguous > last_head,
            "round {round}: publishing did not continue from the head"
        );
        // Every entry names the one before it: one chain from seq 1 to the head.
        let range = store
            .range(&author, 1, feed.contiguous, usize::MAX)
            .unwrap();
        let mut previous = None;
        for (index, payload) in range.payloads.into_iter().enumerate() {
            let entry = SignedEntry::open(payload).unwrap();
            assert_eq!(entry.entry().seq, index as u64 + 1, "round {round}");
            assert_eq!(
                entry.entry().prev,
                previous,
                "round {round}: entry {} does not follow the one before",
                index + 1
            );
            previous = Some(entry.id());
        }
        assert_eq!(previous, store.head(&author).unwrap().map(|head| head.id));
        last_head = feed.contiguous;
        drop(store);
    }
}
