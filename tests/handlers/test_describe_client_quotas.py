from twisted.trial import unittest

from kafscale.protocol.errors import ErrorCode
from tests.support.brokers import in_thread, start_broker
from tests.support.quotas import describe_quotas

ALICE = (("user", "alice"),)
ALICE_CLI = (("client-id", "cli"), ("user", "alice"))
DEFAULT_USER = (("user", None),)
CLI = (("client-id", "cli"),)
EXACT, DEFAULT, SPECIFIED = 0, 1, 2


class DescribeClientQuotasTests(unittest.TestCase):
    async def setUp(self):
        self.broker, self.bootstrap = await start_broker(self)
        await self.broker.quotas.alter_client_quotas([
            (ALICE, {"producer_byte_rate": 1.0}), (ALICE_CLI, {"request_rate": 2.0}),
            (DEFAULT_USER, {"consumer_byte_rate": 3.0}), (CLI, {"producer_byte_rate": 4.0})])

    async def test_components(self):
        def described(*components, strict=False):
            error, found = describe_quotas(self.bootstrap, components, strict)
            self.assertEqual(error, ErrorCode.NONE)
            return sorted(found, key=repr)

        every = await in_thread(described)
        self.assertEqual(every, sorted([ALICE, ALICE_CLI, DEFAULT_USER, CLI], key=repr))
        self.assertEqual(await in_thread(described, ("user", EXACT, "alice")), sorted([ALICE, ALICE_CLI], key=repr))
        self.assertEqual(await in_thread(described, ("user", EXACT, "alice"), strict=True), [ALICE])
        self.assertEqual(await in_thread(described, ("user", DEFAULT, None)), [DEFAULT_USER])
        self.assertEqual(await in_thread(described, ("user", SPECIFIED, None)), sorted([ALICE, ALICE_CLI], key=repr))
        self.assertEqual(await in_thread(described, ("client-id", SPECIFIED, None), ("user", EXACT, "alice")),
                         [ALICE_CLI])

    async def test_values_and_versions(self):
        for version in (0, 1):
            error, found = await in_thread(describe_quotas, self.bootstrap, [("client-id", EXACT, "cli")], True,
                                           version)
            self.assertEqual((error, found), (ErrorCode.NONE, {CLI: {"producer_byte_rate": 4.0}}))

    async def test_unsupported_entity_type(self):
        error, _ = await in_thread(describe_quotas, self.bootstrap, [("ip", DEFAULT, None)])
        self.assertEqual(error, ErrorCode.INVALID_REQUEST)

    async def test_refused_without_describe_configs_on_the_cluster(self):
        _, bootstrap = await start_broker(self, "--authorizer", "acl")
        error, found = await in_thread(describe_quotas, bootstrap)
        self.assertEqual((error, found), (ErrorCode.CLUSTER_AUTHORIZATION_FAILED, {}))


