//! Keeping credentials out of page data: a `page_snapshot` or `page_change` may
//! carry a token at any depth (Facebook nests a page token in `page` or under an
//! Instagram account), and page files and snapshots must never hold one (contract §3–§4).

use serde_json::Value;

/// True for a key that names a credential: ending in `token` or `tokens`
/// (`access_token`, `page_access_token`, `accessToken`, `token`), or holding
/// `secret` (`app_secret`, `client_secret`, `appsecret_proof`), in any case.
pub fn is_token_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    key.ends_with("token") || key.ends_with("tokens") || key.contains("secret")
}

/// Removes every member whose key [`is_token_key`], at any depth.
pub fn strip_tokens(v: &mut Value) {
    match v {
        Value::Object(map) => {
            map.retain(|k, _| !is_token_key(k));
            map.values_mut().for_each(strip_tokens);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_tokens),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tokens_are_removed_at_every_depth() {
        let mut v = json!({
            "id": "1", "name": "N", "access_token": "EAAB1",
            "page": {"id": "1", "access_token": "EAAB2", "Page_Access_Token": "EAAB3"},
            "accounts": [{"instagram_business_account": {"id": "9", "accessToken": "EAAB4"}}],
            "app_secret": "s", "appsecret_proof": "p", "tokens": ["EAAB5"],
            "category": "Shop", "token_count": 3
        });
        strip_tokens(&mut v);
        assert_eq!(
            v,
            json!({"id": "1", "name": "N", "page": {"id": "1"},
                   "accounts": [{"instagram_business_account": {"id": "9"}}],
                   "category": "Shop", "token_count": 3})
        );
        assert!(!v.to_string().contains("EAAB"));
    }
}
