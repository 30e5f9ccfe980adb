//! One exported STIX object before it is written: its properties as a short list kept in
//! key order, each borrowing what it can from the entry it comes from. Written with
//! `serde_json` it reads exactly as the same properties in a `serde_json::Map` (keys
//! sorted, the same escaping), so the TAXII server writes pages straight from it with no
//! `serde_json::Value` per object, and exports that want a `Value` convert it
//! ([`Object::into_value`]).

use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use serde_json::Value;

/// An exported STIX object; see the module documentation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object<'a> {
    /// Sorted by key, each key once: what a `serde_json::Map` holds.
    properties: Vec<(&'static str, Field<'a>)>,
}

/// A property's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Field<'a> {
    Str(&'a str),
    String(String),
    Bool(bool),
    Number(u64),
    /// A list of one string (a marking, where a sighting was seen).
    One(&'a str),
    Strs(Vec<&'a str>),
    References(Vec<Reference<'a>>),
    /// `kill_chain_phases`: one phase of a named kill chain, (chain, phase).
    KillChain(&'static str, &'a str),
    /// `extensions` naming one top-level-property extension definition by id.
    ToplevelExtension(&'static str),
}

/// An external reference. STIX wants a description, url or external id beside the source
/// name: the caller says which.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reference<'a> {
    pub(crate) source_name: &'a str,
    pub(crate) description: Option<&'a str>,
    pub(crate) external_id: Option<&'a str>,
    pub(crate) url: Option<&'a str>,
}

impl<'a> Object<'a> {
    /// An object with room for a typical indicator's properties.
    pub(crate) fn new() -> Object<'a> {
        Object {
            properties: Vec::with_capacity(20),
        }
    }

    /// Sets `key` to `value`, replacing what it held, as a map's insert does.
    pub(crate) fn insert(&mut self, key: &'static str, value: Field<'a>) {
        match self
            .properties
            .binary_search_by(|(held, _)| (*held).cmp(key))
        {
            Ok(at) => self.properties[at].1 = value,
            Err(at) => self.properties.insert(at, (key, value)),
        }
    }

    /// Takes `key` out, if it is set.
    pub(crate) fn remove(&mut self, key: &str) -> Option<Field<'a>> {
        let at = self
            .properties
            .binary_search_by(|(held, _)| (*held).cmp(key))
            .ok()?;
        Some(self.properties.remove(at).1)
    }

    /// The text of `key`, when it is a string.
    pub fn text(&self, key: &str) -> Option<&str> {
        let at = self
            .properties
            .binary_search_by(|(held, _)| (*held).cmp(key))
            .ok()?;
        match &self.properties[at].1 {
            Field::Str(text) => Some(text),
            Field::String(text) => Some(text),
            _ => None,
        }
    }

    /// Its `id`.
    pub fn id(&self) -> &str {
        self.text("id").unwrap_or_default()
    }

    /// Its `type`.
    pub fn kind(&self) -> &str {
        self.text("type").unwrap_or_default()
    }

    /// Its version: `modified`, or `created` for an object without one.
    pub fn version(&self) -> &str {
        self.text("modified")
            .or_else(|| self.text("created"))
            .unwrap_or_default()
    }

    /// The object as a `serde_json::Value`, for exports that assemble documents.
    pub fn into_value(self) -> Value {
        serde_json::to_value(&self)
            .expect("strings, numbers and lists under string keys always make a JSON value")
    }
}

impl Serialize for Object<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.properties.len()))?;
        for (key, value) in &self.properties {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

impl Serialize for Field<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Field::Str(text) => serializer.serialize_str(text),
            Field::String(text) => serializer.serialize_str(text),
            Field::Bool(value) => serializer.serialize_bool(*value),
            Field::Number(value) => serializer.serialize_u64(*value),
            Field::One(text) => {
                let mut list = serializer.serialize_seq(Some(1))?;
                list.serialize_element(text)?;
                list.end()
            }
            Field::Strs(texts) => texts.serialize(serializer),
            Field::References(references) => references.serialize(serializer),
            Field::KillChain(chain, phase) => {
                let mut list = serializer.serialize_seq(Some(1))?;
                list.serialize_element(&KillChainPhase { chain, phase })?;
                list.end()
            }
            Field::ToplevelExtension(id) => {
                let mut map = serializer.serialize_map(Some(1))?;
                map.serialize_entry(id, &ToplevelExtension)?;
                map.end()
            }
        }
    }
}

impl Serialize for Reference<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // Keys in the order a map sorts them.
        let mut map = serializer.serialize_map(None)?;
        if let Some(description) = self.description {
            map.serialize_entry("description", description)?;
        }
        if let Some(id) = self.external_id {
            map.serialize_entry("external_id", id)?;
        }
        map.serialize_entry("source_name", self.source_name)?;
        if let Some(url) = self.url {
            map.serialize_entry("url", url)?;
        }
        map.end()
    }
}

struct KillChainPhase<'a> {
    chain: &'a str,
    phase: &'a str,
}

impl Serialize for KillChainPhase<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry("kill_chain_name", self.chain)?;
        map.serialize_entry("phase_name", self.phase)?;
        map.end()
    }
}

struct ToplevelExtension;

impl Serialize for ToplevelExtension {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(1))?;
        map.serialize_entry("extension_type", "toplevel-property-extension")?;
        map.end()
    }
}
