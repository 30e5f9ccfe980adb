//! Indicator values: what kinds exist, how each is normalised, validated and detected.
//!
//! A [`Value`] can only be built by [`Value::parse`] or [`Value::detect`], so every value
//! in memory is valid and in its one normal form: two organisations that report
//! `HXXP://Evil[.]Example/` and `http://evil.example/` assert the same indicator. Values
//! decoded from the wire are re-normalised and refused unless already normal, so a peer
//! cannot smuggle in a second spelling of a value.

use std::borrow::Cow;
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
    /// An IPv6 address, RFC 5952 text form. Parsing accepts one pair of surrounding
    /// brackets (`[2001:db8::1]`), as reports copy addresses out of URLs.
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
        normal_form(kind, input.trim(), false)
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
        let hex = |digits: usize| plain.len() == digits && all(&plain, |b| b.is_ascii_hexdigit());
        let candidates = [
            // First, so that a bracketed address (`[2001:db8::1]`, accepted as ipv6) that
            // fails is explained as an address rather than as a STIX pattern. No other
            // kind's outline admits only hex digits, ':' and '.'.
            (Kind::Ipv6, {
                let plain = normalise::unbracket(&plain);
                // An IPv6 address may end in dotted IPv4, never start with it.
                plain
                    .find(':')
                    .is_some_and(|colon| plain.find('.').is_none_or(|dot| colon < dot))
                    && all(plain, |b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
            }),
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
            (Kind::Md5, hex(32)),
            (Kind::Sha1, hex(40)),
            (Kind::Sha256, hex(64)),
            (Kind::Sha512, hex(128)),
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
        let normal = normal_form(kind, text.trim(), true)
            .map_err(|reason| InvalidValue::new(Some(kind), &text, reason))?;
        if normal != text {
            return Err(InvalidValue::new(
                Some(kind),
                &text,
                format!("not in normal form (normal form is {normal:?})"),
            ));
        }
        Ok(Value { kind, value: text })
    }
}

/// The normal form of `text` as `kind`. `recheck` is for text that claims to be normal
/// already (decoded from the wire or a store): it skips work that cannot change a normal
/// form, so receiving stays cheap, and gives the same answer for every normal form.
fn normal_form(kind: Kind, text: &str, recheck: bool) -> Result<String, String> {
    use normalise::{
        asn, cidr, cve, domain, email, hex_digest, ipv4, ipv6, is_prepared, is_prepared_url,
        prepare, prepare_url, spoken_dots, stix_pattern, unbracket, url,
    };
    if text.is_empty() {
        return Err("empty".into());
    }
    fn prepared(text: &str, recheck: bool) -> Result<Cow<'_, str>, String> {
        if recheck && is_prepared(text) {
            Ok(Cow::Borrowed(text))
        } else {
            prepare(text).map(Cow::Owned)
        }
    }
    let prepared = |text| prepared(text, recheck);
    match kind {
        Kind::StixPattern => stix_pattern(text),
        Kind::Ipv4 => Ok(ipv4(&prepared(text)?)?.to_string()),
        Kind::Ipv6 => Ok(ipv6(unbracket(&prepared(text)?))?.to_string()),
        Kind::Cidr => cidr(&prepared(text)?),
        Kind::Domain => domain(&spoken_dots(&prepared(text)?), 2),
        Kind::Email => email(&prepared(text)?),
        Kind::Md5 => hex_digest(&prepared(text)?, 32),
        Kind::Sha1 => hex_digest(&prepared(text)?, 40),
        Kind::Sha256 => hex_digest(&prepared(text)?, 64),
        Kind::Sha512 => hex_digest(&prepared(text)?, 128),
        Kind::Asn => asn(&prepared(text)?),
        Kind::Cve => cve(&prepared(text)?),
        Kind::Url => {
            let once = if recheck && is_prepared_url(text) {
                url(text)?
            } else {
                url(&prepare_url(text)?)?
            };
            // On recheck the caller compares `once` with `text`; if they are equal, `text`
            // is a fixed point and the stability check below would repeat this very parse.
            if recheck {
                return Ok(once);
            }
            // The url crate does not promise that its output re-parses to itself, and the
            // refanging of scheme and host runs again on it. Refuse rather than store a
            // value that would change on re-parse.
            if prepare_url(&once).and_then(|again| url(&again)).as_ref() != Ok(&once) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[track_caller]
    fn normal(kind: Kind, input: &str) -> String {
        match Value::parse(kind, input) {
            Ok(value) => value.as_str().to_owned(),
            Err(invalid) => panic!("{invalid}"),
        }
    }

    #[track_caller]
    fn refused(kind: Kind, input: &str, reason: &str) {
        match Value::parse(kind, input) {
            Ok(value) => panic!("{input:?} parsed as {value}, expected {reason:?}"),
            Err(invalid) => assert!(
                invalid.reason.contains(reason),
                "{input:?}: reason {:?} lacks {reason:?}",
                invalid.reason
            ),
        }
    }

    #[track_caller]
    fn detected(input: &str) -> (Kind, String) {
        match Value::detect(input) {
            Ok(value) => (value.kind(), value.as_str().to_owned()),
            Err(invalid) => panic!("{invalid}"),
        }
    }

    #[test]
    fn empty_input_is_refused_for_every_kind() {
        for kind in Kind::ALL {
            refused(kind, "", "empty");
            refused(kind, "  \t ", "empty");
        }
    }

    #[test]
    fn ipv4_is_canonical_dotted_quad() {
        assert_eq!(normal(Kind::Ipv4, " 192.0.2.1\n"), "192.0.2.1");
        assert_eq!(normal(Kind::Ipv4, "0.0.0.0"), "0.0.0.0");
        assert_eq!(normal(Kind::Ipv4, "255.255.255.255"), "255.255.255.255");
    }

    #[test]
    fn defanged_ipv4_is_refanged() {
        assert_eq!(normal(Kind::Ipv4, "1.2.3[.]4"), "1.2.3.4");
        assert_eq!(normal(Kind::Ipv4, "1(.)2{.}3[dot]4"), "1.2.3.4");
        assert_eq!(normal(Kind::Ipv4, "1 [.] 2\\.3.4"), "1.2.3.4");
    }

    #[test]
    fn malformed_ipv4_says_why() {
        refused(Kind::Ipv4, "01.2.3.4", "leading zero");
        refused(Kind::Ipv4, "1.2.3.256", "octet 256 out of range");
        refused(
            Kind::Ipv4,
            "1.2.3",
            "expected 4 dot-separated octets, got 3",
        );
        refused(Kind::Ipv4, "1.2.3.4.5", "got 5");
        refused(Kind::Ipv4, "1..3.4", "empty octet");
        refused(Kind::Ipv4, "1.2.3.x", "not a decimal number");
        refused(Kind::Ipv4, "1.2.3.+4", "not a decimal number");
        refused(Kind::Ipv4, "1.2.3.99999999999", "out of range");
    }

    #[test]
    fn ipv6_is_rfc5952_lower_case() {
        assert_eq!(normal(Kind::Ipv6, "2001:DB8:0:0:0:0:0:1"), "2001:db8::1");
        assert_eq!(
            normal(Kind::Ipv6, "2001:db8:0:0:1:0:0:1"),
            "2001:db8::1:0:0:1"
        );
        assert_eq!(normal(Kind::Ipv6, "::FFFF:192.0.2.1"), "::ffff:192.0.2.1");
        assert_eq!(normal(Kind::Ipv6, "2001:db8[:]:1"), "2001:db8::1");
    }

    #[test]
    fn bracketed_ipv6_loses_its_brackets() {
        // Reports copy IPv6 addresses out of URLs and logs, brackets and all.
        assert_eq!(normal(Kind::Ipv6, "[2001:DB8::1]"), "2001:db8::1");
        assert_eq!(normal(Kind::Ipv6, "[2001:db8[:]:1]"), "2001:db8::1");
        assert_eq!(
            detected("[2001:DB8::1]"),
            (Kind::Ipv6, "2001:db8::1".into())
        );
        let invalid = Value::detect("[1::2::3]").expect_err("two '::'");
        assert!(
            invalid
                .reason
                .contains("as ipv6: '::' may appear only once"),
            "{invalid}"
        );
        assert_idempotent(Kind::Ipv6, "[::1]");
    }

    #[test]
    fn malformed_ipv6_says_why() {
        refused(Kind::Ipv6, "[[2001:db8::1]]", "brackets are not part");
        refused(Kind::Ipv6, "[2001:db8::1", "brackets are not part");
        refused(Kind::Ipv6, "2001:db8::1]", "brackets are not part");
        refused(Kind::Ipv6, "fe80::1%eth0", "zone index");
        refused(Kind::Ipv6, "1.2.3.4", "no ':'");
        refused(Kind::Ipv6, "2001:db8::g", "character 'g'");
        refused(Kind::Ipv6, "1::2::3", "'::' may appear only once");
        refused(Kind::Ipv6, "2001:db8::12345", "longer than 4 hex digits");
        refused(Kind::Ipv6, "1:2:3:4:5:6:7", "not a valid IPv6 address");
    }

    #[test]
    fn cidr_is_network_and_prefix() {
        assert_eq!(normal(Kind::Cidr, "10.0.0.0/8"), "10.0.0.0/8");
        assert_eq!(normal(Kind::Cidr, "192.0.2[.]0/24"), "192.0.2.0/24");
        assert_eq!(normal(Kind::Cidr, "10.0.0.0/08"), "10.0.0.0/8");
        assert_eq!(normal(Kind::Cidr, "192.0.2.1/32"), "192.0.2.1/32");
        assert_eq!(normal(Kind::Cidr, "0.0.0.0/0"), "0.0.0.0/0");
        assert_eq!(normal(Kind::Cidr, "2001:DB8::/32"), "2001:db8::/32");
        assert_eq!(normal(Kind::Cidr, "::/0"), "::/0");
    }

    #[test]
    fn cidr_with_host_bits_is_refused_not_widened() {
        refused(
            Kind::Cidr,
            "10.1.2.3/8",
            "host bits set; did you mean 10.0.0.0/8?",
        );
        refused(Kind::Cidr, "2001:db8::1/32", "did you mean 2001:db8::/32?");
    }

    #[test]
    fn malformed_cidr_says_why() {
        refused(Kind::Cidr, "10.0.0.0", "missing '/'");
        refused(
            Kind::Cidr,
            "10.0.0.0/33",
            "prefix length 33 out of range (0..=32)",
        );
        refused(Kind::Cidr, "2001:db8::/129", "out of range (0..=128)");
        refused(Kind::Cidr, "10.0.0.0/", "is not a number");
        refused(Kind::Cidr, "10.0.0.0/x", "is not a number");
        refused(Kind::Cidr, "10.0.0.0/8/8", "is not a number");
        refused(Kind::Cidr, "010.0.0.0/8", "leading zero");
    }

    #[test]
    fn domain_is_lower_case_without_trailing_dot() {
        assert_eq!(normal(Kind::Domain, "Example.COM."), "example.com");
        assert_eq!(normal(Kind::Domain, "a-b.example"), "a-b.example");
        assert_eq!(
            normal(Kind::Domain, "_dmarc.example.org"),
            "_dmarc.example.org"
        );
        assert_eq!(
            normal(Kind::Domain, "cdn--edge.example"),
            "cdn--edge.example"
        );
    }

    #[test]
    fn idn_domain_becomes_punycode() {
        assert_eq!(
            normal(Kind::Domain, "bücher.example"),
            "xn--bcher-kva.example"
        );
        assert_eq!(
            normal(Kind::Domain, "BÜCHER.example"),
            "xn--bcher-kva.example"
        );
        assert_eq!(
            normal(Kind::Domain, "XN--BCHER-KVA.example"),
            "xn--bcher-kva.example"
        );
        // Non-transitional: ß stays ß rather than becoming "ss".
        assert_eq!(normal(Kind::Domain, "faß.de"), "xn--fa-hia.de");
        // Ideographic full stop separates labels.
        assert_eq!(
            normal(Kind::Domain, "例え。テスト"),
            normal(Kind::Domain, "例え.テスト")
        );
    }

    #[test]
    fn defanged_domain_is_refanged() {
        assert_eq!(normal(Kind::Domain, "evil[.]example"), "evil.example");
        assert_eq!(normal(Kind::Domain, "evil [DOT] example"), "evil.example");
        assert_eq!(
            normal(Kind::Domain, "evil(dot)example{.}org"),
            "evil.example.org"
        );
        assert_eq!(normal(Kind::Domain, "evil\\.example"), "evil.example");
        assert_eq!(
            normal(Kind::Domain, "evil dot example dot org"),
            "evil.example.org"
        );
    }

    #[test]
    fn malformed_domain_says_why() {
        let long_label = format!("{}.example", "a".repeat(64));
        refused(Kind::Domain, &long_label, "label longer than 63 bytes");
        let long_name = format!("{}example", "abcdefghi.".repeat(25));
        refused(Kind::Domain, &long_name, "domain longer than 253 bytes");
        refused(Kind::Domain, "example", "at least two labels");
        refused(Kind::Domain, "1.2.3.4", "last label is all digits");
        // URL parsers read a hex last label as (part of) an IPv4 address.
        for input in ["0x7f.0x1", "example.0x1", "example.0XCAFE", "example.0x"] {
            refused(Kind::Domain, input, "last label is a hexadecimal number");
        }
        assert_eq!(normal(Kind::Domain, "example.0xg"), "example.0xg");
        assert_eq!(normal(Kind::Domain, "0x1.example"), "0x1.example");
        refused(
            Kind::Domain,
            "-evil.example",
            "starts or ends with a hyphen",
        );
        refused(
            Kind::Domain,
            "evil-.example",
            "starts or ends with a hyphen",
        );
        refused(Kind::Domain, "evil..example", "empty label");
        refused(Kind::Domain, ".example.com", "empty label");
        refused(Kind::Domain, "evil example", "whitespace");
        refused(Kind::Domain, "evil dot", "whitespace");
        refused(Kind::Domain, "*.example.com", "character '*' not allowed");
        refused(
            Kind::Domain,
            "evil.example/path",
            "character '/' not allowed",
        );
        refused(Kind::Domain, "xn--zz.example", "UTS 46");
        refused(Kind::Domain, "evil[[.]]example", "nested defang markers");
    }

    #[test]
    fn url_scheme_and_host_are_normalised() {
        assert_eq!(
            normal(Kind::Url, "HTTP://Evil.Example"),
            "http://evil.example/"
        );
        assert_eq!(
            normal(Kind::Url, "https://evil.example.:443/a/../b?q=1#frag"),
            "https://evil.example/b?q=1#frag"
        );
        assert_eq!(
            normal(Kind::Url, "http://bücher.example/"),
            "http://xn--bcher-kva.example/"
        );
        assert_eq!(
            normal(Kind::Url, "http://192.0.2.1:8080/x"),
            "http://192.0.2.1:8080/x"
        );
        assert_eq!(
            normal(Kind::Url, "http://[2001:DB8::1]/"),
            "http://[2001:db8::1]/"
        );
        assert_eq!(normal(Kind::Url, "http://localhost/"), "http://localhost/");
        assert_eq!(
            normal(Kind::Url, "SFTP://Evil.Example:22/x"),
            "sftp://evil.example/x"
        );
        assert_eq!(
            normal(Kind::Url, "ftps://evil.example:990/"),
            "ftps://evil.example/"
        );
        assert_eq!(
            normal(Kind::Url, "sftp://192.0.2.1:2222/"),
            "sftp://192.0.2.1:2222/"
        );
        assert_eq!(
            normal(Kind::Url, "sftp://Bücher.example/"),
            "sftp://xn--bcher-kva.example/"
        );
    }

    #[test]
    fn url_ipv6_host_keeps_the_url_crate_text_form() {
        // The url crate writes every IPv6 host as hex groups, IPv4-mapped ones included,
        // and re-parses whatever we set, so the ipv6 kind's `::ffff:1.2.3.4` cannot be
        // kept. Only IPv4-mapped addresses differ; other forms agree (RFC 5952).
        assert_eq!(
            normal(Kind::Url, "http://[::FFFF:1.2.3.4]/"),
            "http://[::ffff:102:304]/"
        );
        assert_eq!(normal(Kind::Ipv6, "::FFFF:1.2.3.4"), "::ffff:1.2.3.4");
        for addr in [
            "2001:DB8:0:0:1:0:0:1",
            "::1",
            "::",
            "1::",
            "::102:304",
            "fe80::1:0:0",
        ] {
            assert_eq!(
                normal(Kind::Url, &format!("http://[{addr}]/")),
                format!("http://[{}]/", normal(Kind::Ipv6, addr)),
                "{addr}"
            );
        }
    }

    #[test]
    fn defanged_url_is_refanged() {
        assert_eq!(
            normal(Kind::Url, "hxxp://evil[.]example"),
            "http://evil.example/"
        );
        assert_eq!(
            normal(Kind::Url, "HXXPS[://]evil[.]example/a"),
            "https://evil.example/a"
        );
        assert_eq!(
            normal(Kind::Url, "hXXp[:]//evil(.)example"),
            "http://evil.example/"
        );
        assert_eq!(
            normal(Kind::Url, "fxp://files[.]example/x"),
            "ftp://files.example/x"
        );
        assert_eq!(
            normal(Kind::Url, "http://user[@]evil.example/"),
            "http://user@evil.example/"
        );
    }

    #[test]
    fn url_path_query_fragment_and_userinfo_are_not_refanged() {
        // Defang markers are refanged only in the scheme and host: elsewhere the same
        // characters are data, and refanging them would report a different URL.
        assert_eq!(
            normal(
                Kind::Url,
                "hxxp://evil[.]example/api?filter[at]=1&sort[dot]=2"
            ),
            "http://evil.example/api?filter[at]=1&sort[dot]=2"
        );
        assert_eq!(
            normal(Kind::Url, "http://evil.example/[dot]"),
            "http://evil.example/[dot]"
        );
        assert_eq!(
            normal(Kind::Url, "http://evil.example/gate.php?cmd=a\\.b"),
            "http://evil.example/gate.php?cmd=a\\.b"
        );
        assert_eq!(
            normal(Kind::Url, "http://evil.example/a(.)b#x{.}y"),
            "http://evil.example/a(.)b#x{.}y"
        );
        assert_eq!(
            normal(Kind::Url, "sftp://user:pa(at)ss@evil[.]example/"),
            "sftp://user:pa(at)ss@evil.example/"
        );
        // Spaces padding a marker in the path are not swallowed either.
        refused(Kind::Url, "http://evil.example/a [.] b", "whitespace");
    }

    #[test]
    fn url_host_markers_are_refanged_only_in_the_host() {
        assert_eq!(
            normal(Kind::Url, "hxxps[://]evil[.]example[:]8443/x[.]y"),
            "https://evil.example:8443/x[.]y"
        );
        assert_eq!(
            normal(Kind::Url, "http://evil\\.example\\x"),
            "http://evil.example/x"
        );
        // A host that happens to spell a defanged scheme stays as it is.
        assert_eq!(normal(Kind::Url, "http://hxxp/"), "http://hxxp/");
        refused(
            Kind::Url,
            "sftp://user:pa(at)ss[@]evil.example/",
            "more than one '@'",
        );
    }

    #[test]
    fn url_normal_forms_with_marker_characters_recheck_like_parse() {
        for input in [
            "http://evil.example/api?filter[at]=1&sort[dot]=2",
            "http://evil.example/[dot]",
            "http://evil.example/gate.php?cmd=a\\.b",
            "sftp://user:pa(at)ss@evil.example/",
            "sftp://evil.example/a\\.b",
            "http://evil.example/a{.}b",
            "http://evil.example/a%7B.%7Db",
            "http://[2001:db8::1]/[.]",
        ] {
            assert_idempotent(Kind::Url, input);
            assert!(
                Value::from_normalised(Kind::Url, normal(Kind::Url, input)).is_ok(),
                "{input}"
            );
        }
    }

    #[test]
    fn malformed_url_says_why() {
        refused(Kind::Url, "evil.example/path", "not a valid URL");
        refused(
            Kind::Url,
            "javascript:alert(1)",
            "scheme \"javascript\" not accepted",
        );
        refused(Kind::Url, "file:///etc/passwd", "not accepted");
        refused(Kind::Url, "http://", "not a valid URL");
        refused(Kind::Url, "http://example.0x1/", "not a valid URL");
        refused(
            Kind::Url,
            "sftp://example.0x1/",
            "host: last label is a hexadecimal number",
        );
        refused(Kind::Url, "sftp:/no/host", "URL has no host");
        refused(Kind::Url, "http://evil.example/a b", "whitespace");
        refused(
            Kind::Url,
            "http://*.example/",
            "host: character '*' not allowed",
        );
        refused(
            Kind::Url,
            "sftp://evil%zz.example/",
            "host: bad percent-encoding",
        );
        refused(
            Kind::Url,
            "sftp://evil%ff.example/",
            "host: percent-encoding is not UTF-8",
        );
        let long = format!("http://evil.example/{}", "a".repeat(2048));
        refused(Kind::Url, &long, "longer than 2048 bytes");
    }

    #[test]
    fn email_keeps_local_case_and_normalises_domain() {
        assert_eq!(
            normal(Kind::Email, "John.Doe@Example.ORG"),
            "John.Doe@example.org"
        );
        assert_eq!(
            normal(Kind::Email, "user+tag@bücher.example"),
            "user+tag@xn--bcher-kva.example"
        );
    }

    #[test]
    fn email_local_part_is_ascii() {
        // Invisible characters and composed/decomposed spellings would otherwise give one
        // mailbox several normal forms.
        refused(
            Kind::Email,
            "john\u{200b}doe@example.com",
            "non-ASCII character '\\u{200b}' in the local part",
        );
        refused(Kind::Email, "ünï@example.org", "non-ASCII character 'ü'");
        refused(Kind::Email, "u\u{308}@example.org", "non-ASCII character");
        assert_eq!(
            normal(Kind::Email, "user@Bücher.example"),
            "user@xn--bcher-kva.example"
        );
    }

    #[test]
    fn defanged_email_is_refanged() {
        assert_eq!(
            normal(Kind::Email, "user[@]example.org"),
            "user@example.org"
        );
        assert_eq!(
            normal(Kind::Email, "user(at)example[.]org"),
            "user@example.org"
        );
        assert_eq!(
            normal(Kind::Email, "user [at] example [dot] org"),
            "user@example.org"
        );
    }

    #[test]
    fn malformed_email_says_why() {
        refused(Kind::Email, "user.example.org", "missing '@'");
        refused(Kind::Email, "@example.org", "empty local part");
        refused(Kind::Email, "user@", "empty domain part");
        refused(Kind::Email, "a@b@example.org", "more than one '@'");
        refused(Kind::Email, "us er@example.org", "whitespace");
        refused(
            Kind::Email,
            &format!("{}@example.org", "a".repeat(65)),
            "local part longer than 64 bytes",
        );
        // A 64-byte local part and a 251-byte domain, each within its own limit.
        let long = format!(
            "{}@{}{}.example",
            "a".repeat(64),
            "b".repeat(63),
            ".c".repeat(90)
        );
        refused(Kind::Email, &long, "longer than 254 bytes");
        refused(Kind::Email, "\"a b\"@example.org", "whitespace");
        refused(Kind::Email, "\"ab\"@example.org", "quoted local parts");
        refused(Kind::Email, "a..b@example.org", "doubled dot");
        refused(Kind::Email, "a,b@example.org", "character ','");
        refused(Kind::Email, "user@[192.0.2.1]", "address literals");
        refused(
            Kind::Email,
            "user@localhost",
            "domain part: a domain needs at least two labels",
        );
    }

    #[test]
    fn hashes_are_lower_case_hex_of_exact_length() {
        let md5 = "D41D8CD98F00B204E9800998ECF8427E";
        assert_eq!(normal(Kind::Md5, md5), md5.to_ascii_lowercase());
        assert_eq!(normal(Kind::Sha1, &"A".repeat(40)), "a".repeat(40));
        assert_eq!(normal(Kind::Sha256, &"0f".repeat(32)), "0f".repeat(32));
        assert_eq!(normal(Kind::Sha512, &"Ab".repeat(64)), "ab".repeat(64));
    }

    #[test]
    fn malformed_hash_names_length_or_character() {
        refused(
            Kind::Sha256,
            &"a".repeat(63),
            "expected 64 hex digits, got 63",
        );
        refused(Kind::Md5, &"a".repeat(40), "expected 32 hex digits, got 40");
        refused(
            Kind::Sha1,
            &format!("{}g", "a".repeat(39)),
            "character 'g' at position 39",
        );
        refused(
            Kind::Sha512,
            &"é".repeat(128),
            "character 'é' at position 0",
        );
    }

    #[test]
    fn asn_accepts_usual_spellings() {
        for input in [
            "AS64500",
            "as64500",
            "64500",
            "ASN 64500",
            "asn64500",
            "AS 064500",
        ] {
            assert_eq!(normal(Kind::Asn, input), "AS64500", "{input}");
        }
        assert_eq!(normal(Kind::Asn, "4294967295"), "AS4294967295");
    }

    #[test]
    fn malformed_asn_says_why() {
        refused(Kind::Asn, "AS0", "AS0 is reserved");
        refused(Kind::Asn, "AS4294967296", "larger than 4294967295");
        refused(Kind::Asn, "AS", "missing AS number");
        refused(Kind::Asn, "AS-1", "not a decimal AS number");
        refused(Kind::Asn, "AS1.10", "not a decimal AS number");
        refused(Kind::Asn, "+5", "not a decimal AS number");
    }

    #[test]
    fn cve_is_upper_case() {
        assert_eq!(normal(Kind::Cve, "cve-2021-44228"), "CVE-2021-44228");
        assert_eq!(normal(Kind::Cve, "CVE-1999-0001"), "CVE-1999-0001");
        assert_eq!(normal(Kind::Cve, "Cve-2024-1234567"), "CVE-2024-1234567");
    }

    #[test]
    fn malformed_cve_says_why() {
        refused(Kind::Cve, "2021-44228", "expected CVE-YYYY-NNNN");
        refused(Kind::Cve, "CVE-1998-0001", "before 1999");
        refused(Kind::Cve, "CVE-21-0001", "year \"21\" is not four digits");
        refused(Kind::Cve, "CVE-2021-123", "not four or more digits");
        refused(Kind::Cve, "CVE-2021-01234", "no leading zero");
        refused(Kind::Cve, "CVE-2021-12a4", "not four or more digits");
    }

    #[test]
    fn stix_pattern_is_kept_verbatim() {
        let pattern = "[ipv4-addr:value = '198.51.100.1'] AND [domain-name:value LIKE '%evil[.]%']";
        assert_eq!(
            normal(Kind::StixPattern, &format!("  {pattern}\n")),
            pattern
        );
        let qualified = "[file:hashes.'SHA-256' = 'aa'] REPEATS 5 TIMES WITHIN 600 SECONDS";
        assert_eq!(normal(Kind::StixPattern, qualified), qualified);
        let grouped = "([a:b = 'x'] OR [c:d MATCHES '^\\\\']) START t'2024-01-01T00:00:00Z' STOP t'2024-02-01T00:00:00Z'";
        assert_eq!(normal(Kind::StixPattern, grouped), grouped);
        assert_eq!(normal(Kind::StixPattern, "[x:y EXISTS]"), "[x:y EXISTS]");
        for pattern in [
            "[EXISTS windows-registry-key:values]",
            "[file:extensions.'windows-pebinary-ext'.sections[*].entropy > 7.0]",
            "[(a:b = 'x' OR c:d != 'y') AND e:f <= 3]",
            "[x-custom-type:x_prop IN ('a', 'b')]",
        ] {
            assert_eq!(normal(Kind::StixPattern, pattern), pattern);
        }
    }

    #[test]
    fn stix_comparison_needs_an_object_path() {
        for pattern in [
            "[=]",
            "[= 'x']",
            "['x' = 'y']",
            "[a:b = 'x'] AND [=]",
            "[LIKE]",
            "[EXISTS]",
            "[value_IN]",
        ] {
            refused(Kind::StixPattern, pattern, "no comparison");
        }
    }

    #[test]
    fn malformed_stix_pattern_says_why() {
        refused(
            Kind::StixPattern,
            "ipv4-addr:value = '1.2.3.4'",
            "starts with '[' or '('",
        );
        refused(Kind::StixPattern, "[a:b = 'x'", "unclosed '['");
        refused(Kind::StixPattern, "[a:b = 'x']]", "unbalanced ']'");
        refused(Kind::StixPattern, "([a:b = 'x']", "unclosed '('");
        refused(
            Kind::StixPattern,
            "[a:b = 'x]",
            "unterminated quoted string",
        );
        refused(Kind::StixPattern, "[2001:db8::1]", "no comparison");
        let long = format!("[a:b = '{}']", "x".repeat(MAX_STIX_PATTERN_BYTES));
        refused(Kind::StixPattern, &long, "pattern longer than");
    }

    #[test]
    fn stix_brackets_inside_quotes_do_not_count() {
        assert!(Value::parse(Kind::StixPattern, "[a:b = ']']").is_ok());
        assert!(Value::parse(Kind::StixPattern, "[a:b = 'it\\'s [']").is_ok());
    }

    #[test]
    fn oversized_input_is_refused_before_parsing() {
        refused(
            Kind::Domain,
            &"a".repeat(10_000),
            "input longer than 8192 bytes",
        );
        refused(Kind::Ipv4, &"1".repeat(10_000), "input longer than");
    }

    #[test]
    fn control_characters_are_refused() {
        refused(Kind::Domain, "evil\u{0}.example", "control character");
        refused(Kind::Url, "http://evil.example/\u{7f}", "control character");
    }

    #[test]
    fn detect_finds_each_kind() {
        let cases = [
            ("1.2.3.4", Kind::Ipv4, "1.2.3.4"),
            ("2001:DB8::1", Kind::Ipv6, "2001:db8::1"),
            ("::1", Kind::Ipv6, "::1"),
            ("10.0.0.0/8", Kind::Cidr, "10.0.0.0/8"),
            ("2001:db8::/32", Kind::Cidr, "2001:db8::/32"),
            ("example.com", Kind::Domain, "example.com"),
            ("bücher.example", Kind::Domain, "xn--bcher-kva.example"),
            (
                "https://evil.example/x",
                Kind::Url,
                "https://evil.example/x",
            ),
            ("user@example.org", Kind::Email, "user@example.org"),
            ("cve-2021-44228", Kind::Cve, "CVE-2021-44228"),
            ("AS64500", Kind::Asn, "AS64500"),
            ("ASN 64500", Kind::Asn, "AS64500"),
            ("[x:y = 'z']", Kind::StixPattern, "[x:y = 'z']"),
        ];
        for (input, kind, value) in cases {
            assert_eq!(detected(input), (kind, value.to_owned()), "{input}");
        }
        for (digits, kind) in [
            (32, Kind::Md5),
            (40, Kind::Sha1),
            (64, Kind::Sha256),
            (128, Kind::Sha512),
        ] {
            assert_eq!(detected(&"F".repeat(digits)), (kind, "f".repeat(digits)));
        }
    }

    #[test]
    fn detect_refangs() {
        assert_eq!(
            detected("hxxp://evil[.]example"),
            (Kind::Url, "http://evil.example/".into())
        );
        assert_eq!(detected("1.2.3[.]4"), (Kind::Ipv4, "1.2.3.4".into()));
        assert_eq!(
            detected("user[@]example.org"),
            (Kind::Email, "user@example.org".into())
        );
        assert_eq!(
            detected("evil[.]example"),
            (Kind::Domain, "evil.example".into())
        );
        assert_eq!(detected("10.0.0[.]0/8"), (Kind::Cidr, "10.0.0.0/8".into()));
    }

    #[test]
    fn detect_resolves_ambiguous_inputs() {
        // Hex names of hash length are hashes; shorter hex words with a dot are domains.
        assert_eq!(detected("cafe.example").0, Kind::Domain);
        assert_eq!(detected("cve-2021-44228.example").0, Kind::Domain);
        assert_eq!(detected("asn.example").0, Kind::Domain);
        assert_eq!(detected(&"1".repeat(32)).0, Kind::Md5);
    }

    #[test]
    fn detect_refuses_unrecognisable_input() {
        for input in ["64500", "", "hello world", "1.2.3", "ftp"] {
            let invalid = Value::detect(input).expect_err(input);
            assert_eq!(invalid.kind, None);
            assert!(
                invalid
                    .reason
                    .contains("not recognisable as any indicator kind"),
                "{invalid}"
            );
        }
    }

    #[test]
    fn detect_explains_the_closest_kind() {
        let invalid = Value::detect("01.2.3.4").expect_err("octal");
        assert!(
            invalid
                .reason
                .contains("as ipv4: octet 01 has a leading zero"),
            "{invalid}"
        );
        let invalid = Value::detect("1.2.3.4:80").expect_err("port");
        assert!(!invalid.reason.contains("ipv6"), "{invalid}");
        let invalid = Value::detect("cafe").expect_err("short hex");
        assert!(!invalid.reason.contains("(as "), "{invalid}");
        let invalid = Value::detect("10.1.0.0/8").expect_err("host bits");
        assert!(
            invalid.reason.contains("did you mean 10.0.0.0/8?"),
            "{invalid}"
        );
    }

    #[test]
    fn from_normalised_refuses_other_spellings() {
        let invalid =
            Value::from_normalised(Kind::Domain, "Example.COM".into()).expect_err("not normal");
        assert!(invalid.reason.contains("not in normal form"), "{invalid}");
        assert!(Value::from_normalised(Kind::Domain, "example.com".into()).is_ok());
    }

    #[test]
    fn bincode_decode_refuses_valid_but_not_normal_value() {
        let config = bincode::config::standard();
        let bytes = bincode::encode_to_vec((Kind::Domain, "Example.COM".to_owned()), config)
            .expect("encode");
        let decoded: Result<(Value, usize), _> = bincode::decode_from_slice(&bytes, config);
        assert!(decoded.is_err());

        let value = Value::parse(Kind::Domain, "Example.COM").expect("valid");
        let bytes = bincode::encode_to_vec(&value, config).expect("encode");
        let (back, _): (Value, usize) = bincode::decode_from_slice(&bytes, config).expect("decode");
        assert_eq!(back, value);
    }

    #[test]
    fn json_form_accepts_defanged_input() {
        let value: Value =
            serde_json::from_str(r#"{"kind":"url","value":"hxxp://evil[.]example"}"#)
                .expect("json");
        assert_eq!(value.as_str(), "http://evil.example/");
        assert_eq!(
            serde_json::to_string(&value).expect("json"),
            r#"{"kind":"url","value":"http://evil.example/"}"#
        );
    }

    #[track_caller]
    fn assert_idempotent(kind: Kind, input: &str) {
        // The receive path's shortcut accepts exactly the texts that parse to themselves.
        let is_normal = Value::parse(kind, input).is_ok_and(|value| value.as_str() == input);
        assert_eq!(
            Value::from_normalised(kind, input.to_owned()).is_ok(),
            is_normal,
            "recheck disagrees with parse for {kind} {input:?}"
        );
        if let Ok(value) = Value::parse(kind, input) {
            assert_eq!(
                Value::parse(kind, value.as_str()),
                Ok(value.clone()),
                "{input:?}"
            );
            assert_eq!(
                Value::from_normalised(kind, value.as_str().to_owned()),
                Ok(value)
            );
        }
    }

    fn ipv4_input() -> impl Strategy<Value = String> {
        (
            any::<[u8; 4]>(),
            prop::sample::select(vec![".", "[.]", "(dot)", "\\."]),
        )
            .prop_map(|(octets, dot)| octets.map(|o| o.to_string()).join(dot))
    }

    fn ipv6_input() -> impl Strategy<Value = String> {
        (any::<[u16; 8]>(), 0..8usize, any::<bool>()).prop_map(|(groups, zeros, upper)| {
            let groups = groups.map(|g| g >> zeros.min(15));
            let text = groups.map(|g| format!("{g:x}")).join(":");
            if upper { text.to_uppercase() } else { text }
        })
    }

    /// Valid by construction: labels neither start nor end with a hyphen, and the last
    /// one is letters (never a number).
    const DOMAIN: &str = "([a-zA-Z0-9_äöüß]([a-zA-Z0-9_äöüß-]{0,10}[a-zA-Z0-9_äöüß])?(\\.|\\[\\.\\]|\\[dot\\])){1,4}[a-zA-Zé]{1,6}\\.?";

    fn regex(pattern: &str) -> impl Strategy<Value = String> + use<> {
        proptest::string::string_regex(pattern).expect("test regex")
    }

    fn url_input() -> impl Strategy<Value = String> {
        regex(&format!(
            "(hxxp|HTTP|https|ftp|sftp|ftps|ws|wss)(://|\\[://\\])([a-z]{{1,5}}(:[a-z()]{{0,5}})?@|[a-z]{{1,5}}\\[@\\])?{DOMAIN}(:[0-9]{{1,4}})?(/[a-zA-Z0-9._~%!$&'()*+,;=:@\\[\\]{{}}\\\\/-]{{0,20}})?(\\?[a-zA-Z0-9=&%./\\[\\](){{}}\\\\@]{{0,10}})?(#[a-zA-Z0-9./\\[\\](){{}}\\\\@]{{0,10}})?"
        ))
    }

    /// URLs whose path, query and fragment hold defang markers, which are data there.
    fn url_with_marker_data() -> impl Strategy<Value = String> {
        const DATA: &str = "([a-z]{0,3}|\\[\\.\\]|\\[dot\\]|\\(at\\)|\\[@\\]|\\{\\.\\}|\\\\\\.|\\\\|\\[://\\]|\\[:\\])";
        // No '/' or '\\' in the userinfo: they would end the authority.
        const USERINFO: &str =
            "([a-z]{0,3}|\\[\\.\\]|\\[dot\\]|\\(at\\)|\\[@\\]|\\{\\.\\}|\\[:\\])";
        regex(&format!(
            "(http|sftp)://([a-z]{{1,3}}{USERINFO}{{0,2}}@)?[a-z]{{1,5}}\\.example(/{DATA}{{0,3}}){{0,3}}(\\?{DATA}{{0,3}}(=|&){DATA}{{0,3}})?(#{DATA}{{0,3}})?"
        ))
    }

    /// Valid by construction: dot-separated atoms (no leading, trailing or doubled dot),
    /// no `{` (it would start a `{.}` or `{at}` marker).
    fn email_input() -> impl Strategy<Value = String> {
        const ATOM: &str = "[a-zA-Z0-9!#$%&'*+/=?^_`|}~-]{1,10}";
        regex(&format!(
            "{ATOM}(\\.{ATOM}){{0,2}}(@|\\[@\\]|\\(at\\)){DOMAIN}"
        ))
    }

    /// Networks with their host bits cleared, so every input is valid.
    fn cidr_input() -> impl Strategy<Value = String> {
        let v4 = (
            any::<u32>(),
            0..=32u32,
            prop::sample::select(vec![".", "[.]", "(dot)"]),
        )
            .prop_map(|(addr, len, dot)| {
                let network = addr & u32::MAX.checked_shl(32 - len).unwrap_or(0);
                let octets = std::net::Ipv4Addr::from(network).octets();
                format!("{}/{len}", octets.map(|o| o.to_string()).join(dot))
            });
        let v6 = (any::<u128>(), 0..=128u32, any::<bool>(), any::<bool>()).prop_map(
            |(addr, len, compressed, upper)| {
                let network = addr & u128::MAX.checked_shl(128 - len).unwrap_or(0);
                let network = std::net::Ipv6Addr::from(network);
                let text = if compressed {
                    network.to_string()
                } else {
                    network.segments().map(|g| format!("{g:x}")).join(":")
                };
                let text = if upper { text.to_uppercase() } else { text };
                format!("{text}/{len}")
            },
        );
        prop_oneof![v4, v6]
    }

    proptest! {
        #[test]
        fn ipv4_normal_form_is_idempotent(input in ipv4_input()) {
            prop_assert!(Value::parse(Kind::Ipv4, &input).is_ok());
            assert_idempotent(Kind::Ipv4, &input);
        }

        #[test]
        fn ipv6_normal_form_is_idempotent(input in ipv6_input()) {
            prop_assert!(Value::parse(Kind::Ipv6, &input).is_ok());
            assert_idempotent(Kind::Ipv6, &input);
        }

        #[test]
        fn cidr_normal_form_is_idempotent(input in cidr_input()) {
            let value = Value::parse(Kind::Cidr, &input);
            prop_assert!(value.is_ok(), "{input:?}: {value:?}");
            assert_idempotent(Kind::Cidr, &input);
        }

        #[test]
        fn cidr_with_host_bits_suggests_a_normal_network(
            v4 in ipv4_input(), v6 in ipv6_input(), len in 0..=128u8,
        ) {
            for input in [format!("{v4}/{}", len.min(32)), format!("{v6}/{len}")] {
                assert_idempotent(Kind::Cidr, &input);
                if let Err(invalid) = Value::parse(Kind::Cidr, &input)
                    && let Some(suggestion) = invalid
                        .reason
                        .strip_prefix("host bits set; did you mean ")
                        .and_then(|rest| rest.strip_suffix('?'))
                {
                    prop_assert!(
                        Value::from_normalised(Kind::Cidr, suggestion.to_owned()).is_ok(),
                        "{input:?} suggests {suggestion:?}"
                    );
                }
            }
        }

        #[test]
        fn domain_normal_form_is_idempotent(input in DOMAIN) {
            let value = Value::parse(Kind::Domain, &input);
            prop_assert!(value.is_ok(), "{input:?}: {value:?}");
            assert_idempotent(Kind::Domain, &input);
        }

        #[test]
        fn url_normal_form_is_idempotent(input in url_input()) {
            prop_assert!(Value::parse(Kind::Url, &input).is_ok(), "{input:?}");
            assert_idempotent(Kind::Url, &input);
        }

        #[test]
        fn url_marker_data_is_kept_and_idempotent(input in url_with_marker_data()) {
            let value = Value::parse(Kind::Url, &input);
            prop_assert!(value.is_ok(), "{input:?}: {value:?}");
            assert_idempotent(Kind::Url, &input);
        }

        #[test]
        fn email_normal_form_is_idempotent(input in email_input()) {
            let value = Value::parse(Kind::Email, &input);
            prop_assert!(value.is_ok(), "{input:?}: {value:?}");
            assert_idempotent(Kind::Email, &input);
        }

        #[test]
        fn hash_normal_form_is_idempotent(input in "[0-9a-fA-F]{32}|[0-9a-fA-F]{40}|[0-9a-fA-F]{64}|[0-9a-fA-F]{128}") {
            for kind in [Kind::Md5, Kind::Sha1, Kind::Sha256, Kind::Sha512] {
                assert_idempotent(kind, &input);
            }
        }

        #[test]
        fn asn_normal_form_is_idempotent(input in "(AS|as|ASN |asn|)[0-9]{1,11}") {
            assert_idempotent(Kind::Asn, &input);
        }

        #[test]
        fn cve_normal_form_is_idempotent(input in "(cve|CVE|Cve)-[0-9]{4}-[0-9]{3,8}") {
            assert_idempotent(Kind::Cve, &input);
        }

        #[test]
        fn stix_normal_form_is_idempotent(
            input in " ?\\(?\\[[a-z-]{1,10}:[a-z_.]{1,10} (=|!=|LIKE|<) '([^'\\\\]|\\\\.){0,10}'\\]\\)?( WITHIN [0-9]{1,3} SECONDS)? ?"
        ) {
            assert_idempotent(Kind::StixPattern, &input);
        }

        #[test]
        fn any_parsed_value_is_idempotent(input in "\\PC{0,40}|[\\[\\](){}.:/@ a-fA-F0-9xXhpt%-]{0,40}") {
            for kind in Kind::ALL {
                assert_idempotent(kind, &input);
            }
            if let Ok(value) = Value::detect(&input) {
                assert_eq!(Value::parse(value.kind(), value.as_str()), Ok(value));
            }
        }

        #[test]
        fn prepared_texts_are_left_alone(
            input in "\\PC{0,30}|(hxxp|http|sftp)?(:|://|\\[://\\])?[\\[\\](){}.:/@?#\\\\ a-z0-9%-]{0,30}"
        ) {
            // The receive path skips preparing when these say yes; they must never say yes
            // to text that preparing would change or refuse.
            if normalise::is_prepared(&input) {
                prop_assert_eq!(normalise::prepare(&input), Ok(input.clone()));
            }
            if normalise::is_prepared_url(&input) {
                prop_assert_eq!(normalise::prepare_url(&input), Ok(input.clone()));
            }
        }

        #[test]
        fn parse_and_detect_never_panic(input in any::<String>()) {
            for kind in Kind::ALL {
                let _ = Value::parse(kind, &input);
            }
            let _ = Value::detect(&input);
        }
    }
}
