//! What a page holds: each object listed, written as JSON once, with what the manifest
//! and the version filters read of it ([`Listed`]); and the entry the last page ended in,
//! kept decoded for the next ([`LastRow`]).

use std::sync::Arc;

use serde_json::Value as Json;
use threatmesh_protocol::{PublicKey, Timestamp};

use super::media::STIX_MEDIA_TYPE;
use crate::formats::{rfc3339, stix};
use crate::store::AddedRow;

/// The row of the added-time index a page read last, decoded, shared by the requests of
/// one server (see `Shared`).
#[derive(Debug, Default)]
pub(super) struct LastRow(std::sync::Mutex<Option<Arc<AddedRow>>>);

impl LastRow {
    pub(super) fn get(&self, key: &[u8]) -> Option<Arc<AddedRow>> {
        let held = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        held.as_ref().filter(|row| row.key == key).cloned()
    }

    pub(super) fn keep(&self, row: &Arc<AddedRow>) {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Arc::clone(row));
    }
}

/// One object of a collection, written as JSON, with what the manifest says of it.
#[derive(Debug, Clone)]
pub(super) struct Listed {
    /// The object, exactly as the exporter writes it.
    pub(super) json: String,
    id: String,
    kind: String,
    /// The version as the object spells it (`modified`, or `created`).
    version: String,
    pub(super) added: Timestamp,
    /// The version, read from the object's `modified` (or `created`).
    pub(super) modified: Timestamp,
    /// The organisation that published the entry it comes from (`None` for context
    /// objects): versions are told apart by it as well as by id.
    pub(super) org: Option<PublicKey>,
}

/// A manifest record ([`Listed::manifest_record`]); fields in the order JSON maps sort them.
#[derive(Debug, serde::Serialize)]
pub(super) struct ManifestRecord<'a> {
    date_added: String,
    id: &'a str,
    media_type: &'static str,
    version: &'a str,
}

impl Listed {
    /// A context object (an identity, a marking definition).
    pub(super) fn context(object: &Json, added: Timestamp) -> Listed {
        let text = |key: &str| object[key].as_str().unwrap_or_default().to_owned();
        let version = object["modified"]
            .as_str()
            .or_else(|| object["created"].as_str())
            .unwrap_or_default()
            .to_owned();
        Listed {
            json: object.to_string(),
            id: text("id"),
            kind: text("type"),
            modified: rfc3339::parse(&version).unwrap_or_default(),
            version,
            added,
            org: None,
        }
    }

    /// An object of an entry `org` published, accepted at `added`.
    pub(super) fn exported(object: &stix::Object<'_>, added: Timestamp, org: PublicKey) -> Listed {
        let version = object.version();
        // About what an indicator takes, so the buffer rarely grows.
        let mut json = Vec::with_capacity(768);
        // Writing to memory fails only on a property that is not JSON, which objects have not.
        let json = match serde_json::to_writer(&mut json, object) {
            Ok(()) => String::from_utf8(json).unwrap_or_default(),
            Err(_) => String::new(),
        };
        Listed {
            json,
            id: object.id().to_owned(),
            kind: object.kind().to_owned(),
            modified: rfc3339::parse(version).unwrap_or_default(),
            version: version.to_owned(),
            added,
            org: Some(org),
        }
    }

    pub(super) fn id(&self) -> &str {
        &self.id
    }

    pub(super) fn kind(&self) -> &str {
        &self.kind
    }

    /// The object's version: its `modified`, or `created` for objects without one.
    pub(super) fn version(&self) -> &str {
        &self.version
    }

    pub(super) fn manifest_record(&self) -> ManifestRecord<'_> {
        ManifestRecord {
            date_added: rfc3339::format(self.added),
            id: self.id(),
            media_type: STIX_MEDIA_TYPE,
            version: self.version(),
        }
    }
}
