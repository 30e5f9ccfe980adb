//! The background indexer: keeps the store's TAXII object index up with the store between
//! requests, in short turns.

use super::collections::Collection;
use super::view::View;
use crate::api::ApiState;
use crate::store::StoreError;

/// Entries the background indexer indexes per turn: short turns, so a request that needs
/// the index, or a shutdown, waits at most a fraction of a second behind it.
const BACKGROUND_ENTRIES_PER_TURN: usize = 256;
/// How often the background indexer looks for entries accepted since its last turn.
const BACKGROUND_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// Keeps the object index up with the store, so that the first TAXII read after a start
/// on a large store, or after a big import, does not wait while every entry accepted
/// since the last read is indexed (90,000 objects took about 1.2 s; ten million would
/// take minutes). Requests still index whatever is left before they answer, so nothing
/// is listed out of order. Runs until the runtime stops.
pub(crate) async fn keep_indexed(state: ApiState) {
    let mut every = tokio::time::interval(BACKGROUND_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut reported = false;
    loop {
        every.tick().await;
        let started = std::time::Instant::now();
        let mut turns = 0_u64;
        // Turn after turn until it reaches the newest entry, yielding between turns.
        loop {
            let view = View::new(&state, Collection::Shared);
            // Blocking threads start outside any span: carry the node's along.
            let span = tracing::Span::current();
            let turn = tokio::task::spawn_blocking(move || {
                let _span = span.enter();
                let reached = view.index_some_entries(BACKGROUND_ENTRIES_PER_TURN)?;
                Ok::<_, StoreError>(reached >= view.store.last_added_key()?)
            })
            .await;
            match turn {
                Ok(Ok(true)) => {
                    reported = false;
                    break;
                }
                Ok(Ok(false)) => turns += 1,
                Ok(Err(error)) => {
                    if !reported {
                        tracing::warn!(%error, "indexing TAXII objects failed; trying again later");
                        reported = true;
                    }
                    break;
                }
                Err(error) => {
                    tracing::error!(%error, "the TAXII indexer stopped");
                    return;
                }
            }
            if turns.is_multiple_of(40) {
                tracing::info!(
                    entries = turns.saturating_mul(BACKGROUND_ENTRIES_PER_TURN as u64),
                    "indexing TAXII objects of entries accepted earlier"
                );
            }
        }
        if turns > 0 {
            tracing::info!(
                seconds = started.elapsed().as_secs_f64(),
                "TAXII object index caught up with the store"
            );
        }
    }
}
