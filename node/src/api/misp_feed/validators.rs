//! The validators of the feed's answers: strong ETags, HTTP dates, and whether a
//! request's `If-None-Match` or `If-Modified-Since` says its copy is still current.

use axum::http::{HeaderMap, header};
use threatmesh_protocol::bundle::Tlp;

use super::Listing;
use super::index::Version;

/// The strong validator of a listing at `ceiling`: which file, the ceiling, and the
/// version the file shows.
pub(super) fn etag(listing: Listing, ceiling: Tlp, version: Version) -> String {
    let file = match listing {
        Listing::Manifest => "manifest",
        Listing::Hashes => "hashes",
    };
    let tlp = match ceiling {
        Tlp::Clear => "clear",
        Tlp::Green => "green",
        Tlp::Amber => "amber",
        Tlp::AmberStrict => "amber-strict",
        Tlp::Red => "red",
    };
    format!(
        "\"{file}-{tlp}-{}-{}\"",
        version.events,
        version.newest_added.as_millis()
    )
}

/// A request's validators.
#[derive(Debug, Clone, Default)]
pub(super) struct Conditions {
    /// `If-None-Match`: the tags listed, or `*`.
    pub(super) none_match: Option<Vec<String>>,
    /// `If-Modified-Since`, in Unix seconds (ignored when `If-None-Match` is sent, as
    /// RFC 9110 says).
    modified_since: Option<u64>,
}

pub(super) fn conditions(headers: &HeaderMap) -> Conditions {
    let none_match = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|tag| tag.trim().trim_start_matches("W/").to_owned())
        .filter(|tag| !tag.is_empty())
        .collect::<Vec<_>>();
    let modified_since = headers
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|value| value.to_str().ok())
        .and_then(parse_http_date);
    Conditions {
        none_match: (!none_match.is_empty()).then_some(none_match),
        modified_since,
    }
}

impl Conditions {
    /// Whether the client's copy, tagged `tag` and holding `version`, is still current.
    pub(super) fn still_current(&self, tag: &str, version: Version) -> bool {
        if let Some(tags) = &self.none_match {
            return tags.iter().any(|sent| sent == "*" || sent == tag);
        }
        self.modified_since
            .is_some_and(|since| version.newest_added.as_millis() / 1000 <= since)
    }
}

/// HTTP's date format (RFC 9110's IMF-fixdate).
const HTTP_DATE: &str =
    "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT";

/// `Sun, 06 Nov 1994 08:49:37 GMT` for Unix time `seconds`.
pub(super) fn http_date(seconds: u64) -> Option<String> {
    let format = time::format_description::parse_borrowed::<1>(HTTP_DATE).ok()?;
    time::OffsetDateTime::from_unix_timestamp(i64::try_from(seconds).ok()?)
        .ok()?
        .format(&format)
        .ok()
}

/// Unix seconds of an HTTP date; `None` for anything else (the condition is then
/// ignored, as RFC 9110 says).
pub(super) fn parse_http_date(text: &str) -> Option<u64> {
    let format = time::format_description::parse_borrowed::<1>(HTTP_DATE).ok()?;
    let parsed = time::PrimitiveDateTime::parse(text.trim(), &format).ok()?;
    u64::try_from(parsed.assume_utc().unix_timestamp()).ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use axum::http::HeaderValue;
    use threatmesh_protocol::Timestamp;

    use super::*;

    #[test]
    fn http_dates_read_back_what_they_write() {
        // RFC 9110's own example.
        assert_eq!(
            http_date(784_111_777).as_deref(),
            Some("Sun, 06 Nov 1994 08:49:37 GMT")
        );
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777)
        );
        assert_eq!(parse_http_date("yesterday"), None);
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 CET"), None);
    }

    #[test]
    fn if_none_match_decides_when_sent_and_if_modified_since_otherwise() {
        let version = Version {
            events: 3,
            newest_added: Timestamp(784_111_777_500),
        };
        let tag = etag(Listing::Manifest, Tlp::Green, version);
        assert_eq!(tag, "\"manifest-green-3-784111777500\"");
        let mut headers = HeaderMap::new();
        assert!(!conditions(&headers).still_current(&tag, version));
        headers.insert(
            header::IF_MODIFIED_SINCE,
            HeaderValue::from_static("Sun, 06 Nov 1994 08:49:37 GMT"),
        );
        assert!(conditions(&headers).still_current(&tag, version));
        // A newer copy is needed when the newest event came in a later second.
        let newer = Version {
            events: 4,
            newest_added: Timestamp(784_111_778_000),
        };
        assert!(!conditions(&headers).still_current(&tag, newer));
        // If-None-Match, when sent, decides alone (RFC 9110).
        headers.insert(header::IF_NONE_MATCH, HeaderValue::from_static("\"other\""));
        assert!(!conditions(&headers).still_current(&tag, version));
        headers.insert(header::IF_NONE_MATCH, HeaderValue::from_static("*"));
        assert!(conditions(&headers).still_current(&tag, newer));
    }
}
