//! Reading one object's fields: its pattern's value, a CVE, a revocation, timestamps,
//! flags and text, each with an error that names the field, and text cut to fit.

use serde_json::{Map, Value};
use threatmesh_protocol::item::{Item, MAX_TEXT_BYTES, Revocation, RevocationReason};
use threatmesh_protocol::{Kind, Timestamp, Tlp, Value as Indicated};

use super::Made;
use crate::formats::Refusal;
use crate::formats::stix::export::reason_name;
use crate::formats::stix::{pattern, timestamp};
use crate::formats::truncate_at_char as fit;

/// The value of an indicator object's pattern.
pub(super) fn pattern_value(object: &Map<String, Value>) -> Result<Indicated, String> {
    match object.get("pattern_type") {
        // STIX 2.0 has no pattern_type: its patterns are STIX patterns.
        None | Some(Value::Null) => {}
        Some(Value::String(kind)) if kind == "stix" => {}
        Some(Value::String(kind)) => {
            return Err(format!(
                "pattern_type {:?}: only STIX patterns can be indexed and matched; {} \
                 rules are not kept",
                clip(kind, 40),
                clip(kind, 40)
            ));
        }
        Some(other) => {
            return Err(format!(
                "pattern_type: {} is not a string",
                json_kind(other)
            ));
        }
    }
    let pattern = text(object, "pattern").ok_or("pattern: missing")?;
    pattern::parse(pattern).map_err(|reason| format!("pattern: {reason}"))
}

/// `None` when the vulnerability names no CVE; the CVE, or why it is not one.
pub(super) fn cve_of(object: &Map<String, Value>) -> Option<Result<Indicated, String>> {
    let references = object.get("external_references")?.as_array()?;
    references
        .iter()
        .enumerate()
        .find_map(|(index, reference)| {
            let source = reference.get("source_name").and_then(Value::as_str)?;
            if !source.eq_ignore_ascii_case("cve") {
                return None;
            }
            let id = reference.get("external_id").and_then(Value::as_str)?;
            Some(
                Indicated::parse(Kind::Cve, id).map_err(|invalid| {
                    format!("external_references[{index}].external_id: {invalid}")
                }),
            )
        })
}

/// A revocation of `value`, its reason read back from an exported description
/// (`false-positive: note`), anything else kept as the note.
pub(super) fn revocation(
    value: Indicated,
    object: &Map<String, Value>,
    at: &str,
    notes: &mut Vec<Refusal>,
) -> Item {
    const REASONS: [RevocationReason; 4] = [
        RevocationReason::FalsePositive,
        RevocationReason::Expired,
        RevocationReason::TakenDown,
        RevocationReason::Other,
    ];
    let description = text(object, "description").filter(|text| !text.is_empty());
    let (reason, note) = description.map_or((RevocationReason::Other, None), |description| {
        REASONS
            .iter()
            .find_map(|&reason| {
                let rest = description.strip_prefix(reason_name(reason))?;
                if rest.is_empty() {
                    Some((reason, None))
                } else {
                    rest.strip_prefix(": ").map(|note| (reason, Some(note)))
                }
            })
            .unwrap_or((RevocationReason::Other, Some(description)))
    });
    let mut add_note = |field: String, reason: String| {
        notes.push(Refusal {
            at: format!("{at} {field}"),
            reason,
        });
    };
    Item::Revocation(Revocation {
        value,
        reason,
        note: note.map(|note| fitted(note, MAX_TEXT_BYTES, "description", &mut add_note).into()),
    })
}

pub(super) fn checked(tlp: Option<Tlp>, item: Item) -> Result<Made, String> {
    // The steps above keep every limit; this is the guarantee that no invalid item
    // leaves the importer whatever the input.
    item.validate()
        .map_err(|invalid| format!("{}: {}", invalid.field, invalid.reason))?;
    Ok(vec![(tlp, item)])
}

pub(super) fn text<'v>(object: &'v Map<String, Value>, field: &str) -> Option<&'v str> {
    object.get(field).and_then(Value::as_str)
}

/// A timestamp field: `None` when absent, an error naming the field when impossible.
pub(super) fn time(object: &Map<String, Value>, field: &str) -> Result<Option<Timestamp>, String> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => timestamp::parse(text)
            .map(Some)
            .map_err(|reason| format!("{field}: {reason}")),
        Some(other) => Err(format!("{field}: {} is not a timestamp", json_kind(other))),
    }
}

pub(super) fn is_revoked(object: &Map<String, Value>) -> Result<bool, String> {
    match object.get("revoked") {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(revoked)) => Ok(*revoked),
        Some(other) => Err(format!(
            "revoked: {} is not true or false",
            json_kind(other)
        )),
    }
}

/// The object's `modified` for choosing among versions; unreadable sorts oldest.
pub(super) fn modified(object: &Value) -> Option<Timestamp> {
    object
        .get("modified")
        .and_then(Value::as_str)
        .and_then(|text| timestamp::parse(text).ok())
}

pub(super) fn type_name(object: &Value) -> String {
    object
        .get("type")
        .and_then(Value::as_str)
        .map_or_else(|| "(no type)".to_owned(), |name| clip(name, 64))
}

/// `text` cut to at most `max_bytes` at a character boundary, noting a cut.
pub(super) fn fitted<'t>(
    text: &'t str,
    max_bytes: usize,
    field: &str,
    note: &mut impl FnMut(String, String),
) -> &'t str {
    let cut = fit(text, max_bytes);
    if cut.len() < text.len() {
        note(
            field.to_owned(),
            format!(
                "cut from {} to {} bytes, the most it holds",
                text.len(),
                cut.len()
            ),
        );
    }
    cut
}

pub(super) fn clip(text: &str, max_chars: usize) -> String {
    text.chars().take(max_chars).collect()
}

pub(super) fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
