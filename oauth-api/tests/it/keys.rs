use pagesync_crypto::EncryptionKey;
use pagesync_oauth_api::{App, BuildError};
use reqwest::Method;
use secrecy::ExposeSecret;
use serde_json::json;

use crate::support::{Auth, PAGE_A, PAGE_B, TestApp, cipher_of, config};

async fn store_two_pages(t: &TestApp) {
    for (id, name, token) in [PAGE_A, PAGE_B] {
        t.fake.add_page(id, name, token);
        let (status, body) = t
            .api(
                Method::PUT,
                &format!("/api/integrations/facebook/{id}"),
                Auth::Operator,
                Some(json!({"access_token": token})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
}

async fn key_ids(t: &TestApp) -> Vec<String> {
    t.db.client()
        .await
        .query(
            "SELECT page_token_key_id FROM integrations ORDER BY page_id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test]
async fn after_a_key_rotation_old_tokens_open_and_reencryption_moves_them_to_the_new_key() {
    let t = TestApp::spawn().await;
    store_two_pages(&t).await;
    let (new_key, new_b64) = EncryptionKey::generate();

    // The new key with the old one kept for decryption starts fine.
    let cfg = config(
        &t.nats,
        &t.db,
        &t.fake,
        &new_b64,
        &t.key_b64,
        "http://127.0.0.1:9/",
    );
    App::build(cfg)
        .await
        .expect("starts with the old key as an old key");
    let rotated = cipher_of(&new_b64, &t.key_b64);
    let report = pagesync_oauth_api::reencrypt::reencrypt_tokens(&t_pool(&t).await, &rotated)
        .await
        .unwrap();

    assert_eq!(report.reencrypted, 2);
    assert!(report.failed.is_empty());
    assert_eq!(key_ids(&t).await, vec![new_key.id().to_owned(); 2]);
    let again = pagesync_oauth_api::reencrypt::reencrypt_tokens(&t_pool(&t).await, &rotated)
        .await
        .unwrap();
    assert_eq!((again.reencrypted, again.current), (0, 2));
    // Only the new key is needed now.
    let only_new = cipher_of(&new_b64, "");
    let rows = t.db.client().await
        .query("SELECT page_id, page_token_key_id, page_token_ciphertext FROM integrations ORDER BY page_id", &[])
        .await
        .unwrap();
    for (row, (_, _, token)) in rows.iter().zip([PAGE_A, PAGE_B]) {
        let opened = only_new
            .decrypt(
                &row.get::<_, String>(1),
                &row.get::<_, Vec<u8>>(2),
                &row.get::<_, String>(0),
            )
            .unwrap();
        assert_eq!(opened.expose_secret(), token);
    }
    let cfg = config(&t.nats, &t.db, &t.fake, &new_b64, "", "http://127.0.0.1:9/");
    App::build(cfg).await.expect("starts with only the new key");
}

#[tokio::test]
async fn a_wrong_key_fails_at_start_with_a_clear_message() {
    let t = TestApp::spawn().await;
    store_two_pages(&t).await;
    let (_, wrong_b64) = EncryptionKey::generate();

    let cfg = config(
        &t.nats,
        &t.db,
        &t.fake,
        &wrong_b64,
        "",
        "http://127.0.0.1:9/",
    );
    let err = match App::build(cfg).await {
        Ok(_) => panic!("started with a key that cannot open the stored tokens"),
        Err(e) => e,
    };

    assert!(matches!(err, BuildError::WrongKey(_)), "{err}");
    let text = err.to_string();
    assert!(text.contains("TOKEN_ENCRYPTION_KEY"), "{text}");
    assert!(text.contains(t.cipher.current_key_id()), "{text}");
    assert!(
        !text.contains(&wrong_b64) && !text.contains(&t.key_b64),
        "{text}"
    );
}

async fn t_pool(t: &TestApp) -> deadpool_postgres::Pool {
    pagesync_runtime::connect::pool(&t.db.config()).unwrap()
}
