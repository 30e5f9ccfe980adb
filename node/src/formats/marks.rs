//! Warninglist marks on exports that the format modules leave to a second pass.
//!
//! CSV (`csv::write_entry_marked`, a `warninglists` column) and STIX
//! (`stix::export_entry_marked`, the `x_threatmesh_warninglists` property) mark while they
//! write. A MISP feed is marked after it is built: each attribute of an indicator on a
//! list gets a tag `warninglist:"<id>"` per list, which MISP shows beside its own
//! warninglist hits and which a MISP tag filter can exclude.

use std::collections::HashMap;

use serde_json::{Value as Json, json};
use threatmesh_protocol::entry::Body;
use threatmesh_protocol::item::Item;
use threatmesh_protocol::{Entry, Hash};

use super::Publisher;
use super::misp::{MispFeed, event_uuid, export_feed};
use crate::warninglists::Warninglists;

/// The name of the MISP tag marking a value on warninglist `id`.
pub fn misp_tag(id: &str) -> String {
    format!("warninglist:\"{id}\"")
}

/// [`export_feed`] with each indicator attribute on one of `warninglists` tagged
/// [`misp_tag`].
pub fn export_feed_marked<'a>(
    entries: impl IntoIterator<Item = (&'a Entry, Hash, &'a Publisher)>,
    warninglists: &Warninglists,
) -> MispFeed {
    let entries: Vec<(&Entry, Hash, &Publisher)> = entries.into_iter().collect();
    let mut feed = export_feed(entries.iter().copied());
    let by_event: HashMap<String, &Entry> = entries
        .iter()
        .map(|(entry, id, _)| (event_uuid(*id).to_string(), *entry))
        .collect();
    for (uuid, event) in &mut feed.events {
        if let Some(entry) = by_event.get(uuid) {
            mark_misp_event(event, entry, warninglists);
        }
    }
    feed
}

/// Tags each indicator attribute of `event` (an event file, `{"Event": {...}}`, exported
/// from `entry`) that is on one of `warninglists` with [`misp_tag`]: the one marking the
/// folder export and the feed the node serves share.
pub fn mark_misp_event(event: &mut Json, entry: &Entry, warninglists: &Warninglists) {
    let Body::Bundle(bundle) = &entry.body else {
        return;
    };
    let Some(attributes) = event
        .pointer_mut("/Event/Attribute")
        .and_then(Json::as_array_mut)
    else {
        return;
    };
    // One attribute per item, in item order (see `misp::export_feed`).
    for (item, attribute) in bundle.items.iter().zip(attributes) {
        let Item::Indicator(indicator) = item else {
            continue;
        };
        let on = warninglists.ids(&indicator.value);
        let Some(attribute) = attribute.as_object_mut() else {
            continue;
        };
        if on.is_empty() {
            continue;
        }
        let tags = attribute.entry("Tag").or_insert_with(|| json!([]));
        if let Some(tags) = tags.as_array_mut() {
            for id in on {
                tags.push(json!({ "name": misp_tag(id), "colour": "#ff8c00", "exportable": true }));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use threatmesh_protocol::bundle::{Bundle, Distribution, Tlp};
    use threatmesh_protocol::item::{Indicator, Item};
    use threatmesh_protocol::{Kind, PublicKey, Timestamp, Value};

    use super::*;

    #[test]
    fn misp_attributes_on_a_warninglist_get_a_tag_per_list() {
        let items = ["8.8.8.8", "45.155.205.233"]
            .map(|text| {
                Item::Indicator(Indicator::new(
                    Value::parse(Kind::Ipv4, text).unwrap(),
                    Timestamp(1),
                ))
            })
            .to_vec();
        let entry = Entry {
            federation: Hash([1; 32]),
            author: PublicKey([3; 32]),
            seq: 1,
            prev: None,
            created: Timestamp(1_700_000_000_000),
            body: Body::Bundle(Bundle {
                tlp: Tlp::Green,
                distribution: Distribution::Federation,
                items,
            }),
        };
        let publisher = Publisher {
            org: PublicKey([9; 32]),
            name: "CERT-DE".into(),
            country: "DE".into(),
        };
        let lists = Warninglists::builtin();
        let feed = export_feed_marked([(&entry, Hash([2; 32]), &publisher)], &lists);
        let attributes = feed.events[0].1["Event"]["Attribute"].as_array().unwrap();
        let tags = |index: usize| -> Vec<String> {
            attributes[index]["Tag"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|tag| tag["name"].as_str().unwrap().to_owned())
                .collect()
        };
        assert_eq!(attributes[0]["value"], "8.8.8.8");
        assert!(
            tags(0).contains(&misp_tag("public-dns-v4")),
            "{:?}",
            tags(0)
        );
        assert!(
            !tags(1).iter().any(|tag| tag.starts_with("warninglist:")),
            "{:?}",
            tags(1)
        );
        // Unmarked, the feed is what `export_feed` writes.
        let plain = export_feed([(&entry, Hash([2; 32]), &publisher)]);
        assert_eq!(plain.events[0].1["Event"]["Attribute"][1], attributes[1]);
    }
}
