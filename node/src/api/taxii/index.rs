//! The TAXII object index: STIX object id → every version of it this node holds, and where
//! each is (the entry's row in the added-time index and the item of the entry it is
//! exported from).
//!
//! It follows the store instead of being written by it: before answering, the server
//! indexes the entries accepted since it last looked, in the order the store accepted
//! them. So ingest pays nothing for TAXII, an id lookup costs one prefix scan whatever the
//! collection's size, and the index is rebuilt from the store if it is ever deleted. Each
//! batch writes its keys and the progress mark together, so a crash leaves no half-indexed
//! entry behind.
//!
//! | key | value |
//! | --- | --- |
//! | object id, `0`, modified (ms, big-endian), added-row key (17 bytes), item (u32) | empty |
//! | `0xff` `progress` | the added-row key of the last entry indexed |

use std::sync::Mutex;

use threatmesh_protocol::Timestamp;

use crate::store::{AddedStart, Store, StoreError};

/// The sled tree the index lives in, beside the store's own.
const TREE: &str = "taxii-objects";
/// Where the progress mark lives; ids are ASCII, so it sorts after every object key.
const PROGRESS: &[u8] = b"\xffprogress";
/// Entries read from the store at a time.
const ROWS_PER_BATCH: usize = 32;
/// Index keys written per batch (about 75 bytes each), at least one entry's.
const KEYS_PER_BATCH: usize = 4096;
/// Length of an added-row key.
const ROW_KEY: usize = 17;

/// One stored version of an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Version {
    /// Its `modified` time.
    pub(super) modified: Timestamp,
    /// The added-index row of the entry that holds it.
    pub(super) row: Vec<u8>,
    /// The entry item it is exported from.
    pub(super) item: u32,
}

/// The index; see the module documentation.
#[derive(Debug)]
pub(super) struct ObjectIndex {
    /// The tree is looked up for each use rather than kept: a handle would hold sled's
    /// database open, and the store must be able to close and reopen it after a failed
    /// write.
    store: Store,
    /// Held while catching up, so two requests never index the same entries.
    catching_up: Mutex<()>,
}

impl ObjectIndex {
    /// The index kept in `store`'s tree `taxii-objects`.
    pub(super) fn new(store: &Store) -> ObjectIndex {
        ObjectIndex {
            store: store.clone(),
            catching_up: Mutex::new(()),
        }
    }

    /// Indexes the entries the store accepted since the last call, up to the newest row
    /// there was when the call began (so steady ingest cannot keep it running) or until
    /// about `budget` rows are indexed, and returns the row key the index now reaches
    /// (`None`: the store is empty). `objects` gives each entry's objects as (id,
    /// modified, item).
    pub(super) fn catch_up(
        &self,
        budget: usize,
        objects: impl Fn(&crate::store::AddedRow) -> Result<Vec<(String, Timestamp, u32)>, StoreError>,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let _only_one = self
            .catching_up
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let end = self.store.last_added_key()?;
        let mut last = self.reached()?;
        let mut indexed = 0_usize;
        loop {
            if last >= end || indexed >= budget {
                return Ok(last);
            }
            let start = match &last {
                Some(key) => AddedStart::Following(key),
                None => AddedStart::First,
            };
            let rows = self.store.added_rows(start, ROWS_PER_BATCH)?;
            let rows: Vec<_> = rows
                .into_iter()
                .take_while(|row| Some(&row.key) <= end.as_ref())
                .collect();
            let Some(final_row) = rows.last() else {
                return Ok(last);
            };
            // One batch per few thousand keys, whole entries only: each write stays far
            // below the store's free-space reserve, which is checked before each one.
            let mut batch = sled::Batch::default();
            let mut keys = 0_usize;
            for row in &rows {
                for (id, modified, item) in objects(row)? {
                    batch.insert(key(&id, modified, &row.key, item), &[]);
                    keys += 1;
                }
                indexed += 1;
                if keys >= KEYS_PER_BATCH || row.key == final_row.key {
                    batch.insert(PROGRESS, row.key.as_slice());
                    self.store.apply_beside(TREE, std::mem::take(&mut batch))?;
                    last = Some(row.key.clone());
                    keys = 0;
                }
            }
        }
    }

    fn tree(&self) -> Result<sled::Tree, StoreError> {
        self.store.tree(TREE)
    }

    /// The added-index row the index reaches, without indexing more.
    pub(super) fn reached(&self) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.tree()?.get(PROGRESS)?.map(|key| key.to_vec()))
    }

    /// The oldest `modified` of object `id`, if any is held.
    pub(super) fn first_version(&self, id: &str) -> Result<Option<Timestamp>, StoreError> {
        Ok(self
            .end(id, &[], End::First)?
            .map(|version| version.modified))
    }

    /// The newest `modified` of object `id`, if any is held.
    pub(super) fn last_version(&self, id: &str) -> Result<Option<Timestamp>, StoreError> {
        Ok(self
            .end(id, &[], End::Last)?
            .map(|version| version.modified))
    }

    /// Where version `modified` of object `id` first appears (the entry accepted first,
    /// then the first item in it). Objects shared by several entries (a malware named
    /// by many indicators) are listed there only, so no page repeats them.
    pub(super) fn first_occurrence(
        &self,
        id: &str,
        modified: Timestamp,
    ) -> Result<Option<Version>, StoreError> {
        self.end(id, &modified.0.to_be_bytes(), End::First)
    }

    /// Every version held of object `id`, oldest `modified` first.
    pub(super) fn versions(&self, id: &str) -> Result<Vec<Version>, StoreError> {
        let prefix = [id.as_bytes(), &[0]].concat();
        self.tree()?
            .scan_prefix(&prefix)
            .map(|row| version_of(&row?.0, prefix.len()))
            .collect()
    }

    /// The first or last index row of object `id` whose key goes on with `more`.
    fn end(&self, id: &str, more: &[u8], end: End) -> Result<Option<Version>, StoreError> {
        let prefix = [id.as_bytes(), &[0], more].concat();
        let mut rows = self.tree()?.scan_prefix(&prefix);
        let row = match end {
            End::First => rows.next(),
            End::Last => rows.next_back(),
        };
        row.map(|row| version_of(&row?.0, id.len() + 1)).transpose()
    }
}

/// Which end of an object's rows [`ObjectIndex::end`] reads.
#[derive(Debug, Clone, Copy)]
enum End {
    First,
    Last,
}

/// The version in index key `key`, whose part after the id starts at `start`.
fn version_of(key: &[u8], start: usize) -> Result<Version, StoreError> {
    key.get(start..)
        .and_then(parse)
        .ok_or_else(|| StoreError::corrupt(key, "short TAXII index key"))
}

fn key(id: &str, modified: Timestamp, row: &[u8], item: u32) -> Vec<u8> {
    let mut key = Vec::with_capacity(id.len() + 1 + 8 + row.len() + 4);
    key.extend_from_slice(id.as_bytes());
    key.push(0);
    key.extend_from_slice(&modified.0.to_be_bytes());
    key.extend_from_slice(row);
    key.extend_from_slice(&item.to_be_bytes());
    key
}

/// Reads what follows `id 0` in a key.
fn parse(rest: &[u8]) -> Option<Version> {
    if rest.len() != 8 + ROW_KEY + 4 {
        return None;
    }
    let modified = u64::from_be_bytes(rest[..8].try_into().ok()?);
    let item = u32::from_be_bytes(rest[8 + ROW_KEY..].try_into().ok()?);
    Some(Version {
        modified: Timestamp(modified),
        row: rest[8..8 + ROW_KEY].to_vec(),
        item,
    })
}
