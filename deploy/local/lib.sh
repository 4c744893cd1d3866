# Sourced by the local-stack scripts: paths and small helpers.
# shellcheck shell=bash
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
STATE="$ROOT/.local"
mkdir -p "$STATE/logs"

log() { printf '%s\n' "$*" >&2; }

# free_port START: the first TCP port at or above START nobody listens on.
free_port() {
    local p=$1
    while (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; do p=$((p + 1)); done
    echo "$p"
}

# wait_for 'COMMAND' SECONDS: polls until COMMAND succeeds; never a fixed sleep.
wait_for() {
    local deadline=$((SECONDS + $2))
    until eval "$1" >/dev/null 2>&1; do
        [ "$SECONDS" -lt "$deadline" ] || return 1
        sleep 0.2
    done
}
