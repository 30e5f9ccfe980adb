//! What this node answers to a sync request: read from the store (off the loop, by the
//! reads `answers.rs` hands out), or withheld from a member whose organisation may not
//! read.

use threatmesh_protocol::SignedCharter;
use threatmesh_protocol::reconcile::HeadSet;
use threatmesh_protocol::wire::{self, Request, Response};
use tracing::warn;

use super::metrics::Metrics;
use crate::store::Store;

/// Why a sync request from a member that may not read is refused.
const NOT_A_READER: &str = "this member may not read (roles.read is false in the charter)";

/// The answer to a sync request from a peer whose organisation may not read, when the
/// request would reveal entries or feed heads: `Heads` and `Range` are refused, and a
/// `Reconcile` is answered as if the two were in step, with the charter in force only
/// (so a publish-only node still learns of newer charters and asks for them). `None`
/// for what anyone may have: charters.
pub(crate) fn withhold_from_non_reader(
    charter: &SignedCharter,
    request: &Request,
) -> Option<Response> {
    match request {
        Request::Reconcile { federation, .. } if *federation == charter.federation() => {
            Some(Response::Reconcile {
                charter_version: charter.charter().version,
                charter_id: charter.id(),
                parts: Vec::new(),
            })
        }
        Request::Heads { .. } | Request::Range { .. } => {
            Some(Response::Refused(NOT_A_READER.into()))
        }
        Request::Reconcile { .. } | Request::Charters { .. } => None,
    }
}

/// Reads the answer to a sync request from the store. Runs off the loop.
pub(crate) fn read_answer(
    store: &Store,
    charter: &SignedCharter,
    request: Request,
    metrics: &Metrics,
) -> Response {
    let federation = charter.federation();
    let answer = match request {
        Request::Reconcile {
            federation: asked,
            ranges,
        } if asked == federation => store.heads().map(|heads| Response::Reconcile {
            charter_version: charter.charter().version,
            charter_id: charter.id(),
            parts: HeadSet::new(heads).answer(&ranges),
        }),
        Request::Heads { federation: asked } if asked == federation => {
            store.heads().map(Response::Heads)
        }
        Request::Range {
            federation: asked,
            author,
            from_seq,
            to_seq,
            limit_bytes,
        } if asked == federation => store
            .range(&author, from_seq, to_seq, wire::range_limit(limit_bytes))
            .map(|range| {
                metrics.served(range.payloads.len());
                Response::Range {
                    entries: range.payloads,
                    more: range.more,
                }
            }),
        Request::Charters {
            federation: asked,
            after_version,
        } if asked == federation => store.charters_after(after_version).map(|charters| {
            // As many as fit one response; the asker asks again for the rest.
            let mut bytes = 0;
            Response::Charters(
                charters
                    .iter()
                    .map(|charter| charter.raw().clone())
                    .take_while(|raw| {
                        bytes += raw.charter.len() + raw.signatures.len() * 96;
                        bytes <= wire::MAX_RANGE_BYTES
                    })
                    .collect(),
            )
        }),
        _ => Ok(Response::Refused("not this federation".into())),
    };
    answer.unwrap_or_else(|error| {
        warn!(%error, "store failed while answering sync");
        Response::Refused("storage error".into())
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests unwrap what they built themselves

    use threatmesh_protocol::Hash;
    use threatmesh_protocol::testing::key;

    use super::super::testing;
    use super::*;

    #[test]
    fn a_member_that_may_not_read_gets_no_heads_nor_entries_but_charters() {
        let charter = testing::charter(&key(2));
        let federation = charter.federation();
        let reconcile = Request::Reconcile {
            federation,
            ranges: Vec::new(),
        };
        match withhold_from_non_reader(&charter, &reconcile) {
            Some(Response::Reconcile {
                charter_version,
                charter_id,
                parts,
            }) => {
                assert_eq!(
                    (charter_version, charter_id),
                    (charter.charter().version, charter.id())
                );
                assert!(parts.is_empty(), "answered as in step");
            }
            other => panic!("{other:?}"),
        }
        let heads = Request::Heads { federation };
        assert!(matches!(
            withhold_from_non_reader(&charter, &heads),
            Some(Response::Refused(why)) if why == NOT_A_READER
        ));
        let charters = Request::Charters {
            federation,
            after_version: 0,
        };
        assert!(withhold_from_non_reader(&charter, &charters).is_none());
        // Another federation's reconcile is left to the store's answer (refused there).
        let elsewhere = Request::Reconcile {
            federation: Hash::of(b"elsewhere"),
            ranges: Vec::new(),
        };
        assert!(withhold_from_non_reader(&charter, &elsewhere).is_none());
    }
}
