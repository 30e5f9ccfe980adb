//! MISP in and out: event JSON (MISP core format) to items, entries to a MISP feed.
//!
//! Import reads one event (`{"Event": {...}}` or the bare event), REST search output
//! (`{"response": [{"Event": ...}, ...]}`) or a JSON array of events. Every attribute,
//! including those inside objects, is read once and ends in exactly one place of the
//! report:
//!
//! - a type that names an indicator kind (the table in `indicator_parts`) becomes one
//!   indicator per indicator part (`domain|ip` gives two); `to_ids: false` attributes are
//!   counted as unused `"<type> (to_ids false)"` unless [`MispOptions::include_non_ids`]
//!   asks for them, and then they carry confidence [`NON_IDS_CONFIDENCE`] and the label
//!   [`NON_IDS_LABEL`] so a consumer can keep them out of blocking;
//! - `link` attributes become external references of the event's indicators and count as
//!   context, as does each event (links past the reference limits count as unused);
//! - soft-deleted attributes (and those of deleted objects) count as `"<type> (deleted)"`;
//! - other types (filename, regkey, comment, text, `uri`, which is usually a bare path)
//!   count as unused by type;
//! - a bad value, a missing `type` or `value`, an unreadable time or an unknown `tlp:` tag
//!   is refused with `attribute <uuid>` (or its path, `Event.Object[2].Attribute[1]`).
//!
//! `tlp:*` tags (TLP 1.0 and 2.0 names, any case) mark the event and attributes; an
//! attribute's own tag wins, the strictest tag wins when one level has several. An
//! unknown `tlp:` tag refuses what it marks: guessing a weaker marking could leak it.
//! The event's `info` becomes each indicator's description (with the attribute's comment),
//! its uuid an external reference `misp`, a `misp-galaxy:` malware tag the threat name.
//! `first_seen`, else the attribute's `timestamp`, else the event's, gives `valid_from`.
//! Attribute `Sighting`s of type 0 become one sighting item per attribute.
//!
//! Export makes one MISP event per entry, in the feed layout MISP's "add feed" reads: a
//! `manifest.json` indexing every event, one `<event uuid>.json` per event and a
//! `hashes.csv` (MD5 of each value, event uuid). Event, attribute and organisation uuids
//! are UUIDv5 under [`UUID_NAMESPACE`], so every node exports an entry to the same uuids.
//! Revocations and sightings become attributes with `to_ids: false` and a comment saying
//! what they are: MISP has no withdrawal of another event's attribute, and `to_ids: false`
//! keeps them out of every IDS export (and out of a default import here).

use std::fmt::Write as _;
use std::path::Path;

use md5::{Digest, Md5};
use serde_json::{Map, Value as Json, json};
use threatmesh_protocol::bundle::Tlp;
use threatmesh_protocol::crypto::hex_encode;
use threatmesh_protocol::entry::Body;
use threatmesh_protocol::item::{
    Confidence, ExternalReference, Indicator, Item, MAX_NAME_BYTES, MAX_REFERENCE_URL_BYTES,
    MAX_REFERENCES, MAX_TEXT_BYTES, Sighting,
};
use threatmesh_protocol::{Bundle, Entry, Hash, Kind, Timestamp, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use super::truncate_at_char as cut;
use super::{Import, Publisher};

/// Largest MISP document read. The whole JSON tree is held in memory (several times the
/// text), so bigger exports should be split into several events or files.
pub const MAX_INPUT_BYTES: usize = 64 * 1024 * 1024;

/// Confidence of indicators imported from `to_ids: false` attributes: MISP's publisher did
/// not vouch for them as detection material.
pub const NON_IDS_CONFIDENCE: u8 = 20;

/// Label of indicators imported from `to_ids: false` attributes.
pub const NON_IDS_LABEL: &str = "misp-not-for-ids";

/// Namespace of every uuid the feed export derives (a fixed, randomly drawn uuid).
pub const UUID_NAMESPACE: Uuid = Uuid::from_u128(0x66e0_6fa9_0f50_4c16_bd68_d932_c2de_910c);

/// Source name of the external reference that records the MISP event an indicator came
/// from.
pub const REFERENCE_SOURCE: &str = "misp";

/// How to import.
#[derive(Debug, Clone, Default)]
pub struct MispOptions {
    /// Import `to_ids: false` attributes too (lower confidence, labelled); default false.
    pub include_non_ids: bool,
}

/// A MISP document that cannot be read at all. Problems with single attributes are
/// refusals in the report, not errors.
#[derive(Debug, thiserror::Error)]
pub enum MispError {
    /// More than [`MAX_INPUT_BYTES`].
    #[error("MISP input of {len} bytes is over the limit of {MAX_INPUT_BYTES} bytes")]
    TooLarge {
        /// Its size.
        len: usize,
    },
    /// Not JSON; the message names line and column.
    #[error("MISP input is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// JSON, but no event where one was expected.
    #[error("no MISP event at {at}: {reason}")]
    NotAnEvent {
        /// Where (`top level`, `response[2]`).
        at: String,
        /// What was found instead.
        reason: String,
    },
}

/// A MISP feed: what [`write_feed`] puts in a directory.
#[derive(Debug, Clone, PartialEq)]
pub struct MispFeed {
    /// `manifest.json`: event uuid to the event's summary.
    pub manifest: Json,
    /// Each event's uuid and its file content, `{"Event": {...}}`.
    pub events: Vec<(String, Json)>,
    /// `hashes.csv` lines: `<md5 of value>,<event uuid>`.
    pub hashes: Vec<String>,
}

/// Reads MISP event JSON into items. See the module documentation for what goes where.
pub fn import(bytes: &[u8], now: Timestamp, options: &MispOptions) -> Result<Import, MispError> {
    if bytes.len() > MAX_INPUT_BYTES {
        return Err(MispError::TooLarge { len: bytes.len() });
    }
    let document: Json = serde_json::from_slice(bytes)?;
    let events = events_of(&document)?;
    let mut import = Import::default();
    let single = events.len() == 1;
    for (index, event) in events.into_iter().enumerate() {
        let label = if single {
            "Event".to_owned()
        } else {
            format!("Event[{index}]")
        };
        import_event(&mut import, event, &label, now, options);
    }
    Ok(import)
}

/// The events of a document, in order.
fn events_of(document: &Json) -> Result<Vec<&Map<String, Json>>, MispError> {
    fn list<'a>(items: &'a [Json], name: &str) -> Result<Vec<&'a Map<String, Json>>, MispError> {
        items
            .iter()
            .enumerate()
            .map(|(index, item)| event_in(item, &format!("{name}[{index}]")))
            .collect()
    }
    match document {
        Json::Array(items) => list(items, "top level"),
        Json::Object(object) => match object.get("response") {
            Some(Json::Array(items)) => list(items, "response"),
            _ => Ok(vec![event_in(document, "top level")?]),
        },
        _ => Err(MispError::NotAnEvent {
            at: "top level".to_owned(),
            reason: "neither an object nor an array".to_owned(),
        }),
    }
}

/// The event in `{"Event": {...}}` or the bare event `value`.
fn event_in<'a>(value: &'a Json, at: &str) -> Result<&'a Map<String, Json>, MispError> {
    let not_event = |reason: &str| MispError::NotAnEvent {
        at: at.to_owned(),
        reason: reason.to_owned(),
    };
    let object = value
        .as_object()
        .ok_or_else(|| not_event("not a JSON object"))?;
    match object.get("Event") {
        Some(inner) => inner
            .as_object()
            .ok_or_else(|| not_event("`Event` is not a JSON object")),
        None if ["Attribute", "Object", "info", "uuid"]
            .iter()
            .any(|key| object.contains_key(*key)) =>
        {
            Ok(object)
        }
        None => Err(not_event(
            "an object with none of Event, Attribute, Object, info, uuid",
        )),
    }
}

/// What an event gives every indicator it holds.
struct EventContext {
    tlp: Result<Option<Tlp>, String>,
    threat: Option<String>,
    description: Option<String>,
    references: Vec<ExternalReference>,
    valid_from: Option<Timestamp>,
}

/// One attribute and where it sits.
struct Located<'a> {
    attribute: &'a Json,
    path: String,
    in_deleted_object: bool,
}

fn import_event(
    import: &mut Import,
    event: &Map<String, Json>,
    label: &str,
    now: Timestamp,
    options: &MispOptions,
) {
    let tags = tag_names(event.get("Tag"));
    let mut references = Vec::new();
    if let Some(uuid) = text(event.get("uuid")).filter(|uuid| uuid.len() <= MAX_NAME_BYTES) {
        references.push(ExternalReference {
            source: REFERENCE_SOURCE.to_owned(),
            external_id: Some(uuid.to_owned()),
            url: None,
        });
    }
    let attributes = attributes_of(event, label);
    // Links first: they are context for every indicator of the event, wherever they sit.
    let mut taken_links = Vec::new();
    for (index, located) in attributes.iter().enumerate() {
        let Some(attribute) = located.attribute.as_object() else {
            continue;
        };
        let is_live_link = text(attribute.get("type")) == Some("link")
            && !located.in_deleted_object
            && !is_true(attribute.get("deleted"));
        let url = text(attribute.get("value")).filter(|url| url.len() <= MAX_REFERENCE_URL_BYTES);
        if let (true, Some(url)) = (is_live_link, url)
            && references.len() < MAX_REFERENCES
        {
            references.push(ExternalReference {
                source: "misp-link".to_owned(),
                external_id: None,
                url: Some(url.to_owned()),
            });
            taken_links.push(index);
        }
    }
    let context = EventContext {
        tlp: tlp_of(&tags),
        threat: threat_of(&tags),
        description: text(event.get("info"))
            .filter(|info| !info.trim().is_empty())
            .map(|info| info.trim().to_owned()),
        references,
        valid_from: seconds(event.get("timestamp")).ok().flatten(),
    };
    import.report.context += 1;
    for (index, located) in attributes.iter().enumerate() {
        import.report.read += 1;
        if taken_links.contains(&index) {
            import.report.context += 1;
            continue;
        }
        import_attribute(import, located, &context, now, options);
    }
}

/// Every attribute of the event, its objects' attributes after its own.
fn attributes_of<'a>(event: &'a Map<String, Json>, label: &str) -> Vec<Located<'a>> {
    let mut found = Vec::new();
    if let Some(Json::Array(attributes)) = event.get("Attribute") {
        for (index, attribute) in attributes.iter().enumerate() {
            found.push(Located {
                attribute,
                path: format!("{label}.Attribute[{index}]"),
                in_deleted_object: false,
            });
        }
    }
    if let Some(Json::Array(objects)) = event.get("Object") {
        for (object_index, object) in objects.iter().enumerate() {
            let deleted = is_true(object.get("deleted"));
            if let Some(Json::Array(attributes)) = object.get("Attribute") {
                for (index, attribute) in attributes.iter().enumerate() {
                    found.push(Located {
                        attribute,
                        path: format!("{label}.Object[{object_index}].Attribute[{index}]"),
                        in_deleted_object: deleted,
                    });
                }
            }
        }
    }
    found
}

fn import_attribute(
    import: &mut Import,
    located: &Located<'_>,
    event: &EventContext,
    now: Timestamp,
    options: &MispOptions,
) {
    let Some(attribute) = located.attribute.as_object() else {
        import.refuse(&located.path, "attribute is not a JSON object");
        return;
    };
    let at = match text(attribute.get("uuid")) {
        Some(uuid) => format!("attribute {uuid}"),
        None => located.path.clone(),
    };
    let Some(kind) = text(attribute.get("type")) else {
        import.refuse(at, "attribute has no `type` string");
        return;
    };
    if located.in_deleted_object || is_true(attribute.get("deleted")) {
        import.unused(&format!("{kind} (deleted)"));
        return;
    }
    let Some(parts) = indicator_parts(kind) else {
        import.unused(kind);
        return;
    };
    let to_ids = attribute
        .get("to_ids")
        .is_none_or(|flag| is_true(Some(flag)));
    if !to_ids && !options.include_non_ids {
        import.unused(&format!("{kind} (to_ids false)"));
        return;
    }
    let Some(raw) = text(attribute.get("value")) else {
        import.refuse(at, format!("{kind} attribute has no `value` string"));
        return;
    };
    let tlp = match tlp_of(&tag_names(attribute.get("Tag"))) {
        Ok(Some(tlp)) => Some(tlp),
        Ok(None) => match &event.tlp {
            Ok(tlp) => *tlp,
            Err(reason) => {
                import.refuse(at, format!("event {reason}"));
                return;
            }
        },
        Err(reason) => {
            import.refuse(at, reason);
            return;
        }
    };
    let valid_from = match valid_from(attribute) {
        Ok(time) => time.or(event.valid_from).unwrap_or(now),
        Err(reason) => {
            import.refuse(at, reason);
            return;
        }
    };
    let pieces: Vec<&str> = if parts.len() == 1 {
        vec![raw]
    } else {
        raw.split('|').collect()
    };
    if pieces.len() != parts.len() {
        import.refuse(
            at,
            format!(
                "{kind} value {:?} has {} part(s) separated by '|', expected {}",
                cut(raw, 100),
                pieces.len(),
                parts.len()
            ),
        );
        return;
    }
    let threat = threat_of(&tag_names(attribute.get("Tag"))).or_else(|| event.threat.clone());
    let description = describe(
        event.description.as_deref(),
        text(attribute.get("comment")).map(str::trim),
    );
    for (part, piece) in parts.iter().zip(pieces) {
        let Some(part) = part else { continue };
        let value = match part.parse(piece) {
            Ok(value) => value,
            Err(invalid) => {
                import.refuse(&at, format!("{kind}: {invalid}"));
                continue;
            }
        };
        let mut indicator = Indicator::new(value.clone(), valid_from);
        indicator.context.threat = threat.clone();
        indicator.context.description = description.clone();
        indicator.context.external_references = event.references.clone();
        if !to_ids {
            indicator.confidence = Confidence::new(NON_IDS_CONFIDENCE).unwrap_or_default();
            indicator.labels.push(NON_IDS_LABEL.to_owned());
        }
        let item = Item::Indicator(indicator);
        if let Err(invalid) = item.validate() {
            import.refuse(&at, format!("{kind}: {invalid}"));
            continue;
        }
        import.push(tlp, item);
        import_sightings(import, &at, attribute, &value, tlp);
    }
}

/// One sighting item for the attribute's MISP sightings of type 0 ("seen"); false
/// positive (1) and expiration (2) sightings are counted as unused.
fn import_sightings(
    import: &mut Import,
    at: &str,
    attribute: &Map<String, Json>,
    value: &Value,
    tlp: Option<Tlp>,
) {
    let Some(Json::Array(sightings)) = attribute.get("Sighting") else {
        return;
    };
    let mut seen: Vec<Timestamp> = Vec::new();
    for sighting in sightings {
        let kind = sighting
            .get("type")
            .map_or(Ok(Some(0)), |kind| number(Some(kind)));
        match kind {
            Ok(Some(0)) => match seconds(sighting.get("date_sighting")) {
                Ok(Some(time)) => seen.push(time),
                Ok(None) => import.refuse(at, "sighting has no `date_sighting`"),
                Err(reason) => import.refuse(at, format!("sighting {reason}")),
            },
            Ok(Some(1)) => import.unused("sighting (false positive)"),
            Ok(Some(2)) => import.unused("sighting (expiration)"),
            _ => import.refuse(at, "sighting of unknown `type`"),
        }
    }
    if let (Some(first), Some(last)) = (seen.iter().min(), seen.iter().max()) {
        import.push(
            tlp,
            Item::Sighting(Sighting {
                value: value.clone(),
                count: seen.len() as u64,
                first_seen: *first,
                last_seen: *last,
                note: None,
            }),
        );
    }
}

/// How one part of an attribute value is read.
#[derive(Debug, Clone, Copy)]
enum Part {
    /// As this kind.
    Kind(Kind),
    /// An IP address or a network: v4, v6 or CIDR, told apart by their outline.
    Address,
}

impl Part {
    fn parse(self, input: &str) -> Result<Value, threatmesh_protocol::InvalidValue> {
        match self {
            Part::Kind(kind) => Value::parse(kind, input),
            Part::Address if input.contains('/') => Value::parse(Kind::Cidr, input),
            Part::Address if input.contains(':') => Value::parse(Kind::Ipv6, input),
            Part::Address => Value::parse(Kind::Ipv4, input),
        }
    }
}

/// The MISP attribute types that carry indicators, and how each `|`-separated part of the
/// value is read (`None`: a part that is no indicator, like a port or a file name).
/// `None` for types that carry none.
fn indicator_parts(misp_type: &str) -> Option<&'static [Option<Part>]> {
    use Kind::{Asn, Cve, Domain, Email, Md5, Sha1, Sha256, Sha512, StixPattern, Url};
    const ADDRESS: &[Option<Part>] = &[Some(Part::Address)];
    const ADDRESS_PORT: &[Option<Part>] = &[Some(Part::Address), None];
    const DOMAIN: &[Option<Part>] = &[Some(Part::Kind(Domain))];
    const DOMAIN_PORT: &[Option<Part>] = &[Some(Part::Kind(Domain)), None];
    const DOMAIN_IP: &[Option<Part>] = &[Some(Part::Kind(Domain)), Some(Part::Address)];
    const URL: &[Option<Part>] = &[Some(Part::Kind(Url))];
    const EMAIL: &[Option<Part>] = &[Some(Part::Kind(Email))];
    const MD5: &[Option<Part>] = &[Some(Part::Kind(Md5))];
    const SHA1: &[Option<Part>] = &[Some(Part::Kind(Sha1))];
    const SHA256: &[Option<Part>] = &[Some(Part::Kind(Sha256))];
    const SHA512: &[Option<Part>] = &[Some(Part::Kind(Sha512))];
    const FILE_MD5: &[Option<Part>] = &[None, Some(Part::Kind(Md5))];
    const FILE_SHA1: &[Option<Part>] = &[None, Some(Part::Kind(Sha1))];
    const FILE_SHA256: &[Option<Part>] = &[None, Some(Part::Kind(Sha256))];
    const FILE_SHA512: &[Option<Part>] = &[None, Some(Part::Kind(Sha512))];
    const ASN: &[Option<Part>] = &[Some(Part::Kind(Asn))];
    const CVE: &[Option<Part>] = &[Some(Part::Kind(Cve))];
    const PATTERN: &[Option<Part>] = &[Some(Part::Kind(StixPattern))];
    Some(match misp_type {
        "ip-src" | "ip-dst" => ADDRESS,
        "ip-src|port" | "ip-dst|port" => ADDRESS_PORT,
        "domain" | "hostname" => DOMAIN,
        "hostname|port" => DOMAIN_PORT,
        "domain|ip" => DOMAIN_IP,
        "url" => URL,
        "email" | "email-src" | "email-dst" | "email-reply-to" => EMAIL,
        "md5" => MD5,
        "sha1" => SHA1,
        "sha256" => SHA256,
        "sha512" => SHA512,
        "filename|md5" => FILE_MD5,
        "filename|sha1" => FILE_SHA1,
        "filename|sha256" => FILE_SHA256,
        "filename|sha512" => FILE_SHA512,
        "AS" => ASN,
        "vulnerability" => CVE,
        "stix2-pattern" => PATTERN,
        _ => return None,
    })
}

/// The names of a `Tag` list (`[{"name": "tlp:white"}, ...]`).
fn tag_names(tags: Option<&Json>) -> Vec<&str> {
    let Some(Json::Array(tags)) = tags else {
        return Vec::new();
    };
    tags.iter()
        .filter_map(|tag| text(tag.get("name")))
        .collect()
}

/// The strictest `tlp:` tag; an error naming the first unknown one.
fn tlp_of(tags: &[&str]) -> Result<Option<Tlp>, String> {
    let mut strictest = None;
    for tag in tags {
        let is_tlp = tag
            .get(..4)
            .is_some_and(|prefix| prefix.eq_ignore_ascii_case("tlp:"));
        if !is_tlp {
            continue;
        }
        let tlp: Tlp = tag
            .parse()
            .map_err(|_| format!("tag {:?} is no TLP level this node knows", cut(tag, 60)))?;
        strictest = strictest.max(Some(tlp));
    }
    Ok(strictest)
}

/// The malware galaxies whose cluster names are threat names.
const THREAT_GALAXIES: [&str; 9] = [
    "malpedia",
    "ransomware",
    "tool",
    "rat",
    "banker",
    "botnet",
    "stealer",
    "backdoor",
    "android",
];

/// The first `misp-galaxy:<malware galaxy>="<name>"` tag's name.
fn threat_of(tags: &[&str]) -> Option<String> {
    tags.iter().find_map(|tag| {
        let rest = tag.strip_prefix("misp-galaxy:")?;
        let (galaxy, name) = rest.split_once('=')?;
        if !THREAT_GALAXIES.contains(&galaxy) {
            return None;
        }
        let name = name.trim_matches('"').trim();
        (!name.is_empty()).then(|| cut(name, MAX_NAME_BYTES).to_owned())
    })
}

/// The event's info and the attribute's comment, within the description limit.
fn describe(info: Option<&str>, comment: Option<&str>) -> Option<String> {
    let comment = comment.filter(|comment| !comment.is_empty());
    let text = match (info, comment) {
        (Some(info), Some(comment)) => format!("{info}\n{comment}"),
        (Some(only), None) | (None, Some(only)) => only.to_owned(),
        (None, None) => return None,
    };
    Some(cut(&text, MAX_TEXT_BYTES).to_owned())
}

/// `first_seen` (RFC 3339) if present, else `timestamp` (UNIX seconds).
fn valid_from(attribute: &Map<String, Json>) -> Result<Option<Timestamp>, String> {
    if let Some(first_seen) = attribute.get("first_seen").filter(|v| !v.is_null()) {
        let text = first_seen.as_str().ok_or("`first_seen` is not a string")?;
        let time = OffsetDateTime::parse(text, &Rfc3339).map_err(|error| {
            format!(
                "`first_seen` {:?} is not an RFC 3339 time: {error}",
                cut(text, 60)
            )
        })?;
        let millis = time.unix_timestamp_nanos() / 1_000_000;
        let millis = u64::try_from(millis)
            .map_err(|_| format!("`first_seen` {:?} is before 1970", cut(text, 60)))?;
        return Ok(Some(Timestamp(millis)));
    }
    seconds(attribute.get("timestamp"))
}

/// A UNIX time in seconds, as MISP writes it: a string of digits or a number.
fn seconds(value: Option<&Json>) -> Result<Option<Timestamp>, String> {
    Ok(number(value)
        .map_err(|reason| format!("timestamp {reason}"))?
        .map(Timestamp::from_secs))
}

/// A non-negative integer written as a number or a string of digits.
fn number(value: Option<&Json>) -> Result<Option<u64>, String> {
    match value {
        None | Some(Json::Null) => Ok(None),
        Some(Json::Number(number)) => number
            .as_u64()
            .map(Some)
            .ok_or_else(|| format!("{number} is not a whole number of at least 0")),
        Some(Json::String(text)) => text
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| format!("{:?} is not a whole number of at least 0", cut(text, 40))),
        Some(other) => Err(format!("{other} is neither a number nor a string")),
    }
}

/// MISP writes booleans as `true`, `1` or `"1"`.
fn is_true(value: Option<&Json>) -> bool {
    match value {
        Some(Json::Bool(flag)) => *flag,
        Some(Json::Number(number)) => number.as_u64() == Some(1),
        Some(Json::String(text)) => matches!(text.as_str(), "1" | "true" | "True"),
        _ => false,
    }
}

fn text(value: Option<&Json>) -> Option<&str> {
    value.and_then(Json::as_str)
}

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
