from twisted.trial import unittest

from kafscale.protocol.errors import ErrorCode
from kafscale.metadata.acls import Operation, ResourceType
from tests.support.acls import allow, grant
from tests.support.brokers import in_thread, start_broker
from tests.support.quotas import alter_quotas

ALICE = [("user", "alice")]
ALICE_CLI = [("user", "alice"), ("client-id", "cli")]
DEFAULT_CLIENT = [("client-id", None)]


class AlterClientQuotasTests(unittest.TestCase):
    async def setUp(self):
        self.broker, self.bootstrap = await start_broker(self)

    async def test_set_and_remove(self):
        answers = await in_thread(alter_quotas, self.bootstrap, [
            (ALICE, {"producer_byte_rate": 1024, "consumer_byte_rate": 2048}),
            (ALICE_CLI, {"request_rate": 50}),
            (DEFAULT_CLIENT, {"producer_byte_rate": 10}),
        ])
        self.assertEqual(answers, [(ErrorCode.NONE, None)] * 3)
        self.assertEqual(await self.broker.metadata.client_quotas(), {
            (("user", "alice"),): {"producer_byte_rate": 1024.0, "consumer_byte_rate": 2048.0},
            (("client-id", "cli"), ("user", "alice")): {"request_rate": 50.0},
            (("client-id", None),): {"producer_byte_rate": 10.0},
        })
        # The broker's own quotas follow at once.
        self.assertEqual(self.broker.quotas.quota_for("request_rate", "alice", "cli")[0], 50.0)
        answers = await in_thread(alter_quotas, self.bootstrap, [
            (ALICE, {"producer_byte_rate": None}), (DEFAULT_CLIENT, {"producer_byte_rate": None})])
        self.assertEqual(answers, [(ErrorCode.NONE, None)] * 2)
        self.assertEqual(await self.broker.metadata.client_quotas(), {
            (("user", "alice"),): {"consumer_byte_rate": 2048.0},
            (("client-id", "cli"), ("user", "alice")): {"request_rate": 50.0},
        })

    async def test_validate_only_and_invalid_entries(self):
        answers = await in_thread(alter_quotas, self.bootstrap, [
            (ALICE, {"producer_byte_rate": 1024}),
            ([("ip", "10.0.0.1")], {"connection_creation_rate": 1}),
            (ALICE_CLI, {"request_percentage": 50}),
            ([("user", "bob")], {"producer_byte_rate": -1}),
            ([("user", "bob"), ("user", "carol")], {"producer_byte_rate": 1}),
        ], validate_only=True)
        self.assertEqual(answers[0], (ErrorCode.NONE, None))
        self.assertEqual([code for code, _ in answers[1:]], [ErrorCode.INVALID_REQUEST] * 4)
        self.assertIn("request_rate", answers[2][1])
        self.assertEqual(await self.broker.metadata.client_quotas(), {})

    async def test_refused_without_alter_configs_on_the_cluster(self):
        broker, bootstrap = await start_broker(self, "--authorizer", "acl")
        await grant(broker, allow(ResourceType.CLUSTER, "kafka-cluster", Operation.DESCRIBE_CONFIGS))
        answers = await in_thread(alter_quotas, bootstrap, [(ALICE, {"producer_byte_rate": 1024})])
        self.assertEqual(answers[0][0], ErrorCode.CLUSTER_AUTHORIZATION_FAILED)
        self.assertEqual(await broker.metadata.client_quotas(), {})
