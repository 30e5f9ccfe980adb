//! Counts and sizes for status and metrics, kept as counters updated in each write's
//! batch so reading them costs a few key reads.

use serde::Serialize;

use super::{Store, StoreError, keys, records};

/// Sizes for status and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Entries held (equivocation evidence included).
    pub entries: u64,
    /// Of those, sealed entries (readable here or not).
    pub sealed: u64,
    /// Of those, sealed entries for this organisation that did not open yet: each is
    /// tried again when a key is added and at every start.
    pub unread: u64,
    /// Index records (indicators, revocations, sightings).
    pub records: u64,
    /// Bytes sled uses on disk.
    pub bytes_on_disk: u64,
}

impl Store {
    /// Counts and sizes.
    pub fn stats(&self) -> Result<Stats, StoreError> {
        Ok(Stats {
            entries: self.counter(keys::ENTRY_COUNT)?,
            sealed: self.counter(keys::SEALED_COUNT)?,
            unread: self.counter(keys::UNREAD_COUNT)?,
            records: self.counter(keys::RECORD_COUNT)?,
            bytes_on_disk: self.db()?.size_on_disk()?,
        })
    }

    pub(super) fn counter(&self, key: &[u8]) -> Result<u64, StoreError> {
        match self.db()?.get(key)? {
            None => Ok(0),
            Some(bytes) => records::decode_u64(key, &bytes),
        }
    }
}
