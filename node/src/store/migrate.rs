//! Opening a store written by schema 1 migrates it to schema 2 (`keys.rs` says what
//! changed), before the store is handed out.
//!
//! The migration walks the feed slots in key order. For each entry this node can read (a
//! clear bundle, or a sealed one it opened), one batch removes its schema 1 index keys and
//! writes its schema 2 record and keys, as ingest would have, together with the last slot
//! migrated (`mmigration`). sled recovers a prefix of the batches applied, so a crash (or
//! `kill -9`) leaves a store whose entries are each wholly in one schema, and a mark saying
//! where to go on: the next open goes on from there. The schema version becomes 2 only in
//! the last batch. Entries are untouched, so nothing signed is rewritten. Progress is
//! logged every few seconds: a store of tens of millions of indicators takes minutes.

use std::collections::HashMap;
use std::ops::Bound;
use std::time::{Duration, Instant};

use threatmesh_protocol::entry::Body;
use threatmesh_protocol::{Hash, PublicKey};

use super::ingest::{entry_number, index};
use super::{SCHEMA_VERSION, Store, StoreError, hash_of, keys};

/// Entries migrated per batch, and about how many items: big enough to amortise a batch,
/// small enough that one batch stays a few MiB.
const ENTRIES_PER_BATCH: usize = 256;
const ITEMS_PER_BATCH: usize = 20_000;
/// How often progress is logged.
const REPORT_EVERY: Duration = Duration::from_secs(5);

impl Store {
    /// Migrates a schema 1 store to schema 2; see the module documentation.
    pub(super) fn migrate_from_v1(&self) -> Result<(), StoreError> {
        let db = self.db()?;
        let total = self.counter(keys::ENTRY_COUNT)?;
        let mut last = db.get(keys::MIGRATION)?.map(|key| key.to_vec());
        let mut number = self.counter(keys::ENTRY_NUMBERS)?;
        let crash_after = crash_hook();
        let entries_per_batch = if crash_after.is_some() {
            1
        } else {
            ENTRIES_PER_BATCH
        };
        tracing::info!(
            path = %self.path().display(),
            entries = total,
            resuming = last.is_some(),
            "migrating the store from schema 1 to schema 2 (compact index)"
        );
        let started = Instant::now();
        let mut reported = started;
        let (mut migrated, mut batches) = (0_u64, 0_usize);
        let mut feeds: HashMap<PublicKey, u32> = HashMap::new();
        loop {
            self.writable()?;
            let from = match &last {
                Some(key) => Bound::Excluded(key.clone()),
                None => Bound::Included(vec![keys::FEED]),
            };
            let mut batch = sled::Batch::default();
            let (mut entries, mut items) = (0, 0);
            for found in db.range::<Vec<u8>, _>((from, Bound::Unbounded)) {
                let (key, id) = found?;
                if key.first() != Some(&keys::FEED) {
                    break;
                }
                let author = keys::author_of_feed_key(&key)
                    .ok_or_else(|| StoreError::corrupt(&key, "short feed key"))?;
                let seq = keys::seq_of_feed_key(&key)
                    .ok_or_else(|| StoreError::corrupt(&key, "short feed key"))?;
                let id = Hash(hash_of(&key, &id)?);
                let signed = self
                    .entry(&id)?
                    .ok_or_else(|| StoreError::corrupt(&key, "a feed slot without its entry"))?;
                let bundle = match &signed.entry().body {
                    Body::Bundle(bundle) => Some(bundle.clone()),
                    Body::Sealed(_) => self.opened(&id)?,
                };
                if let Some(bundle) = bundle.filter(|bundle| !bundle.items.is_empty()) {
                    let feed = match feeds.get(&author) {
                        Some(feed) => *feed,
                        None => {
                            let feed = self
                                .feed_record(&author)?
                                .ok_or_else(|| {
                                    StoreError::corrupt(&key, "a slot without its feed")
                                })?
                                .number;
                            feeds.insert(author, feed);
                            feed
                        }
                    };
                    for (item, found) in (0_u32..).zip(&bundle.items) {
                        batch.remove(keys::v1_index(found.value(), feed, seq, item));
                    }
                    items += index(
                        &mut batch,
                        signed.entry(),
                        &id,
                        &bundle,
                        feed,
                        entry_number(number)?,
                    );
                    number += 1;
                }
                last = Some(key.to_vec());
                entries += 1;
                if entries >= entries_per_batch || items >= ITEMS_PER_BATCH as u64 {
                    break;
                }
            }
            let Some(mark) = &last else {
                break; // a store without entries
            };
            batch.insert(keys::ENTRY_NUMBERS, &number.to_be_bytes()[..]);
            let done = entries < entries_per_batch && items < ITEMS_PER_BATCH as u64;
            if done {
                batch.remove(keys::MIGRATION);
                batch.insert(keys::SCHEMA, &SCHEMA_VERSION.to_be_bytes()[..]);
            } else {
                batch.insert(keys::MIGRATION, &mark[..]);
            }
            // Each item's schema 1 key removed and its schema 2 key written, and an entry
            // record and a few marks each entry.
            let writes = usize::try_from(items)
                .unwrap_or(usize::MAX)
                .saturating_mul(2)
                .saturating_add(entries.saturating_mul(4));
            self.apply_batch(&db, batch, writes)?;
            migrated += entries as u64;
            batches += 1;
            if done {
                break;
            }
            if crash_after.is_some_and(|after| batches >= after) {
                // The test of an interrupted migration: stop as `kill -9` would, with
                // what was applied on disk and nothing else run.
                db.flush()?;
                std::process::abort();
            }
            if reported.elapsed() >= REPORT_EVERY {
                reported = Instant::now();
                tracing::info!(migrated, entries = total, "migrating the store");
            }
        }
        if db.get(keys::SCHEMA)?.as_deref() != Some(&SCHEMA_VERSION.to_be_bytes()[..]) {
            // No feed slot at all: nothing to move.
            let mut batch = sled::Batch::default();
            batch.remove(keys::MIGRATION);
            batch.insert(keys::SCHEMA, &SCHEMA_VERSION.to_be_bytes()[..]);
            self.apply_batch(&db, batch, 2)?;
        }
        let stale = self.remove_stale_v1_keys()?;
        db.flush()?;
        tracing::info!(
            migrated,
            stale_keys_removed = stale,
            seconds = started.elapsed().as_secs_f64(),
            "store migrated to schema 2"
        );
        Ok(())
    }

    /// Removes schema 1 index keys no entry accounted for (none, unless the store was
    /// damaged): they would only take space.
    fn remove_stale_v1_keys(&self) -> Result<u64, StoreError> {
        let db = self.db()?;
        let mut removed = 0;
        loop {
            let mut batch = sled::Batch::default();
            let mut count = 0;
            for found in db
                .scan_prefix([keys::V1_INDEX])
                .keys()
                .take(ITEMS_PER_BATCH)
            {
                batch.remove(found?);
                count += 1;
            }
            if count == 0 {
                return Ok(removed);
            }
            self.apply_batch(&db, batch, usize::try_from(count).unwrap_or(usize::MAX))?;
            removed += count;
        }
    }
}

/// Debug builds (the tests') stop the migration after this many one-entry batches when
/// `THREATMESH_STORE_MIGRATION_CRASH_AFTER` says so; release builds never do.
#[cfg(debug_assertions)]
fn crash_hook() -> Option<usize> {
    std::env::var("THREATMESH_STORE_MIGRATION_CRASH_AFTER")
        .ok()?
        .parse()
        .ok()
}

#[cfg(not(debug_assertions))]
fn crash_hook() -> Option<usize> {
    None
}
