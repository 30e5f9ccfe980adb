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
//! - each value's kind is detected ([`Value::detect`](threatmesh_protocol::Value::detect), defanged forms accepted).
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
//!
//! # Layout
//!
//! `records` splits text into records (RFC 4180) and detects the delimiter; `import`
//! reads records into indicators; `export` writes rows.

mod export;
mod import;
mod records;

use threatmesh_protocol::Kind;

pub(crate) use export::write_row;
pub use export::{export, write_entry, write_entry_marked, write_header};
pub use import::import;

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
