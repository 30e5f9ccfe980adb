//! Feeds: where each author's feed stands (contiguous part, highest entry, equivocation),
//! what is missing of it, its head for sync, and the pages of it served to peers.

use std::collections::HashMap;
use std::ops::RangeInclusive;

use serde::Serialize;
use threatmesh_protocol::entry::FeedHead;
use threatmesh_protocol::{Hash, PublicKey};

use super::records::{self, FeedRecord};
use super::{Store, StoreError, hash_of, keys};

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

/// A page of a feed, for a sync response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    /// The entries' gossip payloads, in seq order.
    pub payloads: Vec<Vec<u8>>,
    /// Whether more entries of the requested range are held after the last one.
    pub more: bool,
}

impl Store {
    /// Fills the in-memory map of feed numbers from the store.
    pub(super) fn load_feeds(&self) -> Result<(), StoreError> {
        let feeds = self
            .feed_records()?
            .into_iter()
            .map(|(author, feed)| (feed.number, (author, feed.org)))
            .collect();
        *self.feeds_write() = feeds;
        Ok(())
    }

    pub(super) fn feed_record(&self, author: &PublicKey) -> Result<Option<FeedRecord>, StoreError> {
        let key = keys::head(author);
        self.db()?
            .get(key)?
            .map(|bytes| records::decode(&key, &bytes))
            .transpose()
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

    pub(super) fn feeds_write(
        &self,
    ) -> std::sync::RwLockWriteGuard<'_, HashMap<u32, (PublicKey, PublicKey)>> {
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

    /// The highest seq held of `author`'s feed below `seq` (0: none).
    pub(super) fn highest_below(&self, author: &PublicKey, seq: u64) -> Result<u64, StoreError> {
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
}
