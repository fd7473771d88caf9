# shellcheck shell=bash
# Makes sure PostgreSQL and nats-server (with JetStream) answer on this machine.
# Uses the ones already listening; otherwise installs Debian's packages when
# missing and starts private instances under $PAGESYNC_SERVICES_DIR.

PAGESYNC_SERVICES_DIR=${PAGESYNC_SERVICES_DIR:-/var/tmp/pagesync-services}
PG_PORT=${PG_PORT:-5432}
NATS_PORT=${NATS_PORT:-4222}

log() { printf '[services] %s\n' "$*" >&2; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

apt_install() {
    log "installing Debian packages: $*"
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get update -qq
    as_root apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

pg_bindir() {
    local dir
    dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    [ -n "$dir" ] && [ -x "$dir/initdb" ] && printf '%s' "$dir"
}

# True when a Postgres server accepts connections on 127.0.0.1:$PG_PORT.
postgres_answers() {
    command -v pg_isready >/dev/null 2>&1 || return 1
    pg_isready -q -h 127.0.0.1 -p "$PG_PORT" -t 2
}

# True when a NATS server with JetStream enabled answers on 127.0.0.1:$NATS_PORT.
nats_answers() {
    local info
    info=$(timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$NATS_PORT && head -n 1 <&3" 2>/dev/null) || return 1
    case "$info" in *'"jetstream":true'*) return 0 ;; *) return 1 ;; esac
}

# The console's browser tests drive Debian's Chromium through chromedriver.
browser_packages_missing() {
    command -v chromium >/dev/null 2>&1 || printf 'chromium '
    command -v chromedriver >/dev/null 2>&1 || printf 'chromium-driver '
}

ensure_packages() {
    local missing=()
    [ -n "$(pg_bindir)" ] && command -v pg_isready >/dev/null 2>&1 || missing+=(postgresql postgresql-client)
    command -v nats-server >/dev/null 2>&1 || missing+=(nats-server)
    command -v curl >/dev/null 2>&1 || missing+=(curl ca-certificates)
    command -v openssl >/dev/null 2>&1 || missing+=(openssl)
    # Building: ring and mimalloc compile C. Testing: tests signal processes with kill(1).
    command -v cc >/dev/null 2>&1 || missing+=(gcc libc6-dev)
    [ -x /usr/bin/kill ] || [ -x /bin/kill ] || missing+=(procps)
    missing+=($(browser_packages_missing))
    if [ ${#missing[@]} -gt 0 ]; then apt_install "${missing[@]}"; fi
}

start_postgres() {
    local bindir data run
    bindir=$(pg_bindir)
    data="$PAGESYNC_SERVICES_DIR/pg/data"
    run="$PAGESYNC_SERVICES_DIR/pg/run"
    mkdir -p "$PAGESYNC_SERVICES_DIR/pg" "$run"
    # initdb refuses to run as root: the cluster belongs to the postgres user.
    local runas=()
    if [ "$(id -u)" -eq 0 ]; then
        chown -R postgres:postgres "$PAGESYNC_SERVICES_DIR/pg"
        runas=(runuser -u postgres --)
    fi
    if [ ! -f "$data/PG_VERSION" ]; then
        log "initialising a PostgreSQL cluster in $data"
        "${runas[@]}" "$bindir/initdb" -D "$data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
    fi
    log "starting PostgreSQL on 127.0.0.1:$PG_PORT"
    "${runas[@]}" "$bindir/pg_ctl" -D "$data" -l "$PAGESYNC_SERVICES_DIR/pg/server.log" -w \
        -o "-p $PG_PORT -k $run -c listen_addresses=127.0.0.1" start >/dev/null
    STARTED_POSTGRES=1
}

start_nats() {
    mkdir -p "$PAGESYNC_SERVICES_DIR/nats"
    log "starting nats-server with JetStream on 127.0.0.1:$NATS_PORT"
    nohup nats-server -js -a 127.0.0.1 -p "$NATS_PORT" -sd "$PAGESYNC_SERVICES_DIR/nats/js" \
        >"$PAGESYNC_SERVICES_DIR/nats/server.log" 2>&1 &
    echo $! >"$PAGESYNC_SERVICES_DIR/nats/pid"
    STARTED_NATS=$!
    for _ in $(seq 1 100); do
        nats_answers && return 0
        sleep 0.1
    done
    log "nats-server did not come up; see $PAGESYNC_SERVICES_DIR/nats/server.log"
    return 1
}

# Postgres and NATS answer when this returns 0. nats-server is also installed
# because some tests start private servers to stop and restart them.
ensure_services() {
    ensure_packages
    postgres_answers || start_postgres
    postgres_answers || { log "PostgreSQL is not answering on 127.0.0.1:$PG_PORT"; return 1; }
    nats_answers || start_nats
    nats_answers || { log "NATS with JetStream is not answering on 127.0.0.1:$NATS_PORT"; return 1; }
    log "PostgreSQL on :$PG_PORT and NATS (JetStream) on :$NATS_PORT are up"
}

# Stops the servers ensure_services started in this shell (scripts/dev; scripts/test
# leaves them running for the next run).
stop_started_services() {
    if [ -n "${STARTED_NATS:-}" ]; then
        log "stopping the nats-server started here"
        kill -TERM "$STARTED_NATS" 2>/dev/null && wait "$STARTED_NATS" 2>/dev/null
        STARTED_NATS=""
    fi
    if [ -n "${STARTED_POSTGRES:-}" ]; then
        log "stopping the PostgreSQL started here"
        local runas=()
        [ "$(id -u)" -ne 0 ] || runas=(runuser -u postgres --)
        "${runas[@]}" "$(pg_bindir)/pg_ctl" -D "$PAGESYNC_SERVICES_DIR/pg/data" -m fast -w stop >/dev/null
        STARTED_POSTGRES=""
    fi
    return 0
}

# Deletes a JetStream stream with the NATS protocol itself (Debian has no nats CLI).
nats_delete_stream() {
    local reply
    # shellcheck disable=SC2016 # $JS is the subject's literal name.
    reply=$(timeout 5 bash -c '
        exec 3<>"/dev/tcp/127.0.0.1/$1" && read -r _ <&3
        printf "CONNECT {\"verbose\":false}\r\nSUB _pagesync.delete 1\r\nPUB \$JS.API.STREAM.DELETE.%s _pagesync.delete 0\r\n\r\n" "$2" >&3
        while read -r line <&3; do
            case $line in MSG*) read -r body <&3; printf "%s" "$body"; exit 0 ;; esac
        done' _ "$NATS_PORT" "$1") || true
    case $reply in *'"success":true'*) return 0 ;; esac
    log "could not delete the stream $1: ${reply:-no answer}"
    return 1
}
