# Stand-in for the official rust image (scripts/compose-check only): this machine's
# toolchain (the build context is its sysroot), its CA bundle, and the C compiler
# ring and mimalloc use.
ARG BASE_IMAGE=pagesync-local/debian:bookworm
FROM ${BASE_IMAGE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY bin /usr/local/rust/bin
COPY lib /usr/local/rust/lib
COPY libexec /usr/local/rust/libexec
COPY etc /usr/local/rust/etc
ENV CARGO_HOME=/usr/local/cargo CARGO_HTTP_CAINFO=/etc/ssl/certs/ca-certificates.crt \
    PATH=/usr/local/cargo/bin:/usr/local/rust/bin:$PATH
