//! The Graph API endpoints pagesync calls (contract §5, §6, §8), each a method
//! of [`GraphClient`]; the Send API is in `send.rs`.

use reqwest::{Method, Url};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use pagesync_schema::Platform;

use crate::client::{Call, CallKind, GraphClient};
use crate::error::GraphError;
use crate::pager::Pager;
use crate::token::AccessToken;
use crate::types::*;

/// Fields of the page node the poller snapshots (contract §5).
pub const PAGE_FIELDS: &str =
    "id,name,category,category_list,about,website,link,picture,fan_count,location,phone,emails";

/// Webhook fields a page is subscribed to (contract §5, issue 5).
pub const SUBSCRIBED_FIELDS: [&str; 9] = [
    "messages",
    "messaging_postbacks",
    "messaging_optins",
    "message_deliveries",
    "message_reads",
    "message_echoes",
    "message_reactions",
    "messaging_referrals",
    "standby",
];

/// Facebook returns details only for a conversation's 20 most recent messages.
pub const MAX_READABLE_MESSAGES: u32 = 20;

impl GraphClient {
    /// `GET /{page_id}?fields=...` (contract §5 fields).
    pub async fn page(&self, page_id: &str, token: &AccessToken) -> Result<PageNode, GraphError> {
        let mut url = self.url(page_id);
        url.query_pairs_mut().append_pair("fields", PAGE_FIELDS);
        let v: Value = self.get_json(url, token, Some(page_id)).await?;
        PageNode::from_value(v).map_err(GraphError::Unexpected)
    }

    /// `GET /{page_id}?fields=instagram_business_account`: the id of the page's
    /// linked Instagram professional account, `None` when it has none.
    pub async fn instagram_account(
        &self,
        page_id: &str,
        token: &AccessToken,
    ) -> Result<Option<String>, GraphError> {
        #[derive(Deserialize)]
        struct Node {
            #[serde(default)]
            instagram_business_account: Option<LinkedAccount>,
        }
        let mut url = self.url(page_id);
        url.query_pairs_mut()
            .append_pair("fields", "instagram_business_account");
        let node: Node = self.get_json(url, token, Some(page_id)).await?;
        Ok(node.instagram_business_account.map(|a| a.id))
    }

    /// The User Profile API: a customer's name (`GET /{psid}?fields=first_name,last_name,name`
    /// with the page token). `None` when Facebook gives no name.
    pub async fn customer_name(
        &self,
        psid: &str,
        token: &AccessToken,
        page_id: &str,
    ) -> Result<Option<String>, GraphError> {
        let mut url = self.url(psid);
        url.query_pairs_mut()
            .append_pair("fields", "first_name,last_name,name");
        let v: Value = self.get_json(url, token, Some(page_id)).await?;
        let field = |k: &str| {
            v.get(k)
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|s| !s.is_empty())
        };
        let joined = [field("first_name"), field("last_name")]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
        Ok(field("name")
            .map(str::to_owned)
            .or_else(|| (!joined.is_empty()).then_some(joined)))
    }

    /// `GET /{page_id}/conversations?platform=messenger` with nested messages, as a
    /// pager over result pages.
    pub fn conversations<'a>(
        &'a self,
        page_id: &'a str,
        token: &'a AccessToken,
        messages_limit: u32,
    ) -> Pager<'a, Conversation> {
        self.conversations_on(Platform::Messenger, page_id, token, messages_limit)
    }

    /// `GET /{page_id}/conversations?platform=<platform>`: Instagram's conversations
    /// are read through the page id and token too (contract §8).
    pub fn conversations_on<'a>(
        &'a self,
        platform: Platform,
        page_id: &'a str,
        token: &'a AccessToken,
        messages_limit: u32,
    ) -> Pager<'a, Conversation> {
        let mut url = self.url(&format!("{page_id}/conversations"));
        let limit = messages_limit.min(MAX_READABLE_MESSAGES);
        url.query_pairs_mut()
            .append_pair("platform", platform.as_str())
            .append_pair(
                "fields",
                &format!(
                    "participants,updated_time,messages.limit({limit}){{id,message,from,to,created_time,attachments}}"
                ),
            );
        Pager::new(self, url, token, Some(page_id))
    }

    /// Follows a nested `messages.paging.next` link.
    pub fn messages_after<'a>(
        &'a self,
        next: &str,
        token: &'a AccessToken,
        page_id: &'a str,
    ) -> Result<Pager<'a, GraphMessage>, GraphError> {
        let url = self.follow(next)?;
        Ok(Pager::new(self, url, token, Some(page_id)))
    }

    /// `GET /{page_id}/subscribed_apps`, every result page.
    pub async fn subscribed_apps(
        &self,
        page_id: &str,
        token: &AccessToken,
    ) -> Result<Vec<SubscribedApp>, GraphError> {
        let url = self.url(&format!("{page_id}/subscribed_apps"));
        Pager::new(self, url, token, Some(page_id))
            .collect_all()
            .await
    }

    /// `POST /{page_id}/subscribed_apps` with `subscribed_fields`.
    pub async fn subscribe_app(
        &self,
        page_id: &str,
        token: &AccessToken,
        fields: &[&str],
    ) -> Result<bool, GraphError> {
        let call = Call {
            method: Method::POST,
            url: self.url(&format!("{page_id}/subscribed_apps")),
            token: Some(token),
            page: Some(page_id),
            form: vec![("subscribed_fields", fields.join(","))],
            json: None,
            kind: CallKind::Repeatable,
        };
        let v: Value = self.execute(call).await?;
        Ok(v.get("success")
            .is_some_and(pagesync_schema::lenient::field::truthy))
    }

    /// `GET /me/accounts` with a user token, every result page.
    pub async fn accounts(&self, user_token: &AccessToken) -> Result<Vec<AccountPage>, GraphError> {
        let mut url = self.url("me/accounts");
        url.query_pairs_mut().append_pair(
            "fields",
            "id,name,category,category_list,tasks,access_token,instagram_business_account",
        );
        Pager::new(self, url, user_token, None).collect_all().await
    }

    /// `GET /oauth/access_token?code=...`: the login code for a user token.
    pub async fn exchange_code(
        &self,
        code: &str,
        redirect_uri: &str,
    ) -> Result<TokenGrant, GraphError> {
        let (id, secret) = self.app_credentials()?;
        let mut url = self.url("oauth/access_token");
        url.query_pairs_mut()
            .append_pair("client_id", id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("client_secret", secret)
            .append_pair("code", code);
        self.get_json_untokened(url).await
    }

    /// `GET /oauth/access_token?grant_type=fb_exchange_token`: a long-lived user token.
    pub async fn exchange_long_lived(&self, token: &AccessToken) -> Result<TokenGrant, GraphError> {
        let (id, secret) = self.app_credentials()?;
        let mut url = self.url("oauth/access_token");
        url.query_pairs_mut()
            .append_pair("grant_type", "fb_exchange_token")
            .append_pair("client_id", id)
            .append_pair("client_secret", secret)
            .append_pair("fb_exchange_token", token.expose());
        self.get_json_untokened(url).await
    }

    fn app_credentials(&self) -> Result<(&str, &str), GraphError> {
        match (&self.config().app_id, &self.config().app_secret) {
            (Some(id), Some(secret)) => Ok((id, secret.expose_secret())),
            _ => Err(GraphError::Config(
                "FACEBOOK_APP_ID and FACEBOOK_APP_SECRET are needed for OAuth exchanges",
            )),
        }
    }

    pub(crate) async fn get_json<T: DeserializeOwned>(
        &self,
        url: Url,
        token: &AccessToken,
        page: Option<&str>,
    ) -> Result<T, GraphError> {
        self.execute(Call {
            method: Method::GET,
            url,
            token: Some(token),
            page,
            form: Vec::new(),
            json: None,
            kind: CallKind::Repeatable,
        })
        .await
    }

    async fn get_json_untokened<T: DeserializeOwned>(&self, url: Url) -> Result<T, GraphError> {
        self.execute(Call {
            method: Method::GET,
            url,
            token: None,
            page: None,
            form: Vec::new(),
            json: None,
            kind: CallKind::Repeatable,
        })
        .await
    }
}
