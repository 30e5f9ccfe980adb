//! Network addresses and names: IPv4, IPv6, CIDR blocks, domains (IDNA to punycode),
//! URLs and email addresses, each validated and returned in its normal form.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use idna::AsciiDenyList;
use idna::uts46::{DnsLength, Hyphens, Uts46};

use super::{
    MAX_DOMAIN_BYTES, MAX_EMAIL_BYTES, MAX_LABEL_BYTES, MAX_LOCAL_PART_BYTES,
    MAX_UNICODE_DOMAIN_BYTES, MAX_URL_BYTES, clip,
};

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

pub(in crate::indicator) fn ipv4(text: &str) -> Result<Ipv4Addr, String> {
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
pub(in crate::indicator) fn unbracket(text: &str) -> &str {
    text.strip_prefix('[')
        .and_then(|inner| inner.strip_suffix(']'))
        .unwrap_or(text)
}

pub(in crate::indicator) fn ipv6(text: &str) -> Result<Ipv6Addr, String> {
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

pub(in crate::indicator) fn cidr(text: &str) -> Result<String, String> {
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
pub(in crate::indicator) fn domain(text: &str, min_labels: usize) -> Result<String, String> {
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
pub(in crate::indicator) fn spoken_dots(text: &str) -> String {
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
pub(in crate::indicator) fn url(text: &str) -> Result<String, String> {
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
pub(in crate::indicator) fn email(text: &str) -> Result<String, String> {
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
