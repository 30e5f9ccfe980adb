//! Warninglists at the API: holding listed values back on publish and import, marking
//! them on lookup, and their counts in `/metrics`.
//!
//! Only indicators are held back: they are the claims a consumer acts on (blocks, alerts).
//! A revocation of a listed value must still go out, and a sighting says "we saw it",
//! which stays true of a resolver too. The caller overrides with `ignore_warninglists`.

use std::fmt::Write as _;

use serde::Serialize;
use threatmesh_protocol::Kind;
use threatmesh_protocol::indicator::Value;
use threatmesh_protocol::item::Item;

use crate::warninglists::Warninglists;

/// A list a value is on, as reports name it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct ListMatch {
    /// The list's id (`rfc1918`): what `[warninglists] disabled` takes.
    pub(crate) id: String,
    /// Its name, a sentence.
    pub(crate) name: String,
}

/// An item not published because its value is on a warninglist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct HeldBack {
    /// Its place among the items asked to be published (counting from 0).
    pub(crate) index: usize,
    pub(crate) kind: Kind,
    pub(crate) value: String,
    /// The lists it is on.
    pub(crate) warninglists: Vec<ListMatch>,
}

/// The lists `value` is on.
pub(crate) fn lists_of(lists: &Warninglists, value: &Value) -> Vec<ListMatch> {
    lists
        .matches(value)
        .into_iter()
        .filter_map(|list| lists.lists().get(usize::from(list)))
        .map(|list| ListMatch {
            id: list.id.clone(),
            name: list.name.clone(),
        })
        .collect()
}

/// Splits `items` into those to publish and the indicators held back; with `ignore`, all
/// are published. `first_index` is the place of `items[0]` in the caller's numbering.
pub(crate) fn hold_back(
    lists: &Warninglists,
    items: Vec<Item>,
    ignore: bool,
    first_index: usize,
) -> (Vec<Item>, Vec<HeldBack>) {
    if ignore || lists.is_empty() {
        return (items, Vec::new());
    }
    let mut kept = Vec::with_capacity(items.len());
    let mut held = Vec::new();
    for (offset, item) in items.into_iter().enumerate() {
        if let Item::Indicator(indicator) = &item {
            let on = lists_of(lists, &indicator.value);
            if !on.is_empty() {
                held.push(HeldBack {
                    index: first_index + offset,
                    kind: indicator.value.kind(),
                    value: indicator.value.as_str().to_owned(),
                    warninglists: on,
                });
                continue;
            }
        }
        kept.push(item);
    }
    (kept, held)
}

/// [`hold_back`] for items imported from STIX objects: the held ones as (the STIX id of
/// the object they came from, why), for a TAXII status. An indicator read from an
/// object without an id it kept is held back all the same, with no failure to report.
pub(crate) fn hold_back_stix(
    lists: &Warninglists,
    items: Vec<Item>,
) -> (Vec<Item>, Vec<(String, String)>) {
    let mut ids = Vec::new();
    for item in &items {
        if let Item::Indicator(indicator) = item {
            ids.push(indicator.context.stix_id.clone());
        } else {
            ids.push(None);
        }
    }
    let (kept, held) = hold_back(lists, items, false, 0);
    let failures = held
        .into_iter()
        .filter_map(|held| {
            let id = ids.get(held.index).cloned().flatten()?;
            let on: Vec<&str> = held
                .warninglists
                .iter()
                .map(|list| list.id.as_str())
                .collect();
            let reason = format!(
                "{} is on warninglist(s) {}: held back as a likely false positive; publish it \
                 with ignore_warninglists through /api/v1/publish or /api/v1/import if meant",
                held.value,
                on.join(", ")
            );
            Some((id, reason))
        })
        .collect();
    (kept, failures)
}

/// The `/metrics` lines for the matches counted on receipt from peers.
pub(super) fn render_metrics(matches: &[(String, u64)]) -> String {
    let mut out = String::new();
    let name = "threatmesh_warninglist_matches_total";
    let _ = writeln!(
        out,
        "# HELP {name} Indicator values received from peers that are on a warninglist, per \
         list (stored all the same)."
    );
    let _ = writeln!(out, "# TYPE {name} counter");
    for (list, count) in matches {
        // List ids come from file names: escape what the label syntax needs escaped.
        let label = list
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n");
        let _ = writeln!(out, "{name}{{list=\"{label}\"}} {count}");
    }
    out
}

#[cfg(test)]
mod tests;
