//! Group commit: every writer waits until its batch is on disk, but concurrent writers
//! share one fsync.
//!
//! sled writes to disk on its own only every 500 ms (and this store turns that off), so an
//! ingest that returned Ok must flush first. A flush covers every batch applied before it
//! started, so the first writer to find no flush running flushes on behalf of all batches
//! applied so far; writers whose batch a running flush may have missed wait for the next.

use std::sync::{Condvar, Mutex, MutexGuard};

use super::StoreError;

#[derive(Debug, Default)]
pub(super) struct GroupFlush {
    state: Mutex<State>,
    done: Condvar,
}

#[derive(Debug, Default)]
struct State {
    /// Tickets handed out: one per applied batch, in order.
    applied: u64,
    /// Every batch up to this ticket is on disk.
    flushed: u64,
    /// A flush is running.
    flushing: bool,
}

impl GroupFlush {
    /// Records that a batch was applied; the ticket to wait for.
    pub(super) fn applied(&self) -> u64 {
        let mut state = self.lock();
        state.applied += 1;
        state.applied
    }

    /// The ticket of the last batch applied: a writer that found its data already written
    /// (a duplicate) waits for this, since the batch that wrote it may not be on disk yet.
    pub(super) fn last_applied(&self) -> u64 {
        self.lock().applied
    }

    /// Returns once the batch of `ticket` is on disk, flushing with `flush` if no one else is.
    pub(super) fn wait(
        &self,
        ticket: u64,
        flush: impl Fn() -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut state = self.lock();
        loop {
            if state.flushed >= ticket {
                return Ok(());
            }
            if state.flushing {
                state = self
                    .done
                    .wait(state)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                continue;
            }
            state.flushing = true;
            let target = state.applied;
            drop(state);
            // Whatever happens in `flush`, even a panic, the next writer may flush again.
            let finished = Finished(self);
            let result = flush();
            drop(finished);
            state = self.lock();
            if result.is_ok() {
                state.flushed = state.flushed.max(target);
            }
            result?;
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent even if a holder panicked: every update is one field.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Ends a flush: clears `flushing` and wakes the waiters, also when the flush panicked.
struct Finished<'a>(&'a GroupFlush);

impl Drop for Finished<'_> {
    fn drop(&mut self) {
        self.0.lock().flushing = false;
        self.0.done.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;

    #[test]
    fn batch_applied_during_a_flush_waits_for_the_next_one() {
        let group = Arc::new(GroupFlush::default());
        let flushes = Arc::new(AtomicU64::new(0));
        let first = group.applied();
        let (started, release) = (
            Arc::new(std::sync::Barrier::new(2)),
            Arc::new(std::sync::Barrier::new(2)),
        );
        let slow = {
            let (group, flushes) = (Arc::clone(&group), Arc::clone(&flushes));
            let (started, release) = (Arc::clone(&started), Arc::clone(&release));
            std::thread::spawn(move || {
                group.wait(first, || {
                    started.wait();
                    release.wait();
                    flushes.fetch_add(1, Ordering::SeqCst);
                    Ok(())
                })
            })
        };
        started.wait();
        // Applied while the first flush runs: that flush may have missed it.
        let second = group.applied();
        release.wait();
        slow.join().unwrap().unwrap();
        assert_eq!(flushes.load(Ordering::SeqCst), 1);
        group
            .wait(second, || {
                flushes.fetch_add(1, Ordering::SeqCst);
                Ok(())
            })
            .unwrap();
        assert_eq!(
            flushes.load(Ordering::SeqCst),
            2,
            "the second batch needed its own flush"
        );
        // Both are on disk now: waiting again costs nothing.
        group.wait(second, || panic!("no flush needed")).unwrap();
    }

    #[test]
    fn failed_flush_is_reported_and_retried_by_the_next_writer() {
        let group = GroupFlush::default();
        let ticket = group.applied();
        let failed = group.wait(ticket, || Err(StoreError::corrupt(b"k", "disk full")));
        assert!(failed.is_err());
        group.wait(ticket, || Ok(())).unwrap();
    }

    #[test]
    fn panicking_flush_does_not_block_later_writers() {
        let group = Arc::new(GroupFlush::default());
        let ticket = group.applied();
        let panicking = Arc::clone(&group);
        let result = std::thread::spawn(move || {
            let _ = panicking.wait(ticket, || panic!("flush panicked"));
        })
        .join();
        assert!(result.is_err());
        group.wait(ticket, || Ok(())).unwrap();
    }
}
