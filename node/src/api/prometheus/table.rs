//! The table of every metric the node exposes, in the order they are written: name, type,
//! help text, labels and how each sample is read.

use super::{Metric, Read, Sources, Type};
use crate::network::Rejection;
use crate::store::FeedState;

/// Every metric, in the order they are written.
pub(super) const METRICS: &[Metric] = &[
    Metric {
        name: "peers",
        kind: Type::Gauge,
        help: "Peers connected now.",
        read: Read::Value(|s| s.peers as u64),
    },
    Metric {
        name: "entries_accepted_total",
        kind: Type::Counter,
        help: "Entries and charters from peers accepted and stored.",
        read: Read::Value(|s| s.network.accepted),
    },
    Metric {
        name: "entries_duplicate_total",
        kind: Type::Counter,
        help: "Entries received again.",
        read: Read::Value(|s| s.network.duplicates),
    },
    Metric {
        name: "entries_rejected_total",
        kind: Type::Counter,
        help: "Entries and charters from peers refused, by reason.",
        read: Read::Each {
            label: "reason",
            samples: |s| {
                Rejection::ALL
                    .iter()
                    .map(|reason| (reason.as_str().to_owned(), s.network.rejected(*reason)))
                    .collect()
            },
        },
    },
    Metric {
        name: "sync_fetched_entries_total",
        kind: Type::Counter,
        help: "Entries received in sync responses.",
        read: Read::Value(|s| s.network.fetched_entries),
    },
    Metric {
        name: "sync_fetched_bytes_total",
        kind: Type::Counter,
        help: "Bytes of entries received in sync responses.",
        read: Read::Value(|s| s.network.fetched_bytes),
    },
    Metric {
        name: "sync_served_entries_total",
        kind: Type::Counter,
        help: "Entries sent in sync responses.",
        read: Read::Value(|s| s.network.served_entries),
    },
    Metric {
        name: "transport_bytes_total",
        kind: Type::Counter,
        help: "Bytes on peer connections above TCP, everything included (protocol negotiation, \
               Noise, yamux and every protocol's bytes).",
        read: Read::By {
            label: "direction",
            values: &[
                ("in", |s| s.network.transport_bytes_received),
                ("out", |s| s.network.transport_bytes_sent),
            ],
        },
    },
    Metric {
        name: "sync_bytes_total",
        kind: Type::Counter,
        help: "Bytes of sync protocol frames (length and message; the framing around them is \
               in transport_bytes_total only).",
        read: Read::By {
            label: "direction",
            values: &[
                ("in", |s| s.network.sync_bytes_received),
                ("out", |s| s.network.sync_bytes_sent),
            ],
        },
    },
    Metric {
        name: "pings_total",
        kind: Type::Counter,
        help: "Pings this node sent that were answered (32 bytes each way; peers ping this \
               node about as often, unseen here).",
        read: Read::Value(|s| s.network.pings),
    },
    Metric {
        name: "identify_total",
        kind: Type::Counter,
        help: "Identify messages received from peers (in) and sent to them (out).",
        read: Read::By {
            label: "direction",
            values: &[
                ("in", |s| s.network.identify_received),
                ("out", |s| s.network.identify_sent),
            ],
        },
    },
    Metric {
        name: "identify_received_bytes_estimated_total",
        kind: Type::Counter,
        help: "Size of the identify messages received, estimated from their fields (framing \
               not included).",
        read: Read::Value(|s| s.network.identify_received_bytes),
    },
    Metric {
        name: "queue_full_total",
        kind: Type::Counter,
        help: "Work dropped or refused because a bounded queue was full.",
        read: Read::Value(|s| s.network.queue_full),
    },
    Metric {
        name: "peers_banned_total",
        kind: Type::Counter,
        help: "Peers banned for misbehaviour.",
        read: Read::Value(|s| s.network.peers_banned),
    },
    Metric {
        name: "connections_refused_total",
        kind: Type::Counter,
        help: "Connections refused (incoming and outgoing), by reason.",
        read: Read::By {
            label: "reason",
            values: &[
                ("not-in-charter", |s| s.network.refused_not_in_charter),
                ("blocked", |s| s.network.refused_blocked),
                ("over-limit", |s| s.network.refused_over_limit),
                ("ip-over-limit", |s| s.network.refused_ip_over_limit),
            ],
        },
    },
    Metric {
        name: "connections_pending_inbound",
        kind: Type::Gauge,
        help: "Incoming connections in their handshake now.",
        read: Read::Value(|s| s.network.pending_inbound),
    },
    Metric {
        name: "sync_oversized_total",
        kind: Type::Counter,
        help: "Sync frames from peers refused by their announced length, before their body \
               was read, by what they were.",
        read: Read::By {
            label: "frame",
            values: &[
                ("request", |s| s.network.sync_oversized_requests),
                ("response", |s| s.network.sync_oversized_responses),
            ],
        },
    },
    Metric {
        name: "sync_withheld_total",
        kind: Type::Counter,
        help: "Sync requests from members that may not read (roles.read false), answered \
               without entries or feed heads: heads and range requests refused, reconcile \
               requests answered with the charter in force only.",
        read: Read::Value(|s| s.network.sync_withheld),
    },
    Metric {
        name: "reconcile_requests_total",
        kind: Type::Counter,
        help: "Reconcile requests sent to peers (anti-entropy rounds and their narrowing \
               steps).",
        read: Read::Value(|s| s.network.reconcile_requests),
    },
    Metric {
        name: "sync_failures_total",
        kind: Type::Counter,
        help: "Sync misbehaviour held against peers: answers that do not fit the question, \
               reconciliations that do not narrow, stalls, feeds advertised and not served.",
        read: Read::Value(|s| s.network.sync_failures),
    },
    Metric {
        name: "sync_timeouts_total",
        kind: Type::Counter,
        help: "Sync requests to peers that timed out.",
        read: Read::Value(|s| s.network.sync_timeouts),
    },
    Metric {
        name: "sync_answers_over_limit_total",
        kind: Type::Counter,
        help: "Sync requests from peers refused because the peer held the most answers it \
               may already; each is held against the peer.",
        read: Read::Value(|s| s.network.sync_answers_over_limit),
    },
    Metric {
        name: "sync_slow_readers_total",
        kind: Type::Counter,
        help: "Sync answers dropped because the peer did not read them in time; each is held \
               against the peer.",
        read: Read::Value(|s| s.network.sync_slow_readers),
    },
    Metric {
        name: "sync_answers_held",
        kind: Type::Gauge,
        help: "Sync requests from peers being answered now (waiting, being read, going out).",
        read: Read::Value(|s| s.network.sync_answers_held),
    },
    Metric {
        name: "sync_answer_bytes_held",
        kind: Type::Gauge,
        help: "Bytes of sync answers read and not yet taken by their peers.",
        read: Read::Value(|s| s.network.sync_answer_bytes_held),
    },
    Metric {
        name: "regossiped_total",
        kind: Type::Counter,
        help: "Recent entries fetched by sync and gossiped again (likely missing elsewhere \
               too).",
        read: Read::Value(|s| s.network.regossiped),
    },
    Metric {
        name: "peers_pruned_total",
        kind: Type::Counter,
        help: "Links closed because the node held more than its peer target.",
        read: Read::Value(|s| s.network.peers_pruned),
    },
    Metric {
        name: "equivocations_total",
        kind: Type::Counter,
        help: "Two entries seen for one place in a feed.",
        read: Read::Value(|s| s.network.equivocations),
    },
    Metric {
        name: "sealed_received_total",
        kind: Type::Counter,
        help: "Sealed entries from peers: opened (addressed to this organisation), failed \
               (addressed to it but unreadable: no key, wrong key, bad body), not-addressed \
               (relayed unread).",
        read: Read::By {
            label: "outcome",
            values: &[
                ("opened", |s| s.network.sealed_opened),
                ("failed", |s| s.network.sealed_open_failed),
                ("not-addressed", |s| s.network.sealed_not_addressed),
            ],
        },
    },
    Metric {
        name: "sealed_retried_total",
        kind: Type::Counter,
        help: "Unread sealed entries for this organisation tried again (when a key is added, \
               and at start): opened, or failed again (each pass over an entry counts once).",
        read: Read::By {
            label: "outcome",
            values: &[
                ("opened", |s| s.network.sealed_retry_opened),
                ("failed", |s| s.network.sealed_retry_failed),
            ],
        },
    },
    Metric {
        name: "feeds_equivocated",
        kind: Type::Gauge,
        help: "Feeds whose author was caught signing two entries for one place (evidence \
               kept).",
        read: Read::Known(|s| {
            s.feeds
                .map(|feeds| feeds.iter().filter(|feed| feed.equivocated).count() as u64)
        }),
    },
    Metric {
        name: "gossip_throttled_messages_total",
        kind: Type::Counter,
        help: "Gossip messages ignored because a rate limit was reached: by=\"peer\" (the \
               forwarding peer's) or by=\"author\" (the feed author's, not charged to the \
               forwarder).",
        read: Read::By {
            label: "by",
            values: &[
                ("peer", |s| s.network.throttled_messages),
                ("author", |s| s.network.throttled_author_messages),
            ],
        },
    },
    Metric {
        name: "gossip_throttled_bytes_total",
        kind: Type::Counter,
        help: "Bytes of gossip ignored because a rate limit was reached, by peer or author.",
        read: Read::By {
            label: "by",
            values: &[
                ("peer", |s| s.network.throttled_bytes),
                ("author", |s| s.network.throttled_author_bytes),
            ],
        },
    },
    Metric {
        name: "clock_skew_witnesses",
        kind: Type::Gauge,
        help: "Organisations whose entries suggest this node's own clock is wrong (0: no \
               suspicion).",
        read: Read::Value(|s| s.network.clock.witnesses.len() as u64),
    },
    Metric {
        name: "api_auth_failures_total",
        kind: Type::Counter,
        help: "API requests refused 401, by why: no credentials, or a wrong token.",
        read: Read::By {
            label: "reason",
            values: &[
                ("missing", |s| s.api.auth_missing),
                ("wrong", |s| s.api.auth_wrong),
            ],
        },
    },
    Metric {
        name: "api_auth_throttled_total",
        kind: Type::Counter,
        help: "API requests refused 429 because their client failed authentication too often.",
        read: Read::Value(|s| s.api.auth_throttled),
    },
    Metric {
        name: "api_browser_refused_total",
        kind: Type::Counter,
        help: "API requests refused as a browser led by another site sends them: 403 for an \
               Origin not the API's own, 415 for a write of a media type its route does not \
               read.",
        read: Read::By {
            label: "reason",
            values: &[
                ("foreign-origin", |s| s.api.foreign_origin),
                ("media-type", |s| s.api.media_type),
            ],
        },
    },
    Metric {
        name: "api_read_only_refused_total",
        kind: Type::Counter,
        help: "API requests refused 403 because their token may read only and their route \
               writes.",
        read: Read::Value(|s| s.api.read_only_refused),
    },
    Metric {
        name: "api_overloaded_total",
        kind: Type::Counter,
        help: "API requests refused 503 because the most allowed were being served.",
        read: Read::Value(|s| s.api.overloaded),
    },
    Metric {
        name: "store_entries",
        kind: Type::Gauge,
        help: "Entries held.",
        read: Read::Known(|s| s.store.map(|store| store.entries)),
    },
    Metric {
        name: "store_sealed_entries",
        kind: Type::Gauge,
        help: "Sealed entries held, readable here or not.",
        read: Read::Known(|s| s.store.map(|store| store.sealed)),
    },
    Metric {
        name: "store_sealed_unread_entries",
        kind: Type::Gauge,
        help: "Sealed entries for this organisation held unread (no key opened them yet); \
               tried again when a key is added and at start.",
        read: Read::Known(|s| s.store.map(|store| store.unread)),
    },
    Metric {
        name: "store_records",
        kind: Type::Gauge,
        help: "Index records held (indicators, revocations, sightings).",
        read: Read::Known(|s| s.store.map(|store| store.records)),
    },
    Metric {
        name: "store_bytes",
        kind: Type::Gauge,
        help: "Bytes the store uses on disk.",
        read: Read::Known(|s| s.store.map(|store| store.bytes_on_disk)),
    },
    Metric {
        name: "store_disk_free_bytes",
        kind: Type::Gauge,
        help: "Free space on the store's filesystem.",
        read: Read::IfKnown(|s| s.disk.free_bytes),
    },
    Metric {
        name: "store_disk_reserve_bytes",
        kind: Type::Gauge,
        help: "Free space the store keeps: below it writes are refused.",
        read: Read::Value(|s| s.disk.reserve_bytes),
    },
    Metric {
        name: "store_writes_refused_total",
        kind: Type::Counter,
        help: "Writes the store refused, by why (disk-full: free space under the reserve).",
        read: Read::By {
            label: "reason",
            values: &[("disk-full", |s| s.disk.writes_refused_full)],
        },
    },
    Metric {
        name: "store_write_failed",
        kind: Type::Gauge,
        help: "1 when a write failed and the store refuses writes until it has reopened from \
               disk.",
        read: Read::Value(|s| u64::from(s.disk.write_failed)),
    },
    Metric {
        name: "feed_lag_entries",
        kind: Type::Gauge,
        help: "Per feed, entries this node lacks up to the highest a peer has shown it.",
        read: Read::Each {
            label: "feed",
            samples: |s| {
                per_feed(s, |feed| {
                    let advertised = s.network.advertised.get(&feed.author).copied();
                    advertised.unwrap_or(0).saturating_sub(feed.contiguous)
                })
            },
        },
    },
    Metric {
        name: "feed_missing_entries",
        kind: Type::Gauge,
        help: "Per feed, entries missing below the highest one held (gaps still to fetch).",
        read: Read::Each {
            label: "feed",
            samples: |s| per_feed(s, |feed| feed.highest.saturating_sub(feed.contiguous)),
        },
    },
    Metric {
        name: "ingest_seconds",
        kind: Type::Histogram,
        help: "Time from receiving an entry to its verdict (checks and storage; the fsync \
               comes after the verdict).",
        read: Read::IngestHistogram,
    },
    Metric {
        name: "clock_suspected_offset_seconds",
        kind: Type::Gauge,
        help: "How far this node's clock seems off from the organisations' clocks (negative: \
               behind; 0: no suspicion). Fix NTP if not 0.",
        read: Read::Signed(|s| s.network.clock.suspected_offset_secs.unwrap_or(0)),
    },
];

/// One sample per feed the store holds, labelled by its author; none when the store could
/// not be read.
fn per_feed(sources: &Sources<'_>, value: impl Fn(&FeedState) -> u64) -> Vec<(String, u64)> {
    sources
        .feeds
        .unwrap_or_default()
        .iter()
        .map(|feed| (feed.author.to_string(), value(feed)))
        .collect()
}
