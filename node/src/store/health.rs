//! Durability and disk health: every write waits for a group flush before it is
//! acknowledged; writes are refused while the disk has less free space than the reserve;
//! a failed write makes the store refuse writes until it has reopened from disk.
//!
//! sled marks its whole database failed after one write error, so the store keeps it from
//! ever reaching the end of the disk (see the [module documentation](super)).

use std::sync::atomic::Ordering;

use serde::Serialize;

use super::{Store, StoreError, Ticket, open_db};

const MIB: u64 = 1024 * 1024;

/// How long after a failed write a write may try to reopen the store; doubled for each
/// failure in a row, up to [`RECOVER_AFTER_MAX`].
const RECOVER_AFTER: std::time::Duration = std::time::Duration::from_secs(5);
const RECOVER_AFTER_MAX: std::time::Duration = std::time::Duration::from_secs(300);

/// Write failures in a row, for the reopen backoff.
#[derive(Debug, Default)]
pub(super) struct Failures {
    /// When the last one happened (or a reopen was last tried).
    at: Option<std::time::Instant>,
    /// Failures since the last write that succeeded.
    in_a_row: u32,
}

/// The store's disk space and write health.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Space {
    /// Free space on the store's filesystem, for unprivileged writers (`None`: unreadable).
    pub free_bytes: Option<u64>,
    /// Writes are refused below this much free space.
    pub reserve_bytes: u64,
    /// Writes refused for want of space since the store opened.
    pub writes_refused_full: u64,
    /// A write failed and the store refuses writes until it has reopened from disk.
    pub write_failed: bool,
}

/// While alive, flushes wait: see [`Store::hold_flushes`].
#[cfg(test)]
#[derive(Debug)]
pub(crate) struct FlushHold(Store);

#[cfg(test)]
impl Drop for FlushHold {
    fn drop(&mut self) {
        self.0.inner.flush.release();
    }
}

impl Store {
    /// Waits until the batch of `ticket`, and every batch applied before it, is on disk.
    /// Concurrent waiters share one flush. `Err(Poisoned)` if a flush failed, or if the
    /// store reopened from disk after a failure and the batch was lost with sled's memory.
    pub fn wait_durable(&self, ticket: Ticket) -> Result<(), StoreError> {
        self.inner.flush.wait(ticket, || {
            self.poison_on_error(self.db()?.flush().map(drop))
        })?;
        self.failures().in_a_row = 0;
        Ok(())
    }

    /// Group flushes (fsyncs) that succeeded since the store opened: with the entries
    /// written, how many writes each flush covered.
    pub fn flushes(&self) -> u64 {
        self.inner.flush.flushes()
    }

    /// Makes every flush wait until the returned guard is dropped, so a test can look at
    /// what happens between applying a batch and its fsync.
    #[cfg(test)]
    pub(crate) fn hold_flushes(&self) -> FlushHold {
        self.inner.flush.hold();
        FlushHold(self.clone())
    }

    /// Flushes everything to disk (for shutdown).
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db()?.flush()?;
        Ok(())
    }
    pub(super) fn failures(&self) -> std::sync::MutexGuard<'_, Failures> {
        self.inner
            .last_failure
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A failed write or flush may leave sled's memory ahead of its disk (a batch half
    /// applied in memory, or applied but not flushed). Rather than build on that, the
    /// store refuses every later write until it has reopened from disk
    /// ([`Store::recover`]).
    pub(super) fn poison_on_error<T>(&self, result: sled::Result<T>) -> Result<T, StoreError> {
        result.map_err(|error| {
            self.inner
                .poisoned
                .store(true, std::sync::atomic::Ordering::SeqCst);
            let mut failures = self.failures();
            failures.at = Some(std::time::Instant::now());
            failures.in_a_row = failures.in_a_row.saturating_add(1);
            drop(failures);
            tracing::error!(%error, "storage failed; refusing writes until the store reopens from disk");
            StoreError::Engine(error)
        })
    }

    /// Whether a write may start now: no earlier write failed, and the disk has more than
    /// the reserve free. Every writer of this database calls it first, the TAXII index
    /// included, since one failed write anywhere fails the whole database.
    pub fn writable(&self) -> Result<(), StoreError> {
        self.check_space()?;
        self.recover()
    }

    /// Whether the disk has room above the reserve, without counting a refusal.
    fn has_room(&self) -> bool {
        self.free_and_reserve()
            .is_none_or(|(free, reserve)| free >= reserve)
    }

    /// The free space of the store's filesystem and the reserve, when the reserve is on
    /// and the free space can be read. A store whose free space cannot be read is not
    /// refused for it: the write itself will tell whether the disk is usable.
    fn free_and_reserve(&self) -> Option<(u64, u64)> {
        let reserve = self.inner.reserve.load(Ordering::Relaxed);
        if reserve == 0 {
            return None;
        }
        match fs2::available_space(&self.inner.path) {
            Ok(free) => Some((free, reserve)),
            Err(error) => {
                tracing::debug!(%error, "cannot read the store's free disk space");
                None
            }
        }
    }

    /// After a failed write, closes sled and opens the database again from disk: what is
    /// there is everything acknowledged (each write is flushed before it is), and sled's
    /// memory, which may be ahead of the disk, is dropped. Tried by a write
    /// [`RECOVER_AFTER`] after the failure, twice as long after each failure in a row (up
    /// to [`RECOVER_AFTER_MAX`]: reopening a large store reads its whole log), and only
    /// when the disk has room above the reserve, since a reopen that fails leaves the
    /// store closed (reads fail too) until the next try. `Err(Poisoned)` until then.
    pub(super) fn recover(&self) -> Result<(), StoreError> {
        if !self.inner.poisoned.load(Ordering::SeqCst) {
            return Ok(());
        }
        if self.inner.temporary || !self.has_room() {
            return Err(StoreError::Poisoned);
        }
        {
            let mut failures = self.failures();
            let wait = RECOVER_AFTER
                .saturating_mul(1 << failures.in_a_row.saturating_sub(1).min(16))
                .min(RECOVER_AFTER_MAX);
            if failures.at.is_some_and(|at| at.elapsed() < wait) {
                return Err(StoreError::Poisoned);
            }
            failures.at = Some(std::time::Instant::now());
        }
        // No batch is being decided or applied while the database changes under it.
        let _writer = self.lock_writer();
        if !self.inner.poisoned.load(Ordering::SeqCst) {
            return Ok(());
        }
        // The slot is emptied and its lock released at once: readers arriving during the
        // reopen get `Poisoned` rather than wait for sled to read its log. sled's file lock
        // is released once every handle is gone; readers hold theirs for one operation or
        // one iteration, and opening waits up to two seconds for them.
        let old = self.db_slot().take();
        drop(old);
        // What sled had not flushed goes with its memory: those tickets must not pass for
        // durable when the reopened database flushes.
        self.inner.flush.reopened();
        match open_db(&self.inner.config, &self.inner.path) {
            Ok((db, _schema)) => *self.db_slot() = Some(db),
            Err(error) => {
                tracing::error!(%error, "reopening the store after a failed write failed; \
                    reads and writes fail until the next try");
                return Err(StoreError::Poisoned);
            }
        }
        self.load_feeds()?;
        self.inner.poisoned.store(false, Ordering::SeqCst);
        tracing::warn!(
            "the store reopened from disk after a failed write and accepts writes again"
        );
        Ok(())
    }

    /// Refuses a write while the store's filesystem has less than the reserve free. The
    /// check is one `statvfs` call, far cheaper than the fsync every write ends with.
    pub(super) fn check_space(&self) -> Result<(), StoreError> {
        let Some((free, reserve)) = self.free_and_reserve() else {
            return Ok(());
        };
        let full = free < reserve;
        let was_full = self.inner.full.swap(full, Ordering::Relaxed);
        if !full {
            if was_full {
                tracing::warn!(
                    free_mib = free / MIB,
                    "disk space is back above the reserve: the store accepts writes again"
                );
            }
            return Ok(());
        }
        self.inner.refused_full.fetch_add(1, Ordering::Relaxed);
        let error = StoreError::DiskFull {
            path: self.inner.path.clone(),
            free_mib: free / MIB,
            reserve_mib: reserve / MIB,
        };
        if !was_full {
            tracing::error!(%error, "refusing writes: free disk space is under the reserve");
        }
        Err(error)
    }

    /// Changes the free space the store keeps (see
    /// [`Options::reserve_bytes`](super::Options::reserve_bytes)).
    pub fn set_reserve(&self, bytes: u64) {
        self.inner.reserve.store(bytes, Ordering::Relaxed);
    }

    /// Why the store would refuse a write now, if it would: for a readiness probe, which
    /// must neither count a refusal nor start a reopen as [`Store::writable`] may.
    pub fn write_refusal(&self) -> Option<String> {
        if self.inner.poisoned.load(Ordering::SeqCst) {
            return Some(
                "a write failed: writes are refused until the store reopens from disk".into(),
            );
        }
        match self.free_and_reserve() {
            Some((free, reserve)) if free < reserve => Some(format!(
                "disk full: {} MiB free, under the reserve of {} MiB",
                free / MIB,
                reserve / MIB
            )),
            _ => None,
        }
    }

    /// Free space and write health, for status and metrics.
    pub fn space(&self) -> Space {
        Space {
            free_bytes: fs2::available_space(&self.inner.path).ok(),
            reserve_bytes: self.inner.reserve.load(Ordering::Relaxed),
            writes_refused_full: self.inner.refused_full.load(Ordering::Relaxed),
            write_failed: self.inner.poisoned.load(Ordering::SeqCst),
        }
    }
}
