//! Query strings and form bodies, decoded and encoded by hand (the fake needs no more).

pub(crate) fn form_param(body: &[u8], k: &str) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    if text.trim_start().starts_with('{') {
        return None;
    }
    parse_query(text)
        .into_iter()
        .find(|(key, _)| key == k)
        .map(|(_, v)| v)
}

pub(crate) fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(
                    std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"),
                    16,
                ) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub(crate) fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routes::pages::nested_limit;

    #[test]
    fn query_strings_round_trip_through_encode_and_decode() {
        let s = "messages.limit(20){id,message}";
        assert_eq!(decode(&encode(s)), s);
        assert_eq!(nested_limit(s), Some(20));
        assert_eq!(decode("a+b%2Cc"), "a b,c");
    }
}
