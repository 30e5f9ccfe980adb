//! STIX 2.1 in and out: [`import`] reads a bundle into items, [`export_entry`] and
//! [`export_bundle`] write stored entries as STIX objects that the OASIS validator
//! accepts.
//!
//! # Mapping
//!
//! | threatmesh | STIX 2.1 |
//! | --- | --- |
//! | publishing organisation | `identity` (one per organisation key) |
//! | bundle TLP | TLP 2.0 `marking-definition`, in `object_marking_refs` of every object |
//! | indicator (12 kinds) | `indicator` with a one-comparison pattern |
//! | indicator of kind STIX pattern | `indicator` with the pattern verbatim |
//! | indicator of kind CVE | `vulnerability` named after the CVE, with a `cve` reference |
//! | revocation | the same `indicator` (or `vulnerability`) id, `revoked: true` |
//! | sighting | `sighting` of the value's indicator, seen by the publisher |
//! | `context.threat`, `context.campaign` | `malware` (a family), `campaign`, each with an `indicates` relationship |
//!
//! **Ids** are deterministic. An indicator's id is a UUIDv5 under threatmesh's namespace
//! of (publishing organisation key, kind, value), so a later revocation of that value by
//! the same organisation exports under the same id, `revoked: true` and a later
//! `modified`: STIX versioning. An indicator imported from STIX carries the id it had
//! (`context.stix_id`, when it is a valid `indicator--<uuid>`, or `vulnerability--<uuid>`
//! for a CVE), and any member can write any id there. So a kept id is exported as it is
//! only by a node of the publishing organisation itself ([`KeptIds::Own`]): there an
//! organisation that imported its own STIX sees its own ids again, and nobody else's
//! entries are exported so. Every other node, and this one for other organisations'
//! entries, exports it as [`kept_id`], a UUIDv5 of (publishing organisation key, kept
//! id): no member can make an object export under an id of another organisation's, kept
//! or derived. The UUIDv5 names of every kind of id start with distinct tags (`value`,
//! `kept`, `identity`, ...), so no two kinds can name the same id. `created` and
//! `modified` are both the entry's creation time (the time of that version; the first
//! version's time is not stored). Identities are UUIDv5 of the organisation key with
//! fixed `created`/`modified` (the epoch), so one organisation is one identity version
//! everywhere; malware and campaigns likewise, from (organisation key, TLP, name);
//! sightings are UUIDv5 of (entry id, item position). The validator warns
//! (`uuid-check`, a SHOULD) that SDOs should use UUIDv4; determinism needs v5.
//!
//! **Import** turns each object into exactly one of: items, context of items, unused
//! (counted by type), refused (with the object's id, or `objects[i]`, the field and why).
//! Field-level problems that do not spoil the object (a label too long, references beyond
//! [`MAX_REFERENCES`](threatmesh_protocol::item::MAX_REFERENCES)) drop that part only and
//! are listed among the refusals as `<id> <field>`. See `docs/PROTOCOL.md`, "STIX
//! mapping", for every rule.

mod export;
mod import;
mod marking;
mod pattern;
pub(crate) mod timestamp;

pub use export::{
    EntryExport, KeptIds, Object, WARNINGLISTS_EXTENSION, WARNINGLISTS_PROPERTY, export_bundle,
    export_bundle_marked, export_entry, export_entry_marked, identity, tlp_marking,
    warninglists_extension,
};
pub use import::{MAX_OBJECTS, import, import_objects};
pub use marking::{TLP2_EXTENSION, tlp2_id};

use threatmesh_protocol::{Hash, PublicKey, Tlp, Value};
use uuid::Uuid;

/// threatmesh's UUIDv5 namespace for STIX ids. Fixed forever: changing it changes the id
/// of everything ever exported.
pub const NAMESPACE: Uuid = Uuid::from_u128(0x90596a21_1c6a_4b78_bf85_98d9736f8580);

/// A file that cannot be read as a STIX bundle at all. Problems with single objects are
/// not errors: they are refusals in the import report.
#[derive(Debug, thiserror::Error)]
pub enum StixError {
    /// The bytes are not JSON.
    #[error("not JSON: {0}")]
    NotJson(#[source] serde_json::Error),
    /// The JSON is not an object.
    #[error("the file holds {0}, not a STIX bundle (a JSON object)")]
    NotAnObject(&'static str),
    /// No `objects` array.
    #[error("{0}")]
    NoObjects(String),
    /// More objects than [`MAX_OBJECTS`].
    #[error("the bundle has {0} objects, at most {MAX_OBJECTS} are read; split the file")]
    TooManyObjects(usize),
}

/// The STIX identity id of an organisation.
pub fn identity_id(org: &PublicKey) -> String {
    derived("identity", &[b"identity\0", &org.0])
}

/// The id an indicator of `value` asserted by `org` exports under, unless it kept an
/// imported STIX id. CVEs export as vulnerabilities: see [`vulnerability_id`].
pub fn indicator_id(org: &PublicKey, value: &Value) -> String {
    derived("indicator", &value_name(org, value))
}

/// The id a CVE asserted by `org` exports under, unless it kept an imported STIX id.
pub fn vulnerability_id(org: &PublicKey, value: &Value) -> String {
    derived("vulnerability", &value_name(org, value))
}

/// The id an indicator (or CVE) of `org` that kept the imported STIX id `kept` exports
/// under on nodes of other organisations: the kept id, namespaced by `org`, so no member
/// can claim another's object by writing its id. `object_type` is `indicator` or
/// `vulnerability`.
pub fn kept_id(object_type: &str, org: &PublicKey, kept: &str) -> String {
    let object_type = if object_type == "vulnerability" {
        "vulnerability"
    } else {
        "indicator"
    };
    derived(object_type, &[b"kept\0", &org.0, kept.as_bytes()])
}

/// The id of the sighting at position `index` of entry `entry`.
pub fn sighting_id(entry: &Hash, index: usize) -> String {
    derived(
        "sighting",
        &[b"sighting\0", &entry.0, &(index as u64).to_be_bytes()],
    )
}

/// The id of the malware (`context.threat`) or campaign named `name` by `org` under
/// `tlp`. The marking is part of the id because it is part of the object: one name under
/// two markings is two objects, each with a single version.
pub fn named_id(object_type: &str, org: &PublicKey, tlp: Tlp, name: &str) -> String {
    let object_type = if object_type == "campaign" {
        "campaign"
    } else {
        "malware"
    };
    derived(
        object_type,
        &[
            object_type.as_bytes(),
            b"\0",
            &org.0,
            tlp.label().as_bytes(),
            b"\0",
            name.as_bytes(),
        ],
    )
}

/// The id of the `indicates` relationship from `source` to `target`.
pub fn relationship_id(source: &str, target: &str) -> String {
    derived(
        "relationship",
        &[b"indicates\0", source.as_bytes(), b"\0", target.as_bytes()],
    )
}

/// The id of a bundle of the entries `entries`, in that order.
pub fn bundle_id<'a>(entries: impl IntoIterator<Item = &'a Hash>) -> String {
    let mut name = b"bundle\0".to_vec();
    for entry in entries {
        name.extend_from_slice(&entry.0);
    }
    derived("bundle", &[&name])
}

fn value_name<'a>(org: &'a PublicKey, value: &'a Value) -> [&'a [u8]; 5] {
    [
        b"value\0",
        &org.0,
        value.kind().as_str().as_bytes(),
        b"\0",
        value.as_str().as_bytes(),
    ]
}

/// `<object type>--<UUIDv5 of the concatenated parts>`.
fn derived(object_type: &str, parts: &[&[u8]]) -> String {
    let mut name = Vec::with_capacity(parts.iter().map(|part| part.len()).sum());
    for part in parts {
        name.extend_from_slice(part);
    }
    let uuid = Uuid::new_v5(&NAMESPACE, &name);
    let mut id = String::with_capacity(object_type.len() + 38);
    id.push_str(object_type);
    id.push_str("--");
    id.push_str(uuid.hyphenated().encode_lower(&mut Uuid::encode_buffer()));
    id
}

/// Whether `id` is `<object type>--<uuid>`.
fn is_id_of(object_type: &str, id: &str) -> bool {
    id.strip_prefix(object_type)
        .and_then(|rest| rest.strip_prefix("--"))
        .is_some_and(|uuid| uuid.len() == 36 && Uuid::try_parse(uuid).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use threatmesh_protocol::Kind;

    #[test]
    fn ids_are_uuid_v5_and_depend_on_every_part() {
        let value = Value::parse(Kind::Ipv4, "192.0.2.1").expect("test value");
        let other = Value::parse(Kind::Ipv4, "192.0.2.2").expect("test value");
        let id = indicator_id(&PublicKey([1; 32]), &value);
        assert!(is_id_of("indicator", &id), "{id}");
        let uuid = Uuid::parse_str(id.trim_start_matches("indicator--")).expect("uuid");
        assert_eq!(uuid.get_version_num(), 5);
        assert_eq!(id, indicator_id(&PublicKey([1; 32]), &value));
        assert_ne!(id, indicator_id(&PublicKey([2; 32]), &value));
        assert_ne!(id, indicator_id(&PublicKey([1; 32]), &other));
        assert_ne!(
            sighting_id(&Hash([1; 32]), 0),
            sighting_id(&Hash([1; 32]), 1)
        );
        assert!(is_id_of("identity", &identity_id(&PublicKey([1; 32]))));
        assert!(!is_id_of("indicator", "indicator--not-a-uuid"));
        assert!(!is_id_of(
            "indicator",
            "malware--33fe3b22-0201-47cf-85d0-97c02164528d"
        ));
        assert!(is_id_of(
            "indicator",
            "indicator--33fe3b22-0201-47cf-85d0-97c02164528d"
        ));
    }
}
