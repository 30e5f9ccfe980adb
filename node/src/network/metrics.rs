//! Counters the network keeps for status, metrics and tests: what was accepted, what was
//! refused and why, what sync fetched and served, every time a bounded queue was full, and
//! the bytes on the wire.
//!
//! Bytes are counted where they can be counted exactly: every byte of every peer
//! connection above TCP ([`Traffic`] filled by `transport.rs`, so Noise, yamux and
//! protocol negotiation are included), and the sync protocol's own frames (filled by
//! `codec.rs`). Ping and identify run in libp2p, out of our reach, so they are counted by
//! their events and their bytes estimated from what each exchange carries. Gossipsub and
//! the framing of every protocol are what is left of the transport's total.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

/// Why an entry or charter from a peer was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rejection {
    /// Not a well-formed message (bad bytes, too large, wrong version, non-canonical).
    Malformed,
    /// An entry of another federation.
    OtherFederation,
    /// Its author may not publish it (unknown node, no role, suspended, beyond a cutoff).
    NotAuthorised,
    /// Created further in the future than the clock tolerance.
    FromTheFuture,
    /// Well-formed but breaks a protocol rule (values, limits, seq/prev).
    Invalid,
    /// The signature does not verify.
    BadSignature,
    /// A charter that does not verify against the current one.
    BadCharter,
}

impl Rejection {
    /// Every reason, in a fixed order.
    pub const ALL: [Rejection; 7] = [
        Rejection::Malformed,
        Rejection::OtherFederation,
        Rejection::NotAuthorised,
        Rejection::FromTheFuture,
        Rejection::Invalid,
        Rejection::BadSignature,
        Rejection::BadCharter,
    ];

    /// Whether the peer that sent it is to blame, so it counts towards a ban. Not for
    /// entries refused under a charter the sender may not have yet, or for a creation time
    /// our own clock disagrees with: honest relays send those too.
    pub fn blames_sender(self) -> bool {
        !matches!(self, Rejection::NotAuthorised | Rejection::FromTheFuture)
    }

    /// The reason's name, for logs and metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Rejection::Malformed => "malformed",
            Rejection::OtherFederation => "other-federation",
            Rejection::NotAuthorised => "not-authorised",
            Rejection::FromTheFuture => "from-the-future",
            Rejection::Invalid => "invalid",
            Rejection::BadSignature => "bad-signature",
            Rejection::BadCharter => "bad-charter",
        }
    }

    fn index(self) -> usize {
        Rejection::ALL
            .iter()
            .position(|reason| *reason == self)
            .unwrap_or(0)
    }
}

/// Upper bounds, in microseconds, of the ingest latency histogram's buckets (the last
/// bucket, +Inf, is implied).
pub const INGEST_BUCKETS_MICROS: [u64; 10] = [
    500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 1_000_000,
];

/// Bytes through some kind of stream, each way. Shared (in an `Arc`) with the streams
/// that count into it.
#[derive(Debug, Default)]
pub(crate) struct Traffic {
    received: AtomicU64,
    sent: AtomicU64,
}

impl Traffic {
    pub(crate) fn received(&self, bytes: usize) {
        add(&self.received, bytes as u64);
    }

    pub(crate) fn sent(&self, bytes: usize) {
        add(&self.sent, bytes as u64);
    }

    /// (received, sent) so far.
    pub(crate) fn totals(&self) -> (u64, u64) {
        (
            self.received.load(Ordering::Relaxed),
            self.sent.load(Ordering::Relaxed),
        )
    }
}

/// Bytes of a libp2p ping payload; a ping is answered with the same bytes.
pub const PING_PAYLOAD_BYTES: u64 = 32;

/// The network's counters. Cheap to update from any task.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    /// Every byte of every peer connection, above TCP.
    pub(crate) transport: Arc<Traffic>,
    /// The sync protocol's frames (length prefix and message).
    pub(crate) sync: Arc<Traffic>,
    pings: AtomicU64,
    identify_received: AtomicU64,
    identify_received_bytes: AtomicU64,
    identify_sent: AtomicU64,
    /// Per feed, the highest seq any peer has shown us (in a heads answer or a gossiped
    /// entry): how far each feed goes, as far as this node knows. Only feeds the charter
    /// certifies are recorded, so the map is bounded by the charter.
    advertised: std::sync::Mutex<std::collections::HashMap<threatmesh_protocol::PublicKey, u64>>,
    /// Time a worker took from taking an entry to its verdict (checks, and applying it to
    /// the store; the flush that makes it durable comes after), by bucket.
    ingest_buckets: [AtomicU64; INGEST_BUCKETS_MICROS.len() + 1],
    ingest_micros_sum: AtomicU64,
    accepted: AtomicU64,
    duplicates: AtomicU64,
    rejected: [AtomicU64; Rejection::ALL.len()],
    fetched_entries: AtomicU64,
    fetched_bytes: AtomicU64,
    served_entries: AtomicU64,
    queue_full: AtomicU64,
    peers_banned: AtomicU64,
    equivocations: AtomicU64,
    refused_not_in_charter: AtomicU64,
    refused_blocked: AtomicU64,
    sealed_opened: AtomicU64,
    sealed_open_failed: AtomicU64,
    sealed_not_addressed: AtomicU64,
    sealed_retry_opened: AtomicU64,
    sealed_retry_failed: AtomicU64,
    throttled_messages: AtomicU64,
    throttled_bytes: AtomicU64,
    throttled_author_messages: AtomicU64,
    throttled_author_bytes: AtomicU64,
    refused_over_limit: AtomicU64,
    refused_ip_over_limit: AtomicU64,
    pending_inbound: AtomicU64,
    sync_oversized_requests: AtomicU64,
    sync_oversized_responses: AtomicU64,
    sync_withheld: AtomicU64,
    reconcile_requests: AtomicU64,
    sync_failures: AtomicU64,
    sync_timeouts: AtomicU64,
    sync_answers_over_limit: AtomicU64,
    sync_slow_readers: AtomicU64,
    sync_answers_held: AtomicU64,
    sync_answer_bytes_held: AtomicU64,
    peers_pruned: AtomicU64,
    regossiped: AtomicU64,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Snapshot {
    /// Entries and charters accepted and stored.
    pub accepted: u64,
    /// Entries received again (already held).
    pub duplicates: u64,
    /// Refusals, by reason.
    pub rejected: Vec<(Rejection, u64)>,
    /// Entries received in sync responses.
    pub fetched_entries: u64,
    /// Bytes of entries received in sync responses.
    pub fetched_bytes: u64,
    /// Entries sent in sync responses.
    pub served_entries: u64,
    /// Work dropped because a bounded queue was full.
    pub queue_full: u64,
    /// Peers banned for misbehaviour.
    pub peers_banned: u64,
    /// Equivocations detected.
    pub equivocations: u64,
    /// Connections refused once the handshake named a peer the charter does not admit
    /// (incoming and outgoing).
    pub refused_not_in_charter: u64,
    /// Connections refused because the peer is banned or blocked by the operator.
    pub refused_blocked: u64,
    /// Connections refused because a connection limit was reached.
    pub refused_over_limit: u64,
    /// Incoming connections refused before the handshake because their address had too
    /// many handshakes pending or opened connections too fast.
    pub refused_ip_over_limit: u64,
    /// Incoming connections in their handshake now (a gauge).
    pub pending_inbound: u64,
    /// Sync requests from peers refused because their frame was over the request limit.
    pub sync_oversized_requests: u64,
    /// Sync responses from peers refused because their frame was over the response limit.
    pub sync_oversized_responses: u64,
    /// Sync requests from peers whose organisation may not read, answered without
    /// entries or feed heads: heads and range requests refused, reconcile requests
    /// answered with the charter in force only.
    pub sync_withheld: u64,
    /// Reconcile requests sent (anti-entropy rounds and their narrowing steps).
    pub reconcile_requests: u64,
    /// Sync misbehaviour held against a peer: answers that do not fit the question,
    /// reconciliations that do not narrow, stalls, feeds advertised and not served.
    pub sync_failures: u64,
    /// Sync requests (reconcile, range, charters) that timed out.
    pub sync_timeouts: u64,
    /// Sync requests from peers refused (and held against them) because the peer held
    /// the most answers it may already (`SYNC_ANSWERS_PER_PEER`).
    pub sync_answers_over_limit: u64,
    /// Sync answers dropped (and held against the peer) because the peer did not read
    /// them within their deadline.
    pub sync_slow_readers: u64,
    /// Sync requests from peers being answered now: waiting, being read or going out (a
    /// gauge).
    pub sync_answers_held: u64,
    /// Bytes of sync answers read and not yet taken by their peers (a gauge).
    pub sync_answer_bytes_held: u64,
    /// Links closed because the node held more than its peer target.
    pub peers_pruned: u64,
    /// Recent entries fetched by sync and gossiped again.
    pub regossiped: u64,
    /// Sealed entries from peers addressed to this organisation and opened.
    pub sealed_opened: u64,
    /// Sealed entries from peers addressed to this organisation that did not open (no
    /// key, a wrong or rotated key, or a body its author got wrong): stored unread.
    pub sealed_open_failed: u64,
    /// Sealed entries from peers not addressed to this organisation: stored and relayed
    /// unread.
    pub sealed_not_addressed: u64,
    /// Sealed entries stored unread that opened when tried again (a key was added, or the
    /// node restarted with more keys).
    pub sealed_retry_opened: u64,
    /// Tries again of stored unread sealed entries that still did not open (each pass
    /// over one entry counts once).
    pub sealed_retry_failed: u64,
    /// Gossip messages ignored because their sender (the forwarding peer) was over its
    /// rate limit.
    pub throttled_messages: u64,
    /// Bytes of those messages.
    pub throttled_bytes: u64,
    /// Gossip entries ignored because their author was over its rate limit (whoever
    /// forwarded them; not charged to the forwarder).
    pub throttled_author_messages: u64,
    /// Bytes of those entries.
    pub throttled_author_bytes: u64,
    /// Ingest latency: entries per bucket of [`INGEST_BUCKETS_MICROS`] (not cumulative),
    /// the last for anything slower.
    pub ingest_buckets: Vec<u64>,
    /// Sum of all ingest latencies, in microseconds.
    pub ingest_micros_sum: u64,
    /// Per feed, the highest seq a peer has shown this node.
    pub advertised: std::collections::HashMap<threatmesh_protocol::PublicKey, u64>,
    /// Whether this node's own clock seems wrong, judged from the organisations' entries.
    pub clock: super::ClockStatus,
    /// Bytes received on peer connections, above TCP: everything, Noise, yamux and
    /// protocol negotiation included. Exact.
    pub transport_bytes_received: u64,
    /// Bytes sent on peer connections, counted as `transport_bytes_received` is.
    pub transport_bytes_sent: u64,
    /// Bytes of sync protocol frames received (the 4-byte length and the message; not
    /// the stream's negotiation nor the yamux and Noise framing around it). Exact.
    pub sync_bytes_received: u64,
    /// Bytes of sync protocol frames sent, counted as `sync_bytes_received` is.
    pub sync_bytes_sent: u64,
    /// Pings this node sent that were answered ([`PING_PAYLOAD_BYTES`] each way). Each
    /// peer pings this node about as often (every 15 s per connection), which this node
    /// answers without an event: ping traffic is about `2 * pings * PING_PAYLOAD_BYTES`
    /// each way, framing aside.
    pub pings: u64,
    /// Identify messages received from peers (one per new connection, then one every
    /// 5 minutes per connection).
    pub identify_received: u64,
    /// Estimated bytes of those messages: computed from the fields each carried, as
    /// identify encodes them (protobuf, with its length prefix); negotiation and framing
    /// not included.
    pub identify_received_bytes: u64,
    /// Identify messages this node sent (answers to peers' requests and pushes). Its
    /// own message is about as large as a peer's: they run the same software.
    pub identify_sent: u64,
}

impl Snapshot {
    /// Refusals for `reason`.
    pub fn rejected(&self, reason: Rejection) -> u64 {
        self.rejected
            .iter()
            .find(|(r, _)| *r == reason)
            .map_or(0, |(_, count)| *count)
    }

    /// Refusals for any reason.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.iter().map(|(_, count)| count).sum()
    }
}

fn add(counter: &AtomicU64, amount: u64) {
    counter.fetch_add(amount, Ordering::Relaxed);
}

impl Metrics {
    pub(crate) fn accepted(&self) {
        add(&self.accepted, 1);
    }

    pub(crate) fn duplicate(&self) {
        add(&self.duplicates, 1);
    }

    pub(crate) fn rejected(&self, reason: Rejection) {
        add(&self.rejected[reason.index()], 1);
    }

    pub(crate) fn fetched(&self, entries: usize, bytes: usize) {
        add(&self.fetched_entries, entries as u64);
        add(&self.fetched_bytes, bytes as u64);
    }

    pub(crate) fn served(&self, entries: usize) {
        add(&self.served_entries, entries as u64);
    }

    pub(crate) fn queue_full(&self) {
        add(&self.queue_full, 1);
    }

    pub(crate) fn banned(&self) {
        add(&self.peers_banned, 1);
    }

    pub(crate) fn ingest_latency(&self, elapsed: std::time::Duration) {
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        let bucket = INGEST_BUCKETS_MICROS
            .iter()
            .position(|bound| micros <= *bound)
            .unwrap_or(INGEST_BUCKETS_MICROS.len());
        add(&self.ingest_buckets[bucket], 1);
        add(&self.ingest_micros_sum, micros);
    }

    /// Lowers what is recorded of how far `author`'s feed goes to at most `seq`: a peer that
    /// claimed more did not serve it, so its claim no longer counts in the feed's lag.
    pub(crate) fn cap_advertised(&self, author: threatmesh_protocol::PublicKey, seq: u64) {
        let mut advertised = self
            .advertised
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(highest) = advertised.get_mut(&author) {
            *highest = (*highest).min(seq);
        }
    }

    /// Records that a peer showed `seq` of `author`'s feed (a certified feed). Heads in
    /// sync answers are unsigned claims: no seq beyond what any feed can reach is kept.
    pub(crate) fn advertised(&self, author: threatmesh_protocol::PublicKey, seq: u64) {
        let seq = seq.min(threatmesh_protocol::entry::MAX_SEQ);
        let mut advertised = self
            .advertised
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let highest = advertised.entry(author).or_default();
        *highest = (*highest).max(seq);
    }

    pub(crate) fn equivocation(&self) {
        add(&self.equivocations, 1);
    }

    pub(crate) fn refused_not_in_charter(&self) {
        add(&self.refused_not_in_charter, 1);
    }

    pub(crate) fn refused_blocked(&self) {
        add(&self.refused_blocked, 1);
    }

    pub(crate) fn sealed_opened(&self) {
        add(&self.sealed_opened, 1);
    }

    pub(crate) fn sealed_open_failed(&self) {
        add(&self.sealed_open_failed, 1);
    }

    pub(crate) fn sealed_not_addressed(&self) {
        add(&self.sealed_not_addressed, 1);
    }

    pub(crate) fn sealed_retried(&self, opened: bool) {
        if opened {
            add(&self.sealed_retry_opened, 1);
        } else {
            add(&self.sealed_retry_failed, 1);
        }
    }

    pub(crate) fn throttled(&self, bytes: usize) {
        add(&self.throttled_messages, 1);
        add(&self.throttled_bytes, bytes as u64);
    }

    pub(crate) fn throttled_author(&self, bytes: usize) {
        add(&self.throttled_author_messages, 1);
        add(&self.throttled_author_bytes, bytes as u64);
    }

    pub(crate) fn refused_over_limit(&self) {
        add(&self.refused_over_limit, 1);
    }

    pub(crate) fn refused_ip_over_limit(&self) {
        add(&self.refused_ip_over_limit, 1);
    }

    pub(crate) fn set_pending_inbound(&self, pending: usize) {
        self.pending_inbound
            .store(pending as u64, Ordering::Relaxed);
    }

    pub(crate) fn sync_oversized_request(&self) {
        add(&self.sync_oversized_requests, 1);
    }

    pub(crate) fn sync_oversized_response(&self) {
        add(&self.sync_oversized_responses, 1);
    }

    pub(crate) fn sync_withheld(&self) {
        add(&self.sync_withheld, 1);
    }

    pub(crate) fn reconcile_sent(&self) {
        add(&self.reconcile_requests, 1);
    }

    pub(crate) fn sync_failed(&self) {
        add(&self.sync_failures, 1);
    }

    pub(crate) fn sync_timed_out(&self) {
        add(&self.sync_timeouts, 1);
    }

    pub(crate) fn sync_answer_over_limit(&self) {
        add(&self.sync_answers_over_limit, 1);
    }

    pub(crate) fn sync_slow_reader(&self) {
        add(&self.sync_slow_readers, 1);
    }

    /// Sets the gauges of sync answers held for peers: how many, and their bytes read.
    pub(crate) fn set_answers_held(&self, answers: usize, bytes: usize) {
        self.sync_answers_held
            .store(answers as u64, Ordering::Relaxed);
        self.sync_answer_bytes_held
            .store(bytes as u64, Ordering::Relaxed);
    }

    pub(crate) fn pruned(&self) {
        add(&self.peers_pruned, 1);
    }

    pub(crate) fn regossiped(&self) {
        add(&self.regossiped, 1);
    }

    /// Counts a ping this node sent, if it was answered.
    pub(crate) fn pinged(&self, event: &libp2p::ping::Event) {
        if event.result.is_ok() {
            add(&self.pings, 1);
        }
    }

    /// Counts an identify message received, with its estimated size.
    pub(crate) fn identified(&self, info: &libp2p::identify::Info) {
        add(&self.identify_received, 1);
        add(&self.identify_received_bytes, identify_bytes(info) as u64);
    }

    /// Counts an identify message this node sent.
    pub(crate) fn identify_sent(&self) {
        add(&self.identify_sent, 1);
    }

    /// The counters now.
    pub(crate) fn snapshot(&self) -> Snapshot {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        Snapshot {
            accepted: load(&self.accepted),
            duplicates: load(&self.duplicates),
            rejected: Rejection::ALL
                .iter()
                .map(|reason| (*reason, load(&self.rejected[reason.index()])))
                .collect(),
            fetched_entries: load(&self.fetched_entries),
            fetched_bytes: load(&self.fetched_bytes),
            served_entries: load(&self.served_entries),
            queue_full: load(&self.queue_full),
            peers_banned: load(&self.peers_banned),
            equivocations: load(&self.equivocations),
            refused_not_in_charter: load(&self.refused_not_in_charter),
            refused_blocked: load(&self.refused_blocked),
            refused_over_limit: load(&self.refused_over_limit),
            refused_ip_over_limit: load(&self.refused_ip_over_limit),
            pending_inbound: load(&self.pending_inbound),
            sync_oversized_requests: load(&self.sync_oversized_requests),
            sync_oversized_responses: load(&self.sync_oversized_responses),
            sync_withheld: load(&self.sync_withheld),
            reconcile_requests: load(&self.reconcile_requests),
            sync_failures: load(&self.sync_failures),
            sync_timeouts: load(&self.sync_timeouts),
            sync_answers_over_limit: load(&self.sync_answers_over_limit),
            sync_slow_readers: load(&self.sync_slow_readers),
            sync_answers_held: load(&self.sync_answers_held),
            sync_answer_bytes_held: load(&self.sync_answer_bytes_held),
            peers_pruned: load(&self.peers_pruned),
            regossiped: load(&self.regossiped),
            sealed_opened: load(&self.sealed_opened),
            sealed_open_failed: load(&self.sealed_open_failed),
            sealed_not_addressed: load(&self.sealed_not_addressed),
            sealed_retry_opened: load(&self.sealed_retry_opened),
            sealed_retry_failed: load(&self.sealed_retry_failed),
            throttled_messages: load(&self.throttled_messages),
            throttled_bytes: load(&self.throttled_bytes),
            throttled_author_messages: load(&self.throttled_author_messages),
            throttled_author_bytes: load(&self.throttled_author_bytes),
            ingest_buckets: self.ingest_buckets.iter().map(load).collect(),
            ingest_micros_sum: load(&self.ingest_micros_sum),
            advertised: self
                .advertised
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone(),
            // Filled in by the client, which holds the clock watch.
            clock: super::ClockStatus::default(),
            transport_bytes_received: self.transport.totals().0,
            transport_bytes_sent: self.transport.totals().1,
            sync_bytes_received: self.sync.totals().0,
            sync_bytes_sent: self.sync.totals().1,
            pings: load(&self.pings),
            identify_received: load(&self.identify_received),
            identify_received_bytes: load(&self.identify_received_bytes),
            identify_sent: load(&self.identify_sent),
        }
    }
}

/// The size of `info` as identify writes it: a protobuf message (each field a one-byte
/// tag, a varint length and the bytes) behind a varint length. An estimate only in that
/// it is recomputed from the decoded fields rather than counted on the stream.
fn identify_bytes(info: &libp2p::identify::Info) -> usize {
    fn varint(value: usize) -> usize {
        let bits = usize::BITS - value.leading_zeros();
        (bits.max(1) as usize).div_ceil(7)
    }
    let field = |length: usize| 1 + varint(length) + length;
    let message = field(info.public_key.encode_protobuf().len())
        + field(info.protocol_version.len())
        + field(info.agent_version.len())
        + info
            .listen_addrs
            .iter()
            .map(|address| field(address.as_ref().len()))
            .sum::<usize>()
        + info
            .protocols
            .iter()
            .map(|protocol| field(protocol.as_ref().len()))
            .sum::<usize>()
        + field(info.observed_addr.as_ref().len())
        + info.signed_peer_record.as_ref().map_or(0, |record| {
            field(record.clone().into_protobuf_encoding().len())
        });
    varint(message) + message
}
