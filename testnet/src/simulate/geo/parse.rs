//! Reading the capitals and members files: CSV with a fixed header, quoted fields, and an
//! error for anything else that names the file, the 1-based line and the field at fault.

use super::*;

/// Parses a capitals CSV (same header as the bundled one). `source` names the file in
/// errors.
///
/// Fields may be double-quoted, with `""` for a quote inside; a quoted field cannot span
/// lines. Lines may end in `\r\n`; blank lines are skipped. Codes must be unique.
pub(crate) fn parse_capitals(text: &str, source: &str) -> Result<Vec<Capital>, GeoError> {
    // Spreadsheets like to start a CSV with a byte-order mark.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    check_header(header, source)?;

    let mut capitals = Vec::new();
    let mut first_seen: HashMap<String, usize> = HashMap::new();
    let mut last_line = 1;
    for (index, text) in lines.enumerate() {
        let line = index + 2;
        last_line = line;
        if text.trim().is_empty() {
            continue;
        }
        let at = Place {
            file: source,
            line,
            columns: &CAPITAL_COLUMNS,
        };
        let fields = at.split(text)?;
        at.check_count(&fields, CAPITAL_COLUMNS.len())?;
        let capital = parse_capital(&at, &fields)?;
        if let Some(&first_line) = first_seen.get(&capital.code) {
            return Err(GeoError::Duplicate {
                file: source.to_owned(),
                line,
                field: "code".to_owned(),
                value: capital.code,
                first_line,
            });
        }
        first_seen.insert(capital.code.clone(), line);
        capitals.push(capital);
    }
    if capitals.is_empty() {
        return Err(GeoError::NoCapital {
            file: source.to_owned(),
            line: last_line + 1,
        });
    }
    Ok(capitals)
}

/// Parses a members file: which countries the simulated federation's members are in.
///
/// One country per line, `CODE` or `CODE,COUNT` (COUNT ≥ 1 members in that country's
/// capital); blank lines and `#` comments are ignored; codes are case-insensitive. A
/// country may appear on several lines. Returns one capital index (into `capitals`) per
/// member, in file order.
pub(crate) fn parse_members(
    text: &str,
    source: &str,
    capitals: &[Capital],
) -> Result<Vec<usize>, GeoError> {
    let by_code: HashMap<&str, usize> = capitals
        .iter()
        .enumerate()
        .map(|(index, capital)| (capital.code.as_str(), index))
        .collect();
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut members = Vec::new();
    let mut last_line = 0;
    for (index, text) in text.lines().enumerate() {
        let line = index + 1;
        last_line = line;
        // Neither codes nor counts hold a '#', so everything after one is a comment.
        let content = text.split('#').next().unwrap_or_default().trim();
        if content.is_empty() {
            continue;
        }
        let at = Place {
            file: source,
            line,
            columns: &MEMBER_COLUMNS,
        };
        let fields = at.split(content)?;
        if fields.len() > MEMBER_COLUMNS.len() {
            return Err(at.extra_field(MEMBER_COLUMNS.len()));
        }
        // A split line has at least one field; an empty one is refused just below.
        let first = fields.first().map_or("", String::as_str);
        let code = first.trim().to_ascii_uppercase();
        if code.is_empty() {
            return Err(at.empty(0));
        }
        if !is_country_code(&code) {
            return Err(at.invalid(0, first, "a country code (ISO 3166-1 alpha-2, two letters)"));
        }
        let Some(&capital) = by_code.get(code.as_str()) else {
            return Err(GeoError::UnknownCountry {
                file: source.to_owned(),
                line,
                field: MEMBER_COLUMNS[0].to_owned(),
                value: first.trim().to_owned(),
            });
        };
        let count = match fields.get(1) {
            None => 1,
            Some(count) => match count.trim().parse::<usize>() {
                Ok(count) if count >= 1 => count,
                _ => return Err(at.invalid(1, count, "a count of at least 1")),
            },
        };
        if count > MAX_MEMBERS - members.len() {
            return Err(GeoError::TooManyMembers {
                file: source.to_owned(),
                line,
                count,
            });
        }
        members.extend(std::iter::repeat_n(capital, count));
    }
    if members.is_empty() {
        return Err(GeoError::NoMember {
            file: source.to_owned(),
            line: last_line + 1,
        });
    }
    Ok(members)
}

/// Where in which file a line is being read, to name it in errors.
pub(super) struct Place<'a> {
    file: &'a str,
    line: usize,
    columns: &'a [&'a str],
}

impl Place<'_> {
    /// The name of the field at `index`, or its number when the line has too many.
    fn field(&self, index: usize) -> String {
        match self.columns.get(index) {
            Some(name) => (*name).to_owned(),
            None => format!("{} (extra)", index + 1),
        }
    }

    fn columns(&self) -> String {
        self.columns.join(",")
    }

    fn split(&self, text: &str) -> Result<Vec<String>, GeoError> {
        split_fields(text).map_err(|(index, problem)| GeoError::Quoting {
            file: self.file.to_owned(),
            line: self.line,
            field: self.field(index),
            problem,
        })
    }

    fn check_count(&self, fields: &[String], expected: usize) -> Result<(), GeoError> {
        if fields.len() < expected {
            return Err(GeoError::MissingField {
                file: self.file.to_owned(),
                line: self.line,
                field: self.field(fields.len()),
                columns: self.columns(),
                found: fields.len(),
            });
        }
        if fields.len() > expected {
            return Err(self.extra_field(expected));
        }
        Ok(())
    }

    fn extra_field(&self, index: usize) -> GeoError {
        GeoError::ExtraField {
            file: self.file.to_owned(),
            line: self.line,
            field: self.field(index),
            columns: self.columns(),
        }
    }

    fn empty(&self, index: usize) -> GeoError {
        GeoError::Empty {
            file: self.file.to_owned(),
            line: self.line,
            field: self.field(index),
        }
    }

    fn invalid(&self, index: usize, value: &str, expected: &'static str) -> GeoError {
        GeoError::Invalid {
            file: self.file.to_owned(),
            line: self.line,
            field: self.field(index),
            value: value.to_owned(),
            expected,
        }
    }
}

/// Checks a capitals file's header, naming the first column that is not as expected.
pub(super) fn check_header(header: &str, source: &str) -> Result<(), GeoError> {
    let wrong = |index: usize| GeoError::Header {
        file: source.to_owned(),
        line: 1,
        field: CAPITAL_COLUMNS.get(index).map_or_else(
            || format!("{} (extra)", index + 1),
            |name| (*name).to_owned(),
        ),
        found: header.to_owned(),
    };
    let fields = split_fields(header).map_err(|(index, _)| wrong(index))?;
    for (index, expected) in CAPITAL_COLUMNS.iter().enumerate() {
        if fields.get(index).map(|f| f.trim()) != Some(*expected) {
            return Err(wrong(index));
        }
    }
    if fields.len() > CAPITAL_COLUMNS.len() {
        return Err(wrong(CAPITAL_COLUMNS.len()));
    }
    Ok(())
}

/// Reads one data line of a capitals file whose field count is checked.
pub(super) fn parse_capital(at: &Place<'_>, fields: &[String]) -> Result<Capital, GeoError> {
    let code = fields[0].trim();
    if !(is_country_code(code) && code.bytes().all(|b| b.is_ascii_uppercase())) {
        return Err(at.invalid(
            0,
            &fields[0],
            "a country code (ISO 3166-1 alpha-2, two upper-case letters)",
        ));
    }
    let country = fields[1].trim();
    if country.is_empty() {
        return Err(at.empty(1));
    }
    let capital = fields[2].trim();
    if capital.is_empty() {
        return Err(at.empty(2));
    }
    let latitude = parse_degrees(&fields[3], 90.0)
        .ok_or_else(|| at.invalid(3, &fields[3], "a latitude (-90 to 90)"))?;
    let longitude = parse_degrees(&fields[4], 180.0)
        .ok_or_else(|| at.invalid(4, &fields[4], "a longitude (-180 to 180)"))?;
    let continent = Continent::from_code(fields[5].trim()).ok_or_else(|| {
        at.invalid(
            5,
            &fields[5],
            "a continent code (AF, AN, AS, EU, NA, OC, SA)",
        )
    })?;
    Ok(Capital {
        code: code.to_owned(),
        country: country.to_owned(),
        capital: capital.to_owned(),
        latitude,
        longitude,
        continent,
    })
}

/// Decimal degrees within ±`limit`; `None` for anything else, NaN and infinities included.
pub(super) fn parse_degrees(text: &str, limit: f64) -> Option<f64> {
    let degrees: f64 = text.trim().parse().ok()?;
    (degrees.is_finite() && degrees.abs() <= limit).then_some(degrees)
}

/// Two ASCII letters, the shape of an ISO 3166-1 alpha-2 code.
pub(super) fn is_country_code(code: &str) -> bool {
    code.len() == 2 && code.bytes().all(|b| b.is_ascii_alphabetic())
}

/// Splits one CSV line into fields. A field may be double-quoted, with `""` for a quote
/// inside it; a quote elsewhere is refused, since it means the line was quoted wrongly.
/// On error, returns the index of the field at fault and what is wrong.
pub(super) fn split_fields(line: &str) -> Result<Vec<String>, (usize, &'static str)> {
    let mut fields = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    None => {
                        return Err((
                            fields.len(),
                            "a quoted field is not closed (it must end on the same line)",
                        ));
                    }
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                }
            }
            match chars.next() {
                None => {
                    fields.push(field);
                    return Ok(fields);
                }
                Some(',') => fields.push(field),
                Some(_) => {
                    return Err((
                        fields.len(),
                        "text after the closing quote (a quote inside a quoted field is written \"\")",
                    ));
                }
            }
        } else {
            loop {
                match chars.next() {
                    None => {
                        fields.push(field);
                        return Ok(fields);
                    }
                    Some(',') => {
                        fields.push(field);
                        break;
                    }
                    Some('"') => {
                        return Err((
                            fields.len(),
                            "a quote inside an unquoted field (quote the whole field and write the quote as \"\")",
                        ));
                    }
                    Some(c) => field.push(c),
                }
            }
        }
    }
}
