//! The objects of one entry's items: what they share ([`Common`]: creator, time,
//! markings), and each item's indicator or vulnerability, revocation, sighting, and the
//! malware and campaign it indicates, with their relationships.

use std::collections::HashSet;

use serde_json::{Map, Value, json};
use threatmesh_protocol::item::{
    Context, ExternalReference, Indicator, Revocation, RevocationReason, Sighting,
};
use threatmesh_protocol::{Kind, Timestamp, Tlp, Value as Indicated};

use super::{
    INDICATOR_TYPES, KILL_CHAIN_NAME, MAX_SIGHTING_COUNT, WARNINGLISTS_EXTENSION,
    WARNINGLISTS_PROPERTY,
};
use crate::formats::Publisher;
use crate::formats::stix::{
    indicator_id, is_id_of, kept_id, named_id, pattern, relationship_id, timestamp,
    vulnerability_id,
};
use crate::warninglists::Warninglists;

/// What every object of one entry shares.
#[derive(Debug)]
pub(super) struct Common<'a> {
    pub(super) identity: Value,
    pub(super) created: Value,
    pub(super) markings: Value,
    pub(super) tlp: Tlp,
    pub(super) publisher: &'a Publisher,
    /// Whether this node writes the publisher's kept STIX ids as they are.
    pub(super) kept_verbatim: bool,
    /// Lists whose names mark the indicators on them.
    pub(super) warninglists: Option<&'a Warninglists>,
}

impl Common<'_> {
    /// The malware (`context.threat`) and campaign of an indicator, each with its
    /// `indicates` relationship. CVEs have none: only indicators indicate.
    pub(super) fn relate(
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
    pub(super) fn named_object(&self, object_type: &'static str, id: &str, name: &str) -> Value {
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
    pub(super) fn base(&self, object_type: &'static str, id: String) -> Map<String, Value> {
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

    pub(super) fn indicator(&self, indicator: &Indicator) -> Value {
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

    pub(super) fn revocation(&self, revocation: &Revocation) -> Value {
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
    pub(super) fn describe(&self, value: &Indicated, object: &mut Map<String, Value>) -> bool {
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

    pub(super) fn sighting(&self, sighting: &Sighting, id: String, of: String) -> Value {
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
pub(in crate::formats::stix) fn reason_name(reason: RevocationReason) -> &'static str {
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
