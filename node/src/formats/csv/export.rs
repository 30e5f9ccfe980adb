//! CSV out: one row per indicator under [`HEADER`], RFC 4180 quoting, RFC 3339 UTC
//! times, and every field a spreadsheet would run as a formula defused.

use std::io::Write;

use threatmesh_protocol::crypto::hex_encode;
use threatmesh_protocol::entry::Body;
use threatmesh_protocol::item::Item;
use threatmesh_protocol::{Entry, Hash};

use super::{HEADER, is_formula};
use crate::formats::Publisher;
use crate::formats::misp::rfc3339;
use crate::warninglists::Warninglists;

/// Writes a header and one row per indicator of `entries`; returns the rows written
/// (header not counted).
pub fn export<'a, W: Write>(
    mut out: W,
    entries: impl IntoIterator<Item = (&'a Entry, Hash, &'a Publisher)>,
) -> std::io::Result<usize> {
    write_header(&mut out)?;
    let mut rows = 0;
    for (entry, id, publisher) in entries {
        rows += write_entry(&mut out, entry, id, publisher)?;
    }
    out.flush()?;
    Ok(rows)
}

/// Writes the header row of [`export`], for callers that write entries as they arrive.
pub fn write_header<W: Write + ?Sized>(out: &mut W) -> std::io::Result<()> {
    write_row(out, HEADER.iter().copied())
}

/// Writes one row per indicator of `entry`; returns the rows written.
pub fn write_entry<W: Write + ?Sized>(
    out: &mut W,
    entry: &Entry,
    id: Hash,
    publisher: &Publisher,
) -> std::io::Result<usize> {
    write_entry_marked(out, entry, id, publisher, None)
}

/// [`write_entry`], filling the `warninglists` column from `warninglists`.
pub fn write_entry_marked<W: Write + ?Sized>(
    out: &mut W,
    entry: &Entry,
    id: Hash,
    publisher: &Publisher,
    warninglists: Option<&Warninglists>,
) -> std::io::Result<usize> {
    // A sealed entry is exported only as the bundle this node opened (see
    // `formats::readable_entry`); one still sealed has no rows to show.
    let Body::Bundle(bundle) = &entry.body else {
        return Ok(0);
    };
    let entry_id = hex_encode(&id.0);
    let mut rows = 0;
    for item in &bundle.items {
        let Item::Indicator(indicator) = item else {
            continue;
        };
        let confidence = indicator.confidence.get().to_string();
        let valid_from = rfc3339(indicator.valid_from);
        let valid_until = indicator.valid_until.map(rfc3339).unwrap_or_default();
        let labels = indicator.labels.join(";");
        let context = &indicator.context;
        let on = warninglists
            .map(|lists| lists.ids(&indicator.value).join(";"))
            .unwrap_or_default();
        write_row(
            out,
            [
                indicator.value.kind().as_str(),
                indicator.value.as_str(),
                bundle.tlp.label(),
                &confidence,
                &valid_from,
                &valid_until,
                &labels,
                context.threat.as_deref().unwrap_or_default(),
                context.description.as_deref().unwrap_or_default(),
                &publisher.name,
                &entry_id,
                &on,
            ],
        )?;
        rows += 1;
    }
    Ok(rows)
}

/// One RFC 4180 row: fields quoted when they hold a comma, a quote or a line break. A
/// field a spreadsheet would run as a formula is written as text instead: see
/// [`is_formula`].
pub(crate) fn write_row<'a, W: Write + ?Sized>(
    out: &mut W,
    fields: impl IntoIterator<Item = &'a str>,
) -> std::io::Result<()> {
    for (index, field) in fields.into_iter().enumerate() {
        if index > 0 {
            out.write_all(b",")?;
        }
        // Every field comes from a peer (values and names too), so every one is checked.
        // OWASP's advice: a leading `'` makes the cell text, and the cell is quoted. A
        // field already starting with `'`s before a formula gets one more, so import can
        // always take exactly one off (see `undefused`).
        let defused = is_formula(field.trim_start_matches('\''));
        if defused || field.contains([',', '"', '\n', '\r']) {
            out.write_all(b"\"")?;
            if defused {
                out.write_all(b"'")?;
            }
            out.write_all(field.replace('"', "\"\"").as_bytes())?;
            out.write_all(b"\"")?;
        } else {
            out.write_all(field.as_bytes())?;
        }
    }
    out.write_all(b"\r\n")
}
