//! A client-side deadline on every Postgres connection: the socket fails when the
//! server has owed a reply for too long without sending a byte.
//!
//! Nothing else catches a connection that goes silent without closing (a dead NAT
//! entry, a hung middlebox, a frozen proxy): TCP keepalive probes and the user
//! timeout are answered by whatever holds the other end, the server-side
//! `statement_timeout` never hears of a query that did not reach it, and
//! tokio-postgres waits for a reply forever. The watchdog counts the requests that
//! end in `ReadyForQuery` (a simple `Query`, or a `Sync` closing an extended
//! exchange; the startup owes one too) against the `ReadyForQuery` messages
//! received. While some reply is owed and nothing has arrived for `limit`, reads
//! and writes fail with `TimedOut`: the connection task ends, every query waiting
//! on it returns an error, and the pool drops the closed client instead of reusing
//! it. An idle connection owes nothing, so it is never cut for being idle.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// Counted when a connection is given up for its silence.
pub const SILENT_CONNECTIONS: &str = "pagesync_postgres_silent_connections_total";

/// Splits one direction of the protocol into messages and reports each type byte.
/// Every message is a type byte and a big-endian length that counts itself but not
/// the type; the client's first message (startup) has no type byte.
#[derive(Debug)]
struct Framer {
    untyped_next: bool,
    header: [u8; 5],
    have: usize,
    body_left: usize,
}

impl Framer {
    fn new(untyped_first: bool) -> Self {
        Self {
            untyped_next: untyped_first,
            header: [0; 5],
            have: 0,
            body_left: 0,
        }
    }

    /// Feeds bytes in stream order; `on_type` gets the type of each message whose
    /// header completes (0 for the untyped startup message).
    fn feed(&mut self, mut bytes: &[u8], mut on_type: impl FnMut(u8)) {
        while !bytes.is_empty() {
            if self.body_left > 0 {
                let n = self.body_left.min(bytes.len());
                self.body_left -= n;
                bytes = &bytes[n..];
                continue;
            }
            let header_len = if self.untyped_next { 4 } else { 5 };
            let n = (header_len - self.have).min(bytes.len());
            self.header[self.have..self.have + n].copy_from_slice(&bytes[..n]);
            self.have += n;
            bytes = &bytes[n..];
            if self.have < header_len {
                return;
            }
            let (ty, len) = if self.untyped_next {
                (0, &self.header[..4])
            } else {
                (self.header[0], &self.header[1..5])
            };
            let len = u32::from_be_bytes(len.try_into().expect("four bytes")) as usize;
            self.body_left = len.saturating_sub(4);
            self.have = 0;
            self.untyped_next = false;
            on_type(ty);
        }
    }
}

/// A Postgres byte stream that fails once the server has owed a reply for `limit`
/// without sending anything.
pub struct Watched<S> {
    inner: S,
    limit: Duration,
    /// Replies (`ReadyForQuery`) owed by the server; the startup owes one.
    owed: u64,
    /// When the server last sent a byte, or a reply became owed after none was.
    last_heard: Instant,
    timer: Pin<Box<Sleep>>,
    sent: Framer,
    received: Framer,
    failed: bool,
}

impl<S> Watched<S> {
    pub fn new(inner: S, limit: Duration) -> Self {
        let now = Instant::now();
        Self {
            inner,
            limit,
            owed: 1,
            last_heard: now,
            timer: Box::pin(tokio::time::sleep_until(now + limit)),
            sent: Framer::new(true),
            received: Framer::new(false),
            failed: false,
        }
    }

    fn timed_out(&self) -> io::Error {
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "Postgres sent nothing for {:?} while a reply was owed",
                self.limit
            ),
        )
    }

    /// Errs once a reply has been owed for `limit` in silence; otherwise makes
    /// sure the task is woken when that would happen.
    fn poll_deadline(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.failed {
            return Poll::Ready(Err(self.timed_out()));
        }
        if self.owed == 0 {
            return Poll::Ready(Ok(()));
        }
        // The timer is moved forward lazily: bytes that arrived since it was set
        // only push `last_heard`.
        while self.timer.as_mut().poll(cx).is_ready() {
            let due = self.last_heard + self.limit;
            if Instant::now() >= due {
                self.failed = true;
                // The connection task logs the error it ends with.
                metrics::counter!(SILENT_CONNECTIONS).increment(1);
                return Poll::Ready(Err(self.timed_out()));
            }
            self.timer.as_mut().reset(due);
        }
        Poll::Ready(Ok(()))
    }

    fn on_sent(&mut self, bytes: &[u8]) {
        let was_owed = self.owed;
        let owed = &mut self.owed;
        self.sent.feed(bytes, |ty| {
            if ty == b'Q' || ty == b'S' {
                *owed += 1;
            }
        });
        if was_owed == 0 && self.owed > 0 {
            self.last_heard = Instant::now();
        }
    }

    fn on_received(&mut self, bytes: &[u8]) {
        let owed = &mut self.owed;
        self.received.feed(bytes, |ty| {
            if ty == b'Z' {
                *owed = owed.saturating_sub(1);
            }
        });
        self.last_heard = Instant::now();
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_deadline(cx))?;
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        let new = &buf.filled()[before..];
        if !new.is_empty() {
            this.on_received(new);
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_deadline(cx))?;
        let n = ready!(Pin::new(&mut this.inner).poll_write(cx, buf))?;
        this.on_sent(&buf[..n]);
        // Arms the timer for a reply that just became owed.
        ready!(this.poll_deadline(cx))?;
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_deadline(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn msg(ty: u8, body: &[u8]) -> Vec<u8> {
        let mut m = vec![ty];
        m.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
        m.extend_from_slice(body);
        m
    }

    fn startup() -> Vec<u8> {
        let body = b"\x00\x03\x00\x00user\x00x\x00\x00";
        let mut m = (body.len() as u32 + 4).to_be_bytes().to_vec();
        m.extend_from_slice(body);
        m
    }

    #[test]
    fn messages_are_found_whatever_the_chunks() {
        let mut stream = startup();
        stream.extend(msg(b'P', b"abc\x00"));
        stream.extend(msg(b'S', b""));
        stream.extend(msg(b'Q', b"SELECT 1\x00"));
        for chunk in [1, 2, 3, 7, 100] {
            let mut framer = Framer::new(true);
            let mut types = Vec::new();
            for part in stream.chunks(chunk) {
                framer.feed(part, |t| types.push(t));
            }
            assert_eq!(types, vec![0, b'P', b'S', b'Q'], "chunks of {chunk}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_server_silent_while_a_reply_is_owed_fails_the_stream() {
        let (client, mut server) = tokio::io::duplex(1 << 16);
        let mut watched = Watched::new(client, Duration::from_secs(5));
        watched.write_all(&startup()).await.unwrap();
        server.write_all(&msg(b'Z', b"I")).await.unwrap();
        let mut buf = [0u8; 64];
        let n = watched.read(&mut buf).await.unwrap();
        assert_eq!(n, 6);
        assert_eq!(watched.owed, 0);

        // Idle: nothing owed, so no deadline.
        let idle = tokio::time::timeout(Duration::from_secs(60), watched.read(&mut buf)).await;
        assert!(idle.is_err(), "an idle connection is left alone");

        // A query the server never answers.
        watched
            .write_all(&msg(b'Q', b"SELECT 1\x00"))
            .await
            .unwrap();
        let err = watched.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(watched.write_all(b"x").await.is_err(), "stays failed");
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_reply_that_keeps_sending_is_not_cut() {
        let (client, mut server) = tokio::io::duplex(1 << 16);
        let mut watched = Watched::new(client, Duration::from_secs(5));
        watched.write_all(&startup()).await.unwrap();
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 64];
            let mut total = 0;
            while watched.owed > 0 {
                total += watched.read(&mut buf).await.unwrap();
            }
            total
        });
        // Rows every 4 s for 20 s, then ReadyForQuery.
        for _ in 0..5 {
            tokio::time::sleep(Duration::from_secs(4)).await;
            server.write_all(&msg(b'D', b"row")).await.unwrap();
        }
        server.write_all(&msg(b'Z', b"I")).await.unwrap();
        assert_eq!(reader.await.unwrap(), 5 * 8 + 6);
    }
}
