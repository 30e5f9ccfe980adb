//! `[network]`: the libp2p mesh. The file's keys are flat (`peer_messages_per_sec`, ...).
//! One table, [`network_section!`], names each key once with the field of
//! [`crate::network::Config`] it sets: the table makes [`NetworkSection`], its defaults
//! (read from `network::Config::default()`) and the copy into the network's
//! configuration, so a setting is written in `network::Config` and in one row here.

use std::time::Duration;

use libp2p::Multiaddr;
use serde::{Deserialize, Serialize};

use super::{ConfigError, check_seconds, invalid};
use crate::network::{Config, TARGET_PEERS_RANGE};

/// Where a node listens unless the file says otherwise.
const DEFAULT_LISTEN: &str = "/ip4/0.0.0.0/tcp/4001";

/// Declares `[network]` from rows of `file_key: type => field.of.Config by conversion`.
/// The conversion (a module below) reads the default out of `network::Config` and
/// writes the file's value into it, checking it on the way when it needs checking.
/// `listen` and `bootstrap` are written by hand: they are parsed, and the network has no
/// default listening address.
macro_rules! network_section {
    ($($key:ident: $file_type:ty => $($field:ident).+ by $conversion:ident),+ $(,)?) => {
        /// `[network]`
        #[derive(Debug, Clone, Serialize, Deserialize)]
        #[serde(deny_unknown_fields, default)]
        pub struct NetworkSection {
            /// libp2p addresses to listen on.
            pub listen: Vec<String>,
            /// Peers to dial at start, with their `/p2p/` id.
            pub bootstrap: Vec<String>,
            $(
                #[doc = concat!(
                    "Sets [`network::Config`](crate::network::Config)`::",
                    stringify!($($field).+),
                    "`, read `",
                    stringify!($conversion),
                    "`."
                )]
                pub $key: $file_type,
            )+
        }

        impl Default for NetworkSection {
            /// The network's own defaults, and a listening address, which the network
            /// has no default for.
            fn default() -> NetworkSection {
                let defaults = Config::default();
                NetworkSection {
                    listen: vec![DEFAULT_LISTEN.into()],
                    bootstrap: Vec::new(),
                    $($key: $conversion::from_config(&defaults.$($field).+),)+
                }
            }
        }

        impl NetworkSection {
            /// Writes every table row into `config`; the first bad value is an error
            /// naming its key.
            fn write_rows(&self, config: &mut Config) -> Result<(), ConfigError> {
                $(
                    config.$($field).+ = $conversion::into_config(
                        concat!("network.", stringify!($key)),
                        self.$key,
                    )?;
                )+
                Ok(())
            }
        }
    };
}

network_section! {
    handshake_timeout_secs: u64 => handshake_timeout by checked_seconds,
    sync_interval_secs: u64 => sync_interval by checked_seconds,
    sync_peers: usize => sync_peers by same,
    target_peers: usize => target_peers by same,
    mdns: bool => mdns by same,
    max_connections: u32 => max_connections by same,
    clock_skew_secs: u64 => clock_skew by seconds,
    peer_messages_per_sec: u32 => peer_limit.messages_per_sec by same,
    peer_message_burst: u32 => peer_limit.message_burst by same,
    peer_bytes_per_sec: u64 => peer_limit.bytes_per_sec by same,
    peer_byte_burst: u64 => peer_limit.byte_burst by same,
    author_messages_per_sec: u32 => author_limit.messages_per_sec by same,
    author_message_burst: u32 => author_limit.message_burst by same,
    author_bytes_per_sec: u64 => author_limit.bytes_per_sec by same,
    author_byte_burst: u64 => author_limit.byte_burst by same,
    ip_max_pending: u32 => ip_max_pending by same,
    ip_connections_per_sec: u32 => ip_connections_per_sec by same,
    ip_connection_burst: u32 => ip_connection_burst by same,
}

/// `same`: the value as it is.
mod same {
    use super::ConfigError;

    pub(super) fn from_config<T: Copy>(value: &T) -> T {
        *value
    }

    #[allow(
        clippy::unnecessary_wraps,
        reason = "every conversion is called the same way by the table"
    )]
    pub(super) fn into_config<T>(_setting: &'static str, value: T) -> Result<T, ConfigError> {
        Ok(value)
    }
}

/// `seconds`: whole seconds, any number of them (0 included).
mod seconds {
    use super::{ConfigError, Duration};

    pub(super) fn from_config(value: &Duration) -> u64 {
        value.as_secs()
    }

    #[allow(
        clippy::unnecessary_wraps,
        reason = "every conversion is called the same way by the table"
    )]
    pub(super) fn into_config(_setting: &'static str, value: u64) -> Result<Duration, ConfigError> {
        Ok(Duration::from_secs(value))
    }
}

/// `checked_seconds`: whole seconds, from 1 to a day: a period or timeout that cannot be zero.
mod checked_seconds {
    use super::{ConfigError, Duration, check_seconds};

    pub(super) fn from_config(value: &Duration) -> u64 {
        value.as_secs()
    }

    pub(super) fn into_config(setting: &'static str, value: u64) -> Result<Duration, ConfigError> {
        check_seconds(setting, value)
    }
}

impl NetworkSection {
    /// Checks the section and makes the network's configuration of it; what the file does
    /// not set keeps the network's default.
    pub(super) fn validate(&self) -> Result<Config, ConfigError> {
        let listen = parse_all("network.listen", &self.listen)?;
        if listen.is_empty() {
            return Err(invalid(
                "network.listen",
                "at least one address is needed".into(),
            ));
        }
        let bootstrap = parse_all("network.bootstrap", &self.bootstrap)?;
        let mut config = Config {
            listen,
            bootstrap,
            ..Config::default()
        };
        self.write_rows(&mut config)?;
        let targets = TARGET_PEERS_RANGE;
        if !targets.contains(&self.target_peers) {
            return Err(invalid(
                "network.target_peers",
                format!(
                    "must be from {} to {}, not {}",
                    targets.start(),
                    targets.end(),
                    self.target_peers
                ),
            ));
        }
        if !(1..=self.target_peers).contains(&self.sync_peers) {
            return Err(invalid(
                "network.sync_peers",
                format!(
                    "must be from 1 to target_peers ({}), not {}",
                    self.target_peers, self.sync_peers
                ),
            ));
        }
        Ok(config)
    }
}

/// Parses each of `addresses`; an error names `setting` and the address.
fn parse_all(setting: &'static str, addresses: &[String]) -> Result<Vec<Multiaddr>, ConfigError> {
    addresses
        .iter()
        .map(|text| {
            text.parse::<Multiaddr>()
                .map_err(|error| invalid(setting, format!("{text:?}: {error}")))
        })
        .collect()
}
