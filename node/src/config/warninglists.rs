//! `[warninglists]`: which MISP warninglists the node checks values against.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::ConfigError;

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

impl WarninglistsSection {
    /// Loads the lists this section names into `network`'s configuration; returns it with
    /// the files left out under `skip_invalid`.
    pub(super) fn load(
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
