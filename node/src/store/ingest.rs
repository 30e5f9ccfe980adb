//! Accepting entries: deciding, under the writer lock, where an entry sits in its feed
//! (stored, duplicate, after a gap, equivocation, contradiction of an ended feed) and
//! building the one batch that writes it with its feed slot, feed state, index records,
//! added-time row and counters. Also the later reading of a sealed entry once a key it
//! was sealed to is added.

use std::collections::HashMap;
use std::ops::RangeInclusive;

use threatmesh_protocol::bundle::Bundle;
use threatmesh_protocol::entry::{Body, SignedEntry};
use threatmesh_protocol::item::Item;
use threatmesh_protocol::{Hash, PublicKey, Timestamp};

use super::records::{self, Detail, EntryRecord, FeedRecord, What, encode_opened};
use super::{Store, StoreError, Ticket, hash_of, keys};

/// What one ingest will write, decided under the writer lock.
struct Plan {
    batch: sled::Batch,
    /// About how many keys `batch` writes, for [`Store::apply_batch`].
    writes: usize,
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

impl Store {
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
                let db = self.db()?;
                self.apply_batch(&db, plan.batch, plan.writes)?;
                Applied {
                    outcome: plan.outcome,
                    ticket: self.inner.flush.applied(),
                }
            }
        })
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
                writes: ENTRY_KEYS,
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
        let records = match readable {
            Some(bundle) => self.index_readable(&mut batch, entry, &id, bundle, feed.number)?,
            None => 0,
        };
        let record_count = self.counter(keys::RECORD_COUNT)? + records;
        batch.insert(keys::RECORD_COUNT, &record_count.to_be_bytes()[..]);
        Ok(Some(Plan {
            batch,
            writes: ENTRY_KEYS + usize::try_from(records).unwrap_or(usize::MAX),
            outcome,
            new_feed,
        }))
    }

    /// Indexes `bundle`, the readable content of `entry`, in `batch` ([`index`]) under the
    /// next entry number; returns how many items were indexed.
    fn index_readable(
        &self,
        batch: &mut sled::Batch,
        entry: &threatmesh_protocol::Entry,
        id: &Hash,
        bundle: &Bundle,
        feed: u32,
    ) -> Result<u64, StoreError> {
        if bundle.items.is_empty() {
            return Ok(0);
        }
        let number = self.counter(keys::ENTRY_NUMBERS)?;
        batch.insert(keys::ENTRY_NUMBERS, &(number + 1).to_be_bytes()[..]);
        Ok(index(batch, entry, id, bundle, feed, entry_number(number)?))
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
        let records = self.index_readable(&mut batch, entry, id, bundle, feed.number)?;
        let record_count = self.counter(keys::RECORD_COUNT)? + records;
        batch.insert(keys::RECORD_COUNT, &record_count.to_be_bytes()[..]);
        let writes = ENTRY_KEYS + usize::try_from(records).unwrap_or(usize::MAX);
        self.apply_batch(&db, batch, writes)?;
        Ok(Some(self.inner.flush.applied()))
    }
}

/// Entry number `number` as index keys hold it.
pub(super) fn entry_number(number: u64) -> Result<u32, StoreError> {
    u32::try_from(number)
        .map_err(|_| StoreError::corrupt(keys::ENTRY_NUMBERS, "more than 2^32 indexed entries"))
}

/// Adds the index records of `bundle`, the readable content of `entry` (whose id is `id`),
/// to `batch`: the entry's record under local number `number`, and one key per item.
/// Returns how many items were indexed.
pub(super) fn index(
    batch: &mut sled::Batch,
    entry: &threatmesh_protocol::Entry,
    id: &Hash,
    bundle: &Bundle,
    feed: u32,
    number: u32,
) -> u64 {
    let whats: Vec<What> = bundle.items.iter().map(what_of).collect();
    let encoded: Vec<Vec<u8>> = whats.iter().map(records::encode).collect();
    let positions = shared_positions(&encoded);
    let mut shared: Vec<Option<What>> = vec![None; positions.len()];
    for (position, (what, bytes)) in whats.into_iter().zip(&encoded).enumerate() {
        let detail = match positions.get(bytes.as_slice()) {
            Some(&at) => {
                if let Some(slot) = shared.get_mut(at as usize) {
                    slot.get_or_insert(what);
                }
                Detail::Shared(at)
            }
            None => Detail::Own(what),
        };
        // Bundles hold at most MAX_ITEMS_PER_BUNDLE (10,000) items.
        let item = u16::try_from(position).unwrap_or(u16::MAX);
        let value = bundle.items[position].value();
        batch.insert(
            keys::index(value, number, item),
            records::encode_detail(&detail),
        );
    }
    let record = EntryRecord {
        feed,
        seq: entry.seq,
        id: *id,
        created: entry.created,
        tlp: bundle.tlp,
        // Every shared detail is used by two items or more, so each slot was filled.
        shared: shared.into_iter().flatten().collect(),
    };
    batch.insert(&keys::entry_record(number)[..], records::encode(&record));
    bundle.items.len() as u64
}

/// Most details one entry's record shares among its items: a lookup decodes the whole
/// record, so it stays small whatever the entry holds.
const MAX_SHARED: usize = 64;

/// Keys an entry's batch writes besides its index keys, at most: its payload, feed slot
/// and head, counters, added-time row, entry record and the like.
const ENTRY_KEYS: usize = 16;

/// What the index keeps of `item`.
pub(super) fn what_of(item: &Item) -> What {
    match item {
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
    }
}

/// The details (encoded) that two or more items share, the most used first (ties in byte
/// order, so the same bundle always makes the same record), at most [`MAX_SHARED`], each
/// with its position in the entry's record.
fn shared_positions(encoded: &[Vec<u8>]) -> HashMap<&[u8], u32> {
    let mut uses: HashMap<&[u8], usize> = HashMap::new();
    for bytes in encoded {
        *uses.entry(bytes.as_slice()).or_default() += 1;
    }
    let mut common: Vec<(&[u8], usize)> =
        uses.into_iter().filter(|(_, count)| *count >= 2).collect();
    common.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    common.truncate(MAX_SHARED);
    common
        .into_iter()
        .zip(0_u32..)
        .map(|((bytes, _), position)| (bytes, position))
        .collect()
}
