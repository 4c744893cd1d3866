#!/usr/bin/env bash
# PostgreSQL and Kafka for the local stack and the tests.
#   infra.sh up     install what is missing, start both, write .local/env
#   infra.sh down   stop both
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/lib.sh"

case "${1:-}" in
    up)
        "$HERE/install-deps.sh"
        "$HERE/pg.sh" start
        "$HERE/kafka.sh" start
        { echo "export $("$HERE/pg.sh" env)"; echo "export $("$HERE/kafka.sh" env)"; } > "$STATE/env"
        ;;
    down)
        "$HERE/kafka.sh" stop
        "$HERE/pg.sh" stop
        ;;
    *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
