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

mod flush;
mod keys;
mod records;

use std::collections::HashMap;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use serde::Serialize;
use threatmesh_protocol::bundle::{Bundle, Tlp};
use threatmesh_protocol::entry::{Body, EntryHeader, FeedHead, SignedEntry, UnverifiedEntry};
use threatmesh_protocol::item::{Confidence, Context, Item, RevocationReason};
use threatmesh_protocol::wire::{self, MAX_MESSAGE_BYTES, Message};
use threatmesh_protocol::{Hash, PublicKey, SignedCharter, Timestamp, Value};

pub use flush::Ticket;

use flush::GroupFlush;
use records::{FeedRecord, IndexRecord, What};

/// The on-disk layout version this code reads and writes.
pub const SCHEMA_VERSION: u32 = 1;

/// Default size of sled's page cache. sled's own default (1 GiB) is far more than a node
/// needs for microsecond lookups; operators can raise it.
pub const DEFAULT_CACHE_BYTES: u64 = 128 * 1024 * 1024;

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
    /// sled's page cache, in bytes.
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

/// Write failures in a row, for the reopen backoff.
#[derive(Debug, Default)]
struct Failures {
    /// When the last one happened (or a reopen was last tried).
    at: Option<std::time::Instant>,
    /// Failures since the last write that succeeded.
    in_a_row: u32,
}

/// What one ingest will write, decided under the writer lock.
struct Plan {
    batch: sled::Batch,
    outcome: Ingest,
    /// A feed seen for the first time: (number, author, organisation).
    new_feed: Option<(u32, PublicKey, PublicKey)>,
}

/// An entry applied by [`Store::apply`]: readable now, on disk once its ticket was waited
/// for.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "an applied entry is durable only once its ticket was waited for"]
pub struct Applied {
    /// What the store made of the entry.
    pub outcome: Ingest,
    /// What to wait for with [`Store::wait_durable`]: the batch that wrote the entry (for a
    /// duplicate, the last batch applied, which may be the one that wrote it).
    pub ticket: Ticket,
}

/// What the store made of an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ingest {
    /// New, and it extends what was there.
    Stored,
    /// Already held: nothing written.
    Duplicate,
    /// New and stored, but earlier entries of its feed are missing: fetch them.
    Gap {
        /// The missing seqs just before this entry.
        missing: RangeInclusive<u64>,
    },
    /// The author signed two different entries for the same place in its feed. Both are
    /// kept as evidence and the feed is flagged.
    Equivocation {
        /// The seq with two entries.
        seq: u64,
    },
    /// An entry of a feed that has ended (see [`Store::apply_ended`]) that contradicts one
    /// held: not stored, so a cut-off key cannot add evidence.
    Contradicts {
        /// The seq whose entry, or whose neighbour's link, it contradicts.
        seq: u64,
    },
}

/// A store that cannot be opened, read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// sled could not open the directory.
    #[error("cannot open the store at {path}: {source}")]
    Open {
        /// The directory.
        path: PathBuf,
        /// sled's error.
        #[source]
        source: sled::Error,
    },
    /// A store written by another version of threatmesh.
    #[error(
        "the store at {path} has schema version {found}, this threatmesh reads version {expected}; \
         use a matching threatmesh, or move the directory aside to start an empty store"
    )]
    SchemaVersion {
        /// The directory.
        path: PathBuf,
        /// The version on disk.
        found: u32,
        /// The version this code reads.
        expected: u32,
    },
    /// A sled database that is not a threatmesh store.
    #[error("{path} holds a database that is not a threatmesh store (no schema version)")]
    NotAStore {
        /// The directory.
        path: PathBuf,
    },
    /// sled failed (I/O error, disk full, ...).
    #[error("storage engine error: {0}")]
    Engine(#[from] sled::Error),
    /// The disk holding the store is nearly full: the write was refused, nothing changed.
    #[error(
        "the disk holding the store at {path} has {free_mib} MiB free, under the {reserve_mib} MiB \
         reserve: writes are refused until space is freed (reads go on)"
    )]
    DiskFull {
        /// The store's directory.
        path: PathBuf,
        /// Free space found, in MiB.
        free_mib: u64,
        /// The reserve, in MiB.
        reserve_mib: u64,
    },
    /// An earlier write failed; the store reopens from disk before it writes again.
    #[error(
        "an earlier write failed: writes are refused until the store has reopened from disk \
         (tried by a write 5 s after the failure, longer after repeated failures, once the disk \
         has room) or the node restarts"
    )]
    Poisoned,
    /// An entry of this node's own feed ([`Store::append`]) that does not follow the
    /// feed's head: nothing was written.
    #[error(
        "entry {seq} does not follow this node's own feed, which holds entries 1 to \
         {contiguous} in a row and entries up to {highest}: nothing was written (publishing \
         resumes from the feed's head once it holds every entry up to its highest)"
    )]
    NotNext {
        /// The entry's place in the feed.
        seq: u64,
        /// The feed's contiguous part when the entry was refused.
        contiguous: u64,
        /// The highest entry of the feed held.
        highest: u64,
    },
    /// Bytes on disk that do not decode.
    #[error("corrupt record under key {key}: {reason}")]
    Corrupt {
        /// The key, in hex.
        key: String,
        /// What is wrong.
        reason: String,
    },
}

impl StoreError {
    pub(crate) fn corrupt(key: &[u8], reason: impl Into<String>) -> StoreError {
        StoreError::Corrupt {
            key: threatmesh_protocol::crypto::hex_encode(key),
            reason: reason.into(),
        }
    }
}

const MIB: u64 = 1024 * 1024;

/// How long after a failed write a write may try to reopen the store; doubled for each
/// failure in a row, up to [`RECOVER_AFTER_MAX`].
const RECOVER_AFTER: std::time::Duration = std::time::Duration::from_secs(5);
const RECOVER_AFTER_MAX: std::time::Duration = std::time::Duration::from_secs(300);

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

/// Where a feed stands in this store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct FeedState {
    /// The feed's author.
    pub author: PublicKey,
    /// Every entry up to this seq is present.
    pub contiguous: u64,
    /// The highest seq present (above `contiguous` when there are gaps).
    pub highest: u64,
    /// Whether the author was caught equivocating.
    pub equivocated: bool,
}

/// Everything the store knows about one value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Lookup {
    /// The value looked up.
    pub value: Value,
    /// Every assertion of it, by any organisation.
    pub assertions: Vec<Assertion>,
    /// Every sighting of it.
    pub sightings: Vec<SightingRecord>,
}

/// One organisation's assertion that a value is malicious, and its state now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Assertion {
    /// The organisation.
    pub org: PublicKey,
    /// The node that published it.
    pub author: PublicKey,
    /// Its entry's seq in that node's feed.
    pub seq: u64,
    /// Its entry's id.
    pub entry: Hash,
    /// When the entry was created.
    pub created: Timestamp,
    /// The entry's TLP marking.
    pub tlp: Tlp,
    /// How sure the organisation is.
    pub confidence: Confidence,
    /// From when it holds.
    pub valid_from: Timestamp,
    /// Until when it holds.
    pub valid_until: Option<Timestamp>,
    /// Labels.
    pub labels: Vec<String>,
    /// Context.
    pub context: Context,
    /// Whether it still holds.
    pub state: State,
}

/// Whether an assertion still holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum State {
    /// It holds.
    Active,
    /// Past its `valid_until`.
    Expired,
    /// Withdrawn by its organisation.
    Revoked {
        /// Why.
        reason: RevocationReason,
        /// More words, if any.
        note: Option<String>,
        /// The entry that withdrew it.
        entry: Hash,
    },
}

/// One sighting of a value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SightingRecord {
    /// The organisation that saw it.
    pub org: PublicKey,
    /// The node that published the sighting.
    pub author: PublicKey,
    /// The entry's id.
    pub entry: Hash,
    /// How many times.
    pub count: u64,
    /// First time seen.
    pub first_seen: Timestamp,
    /// Last time seen.
    pub last_seen: Timestamp,
    /// More words.
    pub note: Option<String>,
}

/// What this node read of an entry it stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reading<'a> {
    /// Nothing beyond the entry itself: a clear entry, or a sealed one this node's
    /// organisation is not a recipient of.
    Entry,
    /// The bundle of a sealed entry this node opened (or sealed itself): indexed like a
    /// clear bundle and kept beside the entry.
    Opened(&'a Bundle),
    /// A sealed entry addressed to this node's organisation that did not open with the
    /// keys the node holds: stored unread, and marked so it is tried again when a key is
    /// added.
    Unopened,
}

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

/// A page of entries in acceptance order, from [`Store::added_page`].
#[derive(Debug, Clone)]
pub struct AddedPage {
    /// The entries, with the time each was accepted.
    pub entries: Vec<(Timestamp, SignedEntry)>,
    /// The cursor to pass for the next page; `None` on the last.
    pub next: Option<Vec<u8>>,
}

/// Where [`Store::added_rows`] starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddedStart<'a> {
    /// At the first entry accepted.
    First,
    /// At the first entry accepted after this time.
    After(Timestamp),
    /// At the row with this key.
    At(&'a [u8]),
    /// At the row after this key.
    Following(&'a [u8]),
}

/// One row of the added-time index.
#[derive(Debug, Clone)]
pub struct AddedRow {
    /// The row's key: an opaque cursor for [`AddedStart`].
    pub key: Vec<u8>,
    /// When this node accepted the entry.
    pub added: Timestamp,
    /// The entry.
    pub entry: SignedEntry,
}

impl AddedStart<'_> {
    /// The first key of the added-time index at or after this start.
    fn first_key(&self) -> Vec<u8> {
        match self {
            AddedStart::First => vec![keys::ADDED],
            AddedStart::After(after) => {
                keys::added(Timestamp(after.0.saturating_add(1)), 0).to_vec()
            }
            AddedStart::At(key) => key.to_vec(),
            AddedStart::Following(key) => [key, &[0][..]].concat(),
        }
    }
}

/// A row of the added-time index with only the header of its entry: what a reader that
/// needs author and times gets without decoding and validating the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddedHeader {
    /// The row's key: an opaque cursor for [`AddedStart`].
    pub key: Vec<u8>,
    /// When this node accepted the entry.
    pub added: Timestamp,
    /// The entry's header.
    pub header: EntryHeader,
}

/// A row of the added-time index with its entry's gossip payload, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddedPayload {
    /// The row's key: an opaque cursor for [`AddedStart`].
    pub key: Vec<u8>,
    /// When this node accepted the entry.
    pub added: Timestamp,
    /// The entry's gossip payload, exactly as signed (its SHA-256 is the entry's id).
    pub payload: Vec<u8>,
}

/// A page of a feed, for a sync response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    /// The entries' gossip payloads, in seq order.
    pub payloads: Vec<Vec<u8>>,
    /// Whether more entries of the requested range are held after the last one.
    pub more: bool,
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
    /// Opens the store in `path`, creating it if the directory is empty or missing.
    pub fn open(path: impl AsRef<Path>, options: &Options) -> Result<Store, StoreError> {
        let path = path.as_ref().to_path_buf();
        let config = sled::Config::new()
            .path(&path)
            .cache_capacity(options.cache_bytes)
            .temporary(options.temporary)
            // Durability comes from the group flush after each batch, not from a timer.
            .flush_every_ms(None);
        let db = open_db(&config, &path)?;
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
        Ok(store)
    }

    /// Fills the in-memory map of feed numbers from the store.
    fn load_feeds(&self) -> Result<(), StoreError> {
        let feeds = self
            .feed_records()?
            .into_iter()
            .map(|(author, feed)| (feed.number, (author, feed.org)))
            .collect();
        *self.feeds_write() = feeds;
        Ok(())
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

    /// The database's slot, for [`Store::recover`] to empty and fill.
    fn db_slot(&self) -> std::sync::RwLockWriteGuard<'_, Option<sled::Db>> {
        // The slot holds a whole handle or none: a panic elsewhere cannot leave it half-set.
        self.inner
            .db
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Where the store lives.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Accepts a verified entry by a node of `org`, received at `now`. Atomic, idempotent,
    /// and on disk when it returns Ok, including when it answers `Duplicate`. A sealed
    /// entry is kept unread: see [`Store::ingest_opened`].
    pub fn ingest(
        &self,
        entry: &SignedEntry,
        org: PublicKey,
        now: Timestamp,
    ) -> Result<Ingest, StoreError> {
        self.ingest_opened(entry, org, Reading::Entry, now)
    }

    /// [`Store::ingest`], with what this node read of a sealed entry: the bundle it opened
    /// (or sealed itself) is indexed like a clear bundle and kept beside the entry, in the
    /// same batch; one that did not open is marked for a later try. Ignored for a clear
    /// entry.
    pub fn ingest_opened(
        &self,
        entry: &SignedEntry,
        org: PublicKey,
        opened: Reading<'_>,
        now: Timestamp,
    ) -> Result<Ingest, StoreError> {
        let applied = self.apply(entry, org, opened, now)?;
        self.wait_durable(applied.ticket)?;
        Ok(applied.outcome)
    }

    /// The first half of [`Store::ingest_opened`]: decides what `entry` is and applies its
    /// batch, so it is readable at once, but does not wait for the disk. The entry is
    /// durable once [`Store::wait_durable`] returned Ok for the ticket; a crash before
    /// that may lose it (and every entry applied after it), never an entry before it.
    /// A duplicate, like in `ingest_opened`, is on disk only once its ticket was waited for.
    pub fn apply(
        &self,
        entry: &SignedEntry,
        org: PublicKey,
        opened: Reading<'_>,
        now: Timestamp,
    ) -> Result<Applied, StoreError> {
        self.writable()?;
        let _writer = self.lock_writer();
        self.apply_locked(entry, org, opened, now)
    }

    /// [`Store::apply`] for an entry of a feed the charter has ended (a cutoff, or a
    /// member out of standing), other than the entry its cutoff names (the charter's word,
    /// applied like any entry): such a feed is closed, so the entry is stored only if it
    /// fills a place the node does not hold yet and agrees with the entries held on both
    /// sides of it; otherwise nothing is written and the outcome is
    /// [`Ingest::Contradicts`]. An author whose key is cut off (stolen, or a revoked
    /// member's) can sign any number of backdated entries below the cutoff; this keeps
    /// each such feed to at most one entry per seq, while entries it signed before the
    /// cutoff that the node had simply not seen still arrive. Decided under the writer
    /// lock, so two contradicting entries racing for one empty place store only one.
    pub fn apply_ended(
        &self,
        entry: &SignedEntry,
        org: PublicKey,
        opened: Reading<'_>,
        now: Timestamp,
    ) -> Result<Applied, StoreError> {
        self.writable()?;
        let _writer = self.lock_writer();
        if let Some(seq) = self.contradiction(entry)? {
            return Ok(Applied {
                outcome: Ingest::Contradicts { seq },
                ticket: self.inner.flush.last_applied(),
            });
        }
        self.apply_locked(entry, org, opened, now)
    }

    /// The seq at which `signed` disagrees with what is held of its feed: another entry
    /// at its place, or a neighbour that does not link to it. `None` for a duplicate.
    fn contradiction(&self, signed: &SignedEntry) -> Result<Option<u64>, StoreError> {
        let db = &self.db()?;
        let entry = signed.entry();
        let (author, seq) = (entry.author, entry.seq);
        if db.contains_key(keys::entry(&signed.id()))? {
            return Ok(None);
        }
        if db.contains_key(keys::feed(&author, seq))? {
            return Ok(Some(seq));
        }
        if seq > 1
            && let Some(before) = db.get(keys::feed(&author, seq - 1))?
            && Some(before.as_ref()) != entry.prev.as_ref().map(|prev| &prev.0[..])
        {
            return Ok(Some(seq - 1));
        }
        if let Some(after) = db.get(keys::feed(&author, seq + 1))? {
            let after_id = Hash(hash_of(&keys::feed(&author, seq + 1), &after)?);
            let next_prev = db
                .get(keys::entry(&after_id))?
                .and_then(|payload| threatmesh_protocol::entry::EntryHeader::peek(&payload).ok())
                .map(|header| header.prev);
            if next_prev.is_some_and(|prev| prev != Some(signed.id())) {
                return Ok(Some(seq));
            }
        }
        Ok(None)
    }

    /// [`Store::apply`] for an entry this node just signed as the next of its own feed:
    /// refused with [`StoreError::NotNext`], with nothing written, unless it follows the
    /// feed's contiguous head and nothing is held beyond that head. Checked under the
    /// writer lock, so an entry of the feed arriving from a peer meanwhile (one this node
    /// signed before a crash and lost) cannot make the feed fork.
    pub fn append(
        &self,
        entry: &SignedEntry,
        org: PublicKey,
        opened: Reading<'_>,
        now: Timestamp,
    ) -> Result<Ticket, StoreError> {
        self.writable()?;
        let _writer = self.lock_writer();
        let signed = entry.entry();
        let (contiguous, head, highest) = match self.feed_record(&signed.author)? {
            Some(feed) => (
                feed.contiguous,
                (feed.contiguous > 0).then_some(feed.contiguous_id),
                feed.highest,
            ),
            None => (0, None, 0),
        };
        if signed.seq != contiguous + 1 || signed.prev != head || highest != contiguous {
            return Err(StoreError::NotNext {
                seq: signed.seq,
                contiguous,
                highest,
            });
        }
        Ok(self.apply_locked(entry, org, opened, now)?.ticket)
    }

    /// Plans and applies one entry's batch; the caller holds the writer lock.
    fn apply_locked(
        &self,
        entry: &SignedEntry,
        org: PublicKey,
        opened: Reading<'_>,
        now: Timestamp,
    ) -> Result<Applied, StoreError> {
        Ok(match self.plan(entry, org, opened, now)? {
            // Already written, but the writer that wrote it may still be waiting for its
            // flush: a duplicate is acknowledged only once that data is on disk.
            None => Applied {
                outcome: Ingest::Duplicate,
                ticket: self.inner.flush.last_applied(),
            },
            Some(plan) => {
                // Known before its index keys become visible, so a concurrent lookup never
                // meets an unknown feed number. If the batch fails, the number is handed
                // out again and this mapping overwritten.
                if let Some((number, author, org)) = plan.new_feed {
                    self.feeds_write().insert(number, (author, org));
                }
                self.poison_on_error(self.db()?.apply_batch(plan.batch))?;
                Applied {
                    outcome: plan.outcome,
                    ticket: self.inner.flush.applied(),
                }
            }
        })
    }

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

    fn failures(&self) -> std::sync::MutexGuard<'_, Failures> {
        self.inner
            .last_failure
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A failed write or flush may leave sled's memory ahead of its disk (a batch half
    /// applied in memory, or applied but not flushed). Rather than build on that, the
    /// store refuses every later write until it has reopened from disk
    /// ([`Store::recover`]).
    fn poison_on_error<T>(&self, result: sled::Result<T>) -> Result<T, StoreError> {
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
    fn recover(&self) -> Result<(), StoreError> {
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
            Ok(db) => *self.db_slot() = Some(db),
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
    fn check_space(&self) -> Result<(), StoreError> {
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

    /// Changes the free space the store keeps (see [`Options::reserve_bytes`]).
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

    /// Decides what `entry` means for the store and builds the batch that records it.
    /// `None` for a duplicate. Runs under the writer lock.
    fn plan(
        &self,
        signed: &SignedEntry,
        org: PublicKey,
        opened: Reading<'_>,
        now: Timestamp,
    ) -> Result<Option<Plan>, StoreError> {
        let db = &self.db()?;
        let id = signed.id();
        let entry = signed.entry();
        let author = entry.author;
        let seq = entry.seq;
        if db.contains_key(keys::entry(&id))? {
            return Ok(None);
        }

        let mut batch = sled::Batch::default();
        let mut new_feed = None;
        let mut feed = match self.feed_record(&author)? {
            Some(feed) => feed,
            None => {
                let number = self.counter(keys::FEED_COUNTER)?;
                let number = u32::try_from(number)
                    .map_err(|_| StoreError::corrupt(keys::FEED_COUNTER, "more than 2^32 feeds"))?;
                batch.insert(keys::FEED_COUNTER, &u64::from(number + 1).to_be_bytes()[..]);
                batch.insert(&keys::number(number)[..], &author.0[..]);
                new_feed = Some((number, author, org));
                FeedRecord {
                    number,
                    org,
                    contiguous: 0,
                    contiguous_id: Hash::default(),
                    highest: 0,
                    equivocated: false,
                }
            }
        };
        let entry_count = self.counter(keys::ENTRY_COUNT)? + 1;
        batch.insert(&keys::entry(&id)[..], signed.payload());
        batch.insert(keys::ENTRY_COUNT, &entry_count.to_be_bytes()[..]);
        if matches!(entry.body, Body::Sealed(_)) {
            let sealed_count = self.counter(keys::SEALED_COUNT)? + 1;
            batch.insert(keys::SEALED_COUNT, &sealed_count.to_be_bytes()[..]);
        }
        let added_row = self.record_added(&mut batch, &id, now)?;

        // A second entry at a taken slot: keep it as evidence, index nothing of it.
        if db.contains_key(keys::feed(&author, seq))? {
            batch.insert(&keys::conflict(&author, seq, &id)[..], &[][..]);
            feed.equivocated = true;
            batch.insert(&keys::head(&author)[..], records::encode(&feed));
            return Ok(Some(Plan {
                batch,
                outcome: Ingest::Equivocation { seq },
                new_feed,
            }));
        }

        batch.insert(&keys::feed(&author, seq)[..], &id.0[..]);
        let mut outcome = Ingest::Stored;
        // The neighbours this entry links to must agree with it; if not, the author signed
        // two different entries for one of the two slots.
        if seq > 1
            && let Some(before) = db.get(keys::feed(&author, seq - 1))?
            && Some(before.as_ref()) != entry.prev.as_ref().map(|prev| &prev.0[..])
        {
            feed.equivocated = true;
            outcome = Ingest::Equivocation { seq: seq - 1 };
        }
        if let Some(after) = db.get(keys::feed(&author, seq + 1))? {
            let after_id = Hash(hash_of(&keys::feed(&author, seq + 1), &after)?);
            // Only its `prev` matters: read the header, not the whole entry.
            let next_prev = db
                .get(keys::entry(&after_id))?
                .and_then(|payload| threatmesh_protocol::entry::EntryHeader::peek(&payload).ok())
                .map(|header| header.prev);
            if next_prev.is_some_and(|prev| prev != Some(id)) {
                feed.equivocated = true;
                outcome = Ingest::Equivocation { seq };
            }
        }

        // Advance the contiguous head across this entry and any already held after it.
        feed.highest = feed.highest.max(seq);
        if seq == feed.contiguous + 1 {
            feed.contiguous = seq;
            feed.contiguous_id = id;
            while let Some(next) = db.get(keys::feed(&author, feed.contiguous + 1))? {
                feed.contiguous += 1;
                feed.contiguous_id = Hash(hash_of(&keys::feed(&author, feed.contiguous), &next)?);
            }
        } else if seq > feed.contiguous + 1 && outcome == Ingest::Stored {
            // Only the seqs right before this entry: earlier gaps were reported already.
            let first_missing = self.highest_below(&author, seq)?.max(feed.contiguous) + 1;
            if first_missing < seq {
                outcome = Ingest::Gap {
                    missing: first_missing..=seq - 1,
                };
            }
        }
        batch.insert(&keys::head(&author)[..], records::encode(&feed));

        let readable = match (&entry.body, opened) {
            (Body::Bundle(bundle), _) => Some(bundle),
            (Body::Sealed(_), Reading::Opened(bundle)) => {
                batch.insert(&keys::opened(&id)[..], encode_opened(bundle));
                Some(bundle)
            }
            (Body::Sealed(_), Reading::Unopened) => {
                batch.insert(&keys::unread(&id)[..], &added_row[..]);
                let unread = self.counter(keys::UNREAD_COUNT)? + 1;
                batch.insert(keys::UNREAD_COUNT, &unread.to_be_bytes()[..]);
                None
            }
            (Body::Sealed(_), Reading::Entry) => None,
        };
        let records = readable.map_or(0, |bundle| {
            Store::index(&mut batch, entry, bundle, feed.number)
        });
        let record_count = self.counter(keys::RECORD_COUNT)? + records;
        batch.insert(keys::RECORD_COUNT, &record_count.to_be_bytes()[..]);
        Ok(Some(Plan {
            batch,
            outcome,
            new_feed,
        }))
    }

    /// Adds one index record per item of `bundle`, the readable content of `entry`, to
    /// `batch`; returns how many.
    fn index(
        batch: &mut sled::Batch,
        entry: &threatmesh_protocol::Entry,
        bundle: &Bundle,
        feed: u32,
    ) -> u64 {
        let mut count = 0;
        for (position, item) in bundle.items.iter().enumerate() {
            let what = match item {
                Item::Indicator(indicator) => What::Assertion {
                    confidence: indicator.confidence,
                    valid_from: indicator.valid_from,
                    valid_until: indicator.valid_until,
                    labels: indicator.labels.clone(),
                    context: indicator.context.clone(),
                },
                Item::Revocation(revocation) => What::Revocation {
                    reason: revocation.reason,
                    note: revocation.note.clone(),
                },
                Item::Sighting(sighting) => What::Sighting {
                    count: sighting.count,
                    first_seen: sighting.first_seen,
                    last_seen: sighting.last_seen,
                    note: sighting.note.clone(),
                },
            };
            let record = IndexRecord {
                created: entry.created,
                tlp: bundle.tlp,
                what,
            };
            // Bundles hold at most MAX_ITEMS_PER_BUNDLE items, far below u32::MAX.
            let position = u32::try_from(position).unwrap_or(u32::MAX);
            let key = keys::index(item.value(), feed, entry.seq, position);
            batch.insert(key, records::encode(&record));
            count += 1;
        }
        count
    }

    /// Adds `id`'s row to the added-time index in `batch`; returns the row's key.
    fn record_added(
        &self,
        batch: &mut sled::Batch,
        id: &Hash,
        now: Timestamp,
    ) -> Result<[u8; 17], StoreError> {
        let counter = self.counter(keys::ADDED_COUNTER)? + 1;
        batch.insert(keys::ADDED_COUNTER, &counter.to_be_bytes()[..]);
        // Rows must sort in the order they are written: readers page the index with
        // cursors (TAXII `next`, `/api/v1/entries`) and the TAXII object index resumes
        // after the last row it saw. `now` was read by one of several ingest workers, outside
        // the writer lock, and the clock may step back: never go below the last row.
        let at = now.max(self.last_added()?);
        let row = keys::added(at, counter);
        batch.insert(&row[..], &id.0[..]);
        Ok(row)
    }

    /// Up to `limit` sealed entries for this organisation that did not open yet, in id
    /// order, after `after` (from the first when `None`).
    pub fn unread_after(
        &self,
        after: Option<&Hash>,
        limit: usize,
    ) -> Result<Vec<Hash>, StoreError> {
        let db = self.db()?;
        let start = match after {
            Some(id) => std::ops::Bound::Excluded(keys::unread(id).to_vec()),
            None => std::ops::Bound::Included(vec![keys::UNREAD]),
        };
        let end = std::ops::Bound::Excluded(vec![keys::UNREAD + 1]);
        let mut ids = Vec::new();
        for row in db.range::<Vec<u8>, _>((start, end)).take(limit) {
            let (key, _) = row?;
            let id = key
                .get(1..33)
                .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
                .ok_or_else(|| StoreError::corrupt(&key, "an unread key without an entry id"))?;
            ids.push(Hash(id));
        }
        Ok(ids)
    }

    /// Stores `bundle`, read from the sealed entry `id` after it arrived (a key it was
    /// sealed to was added since): indexed as a bundle opened on arrival would have been,
    /// and the entry's row moved to the end of the added-time index, so readers paging it
    /// (exports, TAXII) meet the entry again, readable now. `None` when the entry was not
    /// waiting to be opened (opened meanwhile, or not held); the ticket otherwise: on disk
    /// once waited for, and tried again at the next start if lost in a crash before.
    pub fn read_later(
        &self,
        id: &Hash,
        bundle: &Bundle,
        now: Timestamp,
    ) -> Result<Option<Ticket>, StoreError> {
        self.writable()?;
        let _writer = self.lock_writer();
        let db = self.db()?;
        let unread_key = keys::unread(id);
        let Some(row) = db.get(unread_key)? else {
            return Ok(None);
        };
        let Some(signed) = self.entry(id)? else {
            return Err(StoreError::corrupt(
                &unread_key,
                "an unread mark without its entry",
            ));
        };
        let entry = signed.entry();
        let feed = self
            .feed_record(&entry.author)?
            .ok_or_else(|| StoreError::corrupt(&unread_key, "an unread entry without its feed"))?;
        let mut batch = sled::Batch::default();
        batch.remove(&unread_key[..]);
        let unread = self.counter(keys::UNREAD_COUNT)?.saturating_sub(1);
        batch.insert(keys::UNREAD_COUNT, &unread.to_be_bytes()[..]);
        batch.insert(&keys::opened(id)[..], encode_opened(bundle));
        batch.remove(row);
        self.record_added(&mut batch, id, now)?;
        let records = Store::index(&mut batch, entry, bundle, feed.number);
        let record_count = self.counter(keys::RECORD_COUNT)? + records;
        batch.insert(keys::RECORD_COUNT, &record_count.to_be_bytes()[..]);
        self.poison_on_error(db.apply_batch(batch))?;
        Ok(Some(self.inner.flush.applied()))
    }

    /// The key of the newest row of the added-time index, if any.
    pub fn last_added_key(&self) -> Result<Option<Vec<u8>>, StoreError> {
        match self.db()?.scan_prefix([keys::ADDED]).next_back() {
            None => Ok(None),
            Some(row) => Ok(Some(row?.0.to_vec())),
        }
    }

    /// The time of the newest row of the added-time index (the epoch when empty).
    fn last_added(&self) -> Result<Timestamp, StoreError> {
        match self.last_added_key()? {
            None => Ok(Timestamp::EPOCH),
            Some(key) => keys::time_of_added_key(&key)
                .ok_or_else(|| StoreError::corrupt(&key, "short added key")),
        }
    }

    /// The highest seq held of `author`'s feed below `seq` (0: none).
    fn highest_below(&self, author: &PublicKey, seq: u64) -> Result<u64, StoreError> {
        let start = keys::feed(author, 0);
        let end = keys::feed(author, seq);
        match self.db()?.range(start..end).next_back() {
            None => Ok(0),
            Some(found) => {
                let (key, _) = found?;
                keys::seq_of_feed_key(&key)
                    .ok_or_else(|| StoreError::corrupt(&key, "short feed key"))
            }
        }
    }

    fn counter(&self, key: &[u8]) -> Result<u64, StoreError> {
        match self.db()?.get(key)? {
            None => Ok(0),
            Some(bytes) => records::decode_u64(key, &bytes),
        }
    }

    fn feed_record(&self, author: &PublicKey) -> Result<Option<FeedRecord>, StoreError> {
        let key = keys::head(author);
        self.db()?
            .get(key)?
            .map(|bytes| records::decode(&key, &bytes))
            .transpose()
    }

    fn feeds_write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<u32, (PublicKey, PublicKey)>> {
        // Every update inserts one whole pair: a panic elsewhere cannot leave it half-done.
        self.inner
            .feeds
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The organisation `author` published for when this node accepted its feed. Exports
    /// name publishers by it, so they stay stable when a newer charter drops the node.
    pub fn organisation_of(&self, author: &PublicKey) -> Option<PublicKey> {
        self.inner
            .feeds
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .values()
            .find(|(feed_author, _)| feed_author == author)
            .map(|(_, organisation)| *organisation)
    }

    /// Applies `batch` to the tree named `tree` (see [`Store::tree`]) as the store writes: only when
    /// [`Store::writable`], on disk when it returns (so no unflushed index writes pile up
    /// in sled's buffers past the free-space check), and a failure marks the store failed
    /// at once (sled fails the whole database after one write error, whichever tree).
    /// The tree is named, not passed: a handle held across [`Store::writable`] would keep
    /// the old database open and make a reopen fail.
    pub fn apply_beside(&self, tree: &str, batch: sled::Batch) -> Result<(), StoreError> {
        self.writable()?;
        let ticket = {
            let _writer = self.lock_writer();
            let tree = self.tree(tree)?;
            self.poison_on_error(tree.apply_batch(batch))?;
            self.inner.flush.applied()
        };
        self.wait_durable(ticket)
    }

    /// A named sled tree in the store's database, for an index kept beside the store (it
    /// shares the store's flushes). Names starting with `__` are sled's own; write to it
    /// with [`Store::apply_beside`].
    pub fn tree(&self, name: &str) -> Result<sled::Tree, StoreError> {
        Ok(self.db()?.open_tree(name)?)
    }

    /// Drops every tree kept beside the store (see [`Store::tree`]) whose name starts with
    /// `prefix`, except `keep`: an index rebuilt under a new name frees the old one. Only
    /// when [`Store::writable`].
    pub fn drop_beside(&self, prefix: &str, keep: &str) -> Result<(), StoreError> {
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

    /// The author and organisation of local feed `number`.
    fn feed_of_number(
        &self,
        key: &[u8],
        number: u32,
    ) -> Result<(PublicKey, PublicKey), StoreError> {
        self.inner
            .feeds
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&number)
            .copied()
            .ok_or_else(|| StoreError::corrupt(key, format!("unknown feed number {number}")))
    }

    /// The id of the entry at `(author, seq)`.
    fn id_at(&self, author: &PublicKey, seq: u64) -> Result<Hash, StoreError> {
        let key = keys::feed(author, seq);
        let id = self
            .db()?
            .get(key)?
            .ok_or_else(|| StoreError::corrupt(&key, "indexed entry has no feed slot"))?;
        Ok(Hash(hash_of(&key, &id)?))
    }

    fn lock_writer(&self) -> std::sync::MutexGuard<'_, ()> {
        // The guarded data is `()`: a panic elsewhere cannot leave it inconsistent.
        self.inner
            .writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether the entry with id `id` is held.
    pub fn contains(&self, id: &Hash) -> Result<bool, StoreError> {
        Ok(self.db()?.contains_key(keys::entry(id))?)
    }

    /// The entry with id `id`.
    pub fn entry(&self, id: &Hash) -> Result<Option<SignedEntry>, StoreError> {
        let key = keys::entry(id);
        self.db()?
            .get(key)?
            .map(|payload| open_stored(&key, payload.to_vec()))
            .transpose()
    }

    /// The bundle this node read from the sealed entry `id`, if it is a recipient and
    /// opened it. `None` for clear entries: see [`Store::readable`].
    pub fn opened(&self, id: &Hash) -> Result<Option<Bundle>, StoreError> {
        let key = keys::opened(id);
        self.db()?
            .get(key)?
            .map(|bytes| decode_opened(&key, &bytes))
            .transpose()
    }

    /// What this node can read of `entry`: a clear entry's bundle, the bundle of a sealed
    /// entry its organisation opened, or `None` for a sealed entry it cannot read. Every
    /// reader that shows items (exports, STIX/MISP/CSV, TAXII) goes through this, so no
    /// sealed content reaches a non-recipient.
    pub fn readable(&self, entry: &SignedEntry) -> Result<Option<Bundle>, StoreError> {
        match &entry.entry().body {
            Body::Bundle(bundle) => Ok(Some(bundle.clone())),
            Body::Sealed(_) => self.opened(&entry.id()),
        }
    }

    /// Everything known about `value` at time `now`.
    pub fn lookup(&self, value: &Value, now: Timestamp) -> Result<Lookup, StoreError> {
        let mut assertions = Vec::new();
        let mut revocations: Vec<(PublicKey, Timestamp, RevocationReason, Option<String>, Hash)> =
            Vec::new();
        let mut sightings = Vec::new();
        for found in self.db()?.scan_prefix(keys::value_prefix(value)) {
            let (key, bytes) = found?;
            let (number, seq) = keys::feed_seq_of_index_key(&key)
                .ok_or_else(|| StoreError::corrupt(&key, "short index key"))?;
            let (author, org) = self.feed_of_number(&key, number)?;
            let entry = self.id_at(&author, seq)?;
            let record: IndexRecord = records::decode(&key, &bytes)?;
            match record.what {
                What::Assertion {
                    confidence,
                    valid_from,
                    valid_until,
                    labels,
                    context,
                } => assertions.push(Assertion {
                    org,
                    author,
                    seq,
                    entry,
                    created: record.created,
                    tlp: record.tlp,
                    confidence,
                    valid_from,
                    valid_until,
                    labels,
                    context,
                    state: State::Active,
                }),
                What::Revocation { reason, note } => {
                    revocations.push((org, record.created, reason, note, entry));
                }
                What::Sighting {
                    count,
                    first_seen,
                    last_seen,
                    note,
                } => sightings.push(SightingRecord {
                    org,
                    author,
                    entry,
                    count,
                    first_seen,
                    last_seen,
                    note,
                }),
            }
        }
        for assertion in &mut assertions {
            // The organisation's latest revocation made at or after the assertion wins.
            let revocation = revocations
                .iter()
                .filter(|(org, created, ..)| *org == assertion.org && *created >= assertion.created)
                // Ties (two nodes of one organisation revoking at the same millisecond)
                // break by entry id, so every node gives the same answer.
                .max_by_key(|(_, created, _, _, entry)| (*created, *entry));
            assertion.state = match revocation {
                Some((_, _, reason, note, entry)) => State::Revoked {
                    reason: *reason,
                    note: note.clone(),
                    entry: *entry,
                },
                None if assertion.valid_until.is_some_and(|until| until <= now) => State::Expired,
                None => State::Active,
            };
        }
        Ok(Lookup {
            value: value.clone(),
            assertions,
            sightings,
        })
    }

    /// [`Store::lookup`] for many values; values nobody mentioned are left out.
    pub fn lookup_many(&self, values: &[Value], now: Timestamp) -> Result<Vec<Lookup>, StoreError> {
        let mut found = Vec::new();
        for value in values {
            let lookup = self.lookup(value, now)?;
            if !lookup.assertions.is_empty() || !lookup.sightings.is_empty() {
                found.push(lookup);
            }
        }
        Ok(found)
    }

    /// Entries `from_seq..=to_seq` of `author`'s feed, in seq order, until adding one more
    /// would pass `limit_bytes` (the first is always included, so a page always progresses).
    ///
    /// This is what the node serves to peers, so it returns only once what it read is on
    /// disk. An entry this node signed is gossiped only once it is durable; were a peer to
    /// fetch one before that and this node to crash and lose it, the node would sign
    /// another entry for the same place in its feed, a fork.
    pub fn range(
        &self,
        author: &PublicKey,
        from_seq: u64,
        to_seq: u64,
        limit_bytes: usize,
    ) -> Result<Range, StoreError> {
        let range = self.read_range(author, from_seq, to_seq, limit_bytes)?;
        // Every batch the read saw was applied under the writer lock, and its writer took
        // its ticket before releasing the lock: once the lock is ours, the last ticket
        // covers them all.
        let ticket = {
            let _writer = self.lock_writer();
            self.inner.flush.last_applied()
        };
        self.wait_durable(ticket)?;
        Ok(range)
    }

    fn read_range(
        &self,
        author: &PublicKey,
        from_seq: u64,
        to_seq: u64,
        limit_bytes: usize,
    ) -> Result<Range, StoreError> {
        let mut payloads = Vec::new();
        let mut bytes = 0;
        if from_seq > to_seq {
            return Ok(Range {
                payloads,
                more: false,
            });
        }
        let db = self.db()?;
        for found in db.range(keys::feed(author, from_seq)..=keys::feed(author, to_seq)) {
            let (key, id) = found?;
            let id = Hash(hash_of(&key, &id)?);
            let entry_key = keys::entry(&id);
            let payload = db
                .get(entry_key)?
                .ok_or_else(|| StoreError::corrupt(&key, "feed slot names a missing entry"))?;
            if !payloads.is_empty() && bytes + payload.len() > limit_bytes {
                return Ok(Range {
                    payloads,
                    more: true,
                });
            }
            bytes += payload.len();
            payloads.push(payload.to_vec());
        }
        Ok(Range {
            payloads,
            more: false,
        })
    }

    /// One head per feed with at least its first entry: the last entry of its contiguous
    /// part. This is what a peer compares against during sync.
    pub fn heads(&self) -> Result<Vec<FeedHead>, StoreError> {
        Ok(self
            .feed_records()?
            .into_iter()
            .filter(|(_, feed)| feed.contiguous > 0)
            .map(|(author, feed)| FeedHead {
                author,
                seq: feed.contiguous,
                id: feed.contiguous_id,
            })
            .collect())
    }

    /// `author`'s head, if its feed has its first entry here: the last entry of the
    /// contiguous part. One key read, where [`Store::heads`] reads every feed.
    pub fn head(&self, author: &PublicKey) -> Result<Option<FeedHead>, StoreError> {
        Ok(self
            .feed_record(author)?
            .filter(|feed| feed.contiguous > 0)
            .map(|feed| FeedHead {
                author: *author,
                seq: feed.contiguous,
                id: feed.contiguous_id,
            }))
    }

    /// Every feed's state.
    pub fn feeds(&self) -> Result<Vec<FeedState>, StoreError> {
        Ok(self
            .feed_records()?
            .into_iter()
            .map(|(author, feed)| FeedState {
                author,
                contiguous: feed.contiguous,
                highest: feed.highest,
                equivocated: feed.equivocated,
            })
            .collect())
    }

    /// One feed's state, if any entry of it is held.
    pub fn feed(&self, author: &PublicKey) -> Result<Option<FeedState>, StoreError> {
        Ok(self.feed_record(author)?.map(|feed| FeedState {
            author: *author,
            contiguous: feed.contiguous,
            highest: feed.highest,
            equivocated: feed.equivocated,
        }))
    }

    fn feed_records(&self) -> Result<Vec<(PublicKey, FeedRecord)>, StoreError> {
        let mut feeds = Vec::new();
        for found in self.db()?.scan_prefix([keys::HEAD]) {
            let (key, bytes) = found?;
            let author = keys::author_of_head_key(&key)
                .ok_or_else(|| StoreError::corrupt(&key, "short head key"))?;
            feeds.push((author, records::decode(&key, &bytes)?));
        }
        Ok(feeds)
    }

    /// The seqs of `author`'s feed missing up to `up_to`: the gaps below the highest entry
    /// held, then everything after it.
    pub fn missing(
        &self,
        author: &PublicKey,
        up_to: u64,
    ) -> Result<Vec<RangeInclusive<u64>>, StoreError> {
        let (contiguous, highest) = self
            .feed_record(author)?
            .map_or((0, 0), |feed| (feed.contiguous, feed.highest));
        let mut missing = Vec::new();
        let mut next = contiguous + 1;
        let start = keys::feed(author, next);
        let end = keys::feed(author, up_to.min(highest));
        if next <= up_to.min(highest) {
            for found in self.db()?.range(start..=end) {
                let (key, _) = found?;
                let seq = keys::seq_of_feed_key(&key)
                    .ok_or_else(|| StoreError::corrupt(&key, "short feed key"))?;
                if seq > next {
                    missing.push(next..=seq - 1);
                }
                next = seq + 1;
            }
        }
        if next <= up_to {
            missing.push(next..=up_to);
        }
        Ok(missing)
    }

    /// The first run of seqs of `author`'s feed missing up to `up_to`, if any: it starts
    /// right after the contiguous part and ends before the next entry held. One key read,
    /// however many entries follow, so the network's event loop can plan a fetch with it.
    pub fn first_missing(
        &self,
        author: &PublicKey,
        up_to: u64,
    ) -> Result<Option<RangeInclusive<u64>>, StoreError> {
        let contiguous = self.feed_record(author)?.map_or(0, |feed| feed.contiguous);
        let first = contiguous + 1;
        if first > up_to {
            return Ok(None);
        }
        let next_held = match self
            .db()?
            .range(keys::feed(author, first)..=keys::feed(author, up_to))
            .next()
        {
            None => None,
            Some(found) => {
                let (key, _) = found?;
                Some(
                    keys::seq_of_feed_key(&key)
                        .ok_or_else(|| StoreError::corrupt(&key, "short feed key"))?,
                )
            }
        };
        Ok(match next_held {
            Some(seq) if seq == first => None,
            Some(seq) => Some(first..=seq - 1),
            None => Some(first..=up_to),
        })
    }

    /// Entries this node accepted after `after` (its own clock), oldest first, at most
    /// `limit`, with the time each was accepted. For TAXII `added_after` and exports.
    pub fn added_after(
        &self,
        after: Timestamp,
        limit: usize,
    ) -> Result<Vec<(Timestamp, SignedEntry)>, StoreError> {
        Ok(self.added_from(AddedStart::After(after), limit)?.entries)
    }

    /// Up to `limit` entries of the added-time index from `start` on, and the key of the
    /// last one when the page is full.
    fn added_from(&self, start: AddedStart<'_>, limit: usize) -> Result<AddedPage, StoreError> {
        let rows = self.added_rows(start, limit)?;
        let next = if rows.len() == limit {
            rows.last().map(|row| row.key.clone())
        } else {
            None
        };
        Ok(AddedPage {
            entries: rows.into_iter().map(|row| (row.added, row.entry)).collect(),
            next,
        })
    }

    /// A page of entries in the order this node accepted them, after `cursor` (`None`: from
    /// the first). A cursor names one entry exactly, so paging never splits or drops
    /// entries accepted in the same millisecond.
    pub fn added_page(&self, cursor: Option<&[u8]>, limit: usize) -> Result<AddedPage, StoreError> {
        let start = cursor.map_or(AddedStart::First, AddedStart::Following);
        self.added_from(start, limit)
    }

    /// Up to `limit` rows of the added-time index from `start` on, each with its key, so a
    /// reader can resume at any entry (TAXII pages may end inside an entry).
    pub fn added_rows(
        &self,
        start: AddedStart<'_>,
        limit: usize,
    ) -> Result<Vec<AddedRow>, StoreError> {
        self.added_scan(start, limit, |key, added, id, _payload| {
            let entry = self
                .entry(&id)?
                .ok_or_else(|| StoreError::corrupt(key, "added index names a missing entry"))?;
            Ok(AddedRow {
                key: key.to_vec(),
                added,
                entry,
            })
        })
    }

    /// [`Store::added_rows`] with only each entry's header, read from the front of the
    /// stored payload: the console's activity sampler reads every new entry's author and
    /// creation time on every node, and decoding whole entries for that cost more than the
    /// sample is worth.
    pub fn added_headers(
        &self,
        start: AddedStart<'_>,
        limit: usize,
    ) -> Result<Vec<AddedHeader>, StoreError> {
        self.added_scan(start, limit, |key, added, id, payload| {
            let payload = payload()?;
            let header = EntryHeader::peek(&payload)
                .map_err(|_| StoreError::corrupt(&keys::entry(&id), "unreadable entry header"))?;
            Ok(AddedHeader {
                key: key.to_vec(),
                added,
                header,
            })
        })
    }

    /// Up to `limit` rows of the added-time index from `start` on, each with its entry's
    /// gossip payload as stored, neither decoded nor checked: air-gap archives carry
    /// entries exactly as signed, and decoding a million indicators to write them back out
    /// unchanged would be most of an export's time.
    pub fn added_payloads(
        &self,
        start: AddedStart<'_>,
        limit: usize,
    ) -> Result<Vec<AddedPayload>, StoreError> {
        self.added_scan(start, limit, |key, added, _id, payload| {
            Ok(AddedPayload {
                key: key.to_vec(),
                added,
                payload: payload()?.to_vec(),
            })
        })
    }

    /// Walks up to `limit` rows of the added-time index from `start` on, giving `row` each
    /// row's key, arrival time and entry id, and a way to read the entry's stored payload
    /// (which only some readers need).
    fn added_scan<T>(
        &self,
        start: AddedStart<'_>,
        limit: usize,
        mut row: impl FnMut(
            &[u8],
            Timestamp,
            Hash,
            &dyn Fn() -> Result<sled::IVec, StoreError>,
        ) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        let start = start.first_key();
        let db = self.db()?;
        let mut rows = Vec::new();
        for item in db.range(start..).take(limit) {
            let (key, id) = item?;
            if key.first() != Some(&keys::ADDED) {
                break;
            }
            let added = keys::time_of_added_key(&key)
                .ok_or_else(|| StoreError::corrupt(&key, "short added key"))?;
            let id = Hash(hash_of(&key, &id)?);
            let payload = || {
                db.get(keys::entry(&id))?
                    .ok_or_else(|| StoreError::corrupt(&key, "added index names a missing entry"))
            };
            rows.push(row(&key, added, id, &payload)?);
        }
        Ok(rows)
    }

    /// Up to `limit` rows of the added-time index, newest first, from the row before key
    /// `before` (`None`: from the newest): each row's key (a cursor), arrival time and
    /// entry id, without reading the entries. The console's list of recent entries reads
    /// these, then only the entries it has not summarised yet.
    pub fn recent_ids(
        &self,
        before: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Timestamp, Hash)>, StoreError> {
        // A cursor is a key of the added-time index; anything else names no position.
        if before.is_some_and(|key| key.first() != Some(&keys::ADDED)) {
            return Ok(Vec::new());
        }
        let end = before.map_or_else(|| vec![keys::ADDED + 1], <[u8]>::to_vec);
        let mut rows = Vec::new();
        for row in self.db()?.range(vec![keys::ADDED]..end).rev().take(limit) {
            let (key, id) = row?;
            let added = keys::time_of_added_key(&key)
                .ok_or_else(|| StoreError::corrupt(&key, "short added key"))?;
            let id = Hash(hash_of(&key, &id)?);
            rows.push((key.to_vec(), added, id));
        }
        Ok(rows)
    }

    /// Every entry, in the order this node accepted them.
    pub fn entries(&self) -> impl Iterator<Item = Result<SignedEntry, StoreError>> + '_ {
        let (rows, closed) = match self.db() {
            Ok(db) => (Some(db.scan_prefix([keys::ADDED])), None),
            Err(error) => (None, Some(Err(error))),
        };
        closed
            .into_iter()
            .chain(rows.into_iter().flatten().map(move |row| {
                let (key, id) = row?;
                let id = Hash(hash_of(&key, &id)?);
                self.entry(&id)?
                    .ok_or_else(|| StoreError::corrupt(&key, "added index names a missing entry"))
            }))
    }

    /// The other entries held for slots where the author equivocated.
    pub fn equivocations(&self, author: &PublicKey) -> Result<Vec<(u64, Hash)>, StoreError> {
        let mut prefix = vec![keys::CONFLICT];
        prefix.extend_from_slice(&author.0);
        let mut found = Vec::new();
        for row in self.db()?.scan_prefix(prefix) {
            let (key, _) = row?;
            let seq = keys::seq_of_feed_key(&key)
                .ok_or_else(|| StoreError::corrupt(&key, "short conflict key"))?;
            let id = key
                .get(41..73)
                .and_then(|bytes| bytes.try_into().ok())
                .map(Hash)
                .ok_or_else(|| StoreError::corrupt(&key, "short conflict key"))?;
            found.push((seq, id));
        }
        Ok(found)
    }

    /// Keeps a charter (its validity, and how many of a version to keep, are the caller's
    /// business), durably, beside any other of its version. Unlike entries, a charter is
    /// written even when free space is under the reserve: it is a few KiB, and a
    /// suspension or revocation must not wait for disk space.
    pub fn put_charter(&self, charter: &SignedCharter) -> Result<(), StoreError> {
        self.recover()?;
        let ticket = {
            let _writer = self.lock_writer();
            self.poison_on_error(self.db()?.insert(
                keys::charter(charter.charter().version, &charter.id()),
                charter.to_payload(),
            ))?;
            self.inner.flush.applied()
        };
        self.wait_durable(ticket)
    }

    /// The charters after `version`, oldest version first; rivals of one version by id.
    pub fn charters_after(&self, version: u64) -> Result<Vec<SignedCharter>, StoreError> {
        let start = keys::charters_from(version.saturating_add(1));
        let mut found: Vec<SignedCharter> = Vec::new();
        for row in self.db()?.range(start..) {
            let (key, payload) = row?;
            if key.first() != Some(&keys::CHARTER) {
                break;
            }
            let charter = match wire::decode(&payload, MAX_MESSAGE_BYTES) {
                Ok(Message::Charter(raw)) => SignedCharter::decode(raw)
                    .map_err(|error| StoreError::corrupt(&key, error.to_string()))?,
                Ok(other) => return Err(StoreError::corrupt(&key, format!("a {}", other.kind()))),
                Err(error) => return Err(StoreError::corrupt(&key, error.to_string())),
            };
            // A store written before rivals were kept side by side may hold a charter
            // under its version alone and again under its version and id.
            if !found.iter().any(|held| held.id() == charter.id()) {
                found.push(charter);
            }
        }
        Ok(found)
    }

    /// The charter in force among those kept: of the highest version, the smallest id
    /// (the order of `SignedCharter::supersedes`).
    pub fn latest_charter(&self) -> Result<Option<SignedCharter>, StoreError> {
        Ok(self
            .charters_after(0)?
            .into_iter()
            .reduce(|best, next| if next.supersedes(&best) { next } else { best }))
    }

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

    /// Flushes everything to disk (for shutdown).
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db()?.flush()?;
        Ok(())
    }
}

/// Opens the database in `path` and checks its schema version.
fn open_db(config: &sled::Config, path: &Path) -> Result<sled::Db, StoreError> {
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
    check_schema(&db, path)?;
    Ok(db)
}

fn check_schema(db: &sled::Db, path: &Path) -> Result<(), StoreError> {
    match db.get(keys::SCHEMA)? {
        Some(bytes) => {
            let found = bytes
                .as_ref()
                .try_into()
                .map(u32::from_be_bytes)
                .map_err(|_| StoreError::corrupt(keys::SCHEMA, "schema version is not 4 bytes"))?;
            if found != SCHEMA_VERSION {
                return Err(StoreError::SchemaVersion {
                    path: path.to_path_buf(),
                    found,
                    expected: SCHEMA_VERSION,
                });
            }
        }
        None if db.is_empty() => {
            db.insert(keys::SCHEMA, &SCHEMA_VERSION.to_be_bytes())?;
            db.flush()?;
        }
        None => {
            return Err(StoreError::NotAStore {
                path: path.to_path_buf(),
            });
        }
    }
    Ok(())
}

fn hash_of(key: &[u8], bytes: &[u8]) -> Result<[u8; 32], StoreError> {
    bytes.try_into().map_err(|_| {
        StoreError::corrupt(key, format!("{} bytes, expected a 32-byte id", bytes.len()))
    })
}

/// Domain tag of an opened bundle kept beside its sealed entry.
const OPENED_DOMAIN: &str = "threatmesh/store/opened/v1:";

/// An opened bundle as the store keeps it: the wire encoding, whose decode limits and
/// value re-validation guard against a damaged disk.
fn encode_opened(bundle: &Bundle) -> Vec<u8> {
    wire::encode_signed(OPENED_DOMAIN, bundle)
}

fn decode_opened(key: &[u8], bytes: &[u8]) -> Result<Bundle, StoreError> {
    wire::decode_signed(OPENED_DOMAIN, bytes)
        .map_err(|error| StoreError::corrupt(key, error.to_string()))
}

/// Decodes an entry this node verified before storing it; no signature check.
fn open_stored(key: &[u8], payload: Vec<u8>) -> Result<SignedEntry, StoreError> {
    UnverifiedEntry::decode(payload)
        .map(UnverifiedEntry::trust_verified)
        .map_err(|error| StoreError::corrupt(key, error.to_string()))
}

#[cfg(test)]
mod tests;
