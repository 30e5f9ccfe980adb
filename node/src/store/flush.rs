//! Group commit: every writer waits until its batch is on disk, but concurrent writers
//! share one fsync.
//!
//! sled writes to disk on its own only every 500 ms (and this store turns that off), so a
//! write acknowledged as durable must flush first. Applying a batch hands out a [`Ticket`];
//! waiting on it returns once the batch is on disk. A flush covers every batch applied
//! before it started, so the first writer to find no flush running flushes on behalf of
//! all batches applied so far; writers whose batch a running flush may have missed wait
//! for the next. Applying and waiting are separate steps, so a writer may act on a batch
//! (the network forwards an entry) before it is durable, and one wait may cover many
//! batches.
//!
//! A reopen after a failed write ([`super::Store::recover`]) drops whatever sled had not
//! flushed. Tickets are stamped with the database's generation, so a ticket of a batch
//! the reopen dropped fails instead of being covered by a later flush of the new database.

use std::sync::{Condvar, Mutex, MutexGuard};

use super::StoreError;

/// A batch applied to the store: [`super::Store::wait_durable`] returns once it is on
/// disk. Tickets are handed out in the order batches are applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "a batch is durable only once its ticket was waited for"]
pub struct Ticket {
    /// Reopens of the database before this batch was applied.
    generation: u64,
    /// Batches applied before this one, plus one.
    number: u64,
}

#[derive(Debug, Default)]
pub(super) struct GroupFlush {
    state: Mutex<State>,
    done: Condvar,
}

#[derive(Debug, Default)]
struct State {
    /// Reopens of the database since the store opened.
    generation: u64,
    /// Tickets handed out: one per applied batch, in order, across generations.
    applied: u64,
    /// Every batch up to this ticket number is on disk (or was dropped by a reopen).
    flushed: u64,
    /// `flushed` when the database was last reopened: the tickets of the generation
    /// before up to this one are on disk, the others were dropped.
    flushed_before_reopen: u64,
    /// A flush is running.
    flushing: bool,
    /// Flushes that succeeded, for measuring how many batches share one.
    flushes: u64,
}

impl GroupFlush {
    /// Records that a batch was applied; the ticket to wait for. Called under the store's
    /// writer lock, like [`GroupFlush::reopened`].
    pub(super) fn applied(&self) -> Ticket {
        let mut state = self.lock();
        state.applied += 1;
        Ticket {
            generation: state.generation,
            number: state.applied,
        }
    }

    /// The ticket of the last batch applied: a writer that found its data already written
    /// (a duplicate) waits for this, since the batch that wrote it may not be on disk yet.
    pub(super) fn last_applied(&self) -> Ticket {
        let state = self.lock();
        Ticket {
            generation: state.generation,
            number: state.applied,
        }
    }

    /// Records that the database was reopened from disk: batches not flushed by now are
    /// gone, and waiting on their tickets fails.
    pub(super) fn reopened(&self) {
        let mut state = self.lock();
        state.generation += 1;
        state.flushed_before_reopen = state.flushed;
        drop(state);
        self.done.notify_all();
    }

    /// Flushes that succeeded since the store opened.
    pub(super) fn flushes(&self) -> u64 {
        self.lock().flushes
    }

    /// Returns once the batch of `ticket` is on disk, flushing with `flush` if no one else
    /// is. `Err(Poisoned)` if a reopen dropped the batch before it was flushed.
    pub(super) fn wait(
        &self,
        ticket: Ticket,
        flush: impl Fn() -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut state = self.lock();
        loop {
            if ticket.generation != state.generation {
                // Only the last reopen is remembered: a ticket older than that (a writer
                // asleep across two reopens) is refused, which at worst reports a durable
                // batch as failed, never the reverse.
                let survived = ticket.generation + 1 == state.generation
                    && ticket.number <= state.flushed_before_reopen;
                return if survived {
                    Ok(())
                } else {
                    Err(StoreError::Poisoned)
                };
            }
            if state.flushed >= ticket.number {
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
            let mut finished = Finished {
                group: self,
                flushed: None,
            };
            let result = flush();
            if result.is_ok() {
                finished.flushed = Some(target);
            }
            drop(finished);
            result?;
            state = self.lock();
        }
    }

    /// Marks a flush as running until [`GroupFlush::release`], so tests can look at what
    /// happens before a batch is durable.
    #[cfg(test)]
    pub(super) fn hold(&self) {
        let mut state = self.lock();
        while state.flushing {
            state = self
                .done
                .wait(state)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        state.flushing = true;
    }

    /// Ends a [`GroupFlush::hold`]: waiting writers flush.
    #[cfg(test)]
    pub(super) fn release(&self) {
        self.lock().flushing = false;
        self.done.notify_all();
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent even if a holder panicked: every update is one field.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Ends a flush: records what it made durable and clears `flushing` in one step (a waiter
/// that saw the flag cleared before the progress would flush again for nothing), then
/// wakes the waiters. Also when the flush panicked.
struct Finished<'a> {
    group: &'a GroupFlush,
    /// The ticket number the flush covered, once it succeeded.
    flushed: Option<u64>,
}

impl Drop for Finished<'_> {
    fn drop(&mut self) {
        let mut state = self.group.lock();
        state.flushing = false;
        if let Some(target) = self.flushed {
            state.flushed = state.flushed.max(target);
            state.flushes += 1;
        }
        drop(state);
        self.group.done.notify_all();
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
    fn one_flush_covers_every_batch_applied_before_it() {
        let group = GroupFlush::default();
        let tickets = [group.applied(), group.applied(), group.applied()];
        group.wait(tickets[2], || Ok(())).unwrap();
        for ticket in tickets {
            group.wait(ticket, || panic!("no flush needed")).unwrap();
        }
        assert_eq!(group.flushes(), 1);
    }

    #[test]
    fn writers_woken_by_the_flush_that_covered_them_do_not_flush_again() {
        let group = Arc::new(GroupFlush::default());
        let flushes = Arc::new(AtomicU64::new(0));
        let tickets: Vec<Ticket> = (0..4).map(|_| group.applied()).collect();
        // Every writer finds a flush running, and waits for its end.
        group.hold();
        let writers: Vec<_> = tickets
            .into_iter()
            .map(|ticket| {
                let (group, flushes) = (Arc::clone(&group), Arc::clone(&flushes));
                std::thread::spawn(move || {
                    group.wait(ticket, || {
                        flushes.fetch_add(1, Ordering::SeqCst);
                        Ok(())
                    })
                })
            })
            .collect();
        group.release();
        for writer in writers {
            writer.join().unwrap().unwrap();
        }
        assert_eq!(flushes.load(Ordering::SeqCst), 1);
        assert_eq!(group.flushes(), 1);
    }

    #[test]
    fn batch_dropped_by_a_reopen_is_not_reported_durable() {
        let group = GroupFlush::default();
        let flushed = group.applied();
        group.wait(flushed, || Ok(())).unwrap();
        let dropped = group.applied();
        group.reopened();
        let after = group.applied();
        group.wait(after, || Ok(())).unwrap();
        // The flush of the reopened database covers every ticket number so far, but the
        // batch applied before the reopen was never flushed: it is gone.
        assert!(matches!(
            group.wait(dropped, || Ok(())),
            Err(StoreError::Poisoned)
        ));
        group.wait(flushed, || panic!("no flush needed")).unwrap();
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
