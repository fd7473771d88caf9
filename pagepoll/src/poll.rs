//! Polling one page: snapshot, subscription health, conversations and their messages.

use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use pagesync_crypto::TokenCipher;
use pagesync_graph::{
    AccessToken, GraphClient, GraphError, GraphMessage, MAX_READABLE_MESSAGES, Participant,
    SUBSCRIBED_FIELDS,
};
use pagesync_runtime::ErrorChain;
use pagesync_schema::{Event, PageId, Platform, Psid, Publisher};
use sha2::{Digest, Sha256};
use tracing::Instrument;

use crate::events::{instagram_message_event, message_event, profile_events, snapshot_event};
use crate::store::{self, Checkpoint, Integration, Subscription};

/// How one page's poll ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageOutcome {
    /// Every event acknowledged by JetStream; the checkpoint advanced.
    Success { stored: usize, duplicates: usize },
    /// Code 190: the integration is now `needs_reauth`.
    NeedsReauth,
    /// Throttled longer than we wait; retried next cycle.
    Throttled,
    /// Anything else (the reason, without secrets).
    Failed(String),
}

impl PageOutcome {
    pub fn label(&self) -> &'static str {
        match self {
            Self::Success { .. } => "success",
            Self::NeedsReauth => "needs_reauth",
            Self::Throttled => "throttled",
            Self::Failed(_) => "failed",
        }
    }

    pub fn is_success(&self) -> bool {
        matches!(self, Self::Success { .. })
    }
}

/// Everything a page poll needs; shared by all pages of a cycle.
pub struct PagePoller {
    pub graph: GraphClient,
    pub publisher: Publisher,
    pub pool: Pool,
    pub cipher: TokenCipher,
    /// Our app: the one the page's `subscribed_apps` must list.
    pub app_id: String,
    /// How far before the checkpoint an incremental poll reads again.
    pub overlap: Duration,
}

impl PagePoller {
    /// The overlap unless a service configures its own (`POLL_OVERLAP`'s default).
    pub const DEFAULT_OVERLAP: Duration = Duration::from_secs(600);

    /// A poller of our app's pages with [`Self::DEFAULT_OVERLAP`].
    pub fn new(
        graph: GraphClient,
        publisher: Publisher,
        pool: Pool,
        cipher: TokenCipher,
        app_id: String,
    ) -> Self {
        Self {
            graph,
            publisher,
            pool,
            cipher,
            app_id,
            overlap: Self::DEFAULT_OVERLAP,
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum PollError {
    #[error(transparent)]
    Graph(#[from] GraphError),
    #[error(transparent)]
    Publish(#[from] pagesync_schema::PublishError),
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error("stored page token cannot be decrypted: {0}")]
    Token(#[from] pagesync_crypto::CryptoError),
}

/// Whose conversations a poll reads: the page's own (Messenger), or its linked
/// Instagram account's, whose id the events carry.
struct Account<'a> {
    platform: Platform,
    id: &'a PageId,
}

#[derive(Default)]
struct Tally {
    stored: usize,
    duplicates: usize,
}

impl PagePoller {
    /// Polls one page and records the outcome (status, checkpoint, metrics). The
    /// span is the root of the trace its events carry (docs/metrics.md "Traces").
    #[tracing::instrument(name = "poll_page", skip_all)]
    pub async fn poll_page(&self, integration: &Integration) -> PageOutcome {
        let page = &integration.page_id;
        let outcome = match self.poll(integration).await {
            Ok(t) => PageOutcome::Success {
                stored: t.stored,
                duplicates: t.duplicates,
            },
            Err(PollError::Graph(GraphError::TokenInvalid { subcode, .. })) => {
                tracing::warn!(page_id = %page, ?subcode, "page token rejected (code 190); integration needs re-authentication");
                let reason = match subcode {
                    Some(sub) => format!("Graph API code 190, subcode {sub}"),
                    None => "Graph API code 190".to_owned(),
                };
                if let Err(e) = store::mark_needs_reauth(&self.pool, page, &reason).await {
                    tracing::error!(page_id = %page, error = %e, "could not mark integration needs_reauth");
                }
                PageOutcome::NeedsReauth
            }
            Err(PollError::Graph(e @ GraphError::Throttled { .. })) => {
                tracing::warn!(page_id = %page, error = %ErrorChain(&e), "page throttled; checkpoint unchanged");
                PageOutcome::Throttled
            }
            Err(e) => {
                let reason = ErrorChain(&e).to_string();
                tracing::error!(page_id = %page, error = %reason, "page poll failed; checkpoint unchanged");
                PageOutcome::Failed(reason)
            }
        };
        if !matches!(
            outcome,
            PageOutcome::Success { .. } | PageOutcome::NeedsReauth
        ) && let Err(e) = store::record_failure(&self.pool, page, outcome.label()).await
        {
            tracing::error!(page_id = %page, error = %e, "could not record poll failure");
        }
        metrics::counter!("pagesync_poller_pages_polled_total", "outcome" => outcome.label())
            .increment(1);
        outcome
    }

    async fn poll(&self, integration: &Integration) -> Result<Tally, PollError> {
        let page = &integration.page_id;
        let token = AccessToken::from(self.cipher.decrypt(
            &integration.key_id,
            &integration.sealed_token,
            page.as_str(),
        )?);
        let previous = store::checkpoint(&self.pool, page).await?;
        let mut tally = Tally::default();
        let mut next = Checkpoint {
            snapshot_sha256: None,
            ..previous.clone()
        };

        // Page snapshot, published only when the page object changed.
        let fetched = Utc::now();
        let node = self.graph.page(page.as_str(), &token).await?;
        let hash = hex::encode(Sha256::digest(node.to_value().to_string().as_bytes()));
        if previous.snapshot_sha256.as_deref() != Some(hash.as_str()) {
            self.publish(&[snapshot_event(page, &node, fetched)], &mut tally)
                .await?;
        }
        next.snapshot_sha256 = Some(hash);

        self.check_subscription(page, &token).await?;

        let messenger = Account {
            platform: Platform::Messenger,
            id: page,
        };
        self.poll_conversations(&messenger, page, &token, &previous, &mut next, &mut tally)
            .await?;
        // A linked Instagram account is read through the page, with the page's token.
        if let Some(id) = &integration.instagram_account {
            let instagram = Account {
                platform: Platform::Instagram,
                id,
            };
            self.poll_conversations(&instagram, page, &token, &previous, &mut next, &mut tally)
                .await?;
        }

        store::complete_poll(&self.pool, page, &next).await?;
        tracing::info!(page_id = %page, stored = tally.stored, duplicates = tally.duplicates, "page polled");
        Ok(tally)
    }

    /// Reads one platform's conversations of the page since that platform's
    /// checkpoint (minus the overlap), publishing what the projection lacks.
    async fn poll_conversations(
        &self,
        account: &Account<'_>,
        page: &PageId,
        token: &AccessToken,
        previous: &Checkpoint,
        next: &mut Checkpoint,
        tally: &mut Tally,
    ) -> Result<(), PollError> {
        // Conversations come newest first: stop at the first one older than the window.
        let since = previous
            .newest(account.platform)
            .map(|t| t - chrono::Duration::from_std(self.overlap).unwrap_or_default());
        let mut pager = self.graph.conversations_on(
            account.platform,
            page.as_str(),
            token,
            MAX_READABLE_MESSAGES,
        );
        'pages: while let Some(conversations) = pager.next_page().await? {
            let mut events = Vec::new();
            let mut reached_old = false;
            for conv in conversations {
                if let (Some(since), Some(updated)) = (since, conv.updated_time)
                    && updated < since
                {
                    reached_old = true;
                    break;
                }
                if let Some(u) = conv.updated_time {
                    next.saw(account.platform, u);
                }
                let messages = self.messages_of(conv.messages, page, token).await?;
                events.extend(self.events_for(account, &messages, since));
                // Messenger's participants carry names; Instagram's carry usernames.
                if account.platform == Platform::Messenger {
                    let named = conv.updated_time.unwrap_or_else(Utc::now);
                    let people = self.with_names(page, token, conv.participants.data).await;
                    events.extend(profile_events(page, &people, named, Utc::now()));
                }
            }
            let ids: Vec<&str> = events.iter().map(|e| e.id.as_str()).collect();
            let known = store::known_mids(&self.pool, &ids).await?;
            events.retain(|e| !known.contains(e.id.as_str()));
            self.publish(&events, tally).await?;
            if reached_old {
                break 'pages;
            }
        }
        Ok(())
    }

    /// The conversation's readable messages: the nested first page, then nested
    /// paging until Facebook's 20 readable messages are in hand.
    async fn messages_of(
        &self,
        first: Option<pagesync_graph::Paged<GraphMessage>>,
        page: &PageId,
        token: &AccessToken,
    ) -> Result<Vec<GraphMessage>, PollError> {
        let Some(first) = first else {
            return Ok(Vec::new());
        };
        let limit = MAX_READABLE_MESSAGES as usize;
        let mut next = first.next().map(str::to_owned);
        let mut messages = first.data;
        if let Some(link) = next.take()
            && messages.len() < limit
        {
            let mut pager = self.graph.messages_after(&link, token, page.as_str())?;
            while messages.len() < limit {
                match pager.next_page().await? {
                    Some(more) => messages.extend(more),
                    None => break,
                }
            }
        }
        messages.truncate(limit);
        Ok(messages)
    }

    fn events_for(
        &self,
        account: &Account<'_>,
        messages: &[GraphMessage],
        since: Option<DateTime<Utc>>,
    ) -> Vec<Event> {
        let page = account.id;
        let now = Utc::now();
        messages
            .iter()
            .filter(|m| match (since, m.created_time) {
                (Some(since), Some(created)) => created >= since,
                _ => true,
            })
            .filter_map(|m| {
                let e = match account.platform {
                    Platform::Messenger => message_event(page, m, now),
                    Platform::Instagram => instagram_message_event(page, m, now),
                };
                if e.is_none() {
                    tracing::warn!(page_id = %page, "skipped a message without a usable id, author or customer");
                }
                e
            })
            .collect()
    }

    /// The conversation's participants, a customer whose name `participants` left
    /// out named by the User Profile API. A name is never a reason to fail: a
    /// refusal (no permission, no profile) leaves the customer unnamed.
    async fn with_names(
        &self,
        page: &PageId,
        token: &AccessToken,
        mut people: Vec<Participant>,
    ) -> Vec<Participant> {
        for p in people.iter_mut().filter(|p| p.id != page.as_str()) {
            // Only a safe id goes into a Graph path.
            if p.name.as_deref().is_some_and(|n| !n.trim().is_empty())
                || Psid::parse(&*p.id).is_err()
            {
                continue;
            }
            match self.graph.customer_name(&p.id, token, page.as_str()).await {
                Ok(name) => p.name = name,
                Err(e) => {
                    tracing::debug!(page_id = %page, error = %ErrorChain(&e), "no name from the User Profile API")
                }
            }
        }
        people
    }

    /// Re-subscribes the page when our app is missing or lacks a field.
    async fn check_subscription(
        &self,
        page: &PageId,
        token: &AccessToken,
    ) -> Result<(), PollError> {
        let result = async {
            let apps = self.graph.subscribed_apps(page.as_str(), token).await?;
            let ours = apps.iter().find(|a| a.id == self.app_id);
            let complete = ours.is_some_and(|a| {
                SUBSCRIBED_FIELDS
                    .iter()
                    .all(|f| a.subscribed_fields.iter().any(|s| s == f))
            });
            if complete {
                return Ok(Subscription::Subscribed);
            }
            tracing::warn!(page_id = %page, "page lost our app's webhook subscription; re-subscribing");
            self.graph
                .subscribe_app(page.as_str(), token, &SUBSCRIBED_FIELDS)
                .await?;
            metrics::counter!("pagesync_poller_resubscriptions_total").increment(1);
            Ok::<_, GraphError>(Subscription::Resubscribed)
        }
        .await;
        let status = match result {
            Ok(s) => s,
            // A token or throttling problem ends the page's poll; anything else is recorded.
            Err(e @ (GraphError::TokenInvalid { .. } | GraphError::Throttled { .. })) => {
                return Err(e.into());
            }
            Err(e) => {
                tracing::warn!(page_id = %page, error = %ErrorChain(&e), "subscription check failed");
                Subscription::Failed
            }
        };
        store::record_subscription(&self.pool, page, status).await?;
        Ok(())
    }

    /// Publishes and waits for every acknowledgement.
    async fn publish(&self, events: &[Event], tally: &mut Tally) -> Result<(), PollError> {
        let (span, traceparent) = pagesync_runtime::trace::publish_span();
        for chunk in events.chunks(500) {
            let report = self
                .publisher
                .publish_all(chunk, traceparent.as_deref())
                .instrument(span.clone())
                .await?;
            tally.stored += report.stored;
            tally.duplicates += report.duplicates;
        }
        for e in events {
            metrics::counter!("pagesync_poller_events_published_total", "type" => e.event_type.as_str())
                .increment(1);
        }
        Ok(())
    }
}
