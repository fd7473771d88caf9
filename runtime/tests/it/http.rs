use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use pagesync_runtime::config::HttpConfig;
use pagesync_runtime::{CancellationToken, HttpLimits, HttpService};
use reqwest::StatusCode;
use tokio::sync::Notify;

/// Longer than any deadline a test sets: a handler that has not answered by then is stuck.
const STUCK: Duration = Duration::from_secs(30);

struct Served {
    addr: SocketAddr,
    /// Notified each time a /slow or /brief handler starts.
    entered: Arc<Notify>,
    shutdown: CancellationToken,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn serve(limits: HttpLimits) -> Served {
    let entered = Arc::new(Notify::new());
    let sleeper = |lasts: Duration, answer: &'static str| {
        let entered = entered.clone();
        get(move || async move {
            entered.notify_one();
            tokio::time::sleep(lasts).await;
            answer
        })
    };
    let router = Router::new()
        .route("/fast", get(|| async { "fast" }))
        .route("/slow", sleeper(STUCK, "slow"))
        .route("/brief", sleeper(Duration::from_millis(300), "brief"));
    let service = HttpService::bind("test", "127.0.0.1:0".parse().unwrap(), router, limits)
        .await
        .unwrap();
    let addr = service.local_addr();
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(service.run_until_stopped(shutdown.clone()));
    Served {
        addr,
        entered,
        shutdown,
        server,
    }
}

fn limits() -> HttpLimits {
    HttpConfig::default().limits(Duration::from_millis(500))
}

#[tokio::test]
async fn a_request_past_its_deadline_is_answered_408_and_others_are_not_held_up() {
    let served = serve(limits()).await;
    let client = reqwest::Client::new();
    let url = |p: &str| format!("http://{}{p}", served.addr);

    let (slow, fast) = tokio::join!(client.get(url("/slow")).send(), async {
        client.get(url("/fast")).send().await
    });

    assert_eq!(slow.unwrap().status(), StatusCode::REQUEST_TIMEOUT);
    assert_eq!(fast.unwrap().status(), StatusCode::OK);
}

#[tokio::test]
async fn requests_past_the_cap_are_answered_503_with_retry_after() {
    let served = serve(HttpLimits {
        max_requests: 1,
        request_timeout: STUCK,
        ..limits()
    })
    .await;
    let client = reqwest::Client::new();
    let slow = tokio::spawn({
        let url = format!("http://{}/slow", served.addr);
        let client = client.clone();
        async move { client.get(url).send().await }
    });
    served.entered.notified().await;

    let shed = client
        .get(format!("http://{}/fast", served.addr))
        .send()
        .await
        .unwrap();

    assert_eq!(shed.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(shed.headers()["retry-after"], "1");
    let body: serde_json::Value = shed.json().await.unwrap();
    assert_eq!(body["error"], "overloaded");
    slow.abort();
}

#[tokio::test]
async fn shutdown_lets_a_request_in_flight_finish_and_then_stops() {
    let served = serve(limits()).await;
    let brief = tokio::spawn(reqwest::get(format!("http://{}/brief", served.addr)));
    served.entered.notified().await;

    served.shutdown.cancel();

    let answer = brief.await.unwrap().unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    assert_eq!(answer.text().await.unwrap(), "brief");
    tokio::time::timeout(STUCK, served.server)
        .await
        .expect("the server stops")
        .unwrap()
        .unwrap();
    assert!(tokio::net::TcpStream::connect(served.addr).await.is_err());
}
