//! Checking and storing what peers send, off the event loop.
//!
//! The event loop hands every gossiped entry, every page of a sync range and every charter
//! to this pipeline over a bounded queue and goes back to polling the swarm. Workers run
//! the checks cheapest first (`check.rs`: header, federation, charter authorisation, clock,
//! duplicate, full decode, signature), store what passes, and send a [`Verdict`] back,
//! which the loop reports to gossipsub within its validation window. Pages of one feed are
//! handled by one worker in seq order, so catch-up never reports gaps it is about to fill
//! itself.
//!
//! Forward once verified, acknowledge once durable: a gossiped entry's verdict (Accept,
//! which lets gossipsub forward it) goes back as soon as its signature and content are
//! checked, before it is stored, so each hop costs the checks, not the store's indexing
//! or a flush. A gap the entry reveals in its feed is known only once it is stored, and
//! goes back then as a second verdict. The worker then waits until the entry is on disk
//! (sharing the flush with the other workers) before it takes the next job, so the
//! pipeline never runs ahead of the disk by more than a few entries. An entry forwarded
//! and then not stored (a full disk) is fetched by sync later, like one lost in a crash. A relay that crashes
//! in between loses entries it forwarded; its feed heads are then behind its peers', and
//! sync fetches them again. A sync page is reported only once all of it is on disk, with
//! one flush for the whole page: it is not forwarded, so nothing waits for it, and the
//! next page is asked for only after that verdict. In a page, only the first entry from
//! the future has its signature checked; later ones of the same feed that claim the
//! future too are refused on their header, so a page of them costs one check.
//!
//! A sealed entry passes the same checks (relays verify it without reading it). If this
//! node's organisation holds a slot and the node has its encryption key, the entry is
//! opened before it is stored and the store indexes the bundle. One that does not open
//! (a wrong or rotated key, a slot or content its author got wrong) is still stored and
//! relayed, since it is validly signed and other recipients may read it: the failure is
//! logged and counted, nothing of it is indexed, and it is marked unread so that it is
//! tried again when a key is added (`unread.rs`). The node tries every key of its ring
//! (`keyring.rs`), so an entry sealed to the key before a rotation still opens.

mod check;

use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::Duration;

use libp2p::PeerId;
use libp2p::gossipsub::MessageId;
use libp2p::request_response::OutboundRequestId;
use threatmesh_protocol::charter::{Admission, CharterError, RawCharter};
use threatmesh_protocol::entry::EntryHeader;
use threatmesh_protocol::{Hash, PublicKey, SignedCharter, Timestamp};
use tokio::sync::{Semaphore, mpsc, watch};
use tracing::{Instrument as _, debug, error};

use super::charters::{Charters, Taken};
use super::clock::ClockWatch;
use super::keyring::Keyring;
use super::metrics::{Metrics, Rejection};
use super::unread;
use crate::store::{Store, StoreError, Ticket};

/// A sync page's entries created this recently are gossiped again once stored: they are
/// most likely missing elsewhere too (a healed partition, a lost gossip message), and
/// gossip spreads them in a few hops where anti-entropy takes rounds. Older ones (a node
/// catching up on history) are not, so catch-up does not send history to everyone twice.
const REGOSSIP_WITHIN_MS: u64 = 10 * 60 * 1000;

/// The tracing target of the event logged when a gossiped entry is verified and
/// forwarded: fields `node` (this node's key), `entry` (its id) and `from` (the peer that
/// delivered it first).
pub const RELAY_TARGET: &str = "threatmesh::relay";

/// Entries checked at once. Each check is CPU (decode, signature) then a wait for the
/// group flush; a few in parallel keep both cores busy and share flushes.
const WORKERS: usize = 4;

/// Work for the pipeline.
#[derive(Debug)]
pub(crate) enum Job {
    /// An entry or charter that arrived by gossip.
    Gossip {
        payload: Vec<u8>,
        message_id: MessageId,
        source: PeerId,
        /// The author whose rate limit paid for it (named by its header, unverified).
        reserved: Option<PublicKey>,
    },
    /// A page of entries of one feed, from a sync response.
    Range {
        payloads: Vec<Vec<u8>>,
        peer: PeerId,
        request: OutboundRequestId,
        author: PublicKey,
        to_seq: u64,
    },
    /// Charters from a sync response, oldest first.
    Charters {
        charters: Vec<RawCharter>,
        peer: PeerId,
    },
}

/// What the pipeline made of a job.
#[derive(Debug)]
pub(crate) enum Verdict {
    Gossip {
        message_id: MessageId,
        source: PeerId,
        acceptance: Acceptance,
        /// Whether the refusal is the source's fault (counts towards a ban).
        blame: bool,
        /// A feed gap the entry revealed: fetch it from the source.
        gap: Option<(PublicKey, RangeInclusive<u64>)>,
        /// A charter newer than the next one: fetch the chain from the source.
        charter_behind: bool,
        /// The author whose rate limit paid for the message, and its size: given back
        /// unless the entry was stored.
        reserved: Option<(PublicKey, usize)>,
    },
    /// A gossiped entry, forwarded once verified, turned out to follow a gap in its feed
    /// when it was stored: fetch the gap from the peer that sent it.
    Gap {
        source: PeerId,
        author: PublicKey,
        missing: RangeInclusive<u64>,
    },
    Range {
        peer: PeerId,
        request: OutboundRequestId,
        author: PublicKey,
        /// Entries of the page newly stored: without progress, the peer is no longer asked
        /// for this feed until it shows it again.
        stored: usize,
        /// Refusals that are the peer's fault.
        blamed: usize,
        /// Payloads of recent entries the page stored, to gossip again.
        regossip: Vec<Vec<u8>>,
    },
    Charters {
        peer: PeerId,
        blamed: usize,
    },
    /// A newer valid charter was stored: the loop applies it.
    CharterAccepted(Arc<SignedCharter>),
}

/// Gossipsub's three answers, with the reason for a rejection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Acceptance {
    Accept,
    Ignore,
    Reject(Rejection),
}

/// The checks, and what they need.
#[derive(Debug, Clone)]
pub(crate) struct Checker {
    pub(crate) store: Store,
    pub(crate) charter: watch::Receiver<Arc<SignedCharter>>,
    /// Every charter the node holds: where a charter that arrives is checked and kept.
    pub(crate) charters: Arc<Charters>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) clock_skew: Duration,
    /// The node's clock, and what entries say about it.
    pub(crate) clock: Arc<ClockWatch>,
    /// This node's key: its organisation, in the charter, is who it opens sealed entries as.
    pub(crate) node: PublicKey,
    /// The organisation's encryption keys the node holds (perhaps none).
    pub(crate) keyring: Keyring,
    /// Asks for another try of the unread sealed entries.
    pub(crate) unread: unread::Trigger,
    /// Counts the values of new entries that are on a warninglist.
    pub(crate) warninglists: Arc<crate::warninglists::Counts>,
}

/// Starts the pipeline; it ends when the job queue closes.
pub(crate) fn spawn(
    checker: Checker,
    mut jobs: mpsc::Receiver<Job>,
    verdicts: mpsc::Sender<Verdict>,
) {
    let workers = Arc::new(Semaphore::new(WORKERS));
    // Tasks and blocking threads start outside any span: the pipeline keeps the one it is
    // spawned in (the node's), and hands it to each check.
    tokio::spawn(
        async move {
            while let Some(job) = jobs.recv().await {
                let Ok(permit) = Arc::clone(&workers).acquire_owned().await else {
                    break;
                };
                let checker = checker.clone();
                let verdicts = verdicts.clone();
                let span = tracing::Span::current();
                tokio::task::spawn_blocking(move || {
                    let _span = span.enter();
                    let _permit = permit;
                    checker.run(job, &verdicts);
                });
            }
        }
        .in_current_span(),
    );
}

/// The outcome of checking one entry.
pub(super) struct Checked {
    pub(super) acceptance: Acceptance,
    gap: Option<(PublicKey, RangeInclusive<u64>)>,
    /// The batch that wrote the entry, when this check wrote it: on disk once waited for.
    pub(super) written: Option<Ticket>,
}

impl Checked {
    fn blames_sender(&self) -> bool {
        matches!(self.acceptance, Acceptance::Reject(reason) if reason.blames_sender())
    }
}

impl Checker {
    /// Checks and stores what `job` carries, sending each verdict to `verdicts` as soon as
    /// it may go (see the module doc), and returns once what the job wrote is on disk.
    /// Blocks: runs on a blocking thread.
    fn run(&self, job: Job, verdicts: &mpsc::Sender<Verdict>) {
        // The loop is gone only when the node is shutting down; what was written is still
        // waited for, so the store's last flush covers it.
        let send = |verdict| {
            let _ = verdicts.blocking_send(verdict);
        };
        match job {
            Job::Gossip {
                payload,
                message_id,
                source,
                reserved,
            } => {
                let (gossip, written) =
                    self.run_gossip(payload, message_id, source, reserved, &send);
                gossip.into_iter().for_each(send);
                if let Some(ticket) = written {
                    self.wait_durable(&[ticket]);
                }
            }
            Job::Range {
                payloads,
                peer,
                request,
                author,
                to_seq,
            } => {
                let (mut stored, mut blamed) = (0, 0);
                let mut written = Vec::new();
                let mut regossip = Vec::new();
                let recent = self
                    .clock
                    .clock()
                    .now()
                    .0
                    .saturating_sub(REGOSSIP_WITHIN_MS);
                // The first entry of a page from the future is checked in full (a forgery
                // is blamed, and a signed one is evidence about this node's clock); the
                // later ones that claim the future too are refused on their header alone.
                // Such entries are never stored, so a member could otherwise serve the
                // same page of them at every reconciliation, each entry costing a decode
                // and a signature check, without blame.
                let mut future_seen = false;
                let future = self.clock.clock().now().saturating_add(self.clock_skew);
                for payload in payloads {
                    let header = EntryHeader::peek(&payload).ok();
                    let claims_future = header.is_some_and(|header| {
                        header.author == author && header.seq <= to_seq && header.created > future
                    });
                    if future_seen && claims_future {
                        self.metrics.rejected(Rejection::FromTheFuture);
                        continue;
                    }
                    let fresh = header
                        .is_some_and(|header| header.created.0 >= recent)
                        .then(|| payload.clone());
                    let checked = self.check_entry(payload, Some((author, to_seq)), &mut || {});
                    if checked.acceptance == Acceptance::Reject(Rejection::FromTheFuture) {
                        future_seen = true;
                    }
                    if checked.acceptance == Acceptance::Accept {
                        stored += 1;
                        regossip.extend(fresh);
                    }
                    if checked.blames_sender() {
                        blamed += 1;
                    }
                    written.extend(checked.written);
                }
                if !self.wait_durable(&written) {
                    // Nothing of the page is known to be on disk: no progress, so the feed
                    // is asked for again at the next heads round, not at once.
                    stored = 0;
                    regossip.clear();
                }
                send(Verdict::Range {
                    peer,
                    request,
                    author,
                    stored,
                    blamed,
                    regossip,
                });
            }
            Job::Charters { charters, peer } => {
                // Oldest first: each charter is checked against those taken before it, so
                // a node several versions behind catches up in one response.
                let mut blamed = 0;
                for raw in charters {
                    let taken = match SignedCharter::decode(raw) {
                        Ok(charter) => self.take_charter(charter),
                        Err(error) => {
                            self.metrics.rejected(Rejection::BadCharter);
                            Err(error)
                        }
                    };
                    match taken {
                        Ok(Taken::Added(Some(in_force))) => {
                            send(Verdict::CharterAccepted(in_force));
                        }
                        Ok(_) => {}
                        Err(_) => blamed += 1,
                    }
                }
                send(Verdict::Charters { peer, blamed });
            }
        }
    }

    /// Waits until the batches of `written` are on disk; whether they are. The first wait
    /// flushes every batch applied so far, so the others cost nothing: one flush for a
    /// whole page.
    pub(super) fn wait_durable(&self, written: &[Ticket]) -> bool {
        for ticket in written {
            match self.store.wait_durable(*ticket) {
                Ok(()) => {}
                // The store logs its own failure once. An entry already forwarded is
                // fetched again by sync once the store takes writes.
                Err(error @ (StoreError::DiskFull { .. } | StoreError::Poisoned)) => {
                    debug!(%error, "entry applied but not made durable");
                    return false;
                }
                Err(error) => {
                    error!(%error, "making an entry durable failed");
                    return false;
                }
            }
        }
        true
    }

    /// The verdicts on a gossiped message, and the batch to wait for if it wrote one.
    /// `send` takes the verdict that forwards an entry, sent once it is verified and before
    /// it is stored.
    fn run_gossip(
        &self,
        payload: Vec<u8>,
        message_id: MessageId,
        source: PeerId,
        reserved: Option<PublicKey>,
        send: &dyn Fn(Verdict),
    ) -> (Vec<Verdict>, Option<Ticket>) {
        let reserved = reserved.map(|author| (author, payload.len()));
        // Entries and charters share the topic. The kind is read from two bytes, so an
        // entry is decoded once, by the entry checks.
        if threatmesh_protocol::wire::kind_of(&payload) == Some("charter") {
            // A charter is stored durably before its verdict: it is rare and small.
            let verdicts = self.run_gossiped_charter(&payload, message_id, source, reserved);
            return (verdicts, None);
        }
        // Forwarded as soon as it is verified: gossipsub relays it while this node is still
        // writing it, so each hop costs the checks, not the store's work.
        let mut forwarded = false;
        let checked = self.check_entry(payload, None, &mut || {
            forwarded = true;
            // Who delivered each entry first: the path an entry took through the mesh
            // (the testnet's simulation counts hops from it).
            debug!(
                target: RELAY_TARGET,
                node = %self.node,
                entry = %entry_of(&message_id),
                from = %source,
                "entry verified, forwarding"
            );
            send(Verdict::Gossip {
                message_id: message_id.clone(),
                source,
                blame: false,
                acceptance: Acceptance::Accept,
                gap: None,
                charter_behind: false,
                reserved,
            });
        });
        let verdict = if forwarded {
            // Judged already; what is left to say is a gap the entry revealed.
            checked.gap.map(|(author, missing)| Verdict::Gap {
                source,
                author,
                missing,
            })
        } else {
            Some(Verdict::Gossip {
                message_id,
                source,
                blame: checked.blames_sender(),
                acceptance: checked.acceptance,
                gap: checked.gap,
                charter_behind: false,
                reserved,
            })
        };
        (verdict.into_iter().collect(), checked.written)
    }

    fn run_gossiped_charter(
        &self,
        payload: &[u8],
        message_id: MessageId,
        source: PeerId,
        reserved: Option<(PublicKey, usize)>,
    ) -> Vec<Verdict> {
        let decoded = match threatmesh_protocol::wire::decode_gossip(payload) {
            Ok(threatmesh_protocol::wire::Message::Charter(raw)) => SignedCharter::decode(raw).ok(),
            _ => None,
        };
        let (acceptance, accepted, behind) = match decoded {
            None => {
                self.metrics.rejected(Rejection::BadCharter);
                (Acceptance::Reject(Rejection::BadCharter), None, false)
            }
            // Forwarded whenever it is taken, in force here or not: other nodes may need
            // it to check the versions after it.
            Some(incoming) => match self.take_charter(incoming) {
                Ok(Taken::Added(in_force)) => (Acceptance::Accept, in_force, false),
                Ok(Taken::Passed(admission)) => (
                    Acceptance::Ignore,
                    None,
                    admission == Admission::MissingPrevious,
                ),
                Ok(Taken::NotStored(_)) => (Acceptance::Ignore, None, false),
                Err(_) => (Acceptance::Reject(Rejection::BadCharter), None, false),
            },
        };
        let mut verdicts: Vec<Verdict> =
            accepted.map(Verdict::CharterAccepted).into_iter().collect();
        verdicts.push(Verdict::Gossip {
            message_id,
            source,
            blame: matches!(acceptance, Acceptance::Reject(_)),
            acceptance,
            gap: None,
            charter_behind: behind,
            reserved,
        });
        verdicts
    }

    /// Offers a charter to the node's charters (see `charters.rs`), counting the outcome:
    /// `Err`, the one outcome its sender is blamed for, when it fails verification
    /// against the charter it names or is not a well-formed charter.
    pub(super) fn take_charter(&self, incoming: SignedCharter) -> Result<Taken, CharterError> {
        let taken = self.charters.take(incoming);
        match &taken {
            Ok(Taken::Added(_)) => self.metrics.accepted(),
            Ok(Taken::Passed(_) | Taken::NotStored(_)) => {}
            Err(error) => {
                debug!(%error, "charter refused");
                self.metrics.rejected(Rejection::BadCharter);
            }
        }
        taken
    }
}

/// The system clock as a protocol timestamp. The network reads the time through
/// [`super::Clock`] (`Config::clock`), which adds its offset to this.
pub fn now() -> Timestamp {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
        });
    Timestamp(millis)
}

/// The entry id a gossip message id holds (see `behaviour.rs`).
fn entry_of(message_id: &MessageId) -> Hash {
    <[u8; 32]>::try_from(message_id.0.as_slice()).map_or_else(|_| Hash::default(), Hash)
}

#[cfg(test)]
mod tests;
