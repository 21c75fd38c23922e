"""Consumer group figures against a real broker process (local store):
time from subscribe to first message, rebalance time when a member joins a
running group of three, and OffsetCommit throughput.

    PYTHONPATH=. python bench/groups.py [--runs 3] [--seconds 5]

Clients and broker share this machine's cores.
"""

import argparse
import statistics
import threading
import time
import uuid

from confluent_kafka import Consumer, Producer, TopicPartition

from bench.data_path import Broker, create_topic, percentiles, show
from kafscale.protocol.messages import ApiKey
from tests.support.wire import Connection


def time_to_first_message(broker, topic, settings):
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": f"ttfm-{uuid.uuid4().hex[:8]}",
                         "auto.offset.reset": "earliest", **settings})
    try:
        started = time.monotonic()
        consumer.subscribe([topic])
        while True:
            message = consumer.poll(0.01)
            if message is not None and not message.error():
                return time.monotonic() - started
            if time.monotonic() - started > 60:
                raise SystemExit("no message within 60 s")
    finally:
        consumer.close()


class Member:
    """A consumer polling in its own thread; ``assigned_at`` is when its
    latest assignment arrived."""

    def __init__(self, bootstrap, group_id, topic, settings):
        self.assigned = set()
        self.assigned_at = None
        self._stopping = threading.Event()
        self._consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group_id, **settings})
        self._consumer.subscribe([topic], on_assign=self._on_assign, on_revoke=self._on_revoke)
        self._thread = threading.Thread(target=self._poll)
        self._thread.start()

    def _on_assign(self, consumer, partitions):
        self.assigned = {p.partition for p in partitions}
        self.assigned_at = time.monotonic()

    def _on_revoke(self, consumer, partitions):
        self.assigned = set()

    def _poll(self):
        try:
            while not self._stopping.is_set():
                self._consumer.poll(0.01)
        finally:
            self._consumer.close()

    def stop(self):
        self._stopping.set()
        self._thread.join()


def wait(condition, timeout=60):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit("the group did not settle within 60 s")
        time.sleep(0.005)


def rebalance_time(broker, topic, partitions, settings):
    """Three members share ``topic``; a fourth subscribes. -> seconds until
    every member holds its share of the new assignment."""
    group_id = f"rebalance-{uuid.uuid4().hex[:8]}"
    members = [Member(broker.bootstrap, group_id, topic, settings) for _ in range(3)]
    try:
        wait(lambda: sum(len(m.assigned) for m in members) == partitions and all(m.assigned for m in members))
        started = time.monotonic()
        members.append(Member(broker.bootstrap, group_id, topic, settings))
        wait(lambda: all(len(m.assigned) == partitions // 4 for m in members))
        return max(m.assigned_at for m in members) - started
    finally:
        for member in members:
            member.stop()


def commit_request(group_id, topic, offset, partitions):
    return {
        "group_id": group_id, "generation_id_or_member_epoch": -1, "member_id": "", "group_instance_id": None,
        "topics": [{"name": topic, "partitions": [
            {"partition_index": p, "committed_offset": offset, "committed_leader_epoch": -1, "committed_metadata": ""}
            for p in range(partitions)
        ]}],
    }


def pipelined_commits(broker, topic, partitions, seconds, window=64):
    """Commits from one connection, ``window`` in flight. -> commits/s."""
    connection = Connection(broker.bootstrap)
    version = 8
    done = sent = 0
    deadline = time.monotonic() + seconds
    started = time.monotonic()
    try:
        while time.monotonic() < deadline or done < sent:
            while sent - done < window and time.monotonic() < deadline:
                sent += 1
                request = commit_request("bench-pipelined", topic, sent, partitions)
                connection.send(ApiKey.OFFSET_COMMIT, version, request)
            connection.receive(ApiKey.OFFSET_COMMIT, version)
            done += 1
    finally:
        connection.close()
    return done / (time.monotonic() - started)


def consumer_commits(broker, topic, partitions, seconds):
    """Synchronous commits of a consumer's whole assignment, one after the
    other. -> (commits/s, latency samples in ms)."""
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "bench-commits",
                         "enable.auto.commit": False})
    try:
        latencies = []
        offset = 0
        deadline = time.monotonic() + seconds
        started = time.monotonic()
        while time.monotonic() < deadline:
            offset += 1
            before = time.monotonic()
            consumer.commit(offsets=[TopicPartition(topic, p, offset) for p in range(partitions)], asynchronous=False)
            latencies.append((time.monotonic() - before) * 1000)
        return len(latencies) / (time.monotonic() - started), latencies
    finally:
        consumer.close()


def _milliseconds(samples):
    return {"median ms": round(statistics.median(samples) * 1000), "max ms": round(max(samples) * 1000),
            "runs": len(samples)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="repetitions of the timing figures")
    parser.add_argument("--seconds", type=float, default=5, help="duration of each throughput phase")
    options = parser.parse_args()

    broker = Broker("local")
    try:
        create_topic(broker.bootstrap, "first", 1)
        producer = Producer({"bootstrap.servers": broker.bootstrap})
        producer.produce("first", b"hello")
        producer.flush(30)
        for label, settings in (("client defaults", {}), ("session.timeout.ms=6000", {"session.timeout.ms": 6000})):
            samples = [time_to_first_message(broker, "first", settings) for _ in range(options.runs)]
            show(f"time to first message, {label}", _milliseconds(samples))

        create_topic(broker.bootstrap, "shared", 12)
        for label, settings in (("client defaults", {}), ("heartbeat.interval.ms=500", {"heartbeat.interval.ms": 500})):
            samples = [rebalance_time(broker, "shared", 12, settings) for _ in range(options.runs)]
            show(f"rebalance, 4th member joins 3, {label}", _milliseconds(samples))

        create_topic(broker.bootstrap, "committed", 4)
        rate = pipelined_commits(broker, "committed", 4, options.seconds)
        show("OffsetCommit, 4 partitions, 64 in flight on one connection", {"commits/s": round(rate)})
        rate, latencies = consumer_commits(broker, "committed", 4, options.seconds)
        show("OffsetCommit, 4 partitions, confluent-kafka synchronous commits",
             {"commits/s": round(rate), **percentiles(latencies)})
    finally:
        broker.stop()


if __name__ == "__main__":
    main()
