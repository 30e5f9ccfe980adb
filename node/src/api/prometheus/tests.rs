//! Pins the exposition: every metric's name, HELP, TYPE, label set and value, for one
//! state in which every counter holds a different number, so that a metric read from the
//! wrong field or written in another order shows up as a difference.

use threatmesh_protocol::PublicKey;

use super::render;
use crate::api::guard::ApiCounters;
use crate::network::{ClockStatus, INGEST_BUCKETS_MICROS, Rejection, Snapshot};
use crate::store::{FeedState, Space, Stats};

/// A snapshot whose counters are 1, 2, 3, … in field order.
fn snapshot() -> Snapshot {
    let author = PublicKey([7; 32]);
    let other = PublicKey([9; 32]);
    Snapshot {
        accepted: 1,
        duplicates: 2,
        rejected: Rejection::ALL
            .iter()
            .zip(3..)
            .map(|(reason, count)| (*reason, count))
            .collect(),
        fetched_entries: 10,
        fetched_bytes: 11,
        served_entries: 12,
        queue_full: 13,
        peers_banned: 14,
        equivocations: 15,
        refused_not_in_charter: 16,
        refused_blocked: 17,
        refused_over_limit: 18,
        refused_ip_over_limit: 19,
        pending_inbound: 20,
        sync_oversized_requests: 21,
        sync_oversized_responses: 22,
        sync_withheld: 23,
        reconcile_requests: 24,
        sync_failures: 25,
        sync_timeouts: 26,
        sync_answers_over_limit: 27,
        sync_slow_readers: 28,
        sync_answers_held: 29,
        sync_answer_bytes_held: 30,
        peers_pruned: 31,
        regossiped: 32,
        sealed_opened: 33,
        sealed_open_failed: 34,
        sealed_not_addressed: 35,
        sealed_retry_opened: 36,
        sealed_retry_failed: 37,
        throttled_messages: 38,
        throttled_bytes: 39,
        throttled_author_messages: 40,
        throttled_author_bytes: 41,
        ingest_buckets: (0..=INGEST_BUCKETS_MICROS.len() as u64).collect(),
        ingest_micros_sum: 1_234_567,
        advertised: [(author, 90), (other, 5)].into_iter().collect(),
        clock: ClockStatus {
            suspected_offset_secs: Some(-42),
            witnesses: vec![author, other],
            organisations_seen: 3,
        },
        transport_bytes_received: 42,
        transport_bytes_sent: 43,
        sync_bytes_received: 44,
        sync_bytes_sent: 45,
        pings: 46,
        identify_received: 47,
        identify_received_bytes: 48,
        identify_sent: 49,
    }
}

fn api() -> ApiCounters {
    ApiCounters {
        auth_missing: 50,
        auth_wrong: 51,
        auth_throttled: 52,
        overloaded: 53,
        foreign_origin: 54,
        media_type: 55,
        read_only_refused: 56,
    }
}

fn feeds() -> Vec<FeedState> {
    vec![
        FeedState {
            author: PublicKey([7; 32]),
            contiguous: 60,
            highest: 70,
            equivocated: true,
        },
        FeedState {
            author: PublicKey([8; 32]),
            contiguous: 3,
            highest: 3,
            equivocated: false,
        },
    ]
}

#[test]
fn exposition_of_a_readable_store_is_pinned() {
    let stats = Stats {
        entries: 61,
        sealed: 62,
        unread: 63,
        records: 64,
        bytes_on_disk: 65,
    };
    let disk = Space {
        free_bytes: Some(66),
        reserve_bytes: 67,
        writes_refused_full: 68,
        write_failed: true,
    };
    let feeds = feeds();
    let text = render(&snapshot(), &api(), Some(&stats), &disk, Some(&feeds), 4);
    assert_eq!(text, include_str!("readable.txt"));
}

#[test]
fn exposition_of_an_unreadable_store_is_pinned() {
    // No store reading and no free space: those metrics keep their HELP and TYPE with no
    // samples, except the free space, which is left out.
    let disk = Space {
        free_bytes: None,
        reserve_bytes: 67,
        writes_refused_full: 0,
        write_failed: false,
    };
    let text = render(
        &Snapshot {
            clock: ClockStatus::default(),
            ..snapshot()
        },
        &api(),
        None,
        &disk,
        None,
        0,
    );
    assert_eq!(text, include_str!("unreadable.txt"));
}
