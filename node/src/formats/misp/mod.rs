//! MISP in and out: event JSON (MISP core format) to items, entries to a MISP feed.
//!
//! Import reads one event (`{"Event": {...}}` or the bare event), REST search output
//! (`{"response": [{"Event": ...}, ...]}`) or a JSON array of events. Every attribute,
//! including those inside objects, is read once and ends in exactly one place of the
//! report:
//!
//! - a type that names an indicator kind (the table in `indicator_parts`) becomes one
//!   indicator per indicator part (`domain|ip` gives two); `to_ids: false` attributes are
//!   counted as unused `"<type> (to_ids false)"` unless [`MispOptions::include_non_ids`]
//!   asks for them, and then they carry confidence [`NON_IDS_CONFIDENCE`] and the label
//!   [`NON_IDS_LABEL`] so a consumer can keep them out of blocking;
//! - `link` attributes become external references of the event's indicators and count as
//!   context, as does each event (links past the reference limits count as unused);
//! - soft-deleted attributes (and those of deleted objects) count as `"<type> (deleted)"`;
//! - other types (filename, regkey, comment, text, `uri`, which is usually a bare path)
//!   count as unused by type;
//! - a bad value, a missing `type` or `value`, an unreadable time or an unknown `tlp:` tag
//!   is refused with `attribute <uuid>` (or its path, `Event.Object[2].Attribute[1]`).
//!
//! `tlp:*` tags (TLP 1.0 and 2.0 names, any case) mark the event and attributes; an
//! attribute's own tag wins, the strictest tag wins when one level has several. An
//! unknown `tlp:` tag refuses what it marks: guessing a weaker marking could leak it.
//! The event's `info` becomes each indicator's description (with the attribute's comment),
//! its uuid an external reference `misp`, a `misp-galaxy:` malware tag the threat name.
//! `first_seen`, else the attribute's `timestamp`, else the event's, gives `valid_from`.
//! Attribute `Sighting`s of type 0 become one sighting item per attribute.
//!
//! Export makes one MISP event per entry, in the feed layout MISP's "add feed" reads: a
//! `manifest.json` indexing every event, one `<event uuid>.json` per event and a
//! `hashes.csv` (MD5 of each value, event uuid). Event, attribute and organisation uuids
//! are UUIDv5 under [`UUID_NAMESPACE`], so every node exports an entry to the same uuids.
//! Revocations and sightings become attributes with `to_ids: false` and a comment saying
//! what they are: MISP has no withdrawal of another event's attribute, and `to_ids: false`
//! keeps them out of every IDS export (and out of a default import here).
//!
//! # Layout
//!
//! `import` reads documents into items; `export` writes entries as feed events.

mod export;
mod import;

use serde_json::Value as Json;
use uuid::Uuid;

pub(crate) use export::rfc3339;
pub use export::{
    EventSummary, attribute_uuid, event_file, event_uuid, export_feed, hash_line, manifest_record,
    org_uuid, write_feed,
};
pub use import::import;

/// Largest MISP document read. The whole JSON tree is held in memory (several times the
/// text), so bigger exports should be split into several events or files.
pub const MAX_INPUT_BYTES: usize = 64 * 1024 * 1024;

/// Confidence of indicators imported from `to_ids: false` attributes: MISP's publisher did
/// not vouch for them as detection material.
pub const NON_IDS_CONFIDENCE: u8 = 20;

/// Label of indicators imported from `to_ids: false` attributes.
pub const NON_IDS_LABEL: &str = "misp-not-for-ids";

/// Namespace of every uuid the feed export derives (a fixed, randomly drawn uuid).
pub const UUID_NAMESPACE: Uuid = Uuid::from_u128(0x66e0_6fa9_0f50_4c16_bd68_d932_c2de_910c);

/// Source name of the external reference that records the MISP event an indicator came
/// from.
pub const REFERENCE_SOURCE: &str = "misp";

/// How to import.
#[derive(Debug, Clone, Default)]
pub struct MispOptions {
    /// Import `to_ids: false` attributes too (lower confidence, labelled); default false.
    pub include_non_ids: bool,
}

/// A MISP document that cannot be read at all. Problems with single attributes are
/// refusals in the report, not errors.
#[derive(Debug, thiserror::Error)]
pub enum MispError {
    /// More than [`MAX_INPUT_BYTES`].
    #[error("MISP input of {len} bytes is over the limit of {MAX_INPUT_BYTES} bytes")]
    TooLarge {
        /// Its size.
        len: usize,
    },
    /// Not JSON; the message names line and column.
    #[error("MISP input is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// JSON, but no event where one was expected.
    #[error("no MISP event at {at}: {reason}")]
    NotAnEvent {
        /// Where (`top level`, `response[2]`).
        at: String,
        /// What was found instead.
        reason: String,
    },
}

/// A MISP feed: what [`write_feed`] puts in a directory.
#[derive(Debug, Clone, PartialEq)]
pub struct MispFeed {
    /// `manifest.json`: event uuid to the event's summary.
    pub manifest: Json,
    /// Each event's uuid and its file content, `{"Event": {...}}`.
    pub events: Vec<(String, Json)>,
    /// `hashes.csv` lines: `<md5 of value>,<event uuid>`.
    pub hashes: Vec<String>,
}
