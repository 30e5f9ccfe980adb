//! MISP import and feed export: real PyMISP fixtures, broken input, a round trip through
//! signed entries, and the exported feed read back by the real PyMISP.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests unwrap what they built themselves

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use serde_json::{Value as Json, json};
use threatmesh_node::formats::misp::{self, MispError, MispOptions};
use threatmesh_node::formats::{Import, Publisher};
use threatmesh_protocol::bundle::{Bundle, Distribution, Tlp};
use threatmesh_protocol::entry::Body;
use threatmesh_protocol::item::{Item, Revocation, RevocationReason};
use threatmesh_protocol::{Hash, Kind, PublicKey, SignedEntry, SigningKey, Timestamp, Value};

const NOW: Timestamp = Timestamp(1_700_000_000_000);
const FIXTURE: &str = "57c4445b-c548-4654-af0b-4be3950d210f.json";

fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/misp")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|error| panic!("reading {}: {error}", path.display()))
}

fn import(json: &Json, options: &MispOptions) -> Import {
    misp::import(json.to_string().as_bytes(), NOW, options).unwrap()
}

fn values(import: &Import) -> Vec<(Kind, String)> {
    import
        .items
        .iter()
        .map(|marked| {
            let value = marked.item.value();
            (value.kind(), value.as_str().to_owned())
        })
        .collect()
}

fn counts(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
    pairs
        .iter()
        .map(|(name, count)| ((*name).to_owned(), *count))
        .collect()
}

#[test]
fn circl_event_gives_its_three_hashes_and_counts_everything_else() {
    let import = misp::import(&fixture(FIXTURE), NOW, &MispOptions::default()).unwrap();
    assert_eq!(
        values(&import),
        vec![
            (Kind::Md5, "0749bae92ca336a02c83d126e04ec628".to_owned()),
            (
                Kind::Sha1,
                "77b0c41b7d340b8a3d903f21347bbf06aa766b5b".to_owned()
            ),
            (
                Kind::Sha256,
                "b3c4ae251f8094fa15b510051835c657eaef2a6cea46075d3aec964b14a99f68".to_owned()
            ),
        ]
    );
    let report = &import.report;
    assert_eq!(report.read, 9);
    assert_eq!(report.indicators, 3);
    assert_eq!((report.sightings, report.revocations), (0, 0));
    // The event itself and its two links.
    assert_eq!(report.context, 3);
    assert_eq!(
        report.unused,
        counts(&[
            ("comment", 1),
            ("filename", 1),
            ("regkey|value", 1),
            ("text", 1)
        ])
    );
    assert!(report.refused.is_empty(), "{:?}", report.refused);
    // tlp:white is TLP 2.0's CLEAR.
    assert!(
        import
            .items
            .iter()
            .all(|marked| marked.tlp == Some(Tlp::Clear))
    );

    let Item::Indicator(md5) = &import.items[0].item else {
        panic!("not an indicator: {:?}", import.items[0].item);
    };
    assert_eq!(md5.valid_from, Timestamp::from_secs(1_472_480_395));
    assert_eq!(
        md5.context.description.as_deref(),
        Some("Ransomware - Xorist\nImported via the Freetext Import Tool")
    );
    let references: Vec<(&str, Option<&str>, Option<&str>)> = md5
        .context
        .external_references
        .iter()
        .map(|r| {
            (
                r.source.as_str(),
                r.external_id.as_deref(),
                r.url.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        references,
        vec![
            ("misp", Some("57c4445b-c548-4654-af0b-4be3950d210f"), None),
            (
                "misp-link",
                None,
                Some(
                    "https://www.virustotal.com/file/b3c4ae251f8094fa15b510051835c657eaef2a6cea46075d3aec964b14a99f68/analysis/1469554268/"
                )
            ),
            (
                "misp-link",
                None,
                Some("http://www.xylibox.com/2011/06/have-fun-with-trojan-ransomwin32xorist.html")
            ),
        ]
    );
}

#[test]
fn soft_deleted_attribute_is_skipped_and_counted() {
    let import =
        misp::import(&fixture("attribute_del.json"), NOW, &MispOptions::default()).unwrap();
    assert!(import.items.is_empty());
    assert_eq!(import.report.read, 1);
    assert_eq!(import.report.unused, counts(&[("filename (deleted)", 1)]));
    assert!(import.report.refused.is_empty());
}

#[test]
fn common_types_map_to_kinds_and_composites_to_their_indicator_parts() {
    let event = json!({"Event": {"info": "types", "Attribute": [
        {"type": "ip-src", "value": "198.51.100[.]7"},
        {"type": "ip-dst", "value": "2001:db8::1"},
        {"type": "ip-dst", "value": "203.0.113.0/24"},
        {"type": "ip-dst|port", "value": "192.0.2.1|443"},
        {"type": "domain", "value": "evil.example"},
        {"type": "hostname", "value": "c2.evil.example"},
        {"type": "domain|ip", "value": "both.example|192.0.2.2"},
        {"type": "hostname|port", "value": "port.example|8080"},
        {"type": "url", "value": "hxxp://evil[.]example/gate.php"},
        {"type": "email-src", "value": "phish@evil.example"},
        {"type": "filename|sha256", "value": "a.exe|b3c4ae251f8094fa15b510051835c657eaef2a6cea46075d3aec964b14a99f68"},
        {"type": "AS", "value": "AS64500"},
        {"type": "vulnerability", "value": "CVE-2021-44228"},
        {"type": "uri", "value": "/gate.php"},
    ]}});
    let import = import(&event, &MispOptions::default());
    let kinds: Vec<Kind> = values(&import).into_iter().map(|(kind, _)| kind).collect();
    assert_eq!(
        kinds,
        vec![
            Kind::Ipv4,
            Kind::Ipv6,
            Kind::Cidr,
            Kind::Ipv4,
            Kind::Domain,
            Kind::Domain,
            Kind::Domain,
            Kind::Ipv4,
            Kind::Domain,
            Kind::Url,
            Kind::Email,
            Kind::Sha256,
            Kind::Asn,
            Kind::Cve,
        ]
    );
    assert_eq!(values(&import)[0].1, "198.51.100.7");
    assert_eq!(values(&import)[9].1, "http://evil.example/gate.php");
    assert_eq!(import.report.read, 14);
    assert_eq!(import.report.unused, counts(&[("uri", 1)]));
    assert!(
        import.report.refused.is_empty(),
        "{:?}",
        import.report.refused
    );
    // No tag: the caller's default marking applies.
    assert!(import.items.iter().all(|marked| marked.tlp.is_none()));
}

#[test]
fn object_attributes_are_imported_and_deleted_objects_counted() {
    let event = json!({"Event": {"info": "objects", "Object": [
        {"name": "file", "Attribute": [
            {"type": "filename", "object_relation": "filename", "value": "x.exe"},
            {"type": "md5", "object_relation": "md5", "value": "0749bae92ca336a02c83d126e04ec628"},
        ]},
        {"name": "domain-ip", "deleted": true, "Attribute": [
            {"type": "domain", "value": "gone.example"},
        ]},
    ]}});
    let import = import(&event, &MispOptions::default());
    assert_eq!(
        values(&import),
        vec![(Kind::Md5, "0749bae92ca336a02c83d126e04ec628".to_owned())]
    );
    assert_eq!(
        import.report.unused,
        counts(&[("domain (deleted)", 1), ("filename", 1)])
    );
    assert_eq!(import.report.read, 3);
}

#[test]
fn to_ids_false_is_counted_unless_asked_for_and_then_labelled() {
    let event = json!({"Event": {"Attribute": [
        {"type": "domain", "value": "ids.example", "to_ids": true},
        {"type": "domain", "value": "context.example", "to_ids": false},
    ]}});
    let default = import(&event, &MispOptions::default());
    assert_eq!(
        values(&default),
        vec![(Kind::Domain, "ids.example".to_owned())]
    );
    assert_eq!(
        default.report.unused,
        counts(&[("domain (to_ids false)", 1)])
    );

    let all = import(
        &event,
        &MispOptions {
            include_non_ids: true,
        },
    );
    assert_eq!(all.report.indicators, 2);
    assert!(all.report.unused.is_empty());
    let Item::Indicator(non_ids) = &all.items[1].item else {
        panic!("not an indicator");
    };
    assert_eq!(non_ids.value.as_str(), "context.example");
    assert_eq!(non_ids.confidence.get(), misp::NON_IDS_CONFIDENCE);
    assert_eq!(non_ids.labels, vec![misp::NON_IDS_LABEL.to_owned()]);
    let Item::Indicator(ids) = &all.items[0].item else {
        panic!("not an indicator");
    };
    assert!(ids.labels.is_empty());
}

#[test]
fn attribute_tlp_wins_over_the_event_and_the_strictest_tag_wins() {
    let event = json!({"Event": {"Tag": [{"name": "TLP:GREEN"}, {"name": "tlp:amber"}],
    "Attribute": [
        {"type": "domain", "value": "a.example"},
        {"type": "domain", "value": "b.example", "Tag": [{"name": "tlp:clear"}]},
    ]}});
    let import = import(&event, &MispOptions::default());
    let marks: Vec<Option<Tlp>> = import.items.iter().map(|marked| marked.tlp).collect();
    assert_eq!(marks, vec![Some(Tlp::Amber), Some(Tlp::Clear)]);
}

#[test]
fn unknown_tlp_tag_refuses_what_it_marks_and_nothing_else() {
    let event = json!({"Event": {"Attribute": [
        {"uuid": "11111111-1111-4111-8111-111111111111", "type": "domain",
         "value": "a.example", "Tag": [{"name": "tlp:purple"}]},
        {"type": "domain", "value": "b.example"},
    ]}});
    let import = import(&event, &MispOptions::default());
    assert_eq!(
        values(&import),
        vec![(Kind::Domain, "b.example".to_owned())]
    );
    assert_eq!(import.report.refused.len(), 1);
    let refusal = &import.report.refused[0];
    assert_eq!(refusal.at, "attribute 11111111-1111-4111-8111-111111111111");
    assert!(refusal.reason.contains("tlp:purple"), "{}", refusal.reason);

    // On the event, it refuses every attribute that has no marking of its own.
    let event = json!({"Event": {"Tag": [{"name": "tlp:ex:chr"}], "Attribute": [
        {"type": "domain", "value": "a.example"},
        {"type": "domain", "value": "b.example", "Tag": [{"name": "tlp:green"}]},
    ]}});
    let import = import_of(&event);
    assert_eq!(
        values(&import),
        vec![(Kind::Domain, "b.example".to_owned())]
    );
    assert_eq!(import.report.refused.len(), 1);
    assert_eq!(import.report.refused[0].at, "Event.Attribute[0]");
}

fn import_of(event: &Json) -> Import {
    import(event, &MispOptions::default())
}

#[test]
fn bad_value_and_missing_type_are_refused_with_where_and_the_rest_kept() {
    let event = json!({"Event": {"Attribute": [
        {"uuid": "22222222-2222-4222-8222-222222222222", "type": "ip-dst", "value": "999.1.1.1"},
        {"value": "no-type.example"},
        {"type": "md5", "value": "0749bae92ca336a02c83d126e04ec628"},
        {"type": "domain|ip", "value": "half.example|not-an-ip"},
        {"type": "md5"},
        "not an object",
    ]}});
    let import = import_of(&event);
    assert_eq!(
        values(&import),
        vec![
            (Kind::Md5, "0749bae92ca336a02c83d126e04ec628".to_owned()),
            (Kind::Domain, "half.example".to_owned()),
        ]
    );
    let refused: Vec<(&str, &str)> = import
        .report
        .refused
        .iter()
        .map(|r| (r.at.as_str(), r.reason.as_str()))
        .collect();
    assert_eq!(refused.len(), 5, "{refused:?}");
    assert_eq!(
        refused[0].0,
        "attribute 22222222-2222-4222-8222-222222222222"
    );
    assert!(refused[0].1.contains("999.1.1.1"), "{}", refused[0].1);
    assert_eq!(
        refused[1],
        ("Event.Attribute[1]", "attribute has no `type` string")
    );
    assert_eq!(refused[2].0, "Event.Attribute[3]");
    assert!(refused[2].1.contains("not-an-ip"), "{}", refused[2].1);
    assert_eq!(
        refused[3],
        ("Event.Attribute[4]", "md5 attribute has no `value` string")
    );
    assert_eq!(
        refused[4],
        ("Event.Attribute[5]", "attribute is not a JSON object")
    );
    assert_eq!(import.report.read, 6);
}

#[test]
fn invalid_json_and_non_events_are_errors() {
    let error = misp::import(b"{\"Event\": {", NOW, &MispOptions::default()).unwrap_err();
    assert!(matches!(error, MispError::Json(_)), "{error}");
    assert!(error.to_string().contains("line 1"), "{error}");

    let error = misp::import(b"[1]", NOW, &MispOptions::default()).unwrap_err();
    assert!(
        matches!(&error, MispError::NotAnEvent { at, .. } if at == "top level[0]"),
        "{error}"
    );
    let error = misp::import(b"{\"hello\": 1}", NOW, &MispOptions::default()).unwrap_err();
    assert!(matches!(error, MispError::NotAnEvent { .. }), "{error}");
}

#[test]
fn rest_search_output_and_arrays_hold_several_events() {
    let one = json!({"Event": {"Attribute": [{"type": "domain", "value": "one.example"}]}});
    let two = json!({"Attribute": [{"type": "domain", "value": "two.example"}]});
    let expected = vec![
        (Kind::Domain, "one.example".to_owned()),
        (Kind::Domain, "two.example".to_owned()),
    ];
    let response = import_of(&json!({"response": [one, two]}));
    assert_eq!(values(&response), expected);
    let array = import_of(&json!([one, two]));
    assert_eq!(values(&array), expected);
    assert_eq!(array.report.context, 2);
}

#[test]
fn first_seen_then_timestamp_give_valid_from_and_bad_times_are_refused() {
    let event = json!({"Event": {"timestamp": "1600000000", "Attribute": [
        {"type": "domain", "value": "a.example", "first_seen": "2021-03-04T05:06:07.250000+00:00",
         "timestamp": "1500000000"},
        {"type": "domain", "value": "b.example", "timestamp": 1500000000},
        {"type": "domain", "value": "c.example"},
        {"type": "domain", "value": "d.example", "first_seen": "yesterday"},
    ]}});
    let import = import_of(&event);
    let valid_from: Vec<Timestamp> = import
        .items
        .iter()
        .map(|marked| match &marked.item {
            Item::Indicator(indicator) => indicator.valid_from,
            other => panic!("not an indicator: {other:?}"),
        })
        .collect();
    assert_eq!(
        valid_from,
        vec![
            Timestamp(1_614_834_367_250),
            Timestamp::from_secs(1_500_000_000),
            Timestamp::from_secs(1_600_000_000),
        ]
    );
    assert_eq!(import.report.refused.len(), 1);
    assert!(import.report.refused[0].reason.contains("yesterday"));
}

#[test]
fn galaxy_tag_names_the_threat_and_seen_sightings_become_one_sighting() {
    let event = json!({"Event": {"Tag": [{"name": "misp-galaxy:malpedia=\"Emotet\""}],
    "Attribute": [{"type": "ip-dst", "value": "192.0.2.9", "Sighting": [
        {"type": "0", "date_sighting": "1600000100"},
        {"type": "0", "date_sighting": "1600000000"},
        {"type": "1", "date_sighting": "1600000200"},
    ]}]}});
    let import = import_of(&event);
    assert_eq!(import.report.indicators, 1);
    assert_eq!(import.report.sightings, 1);
    assert_eq!(
        import.report.unused,
        counts(&[("sighting (false positive)", 1)])
    );
    let Item::Indicator(indicator) = &import.items[0].item else {
        panic!("not an indicator");
    };
    assert_eq!(indicator.context.threat.as_deref(), Some("Emotet"));
    let Item::Sighting(sighting) = &import.items[1].item else {
        panic!("not a sighting");
    };
    assert_eq!(sighting.count, 2);
    assert_eq!(sighting.first_seen, Timestamp::from_secs(1_600_000_000));
    assert_eq!(sighting.last_seen, Timestamp::from_secs(1_600_000_100));
}

// --- export ------------------------------------------------------------------------------

fn publisher() -> Publisher {
    Publisher {
        org: PublicKey([7; 32]),
        name: "CERT-FR".to_owned(),
        country: "FR".to_owned(),
    }
}

fn signed(seq_items: Vec<Item>, tlp: Tlp, head: Option<&SignedEntry>) -> SignedEntry {
    let key = SigningKey::from_bytes(&[3; 32]);
    let bundle = Bundle {
        tlp,
        distribution: Distribution::Federation,
        items: seq_items,
    };
    SignedEntry::next(
        &key,
        Hash([0xfe; 32]),
        head.map(SignedEntry::head).as_ref(),
        NOW,
        Body::Bundle(bundle),
    )
    .unwrap()
}

/// The fixture's items in one entry, and a second entry revoking one of them.
fn fixture_entries() -> Vec<SignedEntry> {
    let import = misp::import(&fixture(FIXTURE), NOW, &MispOptions::default()).unwrap();
    let items: Vec<Item> = import.items.into_iter().map(|marked| marked.item).collect();
    let first = signed(items, Tlp::Clear, None);
    let revocation = Item::Revocation(Revocation {
        value: Value::parse(Kind::Md5, "0749bae92ca336a02c83d126e04ec628").unwrap(),
        reason: RevocationReason::FalsePositive,
        note: Some("a packer stub".to_owned()),
    });
    let second = signed(vec![revocation], Tlp::Green, Some(&first));
    vec![first, second]
}

#[test]
fn feed_round_trip_keeps_values_and_kinds() {
    let entries = fixture_entries();
    let publisher = publisher();
    let feed = misp::export_feed(
        entries
            .iter()
            .map(|signed| (signed.entry(), signed.id(), &publisher)),
    );
    assert_eq!(feed.events.len(), 2);

    let (uuid, event) = &feed.events[0];
    assert_eq!(*uuid, misp::event_uuid(entries[0].id()).to_string());
    let back = import_of(event);
    assert_eq!(
        values(&back),
        vec![
            (Kind::Md5, "0749bae92ca336a02c83d126e04ec628".to_owned()),
            (
                Kind::Sha1,
                "77b0c41b7d340b8a3d903f21347bbf06aa766b5b".to_owned()
            ),
            (
                Kind::Sha256,
                "b3c4ae251f8094fa15b510051835c657eaef2a6cea46075d3aec964b14a99f68".to_owned()
            ),
        ]
    );
    assert!(
        back.items
            .iter()
            .all(|marked| marked.tlp == Some(Tlp::Clear))
    );
    let Item::Indicator(md5) = &back.items[0].item else {
        panic!("not an indicator");
    };
    // first_seen carries valid_from; the shared description becomes the event's info.
    assert_eq!(md5.valid_from, Timestamp::from_secs(1_472_480_395));
    assert_eq!(event["Event"]["info"], "Ransomware - Xorist");

    // The revocation is exported with to_ids false, so it is no indicator by default.
    let revoked = import_of(&feed.events[1].1);
    assert!(revoked.items.is_empty());
    assert_eq!(revoked.report.unused, counts(&[("md5 (to_ids false)", 1)]));
    assert_eq!(feed.events[1].1["Event"]["Tag"][0]["name"], "tlp:green");

    // Same entries, same uuids: every node exports an entry alike.
    let again = misp::export_feed(
        entries
            .iter()
            .map(|signed| (signed.entry(), signed.id(), &publisher)),
    );
    assert_eq!(again, feed);
}

use support::python;

const READ_FEED: &str = r#"
import json, sys, pathlib
from pymisp import MISPEvent
feed = pathlib.Path(sys.argv[1])
manifest = json.loads((feed / "manifest.json").read_text())
out = {}
for path in sorted(feed.glob("*.json")):
    if path.name == "manifest.json":
        continue
    event = MISPEvent()
    event.load_file(str(path))
    out[event.uuid] = {
        "file": path.name,
        "info": event.info,
        "timestamp": int(event.timestamp.timestamp()),
        "tags": [tag.name for tag in event.tags],
        "orgc": event.Orgc.name,
        "attributes": [[a.type, a.category, a.value, a.to_ids] for a in event.attributes],
        "own_manifest": json.loads(json.dumps(event.manifest, default=str)),
        "md5": event.attributes_hashes("md5"),
    }
print(json.dumps({"manifest": manifest, "events": out}))
"#;

#[test]
fn pymisp_reads_every_exported_event_and_the_manifest_agrees() {
    let entries = fixture_entries();
    let publisher = publisher();
    let feed = misp::export_feed(
        entries
            .iter()
            .map(|signed| (signed.entry(), signed.id(), &publisher)),
    );
    let dir = tempfile::tempdir().unwrap();
    misp::write_feed(&feed, dir.path()).unwrap();

    let python = python("pymisp");
    let output = Command::new(&python)
        .arg("-c")
        .arg(READ_FEED)
        .arg(dir.path())
        .output()
        .unwrap_or_else(|error| {
            panic!(
                "cannot run {} ({error}): this test needs Python with pymisp; run \
                 ./scripts/test, or set THREATMESH_PYTHON",
                python.display()
            )
        });
    assert!(
        output.status.success(),
        "PyMISP could not read the feed (is pymisp installed for {}? ./scripts/test sets it \
         up):\n{}",
        python.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let read: Json = serde_json::from_slice(&output.stdout).unwrap();
    let events = read["events"].as_object().unwrap();
    let manifest = read["manifest"].as_object().unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(manifest.len(), 2);

    let first_uuid = misp::event_uuid(entries[0].id()).to_string();
    let first = &events[&first_uuid];
    assert_eq!(first["file"], format!("{first_uuid}.json"));
    assert_eq!(first["info"], "Ransomware - Xorist");
    assert_eq!(first["tags"], json!(["tlp:clear"]));
    assert_eq!(first["orgc"], "CERT-FR");
    assert_eq!(
        first["attributes"],
        json!([
            [
                "md5",
                "Payload delivery",
                "0749bae92ca336a02c83d126e04ec628",
                true
            ],
            [
                "sha1",
                "Payload delivery",
                "77b0c41b7d340b8a3d903f21347bbf06aa766b5b",
                true
            ],
            [
                "sha256",
                "Payload delivery",
                "b3c4ae251f8094fa15b510051835c657eaef2a6cea46075d3aec964b14a99f68",
                true
            ],
        ])
    );
    let second = &events[&misp::event_uuid(entries[1].id()).to_string()];
    assert_eq!(second["tags"], json!(["tlp:green"]));
    assert_eq!(
        second["attributes"],
        json!([[
            "md5",
            "Payload delivery",
            "0749bae92ca336a02c83d126e04ec628",
            false
        ]])
    );

    let hashes = std::fs::read_to_string(dir.path().join("hashes.csv")).unwrap();
    for (uuid, event) in events {
        // The manifest lists the event as PyMISP itself would summarise it.
        let listed = &manifest[uuid];
        let own = &event["own_manifest"][uuid];
        for field in [
            "info",
            "timestamp",
            "date",
            "Orgc",
            "analysis",
            "threat_level_id",
        ] {
            assert_eq!(listed[field], own[field], "manifest {field} of {uuid}");
        }
        // PyMISP adds its own tag fields (local, relationship_type); the names must agree.
        let names = |tags: &Json| -> Vec<Json> {
            tags.as_array()
                .unwrap()
                .iter()
                .map(|tag| tag["name"].clone())
                .collect()
        };
        assert_eq!(
            names(&listed["Tag"]),
            names(&own["Tag"]),
            "manifest tags of {uuid}"
        );
        assert_eq!(&names(&listed["Tag"]), event["tags"].as_array().unwrap());
        assert_eq!(listed["timestamp"], event["timestamp"]);
        assert_eq!(listed["timestamp"], json!(NOW.as_millis() / 1000));
        for md5 in event["md5"].as_array().unwrap() {
            let line = format!("{},{uuid}", md5.as_str().unwrap());
            assert!(
                hashes.lines().any(|l| l == line),
                "{line} not in hashes.csv"
            );
        }
    }
    assert_eq!(hashes.lines().count(), 4);
}
