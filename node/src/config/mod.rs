//! The node's configuration: a TOML file with a default for every setting, validated once
//! at start with errors that name the setting. Relative paths are relative to the file.

mod api;
mod log;
mod network;
mod node;
mod template;
mod warninglists;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use threatmesh_protocol::Hash;

pub use self::api::{ApiSection, FeedTokenSection};
pub use self::log::LogSection;
pub use self::network::NetworkSection;
pub use self::node::NodeSection;
pub use self::template::template;
pub use self::warninglists::WarninglistsSection;

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

    /// Checks every setting, one section after the other; `base` is the directory
    /// relative paths start from.
    pub fn validate(&self, base: &Path) -> Result<Validated, ConfigError> {
        let federation = self.node.federation()?;
        let network = self.network.validate()?;
        let api = self.api.validate()?;
        let json_logs = self.log.is_json()?;
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
            api_listen: api.listen,
            tokens: self.api.tokens.clone(),
            read_tokens: self.api.read_tokens.clone(),
            api_limits: api.limits,
            taxii_background_index: self.api.taxii_background_index,
            feed_tokens: api.feed_tokens,
            json_logs,
            log_level: self.log.level.clone(),
            warninglists_skipped,
        })
    }
}

/// A setting with a value that cannot work.
fn invalid(setting: &'static str, reason: String) -> ConfigError {
    ConfigError::Invalid { setting, reason }
}

/// Checks a duration setting: durations become deadlines (now + duration), which panic
/// past the clock's range, and a day is far more than any of them needs.
fn check_seconds(setting: &'static str, seconds: u64) -> Result<Duration, ConfigError> {
    if !(1..=MAX_SECONDS).contains(&seconds) {
        return Err(invalid(
            setting,
            format!("must be from 1 to {MAX_SECONDS} (a day), not {seconds}"),
        ));
    }
    Ok(Duration::from_secs(seconds))
}

#[cfg(test)]
mod tests;
