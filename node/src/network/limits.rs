//! Per-peer rate limits on gossip: for every connected peer, one token bucket counts
//! messages and another counts bytes. The event loop asks before handing a message to the
//! ingest pipeline, so a flood costs a map lookup per message, no decoding, no signature
//! check and no queue slot.
//!
//! A message over the limit is reported to gossipsub as Ignore: not stored, not forwarded,
//! not held against the peer (an honest relay may be passing on someone else's flood). It
//! is not lost for good either: sync fetches missing entries later, at the pace this node
//! asks for them. Buckets exist only for connected peers and go when the last connection
//! closes, so the map is bounded by the connection limit.

use std::collections::HashMap;

use libp2p::PeerId;
use threatmesh_protocol::wire::MAX_GOSSIP_BYTES;
use tokio::time::Instant;

/// A sustained rate and the burst allowed above it.
#[derive(Debug, Clone, Copy)]
struct Rate {
    per_sec: f64,
    burst: f64,
}

/// Tokens left, as of `updated`.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl Bucket {
    fn full(rate: Rate, now: Instant) -> Bucket {
        Bucket {
            tokens: rate.burst,
            updated: now,
        }
    }

    fn refill(&mut self, rate: Rate, now: Instant) {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate.per_sec).min(rate.burst);
        self.updated = now;
    }
}

/// The buckets of every connected peer.
#[derive(Debug)]
pub(crate) struct GossipLimits {
    messages: Rate,
    bytes: Rate,
    peers: HashMap<PeerId, (Bucket, Bucket)>,
}

impl GossipLimits {
    /// Limits of `messages_per_sec` (burst `message_burst`) and `bytes_per_sec` (burst
    /// `byte_burst`) per peer. The byte burst is at least one gossip message, or the
    /// largest entries could never pass.
    pub(crate) fn new(
        messages_per_sec: u32,
        message_burst: u32,
        bytes_per_sec: u64,
        byte_burst: u64,
    ) -> GossipLimits {
        GossipLimits {
            messages: Rate {
                per_sec: f64::from(messages_per_sec),
                burst: f64::from(message_burst.max(1)),
            },
            bytes: Rate {
                per_sec: bytes_per_sec as f64,
                burst: (byte_burst as f64).max(MAX_GOSSIP_BYTES as f64),
            },
            peers: HashMap::new(),
        }
    }

    /// Whether `peer` may send a message of `bytes` now; if so, its tokens are taken.
    pub(crate) fn admit(&mut self, peer: PeerId, bytes: usize, now: Instant) -> bool {
        let (messages, volume) = (self.messages, self.bytes);
        let (message_bucket, byte_bucket) = self
            .peers
            .entry(peer)
            .or_insert_with(|| (Bucket::full(messages, now), Bucket::full(volume, now)));
        message_bucket.refill(messages, now);
        byte_bucket.refill(volume, now);
        let size = bytes as f64;
        if message_bucket.tokens < 1.0 || byte_bucket.tokens < size {
            return false;
        }
        message_bucket.tokens -= 1.0;
        byte_bucket.tokens -= size;
        true
    }

    /// Drops the buckets of a peer that is no longer connected.
    pub(crate) fn forget(&mut self, peer: &PeerId) {
        self.peers.remove(peer);
    }

    /// Peers with buckets now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.peers.len()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use super::*;

    #[test]
    fn burst_passes_then_the_rate_refills() {
        let mut limits = GossipLimits::new(10, 5, 1 << 30, 1 << 30);
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
        let mut limits = GossipLimits::new(1000, 1000, 0, 2 * message as u64);
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
        let mut limits = GossipLimits::new(10, 10, 1, 1);
        assert!(limits.admit(PeerId::random(), MAX_GOSSIP_BYTES, Instant::now()));
    }
}
