//! MISP feed out: one event per entry, with uuids derived under [`UUID_NAMESPACE`], the
//! manifest records and `hashes.csv` lines that index them, and the feed's files on disk.

use std::fmt::Write as _;
use std::path::Path;

use md5::{Digest, Md5};
use serde_json::{Map, Value as Json, json};
use threatmesh_protocol::bundle::Tlp;
use threatmesh_protocol::crypto::hex_encode;
use threatmesh_protocol::entry::Body;
use threatmesh_protocol::item::{Indicator, Item};
use threatmesh_protocol::{Bundle, Entry, Hash, Kind, Timestamp};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use super::{MispFeed, UUID_NAMESPACE};
use crate::formats::Publisher;

/// Turns entries into a MISP feed: one event per entry, with its publisher as the event's
/// creating organisation and the entry's TLP as its tag.
pub fn export_feed<'a>(
    entries: impl IntoIterator<Item = (&'a Entry, Hash, &'a Publisher)>,
) -> MispFeed {
    let mut manifest = Map::new();
    let mut events = Vec::new();
    let mut hashes = Vec::new();
    for (entry, id, publisher) in entries {
        // A sealed entry is exported only as the bundle this node opened (see
        // `formats::readable_entry`); one still sealed has nothing to show.
        let (Some(event), Some(summary)) = (
            event_file(entry, id, publisher),
            EventSummary::of(entry, id, publisher),
        ) else {
            continue;
        };
        let uuid = summary.uuid.to_string();
        hashes.extend(summary.md5s.iter().map(|md5| hash_line(md5, &uuid)));
        manifest.insert(uuid.clone(), summary.manifest_record());
        events.push((uuid, event));
    }
    MispFeed {
        manifest: Json::Object(manifest),
        events,
        hashes,
    }
}

/// What a feed's `manifest.json` and `hashes.csv` say of one event, without the event's
/// attributes: what a server that serves the feed keeps in memory per event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSummary {
    /// The event's uuid ([`event_uuid`]).
    pub uuid: Uuid,
    /// Its creating organisation's name.
    pub org_name: String,
    /// Its creating organisation's uuid ([`org_uuid`]).
    pub org_uuid: Uuid,
    /// The entry's marking.
    pub tlp: Tlp,
    /// The event's `info`.
    pub info: String,
    /// The entry's creation time: the event's date and timestamp.
    pub created: Timestamp,
    /// The MD5 of each attribute's value, in attribute order (`hashes.csv`).
    pub md5s: Vec<[u8; 16]>,
}

impl EventSummary {
    /// The summary of the event `entry` exports to; `None` when it exports none (a body
    /// still sealed).
    pub fn of(entry: &Entry, id: Hash, publisher: &Publisher) -> Option<EventSummary> {
        let Body::Bundle(bundle) = &entry.body else {
            return None;
        };
        Some(EventSummary {
            uuid: event_uuid(id),
            org_name: publisher.name.clone(),
            org_uuid: org_uuid(publisher),
            tlp: bundle.tlp,
            info: event_info(entry, bundle, id, publisher),
            created: entry.created,
            // The attribute's value is the item's value as written (see `attribute_of`).
            md5s: bundle
                .items
                .iter()
                .map(|item| Md5::digest(item.value().as_str()).into())
                .collect(),
        })
    }

    /// The event's record in `manifest.json`.
    pub fn manifest_record(&self) -> Json {
        manifest_record(
            &self.org_name,
            &self.org_uuid,
            self.tlp,
            &self.info,
            self.created,
        )
    }
}

/// An event's record in `manifest.json`, from its parts (see [`EventSummary`]).
pub fn manifest_record(
    org_name: &str,
    org_uuid: &Uuid,
    tlp: Tlp,
    info: &str,
    created: Timestamp,
) -> Json {
    json!({
        "Orgc": { "name": org_name, "uuid": org_uuid.to_string() },
        "Tag": [tlp_tag(tlp)],
        "info": info,
        "date": date(created),
        "analysis": ANALYSIS_COMPLETED,
        "threat_level_id": THREAT_LEVEL_UNDEFINED,
        "timestamp": created.as_millis() / 1000,
    })
}

/// A `hashes.csv` line (without its newline): the value's MD5 and the event's uuid.
pub fn hash_line(md5: &[u8; 16], event_uuid: &str) -> String {
    format!("{},{event_uuid}", hex_encode(md5))
}

/// The content of an event's file, `{"Event": {...}}`; `None` when the entry exports
/// no event (a body still sealed).
pub fn event_file(entry: &Entry, id: Hash, publisher: &Publisher) -> Option<Json> {
    event_of(entry, id, publisher).map(|event| json!({ "Event": event }))
}

/// Writes `manifest.json`, one `<uuid>.json` per event and `hashes.csv` into `dir`,
/// creating it if needed.
pub fn write_feed(feed: &MispFeed, dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for (uuid, event) in &feed.events {
        std::fs::write(dir.join(format!("{uuid}.json")), event.to_string())?;
    }
    std::fs::write(dir.join("manifest.json"), feed.manifest.to_string())?;
    let mut hashes = String::new();
    for line in &feed.hashes {
        hashes.push_str(line);
        hashes.push('\n');
    }
    std::fs::write(dir.join("hashes.csv"), hashes)
}

/// MISP's analysis level "completed": what a federation publishes is finished work.
const ANALYSIS_COMPLETED: u8 = 2;
/// MISP's threat level "undefined": entries carry no threat level.
const THREAT_LEVEL_UNDEFINED: u8 = 4;
/// Attribute distribution "inherit event".
const DISTRIBUTION_INHERIT: &str = "5";

/// The uuid of the event an entry exports to.
pub fn event_uuid(entry: Hash) -> Uuid {
    Uuid::new_v5(
        &UUID_NAMESPACE,
        format!("entry:{}", hex_encode(&entry.0)).as_bytes(),
    )
}

/// The uuid of item `index` of an entry.
pub fn attribute_uuid(entry: Hash, index: usize) -> Uuid {
    Uuid::new_v5(
        &UUID_NAMESPACE,
        format!("entry:{}/item:{index}", hex_encode(&entry.0)).as_bytes(),
    )
}

/// The uuid of an organisation, from its root key.
pub fn org_uuid(publisher: &Publisher) -> Uuid {
    Uuid::new_v5(
        &UUID_NAMESPACE,
        format!("org:{}", hex_encode(&publisher.org.0)).as_bytes(),
    )
}

fn event_of(entry: &Entry, id: Hash, publisher: &Publisher) -> Option<Json> {
    let Body::Bundle(bundle) = &entry.body else {
        return None;
    };
    let seconds = (entry.created.as_millis() / 1000).to_string();
    let org = json!({ "name": publisher.name, "uuid": org_uuid(publisher).to_string() });
    let attributes: Vec<Json> = bundle
        .items
        .iter()
        .enumerate()
        .map(|(index, item)| attribute_of(item, attribute_uuid(id, index), &seconds, publisher))
        .collect();
    let distribution = match bundle.tlp {
        Tlp::Clear => "3",
        Tlp::Green => "2",
        Tlp::Amber => "1",
        Tlp::AmberStrict | Tlp::Red => "0",
    };
    Some(json!({
        "uuid": event_uuid(id).to_string(),
        "info": event_info(entry, bundle, id, publisher),
        "date": date(entry.created),
        "timestamp": seconds,
        "publish_timestamp": seconds,
        "published": true,
        "analysis": ANALYSIS_COMPLETED.to_string(),
        "threat_level_id": THREAT_LEVEL_UNDEFINED.to_string(),
        "distribution": distribution,
        "Orgc": org,
        "Org": org,
        "Tag": [tlp_tag(bundle.tlp)],
        "Attribute": attributes,
    }))
}

/// The indicators' common description when they share one (a bundle imported from one
/// report), else a summary naming the publisher and the entry.
fn event_info(entry: &Entry, bundle: &Bundle, id: Hash, publisher: &Publisher) -> String {
    let mut descriptions = bundle.items.iter().map(|item| match item {
        Item::Indicator(indicator) => indicator.context.description.as_deref(),
        _ => None,
    });
    let first = descriptions.next().flatten();
    if let Some(first) = first
        && descriptions.all(|other| other == Some(first))
    {
        // MISP shows the first line as the title; comments follow on later lines.
        let title = first.lines().next().unwrap_or(first);
        return title.to_owned();
    }
    format!(
        "threatmesh: {} item(s) from {} (entry {} of feed {}, id {})",
        bundle.items.len(),
        publisher.name,
        entry.seq,
        entry.author.fmt_short(),
        id.fmt_short(),
    )
}

fn tlp_tag(tlp: Tlp) -> Json {
    let (name, colour) = match tlp {
        Tlp::Clear => ("tlp:clear", "#ffffff"),
        Tlp::Green => ("tlp:green", "#33ff00"),
        Tlp::Amber => ("tlp:amber", "#ffc000"),
        Tlp::AmberStrict => ("tlp:amber+strict", "#ffc000"),
        Tlp::Red => ("tlp:red", "#ff2b2b"),
    };
    json!({ "name": name, "colour": colour, "exportable": true })
}

/// MISP attribute type and category of a kind (categories from MISP's type table).
fn misp_type(kind: Kind) -> (&'static str, &'static str) {
    match kind {
        Kind::Ipv4 | Kind::Ipv6 | Kind::Cidr => ("ip-dst", "Network activity"),
        Kind::Domain => ("domain", "Network activity"),
        Kind::Url => ("url", "Network activity"),
        Kind::Email => ("email-src", "Payload delivery"),
        Kind::Md5 => ("md5", "Payload delivery"),
        Kind::Sha1 => ("sha1", "Payload delivery"),
        Kind::Sha256 => ("sha256", "Payload delivery"),
        Kind::Sha512 => ("sha512", "Payload delivery"),
        Kind::Asn => ("AS", "Network activity"),
        Kind::Cve => ("vulnerability", "External analysis"),
        Kind::StixPattern => ("stix2-pattern", "Payload installation"),
    }
}

fn attribute_of(item: &Item, uuid: Uuid, seconds: &str, publisher: &Publisher) -> Json {
    let value = item.value();
    let (misp_type, category) = misp_type(value.kind());
    let mut attribute = json!({
        "uuid": uuid.to_string(),
        "type": misp_type,
        "category": category,
        "value": value.as_str(),
        "timestamp": seconds,
        "distribution": DISTRIBUTION_INHERIT,
        "disable_correlation": false,
        "deleted": false,
    });
    let (to_ids, comment) = match item {
        Item::Indicator(indicator) => {
            attribute["first_seen"] = Json::String(rfc3339(indicator.valid_from));
            (true, indicator_comment(indicator))
        }
        Item::Revocation(revocation) => {
            let reason = serde_json::to_value(revocation.reason)
                .ok()
                .and_then(|reason| reason.as_str().map(str::to_owned))
                .unwrap_or_default();
            let mut comment = format!("revoked by {}: {reason}", publisher.name);
            if let Some(note) = &revocation.note {
                let _ = write!(comment, ": {note}");
            }
            (false, comment)
        }
        Item::Sighting(sighting) => {
            let mut comment = format!(
                "sighted by {} {} time(s) from {} to {}",
                publisher.name,
                sighting.count,
                rfc3339(sighting.first_seen),
                rfc3339(sighting.last_seen)
            );
            if let Some(note) = &sighting.note {
                let _ = write!(comment, ": {note}");
            }
            (false, comment)
        }
    };
    attribute["to_ids"] = Json::Bool(to_ids);
    attribute["comment"] = Json::String(comment);
    attribute
}

/// What an indicator says beyond its value, for the attribute's comment.
fn indicator_comment(indicator: &Indicator) -> String {
    let mut parts = vec![format!("confidence {}", indicator.confidence.get())];
    if let Some(until) = indicator.valid_until {
        parts.push(format!("valid until {}", rfc3339(until)));
    }
    if let Some(threat) = &indicator.context.threat {
        parts.push(format!("threat {threat}"));
    }
    if !indicator.labels.is_empty() {
        parts.push(format!("labels {}", indicator.labels.join(", ")));
    }
    parts.join("; ")
}

/// `2024-05-01T12:00:00.5Z`-style UTC time.
pub(crate) fn rfc3339(time: Timestamp) -> String {
    offset_date_time(time)
        .format(&Rfc3339)
        .unwrap_or_else(|_| time.to_string())
}

/// `2024-05-01`.
fn date(time: Timestamp) -> String {
    let time = offset_date_time(time);
    format!(
        "{:04}-{:02}-{:02}",
        time.year(),
        u8::from(time.month()),
        time.day()
    )
}

fn offset_date_time(time: Timestamp) -> OffsetDateTime {
    // Times past year 9999 do not format as RFC 3339; they are clamped to the largest
    // that does (no real entry comes near).
    const MAX_MILLIS: u64 = 253_402_300_799_999;
    let nanos = i128::from(time.as_millis().min(MAX_MILLIS)) * 1_000_000;
    OffsetDateTime::from_unix_timestamp_nanos(nanos).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}
