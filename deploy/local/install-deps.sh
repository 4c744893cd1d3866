#!/usr/bin/env bash
# Installs only what is missing: Debian packages, the Kafka broker jars from
# Maven Central, and the Python test packages. A second run takes a second.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

KAFKA_VERSION=3.9.1
# tmux drives the CLI in a real terminal in tests/integration/test_cli.py;
# chromium and chromium-driver load /dashboard headless in test_dashboard.py.
# clang and libclang-rt-dev build the fuzz targets (tests/fuzz/run.sh): the
# sanitizer and libFuzzer runtimes (libclang_rt.fuzzer, .asan, ...) are not in
# Debian's clang package but in libclang-rt-<N>-dev, which libclang-rt-dev
# picks for the release's default clang.
DEBS="build-essential cmake ninja-build pkg-config git curl ca-certificates
      librdkafka-dev libpq-dev libjansson-dev libcurl4-openssl-dev
      libmicrohttpd-dev libssl-dev libcmocka-dev
      postgresql postgresql-contrib kcat python3 python3-pip valgrind
      clang libclang-rt-dev tmux chromium chromium-driver"

missing=""
for p in $DEBS; do
    dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
command -v java >/dev/null || missing="$missing default-jre-headless"
command -v mvn >/dev/null || missing="$missing maven"
if [ -n "$missing" ]; then
    log "installing Debian packages:$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

libs="$STATE/kafka/libs"
if [ ! -f "$libs/.done-$KAFKA_VERSION" ]; then
    log "fetching the Kafka $KAFKA_VERSION broker jars"
    rm -rf "$libs"
    mkdir -p "$libs"
    mvn -q -B -Dstyle.color=never -f "$ROOT/deploy/local/kafka/pom.xml" dependency:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$libs"
    touch "$libs/.done-$KAFKA_VERSION"
fi

py_missing=""
python3 -c 'import pytest' 2>/dev/null || py_missing="$py_missing pytest"
python3 -c 'import requests' 2>/dev/null || py_missing="$py_missing requests"
python3 -c 'import confluent_kafka' 2>/dev/null || py_missing="$py_missing confluent-kafka"
python3 -c 'import psycopg2' 2>/dev/null || py_missing="$py_missing psycopg2-binary"
python3 -c 'import schemathesis' 2>/dev/null || py_missing="$py_missing schemathesis"
python3 -c 'import selenium' 2>/dev/null || py_missing="$py_missing selenium"
python3 -c 'import jsonschema' 2>/dev/null || py_missing="$py_missing jsonschema"
# tests/integration/test_metrics.py parses /metrics with Prometheus's own
# text parser; the deploy tests read YAML.
python3 -c 'import prometheus_client' 2>/dev/null || py_missing="$py_missing prometheus-client"
python3 -c 'import yaml' 2>/dev/null || py_missing="$py_missing pyyaml"
if [ -n "$py_missing" ]; then
    log "installing Python packages:$py_missing"
    # Debian's own python3 refuses system-wide pip installs without this.
    # shellcheck disable=SC2086
    python3 -m pip install -q $py_missing 2>/dev/null ||
        python3 -m pip install -q --break-system-packages $py_missing
fi
