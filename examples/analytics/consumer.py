#!/usr/bin/env python3
"""An example analytics consumer of batchcall's call-result events, in Python
with confluent-kafka (docs/analytics.md).

Reads <prefix>.call-results from the beginning of every partition to its
current end, counts each call once (events are delivered at least once, so a
repeat of a call_id is skipped) and prints one JSON line per batch:

  {"answer_rate": 0.75, "answered": 9, "batch_id": "...", "calls": 12,
   "mean_duration_s": 31.4}

answered = carrier_status "completed"; mean_duration_s is over answered calls
(null when none was). Each flag has an environment variable of the same
meaning: --brokers BC_KAFKA_BROKERS, --topic-prefix BC_TOPIC_PREFIX,
--timeout-ms BC_ANALYTICS_TIMEOUT_MS.
"""
import argparse
import json
import os
import sys
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

# The versions this program reads: it uses only fields all have. A call's
# end is v1, v2 or v3's call.ended (every end has one, and with
# BC_CALL_RESULT_V2=0 it is the only one); deduplicated on call_id.
SCHEMAS = {"batchcall.call-result/v1", "batchcall.call-result/v2", "batchcall.call-result/v3"}


def args():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--brokers", default=os.environ.get("BC_KAFKA_BROKERS") or "127.0.0.1:9092",
                    help="Kafka bootstrap servers (BC_KAFKA_BROKERS)")
    ap.add_argument("--topic-prefix", default=os.environ.get("BC_TOPIC_PREFIX") or "batchcall",
                    help="prefix of the topic names (BC_TOPIC_PREFIX)")
    ap.add_argument("--timeout-ms", type=int,
                    default=int(os.environ.get("BC_ANALYTICS_TIMEOUT_MS") or 30000),
                    help="give up if the end is not reached by then (BC_ANALYTICS_TIMEOUT_MS)")
    return ap.parse_args()


def main():
    a = args()
    topic = f"{a.topic_prefix}.call-results"
    # No offsets are committed: every run reads the whole topic.
    c = Consumer({"bootstrap.servers": a.brokers, "group.id": "batchcall-analytics-example",
                  "enable.auto.commit": False, "enable.partition.eof": True})
    md = c.list_topics(topic, timeout=10).topics.get(topic)
    if md is None or md.error is not None:
        print(f"cannot read the partitions of {topic}", file=sys.stderr)
        return 1
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in md.partitions])
    ended, seen, batches = set(), set(), {}
    deadline = time.monotonic() + a.timeout_ms / 1000
    # Each partition reports its end; then we have read what was there.
    while len(ended) < len(md.partitions):
        if time.monotonic() > deadline:
            print(f"{topic}: not at the end after {a.timeout_ms} ms", file=sys.stderr)
            return 1
        m = c.poll(0.2)
        if m is None:
            continue
        if m.error():
            if m.error().code() == KafkaError._PARTITION_EOF:
                ended.add(m.partition())
            else:
                print(f"consume: {m.error()}", file=sys.stderr)
            continue
        try:
            ev = json.loads(m.value())
        except ValueError:
            continue
        if not isinstance(ev, dict) or ev.get("schema") not in SCHEMAS:
            continue   # not an event of the version this program knows
        if ev["schema"].endswith("/v3") and ev.get("event") != "call.ended":
            continue   # a report or a recording, not an end
        if ev["call_id"] in seen:
            continue   # at-least-once delivery: a repeat
        seen.add(ev["call_id"])
        b = batches.setdefault(ev["batch_id"], {"calls": 0, "answered": 0, "duration": 0})
        b["calls"] += 1
        if ev["carrier_status"] == "completed":
            b["answered"] += 1
            b["duration"] += ev["duration_s"] or 0
    c.close()
    for bid, b in sorted(batches.items()):
        print(json.dumps({"batch_id": bid, "calls": b["calls"], "answered": b["answered"],
                          "answer_rate": b["answered"] / b["calls"],
                          "mean_duration_s": b["duration"] / b["answered"] if b["answered"] else None},
                         sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
