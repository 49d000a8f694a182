#!/usr/bin/env bash
# Runs the whole test suite against a real, throwaway PostgreSQL (and SQLite files) and a
# real, throwaway Redis.
#
#   scripts/test.sh                 # everything
#   scripts/test.sh store           # extra arguments go to `cargo nextest run` (here a filter)
#
# Works from any directory on a fresh Debian machine: installs the PostgreSQL server with apt
# only when `initdb` cannot be found, creates a cluster in a temp dir as an unprivileged user
# (`tokengate-test` when run as root), starts it on a free port on 127.0.0.1 with trust auth,
# exports TG_TEST_PG_URL; installs Redis (Debian's redis-server) only when `redis-server` cannot
# be found, starts one on another free port with nothing saved to disk, exports
# TG_TEST_REDIS_URL; runs the tests, then stops both and removes the dir. The web page tests
# drive Debian's headless chromium through chromedriver: both are installed with apt when
# missing, and TG_TEST_CHROMEDRIVER names the driver. The admin API's Schemathesis test runs
# in a Python environment made once (scripts/schemathesis-venv.sh) and named by
# TG_TEST_SCHEMATHESIS.
# Exits with the tests' status.
set -euo pipefail

cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.."

log() { printf 'test.sh: %s\n' "$*" >&2; }

if [[ -d "$HOME/.cargo/bin" ]]; then PATH="$HOME/.cargo/bin:$PATH"; fi

# --- PostgreSQL binaries -------------------------------------------------------------------

find_pg_bin() {
    local initdb
    if initdb=$(command -v initdb 2>/dev/null); then
        dirname "$(readlink -f "$initdb")"
        return 0
    fi
    # Debian keeps the server binaries out of PATH; take the newest version.
    local dir
    dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    if [[ -n "$dir" && -x "$dir/initdb" ]]; then
        echo "$dir"
        return 0
    fi
    return 1
}

if ! PG_BIN=$(find_pg_bin); then
    log "initdb not found; installing PostgreSQL with apt-get"
    SUDO=()
    if [[ $(id -u) -ne 0 ]]; then SUDO=(sudo); fi
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql
    PG_BIN=$(find_pg_bin) || { log "initdb still not found after installing postgresql"; exit 1; }
fi
# The TLS tests drive real clients: curl (with HTTP/2), openssl and git.
missing=()
for tool in curl openssl git; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [[ ${#missing[@]} -gt 0 ]]; then
    log "installing ${missing[*]} with apt-get"
    SUDO=()
    if [[ $(id -u) -ne 0 ]]; then SUDO=(sudo); fi
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"
fi

for tool in initdb pg_ctl pg_isready; do
    [[ -x "$PG_BIN/$tool" ]] || { log "$PG_BIN/$tool is missing"; exit 1; }
done

# --- Redis binaries ------------------------------------------------------------------------

PATH="$PATH:/usr/sbin:/sbin"
if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
    log "redis-server not found; installing Redis with apt-get"
    SUDO=()
    if [[ $(id -u) -ne 0 ]]; then SUDO=(sudo); fi
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y redis-server
    command -v redis-server >/dev/null 2>&1 \
        || { log "redis-server still not found after installing redis-server"; exit 1; }
fi

# --- Chromium for the web page tests ------------------------------------------------------

# Debian's chromium and its WebDriver; the page tests start chromedriver themselves.
find_chromedriver() {
    command -v chromedriver 2>/dev/null || { [[ -x /usr/bin/chromedriver ]] && echo /usr/bin/chromedriver; }
}
if [[ -z "${TG_TEST_CHROMEDRIVER:-}" ]]; then
    if ! TG_TEST_CHROMEDRIVER=$(find_chromedriver) || ! command -v chromium >/dev/null 2>&1; then
        log "chromium or chromedriver not found; installing chromium and chromium-driver with apt-get"
        SUDO=()
        if [[ $(id -u) -ne 0 ]]; then SUDO=(sudo); fi
        "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update
        "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium chromium-driver
        TG_TEST_CHROMEDRIVER=$(find_chromedriver) || { log "chromedriver still not found after installing chromium-driver"; exit 1; }
    fi
    export TG_TEST_CHROMEDRIVER
fi
log "chromedriver: $TG_TEST_CHROMEDRIVER"

# --- who runs the cluster ------------------------------------------------------------------

# initdb and postgres refuse to run as root.
if [[ $(id -u) -eq 0 ]]; then
    PG_OS_USER=tokengate-test
    if ! id -u "$PG_OS_USER" >/dev/null 2>&1; then
        useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin \
            "$PG_OS_USER"
    fi
    as_pg() {
        if command -v runuser >/dev/null 2>&1; then
            runuser -u "$PG_OS_USER" -- "$@"
        else
            su -s /bin/sh "$PG_OS_USER" -c "$(printf '%q ' "$@")"
        fi
    }
else
    PG_OS_USER=$(id -un)
    as_pg() { "$@"; }
fi

# --- the throwaway cluster -----------------------------------------------------------------

TMP=$(mktemp -d "${TMPDIR:-/tmp}/tokengate-test.XXXXXX")
DATA="$TMP/data"
PG_LOG="$TMP/postgres.log"
STARTED=0
REDIS_PID=

cleanup() {
    local status=$?
    if [[ $STARTED -eq 1 ]]; then
        as_pg "$PG_BIN/pg_ctl" stop -D "$DATA" -m immediate -w >/dev/null 2>&1 || true
    fi
    if [[ -n $REDIS_PID ]]; then
        kill -TERM "$REDIS_PID" 2>/dev/null || true
        wait "$REDIS_PID" 2>/dev/null || true
    fi
    rm -rf "$TMP"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

chmod 755 "$TMP"
chown "$PG_OS_USER" "$TMP" 2>/dev/null || true
DB_USER=tokengate
as_pg "$PG_BIN/initdb" -D "$DATA" --username="$DB_USER" --auth=trust --encoding=UTF8 \
    --no-locale --no-sync >"$TMP/initdb.log" 2>&1 || { cat "$TMP/initdb.log" >&2; exit 1; }

free_port() {
    if command -v python3 >/dev/null 2>&1; then
        python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
        return
    fi
    # Probe: a port nothing answers on.
    local port
    for _ in $(seq 1 200); do
        port=$((20000 + RANDOM % 40000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return
        fi
    done
    log "found no free port"
    return 1
}

# The port may be taken between choosing and binding it: try a few.
for attempt in 1 2 3 4 5; do
    PORT=$(free_port)
    # Durability is pointless for a throwaway cluster; speed matters.
    if as_pg "$PG_BIN/pg_ctl" start -D "$DATA" -l "$PG_LOG" -w -t 60 -o "-p $PORT \
            -c listen_addresses=127.0.0.1 -c unix_socket_directories='$TMP' \
            -c max_connections=300 -c fsync=off -c synchronous_commit=off \
            -c full_page_writes=off" >/dev/null; then
        STARTED=1
        break
    fi
    log "starting PostgreSQL on port $PORT failed (attempt $attempt)"
done
if [[ $STARTED -ne 1 ]]; then
    cat "$PG_LOG" >&2 || true
    exit 1
fi

ready=0
for _ in $(seq 1 300); do
    if "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT" -U "$DB_USER" -d postgres; then
        ready=1
        break
    fi
    sleep 0.1
done
if [[ $ready -ne 1 ]]; then
    log "PostgreSQL did not become ready"
    cat "$PG_LOG" >&2 || true
    exit 1
fi

export TG_TEST_PG_URL="postgres://$DB_USER@127.0.0.1:$PORT/postgres"
log "PostgreSQL $("$PG_BIN/pg_ctl" --version | awk '{print $3}') ready at $TG_TEST_PG_URL"

# --- the throwaway Redis -------------------------------------------------------------------

# Nothing is written to disk; each test keeps to keys of its own prefix.
mkdir -p "$TMP/redis"
for attempt in 1 2 3 4 5; do
    REDIS_PORT=$(free_port)
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$TMP/redis" --save '' \
        --appendonly no --daemonize no --logfile "$TMP/redis/redis.log" &
    REDIS_PID=$!
    ready=0
    for _ in $(seq 1 100); do
        if redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG; then
            ready=1
            break
        fi
        kill -0 "$REDIS_PID" 2>/dev/null || break
        sleep 0.05
    done
    [[ $ready -eq 1 ]] && break
    log "starting Redis on port $REDIS_PORT failed (attempt $attempt)"
    kill -TERM "$REDIS_PID" 2>/dev/null || true
    wait "$REDIS_PID" 2>/dev/null || true
    REDIS_PID=
done
if [[ -z $REDIS_PID ]]; then
    cat "$TMP/redis/redis.log" >&2 || true
    exit 1
fi
export TG_TEST_REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
log "Redis $(redis-server --version | awk '{print $3}' | cut -d= -f2) ready at $TG_TEST_REDIS_URL"

# --- the tests -----------------------------------------------------------------------------

if ! cargo nextest --version >/dev/null 2>&1; then
    log "installing cargo-nextest"
    cargo install cargo-nextest --locked
fi

# Schemathesis, for the admin and self-service API tests (they say why they skip when this
# fails).
if ST=$(scripts/schemathesis-venv.sh); then
    export TG_TEST_SCHEMATHESIS="$ST"
else
    log "no Schemathesis environment could be made; the Schemathesis tests will skip"
fi

status=0
cargo nextest run --all-targets "$@" || status=$?

# Doc tests (nextest does not run them), when the library has any. Plain filter arguments
# apply to them too; nextest-only flags do not.
if [[ $status -eq 0 ]] && grep -rqsE '^\s*//[/!].*```' src; then
    filters=()
    for arg in "$@"; do
        if [[ "$arg" == -* ]]; then filters=(); break; fi
        filters+=("$arg")
    done
    cargo test --doc -- "${filters[@]}" || status=$?
fi

exit "$status"
