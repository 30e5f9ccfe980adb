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
            let result = flush();
            state = self.lock();
            state.flushing = false;
            if result.is_ok() {
                state.flushed = state.flushed.max(target);
            }
            self.done.notify_all();
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
