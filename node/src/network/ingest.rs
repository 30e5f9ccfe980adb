//! Checking and storing what peers send, off the event loop.
//!
//! The event loop hands every gossiped entry, every page of a sync range and every charter
//! to this pipeline over a bounded queue and goes back to polling the swarm. Workers run
//! the checks cheapest first (header, federation, charter authorisation, clock, duplicate,
//! full decode, signature), store what passes, and send a [`Verdict`] back, which the loop
//! reports to gossipsub within its validation window. Pages of one feed are handled by one
//! worker in seq order, so catch-up never reports gaps it is about to fill itself.
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

use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::Duration;

use libp2p::PeerId;
use libp2p::gossipsub::MessageId;
use libp2p::request_response::OutboundRequestId;
use threatmesh_protocol::bundle::Bundle;
use threatmesh_protocol::charter::{Admission, CharterError, RawCharter};
use threatmesh_protocol::entry::{Body, EntryHeader, FeedHead, OpenError, SignedEntry};
use threatmesh_protocol::item::Item;
use threatmesh_protocol::seal::SealContext;
use threatmesh_protocol::{Hash, PublicKey, SignedCharter, Timestamp};
use tokio::sync::{Semaphore, mpsc, watch};
use tracing::{debug, error, warn};

use super::charters::{Charters, Taken};
use super::clock::ClockWatch;
use super::keyring::Keyring;
use super::metrics::{Metrics, Rejection};
use super::unread;
use crate::store::{Applied, Ingest, Reading, Store, StoreError, Ticket};

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

/// What a worker made of an entry's body.
enum Opening {
    /// Nothing to open: a clear entry, or a sealed one for other organisations.
    Nothing,
    /// A sealed entry for this organisation, opened.
    Opened(Bundle),
    /// A sealed entry for this organisation that did not open with the keys held at
    /// `generation`.
    Unopened { generation: u64 },
}

impl Opening {
    fn reading(&self) -> Reading<'_> {
        match self {
            Opening::Nothing => Reading::Entry,
            Opening::Opened(bundle) => Reading::Opened(bundle),
            Opening::Unopened { .. } => Reading::Unopened,
        }
    }
}

/// Starts the pipeline; it ends when the job queue closes.
pub(crate) fn spawn(
    checker: Checker,
    mut jobs: mpsc::Receiver<Job>,
    verdicts: mpsc::Sender<Verdict>,
) {
    let workers = Arc::new(Semaphore::new(WORKERS));
    tokio::spawn(async move {
        while let Some(job) = jobs.recv().await {
            let Ok(permit) = Arc::clone(&workers).acquire_owned().await else {
                break;
            };
            let checker = checker.clone();
            let verdicts = verdicts.clone();
            tokio::task::spawn_blocking(move || {
                let _permit = permit;
                checker.run(job, &verdicts);
            });
        }
    });
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

    /// Runs every check on one entry, cheapest first, and applies it to the store if it
    /// passes (not waiting for the disk: see [`Checked::written`]). `requested` is set for
    /// sync pages: an entry of another feed, or past the range asked for, is refused.
    /// `verified` runs once the entry is known to be valid, before it is stored.
    pub(super) fn check_entry(
        &self,
        payload: Vec<u8>,
        requested: Option<(PublicKey, u64)>,
        verified: &mut dyn FnMut(),
    ) -> Checked {
        let started = std::time::Instant::now();
        let checked = self.check_entry_inner(payload, requested, verified);
        self.metrics.ingest_latency(started.elapsed());
        match checked.acceptance {
            Acceptance::Accept => self.metrics.accepted(),
            Acceptance::Ignore => self.metrics.duplicate(),
            Acceptance::Reject(reason) => self.metrics.rejected(reason),
        }
        checked
    }

    fn check_entry_inner(
        &self,
        payload: Vec<u8>,
        requested: Option<(PublicKey, u64)>,
        verified: &mut dyn FnMut(),
    ) -> Checked {
        let reject = |reason| Checked {
            acceptance: Acceptance::Reject(reason),
            gap: None,
            written: None,
        };
        // Nothing written, nothing to wait for: a duplicate is not acknowledged (Ignore is
        // not forwarded, and a page counts only what it stored).
        let ignore = Checked {
            acceptance: Acceptance::Ignore,
            gap: None,
            written: None,
        };
        let Ok(header) = EntryHeader::peek(&payload) else {
            return reject(Rejection::Malformed);
        };
        let charter = Arc::clone(&self.charter.borrow());
        if header.federation != charter.federation() {
            return reject(Rejection::OtherFederation);
        }
        if requested.is_some_and(|(author, to_seq)| author != header.author || header.seq > to_seq)
        {
            return reject(Rejection::Invalid);
        }
        let id = Hash::of(&payload);
        let head = FeedHead {
            author: header.author,
            seq: header.seq,
            id,
        };
        let member = match charter.charter().authorise_entry(&head, header.created) {
            Ok(member) => member,
            Err(reason) => {
                debug!(author = %header.author.fmt_short(), seq = header.seq, %reason, "entry refused");
                return reject(Rejection::NotAuthorised);
            }
        };
        // A feed the charter ended only fills places the node does not hold (see
        // `Store::apply_ended`), and that is known once stored: such an entry is forwarded
        // after, not before, so a cut-off key's contradicting entries go nowhere. The entry
        // the cutoff names is the charter's word, not the key's: taken like any other.
        let ended = member
            .feed_end(&header.author)
            .is_some_and(|end| end.last_id != Some(id));
        let org = member.org;
        let now = self.clock.clock().now();
        if header.created > now.saturating_add(self.clock_skew) {
            // Refused whoever is wrong, but first checked like any entry: a forgery is the
            // sender's fault, and only a signed entry may speak about this node's clock.
            if let Err(rejection) = open_entry(payload) {
                return reject(rejection);
            }
            self.clock.sighted(org, header.created);
            return reject(Rejection::FromTheFuture);
        }
        match self.store.contains(&id) {
            Ok(true) => return ignore,
            Ok(false) => {}
            Err(error) => {
                error!(%error, "store read failed");
                return ignore;
            }
        }
        let entry = match open_entry(payload) {
            Ok(entry) => entry,
            Err(rejection) => return reject(rejection),
        };
        if !ended {
            verified();
        }
        // Only a signed entry says how far its feed reaches.
        self.metrics.advertised(header.author, header.seq);
        let opening = self.open_sealed(&entry, &charter);
        // Added now, once checked: the time it became readable here (the checks of a large
        // entry take milliseconds, which `now`, read before them, would leave out).
        let now = self.clock.clock().now();
        let applied = if ended {
            self.store.apply_ended(&entry, org, opening.reading(), now)
        } else {
            self.store.apply(&entry, org, opening.reading(), now)
        };
        if let Ok(Applied {
            outcome: Ingest::Stored | Ingest::Gap { .. } | Ingest::Equivocation { .. },
            ..
        }) = &applied
        {
            self.count_warninglisted(&entry, &opening);
        }
        if let Opening::Unopened { generation } = opening
            && self.keyring.generation() != generation
        {
            // A key arrived while this entry was being opened, and the pass it started
            // may have gone by before the entry was marked unread.
            self.unread.pull();
        }
        if requested.is_none()
            && let Ok(Applied {
                outcome: Ingest::Stored | Ingest::Gap { .. },
                ..
            }) = &applied
        {
            // Gossip carries entries as they are published: how old this one looks says
            // something about this node's clock. (Sync pages may be old, so they do not.)
            self.clock.sighted(org, header.created);
        }
        match applied {
            Ok(Applied {
                outcome: Ingest::Stored,
                ticket,
            }) => Checked {
                acceptance: Acceptance::Accept,
                gap: None,
                written: Some(ticket),
            },
            Ok(Applied {
                outcome: Ingest::Gap { missing },
                ticket,
            }) => Checked {
                acceptance: Acceptance::Accept,
                gap: Some((header.author, missing)),
                written: Some(ticket),
            },
            Ok(Applied {
                outcome: Ingest::Equivocation { seq },
                ticket,
            }) => {
                warn!(author = %header.author.fmt_short(), seq, "equivocation: two entries for one place in a feed");
                self.metrics.equivocation();
                Checked {
                    acceptance: Acceptance::Accept,
                    gap: None,
                    written: Some(ticket),
                }
            }
            Ok(Applied {
                outcome: Ingest::Contradicts { seq },
                ..
            }) => {
                // Refused as the charter's doing, not the sender's: an honest relay may
                // have taken the entry for a place it did not hold.
                debug!(author = %header.author.fmt_short(), seq, "entry of an ended feed contradicts one held: refused");
                reject(Rejection::NotAuthorised)
            }
            Ok(Applied {
                outcome: Ingest::Duplicate,
                ..
            }) => ignore,
            // Our own failure: not the peer's fault, and not stored; sync fetches the entry
            // again once the store takes writes. A full disk or an earlier failure is
            // logged by the store once, not here for every entry.
            Err(error @ (StoreError::DiskFull { .. } | StoreError::Poisoned)) => {
                debug!(%error, "entry not stored");
                ignore
            }
            Err(error) => {
                error!(%error, "storing an entry failed");
                ignore
            }
        }
    }

    /// Counts the values of a newly stored entry that are on a warninglist: nothing is
    /// refused for it (the author may know better), but an operator sees how much of what
    /// peers send is on which list. After the entry's verdict went out, so it does not
    /// delay forwarding; a hash lookup or two per value against the store's writes.
    fn count_warninglisted(&self, entry: &SignedEntry, opening: &Opening) {
        if self.warninglists.lists().is_empty() {
            return;
        }
        let ((Opening::Opened(bundle), _) | (_, Body::Bundle(bundle))) =
            (opening, &entry.entry().body)
        else {
            return;
        };
        for item in &bundle.items {
            match item {
                Item::Indicator(indicator) => self.warninglists.count(&indicator.value),
                Item::Sighting(_) | Item::Revocation(_) => {}
            }
        }
    }

    /// The bundle of a sealed entry addressed to this node's organisation, opened with one
    /// of its encryption keys; nothing for a clear entry or one for other organisations,
    /// and `Unopened` for one this node cannot read yet (counted).
    fn open_sealed(&self, entry: &SignedEntry, charter: &SignedCharter) -> Opening {
        let Body::Sealed(sealed) = &entry.entry().body else {
            return Opening::Nothing;
        };
        let org = charter
            .charter()
            .node(&self.node)
            .map(|(member, _)| member.org);
        let Some(org) = org.filter(|org| sealed.is_for(org)) else {
            self.metrics.sealed_not_addressed();
            return Opening::Nothing;
        };
        let generation = self.keyring.generation();
        match self
            .keyring
            .open(sealed, &SealContext::of(entry.entry()), &org)
        {
            Ok(bundle) => {
                self.metrics.sealed_opened();
                Opening::Opened(bundle)
            }
            Err(reason) => {
                warn!(author = %entry.entry().author.fmt_short(), seq = entry.entry().seq, %reason,
                    "a bundle sealed to this organisation does not open; stored unread, and tried again when a key is added");
                self.metrics.sealed_open_failed();
                Opening::Unopened { generation }
            }
        }
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

/// Decodes and verifies an entry from a peer; the rejection for what is wrong with it.
fn open_entry(payload: Vec<u8>) -> Result<SignedEntry, Rejection> {
    SignedEntry::open(payload).map_err(|error| match error {
        OpenError::Entry(reason) => {
            debug!(%reason, "invalid entry");
            Rejection::Invalid
        }
        OpenError::Signature(_) => Rejection::BadSignature,
    })
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
mod tests {
    #![allow(clippy::unwrap_used)] // tests unwrap what they built themselves

    use libp2p::request_response;
    use threatmesh_protocol::bundle::{Distribution, Tlp};
    use threatmesh_protocol::item::{Indicator, Item};
    use threatmesh_protocol::{Kind, SigningKey, Value};

    use super::super::testing;
    use super::*;
    use crate::network::clock::Clock;

    /// The longest a test waits for the worker.
    const TIMEOUT: Duration = Duration::from_secs(10);

    /// A checker over a temporary store, in a federation whose one member has the node
    /// `author`.
    fn checker(author: &SigningKey) -> Checker {
        let skew = Duration::from_secs(300);
        let store = testing::temporary_store();
        let charter = testing::charter(author);
        Checker {
            charters: Arc::new(Charters::load(store.clone(), charter.clone()).unwrap()),
            store,
            charter: watch::channel(Arc::new(charter)).1,
            metrics: Arc::default(),
            clock_skew: skew,
            clock: Arc::new(ClockWatch::new(Clock::system(), skew)),
            node: PublicKey::of(author),
            keyring: Keyring::default(),
            unread: unread::Trigger::detached(),
            warninglists: Arc::new(crate::warninglists::Counts::new(
                crate::warninglists::Warninglists::builtin(),
            )),
        }
    }

    /// `count` entries of `author`'s feed, one indicator each.
    fn feed(checker: &Checker, author: &SigningKey, count: u32) -> Vec<SignedEntry> {
        let federation = checker.charter.borrow().federation();
        let mut entries: Vec<SignedEntry> = Vec::new();
        for n in 0..count {
            let value = Value::parse(Kind::Ipv4, &format!("10.0.0.{n}")).unwrap();
            let body = Body::Bundle(Bundle {
                tlp: Tlp::Green,
                distribution: Distribution::Federation,
                items: vec![Item::Indicator(Indicator::new(value, Timestamp(1)))],
            });
            let head = entries.last().map(SignedEntry::head);
            entries
                .push(SignedEntry::next(author, federation, head.as_ref(), now(), body).unwrap());
        }
        entries
    }

    /// Runs one gossip job carrying `entry` and returns every verdict it gave.
    async fn gossip(checker: &Checker, entry: &SignedEntry) -> Vec<Verdict> {
        let (sender, mut verdicts) = mpsc::channel(8);
        let job = Job::Gossip {
            payload: entry.payload().to_vec(),
            message_id: MessageId::new(&entry.id().0),
            source: PeerId::random(),
            reserved: None,
        };
        let checker = checker.clone();
        tokio::time::timeout(
            TIMEOUT,
            tokio::task::spawn_blocking(move || checker.run(job, &sender)),
        )
        .await
        .unwrap()
        .unwrap();
        let mut given = Vec::new();
        while let Ok(verdict) = verdicts.try_recv() {
            given.push(verdict);
        }
        given
    }

    /// Whether any verdict lets gossipsub forward the message.
    fn forwarded(verdicts: &[Verdict]) -> bool {
        verdicts.iter().any(|verdict| {
            matches!(
                verdict,
                Verdict::Gossip {
                    acceptance: Acceptance::Accept,
                    ..
                }
            )
        })
    }

    /// A checker under a version 2 that revokes the member of `author` after the last of
    /// `honest` was created and ends its feed there.
    fn revoked(checker: &mut Checker, author: &SigningKey, honest: &[SignedEntry]) {
        use threatmesh_protocol::charter::{Charter, FeedCutoff, Status};

        let genesis = Arc::clone(&checker.charter.borrow());
        let last = honest.last().unwrap();
        let mut members = genesis.charter().members.clone();
        members[0].status = Status::Revoked {
            since: Timestamp(last.entry().created.0 + 1),
        };
        members[0].cutoffs = vec![FeedCutoff {
            node: PublicKey::of(author),
            last_seq: last.entry().seq,
            last_id: Some(last.id()),
        }];
        let mut revoking = SignedCharter::propose(Charter {
            federation: genesis.federation(),
            version: 2,
            previous: Some(genesis.id()),
            issued: Timestamp(2),
            members,
            ..genesis.charter().clone()
        })
        .unwrap();
        revoking.sign(&SigningKey::from_bytes(&[3; 32]));
        revoking.verify_successor(&genesis).unwrap();
        checker.charter = watch::channel(Arc::new(revoking)).1;
    }

    /// An entry of `author`'s feed at `seq`, after `before`, created at `created`, with
    /// indicator `n`: what a key holder forges.
    fn forge(
        checker: &Checker,
        author: &SigningKey,
        before: Option<&SignedEntry>,
        created: Timestamp,
        n: u64,
    ) -> SignedEntry {
        let seq = before.map_or(1, |entry| entry.entry().seq + 1);
        let value = Value::parse(Kind::Ipv4, &format!("192.0.{seq}.{n}")).unwrap();
        let body = Body::Bundle(Bundle {
            tlp: Tlp::Green,
            distribution: Distribution::Federation,
            items: vec![Item::Indicator(Indicator::new(value, Timestamp(1)))],
        });
        let federation = checker.charter.borrow().federation();
        let head = before.map(SignedEntry::head);
        SignedEntry::next(author, federation, head.as_ref(), created, body).unwrap()
    }

    /// A revoked member's node key, still in the hands of whoever holds it, signs entries
    /// for places below its feed's cutoff, backdated before the revocation. The node keeps
    /// taking the entries it had not seen of the real feed, but neither stores nor
    /// forwards a single one of the forgeries: a cut-off key cannot keep writing evidence.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn revoked_key_cannot_add_entries_for_places_below_its_cutoff() {
        let author = SigningKey::from_bytes(&[2; 32]);
        let mut checker = checker(&author);
        let honest = feed(&checker, &author, 5);
        let created = honest[0].entry().created;
        revoked(&mut checker, &author, &honest);
        let store = checker.store.clone();

        // The node had seen none of the feed: entries signed before the revocation still
        // arrive, one place left open.
        for index in [0, 1, 2, 4] {
            assert!(
                forwarded(&gossip(&checker, &honest[index]).await),
                "honest entry {} was refused",
                index + 1
            );
        }
        // Forgeries for every place up to the cutoff but the last (pinned by id), each
        // naming the real entry before it, so only the place itself is contested.
        let mut forgeries = 0;
        for seq in 1..=4usize {
            for n in 0..6 {
                let before = (seq > 1).then(|| &honest[seq - 2]);
                let forged = forge(&checker, &author, before, created, n);
                let verdicts = gossip(&checker, &forged).await;
                assert!(
                    !forwarded(&verdicts),
                    "forged entry {seq} was forwarded: {verdicts:?}"
                );
                assert!(
                    !store.contains(&forged.id()).unwrap(),
                    "forged entry {seq} was stored"
                );
                forgeries += 1;
            }
        }
        assert_eq!(forgeries, 24);
        assert_eq!(
            store.equivocations(&PublicKey::of(&author)).unwrap(),
            vec![]
        );
        // The place left open is still the real entry's, which links both sides.
        assert!(forwarded(&gossip(&checker, &honest[3]).await));
        assert_eq!(store.stats().unwrap().entries, 5);
        assert!(
            !store.feeds().unwrap()[0].equivocated,
            "the feed reads as equivocated"
        );
    }

    /// A key thief raced a forgery for the last place into the node before the stewards
    /// ended the feed. The entry the cutoff names is still taken: it is the charter's
    /// word, not the key's, and it is one entry.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn entry_a_cutoff_names_is_taken_over_a_forgery_held_before() {
        let author = SigningKey::from_bytes(&[2; 32]);
        let mut checker = checker(&author);
        let honest = feed(&checker, &author, 2);
        let forged = forge(&checker, &author, Some(&honest[0]), now(), 1);
        let org = checker.charter.borrow().charter().members[0].org;
        assert_eq!(
            checker.store.ingest(&honest[0], org, now()).unwrap(),
            Ingest::Stored
        );
        assert_eq!(
            checker.store.ingest(&forged, org, now()).unwrap(),
            Ingest::Stored
        );
        revoked(&mut checker, &author, &honest);
        assert!(forwarded(&gossip(&checker, &honest[1]).await));
        assert!(checker.store.contains(&honest[1].id()).unwrap());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn values_on_a_warninglist_are_stored_and_counted_per_list_once() {
        let author = SigningKey::from_bytes(&[2; 32]);
        let checker = checker(&author);
        // 10.0.0.n: on the default warninglists (RFC 1918).
        let entries = feed(&checker, &author, 3);
        for entry in &entries {
            assert!(forwarded(&gossip(&checker, entry).await));
        }
        // A duplicate is not counted again.
        gossip(&checker, &entries[0]).await;
        assert_eq!(checker.store.stats().unwrap().entries, 3);
        let counts: std::collections::HashMap<String, u64> =
            checker.warninglists.snapshot().into_iter().collect();
        assert_eq!(counts["rfc1918"], 3);
        assert_eq!(counts["public-dns-v4"], 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn gossiped_entry_is_accepted_once_verified_then_stored_and_made_durable() {
        let author = SigningKey::from_bytes(&[2; 32]);
        let checker = checker(&author);
        let store = checker.store.clone();
        let entry = feed(&checker, &author, 1).remove(0);
        let (sender, mut verdicts) = mpsc::channel(8);
        // No flush can finish while this is held.
        let hold = store.hold_flushes();
        let job = Job::Gossip {
            payload: entry.payload().to_vec(),
            message_id: MessageId::new(b"entry"),
            source: PeerId::random(),
            reserved: None,
        };
        let worker = {
            let checker = checker.clone();
            tokio::task::spawn_blocking(move || checker.run(job, &sender))
        };
        let verdict = tokio::time::timeout(TIMEOUT, verdicts.recv())
            .await
            .unwrap()
            .unwrap();
        assert!(
            matches!(
                verdict,
                Verdict::Gossip {
                    acceptance: Acceptance::Accept,
                    ..
                }
            ),
            "{verdict:?}"
        );
        // Forwarded once verified; the worker stores it after, then waits for the flush.
        let deadline = std::time::Instant::now() + TIMEOUT;
        while !store.contains(&entry.id()).unwrap() {
            assert!(
                std::time::Instant::now() < deadline,
                "the entry was never applied"
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        assert_eq!(store.flushes(), 0, "accepted before any flush");
        assert!(!worker.is_finished(), "the worker waits for the flush");
        drop(hold);
        tokio::time::timeout(TIMEOUT, worker)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(store.flushes(), 1, "the worker made the entry durable");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn entry_after_a_gap_is_forwarded_then_the_gap_is_reported() {
        let author = SigningKey::from_bytes(&[2; 32]);
        let checker = checker(&author);
        let second = feed(&checker, &author, 2).remove(1);
        let (sender, mut verdicts) = mpsc::channel(8);
        let source = PeerId::random();
        let job = Job::Gossip {
            payload: second.payload().to_vec(),
            message_id: MessageId::new(b"second"),
            source,
            reserved: None,
        };
        tokio::task::spawn_blocking(move || checker.run(job, &sender))
            .await
            .unwrap();
        let first = verdicts.recv().await.unwrap();
        assert!(
            matches!(
                first,
                Verdict::Gossip {
                    acceptance: Acceptance::Accept,
                    gap: None,
                    ..
                }
            ),
            "{first:?}"
        );
        let gap = verdicts.recv().await.unwrap();
        assert!(
            matches!(&gap, Verdict::Gap { source: s, missing, .. } if *s == source && *missing == (1..=1)),
            "{gap:?}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sync_page_is_reported_once_on_disk_with_one_flush() {
        let author = SigningKey::from_bytes(&[2; 32]);
        let checker = checker(&author);
        let store = checker.store.clone();
        let entries = feed(&checker, &author, 10);
        let peer = PeerId::random();
        // Request ids come from a request-response behaviour only.
        let mut requests = request_response::Behaviour::with_codec(
            super::super::codec::SyncCodec::new(std::sync::Arc::default()),
            [(
                super::super::codec::PROTOCOL,
                request_response::ProtocolSupport::Full,
            )],
            request_response::Config::default(),
        );
        let request = requests.send_request(
            &peer,
            super::super::codec::SyncRequest::Valid(threatmesh_protocol::wire::Request::Heads {
                federation: Hash::default(),
            }),
        );
        let job = Job::Range {
            payloads: entries
                .iter()
                .map(|entry| entry.payload().to_vec())
                .collect(),
            peer,
            request,
            author: PublicKey::of(&author),
            to_seq: 10,
        };
        let (sender, mut verdicts) = mpsc::channel(8);
        let worker = {
            let checker = checker.clone();
            tokio::task::spawn_blocking(move || checker.run(job, &sender))
        };
        let verdict = tokio::time::timeout(TIMEOUT, verdicts.recv())
            .await
            .unwrap()
            .unwrap();
        assert!(
            matches!(
                verdict,
                Verdict::Range {
                    stored: 10,
                    blamed: 0,
                    ..
                }
            ),
            "{verdict:?}"
        );
        assert_eq!(
            store.flushes(),
            1,
            "one flush, before the verdict, for the whole page"
        );
        tokio::time::timeout(TIMEOUT, worker)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(store.flushes(), 1);
    }
}
