//! Conversions between threatmesh's bundles and the formats CERTs already use: STIX 2.1,
//! MISP and CSV or plain lists.
//!
//! Importers are pure: bytes in, [`Import`] out. They never publish; the caller (API or
//! CLI) decides what to do with the items and shows the [`ImportReport`]. An importer
//! never drops anything silently: every object, attribute or line it read is either made
//! into an item, counted as context, counted as unused (by type), or refused with where
//! and why. One broken object never costs the valid ones in the same file.
//!
//! Exporters take stored, verified entries and the [`Publisher`] of each (the charter
//! member behind the entry's node key), so an export names organisations, not node keys.

pub mod csv;
pub mod marks;
pub mod misp;
pub mod rfc3339;
pub mod stix;

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::Serialize;
use threatmesh_protocol::bundle::Tlp;
use threatmesh_protocol::item::Item;
use threatmesh_protocol::{Body, Bundle, Charter, Entry, PublicKey};

/// The entry as exporters read it: itself when its bundle is in the clear; for a sealed
/// entry, the same entry carrying `opened`, the bundle this node opened; `None` when it
/// is sealed and this node could not open it, so exports skip it and show nothing of it.
/// Exporters see only `Body::Bundle`: a sealed body on its own exports nothing.
pub fn readable_entry(entry: &Entry, opened: Option<Bundle>) -> Option<Cow<'_, Entry>> {
    match (&entry.body, opened) {
        (Body::Bundle(_), _) => Some(Cow::Borrowed(entry)),
        (Body::Sealed(_), Some(bundle)) => Some(Cow::Owned(Entry {
            body: Body::Bundle(bundle),
            ..entry.clone()
        })),
        (Body::Sealed(_), None) => None,
    }
}

/// The longest prefix of `text` of at most `max_bytes` bytes that ends on a character:
/// importers cut overlong free text to the protocol's limits with it.
pub(crate) fn truncate_at_char(text: &str, max_bytes: usize) -> &str {
    if text.len() <= max_bytes {
        return text;
    }
    let mut end = max_bytes;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// An item and the marking its source gave it, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marked {
    /// The source's TLP for this item; `None` when the source said nothing.
    pub tlp: Option<Tlp>,
    /// The item.
    pub item: Item,
}

/// What an importer made of one file.
#[derive(Debug, Clone, Default)]
pub struct Import {
    /// The items, in the file's order.
    pub items: Vec<Marked>,
    /// What happened to everything that was read.
    pub report: ImportReport,
}

impl Import {
    /// The items grouped by marking, unmarked ones under `default`, each group in file
    /// order. Publishing each group splits it into as many entries as it needs.
    pub fn by_tlp(&self, default: Tlp) -> BTreeMap<Tlp, Vec<Item>> {
        Import::group(self.items.iter().cloned(), default)
    }

    /// [`Import::by_tlp`] that takes the items instead of copying them, for publishing.
    pub fn into_by_tlp(self, default: Tlp) -> BTreeMap<Tlp, Vec<Item>> {
        Import::group(self.items.into_iter(), default)
    }

    fn group(items: impl Iterator<Item = Marked>, default: Tlp) -> BTreeMap<Tlp, Vec<Item>> {
        let mut groups: BTreeMap<Tlp, Vec<Item>> = BTreeMap::new();
        for marked in items {
            groups
                .entry(marked.tlp.unwrap_or(default))
                .or_default()
                .push(marked.item);
        }
        groups
    }

    /// Adds `item` and counts it in the report.
    pub fn push(&mut self, tlp: Option<Tlp>, item: Item) {
        match &item {
            Item::Indicator(_) => self.report.indicators += 1,
            Item::Revocation(_) => self.report.revocations += 1,
            Item::Sighting(_) => self.report.sightings += 1,
        }
        self.items.push(Marked { tlp, item });
    }

    /// Records that the object or line at `at` was refused, and why.
    pub fn refuse(&mut self, at: impl Into<String>, reason: impl Into<String>) {
        self.report.refused.push(Refusal {
            at: at.into(),
            reason: reason.into(),
        });
    }

    /// Counts one object of a type this importer does not use.
    pub fn unused(&mut self, kind: &str) {
        *self.report.unused.entry(kind.to_owned()).or_default() += 1;
    }
}

/// The account of one import, as the API and the CLI show it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImportReport {
    /// Objects, attributes or lines read.
    pub read: usize,
    /// Indicators made.
    pub indicators: usize,
    /// Sightings made.
    pub sightings: usize,
    /// Revocations made.
    pub revocations: usize,
    /// Objects used as context of other items (identities, malware, campaigns,
    /// relationships, marking definitions).
    pub context: usize,
    /// Objects of types this importer does not use, counted by type.
    pub unused: BTreeMap<String, usize>,
    /// What was refused, each with where and why.
    pub refused: Vec<Refusal>,
}

/// One refused object, attribute or line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Refusal {
    /// Where: a STIX id, `attribute <uuid>`, `line 12`.
    pub at: String,
    /// Why, in words.
    pub reason: String,
}

/// The organisation behind an entry, as exports name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publisher {
    /// Its root key, which is also its id in the charter.
    pub org: PublicKey,
    /// Its name (`CERT-FR`).
    pub name: String,
    /// Its country code.
    pub country: String,
}

impl Publisher {
    /// The member that certified node key `author`, if the charter names one. Members
    /// removed since still name themselves through older charters; callers fall back to
    /// [`Publisher::unknown`].
    pub fn of(charter: &Charter, author: &PublicKey) -> Option<Publisher> {
        let (member, _) = charter.node(author)?;
        Some(Publisher {
            org: member.org,
            name: member.name.clone(),
            country: member.country.clone(),
        })
    }

    /// The publisher exports name for an entry by node key `author`: the member
    /// [`Publisher::of`] finds, else [`Publisher::unknown`]. `threatmesh export` and the
    /// node's MISP feed both name publishers with it, so the two agree.
    pub fn exporting(charter: &Charter, author: &PublicKey) -> Publisher {
        Publisher::of(charter, author).unwrap_or_else(|| Publisher::unknown(author))
    }

    /// A publisher the charter no longer names: called after its node key.
    pub fn unknown(author: &PublicKey) -> Publisher {
        Publisher {
            org: *author,
            name: format!("node {author}"),
            country: "XX".to_owned(),
        }
    }
}
