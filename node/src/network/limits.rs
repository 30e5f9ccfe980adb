//! Rate limits on gossip: token buckets, one counting messages and one counting bytes,
//! for every connected peer (the forwarder) and for every feed author.
//!
//! The event loop asks before handing a message to the ingest pipeline, so a flood costs a
//! map lookup per message (and, within the forwarder's rate, a read of the entry's header
//! for its author), no decoding, no signature check and no queue slot. The forwarder is
//! asked first without being charged, then the author is charged, and the forwarder only
//! after that: a message whose author is over its rate is dropped without charging the
//! forwarder, so an honest relay passing on one member's flood keeps its rate for the
//! others' entries. The author named in the header is not verified yet when its tokens are
//! taken, so they are given back unless the entry is stored: a forged header, a replay or
//! a refused entry costs the author it names nothing once checked, and a forger is blamed
//! and banned as for any forgery. The one exception is an entry refused as from the
//! future: its signature is checked before it is refused, so its author did sign it, and
//! keeps paying for it (such entries are never stored, so they would otherwise cost every
//! node a full check each, without limit by author and without blame). (Tokens are taken up front, not when the entry is
//! stored, so a burst waiting in the ingest queue is limited as it arrives.)
//!
//! A message over a limit is reported to gossipsub as Ignore: not stored, not forwarded,
//! not held against the peer (an honest relay may be passing on someone else's flood). It
//! is not lost for good either: sync fetches missing entries later, at the pace this node
//! asks for them, and sync is not rate-limited by author (it is paced by the receiver: one
//! range per feed at a time).
//!
//! A peer's buckets outlive its connection: when the last one closes they are kept,
//! refilling as time passes, until they are full again (then they are as good as new) or
//! [`RESTING_KEPT`] has passed, so a member that disconnects and reconnects finds the
//! tokens it left, not a fresh burst. Only peers the charter admits ever connect, and at
//! most [`MAX_RESTING`] disconnected peers are remembered (the longest gone is forgotten
//! first), so that map is bounded by the connection limit plus [`MAX_RESTING`]. Author
//! buckets exist only for authors of stored entries and go when the charter no longer
//! certifies them, so that map is bounded by the charter.

use std::collections::HashMap;
use std::time::Duration;

use threatmesh_protocol::wire::MAX_GOSSIP_BYTES;
use tokio::time::Instant;

/// The longest a disconnected peer's buckets are kept. With the default rates a spent
/// bucket is full again within about ten seconds and goes then; this only matters for
/// limits set so low that refilling takes longer, and is long enough that reconnecting
/// over and over never pays.
pub(crate) const RESTING_KEPT: Duration = Duration::from_secs(600);
/// Disconnected peers whose buckets are kept at most: far more than any peer set (a node
/// holds about `target_peers` links), so only a churn of many certified node keys reaches
/// it, and then the peer gone longest gets a fresh burst when it comes back.
pub(crate) const MAX_RESTING: usize = 1024;

/// A gossip rate limit, for one peer or for one feed author: messages and bytes per
/// second, sustained, and the bursts allowed above them. Beyond it messages are ignored
/// (not stored, not forwarded; sync fetches the entries later) and counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Messages per second, sustained.
    pub messages_per_sec: u32,
    /// Messages at once above the sustained rate.
    pub message_burst: u32,
    /// Bytes per second, sustained.
    pub bytes_per_sec: u64,
    /// Bytes at once above the sustained rate (at least one message of
    /// `MAX_GOSSIP_BYTES`).
    pub byte_burst: u64,
}

/// A sustained rate and the burst allowed above it (also the per-address connection
/// limits of `ip_limits.rs`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rate {
    pub(crate) per_sec: f64,
    pub(crate) burst: f64,
}

/// Tokens left, as of `updated`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bucket {
    pub(crate) tokens: f64,
    pub(crate) updated: Instant,
}

impl Bucket {
    pub(crate) fn full(rate: Rate, now: Instant) -> Bucket {
        Bucket {
            tokens: rate.burst,
            updated: now,
        }
    }

    /// Adds the tokens earned since `updated`, up to the burst.
    pub(crate) fn refill(&mut self, rate: Rate, now: Instant) {
        self.tokens = self.tokens_at(rate, now);
        self.updated = now;
    }

    /// Whether the bucket would be full at `now`: as good as new, so it may be forgotten.
    pub(crate) fn is_full(&self, rate: Rate, now: Instant) -> bool {
        self.tokens_at(rate, now) >= rate.burst
    }

    fn tokens_at(&self, rate: Rate, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        (self.tokens + elapsed * rate.per_sec).min(rate.burst)
    }
}

/// The buckets of every key (a connected peer, or a feed author).
#[derive(Debug)]
pub(crate) struct GossipLimits<K> {
    messages: Rate,
    bytes: Rate,
    keys: HashMap<K, (Bucket, Bucket)>,
    /// Keys gone (disconnected peers) whose buckets are kept, and since when.
    resting: HashMap<K, Instant>,
}

impl<K: Eq + std::hash::Hash + Copy> GossipLimits<K> {
    /// Limits of `limit` per key. The byte burst is at least one gossip message, or the
    /// largest entries could never pass.
    pub(crate) fn new(limit: RateLimit) -> GossipLimits<K> {
        GossipLimits {
            messages: Rate {
                per_sec: f64::from(limit.messages_per_sec),
                burst: f64::from(limit.message_burst.max(1)),
            },
            bytes: Rate {
                per_sec: limit.bytes_per_sec as f64,
                burst: (limit.byte_burst as f64).max(MAX_GOSSIP_BYTES as f64),
            },
            keys: HashMap::new(),
            resting: HashMap::new(),
        }
    }

    /// The buckets of `key`, refilled to `now`.
    fn buckets(&mut self, key: K, now: Instant) -> &mut (Bucket, Bucket) {
        let (messages, volume) = (self.messages, self.bytes);
        let buckets = self
            .keys
            .entry(key)
            .or_insert_with(|| (Bucket::full(messages, now), Bucket::full(volume, now)));
        buckets.0.refill(messages, now);
        buckets.1.refill(volume, now);
        buckets
    }

    /// Whether `key` may send a message of `bytes` now, without taking anything. A key
    /// with no buckets yet has full ones, and none are made for it.
    pub(crate) fn allows(&mut self, key: K, bytes: usize, now: Instant) -> bool {
        // A key without buckets yet is judged as full buckets, without creating them.
        let (messages, size) = match self.keys.get_mut(&key) {
            None => (self.messages.burst, self.bytes.burst),
            Some((message_bucket, byte_bucket)) => {
                message_bucket.refill(self.messages, now);
                byte_bucket.refill(self.bytes, now);
                (message_bucket.tokens, byte_bucket.tokens)
            }
        };
        messages >= 1.0 && size >= bytes as f64
    }

    /// Admits a message of `bytes` from `key` if its buckets allow it and `also` agrees:
    /// `also` is asked only when they do, and the tokens are taken only when it says yes.
    /// The check and the taking are one call, so nothing can change between them.
    pub(crate) fn admit_if(
        &mut self,
        key: K,
        bytes: usize,
        now: Instant,
        also: impl FnOnce() -> bool,
    ) -> bool {
        if !self.allows(key, bytes, now) || !also() {
            return false;
        }
        let (message_bucket, byte_bucket) = self.buckets(key, now);
        message_bucket.tokens -= 1.0;
        byte_bucket.tokens -= bytes as f64;
        true
    }

    /// Whether `key` may send a message of `bytes` now; if so, its tokens are taken.
    pub(crate) fn admit(&mut self, key: K, bytes: usize, now: Instant) -> bool {
        let (message_bucket, byte_bucket) = self.buckets(key, now);
        let size = bytes as f64;
        if message_bucket.tokens < 1.0 || byte_bucket.tokens < size {
            return false;
        }
        message_bucket.tokens -= 1.0;
        byte_bucket.tokens -= size;
        true
    }

    /// Gives back the tokens [`GossipLimits::admit`] took for a message of `bytes` that
    /// came to nothing (not stored), up to the burst.
    pub(crate) fn refund(&mut self, key: K, bytes: usize, now: Instant) {
        let (messages, volume) = (self.messages, self.bytes);
        let (message_bucket, byte_bucket) = self.buckets(key, now);
        message_bucket.tokens = (message_bucket.tokens + 1.0).min(messages.burst);
        byte_bucket.tokens = (byte_bucket.tokens + bytes as f64).min(volume.burst);
    }

    /// `key` is gone (a peer's last connection closed): its buckets are kept as they are,
    /// so a reconnection finds them, until they are full again or [`RESTING_KEPT`] has
    /// passed. Forgets, at the same time, the resting buckets that have got there, and the
    /// longest resting beyond [`MAX_RESTING`].
    pub(crate) fn rest(&mut self, key: K, now: Instant) {
        if self.keys.contains_key(&key) {
            self.resting.insert(key, now);
        }
        let (messages, volume) = (self.messages, self.bytes);
        let keys = &mut self.keys;
        self.resting.retain(|key, since| {
            let done = now.saturating_duration_since(*since) >= RESTING_KEPT
                || keys.get(key).is_none_or(|(message_bucket, byte_bucket)| {
                    message_bucket.is_full(messages, now) && byte_bucket.is_full(volume, now)
                });
            if done {
                keys.remove(key);
            }
            !done
        });
        while self.resting.len() > MAX_RESTING {
            let Some(oldest) = self
                .resting
                .iter()
                .min_by_key(|(_, since)| **since)
                .map(|(key, _)| *key)
            else {
                break;
            };
            self.resting.remove(&oldest);
            self.keys.remove(&oldest);
        }
    }

    /// `key` is back (a peer connected again): its kept buckets, if any, are its own again.
    pub(crate) fn wake(&mut self, key: &K) {
        self.resting.remove(key);
    }

    /// Keeps the buckets of the keys `keep` says to keep (authors still certified).
    pub(crate) fn retain(&mut self, keep: impl Fn(&K) -> bool) {
        self.keys.retain(|key, _| keep(key));
        self.resting.retain(|key, _| keep(key));
    }

    /// Keys with buckets now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.keys.len()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use libp2p::PeerId;

    use super::*;

    fn rated<K: Eq + std::hash::Hash + Copy>(
        messages_per_sec: u32,
        message_burst: u32,
        bytes_per_sec: u64,
        byte_burst: u64,
    ) -> GossipLimits<K> {
        GossipLimits::new(RateLimit {
            messages_per_sec,
            message_burst,
            bytes_per_sec,
            byte_burst,
        })
    }

    #[test]
    fn burst_passes_then_the_rate_refills() {
        let mut limits = rated::<PeerId>(10, 5, 1 << 30, 1 << 30);
        let (peer, start) = (PeerId::random(), Instant::now());
        let admitted = (0..20).filter(|_| limits.admit(peer, 100, start)).count();
        assert_eq!(admitted, 5);
        // A tenth of a second later, one more token.
        let later = start + Duration::from_millis(100);
        assert!(limits.admit(peer, 100, later));
        assert!(!limits.admit(peer, 100, later));
        // Long idle: back to the burst, not beyond.
        let idle = later + Duration::from_secs(3600);
        assert_eq!((0..20).filter(|_| limits.admit(peer, 100, idle)).count(), 5);
    }

    #[test]
    fn bytes_are_limited_apart_from_messages_and_peers_apart_from_each_other() {
        let message = MAX_GOSSIP_BYTES;
        let mut limits = rated::<PeerId>(1000, 1000, 0, 2 * message as u64);
        let (flooder, honest, now) = (PeerId::random(), PeerId::random(), Instant::now());
        assert!(limits.admit(flooder, message, now));
        assert!(limits.admit(flooder, message, now));
        assert!(!limits.admit(flooder, message, now));
        assert!(limits.admit(flooder, 0, now), "small messages still fit");
        assert!(limits.admit(honest, message, now));
    }

    #[test]
    fn a_peer_that_leaves_and_comes_back_finds_its_spent_buckets() {
        let mut limits = rated::<PeerId>(10, 5, 1 << 30, 1 << 30);
        let (peer, start) = (PeerId::random(), Instant::now());
        assert_eq!(
            (0..10).filter(|_| limits.admit(peer, 100, start)).count(),
            5
        );
        limits.rest(peer, start);
        limits.wake(&peer);
        assert!(
            !limits.admit(peer, 100, start),
            "no fresh burst on reconnecting"
        );
        // Gone again; a tenth of a second later it has earned one token, as if it had
        // stayed.
        limits.rest(peer, start);
        let later = start + Duration::from_millis(100);
        limits.wake(&peer);
        assert!(limits.admit(peer, 100, later));
        assert!(!limits.admit(peer, 100, later));
    }

    #[test]
    fn resting_buckets_go_once_full_or_kept_long_enough_and_are_bounded() {
        // Messages refill at 1 a second, bytes never: full only by message count.
        let mut limits = rated::<u32>(1, 2, 0, 1 << 30);
        let start = Instant::now();
        assert!(limits.admit(1, 0, start));
        limits.rest(1, start);
        assert_eq!(limits.len(), 1, "spent: kept");
        // Full again after a second: forgotten at the next departure.
        limits.rest(2, start + Duration::from_secs(2));
        assert_eq!(limits.len(), 0, "full again: as good as new, so forgotten");
        // Buckets that never refill go after RESTING_KEPT.
        assert!(limits.admit(3, 1000, start));
        limits.rest(3, start);
        limits.rest(4, start + RESTING_KEPT - Duration::from_secs(1));
        assert_eq!(limits.len(), 1);
        limits.rest(4, start + RESTING_KEPT);
        assert_eq!(limits.len(), 0);
        // A churn of keys keeps at most MAX_RESTING, forgetting the longest gone first.
        let mut now = start;
        for key in 0..(MAX_RESTING as u32 + 10) {
            now += Duration::from_millis(1);
            assert!(limits.admit(key, 1000, now));
            limits.rest(key, now);
        }
        assert_eq!(limits.len(), MAX_RESTING);
        assert!(
            limits.allows(0, 1000, now),
            "the longest gone was forgotten: full again"
        );
        let last = MAX_RESTING as u32 + 9;
        assert!(limits.allows(last, 1000, now), "one message refilled");
        assert!(limits.admit(last, 1000, now));
        assert!(!limits.admit(last, 1000, now), "the newest is kept, spent");
    }

    #[test]
    fn a_byte_burst_below_one_message_still_admits_the_largest_entry() {
        let mut limits = rated::<PeerId>(10, 10, 1, 1);
        assert!(limits.admit(PeerId::random(), MAX_GOSSIP_BYTES, Instant::now()));
    }

    #[test]
    fn asking_takes_nothing_and_refunds_give_back_up_to_the_burst() {
        let mut limits = rated::<u8>(10, 2, 1 << 30, 1 << 30);
        let start = Instant::now();
        assert!(limits.allows(1, 100, start), "an unknown key is allowed");
        assert_eq!(limits.len(), 0, "asking makes no buckets");
        assert!(limits.admit(1, 100, start));
        assert!(limits.admit(1, 100, start));
        assert!(!limits.allows(1, 100, start));
        limits.refund(1, 100, start);
        assert!(limits.allows(1, 100, start));
        assert!(limits.admit(1, 100, start));
        // Refunds never raise a bucket past its burst.
        for _ in 0..10 {
            limits.refund(2, 100, start);
        }
        assert_eq!((0..10).filter(|_| limits.admit(2, 100, start)).count(), 2);
        limits.retain(|key| *key == 2);
        assert_eq!(limits.len(), 1);
    }

    #[test]
    fn admitting_with_a_second_check_takes_nothing_when_either_says_no() {
        let mut limits = rated::<u8>(10, 1, 1 << 30, 1 << 30);
        let now = Instant::now();
        assert!(!limits.admit_if(1, 100, now, || false));
        assert_eq!(
            limits.len(),
            0,
            "refused by the second check: nothing taken"
        );
        assert!(limits.admit_if(1, 100, now, || true));
        let mut asked = false;
        assert!(!limits.admit_if(1, 100, now, || {
            asked = true;
            true
        }));
        assert!(!asked, "not asked once the buckets are spent");
    }
}
