//! `[log]`: the log's format and filter.

use serde::{Deserialize, Serialize};

use super::{ConfigError, invalid};

/// `[log]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSection {
    /// `human` or `json`.
    pub format: String,
    /// A tracing filter (`info`, `threatmesh_node=debug`, ...).
    pub level: String,
}

impl Default for LogSection {
    fn default() -> LogSection {
        LogSection {
            format: "human".into(),
            level: "info".into(),
        }
    }
}

impl LogSection {
    /// Whether `log.format` asks for JSON.
    pub(super) fn is_json(&self) -> Result<bool, ConfigError> {
        match self.format.as_str() {
            "human" => Ok(false),
            "json" => Ok(true),
            other => Err(invalid(
                "log.format",
                format!("{other:?}: expected \"human\" or \"json\""),
            )),
        }
    }
}
