//! Stored entries to STIX 2.1 objects.
//!
//! Everything here is a pure function of (entry, entry id, publisher, [`KeptIds`]), so two
//! nodes that hold the same entry serve byte-identical JSON (`serde_json`'s maps are
//! sorted by key), except that a node of the publishing organisation writes the STIX ids
//! that organisation's indicators kept as they are, where others namespace them.
//! The TAXII server pages these objects at high rates, so each object is built once,
//! straight into its map, with no intermediate structs.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value, json};
use threatmesh_protocol::item::{
    Context, ExternalReference, Indicator, Item, Revocation, RevocationReason, Sighting,
};
use threatmesh_protocol::{Body, Entry, Hash, Kind, PublicKey, Timestamp, Tlp, Value as Indicated};

use super::{
    bundle_id, identity_id, indicator_id, is_id_of, kept_id, marking, named_id, pattern,
    relationship_id, sighting_id, timestamp, vulnerability_id,
};
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
    /// Nobody's: every kept id is exported namespaced by its publisher ([`kept_id`]).
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
    for index in 0..export.items() {
        export.item(index, &mut named, &mut objects);
    }
    objects
}

/// One entry being exported item by item, for readers that need to know which item an
/// object comes from, or want one item's objects without the rest (the TAXII server
/// looks single objects up this way).
#[derive(Debug)]
pub struct EntryExport<'a> {
    common: Common<'a>,
    bundle: &'a threatmesh_protocol::Bundle,
    entry_id: &'a Hash,
    /// The indicator id of every value the entry asserts, when it also has sightings.
    asserted: HashMap<&'a Indicated, String>,
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
        let common = Common {
            identity: Value::String(identity_id(&publisher.org)),
            created: Value::String(timestamp::format(entry.created)),
            markings: json!([marking::tlp2_id(bundle.tlp)]),
            tlp: bundle.tlp,
            publisher,
            kept_verbatim: kept.verbatim(&publisher.org),
            warninglists: None,
        };
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
            bundle,
            entry_id,
            asserted,
        })
    }

    /// Marks each indicator on one of `warninglists` with the lists' names
    /// ([`WARNINGLISTS_PROPERTY`]).
    pub fn marked(mut self, warninglists: &'a Warninglists) -> EntryExport<'a> {
        self.common.warninglists = Some(warninglists);
        self
    }

    /// How many items the entry holds.
    pub fn items(&self) -> usize {
        self.bundle.items.len()
    }

    /// Appends the objects of item `index` to `objects`: its indicator, vulnerability,
    /// revocation or sighting, then the malware and campaign it names (each only the first
    /// time `named` sees it) with their `indicates` relationships. Nothing for an index
    /// past the end.
    pub fn item(&self, index: usize, named: &mut HashSet<String>, objects: &mut Vec<Value>) {
        let Some(item) = self.bundle.items.get(index) else {
            return;
        };
        let common = &self.common;
        match item {
            Item::Indicator(indicator) => {
                let object = common.indicator(indicator);
                let id = object.get("id").and_then(Value::as_str).map(str::to_owned);
                objects.push(object);
                if let Some(id) = id {
                    common.relate(indicator, &id, named, objects);
                }
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

/// What every object of one entry shares.
#[derive(Debug)]
struct Common<'a> {
    identity: Value,
    created: Value,
    markings: Value,
    tlp: Tlp,
    publisher: &'a Publisher,
    /// Whether this node writes the publisher's kept STIX ids as they are.
    kept_verbatim: bool,
    /// Lists whose names mark the indicators on them.
    warninglists: Option<&'a Warninglists>,
}

impl Common<'_> {
    /// The malware (`context.threat`) and campaign of an indicator, each with its
    /// `indicates` relationship. CVEs have none: only indicators indicate.
    fn relate(
        &self,
        indicator: &Indicator,
        source: &str,
        named: &mut HashSet<String>,
        objects: &mut Vec<Value>,
    ) {
        if indicator.value.kind() == Kind::Cve {
            return;
        }
        let context = &indicator.context;
        let targets = [
            ("malware", context.threat.as_deref()),
            ("campaign", context.campaign.as_deref()),
        ];
        for (target_type, name) in targets {
            let Some(name) = name else {
                continue;
            };
            let target = named_id(target_type, &self.publisher.org, self.tlp, name);
            if named.insert(target.clone()) {
                objects.push(self.named_object(target_type, &target, name));
            }
            let mut relationship = self.base("relationship", relationship_id(source, &target));
            relationship.insert("relationship_type".into(), "indicates".into());
            relationship.insert("source_ref".into(), source.into());
            relationship.insert("target_ref".into(), target.into());
            objects.push(Value::Object(relationship));
        }
    }

    /// A malware family or campaign known by name only. Its content is the name, so it
    /// has one version (dated the epoch) everywhere.
    fn named_object(&self, object_type: &'static str, id: &str, name: &str) -> Value {
        let epoch = timestamp::format(Timestamp::EPOCH);
        let mut object = self.base(object_type, id.to_owned());
        object.insert("created".into(), epoch.clone().into());
        object.insert("modified".into(), epoch.into());
        object.insert("name".into(), name.into());
        if object_type == "malware" {
            object.insert("is_family".into(), true.into());
        }
        Value::Object(object)
    }

    /// `type`, `spec_version`, `id`, `created_by_ref`, `created`, `modified` and the
    /// marking.
    fn base(&self, object_type: &'static str, id: String) -> Map<String, Value> {
        let mut object = Map::new();
        object.insert("type".into(), object_type.into());
        object.insert("spec_version".into(), "2.1".into());
        object.insert("id".into(), id.into());
        object.insert("created_by_ref".into(), self.identity.clone());
        object.insert("created".into(), self.created.clone());
        object.insert("modified".into(), self.created.clone());
        object.insert("object_marking_refs".into(), self.markings.clone());
        object
    }

    /// The id of this publisher's indicator (or vulnerability) of `value`.
    fn value_id(&self, value: &Indicated) -> String {
        if value.kind() == Kind::Cve {
            vulnerability_id(&self.publisher.org, value)
        } else {
            indicator_id(&self.publisher.org, value)
        }
    }

    /// The id an indicator exports under: its kept STIX id, as it is on a node of its
    /// own organisation, else namespaced by the publisher; without one, the value's id.
    fn indicator_id(&self, indicator: &Indicator) -> String {
        let object_type = object_type(&indicator.value);
        match &indicator.context.stix_id {
            Some(kept) if is_id_of(object_type, kept) => {
                if self.kept_verbatim {
                    kept.clone()
                } else {
                    kept_id(object_type, &self.publisher.org, kept)
                }
            }
            _ => self.value_id(&indicator.value),
        }
    }

    fn indicator(&self, indicator: &Indicator) -> Value {
        let value = &indicator.value;
        let mut object = self.base(object_type(value), self.indicator_id(indicator));
        if !self.describe(value, &mut object) {
            let mut valid_from = String::with_capacity(24);
            timestamp::write(indicator.valid_from, &mut valid_from);
            object.insert("valid_from".into(), valid_from.into());
            if let Some(until) = indicator.valid_until
                && until.as_millis().min(timestamp::LATEST_MILLIS)
                    > indicator.valid_from.as_millis()
            {
                object.insert("valid_until".into(), timestamp::format(until).into());
            }
        }
        object.insert("confidence".into(), indicator.confidence.get().into());
        add_labels(&indicator.labels, value.kind() != Kind::Cve, &mut object);
        add_context(&indicator.context, value, &mut object);
        if let Some(lists) = self.warninglists {
            let on = lists.ids(value);
            if !on.is_empty() {
                object.insert(WARNINGLISTS_PROPERTY.into(), json!(on));
                let extensions = object.entry("extensions").or_insert_with(|| json!({}));
                if let Some(extensions) = extensions.as_object_mut() {
                    extensions.insert(
                        WARNINGLISTS_EXTENSION.into(),
                        json!({ "extension_type": "toplevel-property-extension" }),
                    );
                }
            }
        }
        Value::Object(object)
    }

    fn revocation(&self, revocation: &Revocation) -> Value {
        let value = &revocation.value;
        let mut object = self.base(object_type(value), self.value_id(value));
        if !self.describe(value, &mut object) {
            object.insert("valid_from".into(), self.created.clone());
        }
        object.insert("revoked".into(), true.into());
        let reason = reason_name(revocation.reason);
        let description = match &revocation.note {
            Some(note) => format!("{reason}: {note}"),
            None => reason.to_owned(),
        };
        object.insert("description".into(), description.into());
        Value::Object(object)
    }

    /// Writes the value's own properties: `name` and `pattern` of an indicator, or
    /// `name` and the `cve` reference of a vulnerability. True for a vulnerability.
    fn describe(&self, value: &Indicated, object: &mut Map<String, Value>) -> bool {
        object.insert("name".into(), value.as_str().into());
        match pattern::of(value) {
            Some(pattern) => {
                object.insert("pattern".into(), pattern.into());
                object.insert("pattern_type".into(), "stix".into());
                object.insert("pattern_version".into(), "2.1".into());
                false
            }
            None => {
                object.insert(
                    "external_references".into(),
                    json!([{"source_name": "cve", "external_id": value.as_str()}]),
                );
                true
            }
        }
    }

    fn sighting(&self, sighting: &Sighting, id: String, of: String) -> Value {
        let mut object = self.base("sighting", id);
        object.insert("sighting_of_ref".into(), of.into());
        object.insert("where_sighted_refs".into(), json!([self.identity]));
        object.insert(
            "count".into(),
            sighting.count.min(MAX_SIGHTING_COUNT).into(),
        );
        object.insert(
            "first_seen".into(),
            timestamp::format(sighting.first_seen).into(),
        );
        object.insert(
            "last_seen".into(),
            timestamp::format(sighting.last_seen).into(),
        );
        if let Some(note) = &sighting.note {
            object.insert("description".into(), note.as_str().into());
        }
        Value::Object(object)
    }
}

/// `indicator`, or `vulnerability` for a CVE.
fn object_type(value: &Indicated) -> &'static str {
    if value.kind() == Kind::Cve {
        "vulnerability"
    } else {
        "indicator"
    }
}

/// The revocation reason's name, as it also reads back on import.
pub(super) fn reason_name(reason: RevocationReason) -> &'static str {
    match reason {
        RevocationReason::FalsePositive => "false-positive",
        RevocationReason::Expired => "expired",
        RevocationReason::TakenDown => "taken-down",
        RevocationReason::Other => "other",
    }
}

fn add_labels(labels: &[String], indicator_types: bool, object: &mut Map<String, Value>) {
    if labels.is_empty() {
        return;
    }
    if indicator_types {
        let types: Vec<Value> = labels
            .iter()
            .filter(|label| INDICATOR_TYPES.contains(&label.as_str()))
            .map(|label| Value::String(label.clone()))
            .collect();
        if !types.is_empty() {
            object.insert("indicator_types".into(), Value::Array(types));
        }
    }
    object.insert(
        "labels".into(),
        labels
            .iter()
            .map(|label| Value::String(label.clone()))
            .collect(),
    );
}

fn add_context(context: &Context, value: &Indicated, object: &mut Map<String, Value>) {
    if let Some(description) = &context.description {
        object.insert("description".into(), description.as_str().into());
    }
    // Vulnerabilities have no kill-chain phases in STIX.
    if let Some(phase) = &context.kill_chain_phase
        && value.kind() != Kind::Cve
    {
        object.insert(
            "kill_chain_phases".into(),
            json!([{"kill_chain_name": KILL_CHAIN_NAME, "phase_name": phase}]),
        );
    }
    if context.external_references.is_empty() {
        return;
    }
    let references = match object.remove("external_references") {
        Some(Value::Array(references)) => references,
        _ => Vec::new(),
    };
    let mut references = references;
    for reference in &context.external_references {
        // The vulnerability's own `cve` reference is written already.
        let is_own_cve = value.kind() == Kind::Cve
            && reference.source == "cve"
            && reference.external_id.as_deref() == Some(value.as_str())
            && reference.url.is_none();
        if !is_own_cve {
            references.push(reference_object(reference));
        }
    }
    object.insert("external_references".into(), Value::Array(references));
}

fn reference_object(reference: &ExternalReference) -> Value {
    let mut object = Map::new();
    object.insert("source_name".into(), reference.source.as_str().into());
    if let Some(id) = &reference.external_id {
        object.insert("external_id".into(), id.as_str().into());
    }
    if let Some(url) = &reference.url {
        object.insert("url".into(), url.as_str().into());
    }
    // STIX wants a description, url or external_id beside the source name.
    if reference.external_id.is_none() && reference.url.is_none() {
        object.insert("description".into(), reference.source.as_str().into());
    }
    Value::Object(object)
}
