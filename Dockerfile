# One image holds the four pagesync binaries; docker-compose.yml picks one per
# service with `command`. Built with the toolchain CI uses (rustc 1.95.0) and the
# committed Cargo.lock (--locked), so it compiles exactly what CI tests.
#
# Stages: chef (cargo-chef) → planner (the dependency recipe, which changes only
# when a Cargo.toml or Cargo.lock does) → build (dependencies cooked in their own
# cached layer, then the workspace) → runtime (Debian slim, non-root, binaries only).
# scripts/compose-check overrides both bases with local images built from Debian
# packages; nothing else differs.
ARG RUST_IMAGE=rust:1.95.0-slim-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${RUST_IMAGE} AS chef
ARG CARGO_CHEF_VERSION=0.1.78
RUN cargo install cargo-chef --locked --version "${CARGO_CHEF_VERSION}"
WORKDIR /src

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS build
ARG BINS="--bin ingest --bin projector --bin poller --bin oauth-api"
COPY --from=planner /src/recipe.json recipe.json
# Only this layer compiles the third-party crates; it is reused until the recipe changes.
RUN cargo chef cook --release --locked ${BINS} --recipe-path recipe.json
COPY . .
# Debug line tables (profile.release debug = 1) help profiling, not a container: stripped.
RUN cargo build --release --locked ${BINS} \
 && mkdir -p /out \
 && for bin in ingest projector poller oauth-api; do \
        objcopy --strip-debug "target/release/$bin" "/out/$bin"; \
    done

FROM ${RUNTIME_IMAGE} AS runtime
RUN groupadd --system --gid 10001 pagesync \
 && useradd --system --uid 10001 --gid pagesync --home-dir /app --create-home pagesync \
 && mkdir -p /data \
 && chown pagesync:pagesync /data
# NATS over TLS verifies against the system roots: the build image's bundle (Debian's
# ca-certificates) is all of that package the services need.
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY scripts/docker/entrypoint scripts/docker/healthcheck /usr/local/bin/
COPY --from=build /out/ /usr/local/bin/
USER pagesync
WORKDIR /app
ENV DATA_DIR=/data
VOLUME /data
ENTRYPOINT ["entrypoint"]
CMD ["ingest"]
