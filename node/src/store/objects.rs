//! The TAXII object index: STIX object id → every version of it this node holds, per
//! publishing organisation, and where each is (the entry's row in the added-time index and
//! the item of the entry it is exported from). The TAXII server (`api::taxii`) says which
//! objects an entry holds; this module keeps them in a tree of their own beside the
//! store's, so no sled type leaves the store.
//!
//! Versions are kept per (id, organisation): two organisations' objects are two objects
//! even if they carry one id, so `match[version]`, "where a version first appears" and
//! the versions of an object never mix them. (Exports namespace other organisations'
//! kept ids, so ids should not meet; the index does not rely on it.)
//!
//! It follows the store instead of being written by it: before answering, the server
//! indexes the entries accepted since it last looked, in the order the store accepted
//! them. So ingest pays nothing for TAXII, an id lookup costs one prefix scan whatever the
//! collection's size, and the index is rebuilt from the store if it is ever deleted. Each
//! batch writes its keys and the progress mark together, so a crash leaves no half-indexed
//! entry behind; a catch-up flushes once, after its last batch, since losing index
//! batches to a crash only costs indexing them again (sled recovers a prefix of the
//! batches applied, and every entry indexed was applied before its keys).
//!
//! | key | value |
//! | --- | --- |
//! | object id, `0`, organisation key (32 bytes), modified (ms, big-endian), added-row key (17 bytes), item (u32) | where the item starts among the entry's items (u32, big-endian; see `ClearItem::read`), or empty for a sealed entry's or a sighting |
//! | `0xfe`, object id | empty: the id has more than one row (versions, organisations, or entries repeating it) |
//! | `0xff` `progress` | the added-row key of the last entry indexed |
//!
//! Nearly every object is held once. A page lists each object only if it is a version
//! the filter wants where that version first appears, which takes a look at the id's
//! rows; in a collection of millions those rows are spread over far more tree pages
//! than the cache holds, and that look was what made pages slower as the collection
//! grew. The `0xfe` keys name the few ids that have several rows, so a small, cached set
//! answers for the rest: an id not in it has one row, the one being listed. The indexer
//! looks for an earlier row before writing each key, in the tree page the key's own
//! insert loads anyway.
//!
//! Exported ids depend on which organisation this node serves (its own kept ids are
//! exported as they are), so the tree is named after it ([`tree_name`]): a node the
//! charter moves to another organisation, or an older layout, gets a fresh tree built
//! from the store, and the stale ones are dropped.

use std::sync::{Arc, Mutex};

use threatmesh_protocol::{PublicKey, Timestamp};

use super::{AddedRow, AddedStart, Store, StoreError, Ticket};

/// What every index tree's name starts with (the first layout's tree had exactly this
/// name).
const TREE_PREFIX: &str = "taxii-objects";
/// The layout of the keys, in the tree's name: 2 keys versions by organisation too; 3
/// gives each key the item's offset, so a lookup decodes that item only; 4 adds the set
/// of ids with several rows.
const LAYOUT: u32 = 4;
/// Where the progress mark lives; ids are ASCII, so it sorts after every object key.
const PROGRESS: &[u8] = b"\xffprogress";
/// What the keys of the set of ids with several rows start with (after every object
/// key, before the progress mark).
const SEVERAL: u8 = 0xfe;
/// Entries read from the store at a time.
const ROWS_PER_BATCH: usize = 32;
/// Index keys written per batch (about 110 bytes each), at least one entry's. Each batch
/// is applied under the store's writer lock, which ingest waits for: 4096 keys held it
/// for up to a second on a loaded testnet.
const KEYS_PER_BATCH: usize = 1024;
/// Batches applied between two waits for the disk (about 7 MiB of keys): a catch-up
/// flushes this often, and once at its end, rather than after every batch, so at most
/// this much of its writes sits in sled's buffers past the free-space check.
const BATCHES_PER_FLUSH: usize = 64;
/// Length of an added-row key.
const ROW_KEY: usize = 17;
/// Length of an organisation key.
const ORG: usize = 32;

/// The sled tree the index of a node serving organisation `own` lives in, beside the
/// store's own.
fn tree_name(own: Option<PublicKey>) -> String {
    match own {
        Some(org) => format!("{TREE_PREFIX}-v{LAYOUT}-{org}"),
        None => format!("{TREE_PREFIX}-v{LAYOUT}-none"),
    }
}

/// One stored version of an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ObjectVersion {
    /// The organisation that published it.
    pub(crate) org: PublicKey,
    /// Its `modified` time.
    pub(crate) modified: Timestamp,
    /// The added-index row of the entry that holds it.
    pub(crate) row: Vec<u8>,
    /// The entry item it is exported from.
    pub(crate) item: u32,
    /// Where that item starts among the entry's items, for reading it alone
    /// (`ClearItem::read`); `None` for a sealed entry's, read from the bundle this node
    /// opened, and for a sighting, exported from the whole entry.
    pub(crate) offset: Option<u32>,
}

/// One object of an entry, as the index records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IndexedObject {
    /// The object's STIX id.
    pub(crate) id: String,
    /// The organisation that published it.
    pub(crate) org: PublicKey,
    /// Its `modified` time.
    pub(crate) modified: Timestamp,
    /// The entry item it is exported from.
    pub(crate) item: u32,
    /// Where that item starts: see [`ObjectVersion::offset`].
    pub(crate) offset: Option<u32>,
}

/// What every request's [`ObjectIndex`] shares.
#[derive(Debug, Default)]
pub(crate) struct CatchUpLock {
    /// Held while catching up, so two requests never index the same entries; holds the
    /// tree whose stale siblings were dropped last.
    swept: Mutex<Option<String>>,
}

/// The index; see the module documentation.
#[derive(Debug)]
pub(crate) struct ObjectIndex {
    /// The tree is looked up for each use rather than kept: a handle would hold sled's
    /// database open, and the store must be able to close and reopen it after a failed
    /// write.
    store: Store,
    /// The tree's name: see [`tree_name`].
    tree: String,
    catching: Arc<CatchUpLock>,
}

impl ObjectIndex {
    /// The index of a node serving organisation `own`, kept in `store`.
    pub(crate) fn new(
        store: &Store,
        own: Option<PublicKey>,
        catching: Arc<CatchUpLock>,
    ) -> ObjectIndex {
        ObjectIndex {
            store: store.clone(),
            tree: tree_name(own),
            catching,
        }
    }

    /// Indexes the entries the store accepted since the last call, up to the newest row
    /// there was when the call began (so steady ingest cannot keep it running) or until
    /// about `budget` rows are indexed, and returns the row key the index now reaches
    /// (`None`: the store is empty). `objects` gives each entry's objects.
    pub(crate) fn catch_up(
        &self,
        budget: usize,
        objects: impl Fn(&AddedRow) -> Result<Vec<IndexedObject>, StoreError>,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let mut swept = self
            .catching
            .swept
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if swept.as_deref() != Some(self.tree.as_str()) {
            // Trees of another layout or organisation are never read again. Tried once
            // per tree and run: one that could not be dropped (a full disk) only takes
            // space, and is dropped at the next start.
            if let Err(error) = self.store.drop_beside(TREE_PREFIX, &self.tree) {
                tracing::warn!(%error, "dropping stale TAXII indexes failed; trying again at the next start");
            }
            *swept = Some(self.tree.clone());
        }
        let end = self.store.last_added_key()?;
        let mut last = self.reached()?;
        let mut indexed = 0_usize;
        // The batch applied last, and how many were since the last wait: the call
        // returns once the last, and with it every batch before it, is on disk.
        let mut written = None;
        let mut unflushed = 0_usize;
        loop {
            if last >= end || indexed >= budget {
                if let Some(ticket) = written {
                    self.store.wait_durable(ticket)?;
                }
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
                if let Some(ticket) = written {
                    self.store.wait_durable(ticket)?;
                }
                return Ok(last);
            };
            // One batch per thousand keys or so, whole entries only: each write stays far
            // below the store's free-space reserve, which is checked before each one.
            let mut batch = sled::Batch::default();
            let mut keys = 0_usize;
            // Ids given a row by this batch, which the tree does not show until it is
            // applied.
            let mut in_batch = std::collections::HashSet::new();
            let tree = self.tree()?;
            for row in &rows {
                for object in objects(row)? {
                    let prefix = rows_prefix(&object.id);
                    if !in_batch.insert(object.id.clone())
                        || tree.scan_prefix(&prefix).next().transpose()?.is_some()
                    {
                        batch.insert(several_key(&object.id), &[]);
                        keys += 1;
                    }
                    let offset = object.offset.map(u32::to_be_bytes);
                    batch.insert(
                        key(
                            &object.id,
                            &object.org,
                            object.modified,
                            &row.key,
                            object.item,
                        ),
                        offset.as_ref().map_or(&[][..], |offset| &offset[..]),
                    );
                    keys += 1;
                }
                indexed += 1;
                if keys >= KEYS_PER_BATCH || row.key == final_row.key {
                    batch.insert(PROGRESS, row.key.as_slice());
                    let ticket = self.store.apply_beside(
                        &self.tree,
                        std::mem::take(&mut batch),
                        keys + 1,
                    )?;
                    unflushed += 1;
                    if unflushed >= BATCHES_PER_FLUSH {
                        self.store.wait_durable(ticket)?;
                        unflushed = 0;
                    }
                    written = Some(ticket);
                    last = Some(row.key.clone());
                    keys = 0;
                    in_batch.clear();
                }
            }
        }
    }

    fn tree(&self) -> Result<sled::Tree, StoreError> {
        self.store.tree(&self.tree)
    }

    /// The added-index row the index reaches, without indexing more.
    pub(crate) fn reached(&self) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.tree()?.get(PROGRESS)?.map(|key| key.to_vec()))
    }

    /// The oldest `modified` of object `id` published by `org`, if any is held.
    pub(crate) fn first_version(
        &self,
        id: &str,
        org: &PublicKey,
    ) -> Result<Option<Timestamp>, StoreError> {
        Ok(self
            .end(id, &org.0, End::First)?
            .map(|version| version.modified))
    }

    /// The newest `modified` of object `id` published by `org`, if any is held.
    pub(crate) fn last_version(
        &self,
        id: &str,
        org: &PublicKey,
    ) -> Result<Option<Timestamp>, StoreError> {
        Ok(self
            .end(id, &org.0, End::Last)?
            .map(|version| version.modified))
    }

    /// Where version `modified` of object `id` by `org` first appears (the entry accepted
    /// first, then the first item in it). Objects shared by several entries (a malware
    /// named by many indicators) are listed there only, so no page repeats them.
    pub(crate) fn first_occurrence(
        &self,
        id: &str,
        org: &PublicKey,
        modified: Timestamp,
    ) -> Result<Option<ObjectVersion>, StoreError> {
        self.end(
            id,
            &[&org.0[..], &modified.0.to_be_bytes()].concat(),
            End::First,
        )
    }

    /// Every version held of object `id`, by organisation, then oldest `modified` first.
    pub(crate) fn versions(&self, id: &str) -> Result<Vec<ObjectVersion>, StoreError> {
        let prefix = rows_prefix(id);
        self.tree()?
            .scan_prefix(&prefix)
            .map(|row| {
                let (key, value) = row?;
                version_of(&key, &value, prefix.len())
            })
            .collect()
    }

    /// Whether object `id` has more than one row (see the module documentation); when
    /// not, its one row is the only version there is, and where it appears.
    pub(crate) fn has_several_rows(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self.tree()?.contains_key(several_key(id))?)
    }

    /// Every row of object `id` published by `org` (versions, each where it appears),
    /// oldest first, when there are at most `most`; `None` when there are more. Nearly
    /// every object is one version held once: one short forward scan then tells a reader
    /// its first and last version and where it appears, which [`ObjectIndex::first_version`],
    /// [`ObjectIndex::last_version`] and [`ObjectIndex::first_occurrence`] take three
    /// lookups (one backwards) to tell.
    pub(crate) fn few_rows(
        &self,
        id: &str,
        org: &PublicKey,
        most: usize,
    ) -> Result<Option<Vec<ObjectVersion>>, StoreError> {
        let prefix = [id.as_bytes(), &[0], &org.0[..]].concat();
        let mut found = Vec::new();
        for row in self.tree()?.scan_prefix(&prefix) {
            if found.len() == most {
                return Ok(None);
            }
            let (key, value) = row?;
            found.push(version_of(&key, &value, id.len() + 1)?);
        }
        Ok(Some(found))
    }

    /// The first or last index row of object `id` whose key goes on with `more`.
    fn end(&self, id: &str, more: &[u8], end: End) -> Result<Option<ObjectVersion>, StoreError> {
        let prefix = [id.as_bytes(), &[0], more].concat();
        let mut rows = self.tree()?.scan_prefix(&prefix);
        let row = match end {
            End::First => rows.next(),
            End::Last => rows.next_back(),
        };
        row.map(|row| {
            let (key, value) = row?;
            version_of(&key, &value, id.len() + 1)
        })
        .transpose()
    }
}

/// Which end of an object's rows [`ObjectIndex::end`] reads.
#[derive(Debug, Clone, Copy)]
enum End {
    First,
    Last,
}

/// What the keys of object `id`'s rows start with.
fn rows_prefix(id: &str) -> Vec<u8> {
    [id.as_bytes(), &[0]].concat()
}

/// The key saying that object `id` has several rows.
fn several_key(id: &str) -> Vec<u8> {
    [&[SEVERAL][..], id.as_bytes()].concat()
}

/// The version in index key `key` with value `value`, whose part after the id starts at
/// `start`.
fn version_of(key: &[u8], value: &[u8], start: usize) -> Result<ObjectVersion, StoreError> {
    let mut version = key
        .get(start..)
        .and_then(parse)
        .ok_or_else(|| StoreError::corrupt(key, "short TAXII index key"))?;
    version.offset = match value {
        [] => None,
        offset => Some(u32::from_be_bytes(offset.try_into().map_err(|_| {
            StoreError::corrupt(key, "TAXII index value is not an item offset")
        })?)),
    };
    Ok(version)
}

fn key(id: &str, org: &PublicKey, modified: Timestamp, row: &[u8], item: u32) -> Vec<u8> {
    let mut key = Vec::with_capacity(id.len() + 1 + ORG + 8 + row.len() + 4);
    key.extend_from_slice(id.as_bytes());
    key.push(0);
    key.extend_from_slice(&org.0);
    key.extend_from_slice(&modified.0.to_be_bytes());
    key.extend_from_slice(row);
    key.extend_from_slice(&item.to_be_bytes());
    key
}

/// Reads what follows `id 0` in a key.
fn parse(rest: &[u8]) -> Option<ObjectVersion> {
    if rest.len() != ORG + 8 + ROW_KEY + 4 {
        return None;
    }
    let (org, rest) = rest.split_at(ORG);
    let modified = u64::from_be_bytes(rest[..8].try_into().ok()?);
    let item = u32::from_be_bytes(rest[8 + ROW_KEY..].try_into().ok()?);
    Some(ObjectVersion {
        org: PublicKey(org.try_into().ok()?),
        modified: Timestamp(modified),
        row: rest[8..8 + ROW_KEY].to_vec(),
        item,
        offset: None,
    })
}

impl Store {
    /// Applies `batch` to the tree named `tree` (see [`Store::tree`]) as the store writes:
    /// only when [`Store::writable`], and a failure marks the store failed at once (sled
    /// fails the whole database after one write error, whichever tree). Returns the
    /// batch's ticket: the batch is on disk once [`Store::wait_durable`] returns for it
    /// or for a later one, so a writer of many batches can wait once for several (not so
    /// many that unflushed writes pile up in sled's buffers past the free-space check).
    /// The tree is named, not passed: a handle held across [`Store::writable`] would keep
    /// the old database open and make a reopen fail.
    fn apply_beside(
        &self,
        tree: &str,
        batch: sled::Batch,
        writes: usize,
    ) -> Result<Ticket, StoreError> {
        self.writable()?;
        let _writer = self.lock_writer();
        let tree = self.tree(tree)?;
        self.apply_batch(&tree, batch, writes)?;
        Ok(self.inner.flush.applied())
    }

    /// A named sled tree in the store's database, for an index kept beside the store (it
    /// shares the store's flushes). Names starting with `__` are sled's own; write to it
    /// with [`Store::apply_beside`].
    fn tree(&self, name: &str) -> Result<sled::Tree, StoreError> {
        Ok(self.db()?.open_tree(name)?)
    }

    /// Drops every tree kept beside the store (see [`Store::tree`]) whose name starts with
    /// `prefix`, except `keep`: an index rebuilt under a new name frees the old one. Only
    /// when [`Store::writable`].
    fn drop_beside(&self, prefix: &str, keep: &str) -> Result<(), StoreError> {
        self.writable()?;
        let _writer = self.lock_writer();
        let db = self.db()?;
        for name in db.tree_names() {
            if name.starts_with(prefix.as_bytes()) && name.as_ref() != keep.as_bytes() {
                self.poison_on_error(db.drop_tree(&name).map(|_| ()))?;
            }
        }
        Ok(())
    }

    /// Writes `rows` (key, value) to the tree named `tree`, as an index an older node left
    /// behind would hold them.
    #[cfg(test)]
    pub(crate) fn write_beside(
        &self,
        tree: &str,
        rows: &[(&[u8], &[u8])],
    ) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for (key, value) in rows {
            batch.insert(*key, *value);
        }
        let ticket = self.apply_beside(tree, batch, rows.len())?;
        self.wait_durable(ticket)
    }

    /// Whether the tree named `tree` holds nothing (a dropped tree holds nothing).
    #[cfg(test)]
    pub(crate) fn is_beside_empty(&self, tree: &str) -> Result<bool, StoreError> {
        Ok(self.tree(tree)?.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_index_key_reads_back_as_its_version() {
        let org = PublicKey([7; 32]);
        let row = [b'a'; ROW_KEY];
        let id = "indicator--00000000-0000-4000-8000-000000000001";
        let key = key(id, &org, Timestamp(42), &row, 3);
        assert_eq!(key.len(), id.len() + 1 + ORG + 8 + ROW_KEY + 4);
        assert_eq!(key.get(id.len()), Some(&0));
        assert_eq!(
            version_of(&key, &[], id.len() + 1).ok(),
            Some(ObjectVersion {
                org,
                modified: Timestamp(42),
                row: row.to_vec(),
                item: 3,
                offset: None,
            })
        );
        assert_eq!(
            version_of(&key, &[0, 0, 1, 2], id.len() + 1)
                .ok()
                .and_then(|version| version.offset),
            Some(258)
        );
        assert!(version_of(&key[..key.len() - 1], &[], id.len() + 1).is_err());
        assert!(version_of(&key, &[1, 2], id.len() + 1).is_err());
    }

    /// Indexes every entry of `store`, each entry `n` (from 0) holding the objects
    /// `ids(n)`, `per_call` entries per catch-up.
    fn index_all(index: &ObjectIndex, ids: impl Fn(u64) -> Vec<String>, per_call: usize) {
        let objects = |row: &AddedRow| {
            Ok(ids(row.entry.entry().seq - 1)
                .into_iter()
                .enumerate()
                .map(|(item, id)| IndexedObject {
                    id,
                    org: PublicKey([9; 32]),
                    modified: Timestamp(1),
                    item: u32::try_from(item).unwrap_or(u32::MAX),
                    offset: None,
                })
                .collect())
        };
        let end = index.store.last_added_key().unwrap();
        while index.reached().unwrap() != end {
            index.catch_up(per_call, objects).unwrap();
        }
    }

    #[test]
    fn ids_with_several_rows_are_told_from_ids_held_once() {
        use threatmesh_protocol::testing::{FEDERATION, T0, body, key};
        let store = Store::temporary();
        let mut head = None;
        // More entries than one batch reads, so repeats meet in one batch, across
        // batches and across calls.
        let entries = u64::try_from(ROWS_PER_BATCH * 3).unwrap();
        for seq in 1..=entries {
            let entry = threatmesh_protocol::SignedEntry::next(
                &key(1),
                FEDERATION,
                head.as_ref(),
                Timestamp(T0.0 + seq),
                body(1),
            )
            .unwrap();
            store.ingest(&entry, PublicKey([9; 32]), T0).unwrap();
            head = Some(entry.head());
        }
        let index = ObjectIndex::new(&store, None, Arc::default());
        // Entry n holds `unique-n`; every entry holds `everywhere`; `twice-n` is in entry
        // n and in the entry one batch and a bit later; `inside` twice in entry 0.
        let last = entries - 1;
        let stride = u64::try_from(ROWS_PER_BATCH).unwrap() + 3;
        index_all(
            &index,
            |n| {
                let mut ids = vec![format!("unique-{n}"), "everywhere".to_owned()];
                ids.push(format!("twice-{n}"));
                if n >= stride {
                    ids.push(format!("twice-{}", n - stride));
                }
                if n == 0 {
                    ids.extend(["inside".to_owned(), "inside".to_owned()]);
                }
                ids
            },
            ROWS_PER_BATCH + 5,
        );
        for n in [0, 1, last / 2, last] {
            assert!(
                !index.has_several_rows(&format!("unique-{n}")).unwrap(),
                "{n}"
            );
        }
        assert!(index.has_several_rows("everywhere").unwrap());
        assert!(index.has_several_rows("inside").unwrap());
        for n in 0..=last {
            let twice = n + stride <= last;
            assert_eq!(
                index.has_several_rows(&format!("twice-{n}")).unwrap(),
                twice,
                "twice-{n}"
            );
        }
        assert!(!index.has_several_rows("never-indexed").unwrap());
    }

    #[test]
    fn the_tree_name_says_the_layout_and_the_organisation() {
        assert_eq!(tree_name(None), "taxii-objects-v4-none");
        let org = PublicKey([7; 32]);
        assert_eq!(tree_name(Some(org)), format!("taxii-objects-v4-{org}"));
    }
}
