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
//! and banned as for any forgery. (Tokens are taken up front, not when the entry is
//! stored, so a burst waiting in the ingest queue is limited as it arrives.)
//!
//! A message over a limit is reported to gossipsub as Ignore: not stored, not forwarded,
//! not held against the peer (an honest relay may be passing on someone else's flood). It
//! is not lost for good either: sync fetches missing entries later, at the pace this node
//! asks for them, and sync is not rate-limited by author (it is paced by the receiver: one
//! range per feed at a time). Peer buckets exist only for connected peers and go when the
//! last connection closes, so that map is bounded by the connection limit; author buckets
//! exist only for authors of stored entries and go when the charter no longer certifies
//! them, so that map is bounded by the charter.

use std::collections::HashMap;

use threatmesh_protocol::wire::MAX_GOSSIP_BYTES;
use tokio::time::Instant;

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
}

impl<K: Eq + std::hash::Hash + Copy> GossipLimits<K> {
    /// Limits of `messages_per_sec` (burst `message_burst`) and `bytes_per_sec` (burst
    /// `byte_burst`) per key. The byte burst is at least one gossip message, or the
    /// largest entries could never pass.
    pub(crate) fn new(
        messages_per_sec: u32,
        message_burst: u32,
        bytes_per_sec: u64,
        byte_burst: u64,
    ) -> GossipLimits<K> {
        GossipLimits {
            messages: Rate {
                per_sec: f64::from(messages_per_sec),
                burst: f64::from(message_burst.max(1)),
            },
            bytes: Rate {
                per_sec: bytes_per_sec as f64,
                burst: (byte_burst as f64).max(MAX_GOSSIP_BYTES as f64),
            },
            keys: HashMap::new(),
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

    /// Drops the buckets of a key that is gone (a peer no longer connected).
    pub(crate) fn forget(&mut self, key: &K) {
        self.keys.remove(key);
    }

    /// Keeps the buckets of the keys `keep` says to keep (authors still certified).
    pub(crate) fn retain(&mut self, keep: impl Fn(&K) -> bool) {
        self.keys.retain(|key, _| keep(key));
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

    #[test]
    fn burst_passes_then_the_rate_refills() {
        let mut limits = GossipLimits::<PeerId>::new(10, 5, 1 << 30, 1 << 30);
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
        let mut limits = GossipLimits::<PeerId>::new(1000, 1000, 0, 2 * message as u64);
        let (flooder, honest, now) = (PeerId::random(), PeerId::random(), Instant::now());
        assert!(limits.admit(flooder, message, now));
        assert!(limits.admit(flooder, message, now));
        assert!(!limits.admit(flooder, message, now));
        assert!(limits.admit(flooder, 0, now), "small messages still fit");
        assert!(limits.admit(honest, message, now));
        limits.forget(&flooder);
        assert_eq!(limits.len(), 1);
    }

    #[test]
    fn a_byte_burst_below_one_message_still_admits_the_largest_entry() {
        let mut limits = GossipLimits::<PeerId>::new(10, 10, 1, 1);
        assert!(limits.admit(PeerId::random(), MAX_GOSSIP_BYTES, Instant::now()));
    }

    #[test]
    fn asking_takes_nothing_and_refunds_give_back_up_to_the_burst() {
        let mut limits = GossipLimits::<u8>::new(10, 2, 1 << 30, 1 << 30);
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
}
