//! STIX patterns for indicator values: writing one per kind, and reading a pattern back
//! into a typed value when it is one simple comparison.
//!
//! A pattern `[type:property = 'literal']` whose path names one of threatmesh's kinds
//! (`ipv4-addr:value`, `file:hashes.'SHA-256'`, `autonomous-system:number`, ...) becomes
//! a typed value, so it is indexed and matched like any other. Everything else that is a
//! well-formed pattern (`AND`, `OR`, `FOLLOWEDBY`, qualifiers such as `WITHIN`, other
//! operators, other paths) is kept whole as [`Kind::StixPattern`]. String literals are
//! quoted with `'` and escape `'` and `\` with a backslash, the only escapes STIX
//! patterns know.

use threatmesh_protocol::{Kind, Value};

/// Appends the pattern of `value` to `out`; `false` (nothing written) for a CVE, which no
/// STIX pattern can express (a vulnerability is not an observable).
pub(crate) fn write(value: &Value, out: &mut String) -> bool {
    let text = value.as_str();
    let path = match value.kind() {
        Kind::StixPattern => {
            out.push_str(text);
            return true;
        }
        Kind::Cve => return false,
        Kind::Asn => {
            // `AS64500`: the number is an integer literal.
            out.push_str("[autonomous-system:number = ");
            out.push_str(text.trim_start_matches(['A', 'S']));
            out.push(']');
            return true;
        }
        Kind::Ipv4 => "ipv4-addr:value",
        Kind::Ipv6 => "ipv6-addr:value",
        Kind::Cidr if text.contains(':') => "ipv6-addr:value",
        Kind::Cidr => "ipv4-addr:value",
        Kind::Domain => "domain-name:value",
        Kind::Url => "url:value",
        Kind::Email => "email-addr:value",
        Kind::Md5 => "file:hashes.MD5",
        Kind::Sha1 => "file:hashes.'SHA-1'",
        Kind::Sha256 => "file:hashes.'SHA-256'",
        Kind::Sha512 => "file:hashes.'SHA-512'",
    };
    out.push('[');
    out.push_str(path);
    out.push_str(" = ");
    quote(text, out);
    out.push(']');
    true
}

/// The pattern of `value`, `None` for a CVE.
pub(crate) fn of(value: &Value) -> Option<String> {
    let mut out = String::with_capacity(value.as_str().len() + 32);
    write(value, &mut out).then_some(out)
}

/// Appends `text` as a STIX string literal.
pub(crate) fn quote(text: &str, out: &mut String) {
    out.reserve(text.len() + 2);
    out.push('\'');
    for c in text.chars() {
        if matches!(c, '\'' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('\'');
}

/// Reads a pattern: a typed value for a simple comparison on a known path, the whole
/// pattern as [`Kind::StixPattern`] otherwise. The error says what is wrong with it.
pub(crate) fn parse(pattern: &str) -> Result<Value, String> {
    match simple(pattern)? {
        Some((kind, literal)) => Value::parse(kind, &literal).map_err(|invalid| {
            format!(
                "{} value {:?}: {}",
                kind,
                invalid.input.as_str(),
                invalid.reason
            )
        }),
        None => Value::parse(Kind::StixPattern, pattern)
            .map_err(|invalid| format!("not a valid STIX pattern: {}", invalid.reason)),
    }
}

/// A literal on the right of a comparison.
enum Literal {
    Text(String),
    Integer(String),
}

/// `Some((kind, literal))` when `pattern` is exactly `[path = literal]` on a path that
/// maps to a kind; `None` when it is anything else (left to the whole-pattern check).
/// Errors only for a broken string literal inside such a comparison.
fn simple(pattern: &str) -> Result<Option<(Kind, String)>, String> {
    let mut cursor = Cursor {
        rest: pattern.trim(),
    };
    if !cursor.eat('[') {
        return Ok(None);
    }
    let Some(object) = cursor.identifier() else {
        return Ok(None);
    };
    if !cursor.eat_exact(':') {
        return Ok(None);
    }
    let mut properties: Vec<String> = Vec::with_capacity(2);
    loop {
        let property = if cursor.rest.starts_with('\'') {
            match cursor.string()? {
                Some(Literal::Text(text)) => text,
                _ => return Ok(None),
            }
        } else {
            match cursor.identifier() {
                Some(name) => name.to_owned(),
                None => return Ok(None),
            }
        };
        properties.push(property);
        if !cursor.eat_exact('.') {
            break;
        }
    }
    if !cursor.eat('=') || cursor.rest.starts_with('=') {
        return Ok(None);
    }
    cursor.skip_space();
    let literal = if cursor.rest.starts_with('\'') {
        match cursor.string()? {
            Some(literal) => literal,
            None => return Ok(None),
        }
    } else {
        let digits = cursor
            .rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(cursor.rest.len());
        if digits == 0 {
            return Ok(None);
        }
        let (number, rest) = cursor.rest.split_at(digits);
        cursor.rest = rest;
        Literal::Integer(number.to_owned())
    };
    if !cursor.eat(']') || !cursor.rest.trim().is_empty() {
        return Ok(None);
    }
    let properties: Vec<&str> = properties.iter().map(String::as_str).collect();
    let kind = match (object, properties.as_slice(), &literal) {
        ("ipv4-addr", ["value"], Literal::Text(text)) if text.contains('/') => Kind::Cidr,
        ("ipv6-addr", ["value"], Literal::Text(text)) if text.contains('/') => Kind::Cidr,
        ("ipv4-addr", ["value"], Literal::Text(_)) => Kind::Ipv4,
        ("ipv6-addr", ["value"], Literal::Text(_)) => Kind::Ipv6,
        ("domain-name", ["value"], Literal::Text(_)) => Kind::Domain,
        ("url", ["value"], Literal::Text(_)) => Kind::Url,
        ("email-addr", ["value"], Literal::Text(_)) => Kind::Email,
        ("autonomous-system", ["number"], _) => Kind::Asn,
        ("file", ["hashes", algorithm], Literal::Text(_)) => match hash_kind(algorithm) {
            Some(kind) => kind,
            None => return Ok(None),
        },
        _ => return Ok(None),
    };
    let (Literal::Text(text) | Literal::Integer(text)) = literal;
    Ok(Some((kind, text)))
}

/// `SHA-256`, `SHA256`, `sha_256`: the hash algorithms that are kinds.
pub(super) fn hash_kind(algorithm: &str) -> Option<Kind> {
    let name: String = algorithm
        .chars()
        .filter(|c| !matches!(c, '-' | '_'))
        .map(|c| c.to_ascii_uppercase())
        .collect();
    match name.as_str() {
        "MD5" => Some(Kind::Md5),
        "SHA1" => Some(Kind::Sha1),
        "SHA256" => Some(Kind::Sha256),
        "SHA512" => Some(Kind::Sha512),
        _ => None,
    }
}

struct Cursor<'a> {
    rest: &'a str,
}

impl<'a> Cursor<'a> {
    fn skip_space(&mut self) {
        self.rest = self.rest.trim_start();
    }

    /// Skips white space, then `c`.
    fn eat(&mut self, c: char) -> bool {
        self.skip_space();
        self.eat_exact(c)
    }

    fn eat_exact(&mut self, c: char) -> bool {
        match self.rest.strip_prefix(c) {
            Some(rest) => {
                self.rest = rest;
                true
            }
            None => false,
        }
    }

    /// An object type or property name: letters, digits, `_` and `-`.
    fn identifier(&mut self) -> Option<&'a str> {
        self.skip_space();
        let end = self
            .rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-')))
            .unwrap_or(self.rest.len());
        if end == 0 {
            return None;
        }
        let (name, rest) = self.rest.split_at(end);
        self.rest = rest;
        Some(name)
    }

    /// A quoted string at the cursor; `None` if it does not end (the whole-pattern
    /// check then explains), an error for an escape STIX does not have.
    fn string(&mut self) -> Result<Option<Literal>, String> {
        let Some(body) = self.rest.strip_prefix('\'') else {
            return Ok(None);
        };
        let mut text = String::with_capacity(body.len());
        let mut chars = body.char_indices();
        while let Some((at, c)) = chars.next() {
            match c {
                '\'' => {
                    self.rest = &body[at + 1..];
                    return Ok(Some(Literal::Text(text)));
                }
                '\\' => match chars.next() {
                    Some((_, escaped @ ('\'' | '\\'))) => text.push(escaped),
                    Some((_, other)) => {
                        return Err(format!(
                            "invalid escape \\{other} in a string literal (STIX patterns \
                             escape only ' and \\)"
                        ));
                    }
                    None => return Ok(None),
                },
                _ => text.push(c),
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[track_caller]
    fn typed(pattern: &str) -> (Kind, String) {
        match parse(pattern) {
            Ok(value) => (value.kind(), value.as_str().to_owned()),
            Err(reason) => panic!("{pattern}: {reason}"),
        }
    }

    #[test]
    fn simple_comparisons_become_typed_values() {
        let sha256 = "ef537f25c895bfa782526529a9b63d97aa631564d5d789c2b765448c8635fb6c";
        let cases = [
            ("[ipv4-addr:value = '10.0.0.0']", Kind::Ipv4, "10.0.0.0"),
            (
                "  [ ipv4-addr:value='198.51.100.7' ]  ",
                Kind::Ipv4,
                "198.51.100.7",
            ),
            (
                "[ipv4-addr:value = '10.1.0.0/16']",
                Kind::Cidr,
                "10.1.0.0/16",
            ),
            (
                "[ipv6-addr:value = '2001:DB8::1']",
                Kind::Ipv6,
                "2001:db8::1",
            ),
            (
                "[ipv6-addr:value = '2001:db8::/32']",
                Kind::Cidr,
                "2001:db8::/32",
            ),
            (
                "[domain-name:value = 'Evil.Example']",
                Kind::Domain,
                "evil.example",
            ),
            (
                "[url:value = 'http://x4z9arb.cn/4712/']",
                Kind::Url,
                "http://x4z9arb.cn/4712/",
            ),
            (
                "[email-addr:value = 'o\\'neil@evil.example']",
                Kind::Email,
                "o'neil@evil.example",
            ),
            ("[autonomous-system:number = 64500]", Kind::Asn, "AS64500"),
            ("[autonomous-system:number = '64500']", Kind::Asn, "AS64500"),
            (
                "[file:hashes.MD5 = '3A28D3E4D8C4A1FA4E4E5F8E8E7C6A5B']",
                Kind::Md5,
                "3a28d3e4d8c4a1fa4e4e5f8e8e7c6a5b",
            ),
            (
                "[file:hashes.'SHA-1' = 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa']",
                Kind::Sha1,
                "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            ),
            (
                "[file:hashes.SHA1 = 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa']",
                Kind::Sha1,
                "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            ),
            (
                &format!("[file:hashes.'SHA-256' = '{sha256}']"),
                Kind::Sha256,
                sha256,
            ),
            (
                &format!("[file:hashes.SHA256 = '{sha256}']"),
                Kind::Sha256,
                sha256,
            ),
            (
                &format!("[file:hashes.'SHA-512' = '{}']", "b".repeat(128)),
                Kind::Sha512,
                &"b".repeat(128),
            ),
        ];
        for (pattern, kind, value) in cases {
            assert_eq!(typed(pattern), (kind, value.to_owned()), "{pattern}");
        }
    }

    #[test]
    fn everything_else_is_kept_whole() {
        let patterns = [
            "[ipv4-addr:value = '10.0.0.1'] AND [ipv4-addr:value = '10.0.0.2']",
            "[ipv4-addr:value = '10.0.0.1' OR ipv4-addr:value = '10.0.0.2']",
            "[ipv4-addr:value = '10.0.0.1'] FOLLOWEDBY [domain-name:value = 'a.example']",
            "[ipv4-addr:value = '10.0.0.1'] WITHIN 300 SECONDS",
            "[ipv4-addr:value = '10.0.0.1'] REPEATS 5 TIMES",
            "[ipv4-addr:value = '10.0.0.1'] START t'2016-06-01T00:00:00Z' STOP t'2016-07-01T00:00:00Z'",
            "[ipv4-addr:value != '10.0.0.1']",
            "[ipv4-addr:value ISSUBSET '10.0.0.0/8']",
            "[domain-name:value LIKE '%.evil.example']",
            "[email-message:subject MATCHES '^[IMPORTANT] Please Review Before']",
            "[file:name = 'report.exe']",
            "[file:hashes.SSDEEP = '3:abc:def']",
            "[email-message:body_multipart[*].body_raw_ref.name MATCHES '^Final Report.+\\\\.exe$']",
            "([ipv4-addr:value = '10.0.0.1'])",
        ];
        for pattern in patterns {
            assert_eq!(
                typed(pattern),
                (Kind::StixPattern, pattern.to_owned()),
                "{pattern}"
            );
        }
    }

    #[test]
    fn broken_patterns_are_refused_with_a_reason() {
        let cases = [
            ("[ipv4-addr:value = '10.0.0.1'", "unclosed"),
            (
                "[ipv4-addr:value = '10.0.0.1]",
                "unterminated quoted string",
            ),
            ("ipv4-addr:value = '10.0.0.1'", "starts with '[' or '('"),
            ("[ipv4-addr:value = '10.0.0.1']]", "unbalanced"),
            ("[ipv4-addr:value = '999.0.0.1']", "ipv4 value"),
            ("[file:hashes.MD5 = 'xyz']", "md5 value"),
            ("[url:value = 'http://a.example/\\n']", "invalid escape"),
            ("", "empty"),
            ("yara rule { }", "starts with"),
        ];
        for (pattern, reason) in cases {
            match parse(pattern) {
                Ok(value) => panic!("{pattern:?} parsed as {value}"),
                Err(error) => assert!(error.contains(reason), "{pattern:?}: {error}"),
            }
        }
    }

    #[test]
    fn every_kind_but_cve_writes_a_pattern_that_reads_back() {
        let values = [
            (Kind::Ipv4, "192.0.2.1"),
            (Kind::Ipv6, "2001:db8::1"),
            (Kind::Cidr, "10.0.0.0/8"),
            (Kind::Cidr, "2001:db8::/32"),
            (Kind::Domain, "evil.example"),
            (Kind::Url, "http://evil.example/a'b\\c"),
            (Kind::Email, "o'neil@evil.example"),
            (Kind::Md5, &"a".repeat(32)),
            (Kind::Sha1, &"b".repeat(40)),
            (Kind::Sha256, &"c".repeat(64)),
            (Kind::Sha512, &"d".repeat(128)),
            (Kind::Asn, "AS64500"),
            (
                Kind::StixPattern,
                "[x-custom:value = 'it\\'s'] WITHIN 5 SECONDS",
            ),
        ];
        for (kind, text) in values {
            let value = Value::parse(kind, text).expect("test value");
            let pattern = of(&value).expect("has a pattern");
            assert_eq!(parse(&pattern), Ok(value), "{pattern}");
        }
        let cve = Value::parse(Kind::Cve, "CVE-2021-44228").expect("test value");
        assert_eq!(of(&cve), None);
    }

    fn unquote(literal: &str) -> Option<String> {
        let mut cursor = Cursor { rest: literal };
        match cursor.string() {
            Ok(Some(Literal::Text(text))) if cursor.rest.is_empty() => Some(text),
            _ => None,
        }
    }

    proptest! {
        #[test]
        fn string_literals_round_trip(text in any::<String>()) {
            let mut quoted = String::new();
            quote(&text, &mut quoted);
            prop_assert_eq!(unquote(&quoted), Some(text));
        }

        #[test]
        fn quoted_text_makes_a_well_formed_pattern(text in "\\PC{0,40}") {
            let mut pattern = String::from("[x-custom:value = ");
            quote(&text, &mut pattern);
            pattern.push(']');
            prop_assert_eq!(
                parse(&pattern).map(|value| value.kind()),
                Ok(Kind::StixPattern)
            );
        }

        #[test]
        fn parse_never_panics(pattern in "\\PC{0,60}|[\\[\\]()' a-z:=.\\\\0-9-]{0,60}") {
            let _ = parse(&pattern);
        }
    }
}
