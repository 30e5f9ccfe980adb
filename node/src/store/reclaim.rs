//! Freeing what sled's writes leave behind.
//!
//! sled 0.34 never changes a tree node in place: every insert installs a new copy of the
//! node and hands the old one to crossbeam-epoch's default collector, to be freed once
//! no thread can still be reading it. That collector frees at most eight bags of 64
//! objects per attempt, and attempts once every 128 pins of a thread. A batch pins once
//! for all its writes, so an entry of a thousand indicators retires thousands of nodes
//! for a handful of pins: left alone, retired nodes pile up faster than they are freed
//! and the heap grows with everything written since the process started (measured: about
//! 1 GB after 1,000,000 indicators, whatever the cache setting). After each batch the
//! store therefore drives the collector itself, enough rounds to free more than a batch
//! retires.

/// Objects one round frees at most: crossbeam-epoch collects 8 bags of 64 per attempt.
const FREED_PER_ROUND: usize = 8 * 64;

/// Rounds after any batch, whatever its size: the two that move the epoch past the
/// batch's own garbage and a few to spare for writes sled made on its own.
const BASE_ROUNDS: usize = 4;

/// Frees garbage retired by a batch of about `writes` keys (and any left by earlier
/// ones). Each round moves this thread to the current epoch, tries to advance it, and
/// frees the bags of garbage old enough that no reader can hold them.
pub(super) fn after_batch(writes: usize) {
    // Writes retire one node each, splits a few more: four times the writes is ample.
    let rounds = BASE_ROUNDS + writes.saturating_mul(4) / FREED_PER_ROUND;
    let mut guard = crossbeam_epoch::pin();
    for _ in 0..rounds {
        guard.repin();
        guard.flush();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::after_batch;

    static FREED: AtomicUsize = AtomicUsize::new(0);

    struct Retired;

    impl Drop for Retired {
        fn drop(&mut self) {
            FREED.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn what_a_batch_retires_under_one_pin_is_freed_after_it() {
        const RETIRED: usize = 20_000;
        {
            // As sled's batch does: one pin, thousands of nodes handed to the collector.
            let guard = crossbeam_epoch::pin();
            for _ in 0..RETIRED {
                let retired = Retired;
                guard.defer(move || drop(retired));
            }
        }
        // Other tests' threads may hold the epoch back for a moment: a few tries. Left to
        // crossbeam alone, a few dozen pins free nothing (it collects every 128th).
        for _ in 0..20 {
            if FREED.load(Ordering::Relaxed) == RETIRED {
                break;
            }
            after_batch(RETIRED);
        }
        assert_eq!(FREED.load(Ordering::Relaxed), RETIRED);
    }
}
