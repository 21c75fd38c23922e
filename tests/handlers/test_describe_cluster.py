"""DescribeCluster through confluent-kafka, kafka-python and the wire."""

from confluent_kafka.admin import AclOperation, AdminClient
from kafka.admin import KafkaAdminClient
from twisted.trial import unittest

from kafscale.protocol.errors import ErrorCode
from kafscale.protocol.messages import ApiKey
from tests.support.brokers import in_thread, start_broker
from tests.support.wire import Connection


class DescribeClusterTests(unittest.TestCase):
    async def setUp(self):
        self.broker, self.bootstrap = await start_broker(
            self, "--node-id", "5", "--rack", "r1", "--cluster-id", "test-cluster")
        self.port = int(self.bootstrap.rsplit(":", 1)[1])

    async def test_confluent(self):
        # librdkafka describes the cluster with a Metadata request.
        def describe():
            admin = AdminClient({"bootstrap.servers": self.bootstrap})
            return admin.describe_cluster().result(20)

        cluster = await in_thread(describe)
        self.assertEqual(cluster.cluster_id, "test-cluster")
        self.assertEqual(cluster.controller.id, 5)
        self.assertEqual([(n.id, n.host, n.port, n.rack) for n in cluster.nodes],
                         [(5, "127.0.0.1", self.port, "r1")])

    async def test_kafka_python(self):
        admin = await in_thread(KafkaAdminClient, bootstrap_servers=self.bootstrap)
        self.addCleanup(in_thread, admin.close)
        cluster = await in_thread(admin.describe_cluster)
        self.assertEqual(cluster["cluster_id"], "test-cluster")
        self.assertEqual(cluster["controller_id"], 5)
        self.assertEqual(cluster["brokers"], [
            {"broker_id": 5, "host": "127.0.0.1", "port": self.port, "rack": "r1", "is_fenced": False}])

    async def test_every_version_and_no_controller_endpoints(self):
        def ask(version, body):
            connection = Connection(self.bootstrap)
            try:
                return connection.request(ApiKey.DESCRIBE_CLUSTER, version, body)
            finally:
                connection.close()

        for version in range(3):
            response = await in_thread(ask, version, {"include_cluster_authorized_operations": False})
            self.assertEqual(response["error_code"], ErrorCode.NONE)
            self.assertEqual([b["broker_id"] for b in response["brokers"]], [5])
            self.assertEqual(response["cluster_authorized_operations"], -(2**31))
        asked = await in_thread(ask, 2, {"include_cluster_authorized_operations": True})
        # Without authentication, every cluster operation is allowed.
        self.assertEqual(
            sorted(AclOperation(bit).name for bit in range(32) if asked["cluster_authorized_operations"] >> bit & 1),
            ["ALTER", "ALTER_CONFIGS", "CLUSTER_ACTION", "CREATE", "DESCRIBE", "DESCRIBE_CONFIGS", "IDEMPOTENT_WRITE"],
        )
        controllers = await in_thread(ask, 1, {"include_cluster_authorized_operations": False, "endpoint_type": 2})
        self.assertEqual(controllers["error_code"], ErrorCode.UNSUPPORTED_ENDPOINT_TYPE)
        self.assertEqual(controllers["brokers"], [])
