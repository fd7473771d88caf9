//! Facebook's time values: epoch seconds or milliseconds, as numbers or strings,
//! and Graph API ISO times such as `2022-07-12T19:11:07+0000`.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;

/// Below this a Facebook time value is in seconds, otherwise in milliseconds.
const SECONDS_BELOW: i64 = 100_000_000_000;

/// Reads a time value leniently and returns epoch milliseconds.
/// Accepts integers, floats and numeric strings; anything else is `None`.
pub fn epoch_millis(v: &Value) -> Option<i64> {
    let raw = match v {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64))?,
        Value::String(s) => {
            let s = s.trim();
            s.parse::<i64>()
                .ok()
                .or_else(|| s.parse::<f64>().ok().map(|f| f as i64))?
        }
        _ => return None,
    };
    if raw <= 0 {
        return None;
    }
    let ms = if raw < SECONDS_BELOW {
        raw.checked_mul(1000)?
    } else {
        raw
    };
    DateTime::<Utc>::from_timestamp_millis(ms).map(|_| ms)
}

/// Parses a Graph API time (`2022-07-12T19:11:07+0000`, RFC 3339, or an epoch value).
pub fn parse_graph_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%z")
        .or_else(|_| DateTime::parse_from_rfc3339(s))
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| epoch_millis(&Value::String(s.to_owned())).and_then(from_millis))
}

pub fn from_millis(ms: i64) -> Option<DateTime<Utc>> {
    DateTime::<Utc>::from_timestamp_millis(ms)
}

/// The envelope's time format: RFC 3339, UTC, milliseconds, `Z`.
pub fn format_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn seconds_and_milliseconds_are_told_apart_by_magnitude() {
        assert_eq!(epoch_millis(&json!(1697051234567_i64)), Some(1697051234567));
        assert_eq!(epoch_millis(&json!(1520383571)), Some(1520383571000));
        assert_eq!(epoch_millis(&json!("1527459824")), Some(1527459824000));
        assert_eq!(epoch_millis(&json!("1458692752478")), Some(1458692752478));
        assert_eq!(epoch_millis(&json!(1.5e12)), Some(1_500_000_000_000));
    }

    #[test]
    fn junk_times_are_none() {
        for v in [
            json!(null),
            json!("soon"),
            json!(-5),
            json!(0),
            json!({}),
            json!(i64::MAX),
        ] {
            assert_eq!(epoch_millis(&v), None, "{v}");
        }
    }

    #[test]
    fn graph_times_without_a_colon_in_the_offset_parse() {
        let t = parse_graph_time("2022-07-12T19:11:07+0000").unwrap();
        assert_eq!(t.timestamp(), 1657653067);
        assert_eq!(parse_graph_time("2022-07-12T19:11:07Z").unwrap(), t);
        assert_eq!(format_time(t), "2022-07-12T19:11:07.000Z");
    }
}
