//! Pagination: the cursors a page hands out as `next`, and the envelope (`more`, `next`,
//! the date-added headers) every paged answer is wrapped in.

use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use serde_json::Value as Json;
use threatmesh_protocol::Timestamp;

use super::TaxiiError;
use super::filters::Filters;
use super::listed::Listed;
use super::media::taxii_body;
use crate::formats::rfc3339;

/// Where a page starts: the context objects (identities and markings), or a row of the
/// store's added-time index and how many of that entry's objects were already served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Cursor {
    /// The `n`th context object.
    Context(usize),
    /// Object `skip` of the entry at index row `key`.
    Entry { key: Vec<u8>, skip: usize },
    /// The `n`th object of a list found by id (`match[id]`, one object's versions).
    Offset(usize),
}

impl Cursor {
    pub(super) fn text(&self) -> String {
        match self {
            Cursor::Context(n) => format!("c{n}"),
            Cursor::Offset(n) => format!("o{n}"),
            Cursor::Entry { key, skip } => {
                format!("e{}.{skip}", threatmesh_protocol::crypto::hex_encode(key))
            }
        }
    }

    pub(super) fn parse(text: &str) -> Result<Cursor, TaxiiError> {
        let bad =
            || TaxiiError::bad_request(format!("next: {text:?} is not a cursor of this server"));
        if let Some(n) = text.strip_prefix('c') {
            return n.parse().map(Cursor::Context).map_err(|_| bad());
        }
        if let Some(n) = text.strip_prefix('o') {
            return n.parse().map(Cursor::Offset).map_err(|_| bad());
        }
        let (key, skip) = text
            .strip_prefix('e')
            .and_then(|rest| rest.split_once('.'))
            .ok_or_else(bad)?;
        let key = threatmesh_protocol::crypto::hex_decode::<17>(key).map_err(|_| bad())?;
        Ok(Cursor::Entry {
            key: key.to_vec(),
            skip: skip.parse().map_err(|_| bad())?,
        })
    }
}

/// When the first and last objects of a page were added, for TAXII's
/// `X-TAXII-Date-Added-First` and `-Last` headers.
pub(super) fn added_range(listed: &[Listed]) -> Option<(Timestamp, Timestamp)> {
    Some((listed.first()?.added, listed.last()?.added))
}

/// An envelope, manifest or versions answer: `more` and `next` when the page is not the
/// last; an empty object when there is nothing. `items` are written already, each one
/// JSON value; the envelope around them is written as a `serde_json` map would be (keys
/// sorted, no spaces).
pub(super) fn paged(
    field: &str,
    items: &[impl AsRef<str>],
    next: Option<&Cursor>,
    added: Option<(Timestamp, Timestamp)>,
) -> Response {
    let length: usize = items.iter().map(|item| item.as_ref().len() + 1).sum();
    let mut body = String::with_capacity(length + field.len() + 96);
    body.push('{');
    // A page can come back empty and still not be the last (a scan stopped at its row
    // budget): then it says `more` and where to go on.
    if !items.is_empty() || next.is_some() {
        body.push_str(if next.is_some() {
            "\"more\":true"
        } else {
            "\"more\":false"
        });
        if let Some(next) = next {
            body.push_str(",\"next\":");
            body.push_str(&Json::String(next.text()).to_string());
        }
        if !items.is_empty() {
            body.push(',');
            body.push_str(&Json::String(field.to_owned()).to_string());
            body.push_str(":[");
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    body.push(',');
                }
                body.push_str(item.as_ref());
            }
            body.push(']');
        }
    }
    body.push('}');
    let mut response = taxii_body(StatusCode::OK, body);
    if let Some((first, last)) = added {
        let headers = response.headers_mut();
        for (name, time) in [
            ("x-taxii-date-added-first", first),
            ("x-taxii-date-added-last", last),
        ] {
            if let Ok(value) = HeaderValue::from_str(&rfc3339::format(time)) {
                headers.insert(name, value);
            }
        }
    }
    response
}

/// The page of `found` that `filters` ask for (`limit`, and `next` as an offset), with
/// the cursor of the next page when more remain.
pub(super) fn offset_page(found: Vec<Listed>, filters: &Filters) -> (Vec<Listed>, Option<Cursor>) {
    let skip = match filters.next {
        Some(Cursor::Offset(served)) => served,
        _ => 0,
    };
    let total = found.len();
    let shown: Vec<Listed> = found.into_iter().skip(skip).take(filters.limit).collect();
    let served = skip + shown.len();
    (shown, (served < total).then_some(Cursor::Offset(served)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        for cursor in [
            Cursor::Context(3),
            Cursor::Entry {
                key: vec![b'a'; 17],
                skip: 12,
            },
        ] {
            assert_eq!(Cursor::parse(&cursor.text()).ok(), Some(cursor));
        }
        for text in [
            "",
            "x",
            "c",
            "e12.3",
            "eZZ.1",
            &format!("e{}", "61".repeat(17)),
        ] {
            assert!(Cursor::parse(text).is_err(), "{text:?} was accepted");
        }
    }
}
