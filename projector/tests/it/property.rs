//! The same events in any order, with any duplicates, give byte-identical files
//! and the same rows.

use pagesync_schema::{Event, EventType, Source};
use proptest::prelude::*;
use serde_json::json;

use crate::support::{TestProjector, echo, event, message, status, tree};

const T: i64 = 1_700_000_000_000;

fn build(kind: u8, page: u8, psid_n: u8, ts: i64, v: u8) -> Event {
    let (page, psid) = (format!("p{page}"), format!("u{psid_n}"));
    let at = T + ts * 1000;
    match kind {
        0 => message(
            Source::Ingest,
            &page,
            &psid,
            &format!("m{page}{psid}{ts}{v}"),
            at,
            &format!("t{v}"),
        ),
        1 => message(
            Source::Poller,
            &page,
            &psid,
            &format!("m{page}{psid}{ts}{v}"),
            at,
            &format!("poll{v}"),
        ),
        2 => echo(
            &page,
            &psid,
            &format!("e{page}{psid}{ts}{v}"),
            at,
            &format!("r{v}"),
        ),
        // The status follows from what its id is made of: copies under one id are
        // equal, since between copies of one source the first applied wins.
        3 => status(&page, &psid, (ts + i64::from(psid_n)) % 2 == 0, at),
        4 => {
            let (ty, key) = if v.is_multiple_of(2) {
                (EventType::Delivery, "delivery")
            } else {
                (EventType::Read, "read")
            };
            event(
                ty,
                Source::Ingest,
                &format!("{key}:{page}:{psid}:{at}"),
                &page,
                Some(&psid),
                at,
                json!({key: {"watermark": at}}),
            )
        }
        5 => event(
            EventType::PageSnapshot,
            Source::Poller,
            &format!("snapshot:{page}:{at}"),
            &page,
            None,
            at,
            json!({"id": page, "name": format!("n{ts}"), "about": "a"}),
        ),
        6 => {
            let field = if v.is_multiple_of(2) { "name" } else { "about" };
            event(
                EventType::PageChange,
                Source::Ingest,
                &format!("change:{page}:{field}:{at}:{v}"),
                &page,
                None,
                at,
                json!({"field": field, "value": format!("c{v}")}),
            )
        }
        // A standby (our app as secondary receiver) and the poll's copy of its message.
        8 => event(
            EventType::Standby,
            Source::Ingest,
            &format!("standby:{page}{psid}{ts}{v}"),
            &page,
            Some(&psid),
            at,
            json!({"sender": {"id": psid}, "recipient": {"id": page}, "timestamp": at,
                   "message": {"mid": format!("s{page}{psid}{ts}{v}"), "text": "standby"}}),
        ),
        9 => message(
            Source::Poller,
            &page,
            &psid,
            &format!("s{page}{psid}{ts}{v}"),
            at,
            "poll of standby",
        ),
        // A message the poll files under one customer and the webhook under the next.
        10 => message(
            Source::Poller,
            &page,
            &psid,
            &format!("x{page}{psid}{ts}{v}"),
            at,
            "misfiled",
        ),
        11 => {
            let other = format!("u{}", (psid_n + 1) % 3);
            message(
                Source::Ingest,
                &page,
                &other,
                &format!("x{page}{psid}{ts}{v}"),
                at,
                "right place",
            )
        }
        7 | 12.. => event(
            EventType::Reaction,
            Source::Ingest,
            &format!("reaction:{page}{psid}{ts}{v}"),
            &page,
            Some(&psid),
            at,
            json!({"timestamp": at, "reaction": {"mid": format!("m{page}{psid}{ts}0"), "action": "react", "reaction": "like"}}),
        ),
    }
}

fn events() -> impl Strategy<Value = (Vec<Event>, Vec<Event>)> {
    prop::collection::vec((0u8..12, 0u8..2, 0u8..3, 0i64..20, 0u8..3), 1..40).prop_flat_map(
        |specs| {
            let events: Vec<Event> = specs
                .iter()
                .map(|&(k, p, s, t, v)| build(k, p, s, t, v))
                .collect();
            let mut doubled = events.clone();
            doubled.extend(events.iter().take(events.len() / 2 + 1).cloned());
            (Just(events), Just(doubled).prop_shuffle())
        },
    )
}

async fn project_in_order(events: &[Event]) -> TestProjector {
    let p = TestProjector::new().await;
    p.publish_again(events).await;
    p.drain().await;
    p
}

async fn project_shuffled_in_chunks(events: &[Event]) -> TestProjector {
    let p = TestProjector::new().await;
    for chunk in events.chunks(events.len().div_ceil(3)) {
        p.publish_again(chunk).await;
        p.drain().await;
    }
    p
}

/// Conversations whose folded summary differs from one counted afresh from the
/// stored items and status changes (an independent oracle for the fold).
const SUMMARIES_NOT_RECOMPUTED: &str = r#"
WITH msg AS (
    SELECT page_id, psid, item_id AS mid, direction, timestamp_ms FROM conversation_events
    WHERE in_file AND direction IS NOT NULL
), agg AS (
    SELECT page_id, psid, count(*)::int AS n,
           max(timestamp_ms) FILTER (WHERE direction = 'out') AS out_ms,
           max(timestamp_ms) FILTER (WHERE direction = 'in') AS in_ms
    FROM msg GROUP BY page_id, psid
), latest AS (
    SELECT DISTINCT ON (page_id, psid) page_id, psid, mid FROM msg
    ORDER BY page_id, psid, timestamp_ms DESC, mid COLLATE "C" DESC
), unread AS (
    SELECT m.page_id, m.psid, count(*)::int AS n FROM msg m JOIN agg a USING (page_id, psid)
        LEFT JOIN receipts r USING (page_id, psid)
    WHERE m.direction = 'in'
      AND m.timestamp_ms > GREATEST(coalesce(a.out_ms, -1), coalesce(r.read_watermark, -1))
    GROUP BY m.page_id, m.psid
), status AS (
    SELECT DISTINCT ON (page_id, psid) page_id, psid, status FROM (
        SELECT page_id, psid, status, at_ms, event_id AS tie FROM status_changes
        UNION ALL
        SELECT page_id, psid, 'open', timestamp_ms, mid FROM msg WHERE direction = 'in'
    ) x ORDER BY page_id, psid, at_ms DESC, tie COLLATE "C" DESC
)
SELECT count(*) FROM conversations c
    LEFT JOIN agg USING (page_id, psid) LEFT JOIN latest USING (page_id, psid)
    LEFT JOIN unread u USING (page_id, psid) LEFT JOIN status s USING (page_id, psid)
WHERE c.message_count <> coalesce(agg.n, 0)
   OR c.last_message_mid IS DISTINCT FROM latest.mid
   OR c.unread_count <> coalesce(u.n, 0)
   OR c.last_in_ms IS DISTINCT FROM agg.in_ms
   OR c.status <> coalesce(s.status, 'open')"#;

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, max_shrink_iters: 64, ..ProptestConfig::default() })]

    #[test]
    fn shuffled_and_duplicated_events_give_identical_files_and_rows((ordered, shuffled) in events()) {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let a = project_in_order(&ordered).await;
            let b = project_shuffled_in_chunks(&shuffled).await;
            let (files_a, files_b) = (tree(a.data_dir()), tree(b.data_dir()));
            assert!(!files_a.is_empty() || ordered.iter().all(|e| !matches!(e.event_type, EventType::Message | EventType::MessageEcho | EventType::PageSnapshot | EventType::PageChange | EventType::Reaction)));
            assert_eq!(files_a, files_b);
            assert_eq!(a.rows().await, b.rows().await);
            assert_eq!(a.count(SUMMARIES_NOT_RECOMPUTED).await, 0, "folded summaries differ from a recount");
        });
    }
}
