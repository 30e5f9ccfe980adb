//! Publishing this node's feed as a pipeline: concurrent publishers share one fsync.
//!
//! A call goes through three steps. Under [`Publisher::next`], one call at a time: read
//! the feed's head from the store (one key read), sign the call's bundles as the next
//! entries, apply them to the store ([`Store::append`], no fsync) and take a gossip turn.
//! Then, with the lock released, wait until the entries are on disk: the store's group
//! flush covers every entry applied since the last one, so publishers that applied while
//! a flush ran share the next. Last, in turn order, which is seq order, gossip them:
//! receivers take an entry that arrives before its predecessor for a gap and fetch it.
//!
//! A call returns only once its own entries are durable, and nothing is gossiped before
//! then. So after a crash the feed on disk is a prefix of what was applied (sled recovers
//! a prefix of its batches), no peer holds an entry past it, and the next call continues
//! from the last durable entry without forking the feed. A failure (disk full, a store
//! that refuses writes) stops the call where it is; the head is read from the store again
//! by the next call, never kept in memory, and the store refuses an entry that does not
//! follow it.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};

use threatmesh_protocol::bundle::Bundle;
use threatmesh_protocol::entry::{Body, SignedEntry};
use threatmesh_protocol::seal::{SealContext, Sealed};
use threatmesh_protocol::{Hash, PublicKey, SignedCharter, SigningKey};
use tokio::sync::Notify;

use super::{Error, recipients};
use crate::network::{ClientError, Clock};
use crate::store::{Reading, Store, Ticket};

/// The pipeline: one per node, shared by every publishing call.
#[derive(Debug)]
pub(crate) struct Publisher {
    key: SigningKey,
    store: Store,
    clock: Clock,
    /// Held while a call's entries are signed and applied: it hands out the feed's seqs
    /// one call at a time. Held by the blocking task doing the work, so a caller that
    /// gives up does not let the next call in before that work is done.
    next: Arc<tokio::sync::Mutex<()>>,
    /// Gossip goes out in the order entries were applied.
    turns: Arc<Turns>,
}

/// What one call signed and applied.
#[derive(Debug, Default)]
struct Written {
    entries: Vec<SignedEntry>,
    /// The last entry's batch: once it is on disk, so is every entry before it.
    ticket: Option<Ticket>,
    /// Why the call stopped before its last bundle.
    error: Option<Error>,
}

impl Publisher {
    pub(super) fn new(key: SigningKey, store: Store, clock: Clock) -> Publisher {
        Publisher {
            key,
            store,
            clock,
            next: Arc::default(),
            turns: Arc::default(),
        }
    }

    /// The node's signing key.
    pub(super) fn key(&self) -> &SigningKey {
        &self.key
    }

    /// Publishes `bundles` as the next entries of this node's feed, signed under `charter`;
    /// `gossip` hands one entry's payload to the network. Returns the entry ids once every
    /// entry is on disk and was gossiped. If a bundle cannot be signed or stored, the
    /// entries before it are still made durable and gossiped, and the error is returned.
    pub(super) async fn publish<G, F>(
        self: &Arc<Self>,
        charter: Arc<SignedCharter>,
        bundles: Vec<Bundle>,
        mut gossip: G,
    ) -> Result<Vec<Hash>, Error>
    where
        G: FnMut(Vec<u8>) -> F,
        F: Future<Output = Result<(), ClientError>>,
    {
        let next = Arc::clone(&self.next).lock_owned().await;
        let publisher = Arc::clone(self);
        // Blocking threads start outside any span: carry the node's along.
        let span = tracing::Span::current();
        let (written, turn) = tokio::task::spawn_blocking(move || {
            let _span = span.enter();
            let _next = next;
            let written = publisher.sign_and_append(&charter, bundles);
            // Taken before the lock is released, so turns follow seq order.
            let turn = publisher.turns.take();
            (written, turn)
        })
        .await
        .map_err(internal)?;
        if let Some(ticket) = written.ticket {
            let store = self.store.clone();
            let span = tracing::Span::current();
            tokio::task::spawn_blocking(move || span.in_scope(|| store.wait_durable(ticket)))
                .await
                .map_err(internal)??;
        }
        if !written.entries.is_empty() {
            turn.wait().await;
        }
        let mut ids = Vec::with_capacity(written.entries.len());
        for entry in written.entries {
            ids.push(entry.id());
            gossip(entry.into_payload()).await?;
        }
        drop(turn);
        match written.error {
            Some(error) => Err(error),
            None => Ok(ids),
        }
    }

    /// Signs each bundle as the next entry of this node's feed and applies it to the store,
    /// without waiting for the disk. Runs with [`Publisher::next`] held.
    fn sign_and_append(&self, charter: &SignedCharter, bundles: Vec<Bundle>) -> Written {
        let mut written = Written::default();
        // A store that failed reopens from disk here, before the head is read from it.
        let head = self
            .store
            .writable()
            .and_then(|()| self.store.head(&PublicKey::of(&self.key)));
        let mut head = match head {
            Ok(head) => head,
            Err(error) => {
                written.error = Some(error.into());
                return written;
            }
        };
        for bundle in bundles {
            match self.sign_and_append_one(charter, head.as_ref(), bundle) {
                Ok((entry, ticket)) => {
                    head = Some(entry.head());
                    written.entries.push(entry);
                    written.ticket = Some(ticket);
                }
                Err(error) => {
                    written.error = Some(error);
                    break;
                }
            }
        }
        written
    }

    /// Signs `bundle` as the entry after `head` and applies it.
    fn sign_and_append_one(
        &self,
        charter: &SignedCharter,
        head: Option<&threatmesh_protocol::entry::FeedHead>,
        bundle: Bundle,
    ) -> Result<(SignedEntry, Ticket), Error> {
        let author = PublicKey::of(&self.key);
        let now = self.clock.now();
        // Sealed for the recipients of the charter signed under, checked again here: a
        // newer charter may have arrived since the publish began.
        let (body, opened) = match recipients(charter, &author, bundle.tlp, &bundle.distribution)? {
            None => (Body::Bundle(bundle), None),
            Some(recipients) => {
                let context = SealContext {
                    federation: charter.federation(),
                    author,
                    seq: head.map_or(1, |head| head.seq + 1),
                };
                let mut random = [0u8; 32];
                getrandom::fill(&mut random).map_err(Error::NoRandomness)?;
                let sealed = Sealed::seal(&bundle, &recipients, &context, random)?;
                (Body::Sealed(sealed), Some(bundle))
            }
        };
        let entry = SignedEntry::next(&self.key, charter.federation(), head, now, body)?;
        let member = charter.charter().authorise_entry(&entry.head(), now)?;
        // The publisher's organisation is always a recipient: it keeps what it sealed.
        let ticket = self.store.append(
            &entry,
            member.org,
            opened.as_ref().map_or(Reading::Entry, Reading::Opened),
            now,
        )?;
        Ok((entry, ticket))
    }
}

/// A blocking task that did not finish: a bug, not the caller's fault.
fn internal(error: tokio::task::JoinError) -> Error {
    tracing::error!(%error, "a publishing task failed");
    Error::Internal(error.to_string())
}

/// Turns taken in order; each goes once every earlier one went or was given up.
#[derive(Debug, Default)]
struct Turns {
    state: Mutex<TurnState>,
    changed: Notify,
}

#[derive(Debug, Default)]
struct TurnState {
    /// Turns handed out.
    taken: u64,
    /// The turn whose go it is: every one before it is over.
    current: u64,
    /// Turns after `current` that are over already (their holder gave up or failed).
    over_early: BTreeSet<u64>,
}

/// One place in the order of [`Turns`]; the next turn's go comes when this is dropped.
#[derive(Debug)]
struct Turn {
    turns: Arc<Turns>,
    number: u64,
}

impl Turns {
    fn take(self: &Arc<Self>) -> Turn {
        let mut state = self.lock();
        let number = state.taken;
        state.taken += 1;
        Turn {
            turns: Arc::clone(self),
            number,
        }
    }

    fn lock(&self) -> MutexGuard<'_, TurnState> {
        // Every update leaves the state whole: a panic elsewhere cannot break it.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Turn {
    /// Returns once every earlier turn is over.
    async fn wait(&self) {
        loop {
            let changed = self.turns.changed.notified();
            tokio::pin!(changed);
            // Registered before the check, so a change between the two is not missed.
            changed.as_mut().enable();
            if self.turns.lock().current == self.number {
                return;
            }
            changed.await;
        }
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        let mut state = self.turns.lock();
        if state.current == self.number {
            let mut current = self.number + 1;
            while state.over_early.remove(&current) {
                current += 1;
            }
            state.current = current;
        } else {
            // Given up before its go (a cancelled call): skipped when its go comes.
            state.over_early.insert(self.number);
        }
        drop(state);
        self.turns.changed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests unwrap what they built themselves

    use std::time::Duration;

    use threatmesh_protocol::entry::EntryHeader;
    use threatmesh_protocol::item::{Indicator, Item};
    use threatmesh_protocol::{Kind, Timestamp, Value};
    use tokio::sync::mpsc;

    use threatmesh_protocol::bundle::{Distribution, Tlp};

    use super::*;
    use crate::network::testing;
    use crate::store::StoreError;

    /// The longest a test waits for anything.
    const TIMEOUT: Duration = Duration::from_secs(10);

    fn bundle(n: u32) -> Bundle {
        let value = Value::parse(Kind::Ipv4, &format!("10.0.{}.{}", n / 256, n % 256)).unwrap();
        Bundle {
            tlp: Tlp::Green,
            distribution: Distribution::Federation,
            items: vec![Item::Indicator(Indicator::new(value, Timestamp(1)))],
        }
    }

    /// A publisher over a temporary store, its charter, and where its gossip goes.
    fn publisher() -> (
        Arc<Publisher>,
        Arc<SignedCharter>,
        mpsc::Receiver<Vec<u8>>,
        Gossip,
    ) {
        let key = threatmesh_protocol::testing::key(2);
        let charter = Arc::new(testing::charter(&key));
        let publisher = Publisher::new(key, crate::store::Store::temporary(), Clock::system());
        let (sender, gossiped) = mpsc::channel(64);
        (Arc::new(publisher), charter, gossiped, Gossip(sender))
    }

    /// Gossip into a channel, for the test to read.
    #[derive(Debug, Clone)]
    struct Gossip(mpsc::Sender<Vec<u8>>);

    impl Gossip {
        async fn send(self, payload: Vec<u8>) -> Result<(), ClientError> {
            self.0
                .send(payload)
                .await
                .map_err(|_| ClientError::NodeStopped)
        }
    }

    /// Polls `condition` until it holds, failing after [`TIMEOUT`].
    async fn wait_until(what: &str, condition: impl Fn() -> bool) {
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        while !condition() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_publishes_share_one_flush_and_gossip_in_seq_order() {
        let (publisher, charter, mut gossiped, gossip) = publisher();
        let store = publisher.store.clone();
        let author = PublicKey::of(publisher.key());
        let hold = store.hold_flushes();
        let calls: Vec<_> = (0..8)
            .map(|n| {
                let (publisher, charter, gossip) =
                    (Arc::clone(&publisher), Arc::clone(&charter), gossip.clone());
                tokio::spawn(async move {
                    publisher
                        .publish(charter, vec![bundle(n)], |payload| {
                            gossip.clone().send(payload)
                        })
                        .await
                })
            })
            .collect();
        // Every call signs and applies its entry without waiting for the disk (a call
        // takes its turn once its entry is applied)...
        wait_until("eight entries applied", || {
            publisher.turns.lock().taken == 8
        })
        .await;
        let feed = store.feed(&author).unwrap().unwrap();
        assert_eq!((feed.contiguous, feed.highest), (8, 8));
        // ...but none gossips or returns before its entry is durable.
        assert!(gossiped.try_recv().is_err(), "gossiped before the flush");
        assert!(calls.iter().all(|call| !call.is_finished()));
        assert_eq!(store.flushes(), 0);
        drop(hold);
        let mut seqs = Vec::new();
        for _ in 0..8 {
            let payload = tokio::time::timeout(TIMEOUT, gossiped.recv())
                .await
                .unwrap()
                .unwrap();
            seqs.push(EntryHeader::peek(&payload).unwrap().seq);
        }
        assert_eq!(
            seqs,
            (1..=8).collect::<Vec<u64>>(),
            "gossip follows the feed"
        );
        for call in calls {
            let ids = tokio::time::timeout(TIMEOUT, call)
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            assert_eq!(ids.len(), 1);
        }
        assert_eq!(store.flushes(), 1, "one fsync for all eight entries");
    }

    #[tokio::test]
    async fn failed_write_leaves_the_feed_where_it_was() {
        let (publisher, charter, mut gossiped, gossip) = publisher();
        let store = publisher.store.clone();
        let author = PublicKey::of(publisher.key());
        let first = publisher
            .publish(Arc::clone(&charter), vec![bundle(1)], |payload| {
                gossip.clone().send(payload)
            })
            .await
            .unwrap();
        // No disk has this much free: every write is refused.
        store.set_reserve(u64::MAX);
        let refused = publisher
            .publish(
                Arc::clone(&charter),
                vec![bundle(2), bundle(3)],
                |payload| gossip.clone().send(payload),
            )
            .await;
        assert!(
            matches!(refused, Err(Error::Store(StoreError::DiskFull { .. }))),
            "{refused:?}"
        );
        assert_eq!(store.head(&author).unwrap().unwrap().id, first[0]);
        store.set_reserve(0);
        let next = publisher
            .publish(charter, vec![bundle(4)], |payload| {
                gossip.clone().send(payload)
            })
            .await
            .unwrap();
        let entry = store.entry(&next[0]).unwrap().unwrap();
        assert_eq!(entry.entry().seq, 2);
        assert_eq!(entry.entry().prev, Some(first[0]));
        let mut sent = Vec::new();
        while let Ok(payload) = gossiped.try_recv() {
            sent.push(Hash::of(&payload));
        }
        assert_eq!(
            sent,
            vec![first[0], next[0]],
            "nothing refused was gossiped"
        );
    }

    #[tokio::test]
    async fn turns_go_in_the_order_taken_and_skip_the_given_up() {
        let turns = Arc::new(Turns::default());
        let (first, second, third) = (turns.take(), turns.take(), turns.take());
        // Given up before its go: skipped when it comes.
        drop(third);
        let fourth = turns.take();
        let second_goes = tokio::spawn(async move {
            second.wait().await;
            second
        });
        let fourth_goes = tokio::spawn(async move { fourth.wait().await });
        tokio::time::timeout(TIMEOUT, first.wait()).await.unwrap();
        drop(first);
        let second = tokio::time::timeout(TIMEOUT, second_goes)
            .await
            .unwrap()
            .unwrap();
        assert!(
            !fourth_goes.is_finished(),
            "the fourth waits for the second"
        );
        drop(second);
        tokio::time::timeout(TIMEOUT, fourth_goes)
            .await
            .unwrap()
            .unwrap();
    }
}
