//! The MISP feed a running node serves, read the way MISP's own feed fetcher reads it:
//! the manifest, then each event not seen before (or with a newer timestamp), loaded with
//! PyMISP, then `hashes.csv`; a second poll that sends the manifest's ETag gets 304 and
//! fetches nothing; after a publish, only the new event is fetched. And the feed served
//! is the one `threatmesh export --format misp` writes from the same node.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests unwrap what they built themselves

mod support;

use std::path::Path;
use std::process::Command;

use serde_json::{Value as Json, json};
use threatmesh_node::api::{self, ApiState, FeedToken};
use threatmesh_node::network;
use threatmesh_node::publish::Publisher;
use threatmesh_node::store::{Options, Store};
use threatmesh_protocol::bundle::{Distribution, Tlp};
use threatmesh_protocol::item::{Indicator, Item};
use threatmesh_protocol::testing::{key, one_member_charter};
use threatmesh_protocol::{Kind, Timestamp, Value};

use support::python;

const FEED_TOKEN: &str = "token-of-our-misp-instance";
const FULL_TOKEN: &str = "full-token-of-the-api-here";

/// A MISP-style consumer: one poll. Its state (events seen with their timestamps, the
/// manifest's ETag) is kept in a JSON file between polls, as MISP keeps its own.
const CONSUMER: &str = r#"
import json, sys, urllib.request, urllib.error
from pymisp import MISPEvent

base, token, state_path = sys.argv[1], sys.argv[2], sys.argv[3]
try:
    with open(state_path) as f:
        state = json.load(f)
except FileNotFoundError:
    state = {"seen": {}, "etag": None}

def get(path, extra=None):
    headers = {"Authorization": token}
    headers.update(extra or {})
    request = urllib.request.Request(base + path, headers=headers)
    try:
        with urllib.request.urlopen(request) as response:
            # Header names are case-insensitive: the node sends them in lower case.
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()

out = {"manifest_status": None, "fetched": [], "events": {}, "hashes": None}
extra = {"If-None-Match": state["etag"]} if state["etag"] else {}
status, headers, body = get("manifest.json", extra)
out["manifest_status"] = status
out["manifest_bytes"] = len(body)
if status == 200:
    manifest = json.loads(body)
    state["etag"] = headers.get("ETag")
    for uuid, record in manifest.items():
        if uuid in state["seen"] and state["seen"][uuid] >= int(record["timestamp"]):
            continue
        status, _, body = get(uuid + ".json")
        assert status == 200, (uuid, status, body)
        event = MISPEvent()
        event.load(json.loads(body))
        assert event.uuid == uuid, (event.uuid, uuid)
        out["fetched"].append(uuid)
        out["events"][uuid] = {
            "info": event.info,
            "orgc": event.Orgc.name,
            "tags": [tag.name for tag in event.tags],
            "attributes": sorted([a.type, a.value, a.to_ids] for a in event.attributes),
            "timestamp_matches": int(event.timestamp.timestamp()) == int(record["timestamp"]),
        }
        state["seen"][uuid] = int(record["timestamp"])
    status, _, body = get("hashes.csv")
    assert status == 200, status
    out["hashes"] = sorted(line.split(",") for line in body.decode().splitlines())
with open(state_path, "w") as f:
    json.dump(state, f)
print(json.dumps(out))
"#;

/// A one-member federation's node, its network running, its API (with [`FULL_TOKEN`] and
/// the feed token [`FEED_TOKEN`], ceiling GREEN) served on 127.0.0.1 port 0.
async fn node() -> (Publisher, Store, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &Options::default()).unwrap();
    let (steward, org, node) = (key(1), key(2), key(3));
    let charter = one_member_charter("MISP feed test", "CERT-EU", "EU", &org, &node, &steward);
    store.put_charter(&charter).unwrap();
    let (client, event_loop) = network::new(
        network::Config::default(),
        node.clone(),
        store.clone(),
        charter,
    )
    .unwrap();
    tokio::spawn(event_loop.run());
    let publisher = Publisher::new(node, store.clone(), client.clone());
    let state = ApiState::new(
        store.clone(),
        client,
        publisher.clone(),
        vec![FULL_TOKEN.into()],
    )
    .with_feed_tokens(vec![FeedToken {
        token: FEED_TOKEN.into(),
        tlp: Tlp::Green,
    }]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/misp/feed/", listener.local_addr().unwrap());
    tokio::spawn(api::serve(
        listener,
        api::router(state),
        std::future::pending(),
    ));
    (publisher, store, url, dir)
}

/// Publishes `values` (ipv4 addresses) as one entry marked `tlp`: its event's uuid.
async fn publish(publisher: &Publisher, tlp: Tlp, values: &[&str]) -> String {
    let items = values
        .iter()
        .map(|value| {
            Item::Indicator(Indicator::new(
                Value::parse(Kind::Ipv4, value).unwrap(),
                Timestamp(1_700_000_000_000),
            ))
        })
        .collect();
    let ids = publisher
        .publish(tlp, Distribution::Federation, items)
        .await
        .unwrap();
    assert_eq!(ids.len(), 1);
    threatmesh_node::formats::misp::event_uuid(ids[0]).to_string()
}

/// One poll of the consumer: what it fetched and read.
async fn poll(url: &str, token: &str, state: &Path) -> Json {
    let (url, token, state) = (url.to_owned(), token.to_owned(), state.to_owned());
    tokio::task::spawn_blocking(move || {
        let python = python("pymisp");
        let output = Command::new(&python)
            .arg("-c")
            .arg(CONSUMER)
            .arg(&url)
            .arg(&token)
            .arg(&state)
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
            "the MISP-style consumer failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).unwrap()
    })
    .await
    .unwrap()
}

fn md5(value: &str) -> String {
    use md5::Digest as _;
    threatmesh_protocol::crypto::hex_encode(&md5::Md5::digest(value))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_misp_style_consumer_fetches_each_event_once_and_only_what_is_new() {
    let (publisher, _store, url, dir) = node().await;
    let first = publish(&publisher, Tlp::Green, &["198.51.100.1", "198.51.100.2"]).await;
    let second = publish(&publisher, Tlp::Clear, &["203.0.113.7"]).await;
    // Above the feed token's ceiling: never shown to it.
    publish(&publisher, Tlp::Amber, &["192.0.2.99"]).await;
    let state = dir.path().join("consumer.json");

    let read = poll(&url, FEED_TOKEN, &state).await;
    assert_eq!(read["manifest_status"], 200, "{read}");
    let mut fetched: Vec<String> = serde_json::from_value(read["fetched"].clone()).unwrap();
    fetched.sort();
    let mut expected = vec![first.clone(), second.clone()];
    expected.sort();
    assert_eq!(fetched, expected, "{read}");
    let event = &read["events"][&first];
    assert_eq!(event["orgc"], "CERT-EU");
    assert_eq!(event["tags"], json!(["tlp:green"]));
    assert_eq!(event["timestamp_matches"], true);
    assert_eq!(
        event["attributes"],
        json!([
            ["ip-dst", "198.51.100.1", true],
            ["ip-dst", "198.51.100.2", true]
        ])
    );
    assert_eq!(read["events"][&second]["tags"], json!(["tlp:clear"]));
    let mut hashes = vec![
        vec![md5("198.51.100.1"), first.clone()],
        vec![md5("198.51.100.2"), first.clone()],
        vec![md5("203.0.113.7"), second.clone()],
    ];
    hashes.sort();
    assert_eq!(read["hashes"], json!(hashes));

    // Nothing new: 304, an empty answer, nothing fetched.
    let read = poll(&url, FEED_TOKEN, &state).await;
    assert_eq!(read["manifest_status"], 304, "{read}");
    assert_eq!(read["manifest_bytes"], 0);
    assert_eq!(read["fetched"], json!([]));
    assert_eq!(read["hashes"], Json::Null);

    // Something new: only it is fetched.
    let third = publish(&publisher, Tlp::Green, &["198.51.100.3"]).await;
    let read = poll(&url, FEED_TOKEN, &state).await;
    assert_eq!(read["manifest_status"], 200, "{read}");
    assert_eq!(read["fetched"], json!([third]));
    assert_eq!(
        read["events"][&third]["attributes"],
        json!([["ip-dst", "198.51.100.3", true]])
    );
    assert_eq!(read["hashes"].as_array().unwrap().len(), 4);

    // The full token reads the amber event too, and a wrong one reads nothing.
    let full = poll(&url, FULL_TOKEN, &dir.path().join("full.json")).await;
    assert_eq!(full["fetched"].as_array().unwrap().len(), 4, "{full}");
    let wrong = poll(
        &url,
        "a-wrong-token-entirely",
        &dir.path().join("wrong.json"),
    )
    .await;
    assert_eq!(wrong["manifest_status"], 401, "{wrong}");
}

/// GETs `path` under the feed at `url` with `token`: status and body.
async fn fetch(url: &str, token: &str, path: &str) -> (u16, String) {
    let api = support::Api::new(url, token, std::time::Duration::from_secs(10));
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || api.get(&path, "*/*"))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_served_feed_is_what_threatmesh_export_writes() {
    let (publisher, _store, url, dir) = node().await;
    publish(&publisher, Tlp::Green, &["198.51.100.1", "198.51.100.2"]).await;
    publish(&publisher, Tlp::Amber, &["192.0.2.99"]).await;
    let api = url.trim_end_matches("/misp/feed/").to_owned();
    let out = dir.path().join("exported");
    let exported = {
        let (api, out) = (api.clone(), out.clone());
        tokio::task::spawn_blocking(move || {
            Command::new(support::BINARY)
                .args(["export", "--api", &api, "--format", "misp", "--out"])
                .arg(&out)
                .env("THREATMESH_TOKEN", FULL_TOKEN)
                .output()
                .unwrap()
        })
        .await
        .unwrap()
    };
    assert!(
        exported.status.success(),
        "{}",
        String::from_utf8_lossy(&exported.stderr)
    );
    let read = |name: &str| std::fs::read_to_string(out.join(name)).unwrap();

    let (status, manifest) = fetch(&url, FULL_TOKEN, "manifest.json").await;
    assert_eq!(status, 200);
    let manifest: Json = serde_json::from_str(&manifest).unwrap();
    let written: Json = serde_json::from_str(&read("manifest.json")).unwrap();
    assert_eq!(manifest, written);
    assert_eq!(manifest.as_object().unwrap().len(), 2);
    for uuid in manifest.as_object().unwrap().keys() {
        let (status, event) = fetch(&url, FULL_TOKEN, &format!("{uuid}.json")).await;
        assert_eq!(status, 200);
        let event: Json = serde_json::from_str(&event).unwrap();
        let written: Json = serde_json::from_str(&read(&format!("{uuid}.json"))).unwrap();
        assert_eq!(event, written, "{uuid}");
    }
    let (status, hashes) = fetch(&url, FULL_TOKEN, "hashes.csv").await;
    assert_eq!(status, 200);
    let mut served: Vec<&str> = hashes.lines().collect();
    let written = read("hashes.csv");
    let mut written: Vec<&str> = written.lines().collect();
    served.sort_unstable();
    written.sort_unstable();
    assert_eq!(served, written);
    assert_eq!(served.len(), 3);
}
