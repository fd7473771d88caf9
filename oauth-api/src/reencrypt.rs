//! `oauth-api reencrypt-tokens`: after a key rotation, seals every stored token
//! under the current key so the old key can be retired.

use deadpool_postgres::Pool;
use pagesync_crypto::TokenCipher;
use secrecy::ExposeSecret;

use crate::store;

/// What a re-encryption pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReencryptReport {
    /// Tokens now sealed under the current key that were not before.
    pub reencrypted: usize,
    /// Tokens already under the current key.
    pub current: usize,
    /// Pages whose token could not be opened with any configured key.
    pub failed: Vec<String>,
}

/// Re-encrypts every token not sealed by the current key. A row changed meanwhile
/// (a reconnect) is left as it is: it was just sealed with the current key.
pub async fn reencrypt_tokens(
    pool: &Pool,
    cipher: &TokenCipher,
) -> anyhow::Result<ReencryptReport> {
    let conn = pool.get().await?;
    let mut report = ReencryptReport::default();
    for (page, sealed) in store::sealed_tokens(&**conn).await? {
        if !cipher.needs_rotation(&sealed.key_id) {
            report.current += 1;
            continue;
        }
        match cipher.decrypt(&sealed.key_id, &sealed.bytes, &page) {
            Ok(token) => {
                let resealed = cipher.encrypt(token.expose_secret(), &page);
                if store::replace_sealed(&**conn, &page, &sealed, &resealed).await? {
                    report.reencrypted += 1;
                }
            }
            Err(e) => {
                tracing::error!(page_id = %page, key_id = %sealed.key_id, error = %e, "token cannot be re-encrypted");
                report.failed.push(page);
            }
        }
    }
    tracing::info!(
        reencrypted = report.reencrypted,
        already_current = report.current,
        failed = report.failed.len(),
        key_id = cipher.current_key_id(),
        "tokens re-encrypted"
    );
    Ok(report)
}
