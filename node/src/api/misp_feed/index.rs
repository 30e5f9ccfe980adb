//! The feed index: what `manifest.json` and `hashes.csv` say of every event the feed
//! serves, kept in memory and caught up from the store's added-time log.
//!
//! A poll must not decode a million indicators to learn that nothing changed, so the
//! index follows the store instead: before each answer it asks the store for the key of
//! its newest added row (one read) and reads only the rows after the last one it saw.
//! Per event it keeps what the manifest needs (uuid, organisation, TLP, info, creation
//! time, arrival time) and, for `hashes.csv`, one MD5 per attribute with the event's
//! number: about 20 bytes per indicator. The manifest of each TLP ceiling that was asked
//! for is kept written (about 350 bytes per event) and only appended to, since events are
//! only ever added. Each event file is built from the stored entry when asked for, since
//! a MISP fetches it once.
//!
//! Entries are picked as `threatmesh export --format misp` picks them
//! ([`formats::readable_entry`], [`Publisher::exporting`]): a sealed entry this node
//! could not open is left out, and comes back at the end of the added-time log once it
//! is opened (see `Store::read_later`), when it is indexed. The organisation's name is the
//! one the charter in force gave when the entry was indexed.

use std::collections::HashMap;
use std::fmt::Write as _;

use threatmesh_protocol::bundle::Tlp;
use threatmesh_protocol::crypto::hex_encode;
use threatmesh_protocol::{Body, Charter, Hash, Timestamp};
use uuid::Uuid;

use crate::formats::misp::{EventSummary, manifest_record};
use crate::formats::{self, Publisher};
use crate::store::{AddedStart, Store, StoreError};

/// Entries read from the store at a time while catching up.
const ROWS_PER_READ: usize = 64;

/// The place of `tlp` among the levels, CLEAR first; a ceiling admits its own level
/// and those before it.
pub(super) fn level(tlp: Tlp) -> usize {
    match tlp {
        Tlp::Clear => 0,
        Tlp::Green => 1,
        Tlp::Amber => 2,
        Tlp::AmberStrict => 3,
        Tlp::Red => 4,
    }
}

/// One event as the manifest shows it.
#[derive(Debug)]
struct Event {
    uuid: Uuid,
    /// The entry it exports, read again to serve the event's file.
    entry: Hash,
    /// Its organisation in [`Index::orgs`].
    org: u32,
    tlp: Tlp,
    info: Box<str>,
    created: Timestamp,
}

/// How many events of one TLP level the index holds, and when the newest arrived.
#[derive(Debug, Default, Clone, Copy)]
struct Level {
    events: u64,
    newest_added: Timestamp,
}

/// What a client's conditional request is compared with: the number of events at or
/// below its ceiling and the arrival time of the newest one. Both only grow, and the
/// count grows with every event that arrives, so together they change exactly when the
/// manifest (or `hashes.csv`) at that ceiling does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Version {
    pub(super) events: u64,
    pub(super) newest_added: Timestamp,
}

/// The index; see the module documentation.
#[derive(Debug, Default)]
pub(super) struct Index {
    /// The key of the last added-time row read.
    reached: Option<Vec<u8>>,
    /// Organisations (name, uuid) the events name, each once.
    orgs: Vec<(String, Uuid)>,
    org_numbers: HashMap<Uuid, u32>,
    events: Vec<Event>,
    by_uuid: HashMap<Uuid, u32>,
    /// `hashes.csv`: each attribute's MD5 and its event's number, in arrival order.
    hashes: Vec<([u8; 16], u32)>,
    levels: [Level; 5],
    /// The manifest at each ceiling, written up to the events added since.
    manifests: [Manifest; 5],
}

/// The manifest at one ceiling, as far as it is written.
#[derive(Debug, Default)]
struct Manifest {
    /// `{` and the records written so far, without the closing brace.
    open: String,
    /// How many of [`Index::events`] were looked at for it.
    written: usize,
    /// The last answer made of it, with the version it shows.
    answer: Option<(Version, axum::body::Bytes)>,
}

impl Index {
    /// Reads the entries the store accepted since the last call; whether any was new.
    pub(super) fn catch_up(
        &mut self,
        store: &Store,
        charter: &Charter,
    ) -> Result<bool, StoreError> {
        let end = store.last_added_key()?;
        if end <= self.reached {
            return Ok(false);
        }
        loop {
            let start = match &self.reached {
                Some(key) => AddedStart::Following(key),
                None => AddedStart::First,
            };
            let rows = store.added_rows(start, ROWS_PER_READ)?;
            let mut read = 0_usize;
            for row in rows
                .into_iter()
                .take_while(|row| Some(&row.key) <= end.as_ref())
            {
                self.add(store, charter, &row.entry, row.added)?;
                self.reached = Some(row.key);
                read += 1;
            }
            if read < ROWS_PER_READ || self.reached >= end {
                return Ok(true);
            }
        }
    }

    fn add(
        &mut self,
        store: &Store,
        charter: &Charter,
        signed: &threatmesh_protocol::SignedEntry,
        added: Timestamp,
    ) -> Result<(), StoreError> {
        let id = signed.id();
        let entry = signed.entry();
        let opened = match entry.body {
            Body::Sealed(_) => store.opened(&id)?,
            Body::Bundle(_) => None,
        };
        let Some(readable) = formats::readable_entry(entry, opened) else {
            return Ok(());
        };
        let publisher = Publisher::exporting(charter, &readable.author);
        let Some(summary) = EventSummary::of(&readable, id, &publisher) else {
            return Ok(());
        };
        if self.by_uuid.contains_key(&summary.uuid) {
            return Ok(());
        }
        let number = u32::try_from(self.events.len()).unwrap_or(u32::MAX);
        let org = match self.org_numbers.get(&summary.org_uuid) {
            Some(org) => *org,
            None => {
                let org = u32::try_from(self.orgs.len()).unwrap_or(u32::MAX);
                self.orgs.push((summary.org_name, summary.org_uuid));
                self.org_numbers.insert(summary.org_uuid, org);
                org
            }
        };
        self.hashes
            .extend(summary.md5s.iter().map(|md5| (*md5, number)));
        let slot = &mut self.levels[level(summary.tlp)];
        slot.events += 1;
        slot.newest_added = slot.newest_added.max(added);
        self.by_uuid.insert(summary.uuid, number);
        self.events.push(Event {
            uuid: summary.uuid,
            entry: id,
            org,
            tlp: summary.tlp,
            info: summary.info.into_boxed_str(),
            created: summary.created,
        });
        Ok(())
    }

    /// What the feed at `ceiling` shows now.
    pub(super) fn version(&self, ceiling: Tlp) -> Version {
        let below = &self.levels[..=level(ceiling)];
        Version {
            events: below.iter().map(|slot| slot.events).sum(),
            newest_added: below
                .iter()
                .map(|slot| slot.newest_added)
                .max()
                .unwrap_or(Timestamp::EPOCH),
        }
    }

    /// The entry behind event `uuid`, if the feed at `ceiling` shows it.
    pub(super) fn entry_of(&self, uuid: &Uuid, ceiling: Tlp) -> Option<Hash> {
        let event = self.events.get(*self.by_uuid.get(uuid)? as usize)?;
        (event.tlp <= ceiling).then_some(event.entry)
    }

    /// `manifest.json` at `ceiling`. Events are only ever added, so the manifest at each
    /// ceiling is kept open (without its closing brace) and only the records of events
    /// added since the last request are written to it; the answer is kept per version,
    /// so polls of an unchanged feed that send no validator cost only a copy.
    pub(super) fn manifest(&mut self, ceiling: Tlp) -> axum::body::Bytes {
        let version = self.version(ceiling);
        let slot = &mut self.manifests[level(ceiling)];
        if let Some(answer) = &slot.answer
            && answer.0 == version
        {
            return answer.1.clone();
        }
        if slot.open.is_empty() {
            slot.open.push('{');
        }
        for event in self.events[slot.written..]
            .iter()
            .filter(|event| event.tlp <= ceiling)
        {
            let (org_name, org_uuid) = &self.orgs[event.org as usize];
            let record = manifest_record(org_name, org_uuid, event.tlp, &event.info, event.created);
            if slot.open.len() > 1 {
                slot.open.push(',');
            }
            let _ = write!(slot.open, "\"{}\":{record}", event.uuid);
        }
        slot.written = self.events.len();
        let mut answer = String::with_capacity(slot.open.len() + 1);
        answer.push_str(&slot.open);
        answer.push('}');
        let bytes = axum::body::Bytes::from(answer);
        slot.answer = Some((version, bytes.clone()));
        bytes
    }

    /// `hashes.csv` at `ceiling`: `<md5>,<event uuid>` per attribute. Built when asked
    /// for (a poll with nothing new gets 304 before this), not kept: at a million
    /// indicators it is about 70 MB.
    pub(super) fn hashes_csv(&self, ceiling: Tlp) -> axum::body::Bytes {
        let mut out = String::with_capacity(70 * self.hashes.len());
        let mut uuid_buffer = Uuid::encode_buffer();
        for (md5, number) in &self.hashes {
            let Some(event) = self.events.get(*number as usize) else {
                continue;
            };
            if event.tlp > ceiling {
                continue;
            }
            out.push_str(&hex_encode(md5));
            out.push(',');
            out.push_str(event.uuid.hyphenated().encode_lower(&mut uuid_buffer));
            out.push('\n');
        }
        axum::body::Bytes::from(out)
    }
}
