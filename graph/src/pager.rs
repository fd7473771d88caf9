//! Following an edge's `paging.next` links, page by page.

use reqwest::Url;
use serde::de::DeserializeOwned;

use crate::client::GraphClient;
use crate::error::GraphError;
use crate::token::AccessToken;
use crate::types::Paged;

/// Walks an edge's result pages following `paging.next` until it is absent
/// (an empty page that still has a `next` is not the end).
pub struct Pager<'a, T> {
    client: &'a GraphClient,
    token: &'a AccessToken,
    page: Option<&'a str>,
    next: Option<Url>,
    _t: std::marker::PhantomData<T>,
}

impl<'a, T: DeserializeOwned> Pager<'a, T> {
    pub(crate) fn new(
        client: &'a GraphClient,
        first: Url,
        token: &'a AccessToken,
        page: Option<&'a str>,
    ) -> Self {
        Self {
            client,
            token,
            page,
            next: Some(first),
            _t: std::marker::PhantomData,
        }
    }

    /// The next result page, or `None` when paging is done.
    pub async fn next_page(&mut self) -> Result<Option<Vec<T>>, GraphError> {
        let Some(url) = self.next.take() else {
            return Ok(None);
        };
        let page: Paged<T> = self.client.get_json(url, self.token, self.page).await?;
        self.next = page.next().map(|n| self.client.follow(n)).transpose()?;
        Ok(Some(page.data))
    }

    pub async fn collect_all(mut self) -> Result<Vec<T>, GraphError> {
        let mut all = Vec::new();
        while let Some(items) = self.next_page().await? {
            all.extend(items);
        }
        Ok(all)
    }
}
