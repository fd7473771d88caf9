//! The floor: verify the HMAC, publish the body as one message, await the ack.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use pagesync_schema::signature::{AppSecret, Signature};

#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    pub addr: SocketAddr,
    #[arg(long)]
    pub nats_url: String,
    #[arg(long)]
    pub subject: String,
    #[arg(long)]
    pub secret: String,
}

struct Floor {
    secret: AppSecret,
    js: async_nats::jetstream::Context,
    subject: String,
}

#[tokio::main]
pub async fn serve(args: Args) -> anyhow::Result<()> {
    let client = async_nats::connect(&args.nats_url).await?;
    let floor = Arc::new(Floor {
        secret: AppSecret::new(&args.secret.into()),
        js: async_nats::jetstream::new(client),
        subject: args.subject,
    });
    let app = axum::Router::new()
        .route("/facebook/webhook", post(hook))
        .with_state(floor);
    let listener = tokio::net::TcpListener::bind(args.addr).await?;
    axum::serve(listener, app).await?;
    Ok(())
}

async fn hook(State(floor): State<Arc<Floor>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let verified = headers
        .get("x-hub-signature-256")
        .and_then(|v| Signature::parse(v.as_bytes()).ok())
        .is_some_and(|s| s.verify(&floor.secret, &body).is_ok());
    if !verified {
        return StatusCode::UNAUTHORIZED;
    }
    let id = headers
        .get("x-bench-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let mut h = async_nats::HeaderMap::new();
    h.insert(async_nats::header::NATS_MESSAGE_ID, id.as_str());
    match floor
        .js
        .publish_with_headers(floor.subject.clone(), h, body)
        .await
    {
        Ok(ack) => match ack.await {
            Ok(_) => StatusCode::OK,
            Err(_) => StatusCode::SERVICE_UNAVAILABLE,
        },
        Err(_) => StatusCode::SERVICE_UNAVAILABLE,
    }
}
