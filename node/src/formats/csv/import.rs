//! CSV and plain lists in: the header found or not, the value, kind and TLP columns
//! chosen, then each record read into an indicator, a duplicate or a refusal.

use std::collections::HashSet;
use std::iter::Peekable;

use threatmesh_protocol::bundle::Tlp;
use threatmesh_protocol::item::{Indicator, Item};
use threatmesh_protocol::{Kind, Timestamp, Value};

use super::records::{BrokenRecord, Record, Records, detect_delimiter};
use super::{Column, CsvError, CsvOptions, MAX_INPUT_BYTES, VALUE_COLUMNS, undefused};
use crate::formats::Import;

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

    let has_header = has_header(options, delimiter, &mut records)?;
    let mut import = Import::default();
    let header = if has_header {
        read_header(records.next(), &mut import)
    } else {
        Vec::new()
    };
    let columns = Columns::find(&header, options)?;

    let mut seen: HashSet<Value> = HashSet::new();
    for record in records {
        import.report.read += 1;
        let record = match record {
            Ok(record) => record,
            Err(broken) => {
                import.refuse(format!("line {}", broken.line), broken.reason);
                continue;
            }
        };
        match columns.read(&record, options.kind) {
            Ok((value, tlp)) => {
                if !seen.insert(value.clone()) {
                    import.unused("duplicate");
                    continue;
                }
                import.push(tlp, Item::Indicator(Indicator::new(value, now)));
            }
            Err(reason) => import.refuse(format!("line {}", record.line), reason),
        }
    }
    Ok(import)
}

/// Whether the first record is a header: as the options say, else when a column is chosen
/// by name, else when every field of the first record reads as a column name (a plain
/// list has none).
fn has_header(
    options: &CsvOptions,
    delimiter: Option<u8>,
    records: &mut Peekable<Records<'_>>,
) -> Result<bool, CsvError> {
    let named = matches!(options.column, Some(Column::Name(_)));
    Ok(match (options.has_header, &options.column) {
        (Some(false), Some(Column::Name(name))) => return Err(CsvError::NoHeader(name.clone())),
        (Some(has_header), _) => has_header,
        (None, _) if named => true,
        // A plain list has no header: a first line that is no value is refused like any.
        (None, _) if delimiter.is_none() => false,
        (None, _) => match records.peek() {
            Some(Ok(first)) => first.fields.iter().all(|field| is_column_name(field)),
            _ => false,
        },
    })
}

/// The header's column names, trimmed and in lower case; a header that cannot be split
/// is refused in the report and names no column.
fn read_header(
    first: Option<Result<Record<'_>, BrokenRecord>>,
    import: &mut Import,
) -> Vec<String> {
    match first {
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
}

/// Where a record's fields are: its value, and its kind and TLP when the header has those
/// columns.
struct Columns {
    value: usize,
    /// The header's `kind` column, unless the options fix every value's kind.
    kind: Option<usize>,
    tlp: Option<usize>,
}

impl Columns {
    /// The columns of `header` (empty without one) as `options` choose them.
    fn find(header: &[String], options: &CsvOptions) -> Result<Columns, CsvError> {
        let find = |name: &str| header.iter().position(|column| column == name);
        let value = match &options.column {
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
        Ok(Columns {
            value,
            kind: find("kind").filter(|_| options.kind.is_none()),
            tlp: find("tlp"),
        })
    }

    /// The value of `record`, of the kind its `kind` column names, else `kind`, else the
    /// one detected; with the TLP its `tlp` column names, if any. The error says why not.
    fn read(
        &self,
        record: &Record<'_>,
        kind: Option<Kind>,
    ) -> Result<(Value, Option<Tlp>), String> {
        let text = undefused(field(record, self.value, "value")?.trim());
        if text.is_empty() {
            return Err("empty value".to_owned());
        }
        let kind = match self.kind {
            Some(column) => {
                let name = field(record, column, "kind")?.trim();
                Some(name.parse::<Kind>().map_err(|error| error.to_string())?)
            }
            None => kind,
        };
        let value = match kind {
            Some(kind) => Value::parse(kind, text),
            None => Value::detect(text),
        }
        .map_err(|invalid| invalid.to_string())?;
        let tlp = match self.tlp {
            Some(column) => {
                let name = field(record, column, "tlp")?.trim();
                if name.is_empty() {
                    None
                } else {
                    Some(name.parse::<Tlp>().map_err(|error| error.to_string())?)
                }
            }
            None => None,
        };
        Ok((value, tlp))
    }
}

/// Field `index` of `record` as text; `what` names the column in the error.
fn field<'r>(record: &'r Record<'_>, index: usize, what: &str) -> Result<&'r str, String> {
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
