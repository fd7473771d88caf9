//! How the pool opens a Postgres connection: its own TCP socket (keepalive and
//! user timeout set as the configuration says) wrapped in the [`Watched`] deadline,
//! handed to tokio-postgres with `connect_raw`.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_postgres::config::{Host, LoadBalanceHosts, TargetSessionAttrs};
use tokio_postgres::{Client, Config, Connection, NoTls};

use crate::watchdog::Watched;

type Connected = Result<(Client, JoinHandle<()>), tokio_postgres::Error>;

/// Opens the pool's connections; `silence` is the watchdog's limit (none: the
/// connection is opened by tokio-postgres itself, unwatched).
pub struct Connector {
    pub silence: Option<Duration>,
}

impl deadpool_postgres::Connect for Connector {
    fn connect(&self, pg: &Config) -> Pin<Box<dyn Future<Output = Connected> + Send + '_>> {
        let pg = pg.clone();
        let silence = self.silence;
        Box::pin(async move {
            match (silence, tcp_targets(&pg)) {
                (Some(limit), Some(targets)) => connect_watched(&pg, &targets, limit).await,
                // Unix sockets have no network to go silent; the rarer URL options
                // (load balancing, target_session_attrs) are tokio-postgres' to honour.
                _ => {
                    let (client, connection) = pg.connect(NoTls).await?;
                    Ok((client, spawn(connection)))
                }
            }
        })
    }
}

/// The `(host, port)` pairs to try in order, when every host is TCP and nothing
/// asks for more than trying them in order.
fn tcp_targets(pg: &Config) -> Option<Vec<(String, u16)>> {
    if pg.get_target_session_attrs() != TargetSessionAttrs::Any
        || pg.get_load_balance_hosts() != LoadBalanceHosts::Disable
    {
        return None;
    }
    let (hosts, addrs, ports) = (pg.get_hosts(), pg.get_hostaddrs(), pg.get_ports());
    let count = hosts.len().max(addrs.len());
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
        let host = match (addrs.get(i), hosts.get(i)) {
            (Some(addr), _) => addr.to_string(),
            (None, Some(Host::Tcp(name))) => name.clone(),
            _ => return None,
        };
        out.push((host, port));
    }
    (!out.is_empty()).then_some(out)
}

async fn connect_watched(pg: &Config, targets: &[(String, u16)], limit: Duration) -> Connected {
    let mut failure = io::Error::new(io::ErrorKind::NotFound, "no Postgres host to connect to");
    for (host, port) in targets {
        match tcp(pg, host, *port).await {
            Ok(stream) => {
                let (client, connection) =
                    pg.connect_raw(Watched::new(stream, limit), NoTls).await?;
                return Ok((client, spawn(connection)));
            }
            Err(e) => failure = e,
        }
    }
    // tokio-postgres builds its errors itself: the socket's error reaches the
    // caller as that of a stream that fails at once.
    let (client, connection) = pg.connect_raw(Failed(Some(failure)), NoTls).await?;
    Ok((client, spawn(connection)))
}

async fn tcp(pg: &Config, host: &str, port: u16) -> io::Result<TcpStream> {
    let connect = TcpStream::connect((host, port));
    let stream = match pg.get_connect_timeout() {
        Some(limit) => tokio::time::timeout(*limit, connect)
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??,
        None => connect.await?,
    };
    stream.set_nodelay(true)?;
    let socket = socket2::SockRef::from(&stream);
    if pg.get_keepalives() {
        let mut keepalive = socket2::TcpKeepalive::new().with_time(pg.get_keepalives_idle());
        #[cfg(target_os = "linux")]
        {
            if let Some(interval) = pg.get_keepalives_interval() {
                keepalive = keepalive.with_interval(interval);
            }
            if let Some(retries) = pg.get_keepalives_retries() {
                keepalive = keepalive.with_retries(retries);
            }
        }
        socket.set_tcp_keepalive(&keepalive)?;
    }
    #[cfg(target_os = "linux")]
    if let Some(limit) = pg.get_tcp_user_timeout() {
        socket.set_tcp_user_timeout(Some(*limit))?;
    }
    Ok(stream)
}

/// Drives a connection; its end is logged, since the queries that fail with it
/// say only that the connection closed.
fn spawn<S, T>(connection: Connection<S, T>) -> JoinHandle<()>
where
    Connection<S, T>: Future<Output = Result<(), tokio_postgres::Error>> + Send + 'static,
{
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %e, "Postgres connection ended with an error");
        }
    })
}

/// A stream that fails with one error (see `connect_watched`).
struct Failed(Option<io::Error>);

impl Failed {
    fn error(&mut self) -> io::Error {
        self.0
            .take()
            .unwrap_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "not connected"))
    }
}

impl AsyncRead for Failed {
    fn poll_read(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        _: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Poll::Ready(Err(self.get_mut().error()))
    }
}

impl AsyncWrite for Failed {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, _: &[u8]) -> Poll<io::Result<usize>> {
        Poll::Ready(Err(self.get_mut().error()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Err(self.get_mut().error()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_hosts_are_tried_in_order_and_anything_else_is_left_to_tokio_postgres() {
        let pg: Config = "postgres://u@a:1,b:2/db".parse().unwrap();
        assert_eq!(
            tcp_targets(&pg),
            Some(vec![("a".to_owned(), 1), ("b".to_owned(), 2)])
        );
        let pg: Config = "host=/run/postgresql user=u".parse().unwrap();
        assert_eq!(tcp_targets(&pg), None);
        let pg: Config = "postgres://u@a/db?target_session_attrs=read-write"
            .parse()
            .unwrap();
        assert_eq!(tcp_targets(&pg), None);
    }
}
