"""Committed offsets: OffsetCommit and OffsetFetch at every version on the
wire, and confluent-kafka, kafka-python and aiokafka consumers that commit,
close, and are followed by a member resuming exactly where they stopped."""

import asyncio
import time
import uuid

from twisted.trial import unittest

from kafscale.metadata.interfaces import BrokerInfo
from kafscale.protocol.errors import ErrorCode
from kafscale.protocol.messages import ApiKey
from tests.support.brokers import in_thread, start_broker
from tests.support.clients import produce
from tests.support.groups import FAST_CONSUMER, FAST_REBALANCES, join_as_new_member
from tests.support.topics import create_topic
from tests.support.wire import Connection


def commit(connection, version, group_id, topic, partitions, generation=-1, member_id=""):
    """``partitions``: (index, offset, leader epoch, metadata) tuples."""
    return connection.request(ApiKey.OFFSET_COMMIT, version, {
        "group_id": group_id, "generation_id_or_member_epoch": generation, "member_id": member_id,
        "group_instance_id": None, "retention_time_ms": -1,
        "topics": [{
            "name": topic.name, "topic_id": topic.topic_id,
            "partitions": [
                {"partition_index": index, "committed_offset": offset, "committed_leader_epoch": epoch,
                 "committed_metadata": metadata}
                for index, offset, epoch, metadata in partitions
            ],
        }],
    })


def commit_errors(response):
    return [(p["partition_index"], p["error_code"]) for t in response["topics"] for p in t["partitions"]]


def fetch(connection, version, groups):
    """``groups``: group id -> (topic, partition indexes) list or None (all).
    -> group id -> (group error, {(topic name or id, partition): (offset, epoch, metadata, error)})."""
    def topics(wanted):
        if wanted is None:
            return None
        return [{"name": t.name, "topic_id": t.topic_id, "partition_indexes": indexes} for t, indexes in wanted]

    def partitions(entries):
        return {
            (t.get("name") or t.get("topic_id"), p["partition_index"]):
                (p["committed_offset"], p.get("committed_leader_epoch", -1), p["metadata"], p["error_code"])
            for t in entries for p in t["partitions"]
        }

    if version >= 8:
        response = connection.request(ApiKey.OFFSET_FETCH, version, {
            "groups": [{"group_id": g, "member_id": None, "member_epoch": -1, "topics": topics(w)}
                       for g, w in groups.items()],
            "require_stable": False,
        })
        return {g["group_id"]: (g["error_code"], partitions(g["topics"])) for g in response["groups"]}
    [(group_id, wanted)] = groups.items()
    response = connection.request(ApiKey.OFFSET_FETCH, version, {
        "group_id": group_id, "topics": topics(wanted), "require_stable": False,
    })
    return {group_id: (response.get("error_code", ErrorCode.NONE), partitions(response["topics"]))}


class WireTests(unittest.TestCase):
    async def setUp(self):
        self.broker, self.bootstrap = await start_broker(self, *FAST_REBALANCES)
        await create_topic(self.bootstrap, "t", partitions=3)
        self.topic = self.broker.topics["t"]

    def connection(self):
        connection = Connection(self.bootstrap)
        self.addCleanup(connection.close)
        return connection

    def key(self, version, partition):
        return (self.topic.topic_id if version >= 10 else "t", partition)

    async def test_commit_and_fetch_at_every_version(self):
        def run():
            connection = self.connection()
            for version in range(2, 11):
                group_id = f"simple-{version}"
                committed = commit(connection, version, group_id, self.topic,
                                   [(0, 10 + version, 4, "meta"), (1, 5, -1, None)])
                self.assertEqual(commit_errors(committed), [(0, ErrorCode.NONE), (1, ErrorCode.NONE)])
                self.assertEqual(committed["topics"][0]["topic_id" if version >= 10 else "name"],
                                 self.topic.topic_id if version >= 10 else "t")
                for fetch_version in range(1, 11):
                    if (fetch_version >= 10) != (version >= 10):
                        continue  # topic ids and names do not mix
                    error, offsets = fetch(connection, fetch_version, {group_id: [(self.topic, [0, 1, 2])]})[group_id]
                    self.assertEqual(error, ErrorCode.NONE)
                    # Commits carry a leader epoch from v6, fetches show it from v5.
                    epoch = 4 if version >= 6 and fetch_version >= 5 else -1
                    self.assertEqual(offsets, {
                        self.key(fetch_version, 0): (10 + version, epoch, "meta", ErrorCode.NONE),
                        self.key(fetch_version, 1): (5, -1, "", ErrorCode.NONE),
                        self.key(fetch_version, 2): (-1, -1, "", ErrorCode.NONE),  # never committed
                    })
                    if fetch_version >= 2:
                        _, everything = fetch(connection, fetch_version, {group_id: None})[group_id]
                        self.assertEqual(sorted(everything), [self.key(fetch_version, 0), self.key(fetch_version, 1)])

        await in_thread(run)

    async def test_fetch_batched_groups(self):
        def run():
            connection = self.connection()
            commit(connection, 9, "one", self.topic, [(0, 1, -1, "")])
            commit(connection, 9, "two", self.topic, [(2, 2, -1, "")])
            for version in (8, 9):
                fetched = fetch(connection, version, {"one": None, "two": [(self.topic, [1, 2])], "none": None})
                self.assertEqual(fetched, {
                    "one": (ErrorCode.NONE, {("t", 0): (1, -1, "", ErrorCode.NONE)}),
                    "two": (ErrorCode.NONE, {("t", 1): (-1, -1, "", ErrorCode.NONE),
                                             ("t", 2): (2, -1, "", ErrorCode.NONE)}),
                    "none": (ErrorCode.NONE, {}),
                })

        await in_thread(run)

    async def test_commit_refusals(self):
        from kafscale.metadata.interfaces import TopicInfo

        missing = TopicInfo("missing", uuid.uuid4(), 1, {}, 0)

        def run():
            connection = self.connection()
            # Partitions that do not exist, and metadata beyond offset.metadata.max.bytes
            refused = commit(connection, 9, "g", self.topic,
                             [(3, 1, -1, ""), (0, 1, -1, "x" * 4097), (1, 1, -1, "x" * 4096)])
            self.assertEqual(commit_errors(refused), [(3, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION),
                                                      (0, ErrorCode.OFFSET_METADATA_TOO_LARGE), (1, ErrorCode.NONE)])
            self.assertEqual(commit_errors(commit(connection, 9, "g", missing, [(0, 1, -1, "")])),
                             [(0, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)])
            self.assertEqual(commit_errors(commit(connection, 10, "g", missing, [(0, 1, -1, "")])),
                             [(0, ErrorCode.UNKNOWN_TOPIC_ID)])
            _, offsets = fetch(connection, 10, {"g": [(missing, [0])]})["g"]
            self.assertEqual(offsets, {(missing.topic_id, 0): (-1, -1, "", ErrorCode.UNKNOWN_TOPIC_ID)})
            # A commit in a generation, for a group that does not exist
            self.assertEqual(commit_errors(commit(connection, 8, "nobody", self.topic, [(0, 1, -1, "")], 3, "m")),
                             [(0, ErrorCode.ILLEGAL_GENERATION)])
            self.assertEqual(commit_errors(commit(connection, 9, "nobody", self.topic, [(0, 1, -1, "")], 3, "m")),
                             [(0, ErrorCode.GROUP_ID_NOT_FOUND)])

        await in_thread(run)

    async def test_commits_checked_against_the_group(self):
        def run():
            connection = self.connection()
            joined = join_as_new_member(self, connection, 9, "managed")
            member_id = joined["member_id"]

            def attempt(generation, member):
                return commit_errors(commit(connection, 9, "managed", self.topic, [(0, 7, -1, "")], generation, member))

            # The member's generation has not received its assignment yet.
            self.assertEqual(attempt(1, member_id), [(0, ErrorCode.REBALANCE_IN_PROGRESS)])
            connection.request(ApiKey.SYNC_GROUP, 5, {
                "group_id": "managed", "generation_id": 1, "member_id": member_id, "group_instance_id": None,
                "protocol_type": "consumer", "protocol_name": "range", "assignments": [],
            })
            self.assertEqual(attempt(1, member_id), [(0, ErrorCode.NONE)])
            self.assertEqual(attempt(2, member_id), [(0, ErrorCode.ILLEGAL_GENERATION)])
            self.assertEqual(attempt(1, "stranger"), [(0, ErrorCode.UNKNOWN_MEMBER_ID)])
            self.assertEqual(attempt(-1, ""), [(0, ErrorCode.UNKNOWN_MEMBER_ID)])  # the group is not empty

        await in_thread(run)

    async def test_not_the_coordinator(self):
        self.patch(self.broker.view, "coordinator_for", lambda group_id: BrokerInfo(7, "127.0.0.1", 1, None, 0))
        self.patch(self.broker.view, "coordinates", lambda group_id: False)

        def run():
            connection = self.connection()
            self.assertEqual(commit_errors(commit(connection, 9, "g", self.topic, [(0, 1, -1, "")])),
                             [(0, ErrorCode.NOT_COORDINATOR)])
            # v1 has no group-level error: every partition carries it.
            self.assertEqual(fetch(connection, 1, {"g": [(self.topic, [0])]}),
                             {"g": (ErrorCode.NONE, {("t", 0): (-1, -1, "", ErrorCode.NOT_COORDINATOR)})})
            self.assertEqual(fetch(connection, 7, {"g": [(self.topic, [0])]}), {"g": (ErrorCode.NOT_COORDINATOR, {})})
            self.assertEqual(fetch(connection, 8, {"g": None}), {"g": (ErrorCode.NOT_COORDINATOR, {})})

        await in_thread(run)


def values(count, start=0):
    return [(None, f"m{n}".encode(), None, n % 4) for n in range(start, start + count)]


class ResumeTests(unittest.TestCase):
    """A consumer reads everything, commits and closes; more is produced;
    the next member of the group reads exactly the new records."""

    async def setUp(self):
        self.broker, self.bootstrap = await start_broker(self, *FAST_REBALANCES)
        await create_topic(self.bootstrap, "resume", partitions=4)
        await in_thread(produce, self.bootstrap, "resume", values(40))

    async def check_resume(self, consume_and_commit):
        first = await in_thread(consume_and_commit, 40)
        self.assertEqual(sorted(first), sorted(f"m{n}".encode() for n in range(40)))
        committed = await self.broker.groups.fetch_offsets("resume-group")
        self.assertEqual({key: c.offset for key, c in committed.items()}, {("resume", p): 10 for p in range(4)})
        await in_thread(produce, self.bootstrap, "resume", values(20, start=40))
        second = await in_thread(consume_and_commit, 20)
        self.assertEqual(sorted(second), sorted(f"m{n}".encode() for n in range(40, 60)))

    async def test_confluent_kafka(self):
        from confluent_kafka import Consumer

        def consume_and_commit(count):
            consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": "resume-group",
                                 "auto.offset.reset": "earliest", "enable.auto.commit": False, **FAST_CONSUMER})
            consumer.subscribe(["resume"])
            received = []
            deadline = time.monotonic() + 20
            try:
                while len(received) < count and time.monotonic() < deadline:
                    message = consumer.poll(0.1)
                    if message is not None and not message.error():
                        received.append(message.value())
                # Anything beyond ``count`` would show up here.
                received.extend(m.value() for m in consumer.consume(100, 0.5) if not m.error())
                consumer.commit(asynchronous=False)
            finally:
                consumer.close()
            return received

        await self.check_resume(consume_and_commit)

    async def test_kafka_python(self):
        from kafka import KafkaConsumer

        def consume_and_commit(count):
            consumer = KafkaConsumer("resume", bootstrap_servers=self.bootstrap, group_id="resume-group",
                                     auto_offset_reset="earliest", enable_auto_commit=False,
                                     session_timeout_ms=6000, heartbeat_interval_ms=500)
            received = []
            deadline = time.monotonic() + 20
            try:
                while len(received) < count + 1 and time.monotonic() < deadline:
                    for records in consumer.poll(timeout_ms=200).values():
                        received.extend(r.value for r in records)
                    if len(received) >= count:
                        deadline = min(deadline, time.monotonic() + 0.5)
                consumer.commit()
            finally:
                consumer.close()
            return received

        await self.check_resume(consume_and_commit)

    async def test_aiokafka(self):
        from aiokafka import AIOKafkaConsumer

        async def consume_and_commit(count):
            consumer = AIOKafkaConsumer("resume", bootstrap_servers=self.bootstrap, group_id="resume-group",
                                        auto_offset_reset="earliest", enable_auto_commit=False,
                                        session_timeout_ms=6000, heartbeat_interval_ms=500)
            await consumer.start()
            received = []
            try:
                async with asyncio.timeout(20):
                    while len(received) < count:
                        for records in (await consumer.getmany(timeout_ms=200)).values():
                            received.extend(r.value for r in records)
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    received.extend(r.value for r in records)
                await consumer.commit()
            finally:
                await consumer.stop()
            return received

        await self.check_resume(lambda count: asyncio.run(consume_and_commit(count)))


class AdminOffsetsTests(unittest.TestCase):
    async def setUp(self):
        self.broker, self.bootstrap = await start_broker(self)
        await create_topic(self.bootstrap, "t", partitions=2)

    async def test_confluent_alter_and_list(self):
        from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
        from confluent_kafka.admin import AdminClient

        def run():
            admin = AdminClient({"bootstrap.servers": self.bootstrap})
            offsets = [TopicPartition("t", 0, 12), TopicPartition("t", 1, 3)]
            wanted = ConsumerGroupTopicPartitions("admin-group", offsets)
            admin.alter_consumer_group_offsets([wanted])["admin-group"].result(10)
            request = ConsumerGroupTopicPartitions("admin-group", [TopicPartition("t", 0), TopicPartition("t", 1)])
            return admin.list_consumer_group_offsets([request])["admin-group"].result(10)

        listed = await in_thread(run)
        self.assertEqual([(p.partition, p.offset, p.error) for p in listed.topic_partitions],
                         [(0, 12, None), (1, 3, None)])

    async def test_kafka_python_alter_and_list(self):
        from kafka.admin import KafkaAdminClient
        from kafka.structs import OffsetAndMetadata, TopicPartition

        def run():
            admin = KafkaAdminClient(bootstrap_servers=self.bootstrap)
            try:
                admin.alter_group_offsets("admin-group", {TopicPartition("t", 1): OffsetAndMetadata(8, "note", -1)})
                return admin.list_group_offsets("admin-group")
            finally:
                admin.close()

        listed = await in_thread(run)
        self.assertEqual({tp: (o.offset, o.metadata) for tp, o in listed["admin-group"].items()},
                         {TopicPartition("t", 1): (8, "note")})
