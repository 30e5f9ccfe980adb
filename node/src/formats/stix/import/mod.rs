//! A STIX 2.1 (or 2.0) bundle to items.
//!
//! One pass indexes every object by id (the newest `modified` of each id wins), the TLP
//! marking definitions in the file, and the `indicates` relationships by indicator; a
//! second pass turns each object, in file order, into items, context or a refusal. Every
//! lookup goes through those maps, so the work grows linearly with the file.
//!
//! An object is **refused** (with its id or `objects[i]`, the field and why) when it is
//! not an object, has no `type`, carries an impossible timestamp, an unreadable pattern,
//! a `pattern_type` other than `stix`, `valid_until` not after `valid_from`, or is a
//! sighting of something not in the file. Other objects of the file are not affected.
//! What an indicator says beyond its value is read in `annotate`.

mod annotate;
mod fields;

use std::collections::HashMap;
use std::collections::hash_map::Entry as Slot;

use serde_json::{Map, Value};
use threatmesh_protocol::item::{Indicator, Item, MAX_TEXT_BYTES, Sighting};
use threatmesh_protocol::{Kind, Timestamp, Tlp, Value as Indicated};

use super::{StixError, is_id_of, marking, pattern, timestamp};
use crate::formats::truncate_at_char as fit;
use crate::formats::{Import, Refusal};
use fields::{
    checked, clip, cve_of, fitted, is_revoked, json_kind, modified, pattern_value, revocation,
    text, time, type_name,
};

/// Most objects one file may hold. Well above any real bundle; bounds the work and the
/// memory of one import.
pub const MAX_OBJECTS: usize = 1_000_000;

/// Observable types with a `value` property that is an indicator value.
const VALUE_OBSERVABLES: [&str; 5] = ["ipv4-addr", "ipv6-addr", "domain-name", "url", "email-addr"];

/// Object types whose name an `indicates` relationship gives as the threat.
const THREAT_TYPES: [&str; 4] = ["malware", "threat-actor", "intrusion-set", "tool"];

/// Reads a STIX 2.1 (and 2.0) bundle. `now` stands in for times the file lacks.
///
/// Errs only when nothing can be read at all (not JSON, not an object, no `objects`
/// array, too many objects); every problem with single objects is in the report.
pub fn import(bytes: &[u8], now: Timestamp) -> Result<Import, StixError> {
    let root: Value = serde_json::from_slice(bytes).map_err(StixError::NotJson)?;
    let root = match root {
        Value::Object(root) => root,
        other => return Err(StixError::NotAnObject(json_kind(&other))),
    };
    let objects = match root.get("objects") {
        Some(Value::Array(objects)) => objects,
        Some(other) => {
            return Err(StixError::NoObjects(format!(
                "\"objects\" is {}, not an array of STIX objects",
                json_kind(other)
            )));
        }
        None => {
            return Err(StixError::NoObjects(
                match root.get("type").and_then(Value::as_str) {
                    Some(object_type) if object_type != "bundle" => format!(
                        "the file is a single {:?} object, not a bundle with an \"objects\" array",
                        clip(object_type, 40)
                    ),
                    _ => "the bundle has no \"objects\" array".to_owned(),
                },
            ));
        }
    };
    let bundle_type = match root.get("type") {
        Some(Value::String(text)) if text == "bundle" => None,
        Some(Value::String(text)) => Some(format!("{:?}", clip(text, 40))),
        Some(other) => Some(json_kind(other).to_owned()),
        None => Some("missing".to_owned()),
    };
    let mut import = import_objects(objects, now)?;
    if let Some(found) = bundle_type {
        import.refuse(
            "bundle",
            format!("\"type\" is {found}, not \"bundle\"; its objects were read all the same"),
        );
    }
    Ok(import)
}

/// Reads STIX objects already parsed, as [`import`] reads a bundle's: for a TAXII
/// envelope, whose `objects` the server has in hand.
pub fn import_objects(objects: &[Value], now: Timestamp) -> Result<Import, StixError> {
    if objects.len() > MAX_OBJECTS {
        return Err(StixError::TooManyObjects(objects.len()));
    }
    let mut import = Import::default();
    import.report.read = objects.len();
    Importer::new(objects, now).run(&mut import);
    Ok(import)
}

/// What became of one object.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fate {
    /// Not (yet) used by anything: unused, unless an item used it as context.
    Open,
    /// Made into items, refused, or counted as an older version.
    Settled,
}

/// Items of one object, each with its marking.
type Made = Vec<(Option<Tlp>, Item)>;

struct Importer<'a> {
    objects: &'a [Value],
    now: Timestamp,
    /// The newest version of every id.
    by_id: HashMap<&'a str, usize>,
    /// Objects superseded by a newer version of the same id.
    older: Vec<bool>,
    /// In-file TLP marking definitions: id -> (position, level).
    markings: HashMap<&'a str, (usize, Tlp)>,
    /// Indicator id -> its `indicates` relationships.
    links: HashMap<&'a str, Vec<usize>>,
    fates: Vec<Fate>,
    /// Objects used as context of an item.
    used: Vec<bool>,
}

impl<'a> Importer<'a> {
    fn new(objects: &'a [Value], now: Timestamp) -> Importer<'a> {
        let mut importer = Importer {
            objects,
            now,
            by_id: HashMap::with_capacity(objects.len()),
            older: vec![false; objects.len()],
            markings: HashMap::new(),
            links: HashMap::new(),
            fates: vec![Fate::Open; objects.len()],
            used: vec![false; objects.len()],
        };
        importer.index();
        importer
    }

    fn index(&mut self) {
        for (position, object) in self.objects.iter().enumerate() {
            let Some(id) = object.get("id").and_then(Value::as_str) else {
                continue;
            };
            match self.by_id.entry(id) {
                Slot::Vacant(slot) => {
                    slot.insert(position);
                }
                Slot::Occupied(mut slot) => {
                    let kept = *slot.get();
                    if modified(object) > modified(&self.objects[kept]) {
                        self.older[kept] = true;
                        slot.insert(position);
                    } else {
                        self.older[position] = true;
                    }
                }
            }
        }
        for (position, object) in self.objects.iter().enumerate() {
            let Some(object) = object.as_object().filter(|_| !self.older[position]) else {
                continue;
            };
            let text = |field| object.get(field).and_then(Value::as_str);
            match text("type") {
                Some("marking-definition") => {
                    if let (Some(id), Some(tlp)) = (text("id"), marking::of_definition(object)) {
                        self.markings.insert(id, (position, tlp));
                    }
                }
                Some("relationship") if text("relationship_type") == Some("indicates") => {
                    if let Some(source) = text("source_ref") {
                        self.links.entry(source).or_default().push(position);
                    }
                }
                _ => {}
            }
        }
    }

    fn run(mut self, import: &mut Import) {
        for position in 0..self.objects.len() {
            self.object(position, import);
        }
        for (position, fate) in self.fates.iter().enumerate() {
            if *fate != Fate::Open {
                continue;
            }
            if self.used[position] {
                import.report.context += 1;
            } else {
                import.unused(&type_name(&self.objects[position]));
            }
        }
    }

    /// Where an object is: its id, or its position when it has none.
    fn at(&self, position: usize) -> String {
        match self.objects[position].get("id").and_then(Value::as_str) {
            Some(id) => clip(id, 100),
            None => format!("objects[{position}]"),
        }
    }

    fn object(&mut self, position: usize, import: &mut Import) {
        let at = self.at(position);
        let objects = self.objects;
        let Some(object) = objects[position].as_object() else {
            import.refuse(
                at,
                format!(
                    "{} where a STIX object was expected",
                    json_kind(&objects[position])
                ),
            );
            self.fates[position] = Fate::Settled;
            return;
        };
        let object_type = match object.get("type") {
            Some(Value::String(object_type)) if !object_type.is_empty() => object_type.as_str(),
            Some(_) => {
                import.refuse(at, "\"type\" is not a non-empty string");
                self.fates[position] = Fate::Settled;
                return;
            }
            None => {
                import.refuse(at, "no \"type\": cannot tell what this object is");
                self.fates[position] = Fate::Settled;
                return;
            }
        };
        if self.older[position] {
            import.unused(&format!("{} (older version)", clip(object_type, 64)));
            self.fates[position] = Fate::Settled;
            return;
        }
        let mut notes = Vec::new();
        let made = match object_type {
            "indicator" => Some(self.indicator(object, &at, &mut notes)),
            "sighting" => Some(self.sighting(object)),
            "file" => self.file(object, &at, &mut notes),
            "autonomous-system" => Some(self.autonomous_system(object, &at, &mut notes)),
            "vulnerability" => self.vulnerability(object, &at, &mut notes),
            observable if VALUE_OBSERVABLES.contains(&observable) => {
                Some(self.observable(observable, object, &at, &mut notes))
            }
            _ => None,
        };
        match made {
            None => {}
            Some(Ok(made)) => {
                for (tlp, item) in made {
                    import.push(tlp, item);
                }
                import.report.refused.extend(notes);
                self.fates[position] = Fate::Settled;
            }
            Some(Err(reason)) => {
                import.refuse(at, reason);
                self.fates[position] = Fate::Settled;
            }
        }
    }

    fn indicator(
        &mut self,
        object: &'a Map<String, Value>,
        at: &str,
        notes: &mut Vec<Refusal>,
    ) -> Result<Made, String> {
        let id = text(object, "id").ok_or("id: missing")?;
        if !is_id_of("indicator", id) {
            return Err(format!("id: {:?} is not indicator--<uuid>", clip(id, 100)));
        }
        let value = pattern_value(object)?;
        let created = time(object, "created")?;
        time(object, "modified")?;
        let valid_from = time(object, "valid_from")?.or(created).unwrap_or(self.now);
        let valid_until = time(object, "valid_until")?;
        if let Some(until) = valid_until
            && until <= valid_from
        {
            return Err(format!(
                "valid_until {} is not after valid_from {}",
                timestamp::format(until),
                timestamp::format(valid_from)
            ));
        }
        let tlp = self.tlp(object);
        if is_revoked(object)? {
            return Ok(vec![(tlp, revocation(value, object, at, notes))]);
        }
        let mut indicator = Indicator::new(value, valid_from);
        indicator.valid_until = valid_until;
        indicator.context.stix_id = Some(id.to_owned());
        self.annotate(object, at, &mut indicator, notes);
        checked(tlp, Item::Indicator(indicator))
    }

    fn vulnerability(
        &mut self,
        object: &'a Map<String, Value>,
        at: &str,
        notes: &mut Vec<Refusal>,
    ) -> Option<Result<Made, String>> {
        let cve = cve_of(object)?;
        Some((|| {
            let value = cve?;
            let created = time(object, "created")?;
            time(object, "modified")?;
            let tlp = self.tlp(object);
            if is_revoked(object)? {
                return Ok(vec![(tlp, revocation(value, object, at, notes))]);
            }
            let mut indicator = Indicator::new(value, created.unwrap_or(self.now));
            indicator.context.stix_id = text(object, "id")
                .filter(|id| is_id_of("vulnerability", id))
                .map(str::to_owned);
            self.annotate(object, at, &mut indicator, notes);
            checked(tlp, Item::Indicator(indicator))
        })())
    }

    fn observable(
        &mut self,
        object_type: &str,
        object: &'a Map<String, Value>,
        at: &str,
        notes: &mut Vec<Refusal>,
    ) -> Result<Made, String> {
        let text_value = text(object, "value").ok_or("value: missing")?;
        let kind = match object_type {
            "ipv4-addr" | "ipv6-addr" if text_value.contains('/') => Kind::Cidr,
            "ipv4-addr" => Kind::Ipv4,
            "ipv6-addr" => Kind::Ipv6,
            "domain-name" => Kind::Domain,
            "url" => Kind::Url,
            _ => Kind::Email,
        };
        let value =
            Indicated::parse(kind, text_value).map_err(|invalid| format!("value: {}", invalid))?;
        self.observed(value, object, at, notes)
    }

    fn autonomous_system(
        &mut self,
        object: &'a Map<String, Value>,
        at: &str,
        notes: &mut Vec<Refusal>,
    ) -> Result<Made, String> {
        let number = object
            .get("number")
            .and_then(Value::as_u64)
            .ok_or("number: missing or not a whole number")?;
        let value = Indicated::parse(Kind::Asn, &number.to_string())
            .map_err(|invalid| format!("number: {invalid}"))?;
        self.observed(value, object, at, notes)
    }

    /// A file's hashes of the four kinds, one indicator each. `None` (unused) when it has
    /// none of them.
    fn file(
        &mut self,
        object: &'a Map<String, Value>,
        at: &str,
        notes: &mut Vec<Refusal>,
    ) -> Option<Result<Made, String>> {
        let hashes = object.get("hashes")?.as_object()?;
        let mut made = Vec::new();
        let mut errors = Vec::new();
        for (algorithm, digest) in hashes {
            let Some(kind) = pattern::hash_kind(algorithm) else {
                continue;
            };
            let field = format!("hashes.{}", clip(algorithm, 20));
            let parsed = match digest.as_str() {
                Some(digest) => {
                    Indicated::parse(kind, digest).map_err(|invalid| format!("{field}: {invalid}"))
                }
                None => Err(format!("{field}: not a string")),
            };
            match parsed.and_then(|value| self.observed(value, object, at, notes)) {
                Ok(items) => made.extend(items),
                Err(error) => errors.push(error),
            }
        }
        if made.is_empty() && errors.is_empty() {
            return None;
        }
        if made.is_empty() {
            return Some(Err(errors.join("; ")));
        }
        for error in errors {
            notes.push(Refusal {
                at: at.to_owned(),
                reason: format!("{error}; the file's other hashes were imported"),
            });
        }
        Some(Ok(made))
    }

    /// An indicator of an observed value: valid from now, since observables carry no
    /// validity.
    fn observed(
        &mut self,
        value: Indicated,
        object: &'a Map<String, Value>,
        at: &str,
        notes: &mut Vec<Refusal>,
    ) -> Result<Made, String> {
        let tlp = self.tlp(object);
        let mut indicator = Indicator::new(value, self.now);
        self.annotate(object, at, &mut indicator, notes);
        checked(tlp, Item::Indicator(indicator))
    }

    fn sighting(&mut self, object: &'a Map<String, Value>) -> Result<Made, String> {
        let of = text(object, "sighting_of_ref").ok_or("sighting_of_ref: missing")?;
        let of_clipped = clip(of, 100);
        let Some(&target) = self.by_id.get(of) else {
            return Err(format!(
                "sighting_of_ref: {of_clipped} is not in this file, so the value sighted is \
                 unknown"
            ));
        };
        let target = self.objects[target].as_object();
        let target_type = target.and_then(|target| text(target, "type"));
        let value = match (target, target_type) {
            (Some(target), Some("indicator")) => pattern_value(target),
            (Some(target), Some("vulnerability")) => {
                cve_of(target).unwrap_or_else(|| Err("it names no CVE".to_owned()))
            }
            _ => {
                return Err(format!(
                    "sighting_of_ref: {of_clipped} is {}, not an indicator: threatmesh \
                     records sightings of indicator values",
                    target_type.map_or("not a STIX object".to_owned(), |t| format!(
                        "a {}",
                        clip(t, 40)
                    ))
                ));
            }
        }
        .map_err(|reason| format!("sighting_of_ref: {of_clipped} cannot be imported ({reason})"))?;
        let count = match object.get("count") {
            None | Some(Value::Null) => 1,
            Some(count) => match count.as_u64() {
                Some(0) => {
                    return Err(
                        "count: 0 (seen zero times) is not a sighting threatmesh can record".into(),
                    );
                }
                Some(count) => count,
                None => return Err("count: not a whole number".into()),
            },
        };
        let created = time(object, "created")?;
        time(object, "modified")?;
        let (first_seen, last_seen) =
            match (time(object, "first_seen")?, time(object, "last_seen")?) {
                (Some(first), Some(last)) => (first, last),
                (Some(only), None) | (None, Some(only)) => (only, only),
                (None, None) => {
                    let at = created.unwrap_or(self.now);
                    (at, at)
                }
            };
        if last_seen < first_seen {
            return Err(format!(
                "last_seen {} is before first_seen {}",
                timestamp::format(last_seen),
                timestamp::format(first_seen)
            ));
        }
        let tlp = self.tlp(object);
        let note = text(object, "description")
            .filter(|text| !text.is_empty())
            .map(|text| fit(text, MAX_TEXT_BYTES).to_owned());
        checked(
            tlp,
            Item::Sighting(Sighting {
                value,
                count,
                first_seen,
                last_seen,
                note,
            }),
        )
    }

    /// The most restrictive TLP among the object's markings, object-level and granular;
    /// markings that are not TLP are left aside.
    fn tlp(&mut self, object: &Map<String, Value>) -> Option<Tlp> {
        let object_level = object
            .get("object_marking_refs")
            .and_then(Value::as_array)
            .into_iter()
            .flatten();
        let granular = object
            .get("granular_markings")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|marking| marking.get("marking_ref"));
        let mut tlp = None;
        for id in object_level.chain(granular).filter_map(Value::as_str) {
            let level = match self.markings.get(id) {
                Some(&(position, level)) => {
                    self.used[position] = true;
                    Some(level)
                }
                None => marking::well_known(id),
            };
            tlp = tlp.max(level);
        }
        tlp
    }
}
