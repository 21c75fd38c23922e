"""Produce with the partition's buffer held full: throughput, latency and
order, for a non-idempotent producer pipelining many requests (librdkafka's
0038_performance test, scaled down).

    PYTHONPATH=. python bench/backpressure.py [--seconds 8] [--source DIR]
        [--scenarios full,window,partitions] [--broker-args "--max-in-flight-requests 100"]

"full": one partition, a 1 MiB partition buffer, group commit, on the
local-directory store; the producer (confluent-kafka, acks=1, no
idempotence, linger.ms=5, 100-byte records numbered in order) offers more
than the broker flushes, so the buffer stays full. "window": the same
producer with linger.ms=0 (many small requests) against
--flush-interval-ms 250 and the default buffers. "partitions": 1 MB/s of
1 KiB records offered round-robin over 100 partitions (linger.ms=50)
against --flush-interval-ms 250: librdkafka sends a request per
partition, each waits for a window, so the requests a connection may have
under way (--max-in-flight-requests) bound what is acknowledged while it is
offered. Latency is from produce() to the delivery report; after "full"
and "window" a consumer reads the partition from the start and counts
records out of order, missing and repeated. ``--source`` runs the
broker from another checkout (to measure before and after); ``--broker-args``
adds options to every broker.
"""

import argparse
import os
import shlex
import tempfile
import time
import uuid

from confluent_kafka import Consumer, Producer, TopicPartition

from bench.data_path import Broker, create_topic, percentiles, show
from tests.support.brokers import free_port

PARTITIONS = 100

SCENARIOS = {
    "full": (["--partition-buffer-bytes", str(1 << 20)], {"linger.ms": 5}),
    "window": (["--flush-interval-ms", "250"], {"linger.ms": 0}),
    "partitions": (["--flush-interval-ms", "250"], {"linger.ms": 50}),
}


class SourceBroker(Broker):
    """A broker process on the local-directory store, run from ``source``."""

    def __init__(self, args, source):
        self.port = free_port()
        self.data_dir = tempfile.mkdtemp(prefix="kafscale-bench-")
        self.env = dict(os.environ, PYTHONPATH=source)
        self.moto = None
        self.args = args
        self._start_process()
        self.bootstrap = f"127.0.0.1:{self.port}"


def produce_in_order(broker, topic, seconds, settings, size=100):
    """Offer numbered ``size``-byte records as fast as the producer takes
    them for ``seconds``. -> (records sent, figures)."""
    producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": 1, "enable.idempotence": False,
                         "queue.buffering.max.messages": 1_000_000, "message.timeout.ms": 120_000, **settings})
    producer.produce(topic, b"warm-up", partition=0)
    producer.flush(30)
    padding = b"x" * (size - 12)
    latencies = []
    counts = {"acked": 0, "failed": 0}
    sent_at = {}

    def report(error, message):
        number = int(message.value()[:12])
        at = sent_at.pop(number)
        if error is None:
            counts["acked"] += 1
            latencies.append((time.monotonic() - at) * 1000)
        else:
            counts["failed"] += 1

    started = time.monotonic()
    sent = 0
    while time.monotonic() - started < seconds:
        try:
            sent_at[sent] = time.monotonic()
            producer.produce(topic, b"%012d" % sent + padding, partition=0, on_delivery=report)
            sent += 1
        except BufferError:
            del sent_at[sent]
            producer.poll(0.001)
        if sent % 1000 == 0:
            producer.poll(0)
    producer.flush(180)
    elapsed = time.monotonic() - started
    figures = {"msgs/s": counts["acked"] / elapsed, "MB/s": counts["acked"] * size / 1e6 / elapsed,
               "failed": counts["failed"]}
    figures.update(percentiles(latencies))
    return sent, figures


def check_order(broker, topic, sent):
    """Read the partition from the start: -> records out of order, missing
    and repeated."""
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "bench-order",
                         "fetch.max.bytes": 64 << 20, "max.partition.fetch.bytes": 16 << 20})
    consumer.assign([TopicPartition(topic, 0, 1)])  # after the warm-up record
    seen = set()
    out_of_order = repeated = 0
    last = -1
    deadline = time.monotonic() + 120
    idle = 0
    while time.monotonic() < deadline and idle < 6:
        messages = consumer.consume(10000, 0.5)
        idle = 0 if messages else idle + 1
        for message in messages:
            if message.error():
                continue
            number = int(message.value()[:12])
            if number in seen:
                repeated += 1
                continue
            seen.add(number)
            if number < last:
                out_of_order += 1
            last = max(last, number)
    consumer.close()
    return {"out of order": out_of_order, "missing": sent - len(seen), "repeated": repeated}


def offered_over_partitions(broker, topic, partitions, seconds, settings, rate_bytes=1_000_000, size=1024):
    """Offer ``rate_bytes``/s round-robin over the partitions. -> figures."""
    producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": 1, "enable.idempotence": False,
                         "queue.buffering.max.messages": 1_000_000, "message.timeout.ms": 120_000, **settings})
    for partition in range(partitions):
        producer.produce(topic, b"warm-up", partition=partition)
    producer.flush(60)
    payload = os.urandom(size)
    latencies = []
    delivered_at = []

    def delivery(at):
        def delivered(error, message):
            if error is None:
                now = time.monotonic()
                delivered_at.append(now)
                latencies.append((now - at) * 1000)

        return delivered

    per_second = rate_bytes // size
    started = time.monotonic()
    sent = 0
    while time.monotonic() - started < seconds:
        due = int((time.monotonic() - started) * per_second)
        while sent < due:
            producer.produce(topic, payload, partition=sent % partitions, on_delivery=delivery(time.monotonic()))
            sent += 1
        producer.poll(0.002)
    ended = time.monotonic()
    producer.flush(120)
    # The share of what was offered that was acknowledged while it was.
    in_time = sum(1 for at in delivered_at if at <= ended)
    figures = {"acked while offered": in_time / sent}
    figures.update(percentiles(latencies))
    return figures


def run(scenario, seconds, source, extra):
    broker_args, producer_settings = SCENARIOS[scenario]
    print(f"{scenario}: broker {' '.join(broker_args + extra)}, producer {producer_settings}", flush=True)
    broker = SourceBroker(broker_args + extra, source)
    try:
        if scenario == "partitions":
            topic = f"partitions-{uuid.uuid4().hex[:6]}"
            create_topic(broker.bootstrap, topic, PARTITIONS)
            show(f"1 MB/s over {PARTITIONS} partitions", offered_over_partitions(broker, topic, PARTITIONS, seconds,
                                                                        producer_settings))
            return
        topic = f"backpressure-{uuid.uuid4().hex[:6]}"
        create_topic(broker.bootstrap, topic, 1)
        sent, figures = produce_in_order(broker, topic, seconds, producer_settings)
        show("produce 100 B, acks=1", figures)
        show("consumed from the start", check_order(broker, topic, sent))
    finally:
        broker.stop()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--scenarios", default="full,window,partitions")
    parser.add_argument("--source", default=os.getcwd(), help="the kafscale checkout the broker runs from")
    parser.add_argument("--broker-args", default="", help="more broker options, for every scenario")
    args = parser.parse_args()
    for scenario in args.scenarios.split(","):
        run(scenario, args.seconds, os.path.abspath(args.source), shlex.split(args.broker_args))


if __name__ == "__main__":
    main()
