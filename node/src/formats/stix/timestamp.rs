//! STIX timestamps (RFC 3339, UTC, `2016-05-12T08:17:27.000Z`) to and from the protocol's
//! milliseconds since the epoch.
//!
//! Written out here rather than taken from a date crate: export formats one or two
//! timestamps per object at >100k objects/s, and import must explain exactly why a
//! timestamp is impossible (`2021-02-30`). Dates use the proleptic Gregorian calendar's
//! day count (days since 1970-01-01, eras of 400 years).

use threatmesh_protocol::Timestamp;

/// The latest instant a four-digit year can spell, 9999-12-31T23:59:59.999Z. Later
/// timestamps (a `valid_until` of "forever") are written as this.
pub(crate) const LATEST_MILLIS: u64 = 253_402_300_799_999;

const MILLIS_PER_DAY: u64 = 86_400_000;

/// Appends `at` as `YYYY-MM-DDTHH:MM:SS.mmmZ`, clamped to [`LATEST_MILLIS`].
pub(crate) fn write(at: Timestamp, out: &mut String) {
    let millis = at.as_millis().min(LATEST_MILLIS);
    let days = millis / MILLIS_PER_DAY;
    let in_day = millis % MILLIS_PER_DAY;
    let (year, month, day) = civil_from_days(days);
    let digits = |out: &mut String, value: u64, width: usize| {
        let mut buffer = [b'0'; 4];
        let mut rest = value;
        for slot in buffer[..width].iter_mut().rev() {
            *slot = b'0' + (rest % 10) as u8;
            rest /= 10;
        }
        for &byte in &buffer[..width] {
            out.push(char::from(byte));
        }
    };
    digits(out, year, 4);
    out.push('-');
    digits(out, month, 2);
    out.push('-');
    digits(out, day, 2);
    out.push('T');
    digits(out, in_day / 3_600_000, 2);
    out.push(':');
    digits(out, in_day / 60_000 % 60, 2);
    out.push(':');
    digits(out, in_day / 1000 % 60, 2);
    out.push('.');
    digits(out, in_day % 1000, 3);
    out.push('Z');
}

/// `at` as a STIX timestamp.
pub(crate) fn format(at: Timestamp) -> String {
    let mut out = String::with_capacity(24);
    write(at, &mut out);
    out
}

/// Parses an RFC 3339 timestamp. STIX asks for UTC with `Z`; an explicit offset
/// (`+02:00`) is converted. Digits beyond milliseconds are cut, not rounded, so a time
/// never moves past the instant it names. The reason of an error says what is wrong.
pub(crate) fn parse(text: &str) -> Result<Timestamp, String> {
    let bytes = text.as_bytes();
    let fail = |why: &str| Err(format!("{:?} is not a valid timestamp: {why}", clip(text)));
    let number = |range: std::ops::Range<usize>| -> Option<u64> {
        let digits = bytes.get(range)?;
        digits.iter().try_fold(0u64, |acc, &b| {
            b.is_ascii_digit().then(|| acc * 10 + u64::from(b - b'0'))
        })
    };
    let separators = [(4, b'-'), (7, b'-'), (13, b':'), (16, b':')];
    let shape = bytes.len() >= 19
        && separators.iter().all(|&(at, c)| bytes[at] == c)
        && matches!(bytes[10], b'T' | b't');
    let fields = (
        number(0..4),
        number(5..7),
        number(8..10),
        number(11..13),
        number(14..16),
        number(17..19),
    );
    let (Some(year), Some(month), Some(day), Some(hour), Some(minute), Some(second)) = fields
    else {
        return fail("expected YYYY-MM-DDTHH:MM:SS[.sss]Z");
    };
    if !shape {
        return fail("expected YYYY-MM-DDTHH:MM:SS[.sss]Z");
    }
    if year < 1970 {
        return fail("years before 1970 cannot be represented");
    }
    if !(1..=12).contains(&month) {
        return fail(&format!("there is no month {month}"));
    }
    let month_days = days_in_month(year, month);
    if day == 0 || day > month_days {
        return fail(&format!(
            "{} {year} has {month_days} days",
            MONTH_NAMES[(month - 1) as usize]
        ));
    }
    if hour > 23 || minute > 59 {
        return fail(&format!("there is no time {hour:02}:{minute:02}"));
    }
    if second > 59 {
        return fail("second 60 (a leap second) cannot be represented");
    }
    let mut at = 19;
    let mut millis = 0;
    if bytes.get(at) == Some(&b'.') {
        at += 1;
        let start = at;
        while at < bytes.len() && bytes[at].is_ascii_digit() {
            if at - start < 3 {
                millis = millis * 10 + u64::from(bytes[at] - b'0');
            }
            at += 1;
        }
        let count = at - start;
        if count == 0 {
            return fail("no digits after '.'");
        }
        for _ in count..3 {
            millis *= 10;
        }
    }
    let offset_minutes: i64 = match &bytes[at..] {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let (Some(hours), Some(minutes)) = (number(at + 1..at + 3), number(at + 4..at + 6))
            else {
                return fail("bad UTC offset");
            };
            if hours > 23 || minutes > 59 {
                return fail("bad UTC offset");
            }
            let minutes = (hours * 60 + minutes) as i64;
            if *sign == b'-' { -minutes } else { minutes }
        }
        [] => return fail("no time zone (STIX timestamps end in Z)"),
        _ => return fail("expected Z (UTC) after the time"),
    };
    let days = days_from_civil(year, month, day);
    let local = days * MILLIS_PER_DAY + ((hour * 60 + minute) * 60 + second) * 1000 + millis;
    let utc = i128::from(local) - i128::from(offset_minutes) * 60_000;
    match u64::try_from(utc) {
        Ok(millis) => Ok(Timestamp(millis)),
        Err(_) => fail("before 1970-01-01T00:00:00Z, which cannot be represented"),
    }
}

const MONTH_NAMES: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

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

/// Days since 1970-01-01 of a date from 1970 on. Counts in eras of 400 years from
/// 0000-03-01, so that the leap day falls at the end of a counted year.
fn days_from_civil(year: u64, month: u64, day: u64) -> u64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year / 400;
    let year_of_era = year % 400;
    let month_from_march = if month > 2 { month - 3 } else { month + 9 };
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    // 719,468 days from 0000-03-01 to 1970-01-01.
    era * 146_097 + day_of_era - 719_468
}

/// The date `days` after 1970-01-01: the inverse of [`days_from_civil`].
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let shifted = days + 719_468;
    let era = shifted / 146_097;
    let day_of_era = shifted % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

fn clip(text: &str) -> String {
    text.chars().take(40).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_instants_format_and_parse() {
        let cases = [
            (0, "1970-01-01T00:00:00.000Z"),
            (951_782_400_000, "2000-02-29T00:00:00.000Z"),
            (1_399_539_600_000, "2014-05-08T09:00:00.000Z"),
            (1_414_770_733_127, "2014-10-31T15:52:13.127Z"),
            (LATEST_MILLIS, "9999-12-31T23:59:59.999Z"),
        ];
        for (millis, text) in cases {
            assert_eq!(format(Timestamp(millis)), text);
            assert_eq!(parse(text), Ok(Timestamp(millis)), "{text}");
        }
        assert_eq!(format(Timestamp(u64::MAX)), "9999-12-31T23:59:59.999Z");
    }

    #[test]
    fn fractions_and_offsets_are_read() {
        let at = Timestamp(1_414_770_733_127);
        assert_eq!(parse("2014-10-31T15:52:13.127931Z"), Ok(at));
        assert_eq!(parse("2014-10-31T17:52:13.127+02:00"), Ok(at));
        assert_eq!(
            parse("2014-02-20T09:00:00Z"),
            Ok(Timestamp(1_392_886_800_000))
        );
        assert_eq!(
            parse("2014-02-20T09:00:00.5Z"),
            Ok(Timestamp(1_392_886_800_500))
        );
    }

    #[test]
    fn impossible_timestamps_say_why() {
        let cases = [
            ("2021-02-30T00:00:00Z", "February 2021 has 28 days"),
            ("2019-02-29T00:00:00Z", "February 2019 has 28 days"),
            ("2021-13-01T00:00:00Z", "there is no month 13"),
            ("2021-04-31T00:00:00Z", "April 2021 has 30 days"),
            ("2021-01-01T24:00:00Z", "there is no time 24:00"),
            ("2021-01-01T00:00:60Z", "leap second"),
            ("2021-01-01T00:00:00", "no time zone"),
            ("2021-01-01T00:00:00.Z", "no digits after"),
            ("1969-12-31T23:59:59Z", "before 1970"),
            ("yesterday", "expected YYYY-MM-DD"),
            ("", "expected YYYY-MM-DD"),
            ("2021-01-01 00:00:00Z", "expected YYYY-MM-DD"),
        ];
        for (text, reason) in cases {
            match parse(text) {
                Ok(at) => panic!("{text:?} parsed as {at}"),
                Err(error) => assert!(error.contains(reason), "{text:?}: {error}"),
            }
        }
        assert!(parse("2020-02-29T00:00:00Z").is_ok());
    }

    proptest! {
        #[test]
        fn every_millisecond_round_trips(millis in 0..=LATEST_MILLIS) {
            prop_assert_eq!(parse(&format(Timestamp(millis))), Ok(Timestamp(millis)));
        }

        #[test]
        fn parse_never_panics(text in "\\PC{0,40}|[0-9T:.Zz+-]{0,30}") {
            let _ = parse(&text);
        }
    }
}
