"""OffsetDelete through kafka-python's admin client and the wire: a group's
committed offsets go for the partitions asked, as Kafka decides which may."""

import struct

from confluent_kafka import Consumer, TopicPartition
from kafka import TopicPartition as PyTopicPartition
from kafka.admin import KafkaAdminClient
from kafka.errors import GroupIdNotFoundError, NoError, UnknownTopicOrPartitionError
from twisted.trial import unittest

from kafscale.protocol.errors import ErrorCode
from kafscale.protocol.messages import ApiKey
from tests.support.brokers import in_thread, start_broker
from tests.support.groups import FAST_REBALANCES, join_as_new_member
from tests.support.topics import create_topic
from tests.support.wire import Connection


def subscription(*topics):
    """A ConsumerProtocolSubscription v0 naming ``topics``."""
    encoded = [struct.pack(">h", len(topic)) + topic.encode() for topic in topics]
    return struct.pack(">hi", 0, len(topics)) + b"".join(encoded) + struct.pack(">i", -1)


class OffsetDeleteTests(unittest.TestCase):
    async def setUp(self):
        self.broker, self.bootstrap = await start_broker(self, *FAST_REBALANCES)
        await create_topic(self.bootstrap, "events", partitions=2)
        await create_topic(self.bootstrap, "audit")
        self.admin = await in_thread(KafkaAdminClient, bootstrap_servers=self.bootstrap)
        self.addCleanup(in_thread, self.admin.close)

    def commit(self, group_id, offsets):
        consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": group_id})
        try:
            consumer.commit(offsets=[TopicPartition(t, p, o) for (t, p), o in offsets.items()], asynchronous=False)
        finally:
            consumer.close()

    def delete(self, group_id, *partitions):
        return self.admin.delete_group_offsets(group_id, [PyTopicPartition(t, p) for t, p in partitions])

    async def committed(self, group_id):
        return {key: value.offset for key, value in (await self.broker.metadata.fetch_offsets(group_id)).items()}

    async def test_a_group_without_members_loses_the_offsets_asked_for(self):
        await in_thread(self.commit, "idle", {("events", 0): 5, ("events", 1): 7, ("audit", 0): 3})
        result = await in_thread(self.delete, "idle", ("events", 1), ("audit", 0), ("missing", 0), ("audit", 4))
        self.assertEqual(result, {
            PyTopicPartition("events", 1): NoError, PyTopicPartition("audit", 0): NoError,
            PyTopicPartition("missing", 0): UnknownTopicOrPartitionError,
            PyTopicPartition("audit", 4): UnknownTopicOrPartitionError,
        })
        self.assertEqual(await self.committed("idle"), {("events", 0): 5})

    async def test_an_unknown_group_is_not_found(self):
        with self.assertRaises(GroupIdNotFoundError):
            await in_thread(self.delete, "nobody", ("events", 0))

    async def test_members_keep_the_offsets_of_topics_they_consume(self):
        await in_thread(self.commit, "busy", {("events", 0): 5, ("audit", 0): 3})
        await in_thread(self.commit, "other-protocol", {("audit", 0): 3})

        def join_and_delete():
            conn = Connection(self.bootstrap)
            try:
                join_as_new_member(self, conn, 5, "busy", protocols=(("range", subscription("events")),))
                consuming = conn.request(ApiKey.OFFSET_DELETE, 0, {"group_id": "busy", "topics": [
                    {"name": "events", "partitions": [{"partition_index": 0}]},
                    {"name": "audit", "partitions": [{"partition_index": 0}]}]})
                conn.request(ApiKey.JOIN_GROUP, 5, {
                    "group_id": "other-protocol", "session_timeout_ms": 6000, "rebalance_timeout_ms": 10000,
                    "member_id": "", "group_instance_id": "static", "protocol_type": "connect",
                    "protocols": [{"name": "default", "metadata": b""}], "reason": None})
                not_consumers = conn.request(ApiKey.OFFSET_DELETE, 0, {"group_id": "other-protocol", "topics": [
                    {"name": "audit", "partitions": [{"partition_index": 0}]}]})
                return consuming, not_consumers
            finally:
                conn.close()

        consuming, not_consumers = await in_thread(join_and_delete)
        self.assertEqual(consuming["error_code"], ErrorCode.NONE)
        self.assertEqual({topic["name"]: topic["partitions"][0]["error_code"] for topic in consuming["topics"]},
                         {"events": ErrorCode.GROUP_SUBSCRIBED_TO_TOPIC, "audit": ErrorCode.NONE})
        self.assertEqual(await self.committed("busy"), {("events", 0): 5})
        self.assertEqual(not_consumers["error_code"], ErrorCode.NON_EMPTY_GROUP)
        self.assertEqual(await self.committed("other-protocol"), {("audit", 0): 3})
