//! Stored entries to STIX 2.1 objects.
//!
//! Everything here is a pure function of (entry, entry id, publisher, [`KeptIds`]), so two
//! nodes that hold the same entry serve byte-identical JSON (`serde_json`'s maps are
//! sorted by key), except that a node of the publishing organisation writes the STIX ids
//! that organisation's indicators kept as they are, where others namespace them.
//! The TAXII server pages these objects at high rates, so each object is built once as an
//! [`Object`] that borrows from the entry and is written straight into the answer
//! ([`EntryExport::item_objects`]); the `serde_json::Value`s the other exports assemble
//! are made from the same objects.

mod object;
mod objects;

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value, json};
use threatmesh_protocol::bundle::Tlp;
use threatmesh_protocol::item::Item;
use threatmesh_protocol::{Body, Entry, Hash, PublicKey, Timestamp, Value as Indicated};

use super::{bundle_id, identity_id, marking, relationship_id, sighting_id, timestamp};
pub use object::Object;
use objects::Common;
pub(super) use objects::reason_name;

use crate::formats::Publisher;
use crate::warninglists::Warninglists;

/// The kill chain exported phases are named in: threatmesh keeps the phase name only.
const KILL_CHAIN_NAME: &str = "threatmesh";

/// STIX's largest sighting count.
const MAX_SIGHTING_COUNT: u64 = 999_999_999;

/// The `indicator-type-ov` vocabulary: labels from it also go to `indicator_types`.
const INDICATOR_TYPES: [&str; 7] = [
    "anomalous-activity",
    "anonymization",
    "benign",
    "compromised",
    "malicious-activity",
    "attribution",
    "unknown",
];

/// Whose kept STIX ids (`context.stix_id`) an export writes as they are. Any member can
/// put any id there, so only the exporting node's own organisation is taken at its word,
/// and only by its own nodes: the node knows which organisation it serves, and that
/// organisation's entries are the ones it signed itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeptIds {
    /// Nobody's: every kept id is exported namespaced by its publisher ([`kept_id`](super::kept_id)).
    /// For exporters that do not know which organisation they serve.
    Namespaced,
    /// Those of this organisation, the exporting node's own; every other organisation's
    /// are namespaced.
    Own(PublicKey),
}

impl KeptIds {
    /// The policy of a node that belongs to organisation `own`, if the charter names it.
    pub fn of_node(own: Option<PublicKey>) -> KeptIds {
        own.map_or(KeptIds::Namespaced, KeptIds::Own)
    }

    /// Whether the kept ids of organisation `org` are written as they are.
    fn verbatim(self, org: &PublicKey) -> bool {
        self == KeptIds::Own(*org)
    }
}

/// The property that names the warninglists an exported indicator's value is on, a list
/// of list ids; absent when it is on none. Added as STIX 2.1 wants custom properties now
/// (section 7.3): a top-level property declared by the extension
/// [`WARNINGLISTS_EXTENSION`], which the object names in its `extensions`.
pub const WARNINGLISTS_PROPERTY: &str = "x_threatmesh_warninglists";

/// The id of the extension definition declaring [`WARNINGLISTS_PROPERTY`] (a UUIDv5 of
/// a fixed name, so every node writes the same).
pub const WARNINGLISTS_EXTENSION: &str =
    "extension-definition--9b14dc6f-1aed-5870-9632-788738eb72cb";

/// The extension definition of [`WARNINGLISTS_PROPERTY`] and the identity that defines
/// it (threatmesh itself), fixed so that every node writes the same objects.
pub fn warninglists_extension() -> [Value; 2] {
    const DEFINED: &str = "2026-12-07T00:00:00.000Z";
    const AUTHOR: &str = "identity--09f20198-df1b-5149-b045-9a0fa114e710";
    [
        json!({
            "type": "identity",
            "spec_version": "2.1",
            "id": AUTHOR,
            "created": DEFINED,
            "modified": DEFINED,
            "name": "threatmesh",
            "identity_class": "system",
        }),
        json!({
            "type": "extension-definition",
            "spec_version": "2.1",
            "id": WARNINGLISTS_EXTENSION,
            "created_by_ref": AUTHOR,
            "created": DEFINED,
            "modified": DEFINED,
            "name": "threatmesh warninglists",
            "description": "Marks an indicator whose value is on a MISP warninglist (a \
                likely false positive: a public DNS resolver, a private address, a top domain).",
            "schema": "x_threatmesh_warninglists: a list of MISP warninglist ids (the lists' \
                folder names in MISP/misp-warninglists, e.g. rfc1918), the lists the indicator's \
                value is on.",
            "version": "1.0.0",
            "extension_types": ["toplevel-property-extension"],
            "extension_properties": [WARNINGLISTS_PROPERTY],
        }),
    ]
}

/// The STIX objects one stored entry exports to, in a stable order: the publisher's
/// identity, the TLP marking definition, then the objects of the items. Deterministic:
/// same entry + publisher + `kept` -> same JSON on every node.
pub fn export_entry(
    entry: &Entry,
    entry_id: &Hash,
    publisher: &Publisher,
    kept: KeptIds,
) -> Vec<Value> {
    export_entry_marked(entry, entry_id, publisher, kept, None)
}

/// [`export_entry`], each indicator on one of `warninglists` marked with the lists'
/// names in the custom property [`WARNINGLISTS_PROPERTY`].
pub fn export_entry_marked(
    entry: &Entry,
    entry_id: &Hash,
    publisher: &Publisher,
    kept: KeptIds,
    warninglists: Option<&Warninglists>,
) -> Vec<Value> {
    // A sealed entry is exported only as the bundle this node opened (see
    // `formats::readable_entry`); one still sealed exports nothing.
    let Some(mut export) = EntryExport::new(entry, entry_id, publisher, kept) else {
        return Vec::new();
    };
    export.common.warninglists = warninglists;
    let mut objects = Vec::with_capacity(export.items() * 2 + 2);
    objects.push(identity_object(publisher, &identity_id(&publisher.org)));
    objects.push(marking::definition(export.common.tlp));
    let mut named = HashSet::new();
    let mut item = Vec::new();
    for index in 0..export.items() {
        export.item_objects(index, &mut named, &mut item);
        objects.extend(item.drain(..).map(Object::into_value));
    }
    objects
}

/// One entry being exported item by item, for readers that need to know which item an
/// object comes from, or want one item's objects without the rest (the TAXII server
/// looks single objects up this way).
#[derive(Debug)]
pub struct EntryExport<'a> {
    common: Common<'a>,
    /// The items exported: the entry's, or one of them ([`EntryExport::one_item`]).
    items: &'a [Item],
    /// The entry's index of `items[0]`.
    first: usize,
    entry_id: &'a Hash,
    /// The indicator id of every value the entry asserts, when it also has sightings.
    asserted: HashMap<&'a Indicated, String>,
    /// The `modified` of the entry's objects as their JSON writes it (the entry's
    /// creation, clamped to what STIX timestamps can say), for [`EntryExport::item_versions`].
    modified: Timestamp,
}

impl<'a> EntryExport<'a> {
    /// Prepares `entry` (with id `entry_id`, published by `publisher`) for export, kept
    /// STIX ids as `kept` says; `None` when its body is sealed (export the bundle this
    /// node opened instead).
    pub fn new(
        entry: &'a Entry,
        entry_id: &'a Hash,
        publisher: &'a Publisher,
        kept: KeptIds,
    ) -> Option<EntryExport<'a>> {
        let Body::Bundle(bundle) = &entry.body else {
            return None;
        };
        let common = Common::new(entry.created, bundle.tlp, publisher, kept);
        // Sightings point at the indicator of their value; when this entry asserts it too,
        // at the id that indicator exports under (it may have kept an imported id).
        let asserted = if bundle
            .items
            .iter()
            .any(|item| matches!(item, Item::Sighting(_)))
        {
            bundle
                .items
                .iter()
                .filter_map(|item| match item {
                    Item::Indicator(indicator) => {
                        Some((&indicator.value, common.indicator_id(indicator)))
                    }
                    _ => None,
                })
                .collect()
        } else {
            HashMap::new()
        };
        Some(EntryExport {
            common,
            items: &bundle.items,
            first: 0,
            entry_id,
            asserted,
            modified: Timestamp(entry.created.as_millis().min(timestamp::LATEST_MILLIS)),
        })
    }

    /// Prepares item `index` of a clear entry (created at `created`, marked `tlp`) for
    /// export alone, as [`EntryExport::new`] would export it: for a reader that decoded
    /// that item only (`ClearItem::read`). `None` for a sighting, whose object points at
    /// the indicator another item of the entry may assert: export it from the whole entry.
    pub fn one_item(
        created: Timestamp,
        tlp: Tlp,
        item: &'a Item,
        index: usize,
        entry_id: &'a Hash,
        publisher: &'a Publisher,
        kept: KeptIds,
    ) -> Option<EntryExport<'a>> {
        if matches!(item, Item::Sighting(_)) {
            return None;
        }
        Some(EntryExport {
            common: Common::new(created, tlp, publisher, kept),
            items: std::slice::from_ref(item),
            first: index,
            entry_id,
            asserted: HashMap::new(),
            modified: Timestamp(created.as_millis().min(timestamp::LATEST_MILLIS)),
        })
    }

    /// Item `index` of the entry, if this export holds it.
    fn get(&self, index: usize) -> Option<&'a Item> {
        index
            .checked_sub(self.first)
            .and_then(|at| self.items.get(at))
    }

    /// Marks each indicator on one of `warninglists` with the lists' names
    /// ([`WARNINGLISTS_PROPERTY`]).
    pub fn marked(mut self, warninglists: &'a Warninglists) -> EntryExport<'a> {
        self.common.warninglists = Some(warninglists);
        self
    }

    /// How many items the entry holds (for [`EntryExport::one_item`]: the items up to
    /// and with the one it holds).
    pub fn items(&self) -> usize {
        self.first + self.items.len()
    }

    /// Appends the objects of item `index` to `objects` as JSON values: see
    /// [`EntryExport::item_objects`].
    pub fn item(&self, index: usize, named: &mut HashSet<String>, objects: &mut Vec<Value>) {
        let mut made = Vec::new();
        self.item_objects(index, named, &mut made);
        objects.extend(made.into_iter().map(Object::into_value));
    }

    /// Appends the objects of item `index` to `objects`: its indicator, vulnerability,
    /// revocation or sighting, then the malware and campaign it names (each only the first
    /// time `named` sees it) with their `indicates` relationships. Nothing for an index
    /// past the end.
    pub fn item_objects<'s>(
        &'s self,
        index: usize,
        named: &mut HashSet<String>,
        objects: &mut Vec<Object<'s>>,
    ) {
        let Some(item) = self.get(index) else {
            return;
        };
        let common = &self.common;
        match item {
            Item::Indicator(indicator) => {
                let object = common.indicator(indicator);
                let id = object.id().to_owned();
                objects.push(object);
                common.relate(indicator, &id, named, objects);
            }
            Item::Revocation(revocation) => objects.push(common.revocation(revocation)),
            Item::Sighting(sighting) => {
                let of = self
                    .asserted
                    .get(&sighting.value)
                    .cloned()
                    .unwrap_or_else(|| common.value_id(&sighting.value));
                objects.push(common.sighting(sighting, sighting_id(self.entry_id, index), of));
            }
        }
    }

    /// How many objects [`EntryExport::item_objects`] appends for item `index`, with
    /// `named` updated as it would be, without making them: a reader resuming inside an
    /// entry skips the items before it at this cost.
    pub fn count_item_objects(&self, index: usize, named: &mut HashSet<String>) -> usize {
        match self.get(index) {
            None => 0,
            Some(Item::Indicator(indicator)) => 1 + self.common.count_related(indicator, named),
            Some(Item::Revocation(_) | Item::Sighting(_)) => 1,
        }
    }

    /// The id and version (`modified`) of each object [`EntryExport::item`] appends for
    /// item `index`, in the same order, without building the objects: what an index of
    /// the exported objects needs, for a fraction of the cost (no JSON, pattern or
    /// warninglist lookup). `named` plays the same part as in [`EntryExport::item`].
    pub fn item_versions(
        &self,
        index: usize,
        named: &mut HashSet<String>,
        versions: &mut Vec<(String, Timestamp)>,
    ) {
        let Some(item) = self.get(index) else {
            return;
        };
        let common = &self.common;
        match item {
            Item::Indicator(indicator) => {
                let source = common.indicator_id(indicator);
                versions.push((source.clone(), self.modified));
                // In the order `Common::relate` makes them.
                for (_, _, target) in common.related(indicator) {
                    let relationship = relationship_id(&source, &target);
                    if named.insert(target.clone()) {
                        // Named objects have one version, dated the epoch.
                        versions.push((target, Timestamp::EPOCH));
                    }
                    versions.push((relationship, self.modified));
                }
            }
            Item::Revocation(revocation) => {
                versions.push((common.value_id(&revocation.value), self.modified));
            }
            Item::Sighting(_) => {
                versions.push((sighting_id(self.entry_id, index), self.modified));
            }
        }
    }
}

/// A whole bundle of the given entries (identities, markings, malware and campaigns
/// de-duplicated), with a deterministic bundle id; kept STIX ids as `kept` says.
pub fn export_bundle<'a>(
    entries: impl IntoIterator<Item = (&'a Entry, Hash, &'a Publisher)>,
    kept: KeptIds,
) -> Value {
    export_bundle_marked(entries, kept, None)
}

/// [`export_bundle`] with indicators on one of `warninglists` marked, as
/// [`export_entry_marked`] does.
pub fn export_bundle_marked<'a>(
    entries: impl IntoIterator<Item = (&'a Entry, Hash, &'a Publisher)>,
    kept: KeptIds,
    warninglists: Option<&Warninglists>,
) -> Value {
    let mut objects = Vec::new();
    let mut entry_ids = Vec::new();
    let mut shared: HashSet<String> = HashSet::new();
    let mut marked = false;
    for (entry, entry_id, publisher) in entries {
        for object in export_entry_marked(entry, &entry_id, publisher, kept, warninglists) {
            marked |= object.get(WARNINGLISTS_PROPERTY).is_some();
            let is_shared = matches!(
                object.get("type").and_then(Value::as_str),
                Some("identity" | "marking-definition" | "malware" | "campaign")
            );
            if is_shared {
                let id = object.get("id").and_then(Value::as_str).unwrap_or_default();
                if !shared.insert(id.to_owned()) {
                    continue;
                }
            }
            objects.push(object);
        }
        entry_ids.push(entry_id);
    }
    if marked {
        // The definition of the property the marked indicators use, for consumers that
        // look extensions up in the bundle.
        objects.extend(warninglists_extension());
    }
    let mut bundle = Map::new();
    bundle.insert("type".into(), "bundle".into());
    bundle.insert("id".into(), bundle_id(&entry_ids).into());
    // STIX wants a present `objects` to be non-empty.
    if !objects.is_empty() {
        bundle.insert("objects".into(), Value::Array(objects));
    }
    Value::Object(bundle)
}

/// The STIX identity of `publisher`, as every export writes it.
pub fn identity(publisher: &Publisher) -> Value {
    identity_object(publisher, &identity_id(&publisher.org))
}

/// The TLP 2.0 marking definition of `tlp`, exactly as published with the TLP 2.0
/// extension.
pub fn tlp_marking(tlp: threatmesh_protocol::bundle::Tlp) -> Value {
    marking::definition(tlp)
}

fn identity_object(publisher: &Publisher, id: &str) -> Value {
    let epoch = timestamp::format(Timestamp::EPOCH);
    json!({
        "type": "identity",
        "spec_version": "2.1",
        "id": id,
        "created": epoch,
        "modified": epoch,
        "name": publisher.name,
        "identity_class": "organization",
        "description": format!(
            "threatmesh federation member (country {}, organisation key {})",
            publisher.country, publisher.org
        ),
    })
}
