//! RFC 3339 timestamps as STIX 2.1 and TAXII 2.1 write them: `2026-11-28T14:00:00.123Z`,
//! always UTC (`Z`), with an optional fraction of a second.
//!
//! The protocol keeps milliseconds, so a finer fraction is cut to the millisecond when read
//! and every timestamp is written with exactly three digits. Dates are checked against the
//! calendar: `2021-02-30` is refused, not rolled over into March.

use threatmesh_protocol::Timestamp;

/// Text that is not an RFC 3339 UTC timestamp, with why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid timestamp {text:?}: {reason}")]
pub struct BadTimestamp {
    /// The text, cut to 40 characters.
    pub text: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

const MILLIS_PER_DAY: u64 = 86_400_000;

/// Writes `time` as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn format(time: Timestamp) -> String {
    let days = time.0 / MILLIS_PER_DAY;
    let in_day = time.0 % MILLIS_PER_DAY;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1000 % 60,
        in_day % 1000
    )
}

/// Reads `YYYY-MM-DDTHH:MM:SS[.fraction]Z` (`t` and `z` accepted too). Years before 1970
/// are refused: the protocol counts from the epoch.
pub fn parse(text: &str) -> Result<Timestamp, BadTimestamp> {
    let bad = |reason| BadTimestamp {
        text: text.chars().take(40).collect(),
        reason,
    };
    let bytes = text.as_bytes();
    if bytes.len() < 20 {
        return Err(bad("too short for YYYY-MM-DDTHH:MM:SSZ"));
    }
    let number = |range: std::ops::Range<usize>| -> Result<u64, BadTimestamp> {
        let digits = &bytes[range];
        if !digits.iter().all(u8::is_ascii_digit) {
            return Err(bad("expected digits in YYYY-MM-DDTHH:MM:SS"));
        }
        Ok(digits
            .iter()
            .fold(0, |total, digit| total * 10 + u64::from(digit - b'0')))
    };
    if bytes[4] != b'-' || bytes[7] != b'-' || !matches!(bytes[10], b'T' | b't') {
        return Err(bad("expected YYYY-MM-DDTHH:MM:SS"));
    }
    if bytes[13] != b':' || bytes[16] != b':' {
        return Err(bad("expected YYYY-MM-DDTHH:MM:SS"));
    }
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    if year < 1970 {
        return Err(bad("year before 1970"));
    }
    if !(1..=12).contains(&month) {
        return Err(bad("month out of range"));
    }
    if day == 0 || day > days_in_month(year, month) {
        return Err(bad("no such day in that month"));
    }
    // 60 is a leap second; it is read as the last millisecond of the minute's 59th second.
    if hour > 23 || minute > 59 || second > 60 {
        return Err(bad("time of day out of range"));
    }
    let rest = &bytes[19..];
    let (fraction, zone) = match rest.first() {
        Some(b'.') => {
            let digits = rest[1..].iter().take_while(|b| b.is_ascii_digit()).count();
            if digits == 0 {
                return Err(bad("a '.' with no fraction digits"));
            }
            (&rest[1..=digits], &rest[1 + digits..])
        }
        _ => (&rest[..0], rest),
    };
    if !matches!(zone, [b'Z'] | [b'z']) {
        return Err(bad("must end in Z (UTC)"));
    }
    let millis = fraction
        .iter()
        .chain(std::iter::repeat(&b'0'))
        .take(3)
        .fold(0, |total, digit| total * 10 + u64::from(digit - b'0'));
    let (second, millis) = if second == 60 {
        (59, 999)
    } else {
        (second, millis)
    };
    let days = days_from_civil(year, month, day);
    Ok(Timestamp(
        days * MILLIS_PER_DAY + ((hour * 60 + minute) * 60 + second) * 1000 + millis,
    ))
}

fn is_leap(year: u64) -> bool {
    year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400))
}

fn days_in_month(year: u64, month: u64) -> u64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a date in or after 1970. Counts whole 400-year eras from
/// 0000-03-01, which puts the leap day at the end of each counted year.
fn days_from_civil(year: u64, month: u64, day: u64) -> u64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year / 400;
    let year_of_era = year % 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    // 719,468 days lie between 0000-03-01 and 1970-01-01.
    era * 146_097 + day_of_era - 719_468
}

/// The date `days` after 1970-01-01: the inverse of [`days_from_civil`].
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let days = days + 719_468;
    let era = days / 146_097;
    let day_of_era = days % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
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
        assert_eq!(
            parse("2016-12-31T23:59:60Z"),
            Ok(Timestamp(1_483_228_799_999))
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
            "2021-01-01T00:00:00+02:00",
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
            let time = Timestamp(day * MILLIS_PER_DAY + 45_296_789);
            assert_eq!(parse(&format(time)), Ok(time), "day {day}");
        }
    }
}
