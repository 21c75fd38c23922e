"""WriteTxnMarkers needs CLUSTER_ACTION on the cluster, as in Kafka: a
client without it is answered CLUSTER_AUTHORIZATION_FAILED for every
partition and no marker is written; once granted, the marker is."""

from twisted.trial import unittest

from kafscale.metadata.acls import Operation, ResourceType
from kafscale.protocol.errors import ErrorCode
from kafscale.protocol.messages import ApiKey
from tests.support.acls import allow, grant
from tests.support.brokers import in_thread, start_broker
from tests.support.wire import Connection


def write_markers(bootstrap, epoch=0):
    """-> the error code of each partition of a COMMIT marker of producer 7
    at ``epoch`` to orders-0 and orders-1."""
    connection = Connection(bootstrap)
    try:
        answer = connection.request(ApiKey.WRITE_TXN_MARKERS, 1, {"markers": [{
            "producer_id": 7, "producer_epoch": epoch, "transaction_result": True, "coordinator_epoch": 0,
            "topics": [{"name": "orders", "partition_indexes": [0, 1]}]}]})
    finally:
        connection.close()
    return [p["error_code"] for m in answer["markers"] for t in m["topics"] for p in t["partitions"]]


class ClusterActionTests(unittest.TestCase):
    async def setUp(self):
        self.broker, self.bootstrap = await start_broker(self, "--authorizer", "acl")
        await self.broker.topics.create("orders", 2, {})

    def ends(self):
        return [self.broker.logs.log_for("orders", p).high_watermark for p in (0, 1)]

    async def test_refused_without_cluster_action(self):
        self.assertEqual(await in_thread(write_markers, self.bootstrap), [ErrorCode.CLUSTER_AUTHORIZATION_FAILED] * 2)
        self.assertEqual(self.ends(), [0, 0])

    async def test_written_with_cluster_action(self):
        await grant(self.broker, allow(ResourceType.CLUSTER, "kafka-cluster", Operation.CLUSTER_ACTION))
        self.assertEqual(await in_thread(write_markers, self.bootstrap), [ErrorCode.NONE] * 2)
        self.assertEqual(self.ends(), [1, 1])

    async def test_a_marker_older_than_the_epoch_known_is_refused(self):
        await grant(self.broker, allow(ResourceType.CLUSTER, "kafka-cluster", Operation.CLUSTER_ACTION))
        self.assertEqual(await in_thread(write_markers, self.bootstrap, 3), [ErrorCode.NONE] * 2)
        self.assertEqual(await in_thread(write_markers, self.bootstrap, 2), [ErrorCode.INVALID_PRODUCER_EPOCH] * 2)
        self.assertEqual(self.ends(), [1, 1])
