//! The Prometheus text exposition of the node's counters and gauges.

use std::fmt::Write as _;

use super::guard::ApiCounters;
use crate::network::{INGEST_BUCKETS_MICROS, Rejection, Snapshot};
use crate::store::{FeedState, Space, Stats};

/// Renders the metrics as Prometheus text format 0.0.4.
pub(super) fn render(
    network: &Snapshot,
    api: &ApiCounters,
    store: Option<&Stats>,
    disk: &Space,
    feeds: Option<&[FeedState]>,
    peers: usize,
) -> String {
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, samples: &[(String, u64)]| {
        let _ = writeln!(out, "# HELP threatmesh_{name} {help}");
        let _ = writeln!(out, "# TYPE threatmesh_{name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(out, "threatmesh_{name}{labels} {value}");
        }
    };
    let one = |value: u64| vec![(String::new(), value)];
    metric("peers", "gauge", "Peers connected now.", &one(peers as u64));
    metric(
        "entries_accepted_total",
        "counter",
        "Entries and charters from peers accepted and stored.",
        &one(network.accepted),
    );
    metric(
        "entries_duplicate_total",
        "counter",
        "Entries received again.",
        &one(network.duplicates),
    );
    let rejected: Vec<(String, u64)> = Rejection::ALL
        .iter()
        .map(|reason| {
            (
                format!("{{reason=\"{}\"}}", reason.as_str()),
                network.rejected(*reason),
            )
        })
        .collect();
    metric(
        "entries_rejected_total",
        "counter",
        "Entries and charters from peers refused, by reason.",
        &rejected,
    );
    metric(
        "sync_fetched_entries_total",
        "counter",
        "Entries received in sync responses.",
        &one(network.fetched_entries),
    );
    metric(
        "sync_fetched_bytes_total",
        "counter",
        "Bytes of entries received in sync responses.",
        &one(network.fetched_bytes),
    );
    metric(
        "sync_served_entries_total",
        "counter",
        "Entries sent in sync responses.",
        &one(network.served_entries),
    );
    let each_way = |received: u64, sent: u64| {
        vec![
            ("{direction=\"in\"}".to_owned(), received),
            ("{direction=\"out\"}".to_owned(), sent),
        ]
    };
    metric(
        "transport_bytes_total",
        "counter",
        "Bytes on peer connections above TCP, everything included (protocol negotiation, \
         Noise, yamux and every protocol's bytes).",
        &each_way(
            network.transport_bytes_received,
            network.transport_bytes_sent,
        ),
    );
    metric(
        "sync_bytes_total",
        "counter",
        "Bytes of sync protocol frames (length and message; the framing around them is in \
         transport_bytes_total only).",
        &each_way(network.sync_bytes_received, network.sync_bytes_sent),
    );
    metric(
        "pings_total",
        "counter",
        "Pings this node sent that were answered (32 bytes each way; peers ping this node \
         about as often, unseen here).",
        &one(network.pings),
    );
    metric(
        "identify_total",
        "counter",
        "Identify messages received from peers (in) and sent to them (out).",
        &each_way(network.identify_received, network.identify_sent),
    );
    metric(
        "identify_received_bytes_estimated_total",
        "counter",
        "Size of the identify messages received, estimated from their fields (framing not \
         included).",
        &one(network.identify_received_bytes),
    );
    metric(
        "queue_full_total",
        "counter",
        "Work dropped or refused because a bounded queue was full.",
        &one(network.queue_full),
    );
    metric(
        "peers_banned_total",
        "counter",
        "Peers banned for misbehaviour.",
        &one(network.peers_banned),
    );
    metric(
        "connections_refused_total",
        "counter",
        "Connections refused (incoming and outgoing), by reason.",
        &[
            (
                "{reason=\"not-in-charter\"}".to_owned(),
                network.refused_not_in_charter,
            ),
            ("{reason=\"blocked\"}".to_owned(), network.refused_blocked),
            (
                "{reason=\"over-limit\"}".to_owned(),
                network.refused_over_limit,
            ),
            (
                "{reason=\"ip-over-limit\"}".to_owned(),
                network.refused_ip_over_limit,
            ),
        ],
    );
    metric(
        "connections_pending_inbound",
        "gauge",
        "Incoming connections in their handshake now.",
        &one(network.pending_inbound),
    );
    metric(
        "sync_oversized_total",
        "counter",
        "Sync frames from peers refused by their announced length, before their body was \
         read, by what they were.",
        &[
            (
                "{frame=\"request\"}".to_owned(),
                network.sync_oversized_requests,
            ),
            (
                "{frame=\"response\"}".to_owned(),
                network.sync_oversized_responses,
            ),
        ],
    );
    metric(
        "sync_withheld_total",
        "counter",
        "Sync requests from members that may not read (roles.read false), answered without \
         entries or feed heads: heads and range requests refused, reconcile requests \
         answered with the charter in force only.",
        &one(network.sync_withheld),
    );
    metric(
        "reconcile_requests_total",
        "counter",
        "Reconcile requests sent to peers (anti-entropy rounds and their narrowing steps).",
        &one(network.reconcile_requests),
    );
    metric(
        "sync_failures_total",
        "counter",
        "Sync misbehaviour held against peers: answers that do not fit the question, \
         reconciliations that do not narrow, stalls, feeds advertised and not served.",
        &one(network.sync_failures),
    );
    metric(
        "sync_timeouts_total",
        "counter",
        "Sync requests to peers that timed out.",
        &one(network.sync_timeouts),
    );
    metric(
        "sync_answers_over_limit_total",
        "counter",
        "Sync requests from peers refused because the peer held the most answers it may \
         already; each is held against the peer.",
        &one(network.sync_answers_over_limit),
    );
    metric(
        "sync_slow_readers_total",
        "counter",
        "Sync answers dropped because the peer did not read them in time; each is held \
         against the peer.",
        &one(network.sync_slow_readers),
    );
    metric(
        "sync_answers_held",
        "gauge",
        "Sync requests from peers being answered now (waiting, being read, going out).",
        &one(network.sync_answers_held),
    );
    metric(
        "sync_answer_bytes_held",
        "gauge",
        "Bytes of sync answers read and not yet taken by their peers.",
        &one(network.sync_answer_bytes_held),
    );
    metric(
        "regossiped_total",
        "counter",
        "Recent entries fetched by sync and gossiped again (likely missing elsewhere too).",
        &one(network.regossiped),
    );
    metric(
        "peers_pruned_total",
        "counter",
        "Links closed because the node held more than its peer target.",
        &one(network.peers_pruned),
    );
    metric(
        "equivocations_total",
        "counter",
        "Two entries seen for one place in a feed.",
        &one(network.equivocations),
    );
    let sealed = vec![
        ("{outcome=\"opened\"}".to_owned(), network.sealed_opened),
        (
            "{outcome=\"failed\"}".to_owned(),
            network.sealed_open_failed,
        ),
        (
            "{outcome=\"not-addressed\"}".to_owned(),
            network.sealed_not_addressed,
        ),
    ];
    metric(
        "sealed_received_total",
        "counter",
        "Sealed entries from peers: opened (addressed to this organisation), failed (addressed \
         to it but unreadable: no key, wrong key, bad body), not-addressed (relayed unread).",
        &sealed,
    );
    metric(
        "sealed_retried_total",
        "counter",
        "Unread sealed entries for this organisation tried again (when a key is added, and at \
         start): opened, or failed again (each pass over an entry counts once).",
        &[
            (
                "{outcome=\"opened\"}".to_owned(),
                network.sealed_retry_opened,
            ),
            (
                "{outcome=\"failed\"}".to_owned(),
                network.sealed_retry_failed,
            ),
        ],
    );
    metric(
        "feeds_equivocated",
        "gauge",
        "Feeds whose author was caught signing two entries for one place (evidence kept).",
        &feeds.map_or_else(Vec::new, |feeds| {
            one(feeds.iter().filter(|feed| feed.equivocated).count() as u64)
        }),
    );
    metric(
        "gossip_throttled_messages_total",
        "counter",
        "Gossip messages ignored because a rate limit was reached: by=\"peer\" (the \
         forwarding peer's) or by=\"author\" (the feed author's, not charged to the forwarder).",
        &[
            ("{by=\"peer\"}".to_owned(), network.throttled_messages),
            (
                "{by=\"author\"}".to_owned(),
                network.throttled_author_messages,
            ),
        ],
    );
    metric(
        "gossip_throttled_bytes_total",
        "counter",
        "Bytes of gossip ignored because a rate limit was reached, by peer or author.",
        &[
            ("{by=\"peer\"}".to_owned(), network.throttled_bytes),
            ("{by=\"author\"}".to_owned(), network.throttled_author_bytes),
        ],
    );
    metric(
        "clock_skew_witnesses",
        "gauge",
        "Organisations whose entries suggest this node's own clock is wrong (0: no suspicion).",
        &one(network.clock.witnesses.len() as u64),
    );
    metric(
        "api_auth_failures_total",
        "counter",
        "API requests refused 401, by why: no credentials, or a wrong token.",
        &[
            ("{reason=\"missing\"}".to_owned(), api.auth_missing),
            ("{reason=\"wrong\"}".to_owned(), api.auth_wrong),
        ],
    );
    metric(
        "api_auth_throttled_total",
        "counter",
        "API requests refused 429 because their client failed authentication too often.",
        &one(api.auth_throttled),
    );
    metric(
        "api_browser_refused_total",
        "counter",
        "API requests refused as a browser led by another site sends them: 403 for an Origin \
         not the API's own, 415 for a write of a media type its route does not read.",
        &[
            ("{reason=\"foreign-origin\"}".to_owned(), api.foreign_origin),
            ("{reason=\"media-type\"}".to_owned(), api.media_type),
        ],
    );
    metric(
        "api_read_only_refused_total",
        "counter",
        "API requests refused 403 because their token may read only and their route writes.",
        &one(api.read_only_refused),
    );
    metric(
        "api_overloaded_total",
        "counter",
        "API requests refused 503 because the most allowed were being served.",
        &one(api.overloaded),
    );
    metric(
        "store_entries",
        "gauge",
        "Entries held.",
        &store.map_or_else(Vec::new, |store| one(store.entries)),
    );
    metric(
        "store_sealed_entries",
        "gauge",
        "Sealed entries held, readable here or not.",
        &store.map_or_else(Vec::new, |store| one(store.sealed)),
    );
    metric(
        "store_sealed_unread_entries",
        "gauge",
        "Sealed entries for this organisation held unread (no key opened them yet); tried \
         again when a key is added and at start.",
        &store.map_or_else(Vec::new, |store| one(store.unread)),
    );
    metric(
        "store_records",
        "gauge",
        "Index records held (indicators, revocations, sightings).",
        &store.map_or_else(Vec::new, |store| one(store.records)),
    );
    metric(
        "store_bytes",
        "gauge",
        "Bytes the store uses on disk.",
        &store.map_or_else(Vec::new, |store| one(store.bytes_on_disk)),
    );
    if let Some(free) = disk.free_bytes {
        metric(
            "store_disk_free_bytes",
            "gauge",
            "Free space on the store's filesystem.",
            &one(free),
        );
    }
    metric(
        "store_disk_reserve_bytes",
        "gauge",
        "Free space the store keeps: below it writes are refused.",
        &one(disk.reserve_bytes),
    );
    metric(
        "store_writes_refused_total",
        "counter",
        "Writes the store refused, by why (disk-full: free space under the reserve).",
        &[(
            "{reason=\"disk-full\"}".to_owned(),
            disk.writes_refused_full,
        )],
    );
    metric(
        "store_write_failed",
        "gauge",
        "1 when a write failed and the store refuses writes until it has reopened from disk.",
        &one(u64::from(disk.write_failed)),
    );
    // A store that cannot be read leaves these metrics without samples.
    let feeds = feeds.unwrap_or_default();
    let lag: Vec<(String, u64)> = feeds
        .iter()
        .map(|feed| {
            (
                format!("{{feed=\"{}\"}}", feed.author),
                feed.highest.saturating_sub(feed.contiguous),
            )
        })
        .collect();
    let behind: Vec<(String, u64)> = feeds
        .iter()
        .map(|feed| {
            let advertised = network.advertised.get(&feed.author).copied().unwrap_or(0);
            (
                format!("{{feed=\"{}\"}}", feed.author),
                advertised.saturating_sub(feed.contiguous),
            )
        })
        .collect();
    metric(
        "feed_lag_entries",
        "gauge",
        "Per feed, entries this node lacks up to the highest a peer has shown it.",
        &behind,
    );
    metric(
        "feed_missing_entries",
        "gauge",
        "Per feed, entries missing below the highest one held (gaps still to fetch).",
        &lag,
    );
    // A Prometheus histogram: cumulative buckets in seconds, a sum and a count.
    let _ = writeln!(
        out,
        "# HELP threatmesh_ingest_seconds Time from receiving an entry to its verdict \
         (checks and storage; the fsync comes after the verdict)."
    );
    let _ = writeln!(out, "# TYPE threatmesh_ingest_seconds histogram");
    let mut cumulative = 0;
    for (index, count) in network.ingest_buckets.iter().enumerate() {
        cumulative += count;
        let bound = INGEST_BUCKETS_MICROS.get(index).map_or_else(
            || "+Inf".to_owned(),
            |micros| format!("{}", *micros as f64 / 1e6),
        );
        let _ = writeln!(
            out,
            "threatmesh_ingest_seconds_bucket{{le=\"{bound}\"}} {cumulative}"
        );
    }
    let sum = network.ingest_micros_sum as f64 / 1e6;
    let _ = writeln!(out, "threatmesh_ingest_seconds_sum {sum}");
    let _ = writeln!(out, "threatmesh_ingest_seconds_count {cumulative}");
    // Signed, so written by hand like the histogram.
    let _ = writeln!(
        out,
        "# HELP threatmesh_clock_suspected_offset_seconds How far this node's clock seems off \
         from the organisations' clocks (negative: behind; 0: no suspicion). Fix NTP if not 0."
    );
    let _ = writeln!(
        out,
        "# TYPE threatmesh_clock_suspected_offset_seconds gauge"
    );
    let _ = writeln!(
        out,
        "threatmesh_clock_suspected_offset_seconds {}",
        network.clock.suspected_offset_secs.unwrap_or(0)
    );
    out
}

#[cfg(test)]
mod tests;
