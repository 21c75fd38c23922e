"""Background merging, measured: how many segments one partition's
manifest lists after 15 MB written in small flushes, and how fast a
consumer catches up on that data from the object store after a restart.

    PYTHONPATH=. python bench/merge.py [--megabytes 15] [--merge-delay-ms 5000] [--settle 30] [--no-merge]

A broker on S3 (a moto server) and its embedded metadata store takes 1 KiB
records at about 1 MB/s from confluent-kafka (acks=all, linger.ms=50, so
each produce request is one flush: one segment). The manifest is then read
with kafscale-admin every few seconds for ``--settle`` seconds, the broker
is restarted (its cache empty), and one consumer reads everything from
offset 0. ``--no-merge`` runs the same with merging put off, for the
figures without it.
"""

import argparse
import json
import os
import subprocess
import sys
import time

from confluent_kafka import Consumer, Producer, TopicPartition

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from data_path import Broker, create_topic  # noqa: E402

TOPIC = "merged"
RECORD = 1024


def produce(bootstrap, megabytes, rate_mb=1.0):
    """Write ``megabytes`` of 1 KiB records at about ``rate_mb`` MB/s. -> (records, seconds)."""
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 50})
    count = int(megabytes * 1e6 / RECORD)
    per_tick = max(1, int(rate_mb * 1e6 / RECORD / 20))
    value = b"x" * RECORD
    started = time.monotonic()
    for number in range(count):
        while True:
            try:
                producer.produce(TOPIC, value=value, partition=0)
                break
            except BufferError:
                producer.poll(0.01)
        if number % per_tick == per_tick - 1:
            producer.poll(0)
            ahead = started + (number + 1) / (per_tick * 20) - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
    if producer.flush(60):
        raise SystemExit("records left unacknowledged")
    return count, time.monotonic() - started


def segments(broker):
    """The manifest's segment count and bytes, from kafscale-admin."""
    out = subprocess.run([sys.executable, "-m", "kafscale_admin", "--data-dir", broker.data_dir,
                          "topics", "describe", TOPIC, "--output", "json"],
                         env=broker.env, capture_output=True, check=True).stdout
    [partition] = json.loads(out)["partitions"]
    return partition["segments"], partition["bytes"]


def catch_up(broker, count):
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "bench-merge",
                         "fetch.max.bytes": 64 << 20, "max.partition.fetch.bytes": 16 << 20,
                         "queued.max.messages.kbytes": 256 << 10})
    consumer.assign([TopicPartition(TOPIC, 0, 0)])
    started = time.monotonic()
    first = None
    received = nbytes = 0
    while received < count and time.monotonic() - started < 120:
        for message in consumer.consume(10000, 0.5):
            if not message.error():
                if first is None:
                    first = time.monotonic()
                received += 1
                nbytes += len(message.value())
    elapsed = time.monotonic() - started
    consumer.close()
    if received < count:
        raise SystemExit(f"caught up on {received} of {count} records")
    return nbytes / 1e6 / elapsed, elapsed, first - started


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=float, default=15)
    parser.add_argument("--merge-delay-ms", type=int, default=5000)
    parser.add_argument("--settle", type=float, default=30, help="seconds to watch the manifest after writing")
    parser.add_argument("--no-merge", action="store_true", help="put merging off, for the figures without it")
    args = parser.parse_args()
    # Every broker option also reads an environment variable.
    os.environ["KAFSCALE_MERGE_DELAY_MS"] = str(10**9 if args.no_merge else args.merge_delay_ms)
    os.environ["KAFSCALE_MERGE_CHECK_INTERVAL_MS"] = "1000"
    broker = Broker("s3")
    try:
        create_topic(broker.bootstrap, TOPIC, 1)
        count, seconds = produce(broker.bootstrap, args.megabytes)
        written = segments(broker)
        print(f"wrote {count * RECORD / 1e6:.1f} MB in {seconds:.1f} s: {written[0]} segments in the manifest",
              flush=True)
        settled = time.monotonic() + args.settle
        while time.monotonic() < settled:
            time.sleep(min(5.0, max(0.0, settled - time.monotonic())))
            listed, size = segments(broker)
            print(f"  {args.settle - (settled - time.monotonic()):4.0f} s later: {listed} segments,"
                  f" {size / 1e6:.1f} MB", flush=True)
        broker.restart()
        rate, elapsed, first = catch_up(broker, count)
        megabytes = count * RECORD / 1e6
        print(f"cold catch-up after a restart: {rate:.1f} MB/s over {elapsed:.2f} s; the first record came"
              f" after {first:.2f} s, the rest at {megabytes / (elapsed - first):.1f} MB/s", flush=True)
    finally:
        broker.stop()


if __name__ == "__main__":
    main()
