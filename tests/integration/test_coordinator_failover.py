"""Consumer groups on a cluster of real broker processes sharing etcd and a
bucket: every broker names the same coordinator, and when the coordinator's
broker is killed, another takes the group over from etcd, its member carries
on, and the group's next member resumes at the committed offsets."""

import time

from confluent_kafka import Consumer, KafkaException
from twisted.internet.defer import gatherResults
from twisted.trial import unittest

from kafscale.protocol.errors import ErrorCode
from kafscale.protocol.messages import ApiKey
from tests.support.brokers import BrokerProcess, in_thread, s3_args
from tests.support.clients import produce
from tests.support.etcd_server import etcd_cluster
from tests.support.groups import FAST_CONSUMER, find
from tests.support.topics import create_topic
from tests.support.waiting import sleep
from tests.support.wire import Connection

LEASE_TTL = 2
TOPIC = "events"
PARTITIONS = 6
GROUP = "failover"


def numbered(start, count):
    return [(None, b"%d" % n, None, n % PARTITIONS) for n in range(start, start + count)]


def coordinators(brokers, group_id):
    """What each broker answers to FindCoordinator: [(error, node id, port)]."""
    answers = []
    for broker in brokers:
        connection = Connection(broker.bootstrap)
        try:
            [(_, error, node_id, _, port)] = find(connection, 4, [group_id])
        finally:
            connection.close()
        answers.append((error, node_id, port))
    return answers


def describe(broker, group_id):
    connection = Connection(broker.bootstrap)
    try:
        return connection.request(ApiKey.DESCRIBE_GROUPS, 5, {"groups": [group_id]})["groups"][0]
    finally:
        connection.close()


class GroupMember:
    """A confluent-kafka consumer driven step by step from the test (in
    threads, one call at a time)."""

    def __init__(self, bootstrap):
        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": GROUP, "auto.offset.reset": "earliest",
                                  "enable.auto.commit": False, **FAST_CONSUMER})
        self.consumer.subscribe([TOPIC])
        self.closed = False

    def receive(self, count, timeout=30):
        """-> the values of the next ``count`` messages, and of any beyond
        them that arrive within half a second."""
        values = []
        deadline = time.monotonic() + timeout
        while len(values) < count and time.monotonic() < deadline:
            values.extend(m.value() for m in self.consumer.consume(100, 0.2) if not m.error())
        values.extend(m.value() for m in self.consumer.consume(100, 0.5) if not m.error())
        return values

    def commit(self, timeout=30):
        """Commit the positions, retrying while the coordinator moves."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.consumer.commit(asynchronous=False)
            except KafkaException:
                if time.monotonic() > deadline:
                    raise
                self.consumer.poll(0.2)

    def close(self):
        if not self.closed:
            self.closed = True
            self.consumer.close()


class CoordinatorFailoverTests(unittest.TestCase):
    timeout = 90

    async def setUp(self):
        cluster = etcd_cluster()
        bucket_args = await s3_args(self)
        self.brokers = [
            BrokerProcess(*cluster, "--lease-ttl", str(LEASE_TTL), *bucket_args)
            for _ in range(3)
        ]
        for broker in self.brokers:
            self.addCleanup(in_thread, broker.stop)
        await gatherResults([in_thread(broker.start) for broker in self.brokers])
        self.bootstrap = ",".join(b.bootstrap for b in self.brokers)

    async def coordinator(self, brokers, timeout=10):
        """The broker every one of ``brokers`` names as the group's
        coordinator, once they agree on a live one."""
        deadline = time.monotonic() + timeout
        while True:
            answers = await in_thread(coordinators, brokers, GROUP)
            ports = {port for _, _, port in answers}
            if {error for error, _, _ in answers} == {ErrorCode.NONE} and len(ports) == 1:
                [port] = ports
                named = [b for b in brokers if b.port == port]
                if named:
                    return named[0]
            if time.monotonic() > deadline:
                raise AssertionError(f"no agreement on a live coordinator within {timeout} s: {answers}")
            await sleep(0.1)

    async def test_killed_coordinator(self):
        await create_topic(self.brokers[0].bootstrap, TOPIC, PARTITIONS)
        await in_thread(produce, self.bootstrap, TOPIC, numbered(0, 60))
        member = await in_thread(GroupMember, self.bootstrap)
        self.addCleanup(in_thread, member.close)
        self.assertEqual(sorted(await in_thread(member.receive, 60)), sorted(b"%d" % n for n in range(60)))
        await in_thread(member.commit)

        victim = await self.coordinator(self.brokers)
        before = await in_thread(describe, victim, GROUP)
        self.assertEqual((before["group_state"], len(before["members"])), ("Stable", 1))
        await in_thread(victim.kill)
        survivors = [b for b in self.brokers if b is not victim]

        # Another broker takes the slot once the victim's lease lapses.
        successor = await self.coordinator(survivors, timeout=LEASE_TTL + 8)
        await in_thread(produce, ",".join(b.bootstrap for b in survivors), TOPIC, numbered(60, 60))
        self.assertEqual(sorted(await in_thread(member.receive, 60)), sorted(b"%d" % n for n in range(60, 120)))
        await in_thread(member.commit)
        after = await in_thread(describe, successor, GROUP)
        self.assertEqual(after["group_state"], "Stable")
        self.assertEqual([m["member_id"] for m in after["members"]], [m["member_id"] for m in before["members"]])

        # The group's next member starts where the first committed.
        await in_thread(member.close)
        await in_thread(produce, ",".join(b.bootstrap for b in survivors), TOPIC, numbered(120, 12))
        follower = await in_thread(GroupMember, ",".join(b.bootstrap for b in survivors))
        self.addCleanup(in_thread, follower.close)
        self.assertEqual(sorted(await in_thread(follower.receive, 12)), sorted(b"%d" % n for n in range(120, 132)))
