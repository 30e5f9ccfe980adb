//! Refanging: defang markers (`[.]`, `(at)`, `hxxp`) turned back into plain text, with
//! input bounded and trimmed first. URLs are refanged part by part so a marker-like path
//! or query survives as it is.

use super::MAX_INPUT_BYTES;

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

/// Trims, bounds and refangs input for every kind but STIX patterns and URLs.
pub(in crate::indicator) fn prepare(text: &str) -> Result<String, String> {
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
pub(in crate::indicator) fn prepare_url(text: &str) -> Result<String, String> {
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
pub(in crate::indicator) fn is_prepared_url(text: &str) -> bool {
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
pub(in crate::indicator) fn is_prepared(text: &str) -> bool {
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
pub(in crate::indicator) fn refang(text: &str) -> String {
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
