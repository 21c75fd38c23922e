"""Metadata through the wire, confluent-kafka and kafka-python: each
partition's owner as leader, only replica and only in-sync replica, and the
authorized operations a client asks for."""

from confluent_kafka.admin import AclOperation, AdminClient
from twisted.trial import unittest

from kafscale.handlers.common import OPERATIONS_NOT_REQUESTED
from kafscale.protocol.messages import ApiKey
from tests.support.brokers import in_thread, start_broker
from tests.support.topics import create_topic
from tests.support.wire import Connection

TOPIC_OPERATIONS = {"READ", "WRITE", "CREATE", "DELETE", "ALTER", "DESCRIBE", "DESCRIBE_CONFIGS", "ALTER_CONFIGS"}
CLUSTER_OPERATIONS = {"CREATE", "ALTER", "DESCRIBE", "CLUSTER_ACTION", "DESCRIBE_CONFIGS", "ALTER_CONFIGS",
                      "IDEMPOTENT_WRITE"}


def operation_names(bits):
    return {AclOperation(bit).name for bit in range(32) if bits >> bit & 1}


class MetadataTests(unittest.TestCase):
    async def setUp(self):
        self.broker, self.bootstrap = await start_broker(self)
        await create_topic(self.bootstrap, "described", partitions=2)

    def ask(self, version, names=("described", "missing"), **flags):
        conn = Connection(self.bootstrap)
        try:
            return conn.request(ApiKey.METADATA, version, {"topics": [{"name": name} for name in names],
                                                          "allow_auto_topic_creation": False, **flags})
        finally:
            conn.close()

    async def test_the_owner_is_leader_replica_and_isr_whatever_the_replication_factor(self):
        await self.broker.topics.create("replicated", 3, {}, replication_factor=3)
        (topic,) = (await in_thread(self.ask, 12, ["replicated"]))["topics"]
        self.assertEqual(len(topic["partitions"]), 3)
        for partition in topic["partitions"]:
            self.assertEqual((partition["leader_id"], partition["replica_nodes"], partition["isr_nodes"]),
                             (0, [0], [0]))

    async def test_authorized_operations_when_asked(self):
        # Without an authorizer every operation Kafka defines is allowed.
        answer = await in_thread(self.ask, 10, include_topic_authorized_operations=True,
                                 include_cluster_authorized_operations=True)
        described, missing = answer["topics"]
        self.assertEqual(operation_names(described["topic_authorized_operations"]), TOPIC_OPERATIONS)
        self.assertEqual(missing["topic_authorized_operations"], OPERATIONS_NOT_REQUESTED)
        self.assertEqual(operation_names(answer["cluster_authorized_operations"]), CLUSTER_OPERATIONS)
        # v11 dropped the cluster's from Metadata: DescribeCluster answers it.
        answer = await in_thread(self.ask, 12, include_topic_authorized_operations=True)
        self.assertEqual(operation_names(answer["topics"][0]["topic_authorized_operations"]), TOPIC_OPERATIONS)
        answer = await in_thread(self.ask, 10)
        self.assertEqual(answer["topics"][0]["topic_authorized_operations"], OPERATIONS_NOT_REQUESTED)
        self.assertEqual(answer["cluster_authorized_operations"], OPERATIONS_NOT_REQUESTED)

    async def test_confluent_kafka_describe_topics_with_operations(self):
        from confluent_kafka import TopicCollection

        def describe():
            admin = AdminClient({"bootstrap.servers": self.bootstrap})
            futures = admin.describe_topics(TopicCollection(["described"]), include_authorized_operations=True)
            return futures["described"].result(20)

        described = await in_thread(describe)
        self.assertEqual({operation.name for operation in described.authorized_operations}, TOPIC_OPERATIONS)
        self.assertEqual([(p.leader.id, [r.id for r in p.replicas], [r.id for r in p.isr])
                          for p in described.partitions], [(0, [0], [0])] * 2)
