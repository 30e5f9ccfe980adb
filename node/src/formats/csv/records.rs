//! Records out of text: RFC 4180 splitting (quoted fields may hold delimiters, doubled
//! quotes and line breaks), blank and `#` lines skipped, a broken record costing only
//! itself, and the delimiter detected from a sample.

use super::{DELIMITERS, SAMPLE_LINES};

/// One record: its fields as bytes, and the line it starts on (from 1).
#[derive(Debug)]
pub(super) struct Record<'a> {
    pub(super) line: usize,
    pub(super) fields: Vec<Field<'a>>,
}

/// A field: borrowed when unquoted or quoted without doubled quotes.
pub(super) type Field<'a> = std::borrow::Cow<'a, [u8]>;

/// A record that could not be split.
#[derive(Debug)]
pub(super) struct BrokenRecord {
    pub(super) line: usize,
    pub(super) reason: &'static str,
}

/// Splits `text` into records, RFC 4180 style, skipping blank and `#` lines. With
/// `delimiter` `None` every line is one field, quotes included.
pub(super) struct Records<'a> {
    text: &'a [u8],
    position: usize,
    line: usize,
    delimiter: Option<u8>,
}

impl<'a> Records<'a> {
    pub(super) fn new(text: &'a [u8], delimiter: Option<u8>) -> Records<'a> {
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
pub(super) fn detect_delimiter(text: &[u8]) -> Option<u8> {
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
