"""Compaction, measured: how fast a broker compacts a keyed partition (MB/s
of the input it replaces) and how much space that saves, on 10,000 keys
updated 100 times each.

    PYTHONPATH=. python bench/compaction.py [--keys 10000] [--updates 100] [--value-bytes 100] [--paced]

A broker on S3 (a moto server) and its embedded metadata store takes every
key's updates, round after round, from confluent-kafka (acks=all,
linger.ms=50) into one partition of a topic whose cleanup policy is
delete, and merges them into segments. Once the manifest is settled the
topic is switched to cleanup.policy=compact (min.cleanable.dirty.ratio 0.01,
segment.ms 1000), and kafscale-admin is polled until no byte is dirty or
not yet cleanable. The time from the switch to then is the compaction's
(it includes up to one merge check interval, 200 ms, and the polling, 100
ms); the broker's CPU seconds meanwhile are printed too, the figure that
holds on a machine other processes load. Compaction is unpaced unless ``--paced`` (the broker's default pacing:
32 MB/s of reads). A consumer then reads the partition from its start.
"""

import argparse
import json
import os
import subprocess
import sys
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from data_path import Broker, create_topic  # noqa: E402

TOPIC = "table"


def produce(bootstrap, keys, updates, value_bytes):
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 50,
                         "batch.num.messages": 10000})
    value = b"x" * (value_bytes - 8)
    started = time.monotonic()
    for update in range(updates):
        for key in range(keys):
            while True:
                try:
                    producer.produce(TOPIC, key=b"key-%06d" % key, value=b"%08d" % update + value, partition=0)
                    break
                except BufferError:
                    producer.poll(0.01)
        producer.poll(0)
    if producer.flush(120):
        raise SystemExit("records left unacknowledged")
    return time.monotonic() - started


def describe(broker):
    out = subprocess.run([sys.executable, "-m", "kafscale_admin", "--data-dir", broker.data_dir,
                          "topics", "describe", TOPIC, "--output", "json"],
                         env=broker.env, capture_output=True, check=True).stdout
    [partition] = json.loads(out)["partitions"]
    return partition


def alter(bootstrap, **configs):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    entries = [ConfigEntry(name, value, incremental_operation=AlterConfigOpType.SET)
               for name, value in configs.items()]
    futures = admin.incremental_alter_configs([ConfigResource("TOPIC", TOPIC, incremental_configs=entries)])
    for future in futures.values():
        future.result(30)


def read_all(bootstrap, high_watermark):
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-compaction",
                         "fetch.max.bytes": 64 << 20, "max.partition.fetch.bytes": 16 << 20})
    consumer.assign([TopicPartition(TOPIC, 0, 0)])
    keys = {}
    count = 0
    deadline = time.monotonic() + 120
    last = -1
    while last < high_watermark - 1 and time.monotonic() < deadline:
        for message in consumer.consume(10000, 0.5):
            if not message.error():
                keys[message.key()] = message.value()[:8]
                last = message.offset()
                count += 1
    consumer.close()
    return keys, count


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=10_000)
    parser.add_argument("--updates", type=int, default=100)
    parser.add_argument("--value-bytes", type=int, default=100)
    parser.add_argument("--paced", action="store_true", help="keep the broker's default merge pacing")
    args = parser.parse_args()
    os.environ["KAFSCALE_MERGE_DELAY_MS"] = "0"
    os.environ["KAFSCALE_MERGE_CHECK_INTERVAL_MS"] = "200"
    if not args.paced:
        os.environ["KAFSCALE_MERGE_BYTES_PER_SECOND"] = str(10 << 30)
    broker = Broker("s3")
    try:
        create_topic(broker.bootstrap, TOPIC, 1)
        alter(broker.bootstrap, **{"segment.ms": "1000"})
        seconds = produce(broker.bootstrap, args.keys, args.updates, args.value_bytes)
        records = args.keys * args.updates
        print(f"wrote {records} records ({args.keys} keys x {args.updates} updates) in {seconds:.1f} s", flush=True)
        # Merging settles: the manifest stops changing.
        previous = None
        while True:
            partition = describe(broker)
            if partition["segments"] == previous:
                break
            previous = partition["segments"]
            time.sleep(2)
        before = partition["bytes"]
        print(f"before: {partition['segments']} segments, {before / 1e6:.1f} MB", flush=True)
        cpu = broker.cpu()
        alter(broker.bootstrap, **{"cleanup.policy": "compact", "min.cleanable.dirty.ratio": "0.01"})
        started = time.monotonic()
        while True:
            partition = describe(broker)
            if partition.get("dirty_bytes") == 0 and partition.get("uncleanable_bytes") == 0:
                break
            time.sleep(0.1)
        elapsed = time.monotonic() - started
        cpu = broker.cpu() - cpu
        after = partition["bytes"]
        print(f"compacted {before / 1e6:.1f} MB in {elapsed:.1f} s: {before / 1e6 / elapsed:.1f} MB/s of input"
              f" ({cpu:.1f} s of the broker's CPU: {before / 1e6 / cpu:.1f} MB per CPU second);"
              f" after: {partition['segments']} segments, {after / 1e6:.2f} MB"
              f" ({100 * (1 - after / before):.1f}% saved)", flush=True)
        keys, count = read_all(broker.bootstrap, partition["high_watermark"])
        latest = b"%08d" % (args.updates - 1)
        stale = sum(1 for value in keys.values() if value != latest)
        print(f"a consumer from offset 0 read {count} records of {len(keys)} keys, {stale} of them not at"
              f" their latest value", flush=True)
    finally:
        broker.stop()


if __name__ == "__main__":
    main()
