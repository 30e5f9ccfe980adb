//! Where to fetch each feed from: every peer that showed it past what this node holds, the
//! one fetch in flight per feed, and how many of this node's fetches each peer is serving.
//!
//! A feed is fetched from one peer at a time, but every peer that showed it (a head in
//! reconciliation, or a gossiped entry past a gap) is kept as a source. When a fetch ends
//! without progress (the peer stalled until the request timed out, sent nothing, refused,
//! or went away) that peer stops being a source of the feed and the next source is asked
//! at once, instead of waiting for a later reconciliation with it. So a member that
//! advertises heads it never serves delays a feed by one request timeout at most, and is
//! struck for it, while the heads honest peers showed meanwhile are not lost.
//!
//! Each peer serves at most [`FETCHES_PER_PEER`] of this node's fetches at once, well
//! under what nodes answer per peer (`answers.rs`), so a node catching up on many feeds
//! never trips its peers' bound; feeds beyond wait for a free slot at one of their
//! sources. Sources are kept for certified feeds only, one per peer and feed, and a peer's
//! go when it disconnects: the map is bounded by the charter times the connection limit.
//!
//! [`FeedSources`] reads no store and owns no swarm: the event loop asks it whom to fetch
//! from and tells it how each fetch ended.

use std::collections::HashMap;

use libp2p::PeerId;
use threatmesh_protocol::PublicKey;

/// Range fetches this node keeps in flight with one peer. Two keep a peer's link busy
/// (one page streams while the next is read) and stay far under `MAX_OPEN_PER_PEER`.
pub(crate) const FETCHES_PER_PEER: usize = 2;

/// A peer that showed a feed past what this node holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Source {
    pub(crate) peer: PeerId,
    /// The highest seq it showed (already capped at what the charter accepts).
    pub(crate) up_to: u64,
    /// Whether it showed the feed's head in reconciliation: it then holds every entry up
    /// to it, and serving none of them is a broken promise.
    pub(crate) advertised: bool,
}

/// One feed's sources, and the fetch in flight, if any: its peer and request.
#[derive(Debug)]
struct Feed<R> {
    sources: Vec<Source>,
    fetching: Option<(PeerId, R)>,
}

/// Every feed some peer showed past this node. `R` names a request (libp2p's outbound
/// request id).
#[derive(Debug)]
pub(crate) struct FeedSources<R> {
    feeds: HashMap<PublicKey, Feed<R>>,
    /// Fetches in flight, by peer.
    busy: HashMap<PeerId, usize>,
}

impl<R: Copy + Eq> FeedSources<R> {
    pub(crate) fn new() -> FeedSources<R> {
        FeedSources {
            feeds: HashMap::new(),
            busy: HashMap::new(),
        }
    }

    /// `source` showed `author`'s feed: remember it (a peer shown again keeps the higher
    /// seq, and stays advertised once it advertised).
    pub(crate) fn offer(&mut self, author: PublicKey, source: Source) {
        let feed = self.feeds.entry(author).or_insert_with(|| Feed {
            sources: Vec::new(),
            fetching: None,
        });
        match feed
            .sources
            .iter_mut()
            .find(|known| known.peer == source.peer)
        {
            Some(known) => {
                known.up_to = known.up_to.max(source.up_to);
                known.advertised |= source.advertised;
            }
            None => feed.sources.push(source),
        }
    }

    /// Whom to fetch `author`'s feed from now: the first source, in the order they showed
    /// it, with a free slot. `None` while a fetch of the feed is in flight.
    pub(crate) fn next_source(&self, author: &PublicKey) -> Option<Source> {
        let feed = self.feeds.get(author)?;
        if feed.fetching.is_some() {
            return None;
        }
        feed.sources
            .iter()
            .find(|source| self.busy.get(&source.peer).copied().unwrap_or(0) < FETCHES_PER_PEER)
            .copied()
    }

    /// Feeds with sources and no fetch in flight: those to try when a slot frees.
    pub(crate) fn idle_feeds(&self) -> Vec<PublicKey> {
        self.feeds
            .iter()
            .filter(|(_, feed)| feed.fetching.is_none())
            .map(|(author, _)| *author)
            .collect()
    }

    /// A fetch of `author`'s feed from `peer` was sent as `request`.
    pub(crate) fn started(&mut self, author: PublicKey, peer: PeerId, request: R) {
        if let Some(feed) = self.feeds.get_mut(&author) {
            feed.fetching = Some((peer, request));
            *self.busy.entry(peer).or_default() += 1;
        }
    }

    /// Whether `request` is the fetch of `author`'s feed in flight.
    pub(crate) fn is_fetching(&self, author: &PublicKey, request: R) -> bool {
        self.feeds
            .get(author)
            .and_then(|feed| feed.fetching)
            .is_some_and(|(_, current)| current == request)
    }

    /// The fetch `request` of `author`'s feed ended; `progressed`: it stored something, so
    /// its peer stays a source, behind the feed's other sources: they take turns, so one
    /// that trickles (an entry a page, just before each request times out) cannot keep
    /// the feed to itself. Otherwise the peer stops being a source of this feed. Returns
    /// whether `request` was the fetch in flight (a late or unknown one changes nothing).
    pub(crate) fn finished(&mut self, author: &PublicKey, request: R, progressed: bool) -> bool {
        let Some(feed) = self.feeds.get_mut(author) else {
            return false;
        };
        let Some((peer, current)) = feed.fetching else {
            return false;
        };
        if current != request {
            return false;
        }
        feed.fetching = None;
        if let Some(busy) = self.busy.get_mut(&peer) {
            *busy = busy.saturating_sub(1);
            if *busy == 0 {
                self.busy.remove(&peer);
            }
        }
        if !progressed {
            self.drop_source(author, &peer);
            return true;
        }
        if let Some(at) = feed.sources.iter().position(|source| source.peer == peer) {
            let source = feed.sources.remove(at);
            feed.sources.push(source);
        }
        // Its peer may have left while the fetch was in flight.
        if feed.sources.is_empty() {
            self.feeds.remove(author);
        }
        true
    }

    /// `peer` is no longer a source of `author`'s feed (it holds nothing this node lacks,
    /// or failed to serve it). A feed left with no source and no fetch is forgotten.
    pub(crate) fn drop_source(&mut self, author: &PublicKey, peer: &PeerId) {
        let Some(feed) = self.feeds.get_mut(author) else {
            return;
        };
        feed.sources.retain(|source| source.peer != *peer);
        if feed.sources.is_empty() && feed.fetching.is_none() {
            self.feeds.remove(author);
        }
    }

    /// The highest seq a source of `author`'s feed still shows.
    pub(crate) fn best_claim(&self, author: &PublicKey) -> Option<u64> {
        self.feeds
            .get(author)?
            .sources
            .iter()
            .map(|source| source.up_to)
            .max()
    }

    /// The last connection to `peer` closed: it is no source any more. Its fetches in
    /// flight end with a failure, reported through [`FeedSources::finished`].
    pub(crate) fn disconnected(&mut self, peer: &PeerId) {
        self.feeds.retain(|_, feed| {
            feed.sources.retain(|source| source.peer != *peer);
            !feed.sources.is_empty() || feed.fetching.is_some()
        });
    }

    /// Forgets feeds `keep` refuses (authors the charter no longer certifies), unless a
    /// fetch of them is in flight (it ends on its own).
    pub(crate) fn retain(&mut self, keep: impl Fn(&PublicKey) -> bool) {
        self.feeds
            .retain(|author, feed| keep(author) || feed.fetching.is_some());
    }

    /// Feeds with sources or a fetch in flight.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.feeds.len()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::network::testing::peer;

    fn author(index: u8) -> PublicKey {
        PublicKey([index; 32])
    }

    fn source(index: u8, up_to: u64) -> Source {
        Source {
            peer: peer(index),
            up_to,
            advertised: true,
        }
    }

    #[test]
    fn a_failed_fetch_moves_on_to_the_next_source_at_once() {
        let mut sources = FeedSources::<u32>::new();
        let feed = author(1);
        // A liar shows the feed first, far ahead; an honest peer shows it next.
        sources.offer(feed, source(1, 1_000_000));
        sources.offer(feed, source(2, 50));
        assert_eq!(sources.next_source(&feed).unwrap().peer, peer(1));
        sources.started(feed, peer(1), 7);
        assert!(sources.next_source(&feed).is_none(), "one fetch per feed");
        assert_eq!(sources.best_claim(&feed), Some(1_000_000));
        // It stalls: the fetch fails without progress.
        assert!(sources.finished(&feed, 7, false));
        assert_eq!(sources.best_claim(&feed), Some(50));
        assert_eq!(sources.next_source(&feed).unwrap().peer, peer(2));
        // A late answer to an old request changes nothing.
        assert!(!sources.finished(&feed, 7, false));
    }

    #[test]
    fn sources_take_turns_so_a_trickling_one_cannot_keep_the_feed() {
        let mut sources = FeedSources::<u32>::new();
        let feed = author(1);
        // The trickler shows the feed first; two honest peers show it next.
        for index in 1..=3 {
            sources.offer(feed, source(index, 1_000));
        }
        let mut served_by = Vec::new();
        for request in 0..6 {
            let chosen = sources.next_source(&feed).unwrap().peer;
            sources.started(feed, chosen, request);
            // Every fetch stores something: the trickler's one entry a page too.
            assert!(sources.finished(&feed, request, true));
            served_by.push(chosen);
        }
        assert_eq!(
            served_by,
            [1, 2, 3, 1, 2, 3].map(peer),
            "each source in turn, the first no more often than the others"
        );
    }

    #[test]
    fn a_fetch_that_progressed_after_its_peer_left_leaves_no_feed_behind() {
        let mut sources = FeedSources::<u32>::new();
        let feed = author(1);
        sources.offer(feed, source(1, 10));
        sources.started(feed, peer(1), 0);
        sources.disconnected(&peer(1));
        assert_eq!(sources.len(), 1, "kept while its fetch is in flight");
        assert!(sources.finished(&feed, 0, true));
        assert_eq!(sources.len(), 0);
        assert!(sources.idle_feeds().is_empty());
    }

    #[test]
    fn a_peer_serves_at_most_its_share_of_fetches_and_others_take_the_rest() {
        let mut sources = FeedSources::<u32>::new();
        for index in 0..5 {
            sources.offer(author(index), source(1, 10));
            sources.offer(author(index), source(2, 10));
        }
        let mut by_peer: HashMap<PeerId, usize> = HashMap::new();
        for (request, index) in (0..5).enumerate() {
            if let Some(chosen) = sources.next_source(&author(index)) {
                sources.started(author(index), chosen.peer, request as u32);
                *by_peer.entry(chosen.peer).or_default() += 1;
            }
        }
        assert_eq!(by_peer.get(&peer(1)), Some(&FETCHES_PER_PEER));
        assert_eq!(by_peer.get(&peer(2)), Some(&FETCHES_PER_PEER));
        // The fifth feed waits for a slot; one fetch that progressed frees one.
        assert_eq!(sources.idle_feeds(), vec![author(4)]);
        assert!(sources.finished(&author(0), 0, true));
        assert!(sources.next_source(&author(4)).is_some());
        // Progress keeps the peer as a source.
        assert_eq!(sources.next_source(&author(0)).unwrap().peer, peer(1));
    }

    #[test]
    fn sources_go_with_their_peer_and_the_feed_when_none_is_left() {
        let mut sources = FeedSources::<u32>::new();
        sources.offer(author(1), source(1, 10));
        sources.offer(author(2), source(1, 10));
        sources.offer(author(2), source(2, 5));
        sources.started(author(1), peer(1), 1);
        sources.disconnected(&peer(1));
        // The feed in flight stays until its fetch reports; the other keeps its source.
        assert_eq!(sources.len(), 2);
        assert!(sources.finished(&author(1), 1, false));
        assert_eq!(sources.len(), 1);
        assert_eq!(sources.next_source(&author(2)).unwrap().peer, peer(2));
        sources.drop_source(&author(2), &peer(2));
        assert_eq!(sources.len(), 0);
        // Shown twice: one source, the higher seq.
        sources.offer(author(3), source(3, 4));
        sources.offer(author(3), source(3, 9));
        assert_eq!(sources.best_claim(&author(3)), Some(9));
        sources.retain(|_| false);
        assert_eq!(sources.len(), 0);
    }
}
