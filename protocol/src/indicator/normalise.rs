//! The per-kind rules behind [`Value::parse`](super::Value::parse): refanging, then one
//! function per kind that validates the refanged text and returns its normal form, or a
//! reason in words. Reasons are plain strings here; the caller wraps them with the kind
//! and the input.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use idna::AsciiDenyList;
use idna::uts46::{DnsLength, Hyphens, Uts46};

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

/// Defang markers as CERT reports write them, matched case-insensitively.
const MARKERS: [(&str, &str); 14] = [
    ("[.]", "."),
    ("(.)", "."),
    ("{.}", "."),
    ("[dot]", "."),
    ("(dot)", "."),
    ("{dot}", "."),
    ("[://]", "://"),
    ("[:]", ":"),
    ("[@]", "@"),
    ("(@)", "@"),
    ("{@}", "@"),
    ("[at]", "@"),
    ("(at)", "@"),
    ("{at}", "@"),
];

/// Defanged schemes, matched case-insensitively when followed by `:`.
const SCHEMES: [(&str, &str); 9] = [
    ("hxxp", "http"),
    ("hxxps", "https"),
    ("hxtp", "http"),
    ("hxtps", "https"),
    ("htxp", "http"),
    ("htxps", "https"),
    ("fxp", "ftp"),
    ("fxps", "ftps"),
    ("sfxp", "sftp"),
];

/// URL schemes accepted, with the default port the url crate does not know about (it
/// strips defaults only for the WHATWG special schemes).
const URL_SCHEMES: [(&str, Option<u16>); 7] = [
    ("http", None),
    ("https", None),
    ("ftp", None),
    ("ws", None),
    ("wss", None),
    ("ftps", Some(990)),
    ("sftp", Some(22)),
];

/// Trims, bounds and refangs input for every kind but STIX patterns and URLs.
pub(super) fn prepare(text: &str) -> Result<String, String> {
    check_input(text)?;
    let refanged = refang(text);
    // One pass must reach the plain form, or the normal form would change on re-parse.
    if refang(&refanged) != refanged {
        return Err("nested defang markers".into());
    }
    Ok(refanged.trim().to_owned())
}

fn check_input(text: &str) -> Result<(), String> {
    if text.len() > MAX_INPUT_BYTES {
        return Err(format!("input longer than {MAX_INPUT_BYTES} bytes"));
    }
    if text.chars().any(char::is_control) {
        return Err("contains a control character".into());
    }
    Ok(())
}

/// [`prepare`] for URLs: refangs only the scheme and the host. In the path, query and
/// fragment, and in the userinfo, `[.]`, `(at)` or `\.` are data (`?filter[at]=1`), and
/// refanging them would report a different URL; the url crate percent-encodes or keeps
/// them as they are.
pub(super) fn prepare_url(text: &str) -> Result<String, String> {
    check_input(text)?;
    let (auth_start, auth_end) = url_authority(text);
    let (Some(scheme), Some(authority), Some(tail)) = (
        text.get(..auth_start),
        text.get(auth_start..auth_end),
        text.get(auth_end..),
    ) else {
        return Err("cannot find the URL's host part".into());
    };
    let scheme = refang_once(scheme, refang)?;
    let authority = match rsplit_at_plain_at(authority) {
        // What precedes the last plain '@' is the userinfo, kept verbatim; a marker after
        // it would put a second '@' in the authority, which the url crate would move into
        // the userinfo.
        Some((userinfo, host)) => {
            let host = refang_once(host, refang_markers)?;
            if host.contains('@') {
                return Err("more than one '@' in the host part".into());
            }
            format!("{userinfo}@{host}")
        }
        None => {
            let authority = refang_once(authority, refang_markers)?;
            // With only defanged '@'s there is no telling which one ends the userinfo.
            if authority.matches('@').count() > 1 {
                return Err("more than one '@' in the host part".into());
            }
            authority
        }
    };
    Ok(format!("{scheme}{authority}{tail}").trim().to_owned())
}

/// Splits at the last '@' that is not the middle of an `[@]`, `(@)` or `{@}` marker.
fn rsplit_at_plain_at(text: &str) -> Option<(&str, &str)> {
    let bytes = text.as_bytes();
    let at = bytes.iter().enumerate().rposition(|(i, &b)| {
        let marker = matches!(
            (
                i.checked_sub(1).and_then(|j| bytes.get(j)),
                bytes.get(i + 1)
            ),
            (Some(b'['), Some(b']')) | (Some(b'('), Some(b')')) | (Some(b'{'), Some(b'}'))
        );
        b == b'@' && !marker
    })?;
    // '@' is ASCII, so both sides are on character boundaries.
    Some((text.get(..at)?, text.get(at + 1..)?))
}

/// `refang` once, refusing text that a second pass would change.
fn refang_once(text: &str, refang: fn(&str) -> String) -> Result<String, String> {
    let refanged = refang(text);
    if refang(&refanged) != refanged {
        return Err("nested defang markers".into());
    }
    Ok(refanged)
}

/// Byte offsets of a URL's authority, the part [`prepare_url`] refangs along with the
/// scheme before it: after `//` (or `[://]`) if that is the first delimiter, else after
/// the scheme's ':', up to the next `/`, `?`, `#` or `\` (the special schemes read `\`
/// as `/`), except a `\.` marker. Delimiters and markers are ASCII, so the offsets are
/// character boundaries.
fn url_authority(text: &str) -> (usize, usize) {
    let bytes = text.as_bytes();
    let end_from = |from: usize| {
        (from..bytes.len())
            .find(|&i| match bytes.get(i) {
                Some(b'/' | b'?' | b'#') => true,
                Some(b'\\') => bytes.get(i + 1) != Some(&b'.'),
                _ => false,
            })
            .unwrap_or(bytes.len())
    };
    let first = end_from(0);
    let start = if bytes.get(first..first + 2) == Some(b"//") {
        // `[://]`: its closing bracket belongs to the separator, not the host.
        let closing = bytes.get(..first).is_some_and(|head| head.ends_with(b"[:"))
            && bytes.get(first + 2) == Some(&b']');
        first + 2 + usize::from(closing)
    } else {
        // No `//` (`http:evil.example`): the authority, if any, follows the first ':'.
        text.get(..first)
            .and_then(|head| head.find(':'))
            .map_or(0, |colon| colon + 1)
    };
    (start, end_from(start))
}

/// Whether [`prepare_url`] would return `text` unchanged: the scheme and authority pass
/// [`is_prepared`], and the rest has no whitespace or control character to trim or
/// refuse. Like [`is_prepared`] it may say no to a prepared text (a `(` in the userinfo),
/// never yes to one `prepare_url` would change.
pub(super) fn is_prepared_url(text: &str) -> bool {
    let (_, auth_end) = url_authority(text);
    text.len() <= MAX_INPUT_BYTES
        && text.split_at_checked(auth_end).is_some_and(|(head, tail)| {
            is_prepared(head) && !tail.chars().any(|c| c.is_whitespace() || c.is_control())
        })
}

/// Whether [`prepare`] would return `text` unchanged, decided without allocating: within
/// the size bound, no character a defang marker starts with (`[`, `(`, `{`, `\\`), nothing
/// to trim or refuse (no whitespace, no control character), and no defanged scheme.
/// Values re-checked on receipt are normal forms, which nearly all pass this test; the
/// few that do not (an e-mail local part with `{`) take the slow path, same answer.
pub(super) fn is_prepared(text: &str) -> bool {
    text.len() <= MAX_INPUT_BYTES
        && if text.is_ascii() {
            // The common case, byte by byte: every ASCII whitespace is a control character
            // or a space.
            !text
                .bytes()
                .any(|b| matches!(b, b'[' | b'(' | b'{' | b'\\' | b' ') || b.is_ascii_control())
        } else {
            !text
                .chars()
                .any(|c| matches!(c, '[' | '(' | '{' | '\\') || c.is_whitespace() || c.is_control())
        }
        && text
            .split_once(':')
            .is_none_or(|(scheme, _)| !SCHEMES.iter().any(|(s, _)| s.eq_ignore_ascii_case(scheme)))
}

/// Replaces defang markers and defanged schemes by what they stand for.
pub(super) fn refang(text: &str) -> String {
    let mut out = refang_markers(text);
    if let Some((scheme, tail)) = out.split_once(':')
        && let Some((_, plain)) = SCHEMES.iter().find(|(s, _)| s.eq_ignore_ascii_case(scheme))
    {
        out = format!("{plain}:{tail}");
    }
    out
}

/// Replaces defang markers by what they stand for.
fn refang_markers(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    'scan: while let Some(c) = rest.chars().next() {
        if let Some(after) = rest.strip_prefix("\\.") {
            out.push('.');
            rest = after;
            continue;
        }
        if matches!(c, '[' | '(' | '{') {
            for (marker, plain) in MARKERS {
                let matched = rest
                    .as_bytes()
                    .get(..marker.len())
                    .is_some_and(|head| head.eq_ignore_ascii_case(marker.as_bytes()));
                // Markers are ASCII, so a match ends on a character boundary.
                if let (true, Some(after)) = (matched, rest.get(marker.len()..)) {
                    // Reports pad markers with spaces ("evil [.] example"); the padding
                    // belongs to the marker.
                    out.truncate(out.trim_end().len());
                    out.push_str(plain);
                    rest = after.trim_start();
                    continue 'scan;
                }
            }
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

pub(super) fn ipv4(text: &str) -> Result<Ipv4Addr, String> {
    let octets: Vec<&str> = text.split('.').collect();
    if octets.len() != 4 {
        return Err(format!(
            "expected 4 dot-separated octets, got {}",
            octets.len()
        ));
    }
    for octet in octets {
        if octet.is_empty() {
            return Err("empty octet".into());
        }
        if !octet.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("octet {:?} is not a decimal number", clip(octet)));
        }
        if octet.len() > 1 && octet.starts_with('0') {
            return Err(format!(
                "octet {octet} has a leading zero (octal or decimal is ambiguous)"
            ));
        }
        if octet.len() > 3 || octet.parse::<u16>().is_ok_and(|n| n > 255) {
            return Err(format!("octet {} out of range", clip(octet)));
        }
    }
    text.parse()
        .map_err(|_| "not a valid IPv4 address".to_owned())
}

/// Strips one pair of surrounding brackets, as in `[2001:db8::1]`: reports copy IPv6
/// addresses out of URLs and logs with them. Only for the ipv6 kind; CIDR and e-mail
/// keep refusing them.
pub(super) fn unbracket(text: &str) -> &str {
    text.strip_prefix('[')
        .and_then(|inner| inner.strip_suffix(']'))
        .unwrap_or(text)
}

pub(super) fn ipv6(text: &str) -> Result<Ipv6Addr, String> {
    if text.starts_with('[') || text.ends_with(']') {
        return Err("brackets are not part of an IPv6 address".into());
    }
    if text.contains('%') {
        return Err("zone index (%...) is not part of an indicator".into());
    }
    if !text.contains(':') {
        return Err("no ':' in an IPv6 address".into());
    }
    if let Some(c) = text
        .chars()
        .find(|c| !(c.is_ascii_hexdigit() || matches!(c, ':' | '.')))
    {
        return Err(format!("character {c:?} not allowed in an IPv6 address"));
    }
    if text.matches("::").count() > 1 || text.contains(":::") {
        return Err("'::' may appear only once".into());
    }
    if let Some(group) = text.split(':').find(|g| g.len() > 4 && !g.contains('.')) {
        return Err(format!("group {} longer than 4 hex digits", clip(group)));
    }
    text.parse()
        .map_err(|_| "not a valid IPv6 address".to_owned())
}

pub(super) fn cidr(text: &str) -> Result<String, String> {
    let (addr, len) = text
        .split_once('/')
        .ok_or("missing '/' and prefix length")?;
    if len.is_empty() || len.len() > 3 || !len.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("prefix length {:?} is not a number", clip(len)));
    }
    let len: u32 = len
        .parse()
        .map_err(|_| format!("prefix length {len} is not a number"))?;
    let in_range = |max: u32| {
        (len <= max)
            .then_some(())
            .ok_or_else(|| format!("prefix length {len} out of range (0..={max})"))
    };
    let (network, host_bits_set): (IpAddr, bool) = if addr.contains(':') {
        in_range(128)?;
        let addr = u128::from(ipv6(addr)?);
        let network = addr & u128::MAX.checked_shl(128 - len).unwrap_or(0);
        (Ipv6Addr::from(network).into(), network != addr)
    } else {
        in_range(32)?;
        let addr = u32::from(ipv4(addr)?);
        let network = addr & u32::MAX.checked_shl(32 - len).unwrap_or(0);
        (Ipv4Addr::from(network).into(), network != addr)
    };
    // Clearing host bits would silently widen what the reporter asserted.
    if host_bits_set {
        return Err(format!("host bits set; did you mean {network}/{len}?"));
    }
    Ok(format!("{network}/{len}"))
}

/// A domain: `min_labels` is 2 for the domain kind, 1 for URL hosts (`localhost`).
///
/// Underscores are allowed: they are not valid host names, but malware domains and
/// SRV/DKIM-style names carry them and must still be reportable.
pub(super) fn domain(text: &str, min_labels: usize) -> Result<String, String> {
    if text.is_empty() {
        return Err("empty domain".into());
    }
    check_domain_chars(text)?;
    if text.len() > MAX_UNICODE_DOMAIN_BYTES {
        return Err(format!("domain longer than {MAX_DOMAIN_BYTES} bytes"));
    }
    // Non-transitional UTS 46 (idna 1.x has no transitional mode), without STD3 rules so
    // underscores pass; hyphens and lengths are checked below with better reasons.
    let ascii = Uts46::new()
        .to_ascii(
            text.as_bytes(),
            AsciiDenyList::EMPTY,
            Hyphens::Allow,
            DnsLength::Ignore,
        )
        .map_err(|_| "not a valid internationalised domain name (UTS 46)".to_owned())?;
    let name = ascii.strip_suffix('.').unwrap_or(&ascii);
    if name.is_empty() {
        return Err("empty domain".into());
    }
    if name.len() > MAX_DOMAIN_BYTES {
        return Err(format!("domain longer than {MAX_DOMAIN_BYTES} bytes"));
    }
    // UTS 46 maps some non-ASCII characters to ASCII punctuation (full-width '!').
    check_domain_chars(name)?;
    let labels: Vec<&str> = name.split('.').collect();
    for label in &labels {
        if label.is_empty() {
            return Err("empty label".into());
        }
        if label.len() > MAX_LABEL_BYTES {
            return Err(format!("label longer than {MAX_LABEL_BYTES} bytes"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!("label {label:?} starts or ends with a hyphen"));
        }
    }
    if labels.len() < min_labels {
        return Err("a domain needs at least two labels".into());
    }
    if labels
        .last()
        .is_some_and(|last| last.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err("last label is all digits (an IP address is not a domain)".into());
    }
    // URL parsers (WHATWG) read a name ending in `0x...` as an IPv4 address: `0x7f.0x1`
    // is 127.0.0.1, and `example.0x1` fails to parse as a URL host at all.
    if labels.last().is_some_and(|last| {
        last.strip_prefix("0x")
            .is_some_and(|hex| hex.bytes().all(|b| b.is_ascii_hexdigit()))
    }) {
        return Err(
            "last label is a hexadecimal number (URL parsers read it as an IPv4 address)".into(),
        );
    }
    Ok(name.to_owned())
}

fn check_domain_chars(text: &str) -> Result<(), String> {
    let bad = text
        .chars()
        .find(|&c| c.is_ascii() && !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')));
    match bad {
        Some(c) if c.is_whitespace() => Err("contains whitespace".into()),
        Some(c) => Err(format!("character {c:?} not allowed in a domain")),
        None => Ok(()),
    }
}

/// `evil dot example dot com`: spoken dots, only when every other word is `dot`.
pub(super) fn spoken_dots(text: &str) -> String {
    let words: Vec<&str> = text.split_whitespace().collect();
    let spoken = words.len() >= 3
        && words.len() % 2 == 1
        && words
            .iter()
            .enumerate()
            .all(|(i, w)| (i % 2 == 1) == w.eq_ignore_ascii_case("dot"));
    if spoken {
        words
            .iter()
            .step_by(2)
            .copied()
            .collect::<Vec<_>>()
            .join(".")
    } else {
        text.to_owned()
    }
}

/// A URL of an accepted scheme, host normalised as a domain or IP address. Path, query
/// and fragment stay as the url crate serialises them; the fragment is kept because it
/// is part of what was reported, and dropping it would merge distinct reports.
pub(super) fn url(text: &str) -> Result<String, String> {
    if text.len() > MAX_URL_BYTES {
        return Err(format!("URL longer than {MAX_URL_BYTES} bytes"));
    }
    if text.chars().any(char::is_whitespace) {
        return Err("contains whitespace".into());
    }
    let mut url = url::Url::parse(text).map_err(|e| format!("not a valid URL: {e}"))?;
    let default_port = URL_SCHEMES
        .iter()
        .find(|(scheme, _)| *scheme == url.scheme())
        .ok_or_else(|| {
            let accepted: Vec<&str> = URL_SCHEMES.iter().map(|(s, _)| *s).collect();
            format!(
                "scheme {:?} not accepted (one of {})",
                clip(url.scheme()),
                accepted.join(", ")
            )
        })?
        .1;
    let host = match url.host() {
        None => return Err("URL has no host".into()),
        // Outside the WHATWG special schemes the url crate leaves IPv4 hosts as names.
        Some(url::Host::Domain(host)) if ipv4(host).is_ok() => None,
        // ... and percent-encode non-ASCII ones.
        Some(url::Host::Domain(host)) => Some(
            percent_decode(host)
                .and_then(|host| domain(&host, 1))
                .map_err(|r| format!("host: {r}"))?,
        ),
        // IPv6 hosts keep the url crate's text form, which differs from the ipv6 kind's
        // for IPv4-mapped addresses only (`[::ffff:102:304]`, not `[::ffff:1.2.3.4]`):
        // the url crate re-parses any host we set and always writes hex groups, so the
        // ipv6 kind's form cannot survive serialisation.
        Some(_) => None,
    };
    if let Some(host) = host {
        url.set_host(Some(&host))
            .map_err(|e| format!("host: {e}"))?;
    }
    if default_port.is_some() && url.port() == default_port {
        url.set_port(None)
            .map_err(|()| "cannot remove the default port".to_owned())?;
    }
    let out = String::from(url);
    if out.len() > MAX_URL_BYTES {
        return Err(format!(
            "URL longer than {MAX_URL_BYTES} bytes once normalised"
        ));
    }
    Ok(out)
}

fn percent_decode(text: &str) -> Result<String, String> {
    let mut bytes = Vec::with_capacity(text.len());
    let mut rest = text.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        rest = tail;
        if b != b'%' {
            bytes.push(b);
            continue;
        }
        let byte = tail
            .get(..2)
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok())
            .ok_or("bad percent-encoding")?;
        bytes.push(byte);
        rest = tail.get(2..).unwrap_or_default();
    }
    String::from_utf8(bytes).map_err(|_| "percent-encoding is not UTF-8".to_owned())
}

/// `local@domain`. The local part keeps its case (RFC 5321 leaves it to the receiving
/// host); quoted local parts and address literals (`user@[192.0.2.1]`) are refused as
/// too rare in reports to be worth a second normal form. So are non-ASCII local parts
/// (RFC 6531): Unicode offers several spellings of one mailbox (composed and decomposed
/// characters, invisible format characters such as U+200B) and mail systems agree on no
/// normalisation, while such addresses are rare in reports. The domain part may be
/// internationalised; it becomes punycode.
pub(super) fn email(text: &str) -> Result<String, String> {
    if text.chars().any(char::is_whitespace) {
        return Err("contains whitespace".into());
    }
    let (local, host) = text.rsplit_once('@').ok_or("missing '@'")?;
    if local.is_empty() {
        return Err("empty local part".into());
    }
    if host.is_empty() {
        return Err("empty domain part".into());
    }
    if local.contains('@') {
        return Err("more than one '@'".into());
    }
    if local.len() > MAX_LOCAL_PART_BYTES {
        return Err(format!(
            "local part longer than {MAX_LOCAL_PART_BYTES} bytes"
        ));
    }
    if local.contains('"') {
        return Err("quoted local parts are not supported".into());
    }
    if let Some(c) = local.chars().find(|c| !c.is_ascii()) {
        return Err(format!(
            "non-ASCII character {c:?} in the local part (internationalised local parts \
             are not supported)"
        ));
    }
    if let Some(c) = local
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c)))
    {
        return Err(format!("character {c:?} not allowed in the local part"));
    }
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return Err("local part has a leading, trailing or doubled dot".into());
    }
    if host.starts_with('[') {
        return Err("address literals ([...]) are not supported".into());
    }
    let host = domain(host, 2).map_err(|r| format!("domain part: {r}"))?;
    let out = format!("{local}@{host}");
    if out.len() > MAX_EMAIL_BYTES {
        return Err(format!("address longer than {MAX_EMAIL_BYTES} bytes"));
    }
    Ok(out)
}

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
