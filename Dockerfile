# Builds every pagesync service binary into one small runtime image;
# docker-compose.yml picks the binary per service with `command`.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin ingest --bin projector --bin poller --bin oauth-api \
 && mkdir -p /out && cp target/release/ingest target/release/projector target/release/poller target/release/oauth-api /out/

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home /app pagesync && mkdir -p /data && chown pagesync /data
COPY --from=build /out/ /usr/local/bin/
USER pagesync
WORKDIR /app
