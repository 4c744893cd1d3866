#!/usr/bin/env bash
# A single-node Apache Kafka broker (KRaft, broker and controller in one
# process) on 127.0.0.1, run from the Maven Central jars.
#   kafka.sh start|stop|status|env
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

K="$STATE/kafka"
LIBS="$K/libs"
CP="$LIBS/*"
JAVA_OPTS="-Xms512m -Xmx512m -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true"
LOG4J="-Dlog4j.configuration=file:$ROOT/deploy/local/kafka/log4j.properties"
mkdir -p "$K"

ports() {
    if [ ! -f "$K/ports" ]; then
        local p c
        p=$(free_port 19092)
        c=$(free_port $((p + 1)))
        echo "$p $c" > "$K/ports"
    fi
    read -r PORT CPORT < "$K/ports"
}

running() { [ -f "$K/pid" ] && kill -0 "$(cat "$K/pid")" 2>/dev/null; }
ready() { kcat -L -b "127.0.0.1:$PORT" -m 2 >/dev/null 2>&1; }

configure() {
    cat > "$K/server.properties" <<CONF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$CPORT
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CPORT
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$K/data
num.partitions=6
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
min.insync.replicas=1
group.initial.rebalance.delay.ms=0
log.retention.hours=24
CONF
}

start() {
    [ -d "$LIBS" ] || { log "Kafka jars missing; run install-deps.sh"; exit 1; }
    ports
    if running && ready; then return; fi
    configure
    if [ ! -f "$K/data/meta.properties" ]; then
        [ -f "$K/cluster-id" ] || java -cp "$CP" $LOG4J kafka.tools.StorageTool random-uuid > "$K/cluster-id"
        java -cp "$CP" $LOG4J kafka.tools.StorageTool format -t "$(cat "$K/cluster-id")" \
            -c "$K/server.properties" >/dev/null
    fi
    # shellcheck disable=SC2086
    setsid nohup java $JAVA_OPTS -cp "$CP" $LOG4J kafka.Kafka "$K/server.properties" \
        >>"$STATE/logs/kafka.log" 2>&1 < /dev/null &
    echo $! > "$K/pid"
    if ! wait_for ready 90; then
        log "Kafka did not become ready in 90 s; see $STATE/logs/kafka.log"
        exit 1
    fi
}

stop() {
    if running; then
        local pid
        pid=$(cat "$K/pid")
        kill -TERM "$pid"
        wait_for "! kill -0 $pid" 60 || kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$K/pid"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) ports; if running && ready; then echo running; else echo stopped; exit 1; fi ;;
    env) ports; echo "BC_KAFKA_BROKERS=127.0.0.1:$PORT" ;;
    *) echo "usage: $0 start|stop|status|env" >&2; exit 2 ;;
esac
