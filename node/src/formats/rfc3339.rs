//! RFC 3339 timestamps as STIX 2.1 and TAXII 2.1 write them: `2026-11-28T14:00:00.123Z`.
//!
//! The one implementation is the STIX exporter's (`formats::stix::timestamp`), written for
//! speed and exact errors; this is its face for the rest of the node (the TAXII server's
//! `added_after`, `date_added` and versions). The protocol keeps milliseconds, so a finer
//! fraction is cut when read and every timestamp is written with three digits. Dates are
//! checked against the calendar: `2021-02-30` is refused, not rolled into March.

use threatmesh_protocol::Timestamp;

/// Text that is not an RFC 3339 timestamp, with why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct BadTimestamp {
    /// What is wrong with it, naming the text.
    pub reason: String,
}

/// Writes `time` as `YYYY-MM-DDTHH:MM:SS.mmmZ` (times past year 9999 as its last instant).
pub fn format(time: Timestamp) -> String {
    super::stix::timestamp::format(time)
}

/// Reads an RFC 3339 timestamp (`Z`, or an offset, which is converted to UTC).
pub fn parse(text: &str) -> Result<Timestamp, BadTimestamp> {
    super::stix::timestamp::parse(text).map_err(|reason| BadTimestamp { reason })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_instants() {
        assert_eq!(format(Timestamp(0)), "1970-01-01T00:00:00.000Z");
        // 2000-02-29 (a leap day in a year divisible by 400) and a millisecond part.
        assert_eq!(
            format(Timestamp(951_782_400_123)),
            "2000-02-29T00:00:00.123Z"
        );
        assert_eq!(
            parse("2016-04-06T20:03:48.000Z"),
            Ok(Timestamp(1_459_973_028_000))
        );
        assert_eq!(
            parse("2016-04-06T20:03:48Z"),
            Ok(Timestamp(1_459_973_028_000))
        );
        // Microseconds are cut to milliseconds.
        assert_eq!(
            parse("2016-04-06T20:03:48.123456Z"),
            Ok(Timestamp(1_459_973_028_123))
        );
        // An offset is converted to UTC.
        assert_eq!(
            parse("2016-04-06T22:03:48.000+02:00"),
            Ok(Timestamp(1_459_973_028_000))
        );
    }

    #[test]
    fn impossible_dates_are_refused() {
        for text in [
            "2021-02-29T00:00:00Z",
            "2021-02-30T00:00:00Z",
            "2100-02-29T00:00:00Z",
            "2021-13-01T00:00:00Z",
            "2021-04-31T00:00:00Z",
            "2021-01-01T24:00:00Z",
            "2021-01-01T00:00:00",
            "2021-01-01T00:00:00.Z",
            "1969-12-31T23:59:59Z",
            "2021-01-01 00:00:00Z",
            "२०२१-01-01T00:00:00Z",
            "",
        ] {
            assert!(parse(text).is_err(), "{text:?} was accepted");
        }
        assert!(parse("2024-02-29T00:00:00Z").is_ok());
    }

    #[test]
    fn every_day_round_trips() {
        // Every day from 1970 to past 2400, at a time with every field non-zero.
        for day in 0..160_000u64 {
            let time = Timestamp(day * 86_400_000 + 45_296_789);
            assert_eq!(parse(&format(time)), Ok(time), "day {day}");
        }
    }
}
