//! TLP marking definitions: the fixed STIX ids of TLP 1.0 (STIX 2.1 section 7.2.1.4) and
//! of TLP 2.0 (the OASIS extension `extension-definition--60a3c5c5-…`, published in
//! oasis-open/cti-stix-common-objects), and the TLP 2.0 objects as published.
//!
//! Import knows both sets of ids without the definition being in the file, and also reads
//! in-file definitions (`definition_type: "tlp"` with `definition.tlp`, or the TLP 2.0
//! extension's `tlp_2_0`). Export always writes TLP 2.0, so TLP 1.0 WHITE, GREEN, AMBER
//! and RED come back out as TLP 2.0 CLEAR, GREEN, AMBER and RED.

use serde_json::{Map, Value, json};
use threatmesh_protocol::Tlp;

/// The TLP 2.0 extension definition's id.
pub const TLP2_EXTENSION: &str = "extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d";

/// When OASIS created the TLP 2.0 marking definitions.
const TLP2_CREATED: &str = "2022-10-01T00:00:00.000Z";

/// The TLP 2.0 marking definition id of `tlp`.
pub fn tlp2_id(tlp: Tlp) -> &'static str {
    match tlp {
        Tlp::Clear => "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487",
        Tlp::Green => "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb",
        Tlp::Amber => "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421",
        Tlp::AmberStrict => "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003",
        Tlp::Red => "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1",
    }
}

/// The TLP 1.0 marking definition ids STIX 2.1 predefines, with their TLP 2.0 level.
const TLP1_IDS: [(&str, Tlp); 4] = [
    (
        "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9",
        Tlp::Clear,
    ),
    (
        "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da",
        Tlp::Green,
    ),
    (
        "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82",
        Tlp::Amber,
    ),
    (
        "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed",
        Tlp::Red,
    ),
];

const ALL: [Tlp; 5] = [
    Tlp::Clear,
    Tlp::Green,
    Tlp::Amber,
    Tlp::AmberStrict,
    Tlp::Red,
];

/// The level a predefined TLP 1.0 or TLP 2.0 marking definition id stands for.
pub(crate) fn well_known(id: &str) -> Option<Tlp> {
    TLP1_IDS
        .iter()
        .find(|(known, _)| *known == id)
        .map(|(_, tlp)| *tlp)
        .or_else(|| ALL.into_iter().find(|tlp| tlp2_id(*tlp) == id))
}

/// The level an in-file marking-definition object sets, if it is a TLP marking.
pub(crate) fn of_definition(object: &Map<String, Value>) -> Option<Tlp> {
    let extension = object
        .get("extensions")
        .and_then(|extensions| extensions.get(TLP2_EXTENSION))
        .and_then(|extension| extension.get("tlp_2_0"));
    let legacy = (object.get("definition_type").and_then(Value::as_str) == Some("tlp"))
        .then(|| object.get("definition").and_then(|d| d.get("tlp")))
        .flatten();
    extension
        .or(legacy)
        .and_then(Value::as_str)
        .and_then(|name| name.parse().ok())
}

/// The TLP 2.0 marking-definition object of `tlp`, exactly as OASIS publishes it.
pub(crate) fn definition(tlp: Tlp) -> Value {
    let level = match tlp {
        Tlp::Clear => "clear",
        Tlp::Green => "green",
        Tlp::Amber => "amber",
        Tlp::AmberStrict => "amber+strict",
        Tlp::Red => "red",
    };
    json!({
        "type": "marking-definition",
        "spec_version": "2.1",
        "id": tlp2_id(tlp),
        "created": TLP2_CREATED,
        "name": tlp.label(),
        "extensions": {
            TLP2_EXTENSION: {
                "extension_type": "property-extension",
                "tlp_2_0": level,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_level_reads_back_from_its_own_definition() {
        for tlp in ALL {
            let definition = definition(tlp);
            let object = definition.as_object().expect("an object");
            assert_eq!(of_definition(object), Some(tlp));
            assert_eq!(well_known(tlp2_id(tlp)), Some(tlp));
        }
    }

    #[test]
    fn tlp1_ids_map_to_tlp2_levels() {
        assert_eq!(
            well_known("marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9"),
            Some(Tlp::Clear)
        );
        assert_eq!(
            well_known("marking-definition--f88d31f6-486f-44da-b317-01333bde0b82"),
            Some(Tlp::Amber)
        );
        assert_eq!(
            well_known("marking-definition--d81f86b9-975b-4c0b-875e-810c5ad45a4f"),
            None
        );
    }

    #[test]
    fn legacy_in_file_definitions_are_read() {
        let object = json!({"definition_type": "tlp", "definition": {"tlp": "white"}});
        let object = object.as_object().expect("an object");
        assert_eq!(of_definition(object), Some(Tlp::Clear));
        let statement = json!({"definition_type": "statement", "definition": {"statement": "x"}});
        assert_eq!(
            of_definition(statement.as_object().expect("an object")),
            None
        );
    }
}
