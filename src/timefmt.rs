//! RFC 3339 timestamps in UTC ("2026-11-24T10:00:00Z") from Unix seconds,
//! without a date crate. Pure: the caller reads the clock.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch, now (0 if the clock is before 1970).
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Formats Unix seconds as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Milliseconds since the Unix epoch, now (0 if the clock is before 1970).
pub fn unix_now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Formats Unix milliseconds as `YYYY-MM-DDTHH:MM:SS.mmmZ` (IRCv3
/// server-time).
pub fn rfc3339_ms(ms: u64) -> String {
    let secs = rfc3339(ms / 1000);
    format!("{}.{:03}Z", &secs[..secs.len() - 1], ms % 1000)
}

/// Reads `YYYY-MM-DDTHH:MM:SSZ` or with a fraction of a second
/// (`...:SS.123Z`, as IRCv3 server-time and CHATHISTORY write it) into
/// Unix milliseconds (digits past the millisecond are dropped); None for
/// anything else.
pub fn parse_rfc3339_ms(s: &str) -> Option<u64> {
    let Some((whole, fraction)) = s.split_once('.') else {
        return parse_rfc3339(s).map(|secs| secs * 1000);
    };
    let digits = fraction.strip_suffix('Z')?;
    if digits.is_empty() || digits.len() > 9 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let ms: u64 = format!("{digits:0<3}")[..3].parse().ok()?;
    Some(parse_rfc3339(&format!("{whole}Z"))? * 1000 + ms)
}

/// Reads `YYYY-MM-DDTHH:MM:SSZ` (as [`rfc3339`] writes it) back into Unix
/// seconds; None for anything else.
pub fn parse_rfc3339(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() != 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[19] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> { s.get(r)?.parse().ok() };
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    let days = days_from_civil(y, m as u32, d as u32);
    u64::try_from(days * 86_400 + hh * 3600 + mm * 60 + ss).ok()
}

/// The inverse of [`civil_from_days`].
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Howard Hinnant's days-to-civil algorithm (proleptic Gregorian calendar).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_514_400), "2026-11-24T10:00:00Z");
        assert_eq!(rfc3339(4_107_542_399), "2100-02-28T23:59:59Z");
    }

    #[test]
    fn parse_is_the_inverse() {
        for secs in [0, 951_782_400, 1_795_514_400, 4_107_542_399, 1_234_567_890] {
            assert_eq!(parse_rfc3339(&rfc3339(secs)), Some(secs));
        }
        assert_eq!(parse_rfc3339("2026-11-24 10:00:00Z"), None);
        assert_eq!(parse_rfc3339("2026-13-24T10:00:00Z"), None);
        assert_eq!(parse_rfc3339("soon"), None);
    }

    #[test]
    fn milliseconds_both_ways() {
        assert_eq!(rfc3339_ms(1_795_514_400_042), "2026-11-24T10:00:00.042Z");
        for ms in [0, 1_795_514_400_042, 4_107_542_399_999] {
            assert_eq!(parse_rfc3339_ms(&rfc3339_ms(ms)), Some(ms));
        }
        assert_eq!(
            parse_rfc3339_ms("2026-11-24T10:00:00Z"),
            Some(1_795_514_400_000)
        );
        assert_eq!(
            parse_rfc3339_ms("2026-11-24T10:00:00.5Z"),
            Some(1_795_514_400_500)
        );
        assert_eq!(
            parse_rfc3339_ms("2026-11-24T10:00:00.123456Z"),
            Some(1_795_514_400_123)
        );
        assert!(parse_rfc3339_ms("2262-01-01T00:00:00.000Z").is_some());
        assert_eq!(parse_rfc3339_ms("2026-11-24T10:00:00.Z"), None);
        assert_eq!(parse_rfc3339_ms("2026-11-24T10:00:00.12x4Z"), None);
        assert_eq!(parse_rfc3339_ms("2026-11-24T10:00:00.123"), None);
    }
}
