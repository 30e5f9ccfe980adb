//! What an indicator object says beyond its value, step by step: labels, confidence,
//! description and kill-chain phase, external references, the creator, and the threat
//! and campaign its `indicates` relationships point at. What does not fit the protocol's
//! limits is dropped and noted; the indicator itself is never refused for it.

use serde_json::{Map, Value};
use threatmesh_protocol::Kind;
use threatmesh_protocol::Value as Indicated;
use threatmesh_protocol::item::{
    Confidence, Context, ExternalReference, Indicator, MAX_LABEL_BYTES, MAX_LABELS, MAX_NAME_BYTES,
    MAX_REFERENCE_URL_BYTES, MAX_REFERENCES, MAX_TEXT_BYTES,
};

use super::{Importer, THREAT_TYPES, clip, fitted, text};
use crate::formats::Refusal;

impl<'a> Importer<'a> {
    /// Labels, confidence, description, kill-chain phase, references, the creator and
    /// the threat and campaign of `indicates` relationships. What does not fit the
    /// protocol's limits is dropped and noted.
    pub(super) fn annotate(
        &mut self,
        object: &'a Map<String, Value>,
        at: &str,
        indicator: &mut Indicator,
        notes: &mut Vec<Refusal>,
    ) {
        let mut note = |field: String, reason: String| {
            notes.push(Refusal {
                at: format!("{at} {field}"),
                reason,
            });
        };
        add_labels(object, &mut indicator.labels, &mut note);
        read_confidence(object, indicator, &mut note);
        describe(object, &mut indicator.context, &mut note);
        add_references(object, &indicator.value, &mut indicator.context, &mut note);
        self.add_creator(object, &mut indicator.context, &mut note);
        self.link_threats(object, &mut indicator.context, &mut note);
    }

    /// The creator (`created_by_ref`) as a reference named after its identity, when the
    /// file has that identity (which then counts as used).
    fn add_creator(
        &mut self,
        object: &Map<String, Value>,
        context: &mut Context,
        note: &mut impl FnMut(String, String),
    ) {
        let Some(creator) = text(object, "created_by_ref").filter(|id| id.len() <= 256) else {
            return;
        };
        let identity = self.by_id.get(creator).copied().filter(|&position| {
            self.objects[position].get("type").and_then(Value::as_str) == Some("identity")
        });
        let name = identity
            .and_then(|position| self.objects[position].get("name"))
            .and_then(Value::as_str)
            .filter(|name| !name.is_empty() && name.len() <= MAX_NAME_BYTES);
        let reference = ExternalReference {
            source: name.unwrap_or("stix-identity").to_owned(),
            external_id: Some(creator.to_owned()),
            url: None,
        };
        if let Some(position) = identity {
            self.used[position] = true;
        }
        if !context.external_references.contains(&reference) {
            if context.external_references.len() < MAX_REFERENCES {
                context.external_references.push(reference);
            } else {
                note(
                    "created_by_ref".into(),
                    format!(
                        "not kept as a reference: an indicator holds at most \
                         {MAX_REFERENCES}"
                    ),
                );
            }
        }
    }

    /// The threat (malware, threat actor, intrusion set, tool) and campaign the object's
    /// `indicates` relationships point at, the first of each; relationships and targets
    /// used so count as used.
    fn link_threats(
        &mut self,
        object: &Map<String, Value>,
        context: &mut Context,
        note: &mut impl FnMut(String, String),
    ) {
        let Some(id) = text(object, "id") else {
            return;
        };
        let links = self.links.get(id).cloned().unwrap_or_default();
        for relationship in links {
            let target = self.objects[relationship]
                .get("target_ref")
                .and_then(Value::as_str)
                .and_then(|target| self.by_id.get(target).copied());
            let Some(target) = target else {
                continue;
            };
            let target_object = &self.objects[target];
            let target_type = target_object.get("type").and_then(Value::as_str);
            let Some(name) = target_object
                .get("name")
                .and_then(Value::as_str)
                .filter(|name| !name.is_empty())
            else {
                continue;
            };
            let slot = match target_type {
                Some(kind) if THREAT_TYPES.contains(&kind) => &mut context.threat,
                Some("campaign") => &mut context.campaign,
                _ => continue,
            };
            if slot.is_none() {
                *slot = Some(fitted(name, MAX_NAME_BYTES, "name of its threat", note).into());
            }
            self.used[relationship] = true;
            self.used[target] = true;
        }
    }
}

/// `labels`, then `indicator_types`, each label once, up to the protocol's limits.
fn add_labels(
    object: &Map<String, Value>,
    labels: &mut Vec<String>,
    note: &mut impl FnMut(String, String),
) {
    // `labels` first: an export writes every label there, in order, and repeats the
    // vocabulary ones in `indicator_types`.
    'labels: for field in ["labels", "indicator_types"] {
        let Some(list) = object.get(field).and_then(Value::as_array) else {
            continue;
        };
        for (index, label) in list.iter().enumerate() {
            let Some(label) = label.as_str() else {
                note(format!("{field}[{index}]"), "not a string; dropped".into());
                continue;
            };
            if labels.iter().any(|known| known == label) {
                continue;
            }
            if label.is_empty() || label.len() > MAX_LABEL_BYTES {
                note(
                    format!("{field}[{index}]"),
                    format!(
                        "label of {} bytes dropped: labels hold 1 to {MAX_LABEL_BYTES}",
                        label.len()
                    ),
                );
                continue;
            }
            if labels.len() == MAX_LABELS {
                note(
                    format!("{field}[{index}..]"),
                    format!("dropped: an indicator holds at most {MAX_LABELS} labels"),
                );
                break 'labels;
            }
            labels.push(label.to_owned());
        }
    }
}

/// `confidence`, when it is a whole number 0-100; the default stays otherwise.
fn read_confidence(
    object: &Map<String, Value>,
    indicator: &mut Indicator,
    note: &mut impl FnMut(String, String),
) {
    match object.get("confidence") {
        None | Some(Value::Null) => {}
        Some(confidence) => {
            let parsed = confidence
                .as_u64()
                .and_then(|n| u8::try_from(n).ok())
                .and_then(|n| Confidence::new(n).ok());
            match parsed {
                Some(parsed) => indicator.confidence = parsed,
                None => note(
                    "confidence".into(),
                    format!(
                        "{} is not a whole number 0-100; the default {} is used",
                        clip(&confidence.to_string(), 40),
                        Confidence::DEFAULT.get()
                    ),
                ),
            }
        }
    }
}

/// The description (`description`, else `name`) and the first kill-chain phase.
fn describe(
    object: &Map<String, Value>,
    context: &mut Context,
    note: &mut impl FnMut(String, String),
) {
    for field in ["description", "name"] {
        if let Some(text) = text(object, field).filter(|text| !text.is_empty()) {
            context.description = Some(fitted(text, MAX_TEXT_BYTES, field, note).to_owned());
            break;
        }
    }
    let phase = object
        .get("kill_chain_phases")
        .and_then(|phases| phases.get(0))
        .and_then(|phase| phase.get("phase_name"))
        .and_then(Value::as_str)
        .filter(|phase| !phase.is_empty());
    if let Some(phase) = phase {
        let field = "kill_chain_phases[0].phase_name";
        context.kill_chain_phase = Some(fitted(phase, MAX_NAME_BYTES, field, note).into());
    }
}

/// `external_references` that fit, up to the protocol's limit; a vulnerability's own CVE
/// reference is its value and is left out.
fn add_references(
    object: &Map<String, Value>,
    value: &Indicated,
    context: &mut Context,
    note: &mut impl FnMut(String, String),
) {
    let references = object
        .get("external_references")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    for (index, reference) in references.iter().enumerate() {
        let field = || format!("external_references[{index}]");
        let Some(source) = reference
            .get("source_name")
            .and_then(Value::as_str)
            .filter(|source| !source.is_empty())
        else {
            note(field(), "no source_name; dropped".into());
            continue;
        };
        let external_id = reference.get("external_id").and_then(Value::as_str);
        let url = reference.get("url").and_then(Value::as_str);
        // A vulnerability's own CVE reference is its value, not context.
        if value.kind() == Kind::Cve
            && source.eq_ignore_ascii_case("cve")
            && external_id.is_some_and(|id| id.eq_ignore_ascii_case(value.as_str()))
        {
            continue;
        }
        let fits = source.len() <= MAX_NAME_BYTES
            && external_id.is_none_or(|id| id.len() <= MAX_NAME_BYTES)
            && url.is_none_or(|url| url.len() <= MAX_REFERENCE_URL_BYTES);
        if !fits {
            note(
                field(),
                format!(
                    "dropped: longer than a reference holds (source and id \
                     {MAX_NAME_BYTES} bytes, url {MAX_REFERENCE_URL_BYTES})"
                ),
            );
            continue;
        }
        if context.external_references.len() == MAX_REFERENCES {
            note(
                format!("external_references[{index}..]"),
                format!("dropped: an indicator holds at most {MAX_REFERENCES} references"),
            );
            break;
        }
        context.external_references.push(ExternalReference {
            source: source.to_owned(),
            external_id: external_id.map(str::to_owned),
            url: url.map(str::to_owned),
        });
    }
}
