//! Reading single fields of Facebook JSON whose type drifts (ids and numbers sent
//! as numbers or strings, flags as booleans or strings): the one set of readers
//! ingest, the projector and the Graph client share, so that two services never
//! disagree on what an item says.

use serde_json::Value;

/// An integer sent as a JSON integer or a string of one (surrounding blanks
/// ignored). A fraction is not an integer: `None`.
#[inline]
pub fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// [`int`], or a JSON fraction truncated toward zero: for counters the Graph API
/// reports (usage percentages, error codes), where `28.0` means 28.
#[inline]
pub fn int_or_truncated(v: &Value) -> Option<i64> {
    int(v).or_else(|| match v {
        Value::Number(n) => n.as_f64().map(|f| f as i64),
        _ => None,
    })
}

/// An id sent as a string or a number, as text.
#[inline]
pub fn id_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A webhook flag (`is_echo`, `is_deleted`) sent as `true` or `"true"`; anything
/// else is false. Ingest and the projector read a flag only through this, since
/// it decides an item's type and id.
#[inline]
pub fn flag(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s == "true",
        _ => false,
    }
}

/// A Graph API answer's success flag: `true`, `"true"` in any case, `1` or `"1"`.
/// Laxer than [`flag`]: it only decides whether a call is reported as done.
#[inline]
pub fn truthy(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::String(s) => s.eq_ignore_ascii_case("true") || s == "1",
        Value::Number(n) => n.as_i64() == Some(1),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn integers_come_as_numbers_or_strings_and_fractions_only_when_asked() {
        assert_eq!(int(&json!(42)), Some(42));
        assert_eq!(int(&json!(" 42 ")), Some(42));
        assert_eq!(int(&json!(4.5)), None);
        assert_eq!(int(&json!("x")), None);
        assert_eq!(int(&json!(null)), None);
        assert_eq!(int_or_truncated(&json!(4.5)), Some(4));
        assert_eq!(int_or_truncated(&json!("7")), Some(7));
    }

    #[test]
    fn ids_come_as_strings_or_numbers() {
        assert_eq!(id_string(&json!("123")).as_deref(), Some("123"));
        assert_eq!(id_string(&json!(123)).as_deref(), Some("123"));
        assert_eq!(id_string(&json!(true)), None);
    }

    #[test]
    fn a_webhook_flag_is_true_only_as_true_or_its_string() {
        assert!(flag(Some(&json!(true))));
        assert!(flag(Some(&json!("true"))));
        for no in [
            json!("TRUE"),
            json!(1),
            json!("1"),
            json!(false),
            json!(null),
        ] {
            assert!(!flag(Some(&no)), "{no}");
        }
        assert!(!flag(None));
    }

    #[test]
    fn a_graph_success_flag_is_read_laxly() {
        for yes in [json!(true), json!("True"), json!(1), json!("1")] {
            assert!(truthy(&yes), "{yes}");
        }
        for no in [json!(false), json!(0), json!("no"), json!(null)] {
            assert!(!truthy(&no), "{no}");
        }
    }
}
