//! The reply window: what a reply sent now would be (contract §6 `reply_window`).
//!
//! Computed from the customer's last message's own time (its webhook
//! `timestamp`), never from when we received it, so the listed window and the
//! reply route's refusal always agree: both call [`reply_window`].

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use utoipa::ToSchema;

/// Facebook's standard messaging window after the customer's last message.
pub const RESPONSE_WINDOW: Duration = Duration::hours(24);
/// How long after the customer's last message a human agent may still answer
/// (`MESSAGE_TAG` `HUMAN_AGENT`, when enabled).
pub const HUMAN_AGENT_WINDOW: Duration = Duration::days(7);

/// How a reply sent now would go out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WindowKind {
    /// `messaging_type: RESPONSE`.
    Response,
    /// `messaging_type: MESSAGE_TAG`, `tag: HUMAN_AGENT`.
    HumanAgent,
    /// Refused locally with 422 `window_closed`.
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub struct ReplyWindow {
    pub kind: WindowKind,
    /// When `kind` stops applying; null when closed.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub closes_at: Option<DateTime<Utc>>,
}

impl ReplyWindow {
    pub const CLOSED: Self = Self {
        kind: WindowKind::Closed,
        closes_at: None,
    };
}

/// The window at `now` for a conversation whose customer last wrote at
/// `last_customer_message` (None: the customer never wrote, so it is closed).
/// `human_agent` is `MESSENGER_HUMAN_AGENT`.
pub fn reply_window(
    last_customer_message: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    human_agent: bool,
) -> ReplyWindow {
    let Some(last) = last_customer_message else {
        return ReplyWindow::CLOSED;
    };
    let response_ends = last + RESPONSE_WINDOW;
    if now < response_ends {
        return ReplyWindow {
            kind: WindowKind::Response,
            closes_at: Some(response_ends),
        };
    }
    let human_agent_ends = last + HUMAN_AGENT_WINDOW;
    if human_agent && now < human_agent_ends {
        return ReplyWindow {
            kind: WindowKind::HumanAgent,
            closes_at: Some(human_agent_ends),
        };
    }
    ReplyWindow::CLOSED
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(hours_ago: i64) -> (Option<DateTime<Utc>>, DateTime<Utc>) {
        let now = DateTime::parse_from_rfc3339("2026-12-01T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        (Some(now - Duration::hours(hours_ago)), now)
    }

    #[test]
    fn within_a_day_a_reply_is_a_response_until_24_hours_after_the_message() {
        let (last, now) = at(1);
        let w = reply_window(last, now, false);
        assert_eq!(w.kind, WindowKind::Response);
        assert_eq!(w.closes_at, Some(last.unwrap() + Duration::hours(24)));
        assert_eq!(reply_window(last, now, true), w);
    }

    #[test]
    fn after_a_day_only_a_human_agent_may_answer_and_only_when_enabled() {
        let (last, now) = at(30);
        assert_eq!(reply_window(last, now, false), ReplyWindow::CLOSED);
        let w = reply_window(last, now, true);
        assert_eq!(w.kind, WindowKind::HumanAgent);
        assert_eq!(w.closes_at, Some(last.unwrap() + Duration::days(7)));
    }

    #[test]
    fn after_a_week_and_without_a_customer_message_the_window_is_closed() {
        let (last, now) = at(8 * 24);
        assert_eq!(reply_window(last, now, true), ReplyWindow::CLOSED);
        assert_eq!(reply_window(None, now, true), ReplyWindow::CLOSED);
    }

    #[test]
    fn the_edges_belong_to_the_next_window() {
        let (last, now) = at(24);
        assert_eq!(reply_window(last, now, true).kind, WindowKind::HumanAgent);
        let (last, now) = at(7 * 24);
        assert_eq!(reply_window(last, now, true).kind, WindowKind::Closed);
    }

    #[test]
    fn it_serialises_as_the_contract_says() {
        let (last, now) = at(1);
        let json = serde_json::to_value(reply_window(last, now, false)).unwrap();
        assert_eq!(json["kind"], "response");
        assert_eq!(json["closes_at"], "2026-12-02T11:00:00Z");
        let closed = serde_json::to_value(ReplyWindow::CLOSED).unwrap();
        assert_eq!(
            closed,
            serde_json::json!({"kind": "closed", "closes_at": null})
        );
    }
}
