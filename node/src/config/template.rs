//! The commented configuration file `threatmesh init` writes: every setting with its
//! default and why one would change it.

use super::MIN_TOKEN_CHARS;

/// The commented configuration file `threatmesh init` writes.
pub fn template(token: &str, api_listen: &str, listen: &str) -> String {
    format!(
        r#"# threatmesh node configuration. Relative paths are relative to this file.
# Every setting has a default; `threatmesh run` flags override this file.

[node]
# The store: everything this node accepted, with the sealed bundles opened for this
# organisation. Mode 0700: the node creates it so and refuses one others can read.
data_dir = "data"
# The node's secret key (mode 0600). Its public half is the node's PeerId.
key_file = "node.key"
# The organisation's encryption key (mode 0600): opens bundles sealed to the organisation
# (TLP:RED, TLP:AMBER+STRICT, named recipients). Its public half is in the charter.
encryption_key_file = "encryption.key"
# The federation's id, printed by `threatmesh charter verify` on its genesis charter.
# federation = "..."
# The genesis charter, read at first start (later charters arrive from peers).
# charter_file = "genesis.json"
# Memory for the store's page cache, in MiB (the store's own structures come on top,
# and grow with what it holds: docs/SECURITY.md).
cache_mib = 64
# Free disk space (MiB) to keep: below it the node refuses writes, keeps answering reads,
# and accepts writes again once space is freed. 0 turns the check off.
reserve_mib = 256

[network]
# Where other members' nodes reach this one.
listen = ["{listen}"]
# Members' nodes to dial at start, e.g. "/ip4/192.0.2.10/tcp/4001/p2p/12D3KooW...".
bootstrap = []
# Seconds between anti-entropy rounds: the node reconciles its feed heads with
# sync_peers peers in turn (and with every new peer at once). In step, a round costs about
# 200 bytes per peer whatever the federation's size.
sync_interval_secs = 10
sync_peers = 2
# Links to other members this node holds (8 to 32). It dials more below three quarters of
# this and closes the surplus above it; gossip reaches every member over these links.
target_peers = 16
# Find peers on the local network.
mdns = false
max_connections = 256
# Seconds an entry's creation time may be ahead of this node's clock.
clock_skew_secs = 300
# Per-peer gossip rate limits: messages and bytes per second, sustained, and the burst
# above it. Messages beyond them are ignored and counted; sync fetches them later.
peer_messages_per_sec = 100
peer_message_burst = 1000
peer_bytes_per_sec = 8388608
peer_byte_burst = 67108864
# Per-author gossip rate limits, whichever peers relay the author's entries: entries and
# bytes per second, sustained, and the burst. Beyond them the author's entries are ignored
# and counted, the relaying peer is not charged, and sync fetches them later.
author_messages_per_sec = 50
author_message_burst = 500
author_bytes_per_sec = 4194304
author_byte_burst = 33554432
# Per-address limits on incoming connections, checked before the handshake (one address:
# an IPv4 address or an IPv6 /64): handshakes pending at once, and new connections per
# second with a burst. Beyond them connections are refused and counted. Members behind
# one address (NAT) share these; raise them if many of your peers do.
ip_max_pending = 8
ip_connections_per_sec = 2
ip_connection_burst = 32
# Seconds a connection's handshake may take.
handshake_timeout_secs = 10

[api]
# The local HTTP API. Keep it on loopback unless a firewall guards it.
listen = "{api_listen}"
# Bearer tokens for the API (at least {MIN_TOKEN_CHARS} characters each). They are why this
# file must stay mode 0600: the node refuses to start when others can read it.
tokens = ["{token}"]
# Read tokens: they read everything the tokens above read (opened TLP:RED bundles too), but
# every write (publish, import, charter push, blocking peers, TAXII POST) is refused 403.
# For dashboards and the web console. Make one with e.g. `openssl rand -hex 24`; a token is
# in one list only. Restart the node to apply.
# read_tokens = ["..."]
# Requests served at once; more are answered 503 (with Retry-After) rather than queued.
max_concurrent_requests = 64
# A client address that fails authentication this many times within the window gets 429
# (with Retry-After) for everything until the window ends, even with a right token.
max_auth_failures = 10
auth_failure_window_secs = 60
# Index new entries for TAXII in the background (when no entry arrived for 2 s, and at least
# every 30 s), so TAXII reads never wait for a backlog. Costs CPU and disk on every entry (a
# key per STIX object) whether or not a TAXII client reads.
taxii_background_index = true
# Feed tokens read only the MISP feed at /misp/feed/ (MISP: Add feed, source format "MISP
# Feed", URL http://<this api>/misp/feed/, header "Authorization: <token>"), and only
# entries at or below their TLP ceiling: clear, green, amber, amber+strict or red. The
# tokens above read the whole feed too. A token is in one list only.
# feed_tokens = [{{ token = "...", tlp = "green" }}]

[log]
# "human" or "json".
format = "human"
# A tracing filter: "info", "debug", "threatmesh_node=debug,libp2p=info", ...
level = "info"

[warninglists]
# MISP warninglists: values that are almost always false positives (public DNS
# resolvers, RFC 1918 and other special-use addresses, empty-file hashes, top domains,
# cloud providers' ranges). A value on an enabled list is held back on publish and
# import unless the request says `ignore_warninglists` (CLI: --ignore-warninglists),
# marked on lookup, in exports and on TAXII, and counted in /metrics when peers send it.
# The default set is built in; node/warninglists/PROVENANCE.md lists it.
enabled = true
# Your own lists in the MISP format, one per NAME/list.json or NAME.json; a list named
# like a default one replaces it.
# dir = "warninglists"
# Lists to turn off, by name; an unknown name stops the start.
# disabled = ["cisco_top10k"]
# A malformed list file stops the start, naming the file and the field. true: start
# without it and log a warning.
skip_invalid = false
"#
    )
}
