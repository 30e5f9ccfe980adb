//! The items a bundle carries: indicators, revocations of indicators, sightings.
//!
//! Items are plain data with public fields, so publishers build them directly. Every field
//! that came from outside is checked by [`Item::validate`] against the limits below, which
//! is what a receiver runs on every item of every entry.

use serde::{Deserialize, Serialize};

use crate::indicator::Value;
use crate::time::Timestamp;

/// Most labels one indicator may carry.
pub const MAX_LABELS: usize = 32;
/// Longest label, in bytes.
pub const MAX_LABEL_BYTES: usize = 64;
/// Longest short text (threat name, campaign, kill-chain phase, STIX id, source name), in bytes.
pub const MAX_NAME_BYTES: usize = 256;
/// Longest free text (description, note, reason), in bytes.
pub const MAX_TEXT_BYTES: usize = 4096;
/// Most external references one indicator may carry.
pub const MAX_REFERENCES: usize = 16;
/// Longest external reference URL, in bytes.
pub const MAX_REFERENCE_URL_BYTES: usize = 2048;

/// One thing a bundle says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Item {
    /// "This value is malicious."
    Indicator(Indicator),
    /// "We withdraw what we said about this value."
    Revocation(Revocation),
    /// "We saw this value."
    Sighting(Sighting),
}

/// How sure the publisher is, 0 to 100 (the STIX 2.1 confidence scale).
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
)]
#[serde(try_from = "u8", into = "u8")]
pub struct Confidence(u8);

/// Decoding checks the range, like every other way of making a `Confidence`.
impl<C> bincode::Decode<C> for Confidence {
    fn decode<D: bincode::de::Decoder<Context = C>>(
        decoder: &mut D,
    ) -> Result<Confidence, bincode::error::DecodeError> {
        Confidence::new(u8::decode(decoder)?)
            .map_err(|error| bincode::error::DecodeError::OtherString(error.to_string()))
    }
}

impl<'de, C> bincode::BorrowDecode<'de, C> for Confidence {
    fn borrow_decode<D: bincode::de::BorrowDecoder<'de, Context = C>>(
        decoder: &mut D,
    ) -> Result<Confidence, bincode::error::DecodeError> {
        <Confidence as bincode::Decode<C>>::decode(decoder)
    }
}

/// A confidence above 100.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("confidence {0} is out of range 0-100")]
pub struct BadConfidence(pub u8);

impl Confidence {
    /// Confidence when the publisher says nothing: STIX's "medium" (50).
    pub const DEFAULT: Confidence = Confidence(50);

    /// A confidence, if `value` is at most 100.
    pub fn new(value: u8) -> Result<Confidence, BadConfidence> {
        if value <= 100 {
            Ok(Confidence(value))
        } else {
            Err(BadConfidence(value))
        }
    }

    /// The number, 0 to 100.
    pub fn get(self) -> u8 {
        self.0
    }
}

impl Default for Confidence {
    fn default() -> Confidence {
        Confidence::DEFAULT
    }
}

impl TryFrom<u8> for Confidence {
    type Error = BadConfidence;
    fn try_from(value: u8) -> Result<Confidence, BadConfidence> {
        Confidence::new(value)
    }
}

impl From<Confidence> for u8 {
    fn from(confidence: Confidence) -> u8 {
        confidence.0
    }
}

/// A malicious value, with how sure the publisher is, when it holds and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
pub struct Indicator {
    /// The value, normalised.
    #[serde(flatten)]
    pub value: Value,
    /// How sure the publisher is.
    #[serde(default)]
    pub confidence: Confidence,
    /// From when the indicator holds.
    pub valid_from: Timestamp,
    /// Until when it holds; `None` for "until revoked".
    #[serde(default)]
    pub valid_until: Option<Timestamp>,
    /// Free labels (`c2`, `phishing`, ...).
    #[serde(default)]
    pub labels: Vec<String>,
    /// What the indicator is about.
    #[serde(default)]
    pub context: Context,
}

/// What an indicator is about. Every field is optional.
#[derive(
    Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, bincode::Encode, bincode::Decode,
)]
#[serde(default)]
pub struct Context {
    /// Threat or malware name (`Emotet`, `QakBot`).
    pub threat: Option<String>,
    /// Campaign name.
    pub campaign: Option<String>,
    /// Kill-chain phase (`command-and-control`).
    pub kill_chain_phase: Option<String>,
    /// Free text.
    pub description: Option<String>,
    /// Where to read more.
    pub external_references: Vec<ExternalReference>,
    /// The STIX id this indicator was imported from, kept so it exports with the same id.
    pub stix_id: Option<String>,
}

/// A pointer to a report, an advisory or a database entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
pub struct ExternalReference {
    /// Who publishes it (`cve`, `CERT-FR`, `mitre-attack`).
    pub source: String,
    /// Its id there, if any.
    #[serde(default)]
    pub external_id: Option<String>,
    /// Its address, if any.
    #[serde(default)]
    pub url: Option<String>,
}

/// Withdraws an indicator the same organisation asserted before.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
pub struct Revocation {
    /// The value withdrawn.
    #[serde(flatten)]
    pub value: Value,
    /// Why.
    pub reason: RevocationReason,
    /// More words, if any.
    #[serde(default)]
    pub note: Option<String>,
}

/// Why an indicator is withdrawn.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    bincode::Encode,
    bincode::Decode,
)]
#[serde(rename_all = "kebab-case")]
pub enum RevocationReason {
    /// It was never malicious.
    FalsePositive,
    /// It no longer is (the server was cleaned, the domain re-registered).
    Expired,
    /// The infrastructure was taken down.
    TakenDown,
    /// Anything else; say what in the note.
    Other,
}

/// "We saw this value", from any member about any value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
pub struct Sighting {
    /// The value seen.
    #[serde(flatten)]
    pub value: Value,
    /// How many times, at least 1.
    pub count: u64,
    /// First time seen.
    pub first_seen: Timestamp,
    /// Last time seen, not before `first_seen`.
    pub last_seen: Timestamp,
    /// More words, if any.
    #[serde(default)]
    pub note: Option<String>,
}

/// An item that breaks a rule; says which field and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct InvalidItem {
    /// The field at fault (`labels[3]`, `context.description`, ...).
    pub field: String,
    /// What is wrong with it.
    pub reason: String,
}

impl Item {
    /// The value the item is about.
    pub fn value(&self) -> &Value {
        match self {
            Item::Indicator(indicator) => &indicator.value,
            Item::Revocation(revocation) => &revocation.value,
            Item::Sighting(sighting) => &sighting.value,
        }
    }

    /// Checks every limit and rule of the item. The value itself is valid by construction.
    pub fn validate(&self) -> Result<(), InvalidItem> {
        match self {
            Item::Indicator(indicator) => indicator.validate(),
            Item::Revocation(revocation) => check_text("note", &revocation.note, MAX_TEXT_BYTES),
            Item::Sighting(sighting) => sighting.validate(),
        }
    }
}

impl Indicator {
    /// An indicator valid from `valid_from` with default confidence and no context.
    pub fn new(value: Value, valid_from: Timestamp) -> Indicator {
        Indicator {
            value,
            confidence: Confidence::DEFAULT,
            valid_from,
            valid_until: None,
            labels: Vec::new(),
            context: Context::default(),
        }
    }

    /// Whether the indicator no longer holds at `now`.
    pub fn is_expired(&self, now: Timestamp) -> bool {
        self.valid_until.is_some_and(|until| until <= now)
    }

    fn validate(&self) -> Result<(), InvalidItem> {
        if let Some(until) = self.valid_until
            && until <= self.valid_from
        {
            return Err(invalid(
                "valid_until",
                format!("{until} is not after valid_from {}", self.valid_from),
            ));
        }
        if self.labels.len() > MAX_LABELS {
            return Err(invalid(
                "labels",
                format!("{} labels, at most {MAX_LABELS}", self.labels.len()),
            ));
        }
        for (index, label) in self.labels.iter().enumerate() {
            // Field names are built only on failure: this runs for every item received.
            if label.is_empty() || label.len() > MAX_LABEL_BYTES {
                let field = format!("labels[{index}]");
                if label.is_empty() {
                    return Err(invalid(&field, "empty"));
                }
                check_len(&field, label, MAX_LABEL_BYTES)?;
            }
        }
        let context = &self.context;
        check_text("context.threat", &context.threat, MAX_NAME_BYTES)?;
        check_text("context.campaign", &context.campaign, MAX_NAME_BYTES)?;
        check_text(
            "context.kill_chain_phase",
            &context.kill_chain_phase,
            MAX_NAME_BYTES,
        )?;
        check_text("context.description", &context.description, MAX_TEXT_BYTES)?;
        check_text("context.stix_id", &context.stix_id, MAX_NAME_BYTES)?;
        if context.external_references.len() > MAX_REFERENCES {
            return Err(invalid(
                "context.external_references",
                format!(
                    "{} references, at most {MAX_REFERENCES}",
                    context.external_references.len()
                ),
            ));
        }
        for (index, reference) in context.external_references.iter().enumerate() {
            let fits = !reference.source.is_empty()
                && reference.source.len() <= MAX_NAME_BYTES
                && reference
                    .external_id
                    .as_ref()
                    .is_none_or(|id| id.len() <= MAX_NAME_BYTES)
                && reference
                    .url
                    .as_ref()
                    .is_none_or(|url| url.len() <= MAX_REFERENCE_URL_BYTES);
            if fits {
                continue;
            }
            let field = format!("context.external_references[{index}]");
            if reference.source.is_empty() {
                return Err(invalid(&format!("{field}.source"), "empty"));
            }
            check_len(
                &format!("{field}.source"),
                &reference.source,
                MAX_NAME_BYTES,
            )?;
            check_text(
                &format!("{field}.external_id"),
                &reference.external_id,
                MAX_NAME_BYTES,
            )?;
            check_text(
                &format!("{field}.url"),
                &reference.url,
                MAX_REFERENCE_URL_BYTES,
            )?;
        }
        Ok(())
    }
}

impl Sighting {
    fn validate(&self) -> Result<(), InvalidItem> {
        if self.count == 0 {
            return Err(invalid("count", "must be at least 1"));
        }
        if self.last_seen < self.first_seen {
            return Err(invalid(
                "last_seen",
                format!(
                    "{} is before first_seen {}",
                    self.last_seen, self.first_seen
                ),
            ));
        }
        check_text("note", &self.note, MAX_TEXT_BYTES)
    }
}

fn invalid(field: &str, reason: impl Into<String>) -> InvalidItem {
    InvalidItem {
        field: field.to_owned(),
        reason: reason.into(),
    }
}

fn check_len(field: &str, text: &str, max_bytes: usize) -> Result<(), InvalidItem> {
    if text.len() > max_bytes {
        return Err(invalid(
            field,
            format!("{} bytes, at most {max_bytes}", text.len()),
        ));
    }
    Ok(())
}

fn check_text(field: &str, text: &Option<String>, max_bytes: usize) -> Result<(), InvalidItem> {
    text.as_deref()
        .map_or(Ok(()), |text| check_len(field, text, max_bytes))
}
