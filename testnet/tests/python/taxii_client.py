"""Drives two threatmesh nodes with the OASIS TAXII 2.1 client (taxii2-client).

Usage: taxii_client.py TESTNET_JSON

Node A is discovered, its collections listed, a bundle is posted to its own collection,
and its shared collection is paged through two objects at a time. Node B is then asked,
again through TAXII, until the posted indicators arrive there by the mesh. B serves them
under ids namespaced by A's organisation (only A's own nodes take A's STIX ids as they
are), which this script works out on its own from A's status. Prints one JSON
object with what was seen; the Rust test asserts on it. Any failure raises, and the exit
status is not zero.
"""

import hashlib
import json
import sys
import time
import urllib.request
import uuid

from taxii2client.v21 import Server, as_pages

TLP_GREEN = "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb"
# threatmesh's UUIDv5 namespace for STIX ids.
NAMESPACE = uuid.UUID("90596a21-1c6a-4b78-bf85-98d9736f8580")


def organisation(node):
    """The organisation key (hex) the node serves, from its status."""
    request = urllib.request.Request(
        node["api"] + "/api/v1/status",
        headers={"Authorization": "Bearer " + node["token"]},
    )
    with urllib.request.urlopen(request) as answer:
        return json.load(answer)["organisation"]


def kept_id(org, kept):
    """The id other organisations' nodes export indicator id `kept` of `org` under."""
    name = b"kept\0" + bytes.fromhex(org) + kept.encode()
    digest = hashlib.sha1(NAMESPACE.bytes + name).digest()
    return "indicator--" + str(uuid.UUID(bytes=digest[:16], version=5))


def server(node):
    return Server(node["api"] + "/taxii2/", user="taxii-test", password=node["token"])


def collections(node):
    root = server(node).default
    own = [c for c in root.collections if c.can_write]
    shared = [c for c in root.collections if not c.can_write]
    assert len(own) == 1 and len(shared) == 1, [c.title for c in root.collections]
    return root, own[0], shared[0]


def main():
    with open(sys.argv[1]) as file:
        nodes = json.load(file)
    a, b = nodes[0], nodes[1]

    root, own, shared = collections(a)
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    posted = [
        {
            "type": "indicator",
            "spec_version": "2.1",
            "id": "indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f",
            "created": now,
            "modified": now,
            "name": "QakBot C2",
            "pattern": "[ipv4-addr:value = '203.0.113.77']",
            "pattern_type": "stix",
            "valid_from": now,
            "indicator_types": ["malicious-activity"],
            "object_marking_refs": [TLP_GREEN],
        },
        {
            "type": "indicator",
            "spec_version": "2.1",
            "id": "indicator--f3bfa2d4-8b6e-4c1e-9a39-2c1d5f3b1e11",
            "created": now,
            "modified": now,
            "pattern": "[domain-name:value = 'c2.qakbot-example.net']",
            "pattern_type": "stix",
            "valid_from": now,
            "object_marking_refs": [TLP_GREEN],
        },
    ]
    status = own.add_objects({"objects": posted})
    assert status.status == "complete", status.status
    assert status.success_count == 2, (status.success_count, status.failures)
    # The status resource can be read back.
    status.refresh()
    assert status.success_count == 2

    # Page A's shared collection two objects at a time.
    paged = []
    pages = 0
    for envelope in as_pages(shared.get_objects, per_request=2):
        pages += 1
        paged.extend(envelope.get("objects", []))
    ids = [o["id"] for o in paged]
    assert len(ids) == len(set(ids)), "an object was listed twice"
    manifest = shared.get_manifest()

    # Wait for the mesh to carry the indicators to B, asking B through TAXII, under the
    # ids B gives A's objects.
    org_a = organisation(a)
    wanted = {kept_id(org_a, o["id"]) for o in posted}
    _, _, shared_b = collections(b)
    deadline = time.monotonic() + 60
    seen_b = {}
    while time.monotonic() < deadline:
        envelope = shared_b.get_objects(id=",".join(sorted(wanted)))
        seen_b = {o["id"]: o for o in envelope.get("objects", [])}
        if set(seen_b) == wanted:
            break
        time.sleep(0.2)
    # A's own ids name nothing on B.
    original_on_b = shared_b.get_objects(id=",".join(o["id"] for o in posted))

    print(
        json.dumps(
            {
                "api_root_title": root.title,
                "versions": root.versions,
                "pages": pages,
                "objects_on_a": len(paged),
                "types_on_a": sorted({o["type"] for o in paged}),
                "posted_on_a": sorted({o["id"] for o in posted} & set(ids)),
                "org_a": org_a,
                "original_ids_on_b": len(original_on_b.get("objects", [])),
                "manifest_on_a": len(manifest.get("objects", [])),
                "on_b": {
                    i: {
                        "pattern": o.get("pattern"),
                        "markings": o.get("object_marking_refs"),
                    }
                    for i, o in seen_b.items()
                },
            }
        )
    )


if __name__ == "__main__":
    main()
