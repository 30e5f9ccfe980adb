//! The per-kind rules behind [`Value::parse`](super::Value::parse): refanging, then one
//! function per kind that validates the refanged text and returns its normal form, or a
//! reason in words. Reasons are plain strings here; the caller wraps them with the kind
//! and the input.
//!
//! `refang` turns defanged input back into plain text; `address` holds the rules for IP
//! addresses, CIDR blocks, domains, URLs and email addresses; the rest (digests, AS
//! numbers, CVEs, STIX patterns) is here.

mod address;
mod refang;

pub(super) use address::{cidr, domain, email, ipv4, ipv6, spoken_dots, unbracket, url};
pub(super) use refang::{is_prepared, is_prepared_url, prepare, prepare_url, refang};

/// Raw input beyond this is refused before any refanging or parsing. It leaves room for
/// defang markers and padding around the longest normal form (a 2,048-byte URL).
pub(super) const MAX_INPUT_BYTES: usize = 8 * 1024;
const MAX_URL_BYTES: usize = 2048;
const MAX_DOMAIN_BYTES: usize = 253;
/// Before IDNA, a domain may be longer in bytes than its punycode form (UTF-8 takes up to
/// four bytes a character), so the 253-byte limit is checked after IDNA; this bound only
/// keeps absurd input away from the IDNA machinery.
const MAX_UNICODE_DOMAIN_BYTES: usize = 4 * MAX_DOMAIN_BYTES;
const MAX_LABEL_BYTES: usize = 63;
const MAX_LOCAL_PART_BYTES: usize = 64;
const MAX_EMAIL_BYTES: usize = 254;

pub(super) fn hex_digest(text: &str, digits: usize) -> Result<String, String> {
    let got = text.chars().count();
    if got != digits {
        return Err(format!("expected {digits} hex digits, got {got}"));
    }
    if let Some((i, c)) = text
        .chars()
        .enumerate()
        .find(|(_, c)| !c.is_ascii_hexdigit())
    {
        return Err(format!(
            "character {c:?} at position {i} is not a hex digit"
        ));
    }
    Ok(text.to_ascii_lowercase())
}

/// `AS64500`, `as64500`, `ASN 64500` or a bare `64500`. AS0 is refused: RFC 7607
/// reserves it to mean "must not be routed", so it never names a network.
pub(super) fn asn(text: &str) -> Result<String, String> {
    let digits = strip_prefix_ci(text, "asn")
        .or_else(|| strip_prefix_ci(text, "as"))
        .unwrap_or(text)
        .trim_start();
    if digits.is_empty() {
        return Err("missing AS number".into());
    }
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{:?} is not a decimal AS number", clip(digits)));
    }
    let number: u32 = digits
        .parse()
        .map_err(|_| format!("AS number larger than {}", u32::MAX))?;
    if number == 0 {
        return Err("AS0 is reserved (RFC 7607)".into());
    }
    Ok(format!("AS{number}"))
}

/// `CVE-YYYY-NNNN`: the sequence has at least four digits, and only four-digit ones are
/// zero-padded (CVE ID syntax since 2014).
pub(super) fn cve(text: &str) -> Result<String, String> {
    let (year, seq) = strip_prefix_ci(text, "cve-")
        .and_then(|rest| rest.split_once('-'))
        .ok_or("expected CVE-YYYY-NNNN")?;
    if year.len() != 4 || !year.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("year {:?} is not four digits", clip(year)));
    }
    if year < "1999" {
        return Err(format!("year {year} is before 1999, the first CVE year"));
    }
    if seq.len() < 4 || !seq.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "sequence number {:?} is not four or more digits",
            clip(seq)
        ));
    }
    if seq.len() > 4 && seq.starts_with('0') {
        return Err("a sequence number longer than four digits has no leading zero".into());
    }
    Ok(format!("CVE-{year}-{seq}"))
}

/// STIX keywords that make a comparison without `=`, `<` or `>`.
const STIX_OPERATORS: [&str; 6] = ["LIKE", "MATCHES", "IN", "ISSUBSET", "ISSUPERSET", "EXISTS"];

/// A STIX pattern is kept verbatim; this checks only its outline: it opens with `[` (or
/// `(` for a grouped observation expression, which STIX 2.1 allows), brackets and
/// parentheses balance outside quoted strings, and every `[...]` holds a comparison
/// with an object path (`type:property`) left of its operator, or `EXISTS` and an
/// object path. Qualifiers after the last bracket (`WITHIN 600 SECONDS`) are not checked.
pub(super) fn stix_pattern(text: &str) -> Result<String, String> {
    if text.len() > super::MAX_STIX_PATTERN_BYTES {
        return Err(format!(
            "pattern longer than {} bytes",
            super::MAX_STIX_PATTERN_BYTES
        ));
    }
    if !text.starts_with(['[', '(']) {
        return Err("a STIX pattern starts with '[' or '('".into());
    }
    if text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
    {
        return Err("contains a control character".into());
    }
    // Characters of object types, property names and keywords.
    let ident = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-');
    let mut open: Vec<char> = Vec::new();
    let mut square = 0usize;
    let mut quoted = false;
    let mut escaped = false;
    // Within the current outermost `[...]`: an object path seen so far, a comparison
    // operator after one, an EXISTS.
    let mut path = false;
    let mut compared = false;
    let mut exists = false;
    let mut comparison = false;
    let mut word = String::new();
    let mut prev = None;
    for (at, c) in text.char_indices() {
        if quoted {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '\'') => quoted = false,
                _ => {}
            }
            prev = Some(c);
            continue;
        }
        if ident(c) {
            word.push(c);
            prev = Some(c);
            continue;
        }
        if square > 0 {
            exists |= word == "EXISTS";
            compared |=
                path && (STIX_OPERATORS.contains(&word.as_str()) || matches!(c, '=' | '<' | '>'));
            // `type:property`, the property starting with a letter or '_'.
            path |= c == ':'
                && prev.is_some_and(ident)
                && text.get(at + 1..).is_some_and(|rest| {
                    rest.starts_with(|n: char| n.is_ascii_alphabetic() || n == '_')
                });
        }
        word.clear();
        match c {
            '\'' => quoted = true,
            '[' | '(' => {
                if c == '[' {
                    if square == 0 {
                        (path, compared, exists) = (false, false, false);
                    }
                    square += 1;
                }
                open.push(c);
            }
            ']' | ')' => {
                let opener = if c == ']' { '[' } else { '(' };
                if open.pop() != Some(opener) {
                    return Err(format!("unbalanced {c:?} at byte {at}"));
                }
                if c == ']' {
                    square = square.saturating_sub(1);
                    if square == 0 {
                        if !(compared || (exists && path)) {
                            return Err(format!(
                                "no comparison with an object path (type:property) on its \
                                 left in the '[...]' ending at byte {at}"
                            ));
                        }
                        comparison = true;
                    }
                }
            }
            _ => {}
        }
        prev = Some(c);
    }
    if quoted {
        return Err("unterminated quoted string".into());
    }
    if let Some(c) = open.last() {
        return Err(format!("unclosed {c:?}"));
    }
    if !comparison {
        return Err("no comparison inside '[...]'".into());
    }
    Ok(text.to_owned())
}

fn strip_prefix_ci<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| text.get(prefix.len()..))
        .flatten()
}

/// Echoed input fragments in reasons stay short.
fn clip(text: &str) -> String {
    const MAX: usize = 40;
    if text.chars().count() <= MAX {
        text.to_owned()
    } else {
        text.chars().take(MAX).chain(['…']).collect()
    }
}
