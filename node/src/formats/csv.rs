//! CSV files and plain lists in, CSV out.
//!
//! Import takes a plain list (one value per line) or CSV (RFC 4180: quoted fields may hold
//! delimiters, doubled quotes and line breaks; CRLF or LF) with `,` `;` tab or `|` between
//! fields. Unless the options say otherwise:
//!
//! - the delimiter is the candidate that appears the same number of times (at least once,
//!   outside quotes) in each of the first [`SAMPLE_LINES`] records, if there are two or
//!   more; else the file is a plain list, each whole line one value;
//! - the first record is a header when every field reads as a column name (letters,
//!   digits, space, `_`, `-`) and none as an indicator value;
//! - the value column is the header's `value`, `indicator` or `ioc` column, else the
//!   first; a header `kind` column (as [`export`] writes) forces each row's kind, a `tlp`
//!   column marks each row;
//! - each value's kind is detected ([`Value::detect`], defanged forms accepted).
//!
//! Blank lines and lines starting with `#` are skipped; a UTF-8 byte order mark is
//! dropped. Every other line is read and either becomes an indicator (valid from `now`,
//! default confidence), counts as a `duplicate` (same value earlier in the file: the first
//! is kept), or is refused as `line N` with the reason (the value's `InvalidValue`
//! message, a missing column, text that is not UTF-8, a quote never closed). A broken line
//! costs only itself: a quote never closed refuses its line and reading goes on at the
//! next one.
//!
//! Input is held in memory and limited to [`MAX_INPUT_BYTES`].
//!
//! Export writes one row per indicator with a header (see [`HEADER`]), RFC 4180 quoting
//! and RFC 3339 UTC times. Revocations and sightings are left out: CSV consumers are
//! block lists, and a row for a withdrawn value would read as "block this".
//!
//! Every exported field comes from some member, so none may run in a spreadsheet: a field
//! that starts with `=`, `+`, `-`, `@`, tab or carriage return (or with `'`s and then one
//! of them) is quoted and prefixed with `'`, which spreadsheets read as "text". Import
//! takes that `'` off the value column again (only there, and only before such a
//! character), so export then import gives back the same values. A `'` before anything
//! else is left as it is.

use std::collections::HashSet;
use std::io::Write;

use threatmesh_protocol::bundle::Tlp;
use threatmesh_protocol::crypto::hex_encode;
use threatmesh_protocol::entry::Body;
use threatmesh_protocol::item::{Indicator, Item};
use threatmesh_protocol::{Entry, Hash, Kind, Timestamp, Value};

use super::misp::rfc3339;
use super::{Import, Publisher};
use crate::warninglists::Warninglists;

/// Largest input read, in bytes (about 3 million URLs).
pub const MAX_INPUT_BYTES: usize = 256 * 1024 * 1024;

/// Data lines looked at to detect the delimiter.
pub const SAMPLE_LINES: usize = 20;

/// Delimiters detection tries, in order of preference on a tie.
pub const DELIMITERS: [u8; 4] = [b',', b';', b'\t', b'|'];

/// The columns [`export`] writes.
pub const HEADER: [&str; 12] = [
    "kind",
    "value",
    "tlp",
    "confidence",
    "valid_from",
    "valid_until",
    "labels",
    "threat",
    "description",
    "publisher",
    "entry",
    // The warninglists the value is on, `;`-separated; empty when on none or unchecked.
    "warninglists",
];

/// Header names taken as the value column when no column is chosen.
const VALUE_COLUMNS: [&str; 3] = ["value", "indicator", "ioc"];

/// A column, by 0-based position or by header name (any case).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Column {
    /// Position, from 0.
    Index(usize),
    /// Header name.
    Name(String),
}

/// How to read a file; `None` everywhere means "detect".
#[derive(Debug, Clone, Default)]
pub struct CsvOptions {
    /// The column holding the values.
    pub column: Option<Column>,
    /// The field delimiter.
    pub delimiter: Option<u8>,
    /// The kind of every value.
    pub kind: Option<Kind>,
    /// Whether the first record is a header.
    pub has_header: Option<bool>,
}

/// A file that cannot be read at all. Problems with single lines are refusals in the
/// report, not errors.
#[derive(Debug, thiserror::Error)]
pub enum CsvError {
    /// More than [`MAX_INPUT_BYTES`].
    #[error("CSV input of {len} bytes is over the limit of {MAX_INPUT_BYTES} bytes")]
    TooLarge {
        /// Its size.
        len: usize,
    },
    /// A delimiter that cannot separate fields.
    #[error("delimiter {0:?} cannot separate fields (a quote, a line break or not ASCII)")]
    BadDelimiter(char),
    /// A column chosen by name in a file without a header.
    #[error("column {0:?} is chosen by name, but the file has no header")]
    NoHeader(String),
    /// A column name the header does not have.
    #[error("no column {name:?} in the header (columns: {header})")]
    NoSuchColumn {
        /// The name asked for.
        name: String,
        /// The header's names.
        header: String,
    },
}

/// One record: its fields as bytes, and the line it starts on (from 1).
#[derive(Debug)]
struct Record<'a> {
    line: usize,
    fields: Vec<Field<'a>>,
}

/// A field: borrowed when unquoted or quoted without doubled quotes.
type Field<'a> = std::borrow::Cow<'a, [u8]>;

/// A record that could not be split.
#[derive(Debug)]
struct BrokenRecord {
    line: usize,
    reason: &'static str,
}

/// Splits `text` into records, RFC 4180 style, skipping blank and `#` lines. With
/// `delimiter` `None` every line is one field, quotes included.
struct Records<'a> {
    text: &'a [u8],
    position: usize,
    line: usize,
    delimiter: Option<u8>,
}

impl<'a> Records<'a> {
    fn new(text: &'a [u8], delimiter: Option<u8>) -> Records<'a> {
        Records {
            text,
            position: 0,
            line: 1,
            delimiter,
        }
    }

    /// The line from `position`, without its line break, and where the next one starts.
    fn line_at(&self, position: usize) -> (&'a [u8], usize) {
        let rest = &self.text[position..];
        match rest.iter().position(|&b| b == b'\n') {
            Some(end) => (trim_cr(&rest[..end]), position + end + 1),
            None => (trim_cr(rest), self.text.len()),
        }
    }

    fn split(&mut self, delimiter: u8) -> Result<Vec<Field<'a>>, BrokenRecord> {
        let start_line = self.line;
        let text = self.text;
        let mut fields = Vec::new();
        let mut at = self.position;
        loop {
            if text.get(at) == Some(&b'"') {
                // Quoted: runs to the closing quote, doubled quotes stand for one.
                let mut owned: Option<Vec<u8>> = None;
                let start = at + 1;
                let mut cursor = start;
                let mut lines_inside = 0;
                let end = loop {
                    match text.get(cursor) {
                        None => {
                            return Err(BrokenRecord {
                                line: start_line,
                                reason: "a quoted field is never closed",
                            });
                        }
                        Some(b'"') if text.get(cursor + 1) == Some(&b'"') => {
                            owned
                                .get_or_insert_with(|| text[start..cursor].to_vec())
                                .push(b'"');
                            cursor += 2;
                        }
                        Some(b'"') => break cursor,
                        Some(&byte) => {
                            if byte == b'\n' {
                                lines_inside += 1;
                            }
                            if let Some(owned) = owned.as_mut() {
                                owned.push(byte);
                            }
                            cursor += 1;
                        }
                    }
                };
                fields.push(match owned {
                    Some(owned) => Field::Owned(owned),
                    None => Field::Borrowed(&text[start..end]),
                });
                self.line += lines_inside;
                at = end + 1;
                match text.get(at) {
                    Some(&byte) if byte == delimiter => at += 1,
                    Some(b'\r') if text.get(at + 1) == Some(&b'\n') => {
                        self.finish(at + 2);
                        return Ok(fields);
                    }
                    Some(b'\n') => {
                        self.finish(at + 1);
                        return Ok(fields);
                    }
                    None => {
                        self.finish(at);
                        return Ok(fields);
                    }
                    Some(_) => {
                        return Err(BrokenRecord {
                            line: start_line,
                            reason: "text after a quoted field's closing quote",
                        });
                    }
                }
            } else {
                let rest = &text[at..];
                let end = rest
                    .iter()
                    .position(|&b| b == delimiter || b == b'\n')
                    .map_or(text.len(), |offset| at + offset);
                match text.get(end) {
                    Some(&byte) if byte == delimiter && byte != b'\n' => {
                        fields.push(Field::Borrowed(&text[at..end]));
                        at = end + 1;
                    }
                    _ => {
                        fields.push(Field::Borrowed(trim_cr(&text[at..end])));
                        self.finish((end + 1).min(text.len()));
                        return Ok(fields);
                    }
                }
            }
        }
    }

    fn finish(&mut self, next: usize) {
        self.position = next;
        self.line += 1;
    }
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<Record<'a>, BrokenRecord>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.position >= self.text.len() {
                return None;
            }
            let (line, next) = self.line_at(self.position);
            let trimmed = line.trim_ascii();
            if trimmed.is_empty() || trimmed.starts_with(b"#") {
                self.position = next;
                self.line += 1;
                continue;
            }
            let start_line = self.line;
            let Some(delimiter) = self.delimiter else {
                self.position = next;
                self.line += 1;
                return Some(Ok(Record {
                    line: start_line,
                    fields: vec![Field::Borrowed(line)],
                }));
            };
            let position = self.position;
            return Some(match self.split(delimiter) {
                Ok(fields) => Ok(Record {
                    line: start_line,
                    fields,
                }),
                Err(broken) => {
                    // Go on at the next line, so one stray quote costs one line.
                    self.position = self.line_at(position).1;
                    self.line = start_line + 1;
                    Err(broken)
                }
            });
        }
    }
}

fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// The first `limit` records' text, split at line breaks outside quotes, blank and `#`
/// lines left out.
fn sample_records(text: &[u8], limit: usize) -> Vec<&[u8]> {
    let mut sample = Vec::new();
    let mut quoted = false;
    let mut start = 0;
    for (index, &byte) in text.iter().enumerate() {
        if byte == b'"' {
            quoted = !quoted;
        } else if byte == b'\n' && !quoted {
            let line = trim_cr(&text[start..index]).trim_ascii();
            if !line.is_empty() && !line.starts_with(b"#") {
                sample.push(line);
                if sample.len() == limit {
                    return sample;
                }
            }
            start = index + 1;
        }
    }
    let last = trim_cr(&text[start..]).trim_ascii();
    if !last.is_empty() && !last.starts_with(b"#") {
        sample.push(last);
    }
    sample
}

/// Counts `delimiter` outside quotes in one record.
fn count_outside_quotes(record: &[u8], delimiter: u8) -> usize {
    let mut quoted = false;
    record
        .iter()
        .filter(|&&byte| {
            if byte == b'"' {
                quoted = !quoted;
            }
            byte == delimiter && !quoted
        })
        .count()
}

/// The delimiter every sampled record has the same, non-zero number of.
fn detect_delimiter(text: &[u8]) -> Option<u8> {
    let sample = sample_records(text, SAMPLE_LINES);
    if sample.len() < 2 {
        return None;
    }
    DELIMITERS.into_iter().find(|&delimiter| {
        let first = count_outside_quotes(sample[0], delimiter);
        first > 0
            && sample
                .iter()
                .all(|record| count_outside_quotes(record, delimiter) == first)
    })
}

/// Reads a CSV file or a plain list into indicators. See the module documentation.
pub fn import(bytes: &[u8], now: Timestamp, options: &CsvOptions) -> Result<Import, CsvError> {
    if bytes.len() > MAX_INPUT_BYTES {
        return Err(CsvError::TooLarge { len: bytes.len() });
    }
    if let Some(delimiter) = options.delimiter
        && (matches!(delimiter, b'"' | b'\n' | b'\r') || !delimiter.is_ascii())
    {
        return Err(CsvError::BadDelimiter(char::from(delimiter)));
    }
    let text = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    let delimiter = options.delimiter.or_else(|| detect_delimiter(text));
    let mut records = Records::new(text, delimiter).peekable();

    let named = matches!(options.column, Some(Column::Name(_)));
    let has_header = match (options.has_header, &options.column) {
        (Some(false), Some(Column::Name(name))) => return Err(CsvError::NoHeader(name.clone())),
        (Some(has_header), _) => has_header,
        (None, _) if named => true,
        // A plain list has no header: a first line that is no value is refused like any.
        (None, _) if delimiter.is_none() => false,
        (None, _) => match records.peek() {
            Some(Ok(first)) => first.fields.iter().all(|field| is_column_name(field)),
            _ => false,
        },
    };
    let mut import = Import::default();
    let header: Vec<String> = if has_header {
        match records.next() {
            Some(Ok(record)) => record
                .fields
                .iter()
                .map(|field| String::from_utf8_lossy(field).trim().to_ascii_lowercase())
                .collect(),
            Some(Err(broken)) => {
                import.refuse(format!("line {}", broken.line), broken.reason);
                Vec::new()
            }
            None => Vec::new(),
        }
    } else {
        Vec::new()
    };
    let find = |name: &str| header.iter().position(|column| column == name);
    let value_column = match &options.column {
        Some(Column::Index(index)) => *index,
        Some(Column::Name(name)) => {
            find(&name.to_ascii_lowercase()).ok_or_else(|| CsvError::NoSuchColumn {
                name: name.clone(),
                header: header.join(", "),
            })?
        }
        None => VALUE_COLUMNS
            .iter()
            .find_map(|name| find(name))
            .unwrap_or(0),
    };
    let kind_column = find("kind").filter(|_| options.kind.is_none());
    let tlp_column = find("tlp");

    let mut seen: HashSet<Value> = HashSet::new();
    for record in records {
        let record = match record {
            Ok(record) => record,
            Err(broken) => {
                import.report.read += 1;
                import.refuse(format!("line {}", broken.line), broken.reason);
                continue;
            }
        };
        import.report.read += 1;
        let at = format!("line {}", record.line);
        let field = |index: usize, what: &str| -> Result<&str, String> {
            let field = record.fields.get(index).ok_or_else(|| {
                format!(
                    "{} field(s), no {what} column {}",
                    record.fields.len(),
                    index.saturating_add(1)
                )
            })?;
            std::str::from_utf8(field).map_err(|error| {
                format!(
                    "not UTF-8 text (invalid byte at position {} of the {what} field)",
                    error.valid_up_to() + 1
                )
            })
        };
        let parsed = (|| -> Result<(Value, Option<Tlp>), String> {
            let text = undefused(field(value_column, "value")?.trim());
            if text.is_empty() {
                return Err("empty value".to_owned());
            }
            let kind = match kind_column {
                Some(column) => {
                    let name = field(column, "kind")?.trim();
                    Some(name.parse::<Kind>().map_err(|error| error.to_string())?)
                }
                None => options.kind,
            };
            let value = match kind {
                Some(kind) => Value::parse(kind, text),
                None => Value::detect(text),
            }
            .map_err(|invalid| invalid.to_string())?;
            let tlp = match tlp_column {
                Some(column) => {
                    let name = field(column, "tlp")?.trim();
                    if name.is_empty() {
                        None
                    } else {
                        Some(name.parse::<Tlp>().map_err(|error| error.to_string())?)
                    }
                }
                None => None,
            };
            Ok((value, tlp))
        })();
        match parsed {
            Ok((value, tlp)) => {
                if !seen.insert(value.clone()) {
                    import.unused("duplicate");
                    continue;
                }
                import.push(tlp, Item::Indicator(Indicator::new(value, now)));
            }
            Err(reason) => import.refuse(at, reason),
        }
    }
    Ok(import)
}

/// Whether `field` reads as a column name (`value`, `first seen`, `ip_address`) and not
/// as an indicator. Stricter than "not a value", so a first line with a broken value is
/// refused as data rather than skipped as a header.
fn is_column_name(field: &[u8]) -> bool {
    let text = field.trim_ascii();
    text.first().is_some_and(u8::is_ascii_alphabetic)
        && text
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b' ' | b'_' | b'-'))
        && std::str::from_utf8(text).is_ok_and(|text| Value::detect(text).is_err())
}

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

/// The characters that make a spreadsheet read a cell as a formula when the cell starts
/// with one (OWASP, "CSV Injection").
pub const FORMULA_STARTS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// Whether a spreadsheet would evaluate `field` as a formula.
fn is_formula(field: &str) -> bool {
    field.starts_with(FORMULA_STARTS)
}

/// A field as export wrote it, read back: the `'` export put before a formula is taken
/// off, so a value round-trips. Export prefixes any field that is a formula after its
/// leading `'`s (so `'=x` goes out as `''=x`), hence one `'` before such a field is
/// always the one it added.
fn undefused(field: &str) -> &str {
    match field.strip_prefix('\'') {
        Some(rest) if is_formula(rest.trim_start_matches('\'')) => rest,
        _ => field,
    }
}
