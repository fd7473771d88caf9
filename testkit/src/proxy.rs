//! A TCP proxy in front of Postgres that a test can cut (connections closed,
//! new ones refused) or freeze: the connections open at that moment stop
//! forwarding bytes in both directions without being closed (no FIN, no RST), as
//! behind a dead NAT entry or a hung middlebox, while new connections pass.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pagesync_runtime::config::{DatabaseConfig, DatabaseUrl};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// One proxied connection: its task and whether it is frozen.
struct Conn {
    task: JoinHandle<()>,
    frozen: watch::Sender<bool>,
}

/// A proxy on a free port of 127.0.0.1 to one `host:port`.
pub struct Proxy {
    pub port: u16,
    open: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<Conn>>>,
    accept: JoinHandle<()>,
}

impl Proxy {
    /// Forwards to `target` (`host:port`).
    pub async fn start(target: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let port = listener.local_addr().expect("bound").port();
        let open = Arc::new(AtomicBool::new(true));
        let conns: Arc<Mutex<Vec<Conn>>> = Arc::default();
        let (o, c) = (open.clone(), conns.clone());
        let accept = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                if !o.load(Ordering::SeqCst) {
                    continue; // dropped: the client sees the connection closed
                }
                let (frozen, watch) = watch::channel(false);
                let task = tokio::spawn(forward(inbound, target.clone(), watch));
                c.lock().unwrap().push(Conn { task, frozen });
            }
        });
        Self {
            port,
            open,
            conns,
            accept,
        }
    }

    /// A proxy to the server of the Postgres `url`, and `url` pointed at the proxy.
    pub async fn for_url(url: &str) -> (Self, DatabaseUrl) {
        let (_, target) = through_port(url, 0);
        let proxy = Self::start(target).await;
        let proxied = through_port(url, proxy.port).0;
        let proxied = DatabaseUrl::parse(&proxied).expect("a proxied test database URL parses");
        (proxy, proxied)
    }

    /// Puts a new proxy between `database` and its server, with the connection
    /// deadlines of `statement_timeout` (short, so that tests of a frozen
    /// connection end soon).
    pub async fn in_front_of(database: &mut DatabaseConfig, statement_timeout: Duration) -> Self {
        let (proxy, url) = Self::for_url(database.database_url.expose()).await;
        database.database_url = url;
        database.database_statement_timeout = statement_timeout;
        proxy
    }

    /// Refuses new connections and closes the open ones.
    pub fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        for c in self.conns.lock().unwrap().drain(..) {
            c.task.abort();
        }
    }

    /// Accepts new connections again (after [`cut`](Self::cut)).
    pub fn restore(&self) {
        self.open.store(true, Ordering::SeqCst);
    }

    /// Stops forwarding on every open connection, leaving it open; returns how many
    /// it froze. Connections made later pass normally.
    pub fn freeze(&self) -> usize {
        let conns = self.conns.lock().unwrap();
        for c in conns.iter() {
            c.frozen.send_replace(true);
        }
        conns.len()
    }

    /// Lets frozen connections forward again, with the bytes they held.
    pub fn thaw(&self) {
        for c in self.conns.lock().unwrap().iter() {
            c.frozen.send_replace(false);
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}

async fn forward(inbound: TcpStream, target: String, frozen: watch::Receiver<bool>) {
    let Ok(outbound) = TcpStream::connect(&target).await else {
        return; // dropped: the client sees the connection closed
    };
    let (in_read, in_write) = inbound.into_split();
    let (out_read, out_write) = outbound.into_split();
    futures::join!(
        pump(in_read, out_write, frozen.clone()),
        pump(out_read, in_write, frozen),
    );
}

/// Copies `from` to `to` while not frozen. Bytes read just before a freeze are
/// held until a thaw; nothing is read while frozen, so the peer's sends fill the
/// socket buffers and stall, as over a silent network.
async fn pump(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    mut frozen: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        if frozen.wait_for(|f| !*f).await.is_err() {
            return;
        }
        let n = tokio::select! {
            read = from.read(&mut buf) => match read {
                Ok(n) => n,
                Err(_) => return,
            },
            // A freeze while waiting: stop reading.
            changed = frozen.changed() => match changed {
                Ok(()) => continue,
                Err(_) => return,
            },
        };
        if frozen.wait_for(|f| !*f).await.is_err() {
            return;
        }
        if n == 0 {
            // Either side closing is passed on, as a real network would: dropping
            // the write half sends FIN.
            return;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// `url` with its `host:port` replaced by `127.0.0.1:<port>`, and the old `host:port`.
pub fn through_port(url: &str, port: u16) -> (String, String) {
    let start = url
        .find('@')
        .map_or_else(|| url.find("://").expect("a URL") + 3, |i| i + 1);
    let end = start + url[start..].find('/').expect("a URL with a database");
    let target = url[start..end].to_owned();
    (
        format!("{}127.0.0.1:{port}{}", &url[..start], &url[end..]),
        target,
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_url_points_at_the_proxy() {
        assert_eq!(
            super::through_port("postgres://u@h:5432/db?x=1", 7),
            (
                "postgres://u@127.0.0.1:7/db?x=1".to_owned(),
                "h:5432".to_owned()
            )
        );
    }
}
