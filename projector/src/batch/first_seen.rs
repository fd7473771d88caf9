//! Where each message was first seen (issue 11, webhook coverage): the origin of
//! the copy lowest in the stream. Kept apart from the winning copy, which a
//! better-ranked later copy replaces.

use std::collections::BTreeMap;

use tokio_postgres::GenericClient;

use super::prepare::Candidate;
use crate::decode::{Detail, Effect, origin};

/// The values of `message_first_seen.origin` (its CHECK).
const ORIGINS: [&str; 3] = ["webhook", "poll", "send"];

/// Messages recorded for the first time, by (platform, origin).
pub type Counts = BTreeMap<(&'static str, &'static str), u64>;

/// The copy of a message lowest in the stream.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct FirstCopy<'a> {
    seq: i64,
    page: &'a str,
    psid: &'a str,
    origin: &'static str,
    timestamp_ms: i64,
}

/// Records the first-seen origin of every message among `cands`; an earlier copy
/// already recorded (a lower stream sequence) stays. Adds the messages seen for
/// the first time to `counts`.
pub(super) async fn record(
    tx: &impl GenericClient,
    cands: &[&Candidate],
    counts: &mut Counts,
) -> Result<(), tokio_postgres::Error> {
    let (first, platforms) = first_copies(cands);
    if first.is_empty() {
        return Ok(());
    }
    let n = first.len();
    let (mut mids, mut pages, mut psids, mut origins) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut seqs, mut ts) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for (mid, copy) in first {
        mids.push(mid);
        pages.push(copy.page);
        psids.push(copy.psid);
        origins.push(copy.origin);
        seqs.push(copy.seq);
        ts.push(copy.timestamp_ms);
    }
    let rows = tx
        .query(
            UPSERT_FIRST_SEEN,
            &[&mids, &pages, &psids, &origins, &seqs, &ts],
        )
        .await?;
    for r in rows.iter().filter(|r| r.get::<_, bool>(2)) {
        let platform = platforms
            .get(r.get::<_, &str>(0))
            .copied()
            .unwrap_or("messenger");
        let origin = ORIGINS
            .into_iter()
            .find(|o| *o == r.get::<_, &str>(1))
            .unwrap_or("webhook");
        *counts.entry((platform, origin)).or_default() += 1;
    }
    Ok(())
}

/// Per mid, the copy lowest in the stream, and the platform of each mid.
type FirstCopies<'a> = (
    BTreeMap<&'a str, FirstCopy<'a>>,
    BTreeMap<&'a str, &'static str>,
);

fn first_copies<'a>(cands: &[&'a Candidate]) -> FirstCopies<'a> {
    let mut first: BTreeMap<&str, FirstCopy> = BTreeMap::new();
    let mut platforms: BTreeMap<&str, &'static str> = BTreeMap::new();
    for c in cands {
        let Effect::Conversation {
            page,
            psid,
            timestamp_ms,
            detail: Detail::Message(m),
            ..
        } = &c.effect
        else {
            continue;
        };
        let copy = FirstCopy {
            seq: c.first.seq as i64,
            page: page.as_str(),
            psid: psid.as_str(),
            origin: origin(c.first.source),
            timestamp_ms: *timestamp_ms,
        };
        platforms.insert(m.mid.as_str(), c.event.platform.as_str());
        first
            .entry(m.mid.as_str())
            .and_modify(|old| *old = (*old).min(copy))
            .or_insert(copy);
    }
    (first, platforms)
}

const UPSERT_FIRST_SEEN: &str = "
INSERT INTO message_first_seen (mid, page_id, psid, origin, stream_seq, timestamp_ms)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int8[], $6::int8[])
ON CONFLICT (mid) DO UPDATE SET
    page_id = EXCLUDED.page_id, psid = EXCLUDED.psid, origin = EXCLUDED.origin,
    stream_seq = EXCLUDED.stream_seq, timestamp_ms = EXCLUDED.timestamp_ms
WHERE message_first_seen.stream_seq > EXCLUDED.stream_seq
RETURNING mid, origin, (xmax = 0) AS inserted";
