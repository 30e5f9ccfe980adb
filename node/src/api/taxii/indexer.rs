//! The background indexer: keeps the store's TAXII object index up with the store between
//! requests, in short turns, when the node is not busy accepting entries.
//!
//! Indexing an entry costs about as much as storing it (a key per object, written under
//! the store's writer lock, which ingest waits for), so indexing while entries arrive
//! makes every node of a busy federation pay twice on the path of propagation: on a
//! 10-node testnet sharing two cores it took propagation p99 from 0.15-0.4 s to 1.5-1.9 s.
//! The indexer waits instead for a look (every [`BACKGROUND_EVERY`]) that finds no new
//! entry, or until it has waited [`DEFER_AT_MOST`], then indexes everything accepted so
//! far; a catch-up started in a pause stops after its turn when entries arrive again
//! ([`Pacing`]). Requests never wait for it: they index whatever is left before they
//! answer, so nothing is listed out of order.

use std::time::{Duration, Instant};

use super::collections::Collection;
use super::view::View;
use crate::api::ApiState;
use crate::store::StoreError;

/// Entries the background indexer indexes per turn: short turns, so a request that needs
/// the index, or a shutdown, waits at most a fraction of a second behind it.
const BACKGROUND_ENTRIES_PER_TURN: usize = 256;
/// How often the background indexer looks for entries accepted since its last look.
const BACKGROUND_EVERY: Duration = Duration::from_secs(2);
/// How long the indexer leaves entries unindexed while new ones keep arriving: a node
/// that ingests without a pause still has its index caught up this often, so a request
/// finds at most this much ingest to index before it answers.
const DEFER_AT_MOST: Duration = Duration::from_secs(30);

/// Keeps the object index up with the store, so that the first TAXII read after a start
/// on a large store, or after a big import, does not wait while every entry accepted
/// since the last read is indexed (90,000 objects took about 1.2 s; ten million would
/// take minutes). See the module documentation for when it runs. Runs until the runtime
/// stops.
pub(crate) async fn keep_indexed(state: ApiState) {
    let mut every = tokio::time::interval(BACKGROUND_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut reported = false;
    let mut pacing = Pacing::default();
    loop {
        every.tick().await;
        let store = state.store.clone();
        let newest = match tokio::task::spawn_blocking(move || store.last_added_key()).await {
            Ok(Ok(newest)) => newest,
            Ok(Err(error)) => {
                warn_once(&mut reported, &error);
                continue;
            }
            Err(error) => return stopped(&error),
        };
        let Some(start) = pacing.start(newest, Instant::now()) else {
            continue;
        };
        let started = Instant::now();
        let mut turns = 0_u64;
        // Turn after turn until it reaches the newest entry, yielding between turns.
        loop {
            let view = View::new(&state, Collection::Shared);
            // Blocking threads start outside any span: carry the node's along.
            let span = tracing::Span::current();
            let turn = tokio::task::spawn_blocking(move || {
                let _span = span.enter();
                let reached = view.index_some_entries(BACKGROUND_ENTRIES_PER_TURN)?;
                let newest = view.store.last_added_key()?;
                Ok::<_, StoreError>((reached >= newest, newest))
            })
            .await;
            match turn {
                Ok(Ok((true, newest))) => {
                    reported = false;
                    pacing.caught_up(newest);
                    if turns > 0 {
                        tracing::info!(
                            seconds = started.elapsed().as_secs_f64(),
                            "TAXII object index caught up with the store"
                        );
                    }
                    break;
                }
                Ok(Ok((false, newest))) => {
                    turns += 1;
                    if !pacing.go_on(start, newest) {
                        break;
                    }
                }
                Ok(Err(error)) => {
                    warn_once(&mut reported, &error);
                    break;
                }
                Err(error) => return stopped(&error),
            }
            if turns.is_multiple_of(40) {
                tracing::info!(
                    entries = turns.saturating_mul(BACKGROUND_ENTRIES_PER_TURN as u64),
                    "indexing TAXII objects of entries accepted earlier"
                );
            }
        }
    }
}

/// Says that indexing failed, once until a turn succeeds again: a store that keeps
/// failing (a full disk) would otherwise log every two seconds.
fn warn_once(reported: &mut bool, error: &StoreError) {
    if !*reported {
        tracing::warn!(%error, "indexing TAXII objects failed; trying again later");
        *reported = true;
    }
}

/// Says that the indexer stops: its blocking task panicked or the runtime is going away.
fn stopped(error: &tokio::task::JoinError) {
    tracing::error!(%error, "the TAXII indexer stopped");
}

/// Why a catch-up started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Start {
    /// No entry arrived since the last look.
    Pause,
    /// Entries keep arriving, and indexing has waited [`DEFER_AT_MOST`].
    Overdue,
}

/// When the indexer runs: see the module documentation. Entries are compared by the key
/// of the newest row of the store's added-time index.
#[derive(Debug, Default)]
struct Pacing {
    /// The newest entry at the last look.
    seen: Option<Vec<u8>>,
    /// Since when indexing has waited (from the first look after the last catch-up).
    waiting_since: Option<Instant>,
    /// The index reaches `seen`: until a look finds a newer entry, there is nothing to do.
    idle: bool,
}

impl Pacing {
    /// Whether to start a catch-up at a look at `now` that finds `newest` the newest
    /// entry, and why.
    fn start(&mut self, newest: Option<Vec<u8>>, now: Instant) -> Option<Start> {
        let busy = newest != self.seen;
        if !busy && self.idle {
            return None;
        }
        self.idle = false;
        self.seen = newest;
        let since = *self.waiting_since.get_or_insert(now);
        if now.saturating_duration_since(since) >= DEFER_AT_MOST {
            Some(Start::Overdue)
        } else if busy {
            None
        } else {
            Some(Start::Pause)
        }
    }

    /// Whether a catch-up started for `start` goes on after a turn that did not reach
    /// `newest`: an overdue one goes on to the end, one started in a pause stops when
    /// entries arrive again.
    fn go_on(&mut self, start: Start, newest: Option<Vec<u8>>) -> bool {
        if start == Start::Overdue || newest == self.seen {
            return true;
        }
        self.seen = newest;
        false
    }

    /// The index reached `newest`, the newest entry: the next wait starts at the next look
    /// that finds a newer one, and looks that find none cost no turn.
    fn caught_up(&mut self, newest: Option<Vec<u8>>) {
        self.seen = newest;
        self.waiting_since = None;
        self.idle = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The newest entry's key, when the store holds `n` entries.
    fn key(n: u8) -> Option<Vec<u8>> {
        (n > 0).then(|| vec![n])
    }

    #[test]
    fn indexing_waits_for_a_look_that_finds_no_new_entry() {
        let mut pacing = Pacing::default();
        let t0 = Instant::now();
        // A start on a store holding entries: they may be arriving.
        assert_eq!(pacing.start(key(1), t0), None);
        assert_eq!(pacing.start(key(2), t0 + BACKGROUND_EVERY), None);
        assert_eq!(
            pacing.start(key(2), t0 + 2 * BACKGROUND_EVERY),
            Some(Start::Pause)
        );
        // An empty store is a pause too.
        assert_eq!(Pacing::default().start(None, t0), Some(Start::Pause));
    }

    #[test]
    fn entries_that_never_pause_are_indexed_every_defer_at_most() {
        let mut pacing = Pacing::default();
        let t0 = Instant::now();
        let mut now = t0;
        let mut n = 1;
        while now < t0 + DEFER_AT_MOST {
            assert_eq!(pacing.start(key(n), now), None, "at {:?}", now - t0);
            n += 1;
            now += BACKGROUND_EVERY;
        }
        assert_eq!(pacing.start(key(n), now), Some(Start::Overdue));
        // An overdue catch-up goes on whatever arrives, to the end.
        assert!(pacing.go_on(Start::Overdue, key(n + 1)));
        pacing.caught_up(key(n + 1));
        // Then the wait starts again.
        assert_eq!(pacing.start(key(n + 2), now + BACKGROUND_EVERY), None);
    }

    #[test]
    fn looks_that_find_nothing_new_after_a_catch_up_cost_no_turn() {
        let mut pacing = Pacing::default();
        let t0 = Instant::now();
        // The first look always runs a turn (it also drops stale index trees).
        assert_eq!(pacing.start(None, t0), Some(Start::Pause));
        pacing.caught_up(None);
        assert_eq!(pacing.start(None, t0 + BACKGROUND_EVERY), None);
        assert_eq!(pacing.start(None, t0 + DEFER_AT_MOST * 2), None);
        // A new entry: wait for a pause, then index it.
        let later = t0 + DEFER_AT_MOST * 3;
        assert_eq!(pacing.start(key(1), later), None);
        assert_eq!(
            pacing.start(key(1), later + BACKGROUND_EVERY),
            Some(Start::Pause)
        );
        pacing.caught_up(key(1));
        assert_eq!(pacing.start(key(1), later + 2 * BACKGROUND_EVERY), None);
    }

    #[test]
    fn a_catch_up_in_a_pause_stops_when_entries_arrive_again() {
        let mut pacing = Pacing::default();
        let t0 = Instant::now();
        assert_eq!(pacing.start(key(1), t0), None);
        assert_eq!(
            pacing.start(key(1), t0 + BACKGROUND_EVERY),
            Some(Start::Pause)
        );
        assert!(pacing.go_on(Start::Pause, key(1)));
        assert!(!pacing.go_on(Start::Pause, key(2)));
        // Not caught up: the wait that began at the first look goes on, so entries
        // arriving from now on are indexed once it reaches DEFER_AT_MOST.
        assert_eq!(pacing.start(key(3), t0 + 2 * BACKGROUND_EVERY), None);
        assert_eq!(
            pacing.start(key(4), t0 + DEFER_AT_MOST),
            Some(Start::Overdue)
        );
    }
}
