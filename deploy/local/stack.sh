#!/usr/bin/env bash
# The local stack in one command: installs what is missing, builds, starts
# PostgreSQL, Kafka, the carrier simulator and the three services, creates a
# demo tenant and prints how to call the API.
#   deploy/local/stack.sh up     start (idempotent; fast when already up)
#   deploy/local/stack.sh down   stop everything it started
#   deploy/local/stack.sh status what runs
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/lib.sh"

API_PORT="${BC_API_PORT:-8080}"
CALLBACK_PORT="${BC_API_CALLBACK_PORT:-8081}"
SIM_PORT="${BC_SIM_PORT:-8090}"
AGENT_PORT="${BC_AGENT_PORT:-8443}"
AGENT_CONTROL_PORT="${BC_AGENT_CONTROL_PORT:-8444}"
RUN="$STATE/run"
SERVICES="agent carrier-sim api scheduler worker"

build() {
    # Ninja rebuilds only what changed; configure runs once.
    if [ ! -f "$ROOT/build/build.ninja" ]; then
        cmake -S "$ROOT" -B "$ROOT/build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    fi
    cmake --build "$ROOT/build" >/dev/null
}

running() { [ -f "$RUN/$1.pid" ] && kill -0 "$(cat "$RUN/$1.pid")" 2>/dev/null; }

start() {   # start NAME BINARY [ENV=VAL ...]
    local name=$1 bin=$2
    shift 2
    if running "$name"; then return; fi
    env "$@" setsid "$ROOT/build/$bin" >>"$STATE/logs/$name.log" 2>&1 < /dev/null &
    echo $! > "$RUN/$name.pid"
}

# The reference agent (tests/agent) stands in for the tenant's AI agent:
# every answered call of the demo connects to it over wss://.
start_agent() {
    if running agent; then return; fi
    setsid python3 "$ROOT/tests/agent/ref_agent.py" --host 127.0.0.1 --port "$AGENT_PORT" \
        --control-port "$AGENT_CONTROL_PORT" --cert "$STATE/tls/agent.crt" \
        --key "$STATE/tls/agent.key" --api "http://127.0.0.1:$API_PORT" \
        >>"$STATE/logs/agent.log" 2>&1 < /dev/null &
    echo $! > "$RUN/agent.pid"
}

wait_ready() {   # wait_ready NAME URL
    wait_for "curl -fs $2/readyz" 30 || { log "$1 did not become ready; see $STATE/logs/$1.log"; exit 1; }
}

field() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$STATE/demo.json" "$1"; }

up() {
    "$HERE/infra.sh" up
    # shellcheck disable=SC1091
    source "$STATE/env"
    build
    mkdir -p "$RUN" "$STATE/logs"
    "$ROOT/build/batchcall" migrate >/dev/null
    # Legal calling hours infer a recipient's zone from its number
    # (docs/operations.md): libphonenumber's map, from the phonenumbers
    # package install-deps.sh installs. Loading the same map twice is a no-op.
    python3 "$ROOT/deploy/tz-prefixes.py" > "$STATE/tz-prefixes.txt"
    "$ROOT/build/batchcall" tz-load --file "$STATE/tz-prefixes.txt" >/dev/null
    "$ROOT/build/batchcall" topics >/dev/null
    export BC_PUBLIC_URL="http://127.0.0.1:$API_PORT" BC_CARRIER_URL="http://127.0.0.1:$SIM_PORT"
    # The carrier's callbacks on the API's port of their own, as deployed.
    export BC_CALLBACK_URL="http://127.0.0.1:$CALLBACK_PORT"
    export BC_AGENT_ENDPOINT="wss://127.0.0.1:$AGENT_PORT/stream" BC_SIM_AGENT_CA="$STATE/tls/agent.crt"
    start_agent
    start carrier-sim batchcall-carrier-sim BC_SIM_PORT="$SIM_PORT" BC_SIM_MS_PER_SECOND="${BC_SIM_MS_PER_SECOND:-100}"
    # A local stack posts webhooks to local receivers, which speak plain http
    # on loopback or the local network.
    export BC_WEBHOOK_ALLOW_PRIVATE="${BC_WEBHOOK_ALLOW_PRIVATE:-1}"
    start api batchcall-api BC_API_PORT="$API_PORT" BC_API_CALLBACK_PORT="$CALLBACK_PORT" BC_WEBHOOK_REQUIRE_HTTPS="${BC_WEBHOOK_REQUIRE_HTTPS:-0}"
    start scheduler batchcall-scheduler BC_SCHEDULER_PORT=9102
    start worker batchcall-worker BC_WORKER_PORT=9101
    wait_for "curl -fs http://127.0.0.1:$AGENT_CONTROL_PORT/healthz" 30 ||
        { log "the reference agent did not start; see $STATE/logs/agent.log"; exit 1; }
    wait_ready carrier-sim "http://127.0.0.1:$SIM_PORT"
    wait_ready api "http://127.0.0.1:$API_PORT"
    # A demo made before agents had endpoints could place no call, and one
    # whose tenant the database no longer has (the database was made anew)
    # cannot be used: make it anew.
    # The demo tenant calls the simulator, not people: legal calling hours
    # (on for every real tenant, docs/api.md) would make the README's
    # example wait for 08:00 in the callee's zone when run at night.
    if [ ! -f "$STATE/demo.json" ] || ! grep -q '"agent_endpoint"' "$STATE/demo.json" ||
        ! "$ROOT/build/batchcall" tenant-legal-hours --tenant "$(field tenant_id)" \
            --legal-hours off > /dev/null 2>&1; then
        "$ROOT/build/batchcall" demo --name demo --concurrency 20 > "$STATE/demo.json"
        "$ROOT/build/batchcall" tenant-legal-hours --tenant "$(field tenant_id)" \
            --legal-hours off > /dev/null
    fi
    local key agent number
    key=$(field api_key)
    agent=$(field agent_id)
    number=$(field from_number_id)
    cat <<MSG

batchcall is up: API http://127.0.0.1:$API_PORT, carrier simulator http://127.0.0.1:$SIM_PORT
Logs: .local/logs/   Demo tenant and key: .local/demo.json (the key is shown only there)

Create a batch:
  curl -s -X POST http://127.0.0.1:$API_PORT/agents/calls/batches \\
    -H "X-API-Key: $key" -H "Cartesia-Version: 2026-03-01" \\
    -H "Content-Type: application/json" \\
    -d '{"name":"hello","agent_id":"$agent","from_number_id":"$number",
         "target_concurrency_limit":2,
         "recipients":[{"to_number":"+14155559876"},{"to_number":"+14155550101"}]}'

Stop everything: deploy/local/stack.sh down
MSG
}

down() {
    local name pid
    for name in worker scheduler api carrier-sim agent; do
        if running "$name"; then
            pid=$(cat "$RUN/$name.pid")
            kill -TERM "$pid"
            wait_for "! kill -0 $pid 2>/dev/null" 30 || kill -KILL "$pid" 2>/dev/null || true
        fi
        rm -f "$RUN/$name.pid"
    done
    "$HERE/infra.sh" down
}

status() {
    local name
    for name in $SERVICES; do
        if running "$name"; then echo "$name: running"; else echo "$name: stopped"; fi
    done
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    status) status ;;
    *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
