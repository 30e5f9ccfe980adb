//! The added-time index: every entry in the order this node accepted it, read by page
//! with cursors (exports, `/api/v1/entries`, TAXII, the console) and followed by the TAXII
//! object index.

use threatmesh_protocol::entry::{ClearItem, EntryHeader, SignedEntry};
use threatmesh_protocol::{Hash, Timestamp};

use super::{Store, StoreError, hash_of, keys};

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

/// A row of the added-time index with one item of its (clear) entry, read without
/// decoding the others: from [`Store::added_item`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddedItem {
    /// When this node accepted the entry.
    pub added: Timestamp,
    /// The entry's id.
    pub id: Hash,
    /// The item, with the entry's header and marking.
    pub item: ClearItem,
}

impl Store {
    /// The key of the newest row of the added-time index, if any.
    pub fn last_added_key(&self) -> Result<Option<Vec<u8>>, StoreError> {
        match self.db()?.scan_prefix([keys::ADDED]).next_back() {
            None => Ok(None),
            Some(row) => Ok(Some(row?.0.to_vec())),
        }
    }

    /// The time of the newest row of the added-time index (the epoch when empty).
    pub(super) fn last_added(&self) -> Result<Timestamp, StoreError> {
        match self.last_added_key()? {
            None => Ok(Timestamp::EPOCH),
            Some(key) => keys::time_of_added_key(&key)
                .ok_or_else(|| StoreError::corrupt(&key, "short added key")),
        }
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

    /// The item at `offset` (see `Bundle::item_offsets`) of the clear entry at row `row`
    /// of the added-time index, read from the stored payload without decoding the
    /// entry's other items; `None` when no row has that key. Offsets come from the node's
    /// own records of its stored entries: one that names no item of the entry is
    /// reported as a corrupt store.
    pub fn added_item(&self, row: &[u8], offset: u32) -> Result<Option<AddedItem>, StoreError> {
        let found = self.added_scan(AddedStart::At(row), 1, |key, added, id, payload| {
            if key != row {
                return Ok(None);
            }
            let payload = payload()?;
            let item = ClearItem::read(&payload, offset).map_err(|error| {
                StoreError::corrupt(
                    &keys::entry(&id),
                    format!("item at offset {offset}: {error}"),
                )
            })?;
            Ok(Some(AddedItem { added, id, item }))
        })?;
        Ok(found.into_iter().flatten().next())
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
}
