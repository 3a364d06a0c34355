//! Human-readable sizes and durations as docker prints them (go-units).

const DECIMAL: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
const BINARY: [&str; 9] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"];

/// `units.HumanSizeWithPrecision`: decimal units, `precision` significant digits.
pub fn human_size_prec(size: f64, precision: usize) -> String {
    let (v, unit) = scale(size, 1000.0, &DECIMAL);
    format!("{}{}", fmt_g(v, precision), unit)
}

/// `units.HumanSize`: four significant digits.
pub fn human_size(size: f64) -> String {
    human_size_prec(size, 4)
}

/// `units.BytesSize`: binary units, "%.4g".
pub fn bytes_size(size: f64) -> String {
    let (v, unit) = scale(size, 1024.0, &BINARY);
    format!("{}{}", fmt_g(v, 4), unit)
}

fn scale(mut size: f64, base: f64, units: &[&'static str]) -> (f64, &'static str) {
    let mut i = 0;
    while size >= base && i + 1 < units.len() {
        size /= base;
        i += 1;
    }
    (size, units[i])
}

/// Go's `%.<prec>g`: shortest of fixed or exponent form, trailing zeros removed.
pub fn fmt_g(v: f64, prec: usize) -> String {
    if v == 0.0 {
        return "0".to_string();
    }
    let prec = prec.max(1);
    let e = format!("{:.*e}", prec - 1, v);
    let (mant, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if exp < -4 || exp >= prec as i32 {
        let mant = trim_zeros(mant);
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{mant}e{sign}{:02}", exp.abs());
    }
    let decimals = (prec as i32 - 1 - exp).max(0) as usize;
    trim_zeros(&format!("{v:.decimals$}")).to_string()
}

fn trim_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

/// `units.HumanDuration`.
pub fn human_duration(secs: f64) -> String {
    let seconds = secs as i64;
    if seconds < 1 {
        return "Less than a second".into();
    }
    if seconds == 1 {
        return "1 second".into();
    }
    if seconds < 60 {
        return format!("{seconds} seconds");
    }
    let minutes = (secs / 60.0) as i64;
    if minutes == 1 {
        return "About a minute".into();
    }
    if minutes < 60 {
        return format!("{minutes} minutes");
    }
    let hours = (secs / 3600.0 + 0.5) as i64;
    if hours == 1 {
        return "About an hour".into();
    }
    if hours < 48 {
        return format!("{hours} hours");
    }
    if hours < 24 * 7 * 2 {
        return format!("{} days", hours / 24);
    }
    if hours < 24 * 30 * 2 {
        return format!("{} weeks", hours / 24 / 7);
    }
    if hours < 24 * 365 * 2 {
        return format!("{} months", hours / 24 / 30);
    }
    format!("{} years", (secs / 3600.0 / 24.0 / 365.0) as i64)
}

pub fn now_secs() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// "2 minutes ago" for a unix timestamp.
pub fn ago(unix: i64) -> String {
    format!("{} ago", human_duration(now_secs() - unix as f64))
}

/// Parses a size as docker's flags take it ("512m", "1g", "1024", "1.5GB"): binary multiples.
pub fn parse_ram(s: &str) -> Option<i64> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().ok()?;
    let mult: f64 = match unit
        .to_ascii_lowercase()
        .trim_end_matches('b')
        .trim_end_matches('i')
    {
        "" => 1.0,
        "k" => 1024.0,
        "m" => 1024.0 * 1024.0,
        "g" => 1024.0 * 1024.0 * 1024.0,
        "t" => 1024f64.powi(4),
        "p" => 1024f64.powi(5),
        _ => return None,
    };
    Some((n * mult) as i64)
}

/// Parses a Go duration ("10s", "1h30m", "500ms") into seconds.
pub fn parse_go_duration(s: &str) -> Option<f64> {
    let mut total = 0.0;
    let mut rest = s.trim();
    if rest.is_empty() {
        return None;
    }
    if rest == "0" {
        return Some(0.0);
    }
    while !rest.is_empty() {
        let n_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let n: f64 = rest[..n_end].parse().ok()?;
        rest = &rest[n_end..];
        let u_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let mult = match &rest[..u_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += n * mult;
        rest = &rest[u_end..];
    }
    Some(total)
}

/// Splits a unix time into UTC calendar fields (proleptic Gregorian).
pub fn civil(unix: i64) -> (i64, u32, u32, u32, u32, u32) {
    let days = unix.div_euclid(86400);
    let secs = unix.rem_euclid(86400);
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        y,
        m,
        d,
        (secs / 3600) as u32,
        (secs / 60 % 60) as u32,
        (secs % 60) as u32,
    )
}

/// RFC 3339 in UTC with nanoseconds always shown (docker's RFC3339NanoFixed).
pub fn rfc3339_nano_fixed(unix_nanos: i64) -> String {
    let secs = unix_nanos.div_euclid(1_000_000_000);
    let nanos = unix_nanos.rem_euclid(1_000_000_000);
    let (y, mo, d, h, mi, s) = civil(secs);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{nanos:09}Z")
}

/// Go's `time.Time.String()` layout in UTC, as `docker ps --format {{.CreatedAt}}` shows it.
pub fn go_time_string(unix: i64) -> String {
    let (y, mo, d, h, mi, s) = civil(unix);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02} +0000 UTC")
}

/// Go's `time.ANSIC` layout in UTC ("Thu May  7 21:09:36 2026"), as docker shows build times.
pub fn ansic(unix: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (y, mo, d, h, mi, s) = civil(unix);
    let wd = DAYS[unix.div_euclid(86400).rem_euclid(7) as usize];
    format!(
        "{wd} {} {d:>2} {h:02}:{mi:02}:{s:02} {y}",
        MONTHS[(mo - 1) as usize]
    )
}

/// Parses an RFC 3339 timestamp ("2026-11-29T08:13:07.123Z") into unix seconds.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 19 {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> { s.get(r)?.parse().ok() };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut rest = &s[19..];
    if let Some(r) = rest.strip_prefix('.') {
        let end = r.find(|c: char| !c.is_ascii_digit()).unwrap_or(r.len());
        rest = &r[end..];
    }
    let offset = match rest {
        "" | "Z" | "z" => 0,
        o if o.len() >= 6 => {
            let sign = if o.starts_with('-') { -1 } else { 1 };
            sign * (o.get(1..3)?.parse::<i64>().ok()? * 3600
                + o.get(4..6)?.parse::<i64>().ok()? * 60)
        }
        _ => return None,
    };
    let yy = if mo <= 2 { y - 1 } else { y };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    Some(days * 86400 + h * 3600 + mi * 60 + sec - offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_as_go_units() {
        assert_eq!(human_size_prec(1_990_000.0, 3), "1.99MB");
        assert_eq!(human_size(0.0), "0B");
        assert_eq!(human_size(999.0), "999B");
        assert_eq!(human_size(1000.0), "1kB");
        assert_eq!(human_size(1_234_567.0), "1.235MB");
        assert_eq!(human_size_prec(4_264_961.0, 3), "4.26MB");
        assert_eq!(bytes_size(1024.0 * 1024.0 * 1.5), "1.5MiB");
        assert_eq!(fmt_g(123456.0, 3), "1.23e+05");
    }

    #[test]
    fn durations_as_go_units() {
        assert_eq!(human_duration(0.5), "Less than a second");
        assert_eq!(human_duration(3.0), "3 seconds");
        assert_eq!(human_duration(65.0), "About a minute");
        assert_eq!(human_duration(150.0), "2 minutes");
        assert_eq!(human_duration(3600.0), "About an hour");
        assert_eq!(human_duration(86400.0 * 3.0), "3 days");
        assert_eq!(human_duration(56.9 * 365.0 * 86400.0), "56 years");
    }

    #[test]
    fn parse_flags() {
        assert_eq!(parse_ram("512m"), Some(512 * 1024 * 1024));
        assert_eq!(parse_ram("1g"), Some(1 << 30));
        assert_eq!(parse_ram("100"), Some(100));
        assert_eq!(parse_go_duration("1h30m"), Some(5400.0));
        assert_eq!(parse_go_duration("10x"), None);
    }

    #[test]
    fn times_round_trip() {
        assert_eq!(rfc3339_nano_fixed(0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(parse_rfc3339("2026-11-29T08:13:07.5Z"), Some(1795939987));
        assert_eq!(go_time_string(1795939987), "2026-11-29 08:13:07 +0000 UTC");
        assert_eq!(parse_rfc3339("1970-01-01T01:00:00+01:00"), Some(0));
        assert_eq!(
            ansic(parse_rfc3339("2026-05-07T21:09:36.000000000+00:00").unwrap()),
            "Thu May  7 21:09:36 2026"
        );
    }
}
