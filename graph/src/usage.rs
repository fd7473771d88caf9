//! The usage headers Facebook adds once an app calls enough: `X-App-Usage` and
//! `X-Business-Use-Case-Usage` (whole-number percentages; throttled at 100).

use std::time::Duration;

use reqwest::header::HeaderMap;
use serde_json::Value;

/// The highest usage percentage seen and Facebook's estimate of when access returns.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub max_percent: i64,
    pub regain_access_in: Option<Duration>,
}

impl Usage {
    pub fn from_headers(headers: &HeaderMap) -> Option<Self> {
        let mut usage: Option<Usage> = None;
        for name in ["x-app-usage", "x-business-use-case-usage"] {
            let Some(v) = headers.get(name).and_then(|v| v.to_str().ok()) else {
                continue;
            };
            let Ok(json) = serde_json::from_str::<Value>(v) else {
                continue;
            };
            let u = usage.get_or_insert_with(Usage::default);
            u.absorb(&json);
        }
        usage
    }

    fn absorb(&mut self, v: &Value) {
        match v {
            Value::Object(map) => {
                for (k, val) in map {
                    match k.as_str() {
                        "call_count" | "total_time" | "total_cputime" | "acc_id_util_pct" => {
                            if let Some(p) = pagesync_schema::lenient::field::int_or_truncated(val)
                            {
                                self.max_percent = self.max_percent.max(p);
                            }
                        }
                        // Minutes, per Facebook's rate-limiting documentation.
                        "estimated_time_to_regain_access" => {
                            if let Some(m) = pagesync_schema::lenient::field::int_or_truncated(val)
                                .filter(|m| *m > 0)
                            {
                                let d = Duration::from_secs(m as u64 * 60);
                                self.regain_access_in =
                                    Some(self.regain_access_in.map_or(d, |c| c.max(d)));
                            }
                        }
                        _ => self.absorb(val),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|i| self.absorb(i)),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn app_and_business_usage_are_read_with_regain_time_in_minutes() {
        let mut h = HeaderMap::new();
        h.insert(
            "x-app-usage",
            HeaderValue::from_static(
                r#"{"call_count": 28, "total_time": 25, "total_cputime": 25}"#,
            ),
        );
        h.insert(
            "x-business-use-case-usage",
            HeaderValue::from_static(
                r#"{"101": [{"type":"pages","call_count":97,"total_cputime":23,"total_time":23,"estimated_time_to_regain_access":3}]}"#,
            ),
        );
        let u = Usage::from_headers(&h).unwrap();
        assert_eq!(u.max_percent, 97);
        assert_eq!(u.regain_access_in, Some(Duration::from_secs(180)));
    }

    #[test]
    fn absent_or_malformed_headers_are_ignored() {
        assert_eq!(Usage::from_headers(&HeaderMap::new()), None);
        let mut h = HeaderMap::new();
        h.insert("x-app-usage", HeaderValue::from_static("not json"));
        assert_eq!(Usage::from_headers(&h), None);
    }
}
