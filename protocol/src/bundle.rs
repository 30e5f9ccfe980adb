//! Bundles: what one entry of a feed publishes, with its TLP marking and who may read it.
//!
//! A bundle in the clear is readable by every node that relays it, so the protocol refuses
//! to build or accept one whose marking or distribution says "named recipients only"
//! (TLP:RED, TLP:AMBER+STRICT, or `Distribution::Recipients`): such content must travel
//! sealed, readable by its recipients alone.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::crypto::PublicKey;
use crate::item::{InvalidItem, Item};

/// Most items one bundle may carry. Bounds the memory a decoded entry takes.
pub const MAX_ITEMS_PER_BUNDLE: usize = 10_000;
/// Most recipient organisations one bundle may name.
pub const MAX_RECIPIENTS: usize = 256;

/// Traffic Light Protocol 2.0 marking.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    bincode::Encode,
    bincode::Decode,
)]
pub enum Tlp {
    /// TLP:CLEAR, no limit on disclosure (TLP 1.0 called it WHITE).
    #[serde(rename = "clear")]
    Clear,
    /// TLP:GREEN, the community.
    #[serde(rename = "green")]
    Green,
    /// TLP:AMBER, the recipients' organisations and their clients.
    #[serde(rename = "amber")]
    Amber,
    /// TLP:AMBER+STRICT, the recipients' organisations only.
    #[serde(rename = "amber+strict")]
    AmberStrict,
    /// TLP:RED, the named recipients only.
    #[serde(rename = "red")]
    Red,
}

/// Who may read a bundle.
#[derive(
    Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, bincode::Encode, bincode::Decode,
)]
#[serde(rename_all = "kebab-case")]
pub enum Distribution {
    /// Every member of the federation.
    #[default]
    Federation,
    /// These organisations only, named by their root keys.
    Recipients(Vec<PublicKey>),
}

/// What one entry publishes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
pub struct Bundle {
    /// The TLP marking of every item.
    pub tlp: Tlp,
    /// Who may read it.
    #[serde(default)]
    pub distribution: Distribution,
    /// What it says, at least one item.
    pub items: Vec<Item>,
}

/// A bundle that breaks a rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidBundle {
    /// No items at all.
    #[error("bundle has no items")]
    Empty,
    /// More than [`MAX_ITEMS_PER_BUNDLE`] items.
    #[error("bundle has {0} items, at most {MAX_ITEMS_PER_BUNDLE}")]
    TooManyItems(usize),
    /// An item breaks a rule.
    #[error("item {index} ({value}): {source}")]
    Item {
        /// Position of the item in the bundle.
        index: usize,
        /// The item's value, for the message.
        value: String,
        /// What is wrong.
        #[source]
        source: InvalidItem,
    },
    /// `Recipients` with an empty list, a duplicate, or too many.
    #[error("bad recipient list: {0}")]
    Recipients(String),
    /// Restricted content (TLP:RED, TLP:AMBER+STRICT or named recipients) in the clear.
    #[error("{tlp} content for {scope} must be sealed for its recipients, not sent in the clear")]
    RestrictedInClear {
        /// The bundle's marking.
        tlp: Tlp,
        /// Its distribution, in words.
        scope: &'static str,
    },
}

impl Tlp {
    /// Whether content with this marking may only go to named recipients.
    pub fn is_restricted(self) -> bool {
        matches!(self, Tlp::AmberStrict | Tlp::Red)
    }

    /// The TLP 2.0 label, `TLP:AMBER+STRICT`.
    pub fn label(self) -> &'static str {
        match self {
            Tlp::Clear => "TLP:CLEAR",
            Tlp::Green => "TLP:GREEN",
            Tlp::Amber => "TLP:AMBER",
            Tlp::AmberStrict => "TLP:AMBER+STRICT",
            Tlp::Red => "TLP:RED",
        }
    }
}

impl fmt::Display for Tlp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// Text that names no TLP level.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown TLP marking {0:?} (expected CLEAR, GREEN, AMBER, AMBER+STRICT or RED)")]
pub struct UnknownTlp(pub String);

impl FromStr for Tlp {
    type Err = UnknownTlp;

    /// Accepts `TLP:AMBER+STRICT`, `amber+strict`, `tlp:white` (TLP 1.0's CLEAR), any case.
    fn from_str(text: &str) -> Result<Tlp, UnknownTlp> {
        let trimmed = text.trim();
        let name = trimmed
            .get(..4)
            .filter(|prefix| prefix.eq_ignore_ascii_case("tlp:"))
            .map_or(trimmed, |_| &trimmed[4..]);
        match name.to_ascii_lowercase().as_str() {
            "clear" | "white" => Ok(Tlp::Clear),
            "green" => Ok(Tlp::Green),
            "amber" => Ok(Tlp::Amber),
            "amber+strict" => Ok(Tlp::AmberStrict),
            "red" => Ok(Tlp::Red),
            _ => Err(UnknownTlp(text.chars().take(40).collect())),
        }
    }
}

impl Distribution {
    /// Whether only named organisations may read the content.
    pub fn is_restricted(&self) -> bool {
        matches!(self, Distribution::Recipients(_))
    }

    fn validate(&self) -> Result<(), InvalidBundle> {
        let Distribution::Recipients(recipients) = self else {
            return Ok(());
        };
        if recipients.is_empty() {
            return Err(InvalidBundle::Recipients("no recipients".into()));
        }
        if recipients.len() > MAX_RECIPIENTS {
            return Err(InvalidBundle::Recipients(format!(
                "{} recipients, at most {MAX_RECIPIENTS}",
                recipients.len()
            )));
        }
        let mut seen = BTreeSet::new();
        if let Some(duplicate) = recipients.iter().find(|key| !seen.insert(**key)) {
            return Err(InvalidBundle::Recipients(format!(
                "{duplicate} named twice"
            )));
        }
        Ok(())
    }
}

/// An item too large to fit any bundle of the requested size.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "item {index} ({value}) takes {bytes} bytes, more than a bundle of {max_bytes} bytes holds"
)]
pub struct ItemTooLarge {
    /// Position of the item in the input.
    pub index: usize,
    /// The item's value, for the message.
    pub value: String,
    /// Its encoded size.
    pub bytes: usize,
    /// The bundle size asked for.
    pub max_bytes: usize,
}

impl Bundle {
    /// Packs `items`, in order, into as few bundles as fit: each encodes to at most
    /// `max_bytes` and holds at most [`MAX_ITEMS_PER_BUNDLE`] items. Publishers use it with
    /// [`crate::entry::MAX_BUNDLE_BYTES`] so every entry stays under the gossip limit.
    pub fn split(
        tlp: Tlp,
        distribution: Distribution,
        items: Vec<Item>,
        max_bytes: usize,
    ) -> Result<Vec<Bundle>, ItemTooLarge> {
        let empty = Bundle {
            tlp,
            distribution,
            items: Vec::new(),
        };
        // The items' length prefix grows with the count; 9 bytes covers any count.
        let overhead = crate::wire::encoded_len(&empty) + 9;
        let mut bundles = Vec::new();
        let mut current = empty.clone();
        let mut current_bytes = overhead;
        for (index, item) in items.into_iter().enumerate() {
            let bytes = crate::wire::encoded_len(&item);
            if overhead + bytes > max_bytes {
                return Err(ItemTooLarge {
                    index,
                    value: item.value().to_string(),
                    bytes,
                    max_bytes,
                });
            }
            let full = current.items.len() == MAX_ITEMS_PER_BUNDLE;
            if full || current_bytes + bytes > max_bytes {
                bundles.push(std::mem::replace(&mut current, empty.clone()));
                current_bytes = overhead;
            }
            current.items.push(item);
            current_bytes += bytes;
        }
        if !current.items.is_empty() {
            bundles.push(current);
        }
        Ok(bundles)
    }

    /// Checks every rule a bundle sent in the clear must follow.
    pub fn validate_clear(&self) -> Result<(), InvalidBundle> {
        self.validate_content()?;
        if self.tlp.is_restricted() || self.distribution.is_restricted() {
            let scope = if self.distribution.is_restricted() {
                "named recipients"
            } else {
                "the whole federation"
            };
            return Err(InvalidBundle::RestrictedInClear {
                tlp: self.tlp,
                scope,
            });
        }
        Ok(())
    }

    /// Checks the items and the recipient list, whatever the marking.
    pub fn validate_content(&self) -> Result<(), InvalidBundle> {
        if self.items.is_empty() {
            return Err(InvalidBundle::Empty);
        }
        if self.items.len() > MAX_ITEMS_PER_BUNDLE {
            return Err(InvalidBundle::TooManyItems(self.items.len()));
        }
        self.distribution.validate()?;
        for (index, item) in self.items.iter().enumerate() {
            item.validate().map_err(|source| InvalidBundle::Item {
                index,
                value: item.value().to_string(),
                source,
            })?;
        }
        Ok(())
    }
}
