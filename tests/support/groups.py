"""Consumer groups against a running broker: settings that keep rebalances
short, the membership APIs and FindCoordinator on the wire, a test case
talking to one broker over the wire, and real consumers that read and
commit in a group or poll in a thread of their own."""

import threading
import time

from confluent_kafka import Consumer
from twisted.trial import unittest

from kafscale.protocol.errors import ErrorCode
from kafscale.protocol.messages import ApiKey
from tests.support.brokers import start_broker
from tests.support.wire import Connection

# Short timers keep client tests fast: the smallest session the broker takes.
FAST_CONSUMER = {"session.timeout.ms": 6000, "heartbeat.interval.ms": 500}

# No initial rebalance delay, for tests that do not measure it.
FAST_REBALANCES = ("--group-initial-rebalance-delay-ms", "0")


def join(connection, version, group_id, member_id="", instance=None, protocols=(("range", b"meta"),)):
    return connection.request(ApiKey.JOIN_GROUP, version, {
        "group_id": group_id, "session_timeout_ms": 6000, "rebalance_timeout_ms": 10000,
        "member_id": member_id, "group_instance_id": instance, "protocol_type": "consumer",
        "protocols": [{"name": name, "metadata": metadata} for name, metadata in protocols], "reason": None,
    })


def join_as_new_member(test, connection, version, group_id, **kwargs):
    joined = join(connection, version, group_id, **kwargs)
    if version >= 4 and kwargs.get("instance") is None:
        test.assertEqual(joined["error_code"], ErrorCode.MEMBER_ID_REQUIRED)
        test.assertEqual(joined["generation_id"], -1)
        joined = join(connection, version, group_id, member_id=joined["member_id"], **kwargs)
    test.assertEqual(joined["error_code"], ErrorCode.NONE)
    return joined


def find(connection, version, keys, key_type=0):
    """FindCoordinator -> [(key, error, node id, host, port)] whatever the version's layout."""
    if version >= 4:
        body = {"key_type": key_type, "coordinator_keys": keys}
        response = connection.request(ApiKey.FIND_COORDINATOR, version, body)
        return [(c["key"], c["error_code"], c["node_id"], c["host"], c["port"]) for c in response["coordinators"]]
    [key] = keys
    r = connection.request(ApiKey.FIND_COORDINATOR, version, {"key": key, "key_type": key_type})
    return [(key, r["error_code"], r["node_id"], r["host"], r["port"])]


def consume_in_group(bootstrap, group, topic, count, timeout=30):
    """Join ``group``, read ``count`` records (from the committed offsets,
    else the earliest), commit, leave. -> [(partition, offset)]"""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
                         "auto.offset.reset": "earliest", **FAST_CONSUMER})
    try:
        consumer.subscribe([topic])
        seen = []
        deadline = time.monotonic() + timeout
        while len(seen) < count and time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is not None and not message.error():
                seen.append((message.partition(), message.offset()))
        consumer.commit(asynchronous=False)
        return sorted(seen)
    finally:
        consumer.close()


def sync(connection, version, group_id, member_id, generation, assignments=(), instance=None):
    return connection.request(ApiKey.SYNC_GROUP, version, {
        "group_id": group_id, "generation_id": generation, "member_id": member_id,
        "group_instance_id": instance, "protocol_type": "consumer", "protocol_name": "range",
        "assignments": [{"member_id": m, "assignment": a} for m, a in assignments],
    })


def heartbeat(connection, version, group_id, member_id, generation, instance=None):
    return connection.request(ApiKey.HEARTBEAT, version, {
        "group_id": group_id, "generation_id": generation, "member_id": member_id, "group_instance_id": instance,
    })["error_code"]


def leave(connection, version, group_id, member_id):
    return connection.request(ApiKey.LEAVE_GROUP, version, {
        "group_id": group_id, "member_id": member_id,
        "members": [{"member_id": member_id, "group_instance_id": None, "reason": "done"}],
    })


def busy_and_empty_groups(test, connection):
    """Form group "busy" (one member, Stable, its assignment b"assigned")
    and group "empty" (its member left); -> busy's JoinGroup answer."""
    busy = join_as_new_member(test, connection, 9, "busy")
    sync(connection, 5, "busy", busy["member_id"], 1, [(busy["member_id"], b"assigned")])
    empty = join_as_new_member(test, connection, 9, "empty")
    leave(connection, 5, "empty", empty["member_id"])
    return busy


class GroupWireTestCase(unittest.TestCase):
    """One broker with fast rebalances, spoken to over the bare wire."""

    async def setUp(self):
        self.broker, self.bootstrap = await start_broker(self, *FAST_REBALANCES)

    def connection(self):
        connection = Connection(self.bootstrap)
        self.addCleanup(connection.close)
        return connection


class PollingConsumer:
    """A confluent-kafka consumer polling in a thread of its own, recording
    what it is assigned and revoked."""

    def __init__(self, bootstrap, group_id, topic, **settings):
        from confluent_kafka import Consumer

        self.assigned = set()
        self.revocations = 0
        self._stopping = threading.Event()
        self._consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group_id, **FAST_CONSUMER, **settings})
        self._consumer.subscribe([topic], on_assign=self._on_assign, on_revoke=self._on_revoke)
        self._thread = threading.Thread(target=self._poll, name=f"consumer {group_id}")
        self._thread.start()

    def _on_assign(self, consumer, partitions):
        self.assigned = {p.partition for p in partitions}

    def _on_revoke(self, consumer, partitions):
        self.revocations += 1
        self.assigned = set()

    def _poll(self):
        try:
            while not self._stopping.is_set():
                self._consumer.poll(0.05)
        finally:
            self._consumer.close()

    def close(self):
        """Leave the group (a static member just goes) and wait for it."""
        self._stopping.set()
        self._thread.join()


def commit_offsets(bootstrap, group, topic, offsets):
    """Commit {partition: offset} for ``group`` with confluent-kafka, as a
    consumer outside any generation."""
    from confluent_kafka import TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        consumer.commit(offsets=[TopicPartition(topic, p, o) for p, o in offsets.items()], asynchronous=False)
    finally:
        consumer.close()
