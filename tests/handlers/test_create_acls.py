from confluent_kafka import KafkaError
from confluent_kafka.admin import AdminClient
from kafka.admin import KafkaAdminClient
from kafka.errors import ClusterAuthorizationFailedError, InvalidRequestError, SecurityDisabledError
from twisted.trial import unittest

from kafscale.security.acls import Operation, PatternType, Permission, ResourceType
from tests.support.acls import allow, binding, confluent_binding, grant, kafka_python_acl
from tests.support.brokers import in_thread, start_broker
from tests.support.clients import result_or_error


class CreateAclsTests(unittest.TestCase):
    async def setUp(self):
        self.broker, self.bootstrap = await start_broker(self, "--authorizer", "acl", "--super-users", "User:ANONYMOUS")

    async def test_confluent_creates_acls(self):
        wanted = [binding(ResourceType.TOPIC, "orders", Operation.READ, principal="User:alice"),
                  binding(ResourceType.GROUP, "billing-", Operation.ALL, Permission.DENY, principal="User:bob",
                          host="10.0.0.1", pattern_type=PatternType.PREFIXED),
                  binding(ResourceType.TRANSACTIONAL_ID, "tx", Operation.WRITE, principal="User:carol"),
                  binding(ResourceType.CLUSTER, "kafka-cluster", Operation.IDEMPOTENT_WRITE, principal="User:*")]

        def create():
            admin = AdminClient({"bootstrap.servers": self.bootstrap})
            futures = admin.create_acls([confluent_binding(b) for b in wanted])
            return [result_or_error(future) for future in futures.values()]

        self.assertEqual(await in_thread(create), [None] * 4)
        self.assertEqual(sorted(await self.broker.metadata.acls()), sorted(wanted))

    async def test_kafka_python_creates_acls_and_invalid_ones_are_refused(self):
        good = binding(ResourceType.TOPIC, "orders", Operation.WRITE, principal="User:alice")
        bad_principal = binding(ResourceType.TOPIC, "orders", Operation.WRITE, principal="alice")
        bad_cluster = binding(ResourceType.CLUSTER, "other", Operation.ALTER)

        def create():
            admin = KafkaAdminClient(bootstrap_servers=self.bootstrap)
            try:
                return admin.create_acls([kafka_python_acl(b) for b in (good, bad_principal, bad_cluster)])
            finally:
                admin.close()

        result = await in_thread(create)
        self.assertEqual(len(result["succeeded"]), 1)
        self.assertEqual(result["failed"], [InvalidRequestError, InvalidRequestError])
        self.assertEqual(await self.broker.metadata.acls(), [good])


class CreateAclsRefusedTests(unittest.TestCase):
    async def test_without_alter_on_the_cluster(self):
        broker, bootstrap = await start_broker(self, "--authorizer", "acl")
        await grant(broker, allow(ResourceType.CLUSTER, "kafka-cluster", Operation.DESCRIBE))

        def create():
            admin = AdminClient({"bootstrap.servers": bootstrap})
            futures = admin.create_acls([confluent_binding(binding(ResourceType.TOPIC, "t", Operation.READ))])
            confluent_error = result_or_error(list(futures.values())[0])
            kafka_python = KafkaAdminClient(bootstrap_servers=bootstrap)
            try:
                failed = kafka_python.create_acls(
                    [kafka_python_acl(binding(ResourceType.TOPIC, "t", Operation.READ))])["failed"]
            finally:
                kafka_python.close()
            return confluent_error, failed

        confluent_error, failed = await in_thread(create)
        self.assertEqual(confluent_error.code(), KafkaError.CLUSTER_AUTHORIZATION_FAILED)
        self.assertEqual(failed, [ClusterAuthorizationFailedError])
        self.assertEqual(len(await broker.metadata.acls()), 1)

    async def test_without_an_authorizer(self):
        _, bootstrap = await start_broker(self)

        def create():
            admin = AdminClient({"bootstrap.servers": bootstrap})
            futures = admin.create_acls([confluent_binding(binding(ResourceType.TOPIC, "t", Operation.READ))])
            confluent_error = result_or_error(list(futures.values())[0])
            kafka_python = KafkaAdminClient(bootstrap_servers=bootstrap)
            try:
                failed = kafka_python.create_acls(
                    [kafka_python_acl(binding(ResourceType.TOPIC, "t", Operation.READ))])["failed"]
            finally:
                kafka_python.close()
            return confluent_error, failed

        confluent_error, failed = await in_thread(create)
        self.assertEqual(confluent_error.code(), KafkaError.SECURITY_DISABLED)
        self.assertEqual(failed, [SecurityDisabledError])
