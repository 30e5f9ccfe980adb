//! The node's durable store: every entry it accepted, its feeds, and an indicator index that
//! answers "do we know this value?" in microseconds.
//!
//! Everything lives in one sled tree under one-byte namespaces (`keys.rs`), so accepting an
//! entry (the entry, its feed slot, the feed's state, one index record per item, the
//! added-time index, the counters) is one atomic batch. Writers take a short lock around
//! the read-check-write of a batch, so duplicates and equivocation are decided without
//! races, then wait for a group flush (`flush.rs`) before reporting success: an ingest that
//! returned Ok survives `kill -9` and power loss. The two steps can also be taken apart:
//! [`Store::apply`] makes an entry readable and hands out a [`Ticket`], and
//! [`Store::wait_durable`] returns once the entry is on disk, so the network can forward an
//! entry before its fsync and many writes can share one. sled recovers a prefix of the
//! batches applied, so a crash between the two steps loses the newest entries, never one
//! in the middle.
//!
//! Sealed entries are stored like the others. A node whose organisation is a recipient
//! opens one before storing it and hands the bundle it read to [`Store::ingest_opened`]:
//! the store indexes it and keeps it beside the entry (in the clear: encryption at rest is
//! the disk's business, as for every other entry), so readers get it back with
//! [`Store::readable`] without the key. Other nodes index nothing of a sealed entry. One
//! addressed to this organisation that did not open (the node lacked the key it was
//! sealed to) is marked unread ([`Reading::Unopened`]); once a key is added, the network
//! walks those ([`Store::unread_after`]) and hands each bundle it can now open to
//! [`Store::read_later`], which indexes it as if it had opened on arrival.
//!
//! A full disk must not break the store. sled marks its whole database failed after one
//! write error, and from then on even some reads fail, so the store never lets sled reach
//! the end of the disk: before every write it checks the free space of the filesystem and
//! refuses the write ([`StoreError::DiskFull`]) while less than the reserve
//! ([`Options::reserve_bytes`]) is left. Reads are untouched, and writes resume by
//! themselves once space is freed. The reserve also covers what sled writes on its own
//! (page rewrites, snapshots) and charters, which are written whatever the free space,
//! since a revocation must not wait for a disk to be cleaned up. If a write fails anyway (a
//! quota, an I/O error), sled's memory may be ahead of its disk: the store refuses writes,
//! and the next write that finds room closes sled and reopens the database from disk
//! (`Store::recover`) rather than build on that memory.
//!
//! The store trusts what it is given: signatures and the charter are checked before
//! [`Store::ingest`]. What it decides itself is where an entry sits in its feed: stored,
//! duplicate, after a gap, or equivocation. Revocation and expiry are worked out at lookup
//! time from what is stored, so the answer does not depend on the order entries arrived in,
//! and signed data is never deleted.
//!
//! # Layout
//!
//! `Store` is one type; each file below holds one `impl Store` block for one job:
//!
//! - `mod.rs`: [`Store`], [`Options`], [`Store::open`] and the database handle.
//! - `error.rs`: [`StoreError`].
//! - `health.rs`: durability and disk health: waiting for the group flush, the free-space
//!   reserve, refusing writes after a failure and reopening from disk ([`Space`]).
//! - `ingest.rs`: deciding what an entry is and writing it: [`Store::apply`] and its
//!   variants, the batch plan, the indicator index records, sealed entries read later.
//! - `query.rs`: answers about values and entries: [`Store::lookup`], [`Store::entry`],
//!   [`Store::readable`].
//! - `added.rs`: the added-time index, read in the order entries were accepted
//!   ([`AddedStart`], [`Store::added_rows`] and friends).
//! - `feeds.rs`: feeds and their heads, gaps and equivocations, and the pages of a feed
//!   served to peers ([`Store::range`]).
//! - `charters.rs`: the charters kept ([`Store::put_charter`], [`Store::latest_charter`]).
//! - `stats.rs`: counters and sizes ([`Stats`]).
//! - `objects.rs`: the TAXII object index, kept in its own tree beside the store's
//!   (`ObjectIndex`).
//! - `keys.rs`, `records.rs`: the on-disk layout: keys, and the records under them.
//! - `migrate.rs`: moving a store written by an older schema to this one, on open.
//! - `flush.rs`: the group flush that lets concurrent writers share one fsync.

mod added;
mod charters;
mod error;
mod feeds;
mod flush;
mod health;
mod ingest;
mod keys;
mod migrate;
mod objects;
mod query;
mod reclaim;
mod records;
mod stats;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, RwLock};

use threatmesh_protocol::PublicKey;

pub use added::{AddedHeader, AddedItem, AddedPage, AddedPayload, AddedRow, AddedStart};
pub use error::StoreError;
pub use feeds::{FeedState, Range};
pub use flush::Ticket;
pub use health::Space;
pub use ingest::{Applied, Ingest, Reading};
pub(crate) use objects::{CatchUpLock, IndexedObject, ObjectIndex, ObjectVersion};
pub use query::{Assertion, Lookup, SightingRecord, State};
pub use stats::Stats;

use flush::GroupFlush;
use health::Failures;

/// The on-disk layout version this code reads and writes.
/// 2: compact index records (`keys.rs`); a schema 1 store is migrated on open.
pub const SCHEMA_VERSION: u32 = 2;

/// Default memory for the page cache ([`Options::cache_bytes`]): lookups stay in the
/// microseconds with it (node/benches/store.rs); operators can raise it.
pub const DEFAULT_CACHE_BYTES: u64 = 64 * 1024 * 1024;

/// How much memory a byte of sled's `cache_capacity` takes. sled counts its cache in the
/// bytes its pages take on disk, and evicts by that count; a page read into memory takes
/// more (keys and values as separate allocations, 16 keys a leaf). Measured on a store of
/// 1,000,000 indicators (`STORE_BENCH_CACHE_MIB` 4, 8, 16 with sled given the whole
/// figure): resident memory grew 3.8 MiB per MiB of `cache_capacity`, above 53 MiB with
/// no cache. So sled is given a quarter of [`Options::cache_bytes`], and the setting is
/// about the memory the cache takes.
const MEMORY_PER_SLED_CACHE_BYTE: u64 = 4;

/// Default free space kept on the store's filesystem: writes are refused below it.
pub const DEFAULT_RESERVE_BYTES: u64 = 256 * 1024 * 1024;

/// How often, and how long apart, opening retries a database whose lock is still held
/// (2 s in all): long enough for sled's writers to finish, short enough that a second
/// node started on the same directory fails promptly.
const LOCK_ATTEMPTS: u32 = 40;
const LOCK_RETRY: std::time::Duration = std::time::Duration::from_millis(50);

/// How to open a store.
#[derive(Debug, Clone)]
pub struct Options {
    /// Memory for the page cache, in bytes (about: sled is given a quarter of it, as a
    /// page in memory takes about four times what sled counts for it).
    pub cache_bytes: u64,
    /// Delete the store when it is dropped (tests).
    pub temporary: bool,
    /// Free space to keep on the store's filesystem: a write that would start with less
    /// left is refused with [`StoreError::DiskFull`]. 0 turns the check off.
    pub reserve_bytes: u64,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            cache_bytes: DEFAULT_CACHE_BYTES,
            temporary: false,
            reserve_bytes: DEFAULT_RESERVE_BYTES,
        }
    }
}

/// A handle to the store; clones share it.
#[derive(Debug, Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// `None` only while a reopen after a failed write did not succeed.
    db: RwLock<Option<sled::Db>>,
    /// How the database was opened, to open it again.
    config: sled::Config,
    /// A temporary database vanishes when closed, so it is never reopened.
    temporary: bool,
    path: PathBuf,
    /// Held while a batch is decided and applied; never across a flush.
    writer: Mutex<()>,
    flush: GroupFlush,
    /// Local feed number -> (author, organisation), for turning index keys into answers.
    /// Feeds are few (one per node of the federation), so all of them stay in memory.
    feeds: RwLock<HashMap<u32, (PublicKey, PublicKey)>>,
    /// Set when a write or flush failed: see [`Store::poison_on_error`].
    poisoned: std::sync::atomic::AtomicBool,
    /// When a write last failed, and how many reopens since then were followed by
    /// another failure (for the backoff of [`Store::recover`]).
    last_failure: Mutex<Failures>,
    /// Free space to keep; see [`Store::check_space`].
    reserve: AtomicU64,
    /// The last space check found less than the reserve (for logging the change once).
    full: std::sync::atomic::AtomicBool,
    /// Writes refused for want of space, since open.
    refused_full: AtomicU64,
}

impl Store {
    /// Opens the store in `path`, creating it if the directory is empty or missing.
    pub fn open(path: impl AsRef<Path>, options: &Options) -> Result<Store, StoreError> {
        let path = path.as_ref().to_path_buf();
        let config = sled::Config::new()
            .path(&path)
            .cache_capacity(options.cache_bytes / MEMORY_PER_SLED_CACHE_BYTE)
            .temporary(options.temporary)
            // Durability comes from the group flush after each batch, not from a timer.
            .flush_every_ms(None);
        let (db, schema) = open_db(&config, &path)?;
        let store = Store {
            inner: Arc::new(Inner {
                db: RwLock::new(Some(db)),
                config,
                temporary: options.temporary,
                path,
                writer: Mutex::new(()),
                flush: GroupFlush::default(),
                feeds: RwLock::default(),
                poisoned: std::sync::atomic::AtomicBool::new(false),
                last_failure: Mutex::default(),
                reserve: AtomicU64::new(options.reserve_bytes),
                full: std::sync::atomic::AtomicBool::new(false),
                refused_full: AtomicU64::new(0),
            }),
        };
        store.load_feeds()?;
        if schema < SCHEMA_VERSION {
            store.migrate_from_v1()?;
        }
        Ok(store)
    }

    /// The database. `Err(Poisoned)` while it is closed after a failed write and not yet
    /// reopened: see [`Store::recover`]. Callers hold the clone only for one operation, so
    /// a reopen can release sled's file lock.
    fn db(&self) -> Result<sled::Db, StoreError> {
        self.inner
            .db
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
            .ok_or(StoreError::Poisoned)
    }

    /// Applies `batch`, of about `writes` keys, to `tree` (the database or a tree beside
    /// it): a failure marks the store failed ([`Store::poison_on_error`]); after it, the
    /// tree nodes the batch replaced are freed ([`reclaim::after_batch`]). Every write of
    /// the running store goes through here.
    fn apply_batch(
        &self,
        tree: &sled::Tree,
        batch: sled::Batch,
        writes: usize,
    ) -> Result<(), StoreError> {
        self.poison_on_error(tree.apply_batch(batch))?;
        reclaim::after_batch(writes);
        Ok(())
    }

    /// The database's slot, for [`Store::recover`] to empty and fill.
    fn db_slot(&self) -> std::sync::RwLockWriteGuard<'_, Option<sled::Db>> {
        // The slot holds a whole handle or none: a panic elsewhere cannot leave it half-set.
        self.inner
            .db
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A store in a new directory that vanishes when dropped: what unit tests (the store's
    /// and the network's) start from.
    #[cfg(test)]
    #[allow(clippy::unwrap_used)] // a test that cannot make a store fails here
    pub(crate) fn temporary() -> Store {
        Store::open(
            tempfile::tempdir().unwrap().keep(),
            &Options {
                temporary: true,
                ..Options::default()
            },
        )
        .unwrap()
    }

    /// Where the store lives.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// How many handles of this store exist, this one included. The database closes (and
    /// makes its last flush) when the last one is dropped, so whoever removes the store's
    /// directory waits until it holds the last handle: sled 0.34 writes large values to
    /// files of their own in that directory, and a failed one of those writes leaves the
    /// log unable to flush ever again, so every later flush would wait forever.
    pub fn handles(&self) -> usize {
        Arc::strong_count(&self.inner)
    }

    fn lock_writer(&self) -> std::sync::MutexGuard<'_, ()> {
        // The guarded data is `()`: a panic elsewhere cannot leave it inconsistent.
        self.inner
            .writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Opens the database in `path` and checks its schema version, which it returns.
fn open_db(config: &sled::Config, path: &Path) -> Result<(sled::Db, u32), StoreError> {
    let mut attempts = 0;
    let db = loop {
        match config.open() {
            Ok(db) => break db,
            // sled's background writers keep the database, and its lock file, for a
            // moment after the last handle is dropped; a quick restart waits for them.
            // sled reports this as a plain I/O error; its message is the only sign.
            Err(sled::Error::Io(error))
                if error.to_string().contains("could not acquire lock")
                    && attempts < LOCK_ATTEMPTS =>
            {
                attempts += 1;
                std::thread::sleep(LOCK_RETRY);
            }
            Err(source) => {
                return Err(StoreError::Open {
                    path: path.to_path_buf(),
                    source,
                });
            }
        }
    };
    let schema = check_schema(&db, path)?;
    Ok((db, schema))
}

/// The schema version of the store in `db`: this one's, or 1 (to migrate). A new store
/// gets this one's.
fn check_schema(db: &sled::Db, path: &Path) -> Result<u32, StoreError> {
    match db.get(keys::SCHEMA)? {
        Some(bytes) => {
            let found = bytes
                .as_ref()
                .try_into()
                .map(u32::from_be_bytes)
                .map_err(|_| StoreError::corrupt(keys::SCHEMA, "schema version is not 4 bytes"))?;
            if !(1..=SCHEMA_VERSION).contains(&found) {
                return Err(StoreError::SchemaVersion {
                    path: path.to_path_buf(),
                    found,
                    expected: SCHEMA_VERSION,
                });
            }
            Ok(found)
        }
        None if db.is_empty() => {
            db.insert(keys::SCHEMA, &SCHEMA_VERSION.to_be_bytes())?;
            db.flush()?;
            Ok(SCHEMA_VERSION)
        }
        None => Err(StoreError::NotAStore {
            path: path.to_path_buf(),
        }),
    }
}

fn hash_of(key: &[u8], bytes: &[u8]) -> Result<[u8; 32], StoreError> {
    bytes.try_into().map_err(|_| {
        StoreError::corrupt(key, format!("{} bytes, expected a 32-byte id", bytes.len()))
    })
}

#[cfg(test)]
mod tests;
