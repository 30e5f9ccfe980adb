//! Indicator values: what kinds exist, how each is normalised, validated and detected.
//!
//! A [`Value`] can only be built by [`Value::parse`] or [`Value::detect`], so every value
//! in memory is valid and in its one normal form: two organisations that report
//! `HXXP://Evil[.]Example/` and `http://evil.example/` assert the same indicator. Values
//! decoded from the wire are re-normalised and refused unless already normal, so a peer
//! cannot smuggle in a second spelling of a value.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

mod normalise;

/// The largest STIX pattern kept verbatim, in bytes.
pub const MAX_STIX_PATTERN_BYTES: usize = 8 * 1024;

/// What an indicator value is.
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
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// An IPv4 address, dotted quad.
    Ipv4,
    /// An IPv6 address, RFC 5952 text form.
    Ipv6,
    /// A network, v4 or v6, in CIDR notation with host bits cleared.
    Cidr,
    /// A domain name: lower case, punycode, no trailing dot.
    Domain,
    /// A URL with scheme and host normalised.
    Url,
    /// An e-mail address.
    Email,
    /// MD5 digest, 32 lower-case hex digits.
    Md5,
    /// SHA-1 digest, 40 lower-case hex digits.
    Sha1,
    /// SHA-256 digest, 64 lower-case hex digits.
    Sha256,
    /// SHA-512 digest, 128 lower-case hex digits.
    Sha512,
    /// An autonomous system number, `AS` followed by the number.
    Asn,
    /// A CVE id, `CVE-YYYY-NNNN...`.
    Cve,
    /// A STIX 2.1 pattern kept verbatim, for what fits no other kind.
    StixPattern,
}

/// Why a value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} {input:?}: {reason}")]
pub struct InvalidValue {
    /// The kind that was asked for, or `None` when detection found none.
    pub kind: Option<Kind>,
    /// The input, cut to 100 characters.
    pub input: String,
    /// What is wrong with it, in words.
    pub reason: String,
    what: &'static str,
}

/// A normalised, valid indicator value of a known kind.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Value {
    kind: Kind,
    value: String,
}

impl Kind {
    /// Every kind, in a fixed order.
    pub const ALL: [Kind; 13] = [
        Kind::Ipv4,
        Kind::Ipv6,
        Kind::Cidr,
        Kind::Domain,
        Kind::Url,
        Kind::Email,
        Kind::Md5,
        Kind::Sha1,
        Kind::Sha256,
        Kind::Sha512,
        Kind::Asn,
        Kind::Cve,
        Kind::StixPattern,
    ];

    /// The kind's name as used in JSON, CSV headers and the CLI.
    pub const fn as_str(self) -> &'static str {
        match self {
            Kind::Ipv4 => "ipv4",
            Kind::Ipv6 => "ipv6",
            Kind::Cidr => "cidr",
            Kind::Domain => "domain",
            Kind::Url => "url",
            Kind::Email => "email",
            Kind::Md5 => "md5",
            Kind::Sha1 => "sha1",
            Kind::Sha256 => "sha256",
            Kind::Sha512 => "sha512",
            Kind::Asn => "asn",
            Kind::Cve => "cve",
            Kind::StixPattern => "stix-pattern",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A kind name that is not one of [`Kind::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown indicator kind {0:?}")]
pub struct UnknownKind(pub String);

impl FromStr for Kind {
    type Err = UnknownKind;
    fn from_str(name: &str) -> Result<Kind, UnknownKind> {
        Kind::ALL
            .into_iter()
            .find(|kind| kind.as_str().eq_ignore_ascii_case(name))
            .ok_or_else(|| UnknownKind(name.chars().take(40).collect()))
    }
}

impl InvalidValue {
    fn new(kind: Option<Kind>, input: &str, reason: impl Into<String>) -> InvalidValue {
        InvalidValue {
            kind,
            input: input.chars().take(100).collect(),
            reason: reason.into(),
            what: kind.map_or("indicator value", Kind::as_str),
        }
    }
}

impl Value {
    /// Parses `input` as a value of `kind`: accepts defanged forms, normalises, validates.
    pub fn parse(kind: Kind, input: &str) -> Result<Value, InvalidValue> {
        normal_form(kind, input.trim())
            .map(|value| Value { kind, value })
            .map_err(|reason| InvalidValue::new(Some(kind), input, reason))
    }

    /// Finds the kind of a bare value (one line of a plain list) and parses it.
    ///
    /// Each kind whose outline fits is tried in turn; a domain is the last resort. A bare
    /// number is never an ASN here: in a plain list it is more likely a port or a count.
    pub fn detect(input: &str) -> Result<Value, InvalidValue> {
        let text = input.trim();
        let plain = if text.len() > normalise::MAX_INPUT_BYTES {
            String::new()
        } else {
            normalise::refang(text)
        };
        let all = |s: &str, allowed: fn(u8) -> bool| !s.is_empty() && s.bytes().all(allowed);
        let candidates = [
            (Kind::StixPattern, text.starts_with(['[', '('])),
            (Kind::Url, has_scheme(&plain)),
            (Kind::Email, plain.contains('@')),
            (
                Kind::Cidr,
                plain.split_once('/').is_some_and(|(addr, len)| {
                    all(addr, |b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
                        && all(len, |b| b.is_ascii_digit())
                }),
            ),
            (
                Kind::Ipv4,
                plain.contains('.') && all(&plain, |b| b.is_ascii_digit() || b == b'.'),
            ),
            (
                Kind::Ipv6,
                plain.contains(':')
                    && all(&plain, |b| b.is_ascii_hexdigit() || b == b':' || b == b'.'),
            ),
            (
                Kind::Md5,
                plain.len() == 32 && all(&plain, |b| b.is_ascii_hexdigit()),
            ),
            (
                Kind::Sha1,
                plain.len() == 40 && all(&plain, |b| b.is_ascii_hexdigit()),
            ),
            (
                Kind::Sha256,
                plain.len() == 64 && all(&plain, |b| b.is_ascii_hexdigit()),
            ),
            (
                Kind::Sha512,
                plain.len() == 128 && all(&plain, |b| b.is_ascii_hexdigit()),
            ),
            (
                Kind::Cve,
                plain
                    .get(..4)
                    .is_some_and(|p| p.eq_ignore_ascii_case("cve-")),
            ),
            (Kind::Asn, has_as_prefix(&plain)),
        ];
        // The first kind whose outline fitted explains the failure best.
        let mut closest: Option<InvalidValue> = None;
        for (kind, fits) in candidates {
            if fits {
                match Value::parse(kind, text) {
                    Ok(value) => return Ok(value),
                    Err(invalid) => {
                        closest.get_or_insert(invalid);
                    }
                }
            }
        }
        if let Ok(value) = Value::parse(Kind::Domain, text) {
            return Ok(value);
        }
        let reason = match closest {
            Some(InvalidValue {
                kind: Some(kind),
                reason,
                ..
            }) => {
                format!("not recognisable as any indicator kind (as {kind}: {reason})")
            }
            _ => "not recognisable as any indicator kind".to_owned(),
        };
        Err(InvalidValue::new(None, input, reason))
    }

    /// The value's kind.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The normalised text.
    pub fn as_str(&self) -> &str {
        &self.value
    }

    /// Re-checks a (kind, text) pair that claims to be normal already, as decoded from the
    /// wire or a store: it must parse and parse to itself.
    pub fn from_normalised(kind: Kind, text: String) -> Result<Value, InvalidValue> {
        let value = Value::parse(kind, &text)?;
        if value.value != text {
            return Err(InvalidValue::new(
                Some(kind),
                &text,
                format!("not in normal form (normal form is {:?})", value.value),
            ));
        }
        Ok(value)
    }
}

/// The normal form of `text` (already trimmed) as a `kind`, or why there is none.
fn normal_form(kind: Kind, text: &str) -> Result<String, String> {
    use normalise::{
        asn, cidr, cve, domain, email, hex_digest, ipv4, ipv6, prepare, spoken_dots, stix_pattern,
        url,
    };
    if text.is_empty() {
        return Err("empty".into());
    }
    match kind {
        Kind::StixPattern => stix_pattern(text),
        Kind::Ipv4 => Ok(ipv4(&prepare(text)?)?.to_string()),
        Kind::Ipv6 => Ok(ipv6(&prepare(text)?)?.to_string()),
        Kind::Cidr => cidr(&prepare(text)?),
        Kind::Domain => domain(&spoken_dots(&prepare(text)?), 2),
        Kind::Email => email(&prepare(text)?),
        Kind::Md5 => hex_digest(&prepare(text)?, 32),
        Kind::Sha1 => hex_digest(&prepare(text)?, 40),
        Kind::Sha256 => hex_digest(&prepare(text)?, 64),
        Kind::Sha512 => hex_digest(&prepare(text)?, 128),
        Kind::Asn => asn(&prepare(text)?),
        Kind::Cve => cve(&prepare(text)?),
        Kind::Url => {
            let once = url(&prepare(text)?)?;
            // The url crate's output is not a fixed point for every input: removing dot
            // segments can even assemble a defang marker. Refuse rather than store a value
            // that would change on re-parse.
            if prepare(&once).and_then(|again| url(&again)).as_ref() != Ok(&once) {
                return Err("URL has no stable normal form".into());
            }
            Ok(once)
        }
    }
}

/// `scheme://` at the start, after refanging.
fn has_scheme(text: &str) -> bool {
    text.split_once("://").is_some_and(|(scheme, _)| {
        scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
    })
}

/// `AS64500` or `ASN 64500`, the only spellings detection takes for an ASN.
fn has_as_prefix(text: &str) -> bool {
    let Some(head) = text.get(..2).filter(|h| h.eq_ignore_ascii_case("as")) else {
        return false;
    };
    let rest = text.get(head.len()..).unwrap_or_default();
    let rest = rest.strip_prefix(['n', 'N']).unwrap_or(rest).trim_start();
    !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit())
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind, self.value)
    }
}

/// JSON form: `{"kind": "ipv4", "value": "..."}`. Input from JSON is parsed like user
/// input (defanged forms accepted); the wire form below insists on the normal form.
impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Value, D::Error> {
        #[derive(Deserialize)]
        struct Raw {
            kind: Kind,
            value: String,
        }
        let raw = Raw::deserialize(deserializer)?;
        Value::parse(raw.kind, &raw.value).map_err(serde::de::Error::custom)
    }
}

impl bincode::Encode for Value {
    fn encode<E: bincode::enc::Encoder>(
        &self,
        encoder: &mut E,
    ) -> Result<(), bincode::error::EncodeError> {
        self.kind.encode(encoder)?;
        self.value.encode(encoder)
    }
}

impl<C> bincode::Decode<C> for Value {
    fn decode<D: bincode::de::Decoder<Context = C>>(
        decoder: &mut D,
    ) -> Result<Value, bincode::error::DecodeError> {
        let kind = Kind::decode(decoder)?;
        let text = String::decode(decoder)?;
        Value::from_normalised(kind, text)
            .map_err(|invalid| bincode::error::DecodeError::OtherString(invalid.to_string()))
    }
}

impl<'de, C> bincode::BorrowDecode<'de, C> for Value {
    fn borrow_decode<D: bincode::de::BorrowDecoder<'de, Context = C>>(
        decoder: &mut D,
    ) -> Result<Value, bincode::error::DecodeError> {
        <Value as bincode::Decode<C>>::decode(decoder)
    }
}
