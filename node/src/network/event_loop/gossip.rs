//! Gossip: admitting what peers gossip (`admission.rs` decides), handing it to the ingest
//! pipeline, and reporting the pipeline's verdicts back to gossipsub.

use std::sync::Arc;

use libp2p::PeerId;
use libp2p::gossipsub::{self, MessageAcceptance};
use threatmesh_protocol::entry::EntryHeader;
use threatmesh_protocol::{PublicKey, SignedCharter};
use tokio::time::Instant;
use tracing::{debug, info};

use super::EventLoop;
use crate::network::admission::Outcome;
use crate::network::ingest::{Acceptance, Job, Verdict};
use crate::network::metrics::Rejection;

impl EventLoop {
    pub(super) fn handle_gossip(&mut self, event: gossipsub::Event) {
        let gossipsub::Event::Message {
            propagation_source,
            message_id,
            message,
        } = event
        else {
            return;
        };
        let (bytes, now) = (message.data.len(), Instant::now());
        // Only authors the charter certifies get buckets (anyone else's entry is refused
        // anyway), so a header naming made-up authors cannot grow the map.
        let charter = &self.charter;
        let outcome = self.admission.admit(propagation_source, bytes, now, || {
            EntryHeader::peek(&message.data)
                .ok()
                .map(|header| header.author)
                .filter(|author| charter.borrow().charter().node(author).is_some())
        });
        // Over a rate: not checked, not forwarded, not blamed; sync fetches it later.
        let author = match outcome {
            Outcome::Admitted { author } => author,
            Outcome::PeerOverRate => {
                self.metrics.throttled(bytes);
                self.ignore(&message_id, &propagation_source);
                return;
            }
            Outcome::AuthorOverRate => {
                self.metrics.throttled_author(bytes);
                self.ignore(&message_id, &propagation_source);
                return;
            }
        };
        let job = Job::Gossip {
            payload: message.data,
            message_id: message_id.clone(),
            source: propagation_source,
            reserved: author,
        };
        if self.jobs.try_send(job).is_err() {
            // The pipeline is saturated: let the message go; sync fetches it later.
            self.refund_author(author, bytes);
            self.metrics.queue_full();
            self.ignore(&message_id, &propagation_source);
        }
    }

    /// Gives an author back the tokens taken for a message that was not stored.
    pub(super) fn refund_author(&mut self, author: Option<PublicKey>, bytes: usize) {
        if let Some(author) = author {
            self.admission.refund(author, bytes, Instant::now());
        }
    }

    /// Tells gossipsub to drop a message unjudged: neither forwarded nor held against its
    /// sender.
    pub(super) fn ignore(&mut self, message_id: &gossipsub::MessageId, source: &PeerId) {
        self.swarm
            .behaviour_mut()
            .gossipsub
            .report_message_validation_result(message_id, source, MessageAcceptance::Ignore);
    }

    pub(super) fn handle_verdict(&mut self, verdict: Verdict) {
        match verdict {
            Verdict::Gossip {
                message_id,
                source,
                acceptance,
                blame,
                gap,
                charter_behind,
                reserved,
            } => {
                // An entry refused as from the future was signed by the author its header
                // names (its signature is checked first): its author pays for it as for a
                // stored one, or a member could make every node check such entries
                // forever at no cost to its own rate.
                if acceptance != Acceptance::Accept
                    && acceptance != Acceptance::Reject(Rejection::FromTheFuture)
                    && let Some((author, bytes)) = reserved
                {
                    self.refund_author(Some(author), bytes);
                }
                let answer = match acceptance {
                    Acceptance::Accept => MessageAcceptance::Accept,
                    Acceptance::Ignore => MessageAcceptance::Ignore,
                    Acceptance::Reject(reason) => {
                        debug!(peer = %source, reason = reason.as_str(), "gossip rejected");
                        MessageAcceptance::Reject
                    }
                };
                if blame {
                    self.strike(source, 1);
                }
                self.swarm
                    .behaviour_mut()
                    .gossipsub
                    .report_message_validation_result(&message_id, &source, answer);
                if let Some((author, missing)) = gap {
                    // Recomputed from the store when sent: entries of the gap may be in
                    // the pipeline already.
                    self.fetch_missing(source, author, *missing.end(), false);
                }
                if charter_behind {
                    self.request_charters(source);
                }
            }
            Verdict::Gap {
                source,
                author,
                missing,
            } => self.fetch_missing(source, author, *missing.end(), false),
            Verdict::Range {
                peer,
                request,
                author,
                stored,
                blamed,
                regossip,
            } => {
                // Recent entries fetched by sync are likely missing elsewhere too: gossip
                // spreads them in a few hops. Nodes holding them ignore them unforwarded.
                for payload in regossip {
                    match self
                        .swarm
                        .behaviour_mut()
                        .gossipsub
                        .publish(self.topic.clone(), payload)
                    {
                        Ok(_) => self.metrics.regossiped(),
                        Err(error) => debug!(%error, "entry fetched by sync not gossiped again"),
                    }
                }
                if blamed > 0 {
                    self.strike(peer, u32::try_from(blamed).unwrap_or(u32::MAX));
                }
                // Ask again only after progress: a peer that sends nothing new (it lacks
                // the entries, or plays games with `more`) is not asked again for this
                // feed until it shows it again; another source of it is asked instead.
                self.fetch_ended(author, request, stored > 0);
            }
            Verdict::Charters { peer, blamed } => {
                if blamed > 0 {
                    self.strike(peer, u32::try_from(blamed).unwrap_or(u32::MAX));
                }
            }
            Verdict::CharterAccepted(charter) => self.adopt_charter(charter),
        }
    }

    /// Applies `charter` if it supersedes the one in force (a late verdict for an older
    /// version must not undo a newer one).
    pub(super) fn adopt_charter(&mut self, charter: Arc<SignedCharter>) {
        let current = Arc::clone(&self.charter.borrow());
        if !charter.supersedes(&current) {
            return;
        }
        info!(version = charter.charter().version, "newer charter applied");
        self.charter.send_replace(Arc::clone(&charter));
        self.apply_charter(&charter);
    }
}
