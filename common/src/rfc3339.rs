//! Instants as RFC 3339 text in UTC, written straight into the output: a
//! `google.protobuf.Timestamp` in its JSON form, and the log lines' time.
//!
//! prost's `Display` for `Timestamp` goes through `core::fmt` a dozen times per value (padding,
//! each field its own `write!`); with two timestamps per order, that was a fifth of the
//! gateway's CPU streaming orders as NDJSON. This writes the same text, byte for byte (a test
//! holds the two together), from a date computed with integer arithmetic.

/// The seconds of a Timestamp the proto3 JSON mapping can print: 0001-01-01T00:00:00Z to
/// 9999-12-31T23:59:59Z.
pub const JSON_SECONDS: std::ops::RangeInclusive<i64> = -62_135_596_800..=253_402_300_799;

/// Appends `seconds`/`nanos` as `YYYY-MM-DDThh:mm:ss[.fff|.ffffff|.fffffffff]Z`: the fraction
/// in 0, 3, 6 or 9 digits, the fewest that hold it, as the proto3 JSON mapping asks.
///
/// The caller keeps to the JSON range (years 1 to 9999, nanos 0 to 999,999,999).
pub fn timestamp(seconds: i64, nanos: i32, out: &mut Vec<u8>) {
    debug_assert!(JSON_SECONDS.contains(&seconds));
    debug_assert!((0..1_000_000_000).contains(&nanos));
    // Written into a buffer on the stack and appended at once: one capacity check, not one per
    // digit.
    let mut text = *b"0000-00-00T00:00:00.000000000Z";
    text[..19].copy_from_slice(&date_time(seconds));
    let nanos = nanos as u32;
    let fraction = match nanos {
        0 => 0,
        _ if nanos.is_multiple_of(1_000_000) => 3,
        _ if nanos.is_multiple_of(1_000) => 6,
        _ => 9,
    };
    let end = if fraction == 0 {
        19
    } else {
        digits(nanos / 10u32.pow(9 - fraction), &mut text[20..20 + fraction as usize]);
        20 + fraction as usize
    };
    text[end] = b'Z';
    out.extend_from_slice(&text[..=end]);
}

/// `YYYY-MM-DDThh:mm:ss` of `seconds` since the epoch, in UTC (years 1 to 9999; the digits of
/// others are cut to four).
pub fn date_time(seconds: i64) -> [u8; 19] {
    let (year, month, day) = civil_from_days(seconds.div_euclid(86_400));
    let of_day = seconds.rem_euclid(86_400) as u32;
    let mut text = *b"0000-00-00T00:00:00";
    digits(year as u32, &mut text[0..4]);
    digits(month, &mut text[5..7]);
    digits(day, &mut text[8..10]);
    digits(of_day / 3600, &mut text[11..13]);
    digits(of_day / 60 % 60, &mut text[14..16]);
    digits(of_day % 60, &mut text[17..19]);
    text
}

/// `n` in the decimal digits of `slot`, zero-padded (`n` has no more digits than that); two
/// digits per division.
fn digits(mut n: u32, slot: &mut [u8]) {
    let mut end = slot.len();
    while end >= 2 {
        slot[end - 2..end].copy_from_slice(&PAIRS[(n % 100) as usize]);
        n /= 100;
        end -= 2;
    }
    if end == 1 {
        slot[0] = b'0' + (n % 10) as u8;
    }
}

/// "00" to "99".
const PAIRS: [[u8; 2]; 100] = {
    let mut pairs = [[0; 2]; 100];
    let mut i = 0;
    while i < 100 {
        pairs[i] = [b'0' + (i / 10) as u8, b'0' + (i % 10) as u8];
        i += 1;
    }
    pairs
};

/// The proleptic Gregorian (year, month, day) of a count of days since 1970-01-01: Howard
/// Hinnant's `civil_from_days`, over 400-year eras.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153; // March is 0
    let day = (day_of_year - (153 * shifted_month + 2) / 5 + 1) as u32;
    let month = if shifted_month < 10 { shifted_month + 3 } else { shifted_month - 9 } as u32;
    (year_of_era + era * 400 + i64::from(month <= 2), month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(seconds: i64, nanos: i32) -> String {
        let mut out = Vec::new();
        timestamp(seconds, nanos, &mut out);
        String::from_utf8(out).unwrap()
    }

    /// The same text as prost's `Display`, over the whole JSON range (a stride through it, every
    /// edge, leap days and each precision of the fraction).
    #[test]
    fn matches_prosts_display_across_the_json_range() {
        const FIRST: i64 = *JSON_SECONDS.start();
        const LAST: i64 = *JSON_SECONDS.end();
        let edges = [FIRST, FIRST + 1, -86_401, -86_400, -1, 0, 1, 951_782_400, 951_868_799, LAST - 1, LAST];
        let stride = (FIRST..=LAST).step_by(7_654_321);
        for seconds in edges.into_iter().chain(stride) {
            for nanos in [0, 1, 999_999_999, 5_000_000, 120_000, 123_456_789, 100] {
                let expected = prost_types::Timestamp { seconds, nanos }.to_string();
                assert_eq!(text(seconds, nanos), expected, "{seconds}s {nanos}ns");
            }
        }
    }

    #[test]
    fn known_instants() {
        assert_eq!(text(0, 0), "1970-01-01T00:00:00Z");
        assert_eq!(text(951_825_600, 500_000_000), "2000-02-29T12:00:00.500Z");
        assert_eq!(text(-62_135_596_800, 1_000), "0001-01-01T00:00:00.000001Z");
        assert_eq!(text(253_402_300_799, 999_999_999), "9999-12-31T23:59:59.999999999Z");
    }
}
