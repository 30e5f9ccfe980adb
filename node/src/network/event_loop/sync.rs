//! Sync: answering peers' requests (read off the loop, in turn: `answers.rs`), and
//! carrying out what anti-entropy (`sync_planner.rs`) decides to ask.

use std::sync::Arc;

use libp2p::PeerId;
use libp2p::request_response::{self, InboundRequestId, OutboundRequestId, ResponseChannel};
use threatmesh_protocol::reconcile::HeadSet;
use threatmesh_protocol::wire::{Request, Response};
use threatmesh_protocol::{Hash, PublicKey};
use tokio::time::Instant;
use tracing::{debug, error, warn};

use super::EventLoop;
use crate::network::answers::{OverLimit, answer_bytes};
use crate::network::codec::{SyncRequest, is_frame_too_large, is_slow_reader};
use crate::network::ingest::Job;
use crate::network::serving::{read_answer, withhold_from_non_reader};
use crate::network::sync_planner::SyncAction;

impl EventLoop {
    pub(super) fn handle_sync(&mut self, event: request_response::Event<SyncRequest, Response>) {
        match event {
            request_response::Event::Message {
                peer,
                message:
                    request_response::Message::Request {
                        request_id,
                        request,
                        channel,
                    },
                ..
            } => match request {
                SyncRequest::Valid(request) => self.answer(peer, request_id, request, channel),
                SyncRequest::Oversized(too_large) => {
                    // Requests are a few dozen bytes: only a peer that breaks the protocol
                    // sends one over the limit. Its body was never read.
                    warn!(%peer, %too_large, "oversized sync request refused");
                    self.metrics.sync_oversized_request();
                    self.strike(peer, 1);
                    let refused = Response::Refused(too_large.to_string());
                    self.send_answer(peer, channel, refused);
                }
            },
            request_response::Event::Message {
                peer,
                message:
                    request_response::Message::Response {
                        request_id,
                        response,
                    },
                ..
            } => self.handle_response(peer, request_id, response),
            request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                debug!(%peer, %error, "sync request failed");
                if let request_response::OutboundFailure::Io(error) = &error
                    && is_frame_too_large(error)
                {
                    // Our requests are bounded by what honest answers hold: only a peer
                    // that breaks the protocol sends more.
                    warn!(%peer, %error, "oversized sync response refused");
                    self.metrics.sync_oversized_response();
                    self.strike(peer, 1);
                }
                if matches!(error, request_response::OutboundFailure::Timeout) {
                    self.metrics.sync_timed_out();
                }
                if self.pending_reconciles.remove(&request_id).is_some() {
                    let timed_out = matches!(error, request_response::OutboundFailure::Timeout);
                    let actions = self.planner.failed(peer, timed_out);
                    self.carry_out_sync(actions, None);
                }
                self.pending_charters.remove(&request_id);
                if let Some(fetch) = self.pending_ranges.remove(&request_id) {
                    let timed_out = matches!(error, request_response::OutboundFailure::Timeout);
                    self.handle_range_failure(peer, request_id, fetch, timed_out);
                }
            }
            request_response::Event::InboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                debug!(%peer, %error, "sync request from peer failed");
                if let request_response::InboundFailure::Io(error) = &error
                    && is_slow_reader(error)
                {
                    // It asked and did not take the answer in time: holding this node's
                    // memory for nothing, or a link too slow for the federation.
                    warn!(%peer, %error, "sync answer dropped: the peer reads too slowly");
                    self.metrics.sync_slow_reader();
                    self.strike(peer, 1);
                }
                self.answering.ended(peer, request_id);
                self.start_reads();
            }
            request_response::Event::ResponseSent {
                peer, request_id, ..
            } => {
                self.answering.ended(peer, request_id);
                self.start_reads();
            }
        }
    }

    /// Queues a sync request to be answered from the store in turn with every peer's
    /// (`answers.rs`). A peer already holding the most answers it may is refused, and
    /// struck: honest nodes never ask that much at once.
    pub(super) fn answer(
        &mut self,
        peer: PeerId,
        id: InboundRequestId,
        request: Request,
        channel: ResponseChannel<Response>,
    ) {
        if self.non_readers.contains(&peer) {
            let withheld = withhold_from_non_reader(&self.charter.borrow(), &request);
            if let Some(withheld) = withheld {
                debug!(%peer, "sync request from a member that may not read: no entries, no heads");
                self.metrics.sync_withheld();
                self.send_answer(peer, channel, withheld);
                return;
            }
        }
        if let Err(OverLimit((_, channel))) = self.answering.admit(peer, id, (request, channel)) {
            warn!(%peer, "sync request refused: the peer holds too many answers already");
            self.metrics.sync_answer_over_limit();
            self.strike(peer, 1);
            let refused = Response::Refused("too many sync requests at once".into());
            self.send_answer(peer, channel, refused);
            return;
        }
        self.start_reads();
    }

    /// Starts the store reads the answer queue hands out, off the loop: a page can be
    /// megabytes of reads.
    pub(super) fn start_reads(&mut self) {
        while let Some((peer, id, (request, channel))) = self.answering.next() {
            let charter = Arc::clone(&self.charter.borrow());
            let store = self.store.clone();
            let metrics = Arc::clone(&self.metrics);
            let answers = self.answer_sender.clone();
            // Blocking threads start outside any span: carry the node's along.
            let span = tracing::Span::current();
            tokio::task::spawn_blocking(move || {
                let _span = span.enter();
                // The answer must come back whatever happens: the queue frees the peer's
                // read slot only then, and a slot lost for good stops serving sync.
                let read = std::panic::AssertUnwindSafe(|| {
                    read_answer(&store, &charter, request, &metrics)
                });
                let response = std::panic::catch_unwind(read).unwrap_or_else(|_| {
                    error!(%peer, "reading a sync answer panicked");
                    Response::Refused("internal error".into())
                });
                // The loop is gone only when the node is shutting down.
                let _ = answers.blocking_send((peer, id, channel, response));
            });
        }
        let (held, bytes) = self.answering.held();
        self.metrics.set_answers_held(held, bytes);
    }

    /// Sends an answer read off the loop. A reconcile answer that differs means one of the
    /// two lacks something: if it is this node, reconciling the other way finds it, so a
    /// session with the asker is started (anti-entropy pushes as well as pulls, and an
    /// entry fetched by one node spreads at every round, not only when others pick it).
    pub(super) fn handle_answer(
        &mut self,
        peer: PeerId,
        id: InboundRequestId,
        channel: ResponseChannel<Response>,
        response: Response,
    ) {
        let differs = matches!(&response, Response::Reconcile { parts, .. } if !parts.is_empty());
        // Not sent if the request ended while it was read (timed out, connection gone).
        if !self.answering.read(peer, id, answer_bytes(&response))
            || !self.send_answer(peer, channel, response)
        {
            self.answering.ended(peer, id);
        }
        self.start_reads();
        if differs {
            self.planner.peer_differs(peer, Instant::now());
            self.send_reconciles();
        }
    }

    /// Hands `response` to libp2p; false if the request is gone (its connection closed).
    pub(super) fn send_answer(
        &mut self,
        peer: PeerId,
        channel: ResponseChannel<Response>,
        response: Response,
    ) -> bool {
        let sent = self
            .swarm
            .behaviour_mut()
            .sync
            .send_response(channel, response)
            .is_ok();
        if !sent {
            debug!(%peer, "sync response not sent: connection gone");
        }
        sent
    }

    pub(super) fn handle_response(
        &mut self,
        peer: PeerId,
        request_id: OutboundRequestId,
        response: Response,
    ) {
        if self.pending_reconciles.remove(&request_id).is_some() {
            match response {
                Response::Reconcile {
                    charter_version,
                    charter_id,
                    parts,
                } => {
                    let (own, ours) = (self.own_heads(), self.charter_mark());
                    let actions = self.planner.answered(
                        peer,
                        &parts,
                        (charter_version, charter_id),
                        &own,
                        ours,
                    );
                    self.carry_out_sync(actions, Some(own));
                }
                // Busy, or a node that does not reconcile: the session ends until the next
                // round.
                _ => {
                    let actions = self.planner.failed(peer, false);
                    self.carry_out_sync(actions, None);
                }
            }
        } else if let Some(fetch) = self.pending_ranges.remove(&request_id) {
            self.handle_range(peer, request_id, fetch, response);
        } else if self.pending_charters.remove(&request_id).is_some()
            && let Response::Charters(charters) = response
            && !charters.is_empty()
            && self
                .jobs
                .try_send(Job::Charters { charters, peer })
                .is_err()
        {
            self.metrics.queue_full();
        }
    }

    /// An anti-entropy round: reconcile with the next few peers in turn.
    pub(super) fn sync_round(&mut self) {
        self.planner.tick();
        self.send_reconciles();
    }

    /// Sends the reconcile requests the planner has ready, summarised from this node's
    /// heads as they are now.
    pub(super) fn send_reconciles(&mut self) {
        if !self.planner.has_requests() {
            return;
        }
        let own = self.own_heads();
        let actions = self.planner.requests(&own);
        self.carry_out_sync(actions, Some(own));
    }

    /// Carries out what the planner decided. `own` is this node's heads if the caller read
    /// them already (one scan of the feed states per event, not two).
    pub(super) fn carry_out_sync(&mut self, actions: Vec<SyncAction>, own: Option<HeadSet>) {
        for action in actions {
            match action {
                SyncAction::Ask { peer, summaries } => {
                    let federation = self.charter.borrow().federation();
                    let request = Request::Reconcile {
                        federation,
                        ranges: summaries,
                    };
                    let id = self
                        .swarm
                        .behaviour_mut()
                        .sync
                        .send_request(&peer, SyncRequest::Valid(request));
                    self.pending_reconciles.insert(id, peer);
                    self.metrics.reconcile_sent();
                }
                SyncAction::Fetch { peer, head } => {
                    if self.is_certified(&head.author) {
                        self.metrics.advertised(head.author, head.seq);
                        self.fetch_missing(peer, head.author, head.seq, true);
                    }
                }
                SyncAction::FetchCharters { peer } => self.request_charters(peer),
                SyncAction::Strike { peer, why } => {
                    warn!(%peer, why, "sync misbehaviour");
                    self.metrics.sync_failed();
                    self.strike(peer, 1);
                }
            }
        }
        // An answer may leave narrower ranges to ask about, and a failure may have started
        // a session with the next peer. What `requests` returns is only asks.
        if self.planner.has_requests() {
            let own = own.unwrap_or_else(|| self.own_heads());
            let more = self.planner.requests(&own);
            self.carry_out_sync(more, None);
        }
    }

    /// Whether the charter in force certifies `author`: only their feeds are planned for,
    /// so a peer cannot make the loop plan for thousands of made-up feeds.
    pub(super) fn is_certified(&self, author: &PublicKey) -> bool {
        self.charter.borrow().charter().node(author).is_some()
    }

    /// This node's feed heads, for reconciliation. One key scan of the feed states; a
    /// store that cannot be read reconciles as empty (it then fetches nothing it holds:
    /// every fetch starts from the store's own first missing entry).
    pub(super) fn own_heads(&self) -> HeadSet {
        match self.store.heads() {
            Ok(heads) => HeadSet::new(heads),
            Err(error) => {
                warn!(%error, "store failed while reading heads for sync");
                HeadSet::default()
            }
        }
    }

    /// The version and id of the charter in force.
    pub(super) fn charter_mark(&self) -> (u64, Hash) {
        let charter = self.charter.borrow();
        (charter.charter().version, charter.id())
    }

    /// Asks `peer` for its charters from the version before the one in force on: newer
    /// ones, and rivals of the versions that still take one, which a charter it sent may
    /// follow.
    pub(super) fn request_charters(&mut self, peer: PeerId) {
        if self.pending_charters.values().any(|asked| *asked == peer) {
            return;
        }
        let (federation, after_version) = {
            let charter = self.charter.borrow();
            (
                charter.federation(),
                charter
                    .charter()
                    .version
                    .saturating_sub(1 + threatmesh_protocol::charter::RIVAL_DEPTH),
            )
        };
        let id = self.swarm.behaviour_mut().sync.send_request(
            &peer,
            SyncRequest::Valid(Request::Charters {
                federation,
                after_version,
            }),
        );
        self.pending_charters.insert(id, peer);
    }
}
