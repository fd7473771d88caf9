//! Reading a delivery's body within limits: its size, a deadline, and a budget of
//! bytes shared by every delivery in flight, so slow or unfinished bodies cannot
//! grow the process's memory without bound.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use bytes::BytesMut;
use futures::StreamExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Why a body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("body is larger than {0} bytes")]
    TooLarge(usize),
    #[error("the body did not arrive within {0:?}")]
    Timeout(Duration),
    #[error("too many bodies are being received at once; retry")]
    OverBudget,
    #[error("could not read the request body")]
    Read(#[source] axum::Error),
}

/// Bytes of bodies in flight, across every request.
#[derive(Debug, Clone)]
pub struct BodyBudget(Arc<Semaphore>);

impl BodyBudget {
    /// A budget of `bytes` (at most `Semaphore::MAX_PERMITS`).
    pub fn new(bytes: usize) -> Self {
        Self(Arc::new(Semaphore::new(bytes.min(Semaphore::MAX_PERMITS))))
    }

    fn reserve(&self, bytes: usize) -> Result<OwnedSemaphorePermit, BodyError> {
        let n = u32::try_from(bytes).map_err(|_| BodyError::OverBudget)?;
        self.0
            .clone()
            .try_acquire_many_owned(n)
            .map_err(|_| BodyError::OverBudget)
    }
}

/// How much of what a body may use.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    pub max_bytes: usize,
    pub timeout: Duration,
}

/// A body read in full, holding its share of the budget until dropped.
pub struct Received {
    pub bytes: Bytes,
    _reserved: OwnedSemaphorePermit,
}

/// True when `body` declares (Content-Length) more than `max` bytes: refused unread.
pub fn declared_over(body: &Body, max: usize) -> bool {
    body.size_hint().exact().is_some_and(|n| n > max as u64)
}

/// Reads `body`. A declared length is refused at once when over the limit and
/// reserved from the budget before any byte is read; a body of unknown length
/// reserves as it arrives. Budget exhausted means [`BodyError::OverBudget`], never a wait.
pub async fn read(
    body: Body,
    limits: BodyLimits,
    budget: &BodyBudget,
) -> Result<Received, BodyError> {
    if declared_over(&body, limits.max_bytes) {
        return Err(BodyError::TooLarge(limits.max_bytes));
    }
    let declared = body.size_hint().exact().map(|n| n as usize);
    let mut reserved = budget.reserve(declared.unwrap_or(0))?;
    let deadline = tokio::time::Instant::now() + limits.timeout;
    let mut chunks = body.into_data_stream();
    let mut whole = Whole::Empty;
    loop {
        let next = tokio::time::timeout_at(deadline, chunks.next())
            .await
            .map_err(|_| BodyError::Timeout(limits.timeout))?;
        let chunk = match next {
            None => break,
            Some(chunk) => chunk.map_err(BodyError::Read)?,
        };
        let len = whole.len() + chunk.len();
        if len > limits.max_bytes {
            return Err(BodyError::TooLarge(limits.max_bytes));
        }
        if len > reserved.num_permits() {
            reserved.merge(budget.reserve(len - reserved.num_permits())?);
        }
        whole.push(chunk, declared);
    }
    Ok(Received {
        bytes: whole.into_bytes(),
        _reserved: reserved,
    })
}

/// The body so far: most deliveries arrive in one chunk, kept without a copy.
enum Whole {
    Empty,
    One(Bytes),
    Many(BytesMut),
}

impl Whole {
    fn len(&self) -> usize {
        match self {
            Self::Empty => 0,
            Self::One(b) => b.len(),
            Self::Many(b) => b.len(),
        }
    }

    fn push(&mut self, chunk: Bytes, declared: Option<usize>) {
        *self = match std::mem::replace(self, Self::Empty) {
            Self::Empty => Self::One(chunk),
            Self::One(first) => {
                let capacity = declared.unwrap_or(0).max(first.len() + chunk.len());
                let mut all = BytesMut::with_capacity(capacity);
                all.extend_from_slice(&first);
                all.extend_from_slice(&chunk);
                Self::Many(all)
            }
            Self::Many(mut all) => {
                all.extend_from_slice(&chunk);
                Self::Many(all)
            }
        };
    }

    fn into_bytes(self) -> Bytes {
        match self {
            Self::Empty => Bytes::new(),
            Self::One(b) => b,
            Self::Many(b) => b.freeze(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: BodyLimits = BodyLimits {
        max_bytes: 100,
        timeout: Duration::from_secs(5),
    };

    fn streamed(parts: &[&'static [u8]]) -> Body {
        let chunks = parts
            .iter()
            .map(|p| Ok::<_, std::io::Error>(Bytes::from_static(p)));
        Body::from_stream(futures::stream::iter(chunks.collect::<Vec<_>>()))
    }

    #[tokio::test]
    async fn chunks_are_joined_and_their_budget_returned_when_dropped() {
        let budget = BodyBudget::new(10);
        let received = read(streamed(&[b"abc", b"def"]), LIMITS, &budget)
            .await
            .unwrap();
        assert_eq!(&received.bytes[..], b"abcdef");
        assert_eq!(budget.0.available_permits(), 4);
        drop(received);
        assert_eq!(budget.0.available_permits(), 10);
    }

    #[tokio::test]
    async fn a_body_past_the_budget_or_the_limit_is_refused() {
        let budget = BodyBudget::new(4);
        let over_budget = read(streamed(&[b"abc", b"def"]), LIMITS, &budget).await;
        assert!(matches!(over_budget, Err(BodyError::OverBudget)));
        assert_eq!(
            budget.0.available_permits(),
            4,
            "a refused body keeps nothing"
        );

        let big = read(Body::from(vec![b'x'; 101]), LIMITS, &BodyBudget::new(1000)).await;
        assert!(matches!(big, Err(BodyError::TooLarge(100))));
    }
}
