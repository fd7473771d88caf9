//! Lenient readers for Facebook's drifting types: ids and numbers as numbers or strings.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// An integer from a JSON number or numeric string.
pub fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A string id from a JSON string or number.
pub fn id_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

pub(crate) fn de_id<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let v = Value::deserialize(d)?;
    id_string(&v).ok_or_else(|| serde::de::Error::custom("id is neither a string nor a number"))
}

pub(crate) fn de_opt_id<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<Value>::deserialize(d)?
        .as_ref()
        .and_then(id_string))
}

pub(crate) fn de_opt_int<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Ok(Option::<Value>::deserialize(d)?.as_ref().and_then(int))
}

/// A Graph time: ISO (`2022-07-12T19:11:07+0000`, RFC 3339) or epoch seconds/ms, string or number.
pub(crate) fn de_opt_time<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<DateTime<Utc>>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        Some(Value::String(s)) => pagesync_schema::fbtime::parse_graph_time(&s),
        Some(v @ Value::Number(_)) => {
            pagesync_schema::fbtime::epoch_millis(&v).and_then(pagesync_schema::fbtime::from_millis)
        }
        _ => None,
    })
}

/// `true`, `"true"`, `1`.
pub(crate) fn truthy(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::String(s) => s.eq_ignore_ascii_case("true") || s == "1",
        Value::Number(n) => n.as_i64() == Some(1),
        _ => false,
    }
}
