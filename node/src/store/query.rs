//! Reading what was stored: entries by id, what this node can read of them, and
//! everything known about a value ([`Lookup`]), with revocation and expiry worked out at
//! lookup time.

use serde::Serialize;
use threatmesh_protocol::bundle::{Bundle, Tlp};
use threatmesh_protocol::entry::{Body, SignedEntry};
use threatmesh_protocol::item::{Confidence, Context, RevocationReason};
use threatmesh_protocol::{Hash, PublicKey, Timestamp, Value};

use std::collections::HashMap;

use super::records::{self, Detail, EntryRecord, What, decode_opened};
use super::{Store, StoreError, keys};

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

impl Store {
    /// Whether the entry with id `id` is held.
    pub fn contains(&self, id: &Hash) -> Result<bool, StoreError> {
        Ok(self.db()?.contains_key(keys::entry(id))?)
    }

    /// The entry with id `id`.
    pub fn entry(&self, id: &Hash) -> Result<Option<SignedEntry>, StoreError> {
        let key = keys::entry(id);
        self.db()?
            .get(key)?
            .map(|payload| open_stored(&key, *id, payload.to_vec()))
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
        // Entry numbers follow the order entries were indexed in (or migrated), so hits
        // are put back in (feed, seq, item) order: the answer does not depend on it.
        let mut hits = Vec::new();
        let mut entries: HashMap<u32, EntryRecord> = HashMap::new();
        let db = self.db()?;
        for found in db.scan_prefix(keys::value_prefix(value)) {
            let (key, bytes) = found?;
            let (number, item) = keys::entry_item_of_index_key(&key)
                .ok_or_else(|| StoreError::corrupt(&key, "short index key"))?;
            let record = match entries.entry(number) {
                std::collections::hash_map::Entry::Occupied(found) => found.into_mut(),
                std::collections::hash_map::Entry::Vacant(slot) => {
                    let record_key = keys::entry_record(number);
                    let bytes = db.get(record_key)?.ok_or_else(|| {
                        StoreError::corrupt(&key, format!("no record of entry number {number}"))
                    })?;
                    slot.insert(records::decode(&record_key, &bytes)?)
                }
            };
            let what = match records::decode_detail(&key, &bytes)? {
                Detail::Own(what) => what,
                Detail::Shared(at) => {
                    record.shared.get(at as usize).cloned().ok_or_else(|| {
                        StoreError::corrupt(&key, format!("no shared detail {at}"))
                    })?
                }
            };
            hits.push(((record.feed, record.seq, item), number, what));
        }
        hits.sort_by_key(|(order, ..)| *order);
        for ((feed, seq, _), number, what) in hits {
            let record = &entries[&number];
            let (author, org) = self.feed_of_number(&keys::entry_record(number), feed)?;
            let entry = record.id;
            match what {
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
}

/// Decodes an entry this node verified before storing it; no signature check.
fn open_stored(key: &[u8], id: Hash, payload: Vec<u8>) -> Result<SignedEntry, StoreError> {
    SignedEntry::from_store(payload, id)
        .map_err(|error| StoreError::corrupt(key, error.to_string()))
}
