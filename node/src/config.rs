//! The node's configuration: a TOML file with a default for every setting, validated once
//! at start with errors that name the setting. Relative paths are relative to the file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use libp2p::Multiaddr;
use serde::{Deserialize, Serialize};
use threatmesh_protocol::Hash;

/// Everything `threatmesh run` needs.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The node itself.
    pub node: NodeSection,
    /// The libp2p mesh.
    pub network: NetworkSection,
    /// The local HTTP API.
    pub api: ApiSection,
    /// Logging.
    pub log: LogSection,
    /// Warninglists: known false positives.
    pub warninglists: WarninglistsSection,
}

/// `[node]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NodeSection {
    /// The store's directory.
    pub data_dir: PathBuf,
    /// The node's secret key file.
    pub key_file: PathBuf,
    /// The organisation's encryption key file (X25519), for reading bundles sealed to the
    /// organisation. Without it, the node stores and relays sealed bundles but reads none.
    pub encryption_key_file: Option<PathBuf>,
    /// The federation's id (its genesis charter's id), in hex.
    pub federation: Option<String>,
    /// A charter file to start from when the store holds none yet (the genesis).
    pub charter_file: Option<PathBuf>,
    /// sled's page cache, in MiB.
    pub cache_mib: u64,
    /// Free disk space, in MiB, kept on the store's filesystem: below it writes are
    /// refused (reads go on) until space is freed. 0 turns the check off.
    pub reserve_mib: u64,
}

/// `[network]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkSection {
    /// libp2p addresses to listen on.
    pub listen: Vec<String>,
    /// Peers to dial at start, with their `/p2p/` id.
    pub bootstrap: Vec<String>,
    /// Seconds between anti-entropy rounds (reconciling feed heads with a few peers).
    pub sync_interval_secs: u64,
    /// Peers reconciled with each round, in turn.
    pub sync_peers: usize,
    /// Links to other members the node holds (8 to 32): it dials more below three
    /// quarters of this and closes the surplus above it.
    pub target_peers: usize,
    /// Find peers on the local network with mDNS.
    pub mdns: bool,
    /// Most connections in total.
    pub max_connections: u32,
    /// Seconds an entry's creation time may be ahead of this node's clock; entries
    /// further ahead are refused (and fetched again later).
    pub clock_skew_secs: u64,
    /// Gossip messages one peer may send per second, sustained; beyond it (and the
    /// burst) messages are ignored and counted, and sync fetches the entries later.
    pub peer_messages_per_sec: u32,
    /// Gossip messages one peer may send at once above that rate.
    pub peer_message_burst: u32,
    /// Bytes of gossip one peer may send per second, sustained.
    pub peer_bytes_per_sec: u64,
    /// Bytes of gossip one peer may send at once above that rate.
    pub peer_byte_burst: u64,
    /// Entries of one feed author taken from gossip per second, sustained, whichever
    /// peers relay them; beyond it (and the burst) they are ignored, counted and not
    /// charged to the relaying peer, and sync fetches them later. Keep it below
    /// `peer_messages_per_sec`.
    pub author_messages_per_sec: u32,
    /// Entries of one author taken at once above that rate.
    pub author_message_burst: u32,
    /// Bytes of one author's entries taken from gossip per second, sustained.
    pub author_bytes_per_sec: u64,
    /// Bytes of one author's entries taken at once above that rate.
    pub author_byte_burst: u64,
    /// Incoming connections from one address (IPv4, or an IPv6 /64) that may be in their
    /// handshake at once; more are refused before the handshake and counted
    /// (`connections_refused_total{reason="ip-over-limit"}`).
    pub ip_max_pending: u32,
    /// New incoming connections one address may open per second, sustained.
    pub ip_connections_per_sec: u32,
    /// New incoming connections one address may open at once above that rate.
    pub ip_connection_burst: u32,
    /// Seconds a connection's handshake may take before it is dropped.
    pub handshake_timeout_secs: u64,
}

/// `[api]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiSection {
    /// Address the HTTP API listens on.
    pub listen: String,
    /// Bearer tokens the API accepts for everything.
    pub tokens: Vec<String>,
    /// Bearer tokens the API accepts for reading only (dashboards, the web console): every
    /// route that writes refuses them, 403. None unless listed.
    pub read_tokens: Vec<String>,
    /// Requests served at once; more are answered 503 at once, not queued.
    pub max_concurrent_requests: usize,
    /// Wrong tokens one client address may present within `auth_failure_window_secs`;
    /// after that it gets 429 until the window ends, even with a right token. Requests
    /// with no credentials are counted in metrics but not here.
    pub max_auth_failures: u32,
    /// The window failed authentications are counted in, in seconds.
    pub auth_failure_window_secs: u64,
    /// Keep the TAXII object index up with the store in the background (every 2 s), so
    /// a TAXII read never waits for a large backlog to be indexed. Off, each TAXII read
    /// indexes what arrived since the last one before it answers; nothing is indexed on
    /// a node no TAXII client reads.
    pub taxii_background_index: bool,
    /// Tokens that read the MISP feed (`/misp/feed/`) only, each up to a TLP ceiling:
    /// `feed_tokens = [{ token = "...", tlp = "green" }]`.
    pub feed_tokens: Vec<FeedTokenSection>,
}

/// One of `api.feed_tokens`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedTokenSection {
    /// The token, as the MISP instance sends it in `Authorization`.
    pub token: String,
    /// The strictest marking it reads: `clear` (or `white`), `green`, `amber`,
    /// `amber+strict` or `red`.
    pub tlp: String,
}

/// `[log]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSection {
    /// `human` or `json`.
    pub format: String,
    /// A tracing filter (`info`, `threatmesh_node=debug`, ...).
    pub level: String,
}

/// `[warninglists]`: MISP warninglists. Values on an enabled list are held back on publish
/// and import (unless the caller says to ignore them), marked on lookup and in exports, and
/// counted when peers send them.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WarninglistsSection {
    /// Check values against warninglists at all (the default set and `dir`).
    pub enabled: bool,
    /// A folder of the operator's own lists in the MISP format: `NAME/list.json` or
    /// `NAME.json`. A list with a default list's name replaces it.
    pub dir: Option<PathBuf>,
    /// Lists to turn off, by name (`rfc1918`, `cisco_top10k`, ...).
    pub disabled: Vec<String>,
    /// Start without a malformed list file (with a warning) instead of refusing to start.
    pub skip_invalid: bool,
}

impl Default for WarninglistsSection {
    fn default() -> WarninglistsSection {
        WarninglistsSection {
            enabled: true,
            dir: None,
            disabled: Vec::new(),
            skip_invalid: false,
        }
    }
}

impl Default for NodeSection {
    fn default() -> NodeSection {
        NodeSection {
            data_dir: "data".into(),
            key_file: "node.key".into(),
            encryption_key_file: None,
            federation: None,
            charter_file: None,
            cache_mib: 128,
            reserve_mib: crate::store::DEFAULT_RESERVE_BYTES / (1024 * 1024),
        }
    }
}

impl Default for NetworkSection {
    fn default() -> NetworkSection {
        let defaults = crate::network::Config::default();
        NetworkSection {
            listen: vec!["/ip4/0.0.0.0/tcp/4001".into()],
            bootstrap: Vec::new(),
            sync_interval_secs: defaults.sync_interval.as_secs(),
            sync_peers: defaults.sync_peers,
            target_peers: defaults.target_peers,
            mdns: false,
            max_connections: 256,
            clock_skew_secs: defaults.clock_skew.as_secs(),
            peer_messages_per_sec: defaults.peer_messages_per_sec,
            peer_message_burst: defaults.peer_message_burst,
            peer_bytes_per_sec: defaults.peer_bytes_per_sec,
            peer_byte_burst: defaults.peer_byte_burst,
            author_messages_per_sec: defaults.author_messages_per_sec,
            author_message_burst: defaults.author_message_burst,
            author_bytes_per_sec: defaults.author_bytes_per_sec,
            author_byte_burst: defaults.author_byte_burst,
            ip_max_pending: defaults.ip_max_pending,
            ip_connections_per_sec: defaults.ip_connections_per_sec,
            ip_connection_burst: defaults.ip_connection_burst,
            handshake_timeout_secs: defaults.handshake_timeout.as_secs(),
        }
    }
}

impl Default for ApiSection {
    fn default() -> ApiSection {
        let limits = crate::api::ApiLimits::default();
        ApiSection {
            listen: "127.0.0.1:8080".into(),
            tokens: Vec::new(),
            read_tokens: Vec::new(),
            max_concurrent_requests: limits.max_concurrent_requests,
            max_auth_failures: limits.max_auth_failures,
            auth_failure_window_secs: limits.auth_failure_window.as_secs(),
            taxii_background_index: true,
            feed_tokens: Vec::new(),
        }
    }
}

impl Default for LogSection {
    fn default() -> LogSection {
        LogSection {
            format: "human".into(),
            level: "info".into(),
        }
    }
}

/// A configuration that cannot be used; names the setting.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// Not valid TOML, an unknown setting, or a value of the wrong type.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// toml's message, which names the setting and the line.
        message: String,
    },
    /// A setting with a value that cannot work.
    #[error("setting {setting}: {reason}")]
    Invalid {
        /// `section.name`.
        setting: &'static str,
        /// Why.
        reason: String,
    },
    /// The configuration file or the data directory can be read by others: the first
    /// holds the API tokens, the second the bundles opened for this organisation (TLP:RED
    /// among them).
    #[error(
        "{} can be read by others (mode {mode:o}): it holds {holds}; run: chmod {chmod} {}",
        path.display(),
        path.display()
    )]
    OpenToOthers {
        /// The file or directory.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
        /// What it holds that others must not read.
        holds: &'static str,
        /// The mode to give it.
        chmod: &'static str,
    },
    /// The data directory could not be created or looked at.
    #[error("node.data_dir {}: {source}", path.display())]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// A warninglist file is malformed, the folder cannot be read, or `disabled` names
    /// a list there is not.
    #[error("{0}")]
    Warninglists(#[from] crate::warninglists::LoadError),
}

/// Refuses the configuration file at `path` if others can read it: it holds the API
/// tokens, with which anyone may publish in the organisation's name.
pub fn check_private_file(path: &Path) -> Result<(), ConfigError> {
    match crate::keyfile::open_to_others(path) {
        Ok(None) => Ok(()),
        Ok(Some(mode)) => Err(ConfigError::OpenToOthers {
            path: path.to_path_buf(),
            mode,
            holds: "the API tokens",
            chmod: "600",
        }),
        Err(source) => Err(ConfigError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Makes sure the data directory at `path` is its owner's alone: creates it (and any
/// missing parents) with mode 0700 when missing, and refuses an existing one others can
/// read, as key files are refused. Its mode is not changed behind the operator's back:
/// they may have widened it on purpose, and the error says what to run.
pub fn prepare_data_dir(path: &Path) -> Result<(), ConfigError> {
    let error = |source| ConfigError::DataDir {
        path: path.to_path_buf(),
        source,
    };
    if !path.exists() {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt as _;
            builder.mode(0o700);
        }
        builder.create(path).map_err(error)?;
    }
    match crate::keyfile::open_to_others(path).map_err(error)? {
        None => Ok(()),
        Some(mode) => Err(ConfigError::OpenToOthers {
            path: path.to_path_buf(),
            mode,
            holds: "the store, with every bundle opened for this organisation",
            chmod: "700",
        }),
    }
}

/// A validated configuration, ready for `run`.
#[derive(Debug, Clone)]
pub struct Validated {
    /// The store's directory.
    pub data_dir: PathBuf,
    /// The node's key file.
    pub key_file: PathBuf,
    /// The organisation's encryption key file, if any.
    pub encryption_key_file: Option<PathBuf>,
    /// The federation's id.
    pub federation: Hash,
    /// The genesis charter file, if any.
    pub charter_file: Option<PathBuf>,
    /// sled's cache in bytes.
    pub cache_bytes: u64,
    /// Free disk space kept on the store's filesystem, in bytes.
    pub reserve_bytes: u64,
    /// Network settings.
    pub network: crate::network::Config,
    /// Where the API listens.
    pub api_listen: SocketAddr,
    /// API tokens that may do everything.
    pub tokens: Vec<String>,
    /// API tokens that may read only.
    pub read_tokens: Vec<String>,
    /// The API's limits.
    pub api_limits: crate::api::ApiLimits,
    /// Keep the TAXII object index up in the background.
    pub taxii_background_index: bool,
    /// Tokens that read the MISP feed only, up to their TLP ceilings.
    pub feed_tokens: Vec<crate::api::FeedToken>,
    /// Log format is JSON.
    pub json_logs: bool,
    /// Log filter.
    pub log_level: String,
    /// Warninglist files left out under `warninglists.skip_invalid`, for the start to
    /// warn about once logging is up.
    pub warninglists_skipped: Vec<crate::warninglists::ListError>,
}

/// Shortest API token accepted: shorter ones can be guessed.
pub const MIN_TOKEN_CHARS: usize = 16;

/// The longest duration setting accepted, in seconds.
const MAX_SECONDS: u64 = 24 * 60 * 60;

impl Config {
    /// Reads `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        toml::from_str(&text).map_err(|error| ConfigError::Parse {
            path: path.to_path_buf(),
            message: error.to_string(),
        })
    }

    /// Checks every setting; `base` is the directory relative paths start from.
    pub fn validate(&self, base: &Path) -> Result<Validated, ConfigError> {
        let invalid = |setting, reason: String| ConfigError::Invalid { setting, reason };
        let federation = self
            .node
            .federation
            .as_deref()
            .ok_or_else(|| {
                invalid(
                    "node.federation",
                    "missing: the federation's id (run `threatmesh charter verify` on its genesis charter)".into(),
                )
            })?
            .parse::<Hash>()
            .map_err(|error| invalid("node.federation", error.to_string()))?;
        let parse_all = |setting, addresses: &[String]| -> Result<Vec<Multiaddr>, ConfigError> {
            addresses
                .iter()
                .map(|text| {
                    text.parse::<Multiaddr>()
                        .map_err(|error| invalid(setting, format!("{text:?}: {error}")))
                })
                .collect()
        };
        let listen = parse_all("network.listen", &self.network.listen)?;
        if listen.is_empty() {
            return Err(invalid(
                "network.listen",
                "at least one address is needed".into(),
            ));
        }
        let bootstrap = parse_all("network.bootstrap", &self.network.bootstrap)?;
        // Durations become deadlines (now + duration), which panic past the clock's range:
        // a day is far more than any of them needs.
        for (name, seconds) in [
            (
                "network.handshake_timeout_secs",
                self.network.handshake_timeout_secs,
            ),
            (
                "network.sync_interval_secs",
                self.network.sync_interval_secs,
            ),
            (
                "api.auth_failure_window_secs",
                self.api.auth_failure_window_secs,
            ),
        ] {
            if !(1..=MAX_SECONDS).contains(&seconds) {
                return Err(invalid(
                    name,
                    format!("must be from 1 to {MAX_SECONDS} (a day), not {seconds}"),
                ));
            }
        }
        let targets = crate::network::TARGET_PEERS_RANGE;
        if !targets.contains(&self.network.target_peers) {
            return Err(invalid(
                "network.target_peers",
                format!(
                    "must be from {} to {}, not {}",
                    targets.start(),
                    targets.end(),
                    self.network.target_peers
                ),
            ));
        }
        if !(1..=self.network.target_peers).contains(&self.network.sync_peers) {
            return Err(invalid(
                "network.sync_peers",
                format!(
                    "must be from 1 to target_peers ({}), not {}",
                    self.network.target_peers, self.network.sync_peers
                ),
            ));
        }
        let api_listen =
            self.api.listen.parse::<SocketAddr>().map_err(|error| {
                invalid("api.listen", format!("{:?}: {error}", self.api.listen))
            })?;
        if self.api.tokens.is_empty() {
            return Err(invalid("api.tokens", "at least one token is needed".into()));
        }
        for (setting, tokens) in [
            ("api.tokens", &self.api.tokens),
            ("api.read_tokens", &self.api.read_tokens),
        ] {
            if let Some(short) = tokens.iter().find(|t| t.chars().count() < MIN_TOKEN_CHARS) {
                return Err(invalid(
                    setting,
                    format!(
                        "a token of {} characters; at least {MIN_TOKEN_CHARS}",
                        short.chars().count()
                    ),
                ));
            }
        }
        // A token in both would leave what it may do to the order of a check; the error
        // names the token's place, not the token, which would end up in logs.
        if let Some(index) = self
            .api
            .read_tokens
            .iter()
            .position(|token| self.api.tokens.contains(token))
        {
            return Err(invalid(
                "api.read_tokens",
                format!(
                    "read token {} (counting from 1) is also in api.tokens: a token either \
                     writes or reads only; make a new one for reading",
                    index + 1
                ),
            ));
        }
        let feed_tokens = self.validate_feed_tokens()?;
        if self.api.max_concurrent_requests == 0 {
            return Err(invalid(
                "api.max_concurrent_requests",
                "must be at least 1".into(),
            ));
        }
        if self.api.max_auth_failures == 0 {
            return Err(invalid(
                "api.max_auth_failures",
                "must be at least 1".into(),
            ));
        }
        let json_logs = match self.log.format.as_str() {
            "human" => false,
            "json" => true,
            other => {
                return Err(invalid(
                    "log.format",
                    format!("{other:?}: expected \"human\" or \"json\""),
                ));
            }
        };
        let network = crate::network::Config {
            listen,
            bootstrap,
            sync_interval: Duration::from_secs(self.network.sync_interval_secs),
            sync_peers: self.network.sync_peers,
            target_peers: self.network.target_peers,
            mdns: self.network.mdns,
            max_connections: self.network.max_connections,
            clock_skew: Duration::from_secs(self.network.clock_skew_secs),
            peer_messages_per_sec: self.network.peer_messages_per_sec,
            peer_message_burst: self.network.peer_message_burst,
            peer_bytes_per_sec: self.network.peer_bytes_per_sec,
            peer_byte_burst: self.network.peer_byte_burst,
            author_messages_per_sec: self.network.author_messages_per_sec,
            author_message_burst: self.network.author_message_burst,
            author_bytes_per_sec: self.network.author_bytes_per_sec,
            author_byte_burst: self.network.author_byte_burst,
            ip_max_pending: self.network.ip_max_pending,
            ip_connections_per_sec: self.network.ip_connections_per_sec,
            ip_connection_burst: self.network.ip_connection_burst,
            handshake_timeout: Duration::from_secs(self.network.handshake_timeout_secs),
            ..crate::network::Config::default()
        };
        let (network, warninglists_skipped) = self.warninglists.load(base, network)?;
        Ok(Validated {
            data_dir: base.join(&self.node.data_dir),
            key_file: base.join(&self.node.key_file),
            encryption_key_file: self
                .node
                .encryption_key_file
                .as_ref()
                .map(|file| base.join(file)),
            federation,
            charter_file: self.node.charter_file.as_ref().map(|file| base.join(file)),
            cache_bytes: self.node.cache_mib.saturating_mul(1024 * 1024),
            reserve_bytes: self.node.reserve_mib.saturating_mul(1024 * 1024),
            network,
            api_listen,
            tokens: self.api.tokens.clone(),
            read_tokens: self.api.read_tokens.clone(),
            api_limits: crate::api::ApiLimits {
                max_concurrent_requests: self.api.max_concurrent_requests,
                max_auth_failures: self.api.max_auth_failures,
                auth_failure_window: Duration::from_secs(self.api.auth_failure_window_secs),
            },
            taxii_background_index: self.api.taxii_background_index,
            feed_tokens,
            json_logs,
            log_level: self.log.level.clone(),
            warninglists_skipped,
        })
    }
}

impl WarninglistsSection {
    /// Loads the lists this section names into `network`'s configuration; returns it with
    /// the files left out under `skip_invalid`.
    fn load(
        &self,
        base: &Path,
        mut network: crate::network::Config,
    ) -> Result<(crate::network::Config, Vec<crate::warninglists::ListError>), ConfigError> {
        use crate::warninglists::{Sources, Warninglists};
        if !self.enabled {
            network.warninglists = Warninglists::none();
            return Ok((network, Vec::new()));
        }
        if self.dir.is_none() && self.disabled.is_empty() {
            // The default set, compiled once per process.
            network.warninglists = Warninglists::builtin();
            return Ok((network, Vec::new()));
        }
        let loaded = crate::warninglists::load(&Sources {
            builtin: true,
            dir: self.dir.as_ref().map(|dir| base.join(dir)),
            disabled: self.disabled.clone(),
            skip_invalid: self.skip_invalid,
        })?;
        network.warninglists = std::sync::Arc::new(loaded.lists);
        Ok((network, loaded.skipped))
    }
}

impl Config {
    /// `api.feed_tokens`, checked: each at least [`MIN_TOKEN_CHARS`] long, in no other
    /// list and listed once, with a TLP level. Errors name the token by its place, not
    /// by its text, which would end up in logs.
    fn validate_feed_tokens(&self) -> Result<Vec<crate::api::FeedToken>, ConfigError> {
        let invalid = |reason: String| ConfigError::Invalid {
            setting: "api.feed_tokens",
            reason,
        };
        let mut tokens: Vec<crate::api::FeedToken> = Vec::new();
        for (index, entry) in self.api.feed_tokens.iter().enumerate() {
            let place = index + 1;
            let length = entry.token.chars().count();
            if length < MIN_TOKEN_CHARS {
                return Err(invalid(format!(
                    "feed token {place} (counting from 1) has {length} characters; at least \
                     {MIN_TOKEN_CHARS}"
                )));
            }
            if self.api.tokens.contains(&entry.token) || self.api.read_tokens.contains(&entry.token)
            {
                return Err(invalid(format!(
                    "feed token {place} (counting from 1) is also in api.tokens or \
                     api.read_tokens: a feed token reads the feed only; make a new one"
                )));
            }
            if tokens.iter().any(|token| token.token == entry.token) {
                return Err(invalid(format!(
                    "feed token {place} (counting from 1) is listed twice"
                )));
            }
            let tlp = entry.tlp.parse().map_err(|error| {
                invalid(format!(
                    "feed token {place} (counting from 1): tlp: {error}"
                ))
            })?;
            tokens.push(crate::api::FeedToken {
                token: entry.token.clone(),
                tlp,
            });
        }
        Ok(tokens)
    }
}

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
# sled's page cache, in MiB.
cache_mib = 128
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
# Index new entries for TAXII in the background, so TAXII reads never wait for a backlog.
# Costs CPU on every entry (its STIX export) whether or not a TAXII client reads.
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, toml::de::Error> {
        toml::from_str(text)
    }

    #[test]
    fn template_parses_and_needs_only_the_federation() {
        let config = parse(&template(
            &"t".repeat(32),
            "127.0.0.1:8080",
            "/ip4/0.0.0.0/tcp/4001",
        ))
        .unwrap();
        let error = config.validate(Path::new("/x")).unwrap_err();
        assert!(error.to_string().contains("node.federation"), "{error}");
        let mut config = config;
        config.node.federation = Some(Hash::of(b"f").to_string());
        let valid = config.validate(Path::new("/x")).unwrap();
        assert_eq!(valid.data_dir, PathBuf::from("/x/data"));
        assert_eq!(
            valid.encryption_key_file,
            Some(PathBuf::from("/x/encryption.key"))
        );
        assert_eq!(valid.network.sync_interval, Duration::from_secs(10));
        // The template writes the defaults of the rate limits out.
        let defaults = crate::network::Config::default();
        let limits = |config: &crate::network::Config| {
            (
                config.author_messages_per_sec,
                config.author_message_burst,
                config.author_bytes_per_sec,
                config.author_byte_burst,
                config.peer_bytes_per_sec,
                config.peer_byte_burst,
            )
        };
        assert_eq!(limits(&valid.network), limits(&defaults));
        // The template's values are the defaults.
        let defaults = crate::network::Config::default();
        assert_eq!(valid.network.ip_max_pending, defaults.ip_max_pending);
        assert_eq!(
            valid.network.ip_connections_per_sec,
            defaults.ip_connections_per_sec
        );
        assert_eq!(
            valid.network.ip_connection_burst,
            defaults.ip_connection_burst
        );
        assert_eq!(valid.network.handshake_timeout, defaults.handshake_timeout);
        assert_eq!(valid.api_limits, crate::api::ApiLimits::default());
        assert!(valid.taxii_background_index);
    }

    #[test]
    fn errors_name_the_setting() {
        let error = parse("[api]\nlisten = 8080\n").unwrap_err().to_string();
        assert!(error.contains("listen"), "{error}");
        let error = parse("[network]\nlisten_on = []\n")
            .unwrap_err()
            .to_string();
        assert!(error.contains("listen_on"), "{error}");
        let mut config = Config::default();
        config.node.federation = Some(Hash::of(b"f").to_string());
        config.api.tokens = vec!["short".into()];
        let error = config.validate(Path::new(".")).unwrap_err().to_string();
        assert!(error.contains("api.tokens"), "{error}");
        config.api.tokens = vec!["x".repeat(20)];
        config.network.listen = vec!["not an address".into()];
        let error = config.validate(Path::new(".")).unwrap_err().to_string();
        assert!(error.contains("network.listen"), "{error}");
    }

    #[test]
    fn read_tokens_are_checked_as_tokens_are_and_none_may_be_a_full_token() {
        let mut config = Config::default();
        config.node.federation = Some(Hash::of(b"f").to_string());
        let (full, read) = ("f".repeat(20), "r".repeat(20));
        config.api.tokens = vec![full.clone()];
        let valid = config.validate(Path::new(".")).unwrap();
        assert!(valid.read_tokens.is_empty(), "none unless listed");
        config.api.read_tokens = vec![read.clone()];
        let valid = config.validate(Path::new(".")).unwrap();
        assert_eq!(
            (valid.tokens, valid.read_tokens),
            (vec![full.clone()], vec![read.clone()])
        );
        config.api.read_tokens = vec![read.clone(), "short".into()];
        let error = config.validate(Path::new(".")).unwrap_err().to_string();
        assert!(error.contains("api.read_tokens"), "{error}");
        assert!(error.contains("5 characters"), "{error}");
        config.api.read_tokens = vec![read.clone(), full.clone()];
        let error = config.validate(Path::new(".")).unwrap_err().to_string();
        assert!(error.contains("api.read_tokens"), "{error}");
        assert!(error.contains("read token 2"), "{error}");
        assert!(error.contains("also in api.tokens"), "{error}");
        assert!(!error.contains(&full), "the error shows the token: {error}");
        // Read tokens alone are not enough: something must be able to publish.
        config.api.tokens.clear();
        config.api.read_tokens = vec![read];
        let error = config.validate(Path::new(".")).unwrap_err().to_string();
        assert!(error.contains("api.tokens: at least one"), "{error}");
    }

    #[test]
    fn the_templates_read_token_line_works_once_uncommented() {
        let template = template(&"t".repeat(32), "127.0.0.1:8080", "/ip4/0.0.0.0/tcp/4001");
        let line = "# read_tokens = [\"...\"]";
        assert!(template.contains(line), "{template}");
        let read = "r".repeat(48);
        let mut config =
            parse(&template.replace(line, &format!("read_tokens = [\"{read}\"]"))).unwrap();
        config.node.federation = Some(Hash::of(b"f").to_string());
        let valid = config.validate(Path::new("/x")).unwrap();
        assert_eq!(valid.read_tokens, [read]);
    }

    #[test]
    fn warninglists_are_on_by_default_and_configured_by_name_and_folder() {
        let template = template(&"t".repeat(32), "127.0.0.1:8080", "/ip4/0.0.0.0/tcp/4001");
        let mut config = parse(&template).unwrap();
        config.node.federation = Some(Hash::of(b"f").to_string());
        let lists = |config: &Config| {
            let valid = config.validate(Path::new("/x")).unwrap();
            let ids: Vec<String> = valid
                .network
                .warninglists
                .lists()
                .iter()
                .map(|l| l.id.clone())
                .collect();
            (ids, valid.warninglists_skipped)
        };
        let (ids, _) = lists(&config);
        assert!(ids.contains(&"rfc1918".to_owned()), "{ids:?}");
        // Turned off by name; a name that is no list is refused, naming it.
        config.warninglists.disabled = vec!["rfc1918".into()];
        assert!(!lists(&config).0.contains(&"rfc1918".to_owned()));
        config.warninglists.disabled = vec!["rfc1819".into()];
        let error = config.validate(Path::new("/x")).unwrap_err().to_string();
        assert!(
            error.contains("warninglists.disabled: no list is called \"rfc1819\""),
            "{error}"
        );
        config.warninglists.disabled.clear();
        // A folder relative to the file, with one good and one malformed list.
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("lists/ours")).unwrap();
        std::fs::write(
            dir.path().join("lists/ours/list.json"),
            r#"{"name":"Ours","version":1,"description":"","type":"string","list":["partner.example"]}"#,
        )
        .unwrap();
        std::fs::write(
            dir.path().join("lists/bad.json"),
            r#"{"name":"Bad","version":1,"type":"cidr","list":["300.0.0.0/8"]}"#,
        )
        .unwrap();
        config.warninglists.dir = Some(PathBuf::from("lists"));
        let error = config.validate(dir.path()).unwrap_err().to_string();
        assert!(
            error.contains("lists/bad.json: `list[0]`: \"300.0.0.0/8\" is not an IP"),
            "{error}"
        );
        config.warninglists.skip_invalid = true;
        let valid = config.validate(dir.path()).unwrap();
        assert_eq!(valid.warninglists_skipped.len(), 1);
        assert!(
            valid
                .network
                .warninglists
                .lists()
                .iter()
                .any(|l| l.id == "ours")
        );
        // Off altogether.
        let config: Config = parse(&template.replace("enabled = true", "enabled = false"))
            .map(|mut c| {
                c.node.federation = Some(Hash::of(b"f").to_string());
                c
            })
            .unwrap();
        assert!(lists(&config).0.is_empty());
    }
}
