//! Misbehaving HTTP clients on raw sockets: a head or a body sent a byte at a time,
//! sockets left open and silent. Each helper is bounded in time.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a helper waits for the server before reporting that it did not act.
pub const GENEROUS: Duration = Duration::from_secs(15);

/// A connected socket.
pub async fn connect(addr: SocketAddr) -> TcpStream {
    TcpStream::connect(addr)
        .await
        .expect("connect to the server")
}

/// The head of a POST to `path` declaring `content_length` body bytes, with `headers`
/// (each `name: value`) added.
pub fn post_head(path: &str, content_length: usize, headers: &[&str]) -> Vec<u8> {
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\ncontent-length: {content_length}\r\n"
    );
    for h in headers {
        head.push_str(h);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    head.into_bytes()
}

/// Opens a request with `head` (which must carry `expect: 100-continue`) and waits
/// for the server's `100 Continue`: its handler has started reading the body.
pub async fn begin_body(addr: SocketAddr, head: &[u8]) -> TcpStream {
    let mut stream = connect(addr).await;
    stream.write_all(head).await.expect("send the head");
    let status = status_line(&mut stream, GENEROUS).await;
    assert_eq!(
        status.as_deref(),
        Some("HTTP/1.1 100 Continue"),
        "the server did not start reading"
    );
    stream
}

/// Writes `bytes` one at a time, `every` apart, until the server closes the
/// connection or answers. True when it did so within `bound`; what it answered is
/// in `answer`.
pub async fn trickle_until_closed(
    stream: &mut TcpStream,
    bytes: &[u8],
    every: Duration,
    bound: Duration,
    answer: &mut Vec<u8>,
) -> bool {
    let deadline = tokio::time::Instant::now() + bound;
    for byte in bytes.iter().cycle() {
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        if stream.write_all(&[*byte]).await.is_err() {
            return true;
        }
        let mut buf = [0u8; 4096];
        match tokio::time::timeout(every, stream.read(&mut buf)).await {
            Err(_still_open) => {}
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(n)) => {
                answer.extend_from_slice(&buf[..n]);
                return closed_within(stream, bound, answer).await;
            }
        }
    }
    false
}

/// Reads until the server closes the connection (or resets it). True when it did
/// so within `bound`; whatever it sent first is appended to `answer`.
pub async fn closed_within(stream: &mut TcpStream, bound: Duration, answer: &mut Vec<u8>) -> bool {
    let deadline = tokio::time::Instant::now() + bound;
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_elapsed) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(n)) => answer.extend_from_slice(&buf[..n]),
        }
    }
}

/// The status line of the answer the server sends on `stream` within `bound`.
pub async fn status_line(stream: &mut TcpStream, bound: Duration) -> Option<String> {
    let deadline = tokio::time::Instant::now() + bound;
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !got.windows(2).any(|w| w == b"\r\n") {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => got.extend_from_slice(&buf[..n]),
            _ => return None,
        }
    }
    let text = String::from_utf8_lossy(&got);
    text.lines().next().map(str::to_owned)
}

/// Whether the server has closed `stream` already: a read that would block means open.
pub async fn is_closed(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 1];
    matches!(
        tokio::time::timeout(Duration::from_millis(1), stream.read(&mut buf)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}
