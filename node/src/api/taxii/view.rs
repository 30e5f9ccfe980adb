//! The read model: a collection's objects, made on the fly from stored entries by the STIX
//! exporter. A page lists the context objects, then the objects of each entry in the
//! order this node accepted them, each version where it first appears; an object's
//! versions are found through the store's object index ([`ObjectIndex`]), which this view
//! also brings up to the store before it answers.

use std::borrow::Cow;
use std::sync::Arc;

use threatmesh_protocol::bundle::Tlp;
use threatmesh_protocol::{Body, Entry, Item, PublicKey, SignedEntry, Timestamp};

use super::MAX_ROWS_PER_PAGE;
use super::collections::Collection;
use super::cursor::Cursor;
use super::filters::{Filters, VersionFilter, choose};
use super::listed::{LastRow, Listed};
use crate::api::ApiState;
use crate::formats::{Publisher, rfc3339, stix};
use crate::store::{
    AddedRow, AddedStart, IndexedObject, ObjectIndex, ObjectVersion, Store, StoreError,
};

/// Entries read from the store at a time while filling a page. One: an entry can hold
/// 10,000 items, so reading (and decoding) ahead costs more than the seek it saves.
const ROWS_PER_READ: usize = 1;

/// A page of a collection and where the next starts.
#[derive(Debug)]
pub(super) struct Page {
    pub(super) objects: Vec<Listed>,
    pub(super) next: Option<Cursor>,
}

/// What the collections read, gathered once per request.
pub(super) struct View {
    collection: Collection,
    charter: Arc<threatmesh_protocol::SignedCharter>,
    own_org: Option<PublicKey>,
    pub(super) store: Store,
    index: ObjectIndex,
    /// Indicators on these lists carry their names (`x_threatmesh_warninglists`).
    warninglists: Arc<crate::warninglists::Warninglists>,
    last_row: Arc<LastRow>,
}

impl View {
    pub(super) fn new(state: &ApiState, collection: Collection) -> View {
        let charter = state.client.charter();
        let own_org = charter
            .charter()
            .node(&state.client.node_key())
            .map(|(member, _)| member.org);
        View {
            collection,
            charter,
            own_org,
            store: state.store.clone(),
            index: ObjectIndex::new(&state.store, own_org, Arc::clone(&state.taxii.catching)),
            warninglists: Arc::clone(state.client.warninglists()),
            last_row: Arc::clone(&state.taxii.last_row),
        }
    }

    /// The organisation behind an entry: the one the store recorded when it accepted the
    /// feed, named as the charter names it (a member since removed keeps its key).
    fn publisher(&self, author: &PublicKey) -> Publisher {
        let org = self.store.organisation_of(author);
        let member = org.and_then(|org| self.charter.charter().member(&org));
        match (org, member) {
            (_, Some(member)) => Publisher {
                org: member.org,
                name: member.name.clone(),
                country: member.country.clone(),
            },
            (Some(org), None) => Publisher {
                org,
                name: format!("organisation {org}"),
                country: "XX".to_owned(),
            },
            (None, None) => Publisher::unknown(author),
        }
    }

    /// Whether the collection holds an entry of `author`.
    pub(super) fn holds(&self, author: &PublicKey) -> bool {
        match self.collection {
            Collection::Shared => true,
            Collection::Own => {
                self.own_org.is_some() && self.store.organisation_of(author) == self.own_org
            }
        }
    }

    /// The context objects: an identity per member organisation (for `own`: this
    /// organisation's only) and the TLP 2.0 marking definitions, dated by the issue of
    /// the charter in force.
    pub(super) fn context(&self) -> Vec<Listed> {
        let added = self.charter.charter().issued;
        let mut objects = Vec::new();
        for member in &self.charter.charter().members {
            if self.collection == Collection::Own && Some(member.org) != self.own_org {
                continue;
            }
            let publisher = Publisher {
                org: member.org,
                name: member.name.clone(),
                country: member.country.clone(),
            };
            objects.push(Listed::context(&stix::identity(&publisher), added));
        }
        for tlp in [
            Tlp::Clear,
            Tlp::Green,
            Tlp::Amber,
            Tlp::AmberStrict,
            Tlp::Red,
        ] {
            objects.push(Listed::context(&stix::tlp_marking(tlp), added));
        }
        objects
    }

    /// The entry as exports read it: a sealed one as the bundle this node opened, or
    /// `None` when this organisation is not among its recipients (nothing of it is shown).
    fn readable<'e>(&self, entry: &'e SignedEntry) -> Result<Option<Cow<'e, Entry>>, StoreError> {
        let opened = match &entry.entry().body {
            Body::Bundle(_) => None,
            Body::Sealed(_) => self.store.opened(&entry.id())?,
        };
        Ok(crate::formats::readable_entry(entry.entry(), opened))
    }

    /// The objects of the item `version` names, read from the stored entry without
    /// decoding its other items: a lookup in a collection of 1,000-item entries spent most
    /// of its time decoding the other 999. `None` when this way does not apply (the index
    /// keeps no offset for a sealed entry's items or a sighting: see
    /// `EntryExport::one_item`), and the whole entry is read.
    fn one_item_objects(&self, version: &ObjectVersion) -> Result<Option<Vec<Listed>>, StoreError> {
        let Some(offset) = version.offset else {
            return Ok(None);
        };
        let Some(row) = self.store.added_item(&version.row, offset)? else {
            return Err(StoreError::corrupt(
                &version.row,
                "TAXII index names a missing entry",
            ));
        };
        let header = &row.item.header;
        if !self.holds(&header.author) {
            return Ok(Some(Vec::new()));
        }
        let publisher = self.publisher(&header.author);
        let index = usize::try_from(version.item).unwrap_or(usize::MAX);
        let Some(export) = stix::EntryExport::one_item(
            header.created,
            row.item.tlp,
            &row.item.item,
            index,
            &row.id,
            &publisher,
            stix::KeptIds::of_node(self.own_org),
        ) else {
            return Ok(None);
        };
        let export = export.marked(&self.warninglists);
        let mut objects = Vec::new();
        export.item_objects(index, &mut std::collections::HashSet::new(), &mut objects);
        Ok(Some(
            objects
                .iter()
                .map(|object| Listed::exported(object, row.added, publisher.org))
                .collect(),
        ))
    }

    /// The objects of item `item` of an entry alone (with the malware and campaign it
    /// names), for looking one object up without exporting the whole entry.
    fn item_objects(
        &self,
        entry: &SignedEntry,
        added: Timestamp,
        item: u32,
    ) -> Result<Vec<Listed>, StoreError> {
        self.exported(entry, added, Some(item))
    }

    /// The objects of `entry` (of its item `only`, if given), each with the item it comes
    /// from; nothing for a sealed entry this node could not open.
    fn exported(
        &self,
        entry: &SignedEntry,
        added: Timestamp,
        only: Option<u32>,
    ) -> Result<Vec<Listed>, StoreError> {
        let mut listed = Vec::new();
        self.each_object(entry, 0, only, |object, _position, _item, org| {
            listed.push(Listed::exported(object, added, org));
            Ok(true)
        })?;
        Ok(listed)
    }

    /// Exports `entry` object by object (only item `only`'s, if given) from its object
    /// `skip` on, giving `visit` each object with its position among the entry's
    /// objects, its item and its publishing organisation, until `visit` says stop
    /// (`false`). Objects before `skip` are counted, not made; nothing for a sealed entry
    /// this node could not open. True when `visit` stopped it.
    fn each_object(
        &self,
        entry: &SignedEntry,
        skip: usize,
        only: Option<u32>,
        mut visit: impl FnMut(&stix::Object<'_>, usize, u32, PublicKey) -> Result<bool, StoreError>,
    ) -> Result<bool, StoreError> {
        let Some(readable) = self.readable(entry)? else {
            return Ok(false);
        };
        let publisher = self.publisher(&entry.entry().author);
        let id = entry.id();
        let org = publisher.org;
        let kept = stix::KeptIds::of_node(self.own_org);
        let Some(export) = stix::EntryExport::new(&readable, &id, &publisher, kept) else {
            return Ok(false);
        };
        let export = export.marked(&self.warninglists);
        let items = match only {
            Some(item) => {
                let index = usize::try_from(item).unwrap_or(usize::MAX);
                index..index.saturating_add(1)
            }
            None => 0..export.items(),
        };
        let mut named = std::collections::HashSet::new();
        let mut objects = Vec::new();
        // The position among the entry's objects of the next one made.
        let mut position = 0_usize;
        for index in items {
            if position < skip {
                // Whole items before the cursor are counted only; the names they
                // introduce are remembered, as making them would.
                let mut after = named.clone();
                let count = export.count_item_objects(index, &mut after);
                if position.saturating_add(count) <= skip {
                    named = after;
                    position = position.saturating_add(count);
                    continue;
                }
            }
            let item = u32::try_from(index).unwrap_or(u32::MAX);
            export.item_objects(index, &mut named, &mut objects);
            for object in objects.drain(..) {
                let at = position;
                position = position.saturating_add(1);
                if at < skip {
                    continue;
                }
                if !visit(&object, at, item, org)? {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    /// Brings the object index up to the store and returns the row it reaches: pages
    /// stop there, so they never list an entry whose versions the index does not know.
    /// While the store refuses writes (a full disk), pages are served up to where the
    /// index already reaches: newer entries appear once it can grow again.
    fn index_new_entries(&self) -> Result<Option<Vec<u8>>, StoreError> {
        match self.index_some_entries(usize::MAX) {
            Err(StoreError::DiskFull { .. } | StoreError::Poisoned) => self.index.reached(),
            other => other,
        }
    }

    /// Indexes about `budget` more entries; the row the index reaches. A store that
    /// refuses writes is an error here: the background indexer waits for its next turn.
    /// Each entry's objects are named by their ids and versions alone, which the exporter
    /// works out without building them: building every object's JSON to read two fields
    /// back was about a third of the indexer's time.
    pub(super) fn index_some_entries(&self, budget: usize) -> Result<Option<Vec<u8>>, StoreError> {
        let kept = stix::KeptIds::of_node(self.own_org);
        self.index.catch_up(budget, |row| {
            // The same export as `exported`, so the same objects.
            let Some(readable) = self.readable(&row.entry)? else {
                return Ok(Vec::new());
            };
            let publisher = self.publisher(&row.entry.entry().author);
            let id = row.entry.id();
            let Some(export) = stix::EntryExport::new(&readable, &id, &publisher, kept) else {
                return Ok(Vec::new());
            };
            // Where each item of a clear entry starts, so a lookup decodes that item
            // alone. None for a sealed entry's items, read from the bundle this node
            // opened, and for a sighting, exported from the whole entry
            // (`EntryExport::one_item`): the lookup reads the entry once, not twice.
            let offsets: Vec<Option<u32>> = match &row.entry.entry().body {
                Body::Bundle(bundle) => bundle
                    .item_offsets()
                    .into_iter()
                    .zip(&bundle.items)
                    .map(|(offset, item)| (!matches!(item, Item::Sighting(_))).then_some(offset))
                    .collect(),
                Body::Sealed(_) => Vec::new(),
            };
            let mut named = std::collections::HashSet::new();
            let mut versions = Vec::new();
            let mut objects = Vec::with_capacity(export.items());
            for index in 0..export.items() {
                export.item_versions(index, &mut named, &mut versions);
                let item = u32::try_from(index).unwrap_or(u32::MAX);
                let offset = offsets.get(index).copied().flatten();
                objects.extend(versions.drain(..).map(|(id, modified)| IndexedObject {
                    id,
                    org: publisher.org,
                    modified,
                    item,
                    offset,
                }));
            }
            Ok(objects)
        })
    }

    /// Whether version `modified` of object `id` by `org`, found in item `item` of the
    /// entry at index row `row`, is where that version first appears, so it is listed once
    /// however many entries repeat it. Context objects (no `org`) always are.
    fn first_here(
        &self,
        id: &str,
        org: Option<&PublicKey>,
        modified: Timestamp,
        row: &[u8],
        item: u32,
    ) -> Result<bool, StoreError> {
        let Some(org) = org else {
            return Ok(true);
        };
        Ok(self
            .index
            .first_occurrence(id, org, modified)?
            .is_none_or(|first| first.row == row && first.item == item))
    }

    /// Whether version `modified` of object `id` by `org` is a version the filter asks
    /// for.
    fn wanted_version(
        &self,
        id: &str,
        org: Option<&PublicKey>,
        modified: Timestamp,
        filter: &VersionFilter,
    ) -> Result<bool, StoreError> {
        if filter.all || filter.at.contains(&modified) {
            return Ok(true);
        }
        let (mut first, mut last) = (modified, modified);
        // Context objects have one version; an entry's object is compared with the
        // versions its own publisher holds under that id only.
        let Some(org) = org else {
            return Ok(filter.wants(modified, first, last));
        };
        if filter.first {
            first = self.index.first_version(id, org)?.unwrap_or(first);
        }
        if filter.last {
            last = self.index.last_version(id, org)?.unwrap_or(last);
        }
        Ok(filter.wants(modified, first, last))
    }

    /// Whether version `modified` of object `id` by `org`, found in item `item` of the
    /// entry at index row `row`, is listed there: a version `filter` asks for
    /// ([`View::wanted_version`]), where it first appears ([`View::first_here`]). An
    /// object held once is answered without reading its index row, one held once by
    /// `org` from that row.
    fn listed_here(
        &self,
        id: &str,
        org: &PublicKey,
        modified: Timestamp,
        row: &[u8],
        item: u32,
        filter: &VersionFilter,
    ) -> Result<bool, StoreError> {
        if !self.index.has_several_rows(id)? {
            // Its one row is this one (pages list indexed entries only).
            return Ok(filter.wants(modified, modified, modified));
        }
        let Some(rows) = self.index.few_rows(id, org, 1)? else {
            return Ok(self.wanted_version(id, Some(org), modified, filter)?
                && self.first_here(id, Some(org), modified, row, item)?);
        };
        let Some(only) = rows.first() else {
            // Not indexed: as if this were its only version, appearing here.
            return Ok(filter.wants(modified, modified, modified));
        };
        let wanted = filter.all
            || filter.at.contains(&modified)
            || filter.wants(modified, only.modified, only.modified);
        let first_here =
            only.modified != modified || (only.row.as_slice() == row && only.item == item);
        Ok(wanted && first_here)
    }

    /// Fills one page of the collection: context objects first, then entries in the
    /// order this node accepted them.
    pub(super) fn page(&self, filters: &Filters) -> Result<Page, StoreError> {
        if !filters.spec_version_ok {
            return Ok(Page {
                objects: Vec::new(),
                next: None,
            });
        }
        if let Some(ids) = &filters.ids {
            return self.page_of_ids(ids, filters);
        }
        let indexed = self.index_new_entries()?;
        let mut objects = Vec::new();
        let mut cursor = filters.next.clone().unwrap_or(Cursor::Context(0));
        if let Cursor::Context(start) = cursor {
            for (index, listed) in self.context().into_iter().enumerate().skip(start) {
                if filters
                    .added_after
                    .is_some_and(|after| listed.added <= after)
                    || !filters.admits(listed.kind(), listed.id())
                {
                    continue;
                }
                if objects.len() == filters.limit {
                    return Ok(Page {
                        objects,
                        next: Some(Cursor::Context(index)),
                    });
                }
                objects.push(listed);
            }
            cursor = Cursor::Entry {
                key: Vec::new(),
                skip: 0,
            };
        }
        let Cursor::Entry { key, mut skip } = cursor else {
            return Ok(Page {
                objects,
                next: None,
            });
        };
        let mut start_key = key;
        let mut inclusive = !start_key.is_empty();
        // A page reads at most this many entries, however few match, so no request scans
        // the whole store; a short page says where to go on.
        let mut budget = MAX_ROWS_PER_PAGE;
        loop {
            if budget == 0 && !start_key.is_empty() {
                return Ok(Page {
                    objects,
                    next: Some(Cursor::Entry {
                        key: start_key,
                        skip: usize::MAX,
                    }),
                });
            }
            budget = budget.saturating_sub(1);
            let start = if start_key.is_empty() {
                filters
                    .added_after
                    .map_or(AddedStart::First, AddedStart::After)
            } else if inclusive {
                AddedStart::At(&start_key)
            } else {
                AddedStart::Following(&start_key)
            };
            let rows = self.rows(start)?;
            // Rows past what the index reaches wait for the next request.
            let rows: Vec<_> = rows
                .into_iter()
                .take_while(|row| Some(&row.key) <= indexed.as_ref())
                .collect();
            let exhausted = rows.len() < ROWS_PER_READ;
            for row in rows {
                if self.holds(&row.entry.entry().author) {
                    // Objects are made one by one from the cursor on and written as they
                    // pass, so a page costs the objects it lists, not the entry's.
                    let mut full_at = None;
                    self.each_object(&row.entry, skip, None, |object, index, item, org| {
                        let (id, kind) = (object.id(), object.kind());
                        if !filters.admits(kind, id) {
                            return Ok(true);
                        }
                        let modified = rfc3339::parse(object.version()).unwrap_or_default();
                        if !self.listed_here(
                            id,
                            &org,
                            modified,
                            &row.key,
                            item,
                            &filters.versions,
                        )? {
                            return Ok(true);
                        }
                        if objects.len() == filters.limit {
                            full_at = Some(index);
                            return Ok(false);
                        }
                        objects.push(Listed::exported(object, row.added, org));
                        Ok(true)
                    })?;
                    if let Some(index) = full_at {
                        // The next page starts in this entry.
                        self.last_row.keep(&row);
                        return Ok(Page {
                            objects,
                            next: Some(Cursor::Entry {
                                key: row.key.clone(),
                                skip: index,
                            }),
                        });
                    }
                }
                skip = 0;
                start_key = row.key.clone();
                inclusive = false;
            }
            if exhausted {
                return Ok(Page {
                    objects,
                    next: None,
                });
            }
        }
    }

    /// Up to [`ROWS_PER_READ`] rows of the added-time index from `start` on. The row a
    /// page ended in, where the next page starts, is taken from [`LastRow`] instead of
    /// read and decoded again.
    fn rows(&self, start: AddedStart<'_>) -> Result<Vec<Arc<AddedRow>>, StoreError> {
        if let AddedStart::At(key) = start
            && let Some(row) = self.last_row.get(key)
        {
            return Ok(vec![row]);
        }
        Ok(self
            .store
            .added_rows(start, ROWS_PER_READ)?
            .into_iter()
            .map(Arc::new)
            .collect())
    }

    /// A page of the objects named by `match[id]`, found through the index instead of a
    /// scan. The cursor counts objects already served.
    fn page_of_ids(&self, ids: &[String], filters: &Filters) -> Result<Page, StoreError> {
        let skip = match filters.next {
            Some(Cursor::Offset(served)) => served,
            _ => 0,
        };
        let mut objects = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for id in ids.iter().filter(|id| seen.insert(id.as_str())) {
            let mut found = self.versions(id)?;
            found.retain(|listed| {
                filters.admits(listed.kind(), listed.id())
                    && filters.added_after.is_none_or(|after| listed.added > after)
            });
            objects.extend(choose(found, &filters.versions));
        }
        let total = objects.len();
        let objects: Vec<Listed> = objects.into_iter().skip(skip).take(filters.limit).collect();
        let served = skip + objects.len();
        Ok(Page {
            objects,
            next: (served < total).then_some(Cursor::Offset(served)),
        })
    }

    /// Every version this collection holds of object `id`, by publishing organisation,
    /// then oldest first: one prefix scan of the index and one item read per version
    /// (the whole entry for a sealed entry's or a sighting), whatever the collection's
    /// size.
    pub(super) fn versions(&self, id: &str) -> Result<Vec<Listed>, StoreError> {
        // STIX ids never hold NUL, which separates the id in index keys.
        if id.contains('\0') {
            return Ok(Vec::new());
        }
        // Only identities and marking definitions are context objects: other ids are
        // not looked for among them.
        if (id.starts_with("identity--") || id.starts_with("marking-definition--"))
            && let Some(listed) = self.context().into_iter().find(|listed| listed.id() == id)
        {
            return Ok(vec![listed]);
        }
        self.index_new_entries()?;
        let mut found = Vec::new();
        let mut versions = self.index.versions(id)?;
        // An object many entries repeat (a malware) is one version held many times: read
        // it where it first appears only.
        versions.dedup_by_key(|version| (version.org, version.modified));
        for version in versions {
            if let Some(listed) = self.one_item_objects(&version)? {
                found.extend(
                    listed
                        .into_iter()
                        .filter(|listed| listed.id() == id && listed.org == Some(version.org)),
                );
                continue;
            }
            let Some(row) = self
                .store
                .added_rows(AddedStart::At(&version.row), 1)?
                .into_iter()
                .next()
                .filter(|row| row.key == version.row)
            else {
                return Err(StoreError::corrupt(
                    &version.row,
                    "TAXII index names a missing entry",
                ));
            };
            if !self.holds(&row.entry.entry().author) {
                continue;
            }
            found.extend(
                self.item_objects(&row.entry, row.added, version.item)?
                    .into_iter()
                    .filter(|listed| listed.id() == id && listed.org == Some(version.org)),
            );
        }
        Ok(found)
    }
}
