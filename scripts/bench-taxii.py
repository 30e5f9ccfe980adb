#!/usr/bin/env python3
"""TAXII 2.1 benchmark: a threatmesh node against medallion, the OASIS reference server.

Starts a one-node threatmesh testnet and medallion (memory backend) on loopback, sends
both the same STIX 2.1 indicators, and measures at each size (default 10,000 and 100,000
objects):

- ingest: objects per second through POST .../objects/ (envelopes of --batch objects);
- paging: objects per second reading the whole collection with GET .../objects/ and
  `next` (pages of --page objects);
- lookup: latency of GET .../objects/{id}/ for --lookups random ids (p50, p99).

medallion is given at most --budget seconds per size; when it runs out, the report says
how far it got. Writes report.json and report.md into --out.

Usage (from the repository root, after `cargo build --release -p threatmesh-testnet`):
    scripts/bench-taxii.py            # installs medallion into .venv if needed
"""

import argparse
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TAXII = "application/taxii+json;version=2.1"


def ensure_venv():
    """Re-runs this script inside .venv with medallion and requests installed."""
    python = os.path.join(ROOT, ".venv", "bin", "python")
    if os.path.realpath(sys.prefix) == os.path.realpath(os.path.join(ROOT, ".venv")):
        try:
            import medallion  # noqa: F401
            import requests  # noqa: F401
            return
        except ImportError:
            subprocess.check_call([python, "-m", "pip", "install", "-q", "medallion==3.0.0"])
            os.execv(python, [python] + sys.argv)
    if not os.path.exists(python):
        subprocess.check_call([sys.executable, "-m", "venv", os.path.join(ROOT, ".venv")])
        subprocess.check_call(
            [python, "-m", "pip", "install", "-q", "-r",
             os.path.join(ROOT, "tests", "python-requirements.txt")])
    os.execv(python, [python] + sys.argv)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(what, check, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:  # the server is still starting
            pass
        time.sleep(0.1)
    raise SystemExit(f"timed out waiting for {what}")


def indicators(first, count):
    """`count` STIX indicators for distinct IPv4 addresses, ids fixed by the seed."""
    rng = random.Random(first)
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    objects = []
    for n in range(first, first + count):
        address = f"{10 + (n >> 24) % 200}.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"
        objects.append({
            "type": "indicator",
            "spec_version": "2.1",
            "id": f"indicator--{uuid.UUID(int=rng.getrandbits(128), version=4)}",
            "created": now,
            "modified": now,
            "pattern": f"[ipv4-addr:value = '{address}']",
            "pattern_type": "stix",
            "valid_from": now,
        })
    return objects


class Server:
    """One TAXII server under test: where its collection is and how to authenticate."""

    def __init__(self, name, session, collection_url, write_url):
        self.name = name
        self.session = session
        self.collection_url = collection_url
        self.write_url = write_url
        self.posted_ids = []

    def post(self, objects):
        answer = self.session.post(
            self.write_url + "objects/", data=json.dumps({"objects": objects}),
            headers={"Content-Type": TAXII, "Accept": TAXII})
        answer.raise_for_status()
        status = answer.json()
        if status.get("failure_count", 0):
            raise SystemExit(f"{self.name} refused objects: {status.get('failures', [])[:3]}")
        self.posted_ids.extend(o["id"] for o in objects)

    def page_all(self, page):
        count, cursor = 0, None
        while True:
            params = {"limit": page}
            if cursor:
                params["next"] = cursor
            answer = self.session.get(self.collection_url + "objects/", params=params,
                                      headers={"Accept": TAXII})
            answer.raise_for_status()
            envelope = answer.json()
            count += len(envelope.get("objects", []))
            if not envelope.get("more"):
                return count
            cursor = envelope["next"]

    def lookup(self, object_id):
        answer = self.session.get(f"{self.collection_url}objects/{object_id}/",
                                  headers={"Accept": TAXII})
        answer.raise_for_status()
        if not answer.json().get("objects"):
            raise SystemExit(f"{self.name}: {object_id} not found")


def start_threatmesh(binary, work):
    process = subprocess.Popen(
        [binary, "up", "--nodes", "1", "--base-port", "0", "--dir", work],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    path = os.path.join(work, "testnet.json")
    wait_until("the threatmesh node", lambda: os.path.exists(path))
    import requests
    with open(path) as file:
        node = json.load(file)[0]
    session = requests.Session()
    session.auth = ("bench", node["token"])
    root = node["api"] + "/taxii2/root/"
    collections = session.get(root + "collections/", headers={"Accept": TAXII}).json()
    own = next(c for c in collections["collections"] if c["can_write"])
    shared = next(c for c in collections["collections"] if not c["can_write"])
    return process, Server("threatmesh", session, f"{root}collections/{shared['id']}/",
                           f"{root}collections/{own['id']}/")


def start_medallion(work, page):
    import requests
    port = free_port()
    collection = str(uuid.uuid4())
    data = {
        "/discovery": {"title": "bench", "api_roots": [f"http://127.0.0.1:{port}/api1/"],
                       "default": f"http://127.0.0.1:{port}/api1/"},
        "api1": {
            "information": {"title": "bench", "versions": [TAXII],
                            "max_content_length": 104857600},
            "status": [],
            "collections": [{"id": collection, "title": "bench", "can_read": True,
                             "can_write": True,
                             "media_types": ["application/stix+json;version=2.1"],
                             "objects": [], "manifest": []}],
        },
    }
    with open(os.path.join(work, "data.json"), "w") as file:
        json.dump(data, file)
    config = {"backend": {"module_class": "MemoryBackend",
                          "module": "medallion.backends.memory_backend",
                          "filename": os.path.join(work, "data.json")},
              "users": {"bench": "bench"}, "taxii": {"max_page_size": page}}
    with open(os.path.join(work, "config.json"), "w") as file:
        json.dump(config, file)
    process = subprocess.Popen(
        [os.path.join(ROOT, ".venv", "bin", "medallion"), "--host", "127.0.0.1", "--port",
         str(port), "--log-level", "ERROR", os.path.join(work, "config.json")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    session = requests.Session()
    session.auth = ("bench", "bench")
    url = f"http://127.0.0.1:{port}/api1/collections/{collection}/"
    wait_until("medallion", lambda: session.get(url, headers={"Accept": TAXII}).ok)
    return process, Server("medallion", session, url, url)


def measure(server, target, batch, page, lookups, budget, started_with):
    """Posts up to `target` objects in all, then pages and looks up. Stops posting when
    `budget` seconds are spent, saying so."""
    row = {"server": server.name, "target": target}
    began = time.monotonic()
    posted_now = 0
    while len(server.posted_ids) < target:
        if time.monotonic() - began > budget:
            row["gave_up"] = (f"after {budget} s with {len(server.posted_ids)} of {target} "
                              "objects posted")
            break
        count = min(batch, target - len(server.posted_ids))
        server.post(indicators(started_with + len(server.posted_ids), count))
        posted_now += count
    spent = time.monotonic() - began
    row["held"] = len(server.posted_ids)
    row["ingest_per_s"] = round(posted_now / spent) if posted_now else None
    if "gave_up" in row:
        return row
    began = time.monotonic()
    listed = server.page_all(page)
    row["paging_per_s"] = round(listed / (time.monotonic() - began))
    row["listed"] = listed
    latencies = []
    for object_id in random.Random(7).sample(server.posted_ids, min(lookups, len(server.posted_ids))):
        began = time.perf_counter()
        server.lookup(object_id)
        latencies.append((time.perf_counter() - began) * 1000)
    latencies.sort()
    row["lookup_ms_p50"] = round(statistics.median(latencies), 2)
    row["lookup_ms_p99"] = round(latencies[int(len(latencies) * 0.99) - 1], 2)
    return row


def main():
    ensure_venv()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--batch", type=int, default=1000, help="objects per POST")
    parser.add_argument("--page", type=int, default=1000, help="objects per GET page")
    parser.add_argument("--lookups", type=int, default=200)
    parser.add_argument("--budget", type=int, default=600, help="seconds per size for medallion")
    parser.add_argument("--binary", default=os.path.join(ROOT, "target/release/threatmesh-testnet"))
    parser.add_argument("--out", default=os.path.join(ROOT, "target/bench-taxii"))
    parser.add_argument("--servers", default="threatmesh,medallion",
                        help="which servers to measure, comma-separated")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    os.makedirs(args.out, exist_ok=True)
    rows = []
    with tempfile.TemporaryDirectory() as work:
        os.makedirs(os.path.join(work, "tm"))
        os.makedirs(os.path.join(work, "md"))
        wanted = args.servers.split(",")
        servers, processes = [], []
        if "threatmesh" in wanted:
            process, tm = start_threatmesh(args.binary, os.path.join(work, "tm"))
            servers.append(tm)
            processes.append(process)
        md = None
        if "medallion" in wanted:
            process, md = start_medallion(os.path.join(work, "md"), args.page)
            servers.append(md)
            processes.append(process)
        try:
            medallion_done = False
            for size in sizes:
                for server in servers:
                    if server is md and medallion_done:
                        rows.append({"server": "medallion", "target": size,
                                     "gave_up": "gave up at a smaller size"})
                        continue
                    print(f"{server.name}: filling to {size} objects ...", flush=True)
                    row = measure(server, size, args.batch, args.page, args.lookups,
                                  args.budget if server is md else 10 ** 9, 0)
                    print("  ", row, flush=True)
                    rows.append(row)
                    if server is md and "gave_up" in row:
                        medallion_done = True
        finally:
            for process in processes:
                process.terminate()
                process.wait()
    with open(os.path.join(args.out, "report.json"), "w") as file:
        json.dump(rows, file, indent=2)
    lines = ["| server | objects | ingest obj/s | paging obj/s | lookup p50 ms | lookup p99 ms | note |",
             "|---|---|---|---|---|---|---|"]
    for row in rows:
        lines.append("| {} | {} | {} | {} | {} | {} | {} |".format(
            row["server"], row.get("held", row["target"]), row.get("ingest_per_s", "-"),
            row.get("paging_per_s", "-"), row.get("lookup_ms_p50", "-"),
            row.get("lookup_ms_p99", "-"), row.get("gave_up", "")))
    with open(os.path.join(args.out, "report.md"), "w") as file:
        file.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
