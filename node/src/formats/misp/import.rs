//! MISP event JSON in: events found in the document, their attributes (objects' too)
//! read once each into indicators, sightings, context or a refusal (see the module above).

use serde_json::{Map, Value as Json};
use threatmesh_protocol::bundle::Tlp;
use threatmesh_protocol::item::{
    Confidence, ExternalReference, Indicator, Item, MAX_NAME_BYTES, MAX_REFERENCE_URL_BYTES,
    MAX_REFERENCES, MAX_TEXT_BYTES, Sighting,
};
use threatmesh_protocol::{Kind, Timestamp, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{
    MAX_INPUT_BYTES, MispError, MispOptions, NON_IDS_CONFIDENCE, NON_IDS_LABEL, REFERENCE_SOURCE,
};
use crate::formats::Import;
use crate::formats::truncate_at_char as cut;

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
