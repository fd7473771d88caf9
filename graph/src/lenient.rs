//! serde adapters for the Graph API's drifting types (ids and numbers as numbers
//! or strings), over the field readers every crate shares
//! (`pagesync_schema::lenient::field`).

use chrono::{DateTime, Utc};
use pagesync_schema::fbtime;
use pagesync_schema::lenient::field::{id_string, int_or_truncated};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

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
    Ok(Option::<Value>::deserialize(d)?
        .as_ref()
        .and_then(int_or_truncated))
}

/// A Graph time: ISO (`2022-07-12T19:11:07+0000`, RFC 3339) or epoch seconds/ms, string or number.
pub(crate) fn de_opt_time<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<DateTime<Utc>>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        Some(Value::String(s)) => fbtime::parse_graph_time(&s),
        Some(v @ Value::Number(_)) => fbtime::epoch_millis(&v).and_then(fbtime::from_millis),
        _ => None,
    })
}
