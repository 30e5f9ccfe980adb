//! Fetching missing entries: which source of a feed to ask (`fetch_sources.rs` decides),
//! the range requests in flight, and releasing a fetch once it ends.

use libp2p::PeerId;
use libp2p::request_response::OutboundRequestId;
use threatmesh_protocol::PublicKey;
use threatmesh_protocol::wire::{self, Request, Response};
use tracing::warn;

use super::EventLoop;
use crate::network::codec::SyncRequest;
use crate::network::fetch_sources::Source;
use crate::network::ingest::Job;

/// A sync fetch in flight: one range of one feed.
#[derive(Debug, Clone, Copy)]
pub(super) struct Fetch {
    pub(super) author: PublicKey,
    pub(super) to_seq: u64,
    /// The peer advertised this feed's head in reconciliation, so it holds every entry up
    /// to it: an empty answer is a broken promise, not a gap it shares with us.
    pub(super) advertised: bool,
}

impl EventLoop {
    /// `peer` showed `author`'s feed up to `up_to` (`advertised`: as its head in
    /// reconciliation): keeps it as a source of the feed and fetches what is missing, unless
    /// the feed is being fetched already (then it is asked if that fetch fails). Never past
    /// what the charter still accepts of the feed: entries beyond a cutoff would only be
    /// refused.
    pub(super) fn fetch_missing(
        &mut self,
        peer: PeerId,
        author: PublicKey,
        up_to: u64,
        advertised: bool,
    ) {
        if !self.swarm.is_connected(&peer) {
            return;
        }
        let up_to = {
            let charter = self.charter.borrow();
            let Some((member, _)) = charter.charter().node(&author) else {
                return; // Nobody certified it: nothing of it would be accepted.
            };
            match (member.cutoff(&author), member.status.out_of_standing()) {
                (Some(cutoff), _) => up_to.min(cutoff.last_seq),
                (None, Some(_)) => return,
                (None, None) => up_to,
            }
        };
        let source = Source {
            peer,
            up_to,
            advertised,
        };
        self.sources.offer(author, source);
        self.start_fetch(&author);
    }

    /// Fetches the first missing range of `author`'s feed from its first source with a
    /// free slot, unless a fetch of it is in flight. Sources that show nothing this node
    /// lacks are dropped on the way.
    pub(super) fn start_fetch(&mut self, author: &PublicKey) {
        while let Some(source) = self.sources.next_source(author) {
            if !self.swarm.is_connected(&source.peer) {
                self.sources.drop_source(author, &source.peer);
                continue;
            }
            match self.store.first_missing(author, source.up_to) {
                Ok(Some(first)) => {
                    self.fetch(source, *author, *first.start(), *first.end());
                    return;
                }
                Ok(None) => self.sources.drop_source(author, &source.peer),
                Err(error) => {
                    warn!(%error, "store failed while planning sync");
                    return;
                }
            }
        }
    }

    /// The fetch `request` of `author`'s feed ended; `progressed`: it stored something.
    /// Without progress its peer is no longer a source of the feed, and what it claimed
    /// no longer counts in the feed's lag. Then the feed is fetched from its next source,
    /// and feeds that waited for a free slot get it.
    pub(super) fn fetch_ended(
        &mut self,
        author: PublicKey,
        request: OutboundRequestId,
        progressed: bool,
    ) {
        if !self.sources.finished(&author, request, progressed) {
            return;
        }
        if !progressed {
            let held = match self.store.feed(&author) {
                Ok(feed) => feed.map_or(0, |feed| feed.highest),
                Err(error) => {
                    warn!(%error, "store failed while planning sync");
                    0
                }
            };
            let still_shown = self.sources.best_claim(&author).unwrap_or(0);
            self.metrics.cap_advertised(author, still_shown.max(held));
        }
        for feed in self.sources.idle_feeds() {
            self.start_fetch(&feed);
        }
    }

    pub(super) fn fetch(&mut self, source: Source, author: PublicKey, from_seq: u64, to_seq: u64) {
        if from_seq > to_seq {
            return;
        }
        let federation = self.charter.borrow().federation();
        let request = Request::Range {
            federation,
            author,
            from_seq,
            to_seq,
            limit_bytes: u32::try_from(wire::MAX_RANGE_BYTES).unwrap_or(u32::MAX),
        };
        let id = self
            .swarm
            .behaviour_mut()
            .sync
            .send_request(&source.peer, SyncRequest::Valid(request));
        self.pending_ranges.insert(
            id,
            Fetch {
                author,
                to_seq,
                advertised: source.advertised,
            },
        );
        self.sources.started(author, source.peer, id);
    }

    /// A range request for `fetch` was answered: what it brought goes to the ingest
    /// pipeline, which releases the fetch once it is stored ([`Verdict::Range`]); anything
    /// else releases it now, without progress, and another source is asked.
    ///
    /// [`Verdict::Range`]: crate::network::ingest::Verdict::Range
    pub(super) fn handle_range(
        &mut self,
        peer: PeerId,
        request: OutboundRequestId,
        fetch: Fetch,
        response: Response,
    ) {
        // `more` is not needed: after a page that made progress, what is still missing
        // is asked for again anyway.
        let handed_on = match response {
            Response::Range { entries, .. } if entries.is_empty() && fetch.advertised => {
                // It showed this feed's head in reconciliation, so it holds every entry up
                // to it; serving none of them is a broken promise.
                let actions = self.planner.did_not_serve(peer);
                self.carry_out_sync(actions, None);
                false
            }
            Response::Range { entries, .. } => {
                let bytes = entries.iter().map(Vec::len).sum();
                self.metrics.fetched(entries.len(), bytes);
                let job = Job::Range {
                    payloads: entries,
                    peer,
                    request,
                    author: fetch.author,
                    to_seq: fetch.to_seq,
                };
                let queued = self.jobs.try_send(job).is_ok();
                if !queued {
                    // Not asked again of this peer at once: the pipeline is behind.
                    self.metrics.queue_full();
                }
                queued
            }
            // Refused: another source is asked.
            _ => false,
        };
        if !handed_on {
            self.fetch_ended(fetch.author, request, false);
        }
    }

    /// A range request for `fetch` failed (`timed_out`: no answer in time). A peer that
    /// showed the feed and then stalled broke a promise, as with an empty answer: its
    /// other sources are asked at once.
    pub(super) fn handle_range_failure(
        &mut self,
        peer: PeerId,
        request: OutboundRequestId,
        fetch: Fetch,
        timed_out: bool,
    ) {
        if fetch.advertised && timed_out && self.sources.is_fetching(&fetch.author, request) {
            let actions = self.planner.did_not_serve(peer);
            self.carry_out_sync(actions, None);
        }
        self.fetch_ended(fetch.author, request, false);
    }
}
