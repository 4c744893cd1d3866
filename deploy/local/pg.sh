#!/usr/bin/env bash
# A project-local PostgreSQL cluster on 127.0.0.1, never a system service.
#   pg.sh start|stop|status|env
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -n "$BIN" ] || { log "PostgreSQL server binaries not found; run install-deps.sh"; exit 1; }
PG="$STATE/pg"
mkdir -p "$PG"

# initdb and postgres refuse to run as root: the cluster belongs to the
# 'postgres' account, which must be able to reach its data directory. If the
# checkout sits under a directory it cannot traverse, keep the data elsewhere.
data_dir() {
    if [ -f "$PG/datadir" ]; then cat "$PG/datadir"; return; fi
    local d="$PG/data"
    chmod o+x "$STATE" "$PG" 2>/dev/null || true
    if ! runuser -u postgres -- test -x "$PG"; then
        d="/var/tmp/batchcall-$(printf '%s' "$ROOT" | sha256sum | cut -c1-12)/data"
    fi
    echo "$d" > "$PG/datadir"
    echo "$d"
}

DATA=$(data_dir)
SOCK="$(dirname "$DATA")/sock"
as_pg() { runuser -u postgres -- "$@"; }

port() {
    # Below Linux's ephemeral range (32768-60999): a port there that is free
    # when chosen can be some client socket's by the time the server binds.
    if [ ! -f "$PG/port" ]; then free_port 15432 > "$PG/port"; fi
    cat "$PG/port"
}

start() {
    local p
    p=$(port)
    mkdir -p "$DATA" "$SOCK"
    chown postgres: "$(dirname "$DATA")" "$DATA" "$SOCK"
    if [ ! -f "$DATA/PG_VERSION" ]; then
        as_pg "$BIN/initdb" -D "$DATA" -U postgres -A trust --no-instructions >/dev/null
        cat >> "$DATA/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $p
unix_socket_directories = '$SOCK'
max_connections = 300
shared_buffers = 256MB
# Statistics of a table a batch just filled are read within seconds, not a
# minute: plans for the per-batch lookups depend on them (bench/RESULTS.md).
autovacuum_naptime = 10s
CONF
        # Trust only loopback: this cluster is for tests and demos.
        printf 'local all all trust\nhost all all 127.0.0.1/32 trust\n' > "$DATA/pg_hba.conf"
    fi
    # Per-statement costs for bench/run.py --statements (issue 17); a cluster
    # made before this line gets it at its next start.
    if ! grep -q "^shared_preload_libraries = 'pg_stat_statements'" "$DATA/postgresql.conf"; then
        cat >> "$DATA/postgresql.conf" <<CONF
shared_preload_libraries = 'pg_stat_statements'
pg_stat_statements.track = top
pg_stat_statements.track_planning = on
CONF
    fi
    # Room for every test database's statements: the tests that count a
    # statement's pages (test_outbox_relay.py) must not see it evicted.
    if ! grep -q "^pg_stat_statements.max" "$DATA/postgresql.conf"; then
        echo "pg_stat_statements.max = 20000" >> "$DATA/postgresql.conf"
    fi
    if ! as_pg "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
        as_pg "$BIN/pg_ctl" -D "$DATA" -l "$(dirname "$DATA")/postgres.log" -w -t 60 start >/dev/null
    fi
    wait_for "$BIN/pg_isready -q -h 127.0.0.1 -p $p" 30
    psql -h 127.0.0.1 -p "$p" -U postgres -d postgres -Atqc \
        "SELECT 1 FROM pg_roles WHERE rolname = 'batchcall'" | grep -q 1 ||
        psql -h 127.0.0.1 -p "$p" -U postgres -d postgres -qc "CREATE ROLE batchcall LOGIN SUPERUSER"
    psql -h 127.0.0.1 -p "$p" -U postgres -d postgres -Atqc \
        "SELECT 1 FROM pg_database WHERE datname = 'batchcall'" | grep -q 1 ||
        psql -h 127.0.0.1 -p "$p" -U postgres -d postgres -qc "CREATE DATABASE batchcall OWNER batchcall"
}

stop() {
    if [ -f "$DATA/PG_VERSION" ] && as_pg "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
        as_pg "$BIN/pg_ctl" -D "$DATA" -m fast -w stop >/dev/null
    fi
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) as_pg "$BIN/pg_ctl" -D "$DATA" status ;;
    env) echo "BC_PG_DSN=postgresql://batchcall@127.0.0.1:$(port)/batchcall" ;;
    *) echo "usage: $0 start|stop|status|env" >&2; exit 2 ;;
esac
