//! Gossip admission: whether a gossiped message is handed to the ingest pipeline, by the
//! rate limits of the peer that forwarded it and of the author it names (`limits.rs`). A
//! plain state machine (no swarm, no I/O); the event loop reports what it decides to
//! gossipsub.
//!
//! The forwarder is asked first without charging it, so a flood beyond its rate costs no
//! header read; then the author is charged, so a relay is not charged for an author's
//! flood; the forwarder is charged last, in the same call, once both agree.

use libp2p::PeerId;
use threatmesh_protocol::PublicKey;
use tokio::time::Instant;

use super::limits::{GossipLimits, RateLimit};

/// What became of a gossiped message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Taken: the forwarder's tokens, and those of `author` if it is named, are spent.
    /// The author's come back ([`GossipAdmission::refund`]) unless the entry is stored.
    Admitted { author: Option<PublicKey> },
    /// The forwarder is over its rate: nothing taken.
    PeerOverRate,
    /// The author is over its rate: nothing taken.
    AuthorOverRate,
}

/// The rate limits of every peer and every certified author.
#[derive(Debug)]
pub(crate) struct GossipAdmission {
    /// Per-peer limits (connected peers, and for a while those gone).
    peers: GossipLimits<PeerId>,
    /// Per-author limits (authors named by admitted entries; those the charter no longer
    /// certifies are dropped when it is applied).
    authors: GossipLimits<PublicKey>,
}

impl GossipAdmission {
    /// Each peer gets `peer`, each author `author`.
    pub(crate) fn new(peer: RateLimit, author: RateLimit) -> GossipAdmission {
        GossipAdmission {
            peers: GossipLimits::new(peer),
            authors: GossipLimits::new(author),
        }
    }

    /// Judges a message of `bytes` forwarded by `source`. `author` reads the author from
    /// the message, `None` for one the charter does not certify (it gets no buckets: its
    /// entry is refused anyway, and made-up authors must not grow the map); it is called
    /// only once the forwarder is within its rate.
    pub(crate) fn admit(
        &mut self,
        source: PeerId,
        bytes: usize,
        now: Instant,
        author: impl FnOnce() -> Option<PublicKey>,
    ) -> Outcome {
        let authors = &mut self.authors;
        let mut outcome = Outcome::PeerOverRate;
        self.peers.admit_if(source, bytes, now, || {
            let author = author();
            outcome = match author {
                Some(named) if !authors.admit(named, bytes, now) => Outcome::AuthorOverRate,
                _ => Outcome::Admitted { author },
            };
            matches!(outcome, Outcome::Admitted { .. })
        });
        outcome
    }

    /// Gives `author` back the tokens taken for a message of `bytes` that was not stored.
    pub(crate) fn refund(&mut self, author: PublicKey, bytes: usize, now: Instant) {
        self.authors.refund(author, bytes, now);
    }

    /// `peer` connected: a member back from a disconnection finds the rate it left.
    pub(crate) fn connected(&mut self, peer: &PeerId) {
        self.peers.wake(peer);
    }

    /// `peer`'s last connection closed: its buckets are kept for a while, so reconnecting
    /// does not refill its burst.
    pub(crate) fn disconnected(&mut self, peer: PeerId, now: Instant) {
        self.peers.rest(peer, now);
    }

    /// Keeps the buckets of the authors `certified` says the charter still certifies.
    pub(crate) fn retain_authors(&mut self, certified: impl Fn(&PublicKey) -> bool) {
        self.authors.retain(certified);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests unwrap what they built themselves

    use threatmesh_protocol::testing::public as author;

    use super::*;

    fn limit(message_burst: u32) -> RateLimit {
        RateLimit {
            messages_per_sec: 0,
            message_burst,
            bytes_per_sec: 0,
            byte_burst: 1 << 30,
        }
    }

    #[test]
    fn an_authors_flood_is_dropped_without_charging_the_relay() {
        let mut admission = GossipAdmission::new(limit(3), limit(1));
        let (relay, now) = (PeerId::random(), Instant::now());
        let (flooder, honest) = (author(1), author(2));
        assert_eq!(
            admission.admit(relay, 10, now, || Some(flooder)),
            Outcome::Admitted {
                author: Some(flooder)
            }
        );
        for _ in 0..5 {
            assert_eq!(
                admission.admit(relay, 10, now, || Some(flooder)),
                Outcome::AuthorOverRate
            );
        }
        // The relay paid for one message only: two more fit its burst of three.
        assert!(matches!(
            admission.admit(relay, 10, now, || Some(honest)),
            Outcome::Admitted { .. }
        ));
        assert!(matches!(
            admission.admit(relay, 10, now, || None),
            Outcome::Admitted { author: None }
        ));
        assert_eq!(
            admission.admit(relay, 10, now, || Some(author(3))),
            Outcome::PeerOverRate
        );
    }

    #[test]
    fn a_peer_over_its_rate_costs_no_header_read_and_a_refund_frees_the_author() {
        let mut admission = GossipAdmission::new(limit(1), limit(1));
        let (peer, other, now) = (PeerId::random(), PeerId::random(), Instant::now());
        let named = author(1);
        assert!(matches!(
            admission.admit(peer, 10, now, || Some(named)),
            Outcome::Admitted { .. }
        ));
        let outcome = admission.admit(peer, 10, now, || unreachable!("the header is not read"));
        assert_eq!(outcome, Outcome::PeerOverRate);
        assert_eq!(
            admission.admit(other, 10, now, || Some(named)),
            Outcome::AuthorOverRate
        );
        admission.refund(named, 10, now);
        assert!(matches!(
            admission.admit(other, 10, now, || Some(named)),
            Outcome::Admitted { .. }
        ));
    }

    #[test]
    fn a_peer_that_reconnects_finds_its_spent_rate() {
        let mut admission = GossipAdmission::new(limit(1), limit(1));
        let (peer, now) = (PeerId::random(), Instant::now());
        assert!(matches!(
            admission.admit(peer, 10, now, || None),
            Outcome::Admitted { .. }
        ));
        admission.disconnected(peer, now);
        admission.connected(&peer);
        assert_eq!(
            admission.admit(peer, 10, now, || None),
            Outcome::PeerOverRate
        );
    }
}
