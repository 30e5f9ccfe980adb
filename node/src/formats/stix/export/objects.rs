//! The objects of one entry's items: what they share ([`Common`]: creator, time,
//! markings), and each item's indicator or vulnerability, revocation, sighting, and the
//! malware and campaign it indicates, with their relationships, each an [`Object`] that
//! borrows what it can from the entry.

use std::collections::HashSet;

use threatmesh_protocol::item::{
    Context, ExternalReference, Indicator, Revocation, RevocationReason, Sighting,
};
use threatmesh_protocol::{Kind, Timestamp, Tlp, Value as Indicated};

use super::object::{Field, Object, Reference};
use super::{
    INDICATOR_TYPES, KILL_CHAIN_NAME, MAX_SIGHTING_COUNT, WARNINGLISTS_EXTENSION,
    WARNINGLISTS_PROPERTY,
};
use crate::formats::Publisher;
use crate::formats::stix::{
    KeptIds, identity_id, indicator_id, is_id_of, kept_id, marking, named_id, pattern,
    relationship_id, timestamp, vulnerability_id,
};
use crate::warninglists::Warninglists;

/// What every object of one entry shares.
#[derive(Debug)]
pub(super) struct Common<'a> {
    pub(super) identity: String,
    pub(super) created: String,
    pub(super) marking: &'static str,
    pub(super) tlp: Tlp,
    pub(super) publisher: &'a Publisher,
    /// Whether this node writes the publisher's kept STIX ids as they are.
    pub(super) kept_verbatim: bool,
    /// Lists whose names mark the indicators on them.
    pub(super) warninglists: Option<&'a Warninglists>,
}

impl<'a> Common<'a> {
    /// What the objects of an entry created at `created`, marked `tlp` and published by
    /// `publisher` share; kept STIX ids as `kept` says.
    pub(super) fn new(
        created: Timestamp,
        tlp: Tlp,
        publisher: &'a Publisher,
        kept: KeptIds,
    ) -> Common<'a> {
        Common {
            identity: identity_id(&publisher.org),
            created: timestamp::format(created),
            marking: marking::tlp2_id(tlp),
            tlp,
            publisher,
            kept_verbatim: kept.verbatim(&publisher.org),
            warninglists: None,
        }
    }

    /// What an indicator names: its malware (`context.threat`) and its campaign, each as
    /// (STIX type, name, id). Nothing for a CVE: only indicators indicate.
    pub(super) fn related<'i>(
        &self,
        indicator: &'i Indicator,
    ) -> impl Iterator<Item = (&'static str, &'i str, String)> {
        let context = &indicator.context;
        let targets = if indicator.value.kind() == Kind::Cve {
            [None, None]
        } else {
            [
                context.threat.as_deref().map(|name| ("malware", name)),
                context.campaign.as_deref().map(|name| ("campaign", name)),
            ]
        };
        targets
            .into_iter()
            .flatten()
            .map(move |(target_type, name)| {
                let id = named_id(target_type, &self.publisher.org, self.tlp, name);
                (target_type, name, id)
            })
    }

    /// The malware and campaign an indicator names ([`Common::related`]), each with its
    /// `indicates` relationship; a named object already in `named` is not made again.
    pub(super) fn relate<'s>(
        &'s self,
        indicator: &'s Indicator,
        source: &str,
        named: &mut HashSet<String>,
        objects: &mut Vec<Object<'s>>,
    ) {
        for (target_type, name, target) in self.related(indicator) {
            if named.insert(target.clone()) {
                objects.push(self.named_object(target_type, target.clone(), name));
            }
            let mut relationship = self.base("relationship", relationship_id(source, &target));
            relationship.insert("relationship_type", Field::Str("indicates"));
            relationship.insert("source_ref", Field::String(source.to_owned()));
            relationship.insert("target_ref", Field::String(target));
            objects.push(relationship);
        }
    }

    /// How many objects [`Common::relate`] appends for `indicator`, with `named` updated
    /// as it would be, without making them.
    pub(super) fn count_related(
        &self,
        indicator: &Indicator,
        named: &mut HashSet<String>,
    ) -> usize {
        self.related(indicator)
            .map(|(_, _, target)| 1 + usize::from(named.insert(target)))
            .sum()
    }

    /// A malware family or campaign known by name only. Its content is the name, so it
    /// has one version (dated the epoch) everywhere.
    pub(super) fn named_object<'s>(
        &'s self,
        object_type: &'static str,
        id: String,
        name: &'s str,
    ) -> Object<'s> {
        let epoch = timestamp::format(Timestamp::EPOCH);
        let mut object = self.base(object_type, id);
        object.insert("created", Field::String(epoch.clone()));
        object.insert("modified", Field::String(epoch));
        object.insert("name", Field::Str(name));
        if object_type == "malware" {
            object.insert("is_family", Field::Bool(true));
        }
        object
    }

    /// `type`, `spec_version`, `id`, `created_by_ref`, `created`, `modified` and the
    /// marking.
    pub(super) fn base<'s>(&'s self, object_type: &'static str, id: String) -> Object<'s> {
        let mut object = Object::new();
        object.insert("type", Field::Str(object_type));
        object.insert("spec_version", Field::Str("2.1"));
        object.insert("id", Field::String(id));
        object.insert("created_by_ref", Field::Str(&self.identity));
        object.insert("created", Field::Str(&self.created));
        object.insert("modified", Field::Str(&self.created));
        object.insert("object_marking_refs", Field::One(self.marking));
        object
    }

    /// The id of this publisher's indicator (or vulnerability) of `value`.
    pub(super) fn value_id(&self, value: &Indicated) -> String {
        if value.kind() == Kind::Cve {
            vulnerability_id(&self.publisher.org, value)
        } else {
            indicator_id(&self.publisher.org, value)
        }
    }

    /// The id an indicator exports under: its kept STIX id, as it is on a node of its
    /// own organisation, else namespaced by the publisher; without one, the value's id.
    pub(super) fn indicator_id(&self, indicator: &Indicator) -> String {
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

    pub(super) fn indicator<'s>(&'s self, indicator: &'s Indicator) -> Object<'s> {
        let value = &indicator.value;
        let mut object = self.base(object_type(value), self.indicator_id(indicator));
        if !self.describe(value, &mut object) {
            let mut valid_from = String::with_capacity(24);
            timestamp::write(indicator.valid_from, &mut valid_from);
            object.insert("valid_from", Field::String(valid_from));
            if let Some(until) = indicator.valid_until
                && until.as_millis().min(timestamp::LATEST_MILLIS)
                    > indicator.valid_from.as_millis()
            {
                object.insert("valid_until", Field::String(timestamp::format(until)));
            }
        }
        object.insert(
            "confidence",
            Field::Number(u64::from(indicator.confidence.get())),
        );
        add_labels(&indicator.labels, value.kind() != Kind::Cve, &mut object);
        add_context(&indicator.context, value, &mut object);
        if let Some(lists) = self.warninglists {
            let on = lists.ids(value);
            if !on.is_empty() {
                object.insert(WARNINGLISTS_PROPERTY, Field::Strs(on));
                object.insert(
                    "extensions",
                    Field::ToplevelExtension(WARNINGLISTS_EXTENSION),
                );
            }
        }
        object
    }

    pub(super) fn revocation<'s>(&'s self, revocation: &'s Revocation) -> Object<'s> {
        let value = &revocation.value;
        let mut object = self.base(object_type(value), self.value_id(value));
        if !self.describe(value, &mut object) {
            object.insert("valid_from", Field::Str(&self.created));
        }
        object.insert("revoked", Field::Bool(true));
        let reason = reason_name(revocation.reason);
        let description = match &revocation.note {
            Some(note) => Field::String(format!("{reason}: {note}")),
            None => Field::Str(reason),
        };
        object.insert("description", description);
        object
    }

    /// Writes the value's own properties: `name` and `pattern` of an indicator, or
    /// `name` and the `cve` reference of a vulnerability. True for a vulnerability.
    pub(super) fn describe<'s>(&self, value: &'s Indicated, object: &mut Object<'s>) -> bool {
        object.insert("name", Field::Str(value.as_str()));
        match pattern::of(value) {
            Some(pattern) => {
                object.insert("pattern", Field::String(pattern));
                object.insert("pattern_type", Field::Str("stix"));
                object.insert("pattern_version", Field::Str("2.1"));
                false
            }
            None => {
                object.insert(
                    "external_references",
                    Field::References(vec![Reference {
                        source_name: "cve",
                        description: None,
                        external_id: Some(value.as_str()),
                        url: None,
                    }]),
                );
                true
            }
        }
    }

    pub(super) fn sighting<'s>(
        &'s self,
        sighting: &'s Sighting,
        id: String,
        of: String,
    ) -> Object<'s> {
        let mut object = self.base("sighting", id);
        object.insert("sighting_of_ref", Field::String(of));
        object.insert("where_sighted_refs", Field::One(&self.identity));
        object.insert(
            "count",
            Field::Number(sighting.count.min(MAX_SIGHTING_COUNT)),
        );
        object.insert(
            "first_seen",
            Field::String(timestamp::format(sighting.first_seen)),
        );
        object.insert(
            "last_seen",
            Field::String(timestamp::format(sighting.last_seen)),
        );
        if let Some(note) = &sighting.note {
            object.insert("description", Field::Str(note));
        }
        object
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
pub(in crate::formats::stix) fn reason_name(reason: RevocationReason) -> &'static str {
    match reason {
        RevocationReason::FalsePositive => "false-positive",
        RevocationReason::Expired => "expired",
        RevocationReason::TakenDown => "taken-down",
        RevocationReason::Other => "other",
    }
}

fn add_labels<'s>(labels: &'s [String], indicator_types: bool, object: &mut Object<'s>) {
    if labels.is_empty() {
        return;
    }
    if indicator_types {
        let types: Vec<&str> = labels
            .iter()
            .map(String::as_str)
            .filter(|label| INDICATOR_TYPES.contains(label))
            .collect();
        if !types.is_empty() {
            object.insert("indicator_types", Field::Strs(types));
        }
    }
    object.insert(
        "labels",
        Field::Strs(labels.iter().map(String::as_str).collect()),
    );
}

fn add_context<'s>(context: &'s Context, value: &Indicated, object: &mut Object<'s>) {
    if let Some(description) = &context.description {
        object.insert("description", Field::Str(description));
    }
    // Vulnerabilities have no kill-chain phases in STIX.
    if let Some(phase) = &context.kill_chain_phase
        && value.kind() != Kind::Cve
    {
        object.insert(
            "kill_chain_phases",
            Field::KillChain(KILL_CHAIN_NAME, phase),
        );
    }
    if context.external_references.is_empty() {
        return;
    }
    let mut references = match object.remove("external_references") {
        Some(Field::References(references)) => references,
        _ => Vec::new(),
    };
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
    object.insert("external_references", Field::References(references));
}

fn reference_object(reference: &ExternalReference) -> Reference<'_> {
    // STIX wants a description, url or external_id beside the source name.
    let bare = reference.external_id.is_none() && reference.url.is_none();
    Reference {
        source_name: &reference.source,
        description: bare.then_some(reference.source.as_str()),
        external_id: reference.external_id.as_deref(),
        url: reference.url.as_deref(),
    }
}
